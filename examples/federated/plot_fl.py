#!/usr/bin/python3
"""Plots examples/federated/fl_fmnist.py's JSON: test accuracy against
rounds and against uplink bytes; writes PNG and a markdown table."""
import argparse
import json

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("json")
    ap.add_argument("--png", required=True)
    ap.add_argument("--markdown", required=True)
    args = ap.parse_args()
    d = json.load(open(args.json))
    fig, ax = plt.subplots(1, 2, figsize=(13, 4.5))
    lines = ["| method | final test accuracy | uplink (MB) | less than dense fp32 |",
             "|---|---|---|---|"]
    for name, r in d["methods"].items():
        log = r["log"]
        ax[0].plot([e["round"] for e in log], [e["test_acc"] for e in log], label=name)
        ax[1].semilogx([max(e["uplink_bytes"], 1) / 1e6 for e in log[1:]],
                       [e["test_acc"] for e in log[1:]], label=name)
        lines.append(f"| {name} | {r['final_test_acc']:.4f} | {r['uplink_bytes'] / 1e6:.2f} | "
                     f"{r['uplink_ratio']:.1f}x |")
    ax[0].set_xlabel("round")
    ax[1].set_xlabel("uplink MB (all clients, cumulative)")
    for a in ax:
        a.set_ylabel("test accuracy")
        a.set_ylim(0.6, 0.87)
        a.grid(alpha=0.3)
        a.legend()
    fig.suptitle(f"Fashion-MNIST, 2-class shards, N={d['clients']}, S={d['sampled']}, "
                 f"K={d['local_steps']}, softmax regression")
    fig.tight_layout()
    fig.savefig(args.png, dpi=100)
    with open(args.markdown, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
