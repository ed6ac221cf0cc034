#!/bin/bash
# COMMPRESS_POLICY=auto against plain MPI and the fixed settings it chooses
# between (docs/policy.md, issue 16's goals): examples/train_fmnist.py
# (the MLP, mpi4py's fused allreduce) on 4 ranks, without an emulated
# network (shared memory) and on bench/cluster.sh's 4 hosts at 1 Gbit/s,
# every setting once per round, interleaved, then a table of medians:
#
#   bench/policy_compare.sh [--rounds 2] [--steps 300] [--out DIR] [--nets "shm cluster"]
#
# Needs root, build/libcommpress.so, python3-torch, python3-mpi4py and
# dataset-fashion-mnist (scripts/install-bench-deps.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=2 steps=300 out=$root/docs/results/policy/compare nets="shm cluster"
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --nets) nets=$2; shift 2 ;;
    *) echo "policy_compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
lib=$root/build/libcommpress.so
[ -f "$lib" ] || { echo "policy_compare.sh: build first (scripts/build.sh)" >&2; exit 2; }
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Settings: label and environment (plain: nothing preloaded).
settings=(
  "plain|"
  "quant-always|COMMPRESS_COMPRESSOR=quant COMMPRESS_BITS=4 COMMPRESS_POLICY=always"
  "quant-auto|COMMPRESS_COMPRESSOR=quant COMMPRESS_BITS=4 COMMPRESS_POLICY=auto"
  "topk-always|COMMPRESS_COMPRESSOR=topk COMMPRESS_DENSITY=0.01 COMMPRESS_POLICY=always"
  "topk-auto|COMMPRESS_COMPRESSOR=topk COMMPRESS_DENSITY=0.01 COMMPRESS_POLICY=auto"
)
run() { # net label env round
  local net=$1 label=$2 vars=$3 r=$4 pre=()
  local args=(/usr/bin/python3 "$root/examples/train_fmnist.py" --mode mpi
              --steps "$steps" --label "$label" --out "$out/$net-$label-r$r.json")
  [ -n "$vars" ] && pre=(env LD_PRELOAD="$lib" COMMPRESS_DEBUG=INFO $vars)
  echo "== round $r $net $label" >&2
  if [ "$net" = shm ]; then
    local x=()
    for v in $vars; do x+=(-x "$v"); done
    [ -n "$vars" ] && x+=(-x LD_PRELOAD="$lib" -x COMMPRESS_DEBUG=INFO)
    OMPI_MCA_btl_vader_single_copy_mechanism=none mpirun -np 4 --oversubscribe \
      --bind-to none "${x[@]}" "${args[@]}" > "$out/$net-$label-r$r.log" 2>&1
  else
    "${pre[@]}" "$root/bench/cluster.sh" --hosts 4 --rate 1gbit -- "${args[@]}" \
      > "$out/$net-$label-r$r.log" 2>&1
  fi
}
for r in $(seq "$rounds"); do
  for net in $nets; do
    for s in "${settings[@]}"; do
      run "$net" "${s%%|*}" "${s#*|}" "$r"
    done
  done
done
/usr/bin/python3 "$root/bench/policy_table.py" "$out" | tee "$out/table.md"
