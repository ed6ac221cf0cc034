#!/usr/bin/python3
"""Plots training runs of examples/train_fmnist.py: loss and test accuracy
against steps and against wall time (PNG), and writes a markdown table
(median step time, speedup over plain MPI, final accuracy, and the time to
reach plain MPI's final accuracy minus one point)."""
import argparse
import json

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--png", required=True)
    ap.add_argument("--markdown", required=True)
    args = ap.parse_args()
    runs = [json.load(open(p)) for p in args.runs]
    base = next((r for r in runs if r["label"] == "mpi-plain"), runs[0])
    fig, ax = plt.subplots(2, 2, figsize=(12, 8))
    for r in runs:
        steps = [e["step"] for e in r["log"]]
        wall = [e["wall_s"] for e in r["log"]]
        ax[0][0].plot(steps, [e["loss"] for e in r["log"]], label=r["label"])
        ax[0][1].plot(steps, [e["test_acc"] for e in r["log"]], label=r["label"])
        ax[1][0].plot(wall, [e["loss"] for e in r["log"]], label=r["label"])
        ax[1][1].plot(wall, [e["test_acc"] for e in r["log"]], label=r["label"])
    for a, (x, y) in zip(ax.flat, [("step", "training loss"), ("step", "test accuracy"),
                                   ("wall time [s]", "training loss"),
                                   ("wall time [s]", "test accuracy")]):
        a.set_xlabel(x)
        a.set_ylabel(y)
        a.grid(alpha=0.3)
    ax[0][1].legend(fontsize=8)
    fig.suptitle(f"Fashion-MNIST, MLP {base['params'] / 1e6:.1f}M parameters, "
                 f"{base['world']} ranks, {base['steps']} steps")
    fig.tight_layout()
    fig.savefig(args.png, dpi=110)
    # The bar: within one point of the uncompressed baseline.
    goal = base["final_test_acc"] - 0.01
    with open(args.markdown, "w") as f:
        f.write(f"| run | median step [s] | speedup vs {base['label']} | final test accuracy "
                f"| time to {goal:.3f} accuracy [s] |\n|---|---|---|---|---|\n")
        for r in runs:
            reach = next((e["wall_s"] for e in r["log"] if e["test_acc"] >= goal), None)
            f.write(f"| {r['label']} | {r['median_step_s']:.4f} | "
                    f"{base['median_step_s'] / r['median_step_s']:.2f}x | "
                    f"{r['final_test_acc']:.4f} | {reach:.1f} |\n" if reach is not None else
                    f"| {r['label']} | {r['median_step_s']:.4f} | "
                    f"{base['median_step_s'] / r['median_step_s']:.2f}x | "
                    f"{r['final_test_acc']:.4f} | - |\n")


if __name__ == "__main__":
    main()
