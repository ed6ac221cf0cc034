#!/bin/bash
# Convergence evidence for DGC and 1-bit Adam (docs/convergence.md): the
# same model and data, 4 ranks on this machine (no network shaping: this is
# about accuracy and bytes, not time), fixed seeds:
#   sgd-momentum   SGD with momentum 0.9, exact allreduce per tensor
#   dgc            the same program with COMMPRESS_COMPRESSOR=dgc preloaded:
#                  density 0.001 after a warm-up, SGD without momentum
#   adam           torch.optim.Adam, exact allreduce
#   onebit-adam    commpress.OneBitAdam, freeze after 15% of the steps,
#                  saving a checkpoint halfway
#   onebit-adam-resumed  the same, resumed from that checkpoint
# then the plots, the table, and a bit-for-bit comparison of the final
# parameters of the uninterrupted and the resumed 1-bit Adam runs.
#
#   bench/convergence.sh [--steps 1500] [--np 4] [--out DIR]
#
# Needs build/libcommpress.so and Debian's python3-torch, python3-mpi4py,
# python3-matplotlib, dataset-fashion-mnist (scripts/install-bench-deps.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
steps=1500 np=4 out=$root/docs/results/convergence
while [ $# -gt 0 ]; do
  case $1 in
    --steps) steps=$2; shift 2 ;;
    --np) np=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "convergence.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
lib=$root/build/libcommpress.so
[ -f "$lib" ] || { echo "convergence.sh: build first (scripts/build.sh)" >&2; exit 2; }
mkdir -p "$out"
ck=$(mktemp -d)
trap 'rm -rf "$ck"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
warm=$((steps / 5)) freeze=$((steps * 15 / 100)) half=$((steps / 2))
common=(--act gelu --steps "$steps" --eval-every $((steps / 15)))
run() {
  local label=$1; shift
  echo "== $label" >&2
  mpirun -np "$np" --oversubscribe --bind-to none "$@" --label "$label" \
    --out "$out/$label.json"
}
py=(/usr/bin/python3 "$root/examples/train_fmnist.py" "${common[@]}")
run sgd-momentum "${py[@]}" --bucket per-tensor --lr 0.05 --momentum 0.9
# Every gradient goes through DGC (MIN_BYTES=0: the script reduces nothing
# else), so the biases get DGC's momentum too, sent dense.
run dgc -x LD_PRELOAD="$lib" -x COMMPRESS_POLICY=always -x COMMPRESS_COMPRESSOR=dgc -x COMMPRESS_DENSITY=0.001 \
  -x COMMPRESS_DGC_WARMUP_STEPS=$warm -x COMMPRESS_MIN_BYTES=0 \
  "${py[@]}" --bucket per-tensor --lr 0.05 --momentum 0
run adam "${py[@]}" --optimizer adam --lr 0.001
run onebit-adam "${py[@]}" --optimizer onebit-adam --lr 0.001 --freeze-step $freeze \
  --save-at $half --ckpt "$ck/ck.%r" --final-params "$out/onebit-adam.params.npy"
run onebit-adam-resumed "${py[@]}" --optimizer onebit-adam --lr 0.001 \
  --freeze-step $freeze --resume "$ck/ck.%r" --final-params "$ck/resumed.npy"
if cmp -s "$out/onebit-adam.params.npy" "$ck/resumed.npy"; then same=true; else same=false; fi
rm -f "$out/onebit-adam.params.npy"
echo "resumed run bit-identical: $same" | tee "$out/resume.txt"
/usr/bin/python3 "$root/examples/plot_convergence.py" --out "$out" --resume-identical "$same"
