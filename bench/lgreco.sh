#!/bin/bash
# L-GreCo's evidence (docs/lgreco.md): Fashion-MNIST on a small CNN (layers
# of 416 to 131k parameters, each allreduced on its own) on an emulated
# cluster, for quant and topk, the uniform setting vs COMMPRESS_ADAPT=lgreco
# at alpha 1: bytes per step, final accuracy, time per step.
#
#   bench/lgreco.sh [--hosts 4] [--rate 1gbit] [--steps 600] [--every 100]
#                   [--alpha 1] [--only topk] [--out DIR]
#
# Needs root, build/libcommpress.so, and Debian's python3-torch,
# python3-mpi4py and dataset-fashion-mnist. Writes DIR/<label>.json (the
# training log with commpress's statistics) and DIR/<label>.log (the INFO
# lines with every plan), then prints the table.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
hosts=4 rate=1gbit steps=600 every=100 alpha=1 only= out=$root/docs/results/lgreco
while [ $# -gt 0 ]; do
  case $1 in
    --hosts) hosts=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --every) every=$2; shift 2 ;;
    --alpha) alpha=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "lgreco.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
lib=$root/build/libcommpress.so
[ -f "$lib" ] || { echo "lgreco.sh: build first (scripts/build.sh)" >&2; exit 2; }
mkdir -p "$out"
run() {
  local label=$1; shift
  echo "== $label" >&2
  env "$@" COMMPRESS_MIN_BYTES=0 COMMPRESS_DEBUG=INFO LD_PRELOAD="$lib" \
    "$root/bench/cluster.sh" --hosts "$hosts" --rate "$rate" -- /usr/bin/python3 \
    "$root/examples/train_fmnist.py" --model cnn --bucket per-tensor --steps "$steps" \
    --eval-every $((steps / 6)) --label "$label" --out "$out/$label.json" \
    > "$out/$label.log" 2>&1 || { tail -20 "$out/$label.log"; exit 1; }
}
adapt=(COMMPRESS_ADAPT=lgreco COMMPRESS_ADAPT_EVERY=$every COMMPRESS_ADAPT_WINDOW=10
       COMMPRESS_ADAPT_ALPHA=$alpha)
runs=()
for fam in quant topk; do
  [ -n "$only" ] && [ "$only" != "$fam" ] && continue
  [ $fam = quant ] && set_=(COMMPRESS_COMPRESSOR=quant COMMPRESS_BITS=4) ||
    set_=(COMMPRESS_COMPRESSOR=topk COMMPRESS_DENSITY=0.01)
  [ -f "$out/$fam-uniform.json" ] && [ -n "$only" ] || run $fam-uniform "${set_[@]}"
  run $fam-lgreco "${set_[@]}" "${adapt[@]}"
  runs+=($fam-uniform $fam-lgreco)
done
/usr/bin/python3 - "$out" "${runs[@]}" <<'PY'
import json, sys, os
out = sys.argv[1]
print("| run | bytes sent per step (rank 0) | uniform setting's | final test accuracy | time per step (ms) | plans |")
print("|---|---|---|---|---|---|")
for label in sys.argv[2:]:
    d = json.load(open(os.path.join(out, label + ".json")))
    st, steps = d.get("commpress_stats", {}), d["steps"]
    print(f"| {label} | {st.get('bytes_sent', 0) / steps:.0f} | {st.get('bytes_sent_uniform', 0) / steps:.0f} "
          f"| {d['final_test_acc']:.4f} | {1e3 * d['median_step_s']:.1f} | {st.get('adapt_plans', 0)} |")
PY
