#!/bin/bash
# Trains the same model on the same data on an emulated cluster with every
# method, one run each, then plots and tabulates them:
#   plain MPI (mpi4py, Horovod-style fused allreduce), the same program with
#   commpress preloaded (several settings), and PyTorch DDP over gloo with
#   no hook, the fp16 hook, the PowerSGD hook and commpress.torch's hook
#   (quant 4 bits, topk 1%; no MPI in their exchange). DGC (COMPRESSOR=dgc) runs
#   the optimizer without momentum: DGC applies it before compressing.
#
#   bench/train_compare.sh [--hosts 4] [--rate 1gbit] [--steps 300] [--out DIR] [--shm]
#                          [--only REGEX]
#
# --only runs the rows whose label matches REGEX (grep -E) and tabulates
# every run in DIR.
#
# --shm runs the same rows on one machine without an emulated network
# (mpirun -np HOSTS, ranks talk through shared memory). The *-auto rows
# run with COMMPRESS_POLICY=auto (docs/policy.md); every other commpress
# row compresses every call it can (always).
#
# Needs root, build/libcommpress.so, and Debian's python3-torch,
# python3-mpi4py, python3-matplotlib and dataset-fashion-mnist
# (scripts/install-bench-deps.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
hosts=4 rate=1gbit steps=300 out=$root/docs/results/train shm=0 only=.
while [ $# -gt 0 ]; do
  case $1 in
    --hosts) hosts=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --shm) shm=1; shift ;;
    --only) only=$2; shift 2 ;;
    *) echo "train_compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
lib=$root/build/libcommpress.so
[ -f "$lib" ] || { echo "train_compare.sh: build first (scripts/build.sh)" >&2; exit 2; }
mkdir -p "$out"
# run LABEL [VAR=VALUE ...] -- ARGS: one training run, the variables set
# for every rank (LD_PRELOAD among them for the commpress rows).
run() {
  local label=$1 vars=() x=(); shift
  while [ "$1" != -- ]; do vars+=("$1"); shift; done
  shift
  grep -qE -- "$only" <<<"$label" || return 0
  echo "== $label" >&2
  local args=(/usr/bin/python3 "$root/examples/train_fmnist.py" --steps "$steps"
              --label "$label" --out "$out/$label.json" "$@")
  if [ "$shm" = 1 ]; then
    for v in "${vars[@]}"; do x+=(-x "$v"); done
    OMPI_MCA_btl_vader_single_copy_mechanism=none mpirun -np "$hosts" --oversubscribe \
      --bind-to none "${x[@]}" "${args[@]}" --master 127.0.0.1:29517
  else
    env "${vars[@]}" "$root/bench/cluster.sh" --hosts "$hosts" --rate "$rate" -- "${args[@]}"
  fi
}
# The fixed rows compress every call they can; the -auto rows let the
# policy decide per size class (docs/policy.md).
always=(COMMPRESS_POLICY=always LD_PRELOAD=$lib)
auto=(COMMPRESS_POLICY=auto COMMPRESS_DEBUG=INFO LD_PRELOAD=$lib)
run "mpi-plain" -- --mode mpi
run "commpress-topk-1%" "${always[@]}" COMMPRESS_COMPRESSOR=topk COMMPRESS_DENSITY=0.01 -- --mode mpi
run "commpress-topk-1%-auto" "${auto[@]}" COMMPRESS_COMPRESSOR=topk COMMPRESS_DENSITY=0.01 -- \
  --mode mpi
# DGC keeps the momentum itself (momentum correction), so the optimizer runs
# without it; density 1% after a 30-step warm-up (docs/dgc.md).
run "commpress-dgc-1%" "${always[@]}" COMMPRESS_COMPRESSOR=dgc COMMPRESS_DENSITY=0.01 \
  COMMPRESS_DGC_WARMUP_STEPS=30 -- --mode mpi --momentum 0
run "commpress-sign" "${always[@]}" COMMPRESS_COMPRESSOR=sign -- --mode mpi
run "commpress-quant-4bit" "${always[@]}" COMMPRESS_COMPRESSOR=quant COMMPRESS_BITS=4 -- --mode mpi
run "commpress-quant-4bit-auto" "${auto[@]}" COMMPRESS_COMPRESSOR=quant COMMPRESS_BITS=4 -- \
  --mode mpi
run "ddp" -- --mode ddp
run "ddp-fp16-hook" -- --mode ddp-fp16
run "ddp-powersgd-hook" -- --mode ddp-powersgd
run "ddp-commpress-quant-4bit-hook" -- --mode ddp-commpress-quant
run "ddp-commpress-topk-1%-hook" -- --mode ddp-commpress-topk
/usr/bin/python3 "$root/examples/plot_training.py" --png "$out/training.png" \
  --markdown "$out/summary.md" "$out"/*.json
cat "$out/summary.md"
