#!/bin/bash
# The federated comparison of docs/federated.md: FedAvg, FedAvg with top-k
# 1% (no feedback), SCAFFOLD, SCALLION and SCAFCOM on Fashion-MNIST in
# 2-class shards, N = 100, S = 10, K = 10, 2000 rounds; 4 MPI ranks (a
# server and three client hosts). About a minute and a half.
#   bench/federated.sh [--rounds 2000] [--out DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=2000 out=$root/docs/results/federated
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "federated.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
mpirun -np 4 --oversubscribe --bind-to none /usr/bin/python3 \
  "$root/examples/federated/fl_fmnist.py" --rounds "$rounds" --eval-every 50 \
  --out "$out/fl.json"
/usr/bin/python3 "$root/examples/federated/plot_fl.py" "$out/fl.json" \
  --png "$out/federated.png" --markdown "$out/summary.md"
