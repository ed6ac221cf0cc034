#!/usr/bin/python3
"""The table of bench/policy_compare.sh: per network and setting, the
medians over rounds of the run's total time and median step, the final
test accuracy, and for the auto rows the speed relative to plain and to
the best fixed setting of the same codec (plain or always), from the
medians of total time (issue 16: auto >= 0.97x plain on shared memory,
>= 0.9x the best fixed setting on the cluster).

    bench/policy_table.py DIR
"""
import glob
import json
import os
import re
import statistics
import sys


def summary_calls(d, net, label, r):
    """'plain:compressed' calls of rank 0, from the INFO summary in the
    run's log (the training JSON holds the settings, not the statistics)."""
    try:
        text = open(os.path.join(d, f"{net}-{label}-r{r}.log")).read()
    except OSError:
        return "?"
    m = re.search(r"summary rank 0: compressor \S+, (\d+) calls compressed .*?, "
                  r"(\d+) plain by the policy", text)
    return f"{m.group(2)}:{m.group(1)}" if m else "?"


def main():
    d = sys.argv[1]
    runs = {}
    for f in sorted(glob.glob(os.path.join(d, "*-r*.json"))):
        m = re.match(r"(shm|cluster)-(.+)-r(\d+)\.json$", os.path.basename(f))
        if not m:
            continue
        runs.setdefault((m.group(1), m.group(2)), []).append(json.load(open(f)))
    print("| network | setting | rounds | total [s] (median) | totals | median step [ms] "
          "| final accuracy | calls plain / compressed | x plain | x best fixed |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for net in ("shm", "cluster"):
        med = {}
        for (n, label), rs in runs.items():
            if n == net:
                med[label] = statistics.median(r["total_s"] for r in rs)
        for label in ("plain", "quant-always", "quant-auto", "topk-always", "topk-auto"):
            rs = runs.get((net, label))
            if not rs:
                continue
            calls = "/".join(summary_calls(d, net, label, r)
                             for r in range(1, len(rs) + 1)) if label != "plain" else "-"
            xp = xb = "-"
            if label.endswith("-auto") and "plain" in med:
                fixed = label.replace("-auto", "-always")
                xp = f"{med['plain'] / med[label]:.3f}x"
                if fixed in med:
                    xb = f"{min(med['plain'], med[fixed]) / med[label]:.3f}x"
            print(f"| {net} | {label} | {len(rs)} | {med[label]:.1f} | "
                  f"{', '.join('%.1f' % r['total_s'] for r in rs)} | "
                  f"{1e3 * statistics.median(r['median_step_s'] for r in rs):.1f} | "
                  f"{statistics.median(r['final_test_acc'] for r in rs):.4f} | {calls} | "
                  f"{xp} | {xb} |")


if __name__ == "__main__":
    main()
