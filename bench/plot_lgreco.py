#!/usr/bin/python3
"""L-GreCo's choices per layer over training, from bench/lgreco.sh's INFO
logs: one panel per run, one line per layer (the bytes per call its
chosen setting sends, relative to the uniform setting's), plan by plan.

    bench/plot_lgreco.py DIR [RUN...]   # reads DIR/RUN.log (default: quant-lgreco
                                        # topk-lgreco), writes DIR/plans.png
"""
import re
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LINE = re.compile(r"lgreco plan (\d+): tensor of (\d+) floats: (.+?) \(error [^,]+, (\d+) bytes; "
                  r"(.+?): error [^,]+, (\d+) bytes\)")


def plans(path):
    """{layer size: [(plan, setting, bytes / uniform bytes)]}."""
    out = {}
    for m in LINE.finditer(open(path).read()):
        plan, count, setting, b, _, u = m.groups()
        out.setdefault(int(count), []).append((int(plan), setting, int(b) / int(u)))
    return out


def main():
    d = sys.argv[1]
    runs = sys.argv[2:] or ["quant-lgreco", "topk-lgreco"]
    fig, axes = plt.subplots(1, len(runs), figsize=(11, 4), sharey=True)
    for ax, run in zip(axes, runs):
        for count, pts in sorted(plans(f"{d}/{run}.log").items()):
            xs = [p for p, _, _ in pts]
            ys = [r for _, _, r in pts]
            ax.plot(xs, ys, marker="o", label=f"{count} floats: {pts[-1][1]}")
        ax.set_title(run)
        ax.set_xlabel("plan")
        ax.set_yscale("log")
        ax.axhline(1.0, color="gray", lw=0.8)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("bytes per call / uniform setting's")
    fig.tight_layout()
    fig.savefig(f"{d}/plans.png", dpi=110)
    print(f"{d}/plans.png")


if __name__ == "__main__":
    main()
