#!/bin/bash
# Fused buffers with a layout, through the shim, under COMMPRESS_ADAPT
# (tests/mpi/test_identity.c, "layout"): the run passes its own checks,
# each refused layout printed one line naming what is wrong, and rank 0's
# last plan in COMMPRESS_STATS_FILE is the fused buffer's: one entry per
# segment, with at least two different settings among them.
# Usage: layout.sh MPIRUN_SH TEST_IDENTITY COMPRESSOR
set -u
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
out=$(COMMPRESS_COMPRESSOR=$3 COMMPRESS_MIN_BYTES=0 COMMPRESS_ADAPT=lgreco \
      COMMPRESS_ADAPT_EVERY=5 COMMPRESS_ADAPT_WINDOW=2 \
      COMMPRESS_STATS_FILE="$dir/s.%r.json" timeout 240 "$1" 3 "$2" layout 2>&1)
rc=$?
echo "$out" | grep -v "^rank [12] " | head -20
[ $rc -eq 0 ] || { echo "FAIL: run (exit $rc)"; echo "$out" | tail -30; exit 1; }
n=$(grep -c "^commpress: error: commpress_register_layout: " <<<"$out")
sum=$(grep -c "^commpress: error: commpress_register_layout: the layers sum to 123999 floats, not to the buffer's count 124000$" <<<"$out")
[ "$n" -eq 15 ] && [ "$sum" -eq 3 ] ||
  { echo "FAIL: $n refusal lines ($sum for the sum), want 5 per rank, 1 each"; exit 1; }
/usr/bin/python3 - "$dir" <<'PY'
import json, sys
s = json.load(open(f"{sys.argv[1]}/s.0.json"))
plan = s["adapt_last_plan"]
ok = [p["count"] for p in plan] == [30000, 8000, 50000, 12000, 20000, 4000]
settings = {p["setting"] for p in plan}
ok = ok and len(settings) >= 2 and s["bytes_sent"] < s["bytes_sent_uniform"]
print("last plan:", [(p["count"], p["setting"]) for p in plan])
print("1 passed, 0 failed" if ok else "FAIL: the segments' plan\n0 passed, 1 failed")
sys.exit(0 if ok else 1)
PY
