#!/usr/bin/python3
"""A small mixture-of-experts on Fashion-MNIST, one expert per rank, with
LSH-MoE's compressed all-to-all (commpress.lsh_moe; docs/moe.md).

    mpirun -np 4 /usr/bin/python3 examples/moe_fmnist.py --hashes 6 --out run.json

Each image is cut into 16 patches of 7x7 pixels: 16 tokens. Tokens are
embedded (49 -> D), go through one MoE layer (top-1 gate, a capacity
factor; each rank's expert is an FFN D -> 4D -> D of its own), are
mean-pooled and classified. The experts' parameters stay on their rank;
every other parameter is data-parallel (gradients averaged by a plain
MPI allreduce). The all-to-all runs through the explicit API either way:
--hashes 0 sends every token row (the uncompressed baseline), L > 0
clusters each destination's tokens with L hash functions; --no-compensate
drops the residuals. Writes the final test accuracy, the median step time
and the training steps' all-to-all statistics (commpress_moe_stats, the
evaluations left out) to --out."""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mpi4py import MPI  # noqa: E402

import commpress  # noqa: E402
from train_fmnist import load_idx  # noqa: E402


def patches(x):
    """B x 784 -> B x 16 x 49 (4 x 4 patches of 7 x 7)."""
    b = x.shape[0]
    return x.view(b, 4, 7, 4, 7).permute(0, 1, 3, 2, 4).reshape(b, 16, 49)


class Model(torch.nn.Module):
    def __init__(self, d, experts):
        super().__init__()
        self.embed = torch.nn.Linear(49, d)
        self.pos = torch.nn.Parameter(torch.zeros(16, d))
        self.gate = torch.nn.Linear(d, experts)
        self.head = torch.nn.Linear(d, 10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hashes", type=int, default=6)
    ap.add_argument("--no-compensate", action="store_true")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--capacity", type=float, default=1.5)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    comm = MPI.COMM_WORLD
    rank, world = comm.Get_rank(), comm.Get_size()
    d = args.hidden
    torch.manual_seed(1234 + args.seed)  # shared parameters: the same everywhere
    model = Model(d, world)
    torch.manual_seed(5678 + 97 * rank + args.seed)  # this rank's expert
    expert = torch.nn.Sequential(torch.nn.Linear(d, 4 * d), torch.nn.GELU(),
                                 torch.nn.Linear(4 * d, d))
    shared = list(model.parameters())
    opt = torch.optim.SGD(shared + list(expert.parameters()), lr=args.lr, momentum=0.9)
    moe = commpress.MoEComm(comm, hidden=d, hashes=args.hashes, max_fraction=0.9,
                            compensate=not args.no_compensate)

    xtr = torch.from_numpy(load_idx("train-images-idx3-ubyte").astype(np.float32) / 255.0)
    ytr = torch.from_numpy(load_idx("train-labels-idx1-ubyte").astype(np.int64))
    xte = torch.from_numpy(load_idx("t10k-images-idx3-ubyte").astype(np.float32) / 255.0)
    yte = torch.from_numpy(load_idx("t10k-labels-idx1-ubyte").astype(np.int64))
    xtr, xte = (xtr.view(-1, 784) - 0.286) / 0.353, (xte.view(-1, 784) - 0.286) / 0.353
    gen = torch.Generator().manual_seed(99 + args.seed + rank)

    def forward(x):
        """Logits of a batch; the MoE layer is collective (every rank calls)."""
        t = torch.relu(model.embed(patches(x))) + model.pos      # B x 16 x d
        tok = t.reshape(-1, d)
        probs = torch.softmax(model.gate(tok), dim=-1)
        p, e = probs.max(dim=-1)                                   # top-1
        cap = int(args.capacity * tok.shape[0] / world)
        order = torch.argsort(e, stable=True)
        counts = torch.bincount(e, minlength=world).tolist()
        # Capacity: the first `cap` tokens of each expert go; the rest
        # keep only the residual path.
        keep, send_counts, start = [], [], 0
        for c in counts:
            keep.append(order[start:start + min(c, cap)])
            send_counts.append(min(c, cap))
            start += c
        keep = torch.cat(keep)
        y = commpress.lsh_moe(tok[keep], send_counts, expert, moe)
        out = tok.clone()
        out[keep] = tok[keep] + p[keep].unsqueeze(1) * y
        return model.head(out.view(x.shape[0], 16, d).mean(dim=1))

    def evaluate():
        correct, n = 0, 0
        with torch.no_grad():
            for i in range(rank * 1000, min((rank + 1) * 1000, len(xte)), 500):
                xb = xte[i:i + 500]
                correct += int((forward(xb).argmax(1) == yte[i:i + 500]).sum())
                n += len(xb)
        return comm.allreduce(correct) / comm.allreduce(n)

    times, log = [], []
    evals = {}  # the statistics of the evaluations, taken out of the training's
    flat = torch.zeros(sum(q.numel() for q in shared))
    for step in range(1, args.steps + 1):
        idx = torch.randint(len(xtr), (args.batch,), generator=gen)
        comm.Barrier()
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(forward(xtr[idx]), ytr[idx])
        loss.backward()
        off = 0
        for q in shared:  # data-parallel parameters: averaged gradients
            flat[off:off + q.numel()] = q.grad.view(-1)
            off += q.numel()
        comm.Allreduce(MPI.IN_PLACE, flat.numpy(), op=MPI.SUM)
        flat /= world
        off = 0
        for q in shared:
            q.grad.view(-1).copy_(flat[off:off + q.numel()])
            off += q.numel()
        opt.step()
        times.append(comm.allreduce(time.perf_counter() - t0, op=MPI.MAX))
        if step % args.eval_every == 0 or step == args.steps:
            before = moe.stats()
            acc = evaluate()
            for k, v in moe.stats().items():
                evals[k] = evals.get(k, 0) + v - before[k]
            log.append({"step": step, "loss": comm.allreduce(float(loss)) / world, "test_acc": acc})
            if rank == 0:
                print(f"step {step}: loss {log[-1]['loss']:.4f} test acc {acc:.4f}", flush=True)
    st = moe.stats()
    tot = {k: comm.allreduce(v - evals.get(k, 0)) for k, v in st.items()}  # training only
    if rank == 0:
        out = {"hashes": args.hashes, "compensate": not args.no_compensate, "steps": args.steps,
               "seed": args.seed, "ranks": world, "final_test_acc": log[-1]["test_acc"],
               "median_step_s": float(np.median(times)), "moe_stats": tot,
               "rows_sent_fraction": tot["rows_sent"] / max(tot["rows"], 1),
               "bytes_fraction": tot["bytes_sent"] / max(tot["bytes_raw"], 1), "log": log}
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
        print(json.dumps({k: v for k, v in out.items() if k != "log"}))


if __name__ == "__main__":
    main()
