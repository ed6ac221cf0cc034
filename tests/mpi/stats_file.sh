#!/bin/bash
# COMMPRESS_STATS_FILE writes one JSON per rank (%r = rank) with the
# documented keys and consistent values; COMMPRESS_DEBUG=INFO prints one
# summary line on rank 0. Usage: stats_file.sh MPIRUN_SH PROGRAM
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
[ $fail -eq 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $fail
