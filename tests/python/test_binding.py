#!/usr/bin/python3
"""python/commpress under mpirun: the ctypes binding reaches the C optimizer,
reports errors as CommpressError with the status, and OneBitAdam's
state_dict round trip resumes bit for bit."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from mpi4py import MPI  # noqa: E402

import commpress  # noqa: E402
from commpress import CommpressError, OneBitAdam, OneBitAdamFlat  # noqa: E402

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
fails = 0


def check(cond, what):
    global fails
    if not cond:
        fails += 1
        print(f"rank {rank} FAIL: {what}", file=sys.stderr)


def raises(status, fn):
    try:
        fn()
    except CommpressError as e:
        return e.status == status
    return False


# Bad configurations fail on every rank with the C status.
check(raises(-1, lambda: OneBitAdamFlat(10, comm, betas=(1.0, 0.999))), "beta1 = 1 accepted")
check(raises(-8, lambda: OneBitAdamFlat(10, comm, lr=0.1 * (rank + 1))), "differing lr accepted")

# Flat optimizer: wrong arrays are refused before reaching C.
o = OneBitAdamFlat(1000, comm, lr=0.01, freeze_step=3)
x = np.zeros(1000, np.float32)
for bad in (np.zeros(1000, np.float64), np.zeros(999, np.float32), np.zeros(2000, np.float32)[::2]):
    try:
        o.step(x, bad)
        check(False, "bad gradient array accepted")
    except ValueError:
        pass
rng = np.random.default_rng(rank)
for t in range(6):
    check(o.step(x, rng.standard_normal(1000).astype(np.float32)), f"step {t} skipped")
all_x = comm.allgather(x.tobytes())
check(all(b == all_x[0] for b in all_x), "ranks differ")
g = np.ones(1000, np.float32)
if rank == size - 1:
    g[7] = np.nan
keep = x.copy()
check(o.step(x, g) is False and np.array_equal(keep, x), "NaN step not skipped")
st = o.stats()
check(st["steps"] == 6 and st["steps_compressed"] == 3 and st["steps_skipped"] == 1, f"stats {st}")
blob = o.save()
check(raises(-3, lambda: o.load(blob[:-1])), "truncated checkpoint accepted")
check(raises(-3, lambda: o.load(b"x" * len(blob))), "garbage checkpoint accepted")
check(o.save() == blob, "refused load changed the state")

# torch optimizer: train a little, state_dict, continue; a fresh optimizer
# from the state_dict continues identically.
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(20, 30), torch.nn.Tanh(), torch.nn.Linear(30, 1))
opt = OneBitAdam(net.parameters(), comm=comm, lr=0.01, freeze_step=4)
data = torch.Generator().manual_seed(rank)
batches = [(torch.randn(16, 20, generator=data), torch.randn(16, 1, generator=data))
           for _ in range(12)]


def train(net, opt, bs):
    for xb, yb in bs:
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(xb), yb).backward()
        opt.step()


train(net, opt, batches[:6])
sd = {"net": {k: v.clone() for k, v in net.state_dict().items()}, "opt": opt.state_dict()}
train(net, opt, batches[6:])
net2 = torch.nn.Sequential(torch.nn.Linear(20, 30), torch.nn.Tanh(), torch.nn.Linear(30, 1))
net2.load_state_dict(sd["net"])
opt2 = OneBitAdam(net2.parameters(), comm=comm, lr=0.01, freeze_step=4)
opt2.load_state_dict(sd["opt"])
train(net2, opt2, batches[6:])
same = all(torch.equal(a, b) for a, b in zip(net.parameters(), net2.parameters()))
check(same, "resumed torch optimizer differs")
check(opt.stats()["steps_compressed"] == 8, f"compressed steps {opt.stats()}")
check(commpress.strerror(-9).startswith("non-finite"), "strerror")

# Federated learning: a message round trip, a rejected message changes
# nothing, client state round trip.
from commpress import FLClient, FLServer  # noqa: E402

cfg = dict(algorithm="scafcom", compressor="topk", density=0.1, dim=40, num_clients=5)
srv = FLServer(cfg, np.zeros(40, np.float32))
cls = [FLClient(cfg, i) for i in range(2)]
tgt = np.linspace(-1, 1, 40).astype(np.float32)
msgs = [c.round(srv.model, srv.control, srv.round, lambda y: y - tgt) for c in cls]
before = srv.save()
check(raises(-3, lambda: srv.aggregate([msgs[0], msgs[1][:-3]])), "truncated FL message accepted")
check(raises(-3, lambda: srv.aggregate([msgs[0], msgs[0]])), "duplicate FL message accepted")
check(srv.save() == before, "a rejected aggregate changed the server")
srv.aggregate(msgs)
check(srv.round == 1 and srv.uplink()[1] == 2 * 4 * 40, f"round {srv.round} uplink {srv.uplink()}")
blob = cls[0].save()
c2 = FLClient(cfg, 0)
c2.load(blob)
check(c2.save() == blob, "FL client state round trip")
try:
    cls[1].round(srv.model, srv.control, srv.round, lambda y: np.zeros(3, np.float32))
    check(False, "wrong-size gradient accepted")
except ValueError:
    pass
check(cls[1].save() != blob, "clients differ")

total = comm.allreduce(fails)
if rank == 0:
    print(f"{'ok' if total == 0 else 'FAILED'}: {total} failures")
sys.exit(1 if total else 0)
