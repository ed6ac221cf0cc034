#!/usr/bin/python3
"""What the network carries, with no compression: MPI_Alltoall, pairwise
MPI_Sendrecv and Isend/Irecv to every peer of the same blocks, each as a
fraction of the line rate (the bytes one rank sends / the rate), median of
5. Run under bench/cluster.sh (docs/policy.md, "Close to the wire?"):

    bench/cluster.sh --hosts 4 --rate 1gbit -- /usr/bin/python3 $PWD/bench/net_ceiling.py [--rate-bits 1e9]
"""
import sys
import time

import numpy as np
from mpi4py import MPI

c = MPI.COMM_WORLD
r, n = c.rank, c.size
rate = float(sys.argv[sys.argv.index("--rate-bits") + 1]) if "--rate-bits" in sys.argv else 1e9


def med(f, k=5):
    ts = []
    for _ in range(k + 1):
        c.Barrier()
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return sorted(ts[1:])[k // 2]


for blk in (400_000, 1_600_000, 6_400_000):
    s = np.ones(blk * n, np.uint8)
    d = np.empty_like(s)

    def pairwise():
        for k in range(1, n):
            to, fr = (r + k) % n, (r - k) % n
            c.Sendrecv(s[to * blk:(to + 1) * blk], to, 0, d[fr * blk:(fr + 1) * blk], fr, 0)

    def isend_all():
        reqs = [c.Irecv(d[fr * blk:(fr + 1) * blk], fr, 0) for fr in ((r - k) % n for k in range(1, n))]
        reqs += [c.Isend(s[to * blk:(to + 1) * blk], to, 0) for to in ((r + k) % n for k in range(1, n))]
        MPI.Request.Waitall(reqs)

    t1, t2, t3 = med(lambda: c.Alltoall(s, d)), med(pairwise), med(isend_all)
    line = blk * (n - 1) * 8 / rate
    if r == 0:
        print(f"{blk / 1e6:.1f} MB per peer, line {line * 1e3:.1f} ms: Alltoall {t1 * 1e3:.1f} ms "
              f"({line / t1:.2f}), pairwise {t2 * 1e3:.1f} ({line / t2:.2f}), "
              f"isend to all {t3 * 1e3:.1f} ({line / t3:.2f})", flush=True)
b = np.ones(25_000_000, np.uint8)


def one_flow():
    if r == 0:
        c.Send(b, 1)
    elif r == 1:
        c.Recv(b, 0)


t = med(one_flow, 3)
if r == 0:
    print(f"one flow, 25 MB 0 -> 1: {t * 1e3:.1f} ms, line {25e6 * 8 / rate * 1e3:.0f} ms "
          f"({25e6 * 8 / rate / t:.2f})")
