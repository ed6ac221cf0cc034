#!/usr/bin/python3
"""Watches a job's savings from its COMMPRESS_STATS_EVERY lines
(docs/configuration.md): for each rank's JSON Lines file, the megabytes a
plain allreduce would have sent against those commpress sent, over the
job's seconds, and the ratio. Runs on a live job's files too (the lines
so far); with --text it prints the last line's figures instead of a plot.

    COMMPRESS_STATS_EVERY=100 COMMPRESS_STATS_FILE=stats.%r.jsonl mpirun ...
    examples/plot_stats.py stats.*.jsonl --out savings.png
"""
import argparse
import json


def read(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line the job is still writing
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--out", default="savings.png")
    ap.add_argument("--text", action="store_true")
    a = ap.parse_args()
    runs = [(p, read(p)) for p in a.files]
    if a.text:
        for p, rows in runs:
            if rows:
                r = rows[-1]
                print(f"{p}: rank {r['rank']}, {r['seconds']:.1f} s, "
                      f"{r['calls_compressed']} compressed + {r['calls_plain']} plain calls, "
                      f"{r['bytes_uncompressed'] / 1e6:.1f} MB as {r['bytes_sent'] / 1e6:.1f} MB "
                      f"(ratio {r['ratio']:.2f}x){' final' if r['final'] else ''}")
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for p, rows in runs:
        if not rows:
            continue
        t = [r["seconds"] for r in rows]
        label = f"rank {rows[0]['rank']}"
        ax.plot(t, [r["bytes_uncompressed"] / 1e6 for r in rows], "--", label=f"{label}: plain")
        ax.plot(t, [r["bytes_sent"] / 1e6 for r in rows], label=f"{label}: commpress")
        ax2.plot(t, [r["ratio"] for r in rows], label=label)
    ax.set_xlabel("seconds")
    ax.set_ylabel("MB put on the wire (cumulative)")
    ax.legend(fontsize=7)
    ax2.set_xlabel("seconds")
    ax2.set_ylabel("ratio (plain bytes / sent)")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)


if __name__ == "__main__":
    main()
