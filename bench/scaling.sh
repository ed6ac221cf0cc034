#!/bin/bash
# Issue 17's measurements on the emulated cluster (docs/scaling.md), 25.6M
# floats at 1 Gbit/s, median of 9 per row, the settings interleaved over
# rounds:
#  - 4 hosts x 2 ranks: MPI_Allreduce through the preloaded shim, flat
#    against node-aware (COMMPRESS_HIERARCHY=node and striped), for quant
#    4 bits and topk 1%;
#  - 8 hosts x 1 rank: topk 1%, the sparse allgather against sparse_rs
#    (and auto's choice).
#
#   bench/scaling.sh [--rounds 2] [--out docs/results/scaling] [--only hier|rs]
#
# Needs root and build/ (commpress-bench, libcommpress.so). Never run it
# next to another emulated cluster (bench/cluster.sh's names are fixed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=2 out=$root/docs/results/scaling only=""
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) echo "scaling.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
n=25600000
bench=(--min-count $n --max-count $n --iters 9 --warmup 1 --rate 1gbit)
for r in $(seq 1 "$rounds"); do
  if [ "$only" != rs ]; then
    for comp in quant topk; do
      for h in flat node striped; do
        echo "== round $r: 4 hosts x 2 ranks, $comp, $h" >&2
        env COMMPRESS_COMPRESSOR=$comp COMMPRESS_BITS=4 COMMPRESS_DENSITY=0.01 \
          COMMPRESS_HIERARCHY=$h COMMPRESS_POLICY=always LD_PRELOAD="$root/build/libcommpress.so" \
          "$root/bench/cluster.sh" --hosts 4 --ranks-per-host 2 --rate 1gbit -- \
          "$root/build/commpress-bench" "${bench[@]}" --compressor shim \
          --json "$out/hier_4x2_${comp}_${h}_r$r.json"
      done
    done
  fi
  if [ "$only" != hier ]; then
    echo "== round $r: 8 hosts x 1 rank, topk 1%: sparse, sparse_rs, auto" >&2
    "$root/bench/cluster.sh" --hosts 8 --rate 1gbit -- "$root/build/commpress-bench" \
      "${bench[@]}" --compressor topk:density=0.01,allreduce_algo=sparse \
      --compressor topk:density=0.01,allreduce_algo=sparse_rs \
      --compressor topk:density=0.01 --json "$out/rs_8x1_r$r.json"
  fi
done
