#!/bin/bash
# LSH-MoE's training evidence (docs/moe.md): examples/moe_fmnist.py (a small
# MoE on Fashion-MNIST, one expert per rank, top-1 gate, capacity 1.5) on an
# emulated cluster, the all-to-all through commpress's explicit API:
# uncompressed (every token row) against 2, 4, 6 and 8 hash functions, with
# and without the residual compensation. Per run: the rows and bytes the
# all-to-alls sent, the final test accuracy, the median step.
#
#   bench/moe_train.sh [--hosts 4] [--rate 1gbit] [--steps 1000] [--batch 256]
#                      [--hashes "2 4 6 8"] [--seeds "0"] [--out DIR]
#
# Runs are interleaved seed by seed (uncompressed, then each setting).
# Needs root, build/libcommpress.so, and Debian's python3-torch,
# python3-mpi4py, python3-matplotlib and dataset-fashion-mnist. Writes
# DIR/<label>.json and DIR/<label>.log, then the table (bench/moe_table.py,
# also DIR/table.md) and the plot DIR/moe.png.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
hosts=4 rate=1gbit steps=1000 batch=256 hashes="2 4 6 8" seeds=0
out=$root/docs/results/moe/train
while [ $# -gt 0 ]; do
  case $1 in
    --hosts) hosts=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --hashes) hashes=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "moe_train.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -f "$root/build/libcommpress.so" ] || { echo "moe_train.sh: build first (scripts/build.sh)" >&2; exit 2; }
mkdir -p "$out"
run() {
  local label=$1 seed=$2 try; shift 2
  echo "== $label" >&2
  # Open MPI's launch into the namespaces now and then fails to connect
  # ("unable to complete a TCP connection"): such a run is tried again.
  for try in 1 2 3; do
    "$root/bench/cluster.sh" --hosts "$hosts" --rate "$rate" -- /usr/bin/python3 \
      "$root/examples/moe_fmnist.py" --steps "$steps" --batch "$batch" \
      --eval-every $((steps / 4)) --seed "$seed" --out "$out/$label.json" "$@" \
      > "$out/$label.log" 2>&1 && return 0
    grep -q "unable to complete a TCP connection" "$out/$label.log" || break
    echo "   launch failed to connect; again ($try)" >&2
  done
  tail -20 "$out/$label.log"; exit 1
}
# Labels: plain | lsh<L> | lsh<L>-nocomp, then -s<seed> for seeds other than 0.
runs=()
for seed in $seeds; do
  ss=; [ "$seed" != 0 ] && ss=-s$seed
  run "plain$ss" "$seed" --hashes 0; runs+=("plain$ss")
  for L in $hashes; do
    run "lsh$L$ss" "$seed" --hashes "$L"; runs+=("lsh$L$ss")
    run "lsh$L-nocomp$ss" "$seed" --hashes "$L" --no-compensate; runs+=("lsh$L-nocomp$ss")
  done
done
/usr/bin/python3 "$root/bench/moe_table.py" "$out" "${runs[@]}" | tee "$out/table.md"
