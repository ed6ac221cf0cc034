#!/usr/bin/python3
"""Federated learning on Fashion-MNIST, simulated with MPI: rank 0 is the
server, the other ranks host the clients (client i lives on rank
1 + i % (size - 1) and keeps its state there between rounds). Data is split
into 2-class shards (sorted by label, 200 shards of 300 images, two per
client), N = 100 clients, S = 10 sampled per round, K = 10 local steps of
batch 32. Model: softmax regression (7850 parameters), numpy.

Methods (--method, repeatable; default all):
    fedavg         FedAvg, uncompressed uplink
    fedavg-topk    FedAvg with top-k 1%, no feedback (values as fp16)
    scaffold       SCAFCOM with beta = 1 and no compression (= SCAFFOLD)
    scallion       SCALLION, stochastic quantization (--bits), alpha 0.1
    scafcom        SCAFCOM, top-k 1% (values as fp16: 6 bytes an entry), beta 0.2
The messages are the bytes of commpress.FLClient (optim/fl.c); rank 0
aggregates them with commpress.FLServer. Writes --out JSON: per method the
test accuracy every --eval-every rounds and the uplink bytes so far.

    mpirun -np 4 /usr/bin/python3 examples/federated/fl_fmnist.py --rounds 300 --out fl.json
"""
import argparse
import gzip
import json
import os
import struct
import sys
import time

import numpy as np
from mpi4py import MPI

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from commpress import FLClient, FLServer  # noqa: E402

DATA_DIRS = ["/usr/share/datasets/fashion-mnist", "/usr/share/dataset/fashion-mnist"]
D_IN, CLASSES = 784, 10
DIM = D_IN * CLASSES + CLASSES

METHODS = {
    "fedavg": dict(algorithm="fedavg", compressor="none"),
    "fedavg-topk": dict(algorithm="fedavg", compressor="topk", topk_fp16=1),
    "scaffold": dict(algorithm="scafcom", compressor="none", beta=1.0),
    "scallion": dict(algorithm="scallion", compressor="quant", stochastic=1),
    "scafcom": dict(algorithm="scafcom", compressor="topk", topk_fp16=1),
}


def load_idx(name):
    for d in DATA_DIRS:
        for suffix in ("", ".gz"):
            p = os.path.join(d, name + suffix)
            if os.path.exists(p):
                raw = (gzip.open if suffix else open)(p, "rb").read()
                ndim = struct.unpack(">I", raw[:4])[0] & 0xff
                dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
                return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)
    raise SystemExit(f"fl_fmnist: {name} not found (apt-get install dataset-fashion-mnist)")


def data():
    xtr = load_idx("train-images-idx3-ubyte").reshape(-1, D_IN).astype(np.float32) / 255.0
    ytr = load_idx("train-labels-idx1-ubyte").astype(np.int64)
    xte = load_idx("t10k-images-idx3-ubyte").reshape(-1, D_IN).astype(np.float32) / 255.0
    yte = load_idx("t10k-labels-idx1-ubyte").astype(np.int64)
    mu, sd = 0.2860, 0.3530
    return (xtr - mu) / sd, ytr, (xte - mu) / sd, yte


def shards(ytr, n_clients, seed):
    """Two shards of label-sorted images per client (McMahan et al.)."""
    order = np.argsort(ytr, kind="stable")
    n_shards = 2 * n_clients
    size = len(order) // n_shards
    perm = np.random.default_rng(seed).permutation(n_shards)
    return [np.concatenate([order[s * size:(s + 1) * size] for s in perm[2 * i:2 * i + 2]])
            for i in range(n_clients)]


def logits(w, x):
    W = w[:D_IN * CLASSES].reshape(D_IN, CLASSES)
    return x @ W + w[D_IN * CLASSES:]


def grad(w, x, y):
    z = logits(w, x)
    z -= z.max(1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    p /= len(y)
    g = np.empty(DIM, np.float32)
    g[:D_IN * CLASSES] = (x.T @ p).ravel()
    g[D_IN * CLASSES:] = p.sum(0)
    return g


def accuracy(w, x, y):
    return float((logits(w, x).argmax(1) == y).mean())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", action="append", choices=list(METHODS))
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--sampled", type=int, default=10)
    ap.add_argument("--local-steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr-local", type=float, default=0.05)
    ap.add_argument("--lr-global", type=float, default=1.0)
    ap.add_argument("--density", type=float, default=0.01)
    ap.add_argument("--bits", type=int, default=2)
    ap.add_argument("--beta", type=float, default=0.2)
    ap.add_argument("--alpha", type=float, default=0.1)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    if size < 2:
        raise SystemExit("fl_fmnist: needs at least 2 ranks (a server and a client host)")
    xtr, ytr, xte, yte = data()
    parts = shards(ytr, args.clients, args.seed)
    results = {}
    for name in args.method or list(METHODS):
        cfg = dict(dim=DIM, num_clients=args.clients, local_steps=args.local_steps,
                   lr_local=args.lr_local, lr_global=args.lr_global, density=args.density,
                   bits=args.bits, bucket=512, beta=args.beta, alpha=args.alpha,
                   seed=args.seed)
        cfg.update(METHODS[name])
        mine = [i for i in range(args.clients) if 1 + i % (size - 1) == rank]
        clients = {i: FLClient(cfg, i) for i in mine}
        rngs = {i: np.random.default_rng(1000 * args.seed + i) for i in mine}
        server = FLServer(cfg, np.zeros(DIM, np.float32)) if rank == 0 else None
        pick_rng = np.random.default_rng(args.seed)
        log, t0 = [], time.perf_counter()
        for r in range(args.rounds + 1):
            if rank == 0 and (r % args.eval_every == 0 or r == args.rounds):
                up, dense = server.uplink()
                log.append({"round": r, "test_acc": accuracy(server.model, xte, yte),
                            "uplink_bytes": up, "uplink_dense_bytes": dense})
            if r == args.rounds:
                break
            state = None
            if rank == 0:
                picks = sorted(pick_rng.choice(args.clients, args.sampled, replace=False).tolist())
                state = (server.model, server.control, server.round, picks)
            x, c, rnd, picks = comm.bcast(state, root=0)
            msgs = []
            for i in picks:
                if i in clients:
                    idx, rng = parts[i], rngs[i]

                    def g(y, idx=idx, rng=rng):
                        b = idx[rng.integers(0, len(idx), args.batch)]
                        return grad(y, xtr[b], ytr[b])
                    msgs.append((i, clients[i].round(x, c, rnd, g)))
            gathered = comm.gather(msgs, root=0)
            if rank == 0:
                got = sorted(m for part in gathered for m in part)
                server.aggregate([m for _, m in got])
        if rank == 0:
            up, dense = server.uplink()
            results[name] = {"config": cfg, "log": log, "final_test_acc": log[-1]["test_acc"],
                             "uplink_bytes": up, "uplink_dense_bytes": dense,
                             "uplink_ratio": dense / up if up else 0,
                             "seconds": time.perf_counter() - t0}
            print(f"{name:12s} acc {log[-1]['test_acc']:.4f}  uplink {up / 1e6:8.2f} MB "
                  f"({dense / up:6.1f}x less than dense)  {time.perf_counter() - t0:.0f} s",
                  flush=True)
    if rank == 0:
        with open(args.out, "w") as f:
            json.dump({"rounds": args.rounds, "clients": args.clients, "sampled": args.sampled,
                       "local_steps": args.local_steps, "methods": results}, f, indent=1)


if __name__ == "__main__":
    main()
