#!/bin/bash
# Trains the same model on the same data on an emulated cluster with every
# method, one run each, then plots and tabulates them:
#   plain MPI (mpi4py, Horovod-style fused allreduce), the same program with
#   commpress preloaded (several settings), and PyTorch DDP over gloo with
#   no hook, the fp16 hook and the PowerSGD hook. DGC (COMPRESSOR=dgc) runs
#   the optimizer without momentum: DGC applies it before compressing.
#
#   bench/train_compare.sh [--hosts 4] [--rate 1gbit] [--steps 300] [--out DIR]
#
# Needs root, build/libcommpress.so, and Debian's python3-torch,
# python3-mpi4py, python3-matplotlib and dataset-fashion-mnist
# (scripts/install-bench-deps.sh).
set -euo pipefail
# The documented runs compress every call they can (docs/policy.md: auto
# would time each size class and may run some plain).
export COMMPRESS_POLICY=${COMMPRESS_POLICY:-always}
root=$(cd "$(dirname "$0")/.." && pwd)
hosts=4 rate=1gbit steps=300 out=$root/docs/results/train
while [ $# -gt 0 ]; do
  case $1 in
    --hosts) hosts=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "train_compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
lib=$root/build/libcommpress.so
[ -f "$lib" ] || { echo "train_compare.sh: build first (scripts/build.sh)" >&2; exit 2; }
mkdir -p "$out"
run() {
  local label=$1; shift
  echo "== $label" >&2
  "$root/bench/cluster.sh" --hosts "$hosts" --rate "$rate" -- /usr/bin/python3 \
    "$root/examples/train_fmnist.py" --steps "$steps" --label "$label" \
    --out "$out/$label.json" "$@"
}
run "mpi-plain" --mode mpi
COMMPRESS_COMPRESSOR=topk COMMPRESS_DENSITY=0.01 LD_PRELOAD=$lib run "commpress-topk-1%" --mode mpi
# DGC keeps the momentum itself (momentum correction), so the optimizer runs
# without it; density 1% after a 30-step warm-up (docs/dgc.md).
COMMPRESS_COMPRESSOR=dgc COMMPRESS_DENSITY=0.01 COMMPRESS_DGC_WARMUP_STEPS=30 LD_PRELOAD=$lib \
  run "commpress-dgc-1%" --mode mpi --momentum 0
COMMPRESS_COMPRESSOR=sign LD_PRELOAD=$lib run "commpress-sign" --mode mpi
COMMPRESS_COMPRESSOR=quant COMMPRESS_BITS=4 LD_PRELOAD=$lib run "commpress-quant-4bit" --mode mpi
run "ddp" --mode ddp
run "ddp-fp16-hook" --mode ddp-fp16
run "ddp-powersgd-hook" --mode ddp-powersgd
/usr/bin/python3 "$root/examples/plot_training.py" --png "$out/training.png" \
  --markdown "$out/summary.md" "$out"/*.json
cat "$out/summary.md"
