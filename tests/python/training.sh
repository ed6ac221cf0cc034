#!/bin/bash
# The fast versions of bench/convergence.sh, asserting what the full runs
# showed (docs/convergence.md). Usage: training.sh dgc|onebit LIBCOMMPRESS
#   dgc     SGD momentum 0.9 vs DGC (density 0.001 after warm-up) through
#           the preloaded shim: final test accuracy within 1 point, and
#           the sparsified tensors compressed at least 100x after warm-up.
#   onebit  Adam vs 1-bit Adam (freeze at 15%): accuracy within 1 point,
#           traffic at least 4x lower; saved halfway and resumed: final
#           parameters bit-identical.
set -euo pipefail
mode=$1 lib=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
steps=${CP_TRAIN_STEPS:-400}
py=(/usr/bin/python3 "$root/examples/train_fmnist.py" --act gelu --steps "$steps"
    --eval-every "$steps")
mpi() { mpirun -np 4 --oversubscribe --bind-to none "$@" > "$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }; }
case $mode in
  dgc)
    mpi "${py[@]}" --bucket per-tensor --lr 0.05 --momentum 0.9 --out "$tmp/base.json"
    mpi -x LD_PRELOAD="$lib" -x COMMPRESS_COMPRESSOR=dgc -x COMMPRESS_DENSITY=0.001 \
      -x COMMPRESS_DGC_WARMUP_STEPS=$((steps / 5)) -x COMMPRESS_MIN_BYTES=0 \
      "${py[@]}" --bucket per-tensor --lr 0.05 --momentum 0 --out "$tmp/new.json"
    ;;
  onebit)
    mpi "${py[@]}" --optimizer adam --lr 0.001 --out "$tmp/base.json"
    f=$((steps * 15 / 100))
    mpi "${py[@]}" --optimizer onebit-adam --lr 0.001 --freeze-step $f \
      --save-at $((steps / 2)) --ckpt "$tmp/ck.%r" --final-params "$tmp/full.npy" \
      --out "$tmp/new.json"
    mpi "${py[@]}" --optimizer onebit-adam --lr 0.001 --freeze-step $f \
      --resume "$tmp/ck.%r" --final-params "$tmp/resumed.npy" --out "$tmp/resumed.json"
    cmp "$tmp/full.npy" "$tmp/resumed.npy" || { echo "FAIL: resumed run differs"; exit 1; }
    ;;
  *) echo "training.sh: unknown mode $mode" >&2; exit 2 ;;
esac
/usr/bin/python3 - "$mode" "$tmp/base.json" "$tmp/new.json" <<'PY'
import json, sys
mode, base, new = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
a0, a1 = base["final_test_acc"], new["final_test_acc"]
fails = []
if a1 < a0 - 0.01:
    fails.append(f"accuracy {a1:.4f} more than 1 point below the baseline's {a0:.4f}")
if mode == "dgc":
    w = new["commpress_stats_after_warmup"]
    r = w["ratio_sparse"]
    if r < 100:
        fails.append(f"sparsified tensors compressed {r:.1f}x < 100x after warm-up")
    extra = f"after warm-up: sparse ratio {r:.0f}x, all gradients {w['ratio_all']:.1f}x"
else:
    r = new["onebit_adam"]["ratio"]
    if r < 4:
        fails.append(f"traffic ratio {r:.2f} < 4")
    extra = f"traffic ratio {r:.2f}x, resume bit-identical"
print(f"{mode}: baseline {a0:.4f}, compressed {a1:.4f}; {extra}")
for f in fails:
    print("FAIL:", f)
print(f"{'1 passed, 0 failed' if not fails else '0 passed, 1 failed'}")
sys.exit(1 if fails else 0)
PY
