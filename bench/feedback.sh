#!/bin/bash
# The error-feedback comparison of docs/feedback.md: heterogeneous least
# squares (build/heterogeneous) on 4 ranks, top-k 1%, full gradients and
# mini-batches of 50 rows; then the plot and the table.
#   bench/feedback.sh [--out DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/docs/results/feedback
[ "${1:-}" = "--out" ] && out=$2
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
run() { mpirun -np 4 --oversubscribe --bind-to none "$root/build/heterogeneous" "$@"; }
run --steps 6000 --every 100 --lr 0.05 --eta 0.01 --json "$out/full.json"
run --steps 6000 --every 100 --lr 0.005 --eta 0.01 --batch 50 --json "$out/batch50.json"
/usr/bin/python3 "$root/examples/plot_feedback.py" "$out/full.json" "$out/batch50.json" \
  --png "$out/feedback.png" --markdown "$out/summary.md"
