#!/usr/bin/python3
"""Plots commpress-model's predicted curves (docs/scaling.md): time per
allreduce against ranks, one panel per setting, each algorithm next to
the dense ring, the one commpress chooses marked.

    bench/plot_scaling.py MODEL.json [MODEL2.json ...] --out PNG [--title T]

Each JSON is commpress-model --json output; several files (say, 1 and 8
ranks per node) are drawn as solid and dashed lines."""
import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    data = [json.load(open(f)) for f in a.models]
    settings = []
    for d in data:
        for r in d["rows"]:
            if r["setting"] not in settings:
                settings.append(r["setting"])
    fig, axes = plt.subplots(1, len(settings), figsize=(6 * len(settings), 4.5), squeeze=False)
    styles = ["-", "--", ":"]
    for ax, s in zip(axes[0], settings):
        for d, style in zip(data, styles):
            per = d["per_node"]
            rows = [r for r in d["rows"] if r["setting"] == s]
            algos = []
            for r in rows:
                key = ("node+" if r["node_aware"] else "") + r["algorithm"]
                if key not in algos:
                    algos.append(key)
            ring = {}
            for key in algos:
                pts = [(r["ranks"], r["time_s"], r["chosen"]) for r in rows
                       if ("node+" if r["node_aware"] else "") + r["algorithm"] == key]
                for r in rows:
                    ring[r["ranks"]] = r["ring_time_s"]
                xs = [p[0] for p in pts]
                line, = ax.plot(xs, [p[1] for p in pts], style, marker=".",
                                label=f"{key} ({per}/node)")
                chosen = [p for p in pts if p[2]]
                if chosen:
                    ax.plot([p[0] for p in chosen], [p[1] for p in chosen], "o",
                            mfc="none", ms=10, color=line.get_color())
            xs = sorted(ring)
            ax.plot(xs, [ring[x] for x in xs], style, color="black", label=f"dense ring ({per}/node)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("ranks")
        ax.set_ylabel("predicted time per allreduce [s]")
        ax.set_title(f"{s} {a.title}".strip())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("commpress-model: circles mark commpress's choice")
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)


if __name__ == "__main__":
    main()
