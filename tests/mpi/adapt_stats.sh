#!/bin/bash
# COMMPRESS_ADAPT's statistics in COMMPRESS_STATS_FILE: rank 0's file
# holds the plans made, the bytes the uniform setting would have sent
# (more than those sent) and the last plan, one object per layer with its
# setting, error and bytes. Usage: adapt_stats.sh MPIRUN_SH TEST_IDENTITY
set -u
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
out=$(COMMPRESS_COMPRESSOR=quant COMMPRESS_MIN_BYTES=0 COMMPRESS_ADAPT=lgreco \
      COMMPRESS_ADAPT_EVERY=5 COMMPRESS_ADAPT_WINDOW=2 \
      COMMPRESS_STATS_FILE="$dir/s.%r.json" "$1" 3 "$2" adapt 2>&1) || { echo "$out"; echo "FAIL: run"; exit 1; }
/usr/bin/python3 - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
s = [json.load(open(f"{d}/s.{r}.json")) for r in range(3)]
ok = True
def check(c, what):
    global ok
    if not c:
        print("FAIL:", what); ok = False
for r in range(3):
    check(s[r]["adapt_plans"] == s[0]["adapt_plans"] >= 3, f"rank {r}: plans {s[r]['adapt_plans']}")
    check(s[r]["bytes_sent"] < s[r]["bytes_sent_uniform"], f"rank {r}: bytes")
plan = s[0]["adapt_last_plan"]
check(len(plan) == 6, f"the last plan has {len(plan)} layers")
check(sorted(p["count"] for p in plan) == [4000, 8000, 12000, 20000, 30000, 50000], "layer sizes")
check(all(p["setting"].startswith(("quant bits=", "fp16", "none")) and p["bytes"] > 0
          and p["error"] >= 0 for p in plan), "settings")
check(s[1]["adapt_last_plan"] == [], "only rank 0 plans")
print(json.dumps(plan))
print("1 passed, 0 failed" if ok else "0 passed, 1 failed")
sys.exit(0 if ok else 1)
PY
