#!/usr/bin/python3
"""The table and plot of bench/moe_train.sh: per configuration (plain,
lsh<L>, lsh<L>-nocomp) the median over seeds of the rows and bytes the
training's all-to-alls sent (against every token row), the final test
accuracy and its difference to plain seed by seed, and the median step
against plain's. Writes DIR/moe.png.

    bench/moe_table.py DIR LABEL...   (labels as bench/moe_train.sh names them)"""
import json
import os
import re
import statistics
import sys


def load(out, label):
    d = json.load(open(os.path.join(out, label + ".json")))
    return {"rows": d["rows_sent_fraction"], "bytes": d["bytes_fraction"],
            "acc": d["final_test_acc"], "step": d["median_step_s"],
            "hashes": d["hashes"], "comp": d["compensate"]}


def main():
    out, labels = sys.argv[1], sys.argv[2:]
    runs = {lb: load(out, lb) for lb in labels}
    configs = {}
    for lb in labels:
        m = re.match(r"(.*?)(-s\d+)?$", lb)
        configs.setdefault(m.group(1), {})[m.group(2) or ""] = runs[lb]
    plain = configs.get("plain", {})
    print("| configuration | seeds | rows sent | bytes sent | final test accuracy "
          "| vs plain, points (median; min..max) | median step (ms) | step vs plain |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for c, by_seed in configs.items():
        rs = list(by_seed.values())
        med = {k: statistics.median(r[k] for r in rs) for k in ("rows", "bytes", "acc", "step")}
        d = [100 * (r["acc"] - plain[s]["acc"]) for s, r in by_seed.items() if s in plain]
        st = [r["step"] / plain[s]["step"] for s, r in by_seed.items() if s in plain]
        dtxt = (f"{statistics.median(d):+.2f} ({min(d):+.2f}..{max(d):+.2f})"
                if d and c != "plain" else "")
        stxt = f"{statistics.median(st):.2f}" if st else ""
        print(f"| {c} | {len(rs)} | {100 * med['rows']:.1f}% | {100 * med['bytes']:.1f}% "
              f"| {med['acc']:.4f} | {dtxt} | {1e3 * med['step']:.1f} | {stxt} |")
        rows.append((c, rs[0]["hashes"], rs[0]["comp"], med, d))
    # Compensation: lsh<L> against lsh<L>-nocomp, seed by seed.
    pairs = [(c, configs[c], configs.get(c + "-nocomp", {})) for c in configs
             if c.startswith("lsh") and not c.endswith("-nocomp")]
    if any(nc for _, _, nc in pairs):
        print()
        print("| hashes | seeds | accuracy, compensation - none, points (median; min..max) |")
        print("|---|---|---|")
        for c, with_, without in pairs:
            d = [100 * (r["acc"] - without[s]["acc"]) for s, r in with_.items() if s in without]
            if d:
                print(f"| {c[3:]} | {len(d)} | {statistics.median(d):+.2f} "
                      f"({min(d):+.2f}..{max(d):+.2f}) |")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for comp, mark, name in ((True, "o-", "compensation"), (False, "s--", "no compensation")):
        pts = sorted((h, m) for c, h, cp, m, _ in rows if h > 0 and cp == comp)
        if not pts:
            continue
        a2.plot([h for h, _ in pts], [100 * m["rows"] for _, m in pts], mark, label=name)
        dif = sorted((h, statistics.median(d)) for c, h, cp, m, d in rows
                     if h > 0 and cp == comp and d)
        if dif:
            a1.plot([h for h, _ in dif], [v for _, v in dif], mark, label=name)
    a1.axhline(0, color="k", lw=1, label="uncompressed")
    a1.axhspan(-0.5, 0.5, color="k", alpha=0.08, label="within 0.5 points")
    a1.set_xlabel("hash functions")
    a1.set_ylabel("test accuracy - uncompressed (points, paired)")
    a1.legend()
    a2.set_xlabel("hash functions")
    a2.set_ylabel("token rows sent (% of every row)")
    a2.axhline(20, color="gray", lw=1, ls=":", label="paper: about 20% at 6")
    a2.legend()
    fig.suptitle("LSH-MoE on Fashion-MNIST, 4 ranks (median over seeds)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "moe.png"), dpi=110)


if __name__ == "__main__":
    main()
