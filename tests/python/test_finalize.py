#!/usr/bin/python3
"""An explicit MPI.Finalize() while commpress objects are alive must not
abort the process: 1-bit Adam's destroy frees only memory after
MPI_Finalize (it used to call MPI_Comm_free, and Open MPI aborted), and no
__del__ raises at interpreter exit. Run by mpirun with 2 ranks; passes
when it exits 0 with nothing on stderr (ctest: FAIL_REGULAR_EXPRESSION)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

import numpy as np  # noqa: E402
from mpi4py import MPI  # noqa: E402

from commpress import FLClient, FLServer, OneBitAdamFlat  # noqa: E402

comm = MPI.COMM_WORLD
n = 1000
x = np.zeros(n, np.float32)
kept = OneBitAdamFlat(n, comm, lr=0.01, freeze_step=2)  # collected at exit
dropped = OneBitAdamFlat(n, comm, lr=0.01, freeze_step=2)  # deleted after Finalize
for t in range(4):
    g = np.full(n, 1.0 + t + comm.Get_rank(), np.float32)
    kept.step(x, g)
    dropped.step(x, g)
try:
    import torch  # the torch optimizer too, when torch is there
    net = torch.nn.Linear(4, 2)
    from commpress import OneBitAdam
    topt = OneBitAdam(net.parameters(), comm=comm, lr=0.01, freeze_step=2)
except ImportError:
    topt = None
cfg = dict(algorithm="scafcom", compressor="topk", density=0.5, dim=8, num_clients=2)
server, client = FLServer(cfg, np.zeros(8, np.float32)), FLClient(cfg, 0)

MPI.Finalize()
del dropped  # __del__ now, after MPI_Finalize
print("ok", flush=True)
# kept, topt, server and client are collected at interpreter exit.
