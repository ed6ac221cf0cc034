#!/usr/bin/python3
"""Table and plots of bench/convergence.sh: DGC vs SGD with momentum, 1-bit
Adam vs Adam (loss and test accuracy against steps), with the compression
ratios the runs measured. Writes OUT/convergence.png and OUT/summary.md."""
import argparse
import json
import os

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--resume-identical", default="unknown")
    args = ap.parse_args()
    runs = {}
    for name in ["sgd-momentum", "dgc", "adam", "onebit-adam", "onebit-adam-resumed"]:
        p = os.path.join(args.out, name + ".json")
        if os.path.exists(p):
            runs[name] = json.load(open(p))
    fig, ax = plt.subplots(2, 2, figsize=(12, 8))
    for row, pair in enumerate([("sgd-momentum", "dgc"), ("adam", "onebit-adam")]):
        for name in pair:
            if name not in runs:
                continue
            log = runs[name]["log"]
            steps = [e["step"] for e in log]
            ax[row][0].plot(steps, [e["loss"] for e in log], label=name)
            ax[row][1].plot(steps, [e["test_acc"] for e in log], label=name)
        ax[row][0].set_ylabel("training loss (one batch)")
        ax[row][1].set_ylabel("test accuracy")
        for a in ax[row]:
            a.set_xlabel("step")
            a.legend()
            a.grid(alpha=0.3)
    fig.suptitle("Fashion-MNIST, MLP 784-2048-1024-10 (GELU), 4 ranks")
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "convergence.png"), dpi=100)

    lines = ["| run | final test accuracy | vs baseline (points) | traffic ratio | notes |",
             "|---|---|---|---|---|"]

    def row(name, base, ratio, note):
        r = runs.get(name)
        if r is None:
            return
        acc = r["final_test_acc"]
        diff = "" if base is None else f"{100 * (acc - runs[base]['final_test_acc']):+.2f}"
        lines.append(f"| {name} | {acc:.4f} | {diff} | {ratio} | {note} |")

    row("sgd-momentum", None, "1 (exact)", "SGD momentum 0.9, lr 0.05")
    if "dgc" in runs:
        s = runs["dgc"]["commpress_stats"]
        w = runs["dgc"]["commpress_stats_after_warmup"]
        row("dgc", "sgd-momentum",
            f"after warm-up: {w['ratio_sparse']:.0f}x on the sparsified tensors, "
            f"{w['ratio_all']:.1f}x on all gradients; whole run {s['ratio_all']:.1f}x",
            f"density 0.001 after {runs['dgc']['commpress']['COMMPRESS_DGC_WARMUP_STEPS']} "
            f"warm-up steps; SGD without momentum; biases and the 10x1024 layer dense")
    row("adam", None, "1 (exact)", "torch.optim.Adam, lr 0.001")
    if "onebit-adam" in runs:
        s = runs["onebit-adam"]["onebit_adam"]
        row("onebit-adam", "adam", f"{s['ratio']:.2f}x (warm-up included)",
            f"freeze at step {runs['onebit-adam']['freeze_step']}; "
            f"{s['steps_compressed']} of {s['steps']} steps compressed")
    if "onebit-adam-resumed" in runs:
        row("onebit-adam-resumed", "adam", "",
            f"resumed at step {runs['onebit-adam-resumed']['resumed_from']}; final "
            f"parameters bit-identical to the uninterrupted run: {args.resume_identical}")
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
