#!/bin/bash
# COMMPRESS_STATS_FILE writes one JSON per rank (%r = rank) with the
# documented keys and consistent values; COMMPRESS_DEBUG=INFO prints one
# summary line on rank 0. Without %r, several ranks write one file each
# (".<rank>" appended); a symbolic link at the path is not followed; a file
# that cannot be written is reported. Usage: stats_file.sh MPIRUN_SH PROGRAM
set -u
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
out=$(COMMPRESS_COMPRESSOR=sign COMMPRESS_MIN_BYTES=0 COMMPRESS_DEBUG=INFO COMMPRESS_STATE_KEY=address \
      COMMPRESS_STATS_FILE="$dir/stats.%r.json" "$1" 3 "$2" compress 2>&1) || { echo "$out"; echo "FAIL: run"; exit 1; }
fail=0
n=$(grep -c 'commpress INFO summary rank 0' <<<"$out")
[ "$n" -eq 1 ] || { echo "FAIL: $n summary lines"; fail=1; }
for r in 0 1 2; do
  f="$dir/stats.$r.json"
  [ -s "$f" ] || { echo "FAIL: no $f"; fail=1; continue; }
  for k in rank calls_compressed calls_passthrough bytes_uncompressed bytes_sent ratio compress_seconds state_bytes; do
    grep -q "\"$k\": " "$f" || { echo "FAIL: $f lacks $k"; fail=1; }
  done
  grep -q "\"rank\": $r," "$f" || { echo "FAIL: $f has the wrong rank"; fail=1; }
  # ratio = bytes_uncompressed / bytes_sent; sign sends 1 bit and a scale
  # per chunk, so even with the small counts and the exact non-finite steps
  # of this workload it stays well above 4.
  awk '{ match($0, /"bytes_uncompressed": [0-9]+/); u = substr($0, RSTART + 22, RLENGTH - 22)
         match($0, /"bytes_sent": [0-9]+/); s = substr($0, RSTART + 14, RLENGTH - 14)
         match($0, /"ratio": [0-9.e+-]+/); r = substr($0, RSTART + 9, RLENGTH - 9)
         exit !(s > 0 && r > 4 && (r - u / s) ^ 2 < (1e-5 * r) ^ 2) }' "$f" \
    || { echo "FAIL: ratio in $f: $(cat "$f")"; fail=1; }
  cat "$f"
done
# Without %r: stats.json.0, .1, .2, never one file raced for.
out=$(COMMPRESS_COMPRESSOR=sign COMMPRESS_MIN_BYTES=0 COMMPRESS_STATE_KEY=address \
      COMMPRESS_STATS_FILE="$dir/stats.json" "$1" 3 "$2" compress 2>&1) || { echo "$out"; echo "FAIL: run without %r"; fail=1; }
[ -e "$dir/stats.json" ] && { echo "FAIL: $dir/stats.json written by several ranks"; fail=1; }
for r in 0 1 2; do
  grep -q "\"rank\": $r," "$dir/stats.json.$r" 2>/dev/null || { echo "FAIL: no stats.json.$r for rank $r"; fail=1; }
done
# A symbolic link at the path (rank 1's) is not followed: its target stays
# untouched and rank 1 says it could not write; an unwritable path too.
echo untouched > "$dir/target"
ln -s "$dir/target" "$dir/l.1.json"
out=$(COMMPRESS_COMPRESSOR=sign COMMPRESS_MIN_BYTES=0 COMMPRESS_STATE_KEY=address \
      COMMPRESS_STATS_FILE="$dir/l.%r.json" "$1" 2 "$2" compress 2>&1) || { echo "$out"; echo "FAIL: run with a link"; fail=1; }
[ "$(cat "$dir/target")" = untouched ] || { echo "FAIL: the link was followed"; fail=1; }
grep -q ":1 commpress WARN cannot write COMMPRESS_STATS_FILE $dir/l.1.json: " <<<"$out" \
  || { echo "$out"; echo "FAIL: no warning for the link"; fail=1; }
grep -q '"rank": 0,' "$dir/l.0.json" || { echo "FAIL: rank 0's file"; fail=1; }
out=$(COMMPRESS_COMPRESSOR=sign COMMPRESS_MIN_BYTES=0 COMMPRESS_STATE_KEY=address \
      COMMPRESS_STATS_FILE="$dir/missing/s.%r.json" "$1" 2 "$2" compress 2>&1) || { echo "$out"; echo "FAIL: run, bad dir"; fail=1; }
n=$(grep -c "commpress WARN cannot write COMMPRESS_STATS_FILE $dir/missing/s.[01].json: No such file or directory" <<<"$out")
[ "$n" -eq 2 ] || { echo "$out"; echo "FAIL: $n warnings for an unwritable path"; fail=1; }
# COMMPRESS_STATS_EVERY=3: JSON Lines, one every 3 calls handled (their
# counts multiples of 3, increasing), numbered, the last one final.
out=$(COMMPRESS_COMPRESSOR=sign COMMPRESS_MIN_BYTES=0 COMMPRESS_STATE_KEY=address \
      COMMPRESS_STATS_EVERY=3 COMMPRESS_STATS_FILE="$dir/e.%r.jsonl" \
      "$1" 2 "$2" compress 2>&1) || { echo "$out"; echo "FAIL: run with COMMPRESS_STATS_EVERY"; fail=1; }
for r in 0 1; do
  /usr/bin/python3 - "$dir/e.$r.jsonl" "$r" <<'PY' || fail=1
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
handled = [l["calls_compressed"] + l["calls_plain"] for l in lines]
ok = (len(lines) >= 2 and [l["line"] for l in lines] == list(range(1, len(lines) + 1))
      and all(l["rank"] == int(sys.argv[2]) for l in lines)
      and all(not l["final"] and h % 3 == 0 for l, h in zip(lines[:-1], handled))
      and lines[-1]["final"] and handled == sorted(handled)
      and len(lines) - 1 == handled[-1] // 3
      and all(a["seconds"] <= b["seconds"] for a, b in zip(lines, lines[1:])))
if not ok:
    print("FAIL: COMMPRESS_STATS_EVERY lines of rank", sys.argv[2], handled, lines[-1])
sys.exit(0 if ok else 1)
PY
done
# examples/plot_stats.py reads them (--text: no matplotlib needed)
/usr/bin/python3 "$(dirname "$0")/../../examples/plot_stats.py" --text "$dir/e.0.jsonl" |
  grep -q "rank 0, .* final$" || { echo "FAIL: plot_stats.py --text"; fail=1; }
# With COMMPRESS_POLICY=auto and INFO, rank 0 also says what the policy
# estimates compressing saved (test_policy's measured-timings run).
out=$(COMMPRESS_COMPRESSOR=quant COMMPRESS_MIN_BYTES=0 COMMPRESS_DEBUG=INFO COMMPRESS_POLICY=auto \
      "$1" 2 "$(dirname "$2")/test_policy" real 2>&1) || { echo "$out"; echo "FAIL: run with the policy"; fail=1; }
grep -q 'INFO summary rank 0: COMMPRESS_POLICY=auto estimates that compressing saved -\?[0-9.]* s against plain MPI' <<<"$out" \
  || { echo "$out" | grep summary; echo "FAIL: no policy estimate in the summary"; fail=1; }
[ $fail -eq 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $fail
