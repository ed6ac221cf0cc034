#!/usr/bin/python3
"""Plots build/heterogeneous's JSON: optimality gap f(x) - f* against steps
(log scale) per feedback variant; writes PNG and a markdown table."""
import argparse
import json
import math

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", help="JSON files of build/heterogeneous")
    ap.add_argument("--png", required=True)
    ap.add_argument("--markdown", required=True)
    args = ap.parse_args()
    runs = [json.load(open(p)) for p in args.runs]
    fig, axes = plt.subplots(1, len(runs), figsize=(6.5 * len(runs), 4.5), squeeze=False)
    lines = ["| setting | method | gap at the end | gap at 1/4 of the steps |", "|---|---|---|---|"]
    for ax, r in zip(axes[0], runs):
        title = (f"{r['ranks']} ranks, dim {r['dim']}, top-k {r['density']:g}, lr {r['lr']:g}, "
                 f"eta {r['eta']:g}, " + (f"batch {r['batch']}" if r["batch"] else "full gradients"))
        for name, pts in r["gap"].items():
            pts = [(s, g) for s, g in pts if isinstance(g, (int, float)) and math.isfinite(g)]
            ax.semilogy([s for s, _ in pts], [max(g, 1e-12) for _, g in pts], label=name)
            quarter = min(pts, key=lambda p: abs(p[0] - r["steps"] / 4))[1] if pts else float("nan")
            end = r["gap"][name][-1][1]
            lines.append(f"| {title} | {name} | {end:.3g} | {quarter:.3g} |")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("f(x) - f*")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.png, dpi=100)
    with open(args.markdown, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
