#!/usr/bin/python3
"""The table of bench/lgreco.sh: one row per run, then, over seeds, the
median of each configuration and lgreco against uniform seed by seed.

    bench/lgreco_table.py DIR LABEL...   (labels as bench/lgreco.sh names them)"""
import json
import os
import re
import statistics
import sys


def load(out, label):
    d = json.load(open(os.path.join(out, label + ".json")))
    st, steps = d.get("commpress_stats", {}), d["steps"]
    return {"bytes": st.get("bytes_sent", 0) / steps,
            "uniform_bytes": st.get("bytes_sent_uniform", 0) / steps,
            "acc": d["final_test_acc"], "step_ms": 1e3 * d["median_step_s"],
            "plans": st.get("adapt_plans", 0)}


def main():
    out, labels = sys.argv[1], sys.argv[2:]
    runs = {lb: load(out, lb) for lb in labels}
    print("| run | bytes sent per step (rank 0) | uniform setting's | final test accuracy "
          "| median step (ms) | plans |")
    print("|---|---|---|---|---|---|")
    for lb, r in runs.items():
        print(f"| {lb} | {r['bytes']:.0f} | {r['uniform_bytes']:.0f} | {r['acc']:.4f} "
              f"| {r['step_ms']:.1f} | {r['plans']} |")
    # Pairs: the same label with "uniform" for "lgreco", seed by seed.
    pairs = {}
    for lb in labels:
        if "-lgreco" not in lb:
            continue
        m = re.match(r"(.*?)(-s\d+)?$", lb)
        config, seed = m.group(1), m.group(2) or ""
        u = re.sub(r"-lgreco(-alpha\d+)?", "-uniform", config) + seed
        if u in runs:
            pairs.setdefault(config, []).append((runs[u], runs[lb]))
    if not pairs:
        return
    print()
    print("| configuration | seeds | bytes vs uniform (median) | accuracy, lgreco - uniform "
          "(median; min..max), points | step, lgreco / uniform (median) |")
    print("|---|---|---|---|---|")
    for config, ps in pairs.items():
        ratio = statistics.median(u["bytes"] / lg["bytes"] for u, lg in ps)
        dacc = [100 * (lg["acc"] - u["acc"]) for u, lg in ps]
        dstep = statistics.median(lg["step_ms"] / u["step_ms"] for u, lg in ps)
        print(f"| {config} | {len(ps)} | {ratio:.2f}x fewer | {statistics.median(dacc):+.2f} "
              f"({min(dacc):+.2f}..{max(dacc):+.2f}) | {dstep:.2f} |")


if __name__ == "__main__":
    main()
