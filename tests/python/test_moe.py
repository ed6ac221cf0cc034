#!/usr/bin/python3
"""commpress.lsh_moe under mpirun (2+ ranks): torch autograd through the
explicit LSH-MoE API gives, for a nonlinear expert, the gradient the
library's rule defines, checked against finite differences of the loss
(float64 loss of the float32 forward); and an identity expert gives the
tokens back (compensation)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from mpi4py import MPI  # noqa: E402

import commpress  # noqa: E402

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
fails = 0


def check(cond, what):
    global fails
    if not cond:
        fails += 1
        print(f"rank {rank} FAIL: {what}", file=sys.stderr)


d, per = 16, 30
rng = np.random.default_rng(5 + rank)
centres = rng.standard_normal((4, d)).astype(np.float32)
x_np = (centres[np.arange(per * size) % 4] + 1e-2 * rng.standard_normal((per * size, d))).astype(np.float32)
counts = [per] * size
moe = commpress.MoEComm(comm, hidden=d, hashes=6, max_fraction=0.9)

# Identity expert: the tokens come back (centroid + residual).
y = commpress.lsh_moe(torch.from_numpy(x_np), counts, lambda z: z, moe)
check(np.allclose(y.numpy(), x_np, atol=1e-5), "identity expert: tokens not restored")
st = moe.stats()
check(size == 1 or st["rows_sent"] * 4 < st["rows"], f"stats {st}")

torch.manual_seed(3)  # the same expert on every rank
expert = torch.nn.Sequential(torch.nn.Linear(d, d), torch.nn.Tanh()).double()
w = torch.from_numpy(rng.standard_normal((per * size, d)))


def loss(x):
    y = commpress.lsh_moe(x, counts, lambda z: expert(z.double()).float(), moe)
    return comm.allreduce(float((w * y.double()).sum()))


x = torch.from_numpy(x_np.copy()).requires_grad_(True)
y = commpress.lsh_moe(x, counts, lambda z: expert(z.double()).float(), moe)
(w * y.double()).sum().backward()
grad = x.grad.numpy().copy()
worst = 0.0
for owner in range(size):
    for k in range(3):
        t, i = (k * 11 + owner) % (per * size), (k * 5) % d
        vals = []
        for sgn in (1, -1):
            xp = x_np.copy()
            if rank == owner:
                xp[t, i] += sgn * 1e-2
            vals.append(loss(torch.from_numpy(xp)))
        fd = (vals[0] - vals[1]) / 2e-2
        an = comm.bcast(float(grad[t, i]) if rank == owner else None, root=owner)
        worst = max(worst, abs(fd - an) / (abs(fd) + 1e-2))
check(worst < 2e-2, f"autograd vs finite differences: {worst:.3g}")
fails = comm.allreduce(fails)
if rank == 0:
    print(f"autograd through lsh_moe: finite differences within {worst:.2g}")
    print(f"{0 if fails else 1} passed, {fails} failed")
sys.exit(1 if fails else 0)
