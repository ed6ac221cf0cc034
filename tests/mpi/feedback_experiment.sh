#!/bin/bash
# The fast version of bench/feedback.sh (docs/feedback.md): heterogeneous
# least squares, 4 ranks, top-k 1%, 1500 steps, full gradients and batches
# of 50 rows. Asserts the ordering the full runs showed, with margins from
# its measurements (initial gap 400; full gradients: uncompressed 1.4e-6,
# no feedback 257, EF 52, EF21 6.1e-7, EControl 1.1e-5, EF21-SGDM 4.5e-7;
# batches: uncompressed 3.5, EF 4.0, EF21 372, EF21-SGDM 4.8):
#   EF21, EControl and EF21-SGDM reach the uncompressed loss (gap < 1e-3);
#   without feedback top-k stalls (gap > 100); EF lies in between;
#   with batches EF21 drifts away while EF21-SGDM stays near the
#   uncompressed run.
set -euo pipefail
prog=$1
tmp=$(mktemp) tmpb=$(mktemp)
trap 'rm -f "$tmp" "$tmpb"' EXIT
"$(dirname "$0")/mpirun.sh" 4 "$prog" --dim 500 --rows 250 --steps 1500 --every 250 \
  --lr 0.05 --eta 0.01 --json "$tmp"
"$(dirname "$0")/mpirun.sh" 4 "$prog" --dim 500 --rows 250 --steps 1500 --every 250 \
  --lr 0.005 --eta 0.01 --batch 50 --json "$tmpb"
/usr/bin/python3 - "$tmp" "$tmpb" <<'PY'
import json, sys
gap = {k: v[-1][1] for k, v in json.load(open(sys.argv[1]))["gap"].items()}
bat = {k: v[-1][1] for k, v in json.load(open(sys.argv[2]))["gap"].items()}
checks = [
    ("uncompressed reaches f*", gap["uncompressed"] < 1e-3),
    ("EControl reaches the uncompressed loss", gap["topk + EControl"] < 1e-3),
    ("EF21 reaches the uncompressed loss", gap["topk + EF21"] < 1e-3),
    ("top-k without feedback stalls", gap["topk, no feedback"] > 100),
    ("EF between", gap["topk, no feedback"] > gap["topk + EF"] > 1e3 * gap["topk + EControl"]),
    ("EF21-SGDM reaches the uncompressed loss", gap["topk + EF21-SGDM"] < 1e-3),
    ("batches: EF21-SGDM near the uncompressed run",
     bat["topk + EF21-SGDM"] < 3 * bat["uncompressed"]),
    ("batches: EF21 drifts away", bat["topk + EF21"] > 10 * bat["topk + EF21-SGDM"]),
]
fails = [name for name, ok in checks if not ok]
print("final gaps:", ", ".join(f"{k} {v:.3g}" for k, v in gap.items()))
print("with batches of 50:", ", ".join(f"{k} {v:.3g}" for k, v in bat.items()))
for f in fails:
    print("FAIL:", f)
print(f"{len(checks) - len(fails)} passed, {len(fails)} failed")
sys.exit(1 if fails else 0)
PY
