#!/usr/bin/python3
"""Checks commpress-bench output: well-formed JSON with sane values.

check_bench.py sweep FILE RANKS CODEC...   rows of the allreduce sweep
check_bench.py kernels FILE CODEC...       rows of --kernels

CODEC...: every codec of the registry (commpress-info --codecs); the
bench's default list must cover them all.
"""
import json
import sys

FLT_EPSILON = 1.1920929e-07
# COMMPRESS_DGC_DENSE_BELOW's default: dgc sends smaller tensors dense.
DGC_DENSE_BELOW = 16384
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def sweep(path, ranks, codecs):
    rows = json.load(open(path))
    check(isinstance(rows, list) and rows, "a non-empty list")
    keys = {"compressor", "count", "ranks", "time_s", "baseline_time_s", "speedup",
            "bytes_sent", "ratio", "relerr", "identical"}
    names = set()
    for r in rows:
        check(keys <= set(r), f"keys missing in {r}")
        name, n = r["compressor"], r["count"]
        names.add(name.split(":")[0])
        check(r["ranks"] == ranks, f"{name} {n}: ranks {r['ranks']}")
        check(r["time_s"] > 0 and r["baseline_time_s"] > 0, f"{name} {n}: times")
        check(abs(r["speedup"] - r["baseline_time_s"] / r["time_s"]) <= 1e-3 * r["speedup"],
              f"{name} {n}: speedup is not baseline / time")
        check(r["identical"] is True, f"{name} {n}: ranks got different bits")
        # The exchange alone: timed for every row; for none it is the call.
        check(r["exchange_s"] > 0, f"{name} {n}: exchange_s {r.get('exchange_s')}")
        if name == "none":
            check(r["exchange_s"] == r["time_s"], f"none {n}: exchange is not the call")
        if r.get("rate_bits", 0) > 0:  # --rate: the wire's time and the fraction reached
            lim = 8 * r["bytes_sent"] / r["rate_bits"]
            check(abs(r["limit_s"] - lim) <= 1e-6 * lim, f"{name} {n}: limit is not bytes / rate")
            check(abs(r["fraction_of_limit"] - lim / r["time_s"]) <= 1e-3 * r["fraction_of_limit"],
                  f"{name} {n}: fraction is not limit / time")
        plain = 2 * (ranks - 1) / ranks * 4 * n
        check(abs(r["ratio"] - plain / r["bytes_sent"]) <= 1e-3 * r["ratio"],
              f"{name} {n}: ratio is not plain bytes / bytes sent")
        if name == "dgc" and n < DGC_DENSE_BELOW:
            # Sent dense by design: the plain bytes plus the slot headers.
            check(0.9 < r["ratio"] <= 1, f"dgc {n}: ratio {r['ratio']} (dense)")
            check(r["relerr"] <= ranks * FLT_EPSILON, f"dgc {n}: relerr {r['relerr']}")
        elif name == "none":
            check(r["ratio"] == 1, f"none {n}: ratio {r['ratio']}")
            # fp32 sums against the exact (double) sum: at most (ranks - 1)
            # roundings of eps/2 relative each, bounded by ranks * eps.
            check(r["relerr"] <= ranks * FLT_EPSILON, f"none {n}: relerr {r['relerr']}")
        else:
            check(r["ratio"] > 1, f"{name} {n}: ratio {r['ratio']} <= 1")
            check(0 <= r["relerr"] < 10, f"{name} {n}: relerr {r['relerr']}")
    check(set(codecs) <= names, f"codecs missing: {set(codecs) - names}")


def kernels(path, codecs):
    rows = json.load(open(path))
    names = [r["codec"] for r in rows[1:]]
    check(rows[0]["codec"] == "memcpy" and rows[0]["gbs"] > 0, "memcpy row")
    for r in rows[1:]:
        for k in ("encode_gbs", "encode_vs_memcpy", "decode_gbs", "decode_vs_memcpy"):
            check(r.get(k, 0) > 0, f"{r.get('codec')}: {k}")
    # Every codec but the identity at its defaults, then three variations.
    want = [c for c in codecs if c != "none"]
    check(names[:len(want)] == want, f"codec rows {names}, want {want} first")
    check(names[len(want):] == ["quant:bits=8", "quant:bits=2", "topk:density=0.001"],
          f"variation rows {names[len(want):]}")


if sys.argv[1] == "sweep":
    sweep(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
else:
    kernels(sys.argv[2], sys.argv[3:])
for f in failures:
    print("FAIL", f)
print(f"{0 if failures else 1} passed, {1 if failures else 0} failed")
sys.exit(1 if failures else 0)
