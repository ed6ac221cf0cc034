#!/bin/bash
# L-GreCo's evidence (docs/lgreco.md): Fashion-MNIST on a small CNN (layers
# of 416 to 131k parameters) on an emulated cluster, for quant and topk,
# the uniform setting vs COMMPRESS_ADAPT=lgreco at alpha 1: bytes per step,
# final accuracy, time per step.
#
#   bench/lgreco.sh [--hosts 4] [--rate 1gbit] [--steps 600] [--every 100]
#                   [--alpha 1] [--only topk] [--seeds "0"] [--bucket per-tensor]
#                   [--out DIR]
#
# --seeds runs every configuration once per seed (initial weights and data
# order; 0 is the fixed default), interleaved: seed by seed, uniform then
# lgreco. --bucket fused trains with one fused buffer whose layout is
# registered (commpress.register_layout), so the layers are its segments;
# --bucket fused-whole with the same buffer and no layout (one layer).
# Needs root, build/libcommpress.so, and Debian's python3-torch,
# python3-mpi4py and dataset-fashion-mnist. Writes DIR/<label>.json (the
# training log with commpress's statistics) and DIR/<label>.log (the INFO
# lines with every plan), then prints the table: per configuration the
# median over seeds, and lgreco against uniform seed by seed.
set -euo pipefail
# The documented runs compress every call they can (docs/policy.md: auto
# would time each size class and may run some plain).
export COMMPRESS_POLICY=${COMMPRESS_POLICY:-always}
root=$(cd "$(dirname "$0")/.." && pwd)
hosts=4 rate=1gbit steps=600 every=100 alpha=1 only= seeds=0 bucket=per-tensor
out=$root/docs/results/lgreco
while [ $# -gt 0 ]; do
  case $1 in
    --hosts) hosts=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --every) every=$2; shift 2 ;;
    --alpha) alpha=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --bucket) bucket=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "lgreco.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
case $bucket in per-tensor|fused|fused-whole) ;;
  *) echo "lgreco.sh: --bucket per-tensor|fused|fused-whole" >&2; exit 2 ;; esac
layout=; [ "$bucket" = fused ] && layout=--layout
tbucket=${bucket%-whole} # train_fmnist.py's
lib=$root/build/libcommpress.so
[ -f "$lib" ] || { echo "lgreco.sh: build first (scripts/build.sh)" >&2; exit 2; }
mkdir -p "$out"
run() {
  local label=$1 seed=$2 try; shift 2
  echo "== $label" >&2
  # Open MPI's launch into the namespaces now and then fails to connect
  # ("unable to complete a TCP connection"): such a run is tried again.
  for try in 1 2 3; do
    env "$@" COMMPRESS_MIN_BYTES=0 COMMPRESS_DEBUG=INFO LD_PRELOAD="$lib" \
      "$root/bench/cluster.sh" --hosts "$hosts" --rate "$rate" -- /usr/bin/python3 \
      "$root/examples/train_fmnist.py" --model cnn --bucket "$tbucket" $layout --steps "$steps" \
      --eval-every $((steps / 6)) --seed "$seed" --label "$label" --out "$out/$label.json" \
      > "$out/$label.log" 2>&1 && return 0
    grep -q "unable to complete a TCP connection" "$out/$label.log" || break
    echo "   launch failed to connect; again ($try)" >&2
  done
  tail -20 "$out/$label.log"; exit 1
}
adapt=(COMMPRESS_ADAPT=lgreco COMMPRESS_ADAPT_EVERY=$every COMMPRESS_ADAPT_WINDOW=10
       COMMPRESS_ADAPT_ALPHA=$alpha)
# Labels: <family>-<uniform|lgreco>[-fused][-alpha<A>][-s<seed>]
sfx() { local s=; [ "$bucket" != per-tensor ] && s+=-$bucket; [ "$1" = lgreco ] && [ "$alpha" != 1 ] && s+=-alpha${alpha/./}; echo "$s"; }
runs=()
for seed in $seeds; do
  ss=; [ "$seed" != 0 ] && ss=-s$seed
  for fam in quant topk; do
    [ -n "$only" ] && [ "$only" != "$fam" ] && continue
    [ $fam = quant ] && set_=(COMMPRESS_COMPRESSOR=quant COMMPRESS_BITS=4) ||
      set_=(COMMPRESS_COMPRESSOR=topk COMMPRESS_DENSITY=0.01)
    u=$fam-uniform$(sfx uniform)$ss l=$fam-lgreco$(sfx lgreco)$ss
    # A uniform run already there is reused when only one family is asked.
    [ -f "$out/$u.json" ] && [ -n "$only" ] || run "$u" "$seed" "${set_[@]}"
    run "$l" "$seed" "${set_[@]}" "${adapt[@]}"
    runs+=("$u" "$l")
  done
done
/usr/bin/python3 "$root/bench/lgreco_table.py" "$out" "${runs[@]}"
