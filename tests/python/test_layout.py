#!/usr/bin/python3
"""commpress.register_layout under the preloaded shim (mpirun, 2+ ranks,
COMMPRESS_COMPRESSOR set): layout_offsets packs parameters as torch.cat
does; a layout that does not cover its buffer raises CommpressError -1; a
fused numpy buffer with its layout gives, bit for bit, what its layers
allreduced one by one give, on every rank."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from mpi4py import MPI  # noqa: E402

import commpress  # noqa: E402

comm = MPI.COMM_WORLD
rank = comm.Get_rank()
fails = 0


def check(cond, what):
    global fails
    if not cond:
        fails += 1
        print(f"rank {rank} FAIL: {what}", file=sys.stderr)


net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.Linear(2704, 10))
params = list(net.parameters())
off = commpress.layout_offsets(params)
check(off == [0, 36, 40, 27080, 27090], f"layout_offsets {off}")
check(commpress.layout_offsets([3, np.zeros(5), torch.zeros(2, 2)]) == [0, 3, 8, 12],
      "layout_offsets of ints, arrays, tensors")
flat = torch.cat([p.detach().view(-1) for p in params])
check(all(torch.equal(flat[off[i]:off[i + 1]], p.detach().view(-1)) for i, p in enumerate(params)),
      "offsets do not match torch.cat's packing")

sizes = [30000, 800, 50000, 12]
fused = np.zeros(sum(sizes), dtype=np.float32)
try:
    commpress.register_layout(fused, [0, 100, fused.size - 1])
    check(False, "a layout short of the buffer was taken")
except commpress.CommpressError as e:
    check(e.status == -1, f"status {e.status}")
check(commpress.register_layout(fused, commpress.layout_offsets(sizes)), "register_layout")

fc, sc = comm.Dup(), comm.Dup()
rng = np.random.default_rng(17 + rank)
off = commpress.layout_offsets(sizes)
# Stable buffers for the separate calls (numpy's fresh arrays would come
# back at alternating addresses, which the step detector reads as a step
# twice as long: docs/design.md, "Tensor identity").
sep = [np.zeros(n, dtype=np.float32) for n in sizes]
for step in range(8):
    g = (rng.standard_normal(fused.size) * np.repeat([1, 30, 0.1, 5], sizes)).astype(np.float32)
    fused[:] = g
    for i, s in enumerate(sep):
        s[:] = g[off[i]:off[i + 1]]
    fc.Allreduce(MPI.IN_PLACE, fused, op=MPI.SUM)
    for s in sep:
        sc.Allreduce(MPI.IN_PLACE, s, op=MPI.SUM)
    check(all(np.array_equal(fused[off[i]:off[i + 1]], sep[i]) for i in range(len(sizes))),
          f"step {step}: the fused buffer differs from the separate calls")
    digests = comm.allgather(fused.tobytes())
    check(all(d == digests[0] for d in digests), f"step {step}: ranks differ")
check(commpress.unregister_layout(fused), "unregister_layout")
stats = commpress.shim_stats()
check(stats is not None and stats["calls_compressed"] == 8 * (1 + len(sizes)) and
      stats["calls_fallback"] == 0, f"shim stats {stats}")
fails = comm.allreduce(fails)
if rank == 0:
    print(f"{0 if fails else 1} passed, {fails} failed")
sys.exit(1 if fails else 0)
