#!/usr/bin/python3
"""Data-parallel training on Fashion-MNIST, the way Horovod does it, and the
same with PyTorch DDP for comparison.

    --mode mpi            mpi4py: gradients fused into one buffer,
                          Comm.Allreduce(IN_PLACE) per step. Unchanged with
                          and without LD_PRELOAD=libcommpress.so.
    --mode ddp            torch DistributedDataParallel over gloo
    --mode ddp-fp16       ... with PyTorch's fp16_compress_hook
    --mode ddp-powersgd   ... with PyTorch's PowerSGD hook (rank 4)

Ranks and world size come from Open MPI's environment (run under mpirun or
bench/cluster.sh). Rank 0 writes JSON (--out) with the settings, the log
(step, wall time, loss, test accuracy) and a summary, and a CSV beside it.
Data: Debian's dataset-fashion-mnist (IDX files). Model: an MLP
784-2048-1024-10 (3.7M parameters), SGD with momentum 0.9.
"""
import os

# One BLAS thread per rank: the ranks share the machine's cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import gzip
import json
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA_DIRS = ["/usr/share/datasets/fashion-mnist", "/usr/share/dataset/fashion-mnist",
             "/usr/share/fashion-mnist"]


def load_idx(name):
    for d in DATA_DIRS:
        for suffix in ("", ".gz"):
            path = os.path.join(d, name + suffix)
            if os.path.exists(path):
                opener = gzip.open if suffix else open
                with opener(path, "rb") as f:
                    raw = f.read()
                magic, = struct.unpack(">I", raw[:4])
                ndim = magic & 0xff
                dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
                return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    raise SystemExit(f"train_fmnist: {name} not found in {DATA_DIRS} "
                     "(apt-get install dataset-fashion-mnist)")


def model():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 2048), nn.ReLU(),
                         nn.Linear(2048, 1024), nn.ReLU(), nn.Linear(1024, 10))


def evaluate(net, x, y):
    net.eval()
    with torch.no_grad():
        correct = sum((net(x[i:i + 2000]).argmax(1) == y[i:i + 2000]).sum().item()
                      for i in range(0, len(x), 2000))
    net.train()
    return correct / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="mpi", choices=["mpi", "ddp", "ddp-fp16", "ddp-powersgd"])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=64, help="per rank")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--master", default="10.215.0.1:29517",
                    help="rank 0's address for gloo (bench/cluster.sh: 10.215.0.1)")
    ap.add_argument("--label", default=None)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", 0))
    world = int(os.environ.get("OMPI_COMM_WORLD_SIZE", 1))
    torch.manual_seed(1234)  # identical initial weights on every rank
    net = model()
    nparams = sum(p.numel() for p in net.parameters())

    if args.mode == "mpi":
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
        # One fused buffer for all gradients, allocated once (Horovod's
        # fusion buffer): the same address every step.
        fused = torch.zeros(nparams)
        fused_np = fused.numpy()
        grads_of = [p for p in net.parameters()]

        def sync():
            off = 0
            for p in grads_of:
                n = p.numel()
                fused[off:off + n].copy_(p.grad.view(-1))
                off += n
            comm.Allreduce(MPI.IN_PLACE, fused_np, op=MPI.SUM)
            fused.div_(world)
            off = 0
            for p in grads_of:
                n = p.numel()
                p.grad.view(-1).copy_(fused[off:off + n])
                off += n
        trained = net
    else:
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel as DDP
        if os.path.exists("/sys/class/net/cpcnet"):
            os.environ.setdefault("GLOO_SOCKET_IFNAME", "cpcnet")
        dist.init_process_group("gloo", init_method=f"tcp://{args.master}",
                                rank=rank, world_size=world)
        if args.mode == "ddp-powersgd":
            # One bucket: PowerSGD's hook chains several allreduces per bucket
            # through future callbacks; with two buckets (DDP always makes
            # the first one small) their allreduces interleave differently
            # on different ranks, which gloo cannot match (seen here:
            # "op.preamble.length <= op.nbytes" and an abort).
            dist._DEFAULT_FIRST_BUCKET_BYTES = 64 * 1024 * 1024
        trained = DDP(net, bucket_cap_mb=64 if args.mode == "ddp-powersgd" else 25)
        if args.mode == "ddp-fp16":
            from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
            trained.register_comm_hook(None, default_hooks.fp16_compress_hook)
        elif args.mode == "ddp-powersgd":
            from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as psgd
            state = psgd.PowerSGDState(process_group=None, matrix_approximation_rank=4,
                                       start_powerSGD_iter=10, use_error_feedback=True,
                                       warm_start=True)
            trained.register_comm_hook(state, psgd.powerSGD_hook)
        sync = None

    xtr = torch.from_numpy(load_idx("train-images-idx3-ubyte").astype(np.float32) / 255.0)
    ytr = torch.from_numpy(load_idx("train-labels-idx1-ubyte").astype(np.int64))
    xte = torch.from_numpy(load_idx("t10k-images-idx3-ubyte").astype(np.float32) / 255.0)
    yte = torch.from_numpy(load_idx("t10k-labels-idx1-ubyte").astype(np.int64))
    xtr = (xtr - 0.2860) / 0.3530
    xte = (xte - 0.2860) / 0.3530
    gen = torch.Generator().manual_seed(99)
    opt = torch.optim.SGD(trained.parameters(), lr=args.lr, momentum=0.9)
    log, step_times = [], []
    t_start = time.perf_counter()
    perm = torch.randperm(len(xtr), generator=gen)
    pos = 0
    for step in range(1, args.steps + 1):
        if pos + args.batch * world > len(perm):
            perm, pos = torch.randperm(len(xtr), generator=gen), 0
        # Every rank draws the same global batch and takes its own slice.
        idx = perm[pos + rank * args.batch: pos + (rank + 1) * args.batch]
        pos += args.batch * world
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = F.cross_entropy(trained(xtr[idx]), ytr[idx])
        loss.backward()
        if sync:
            sync()
        opt.step()
        step_times.append(time.perf_counter() - t0)
        if step % args.eval_every == 0 or step == args.steps:
            acc = evaluate(net, xte, yte) if rank == 0 else None
            log.append({"step": step, "wall_s": time.perf_counter() - t_start,
                        "loss": loss.item(), "test_acc": acc})
            if rank == 0:
                print(f"step {step}: loss {loss.item():.4f} test acc {acc:.4f} "
                      f"({time.perf_counter() - t_start:.1f} s)", flush=True)
    if rank == 0:
        steady = sorted(step_times[5:] or step_times)
        label = args.label or (args.mode if args.mode != "mpi" else
                               "mpi+commpress " + os.environ.get("COMMPRESS_COMPRESSOR", "none")
                               if os.environ.get("LD_PRELOAD", "").find("commpress") >= 0
                               else "mpi plain")
        out = {"label": label, "mode": args.mode, "world": world, "params": nparams,
               "steps": args.steps, "batch_per_rank": args.batch, "lr": args.lr,
               "commpress": {k: v for k, v in os.environ.items() if k.startswith("COMMPRESS_")},
               "median_step_s": steady[len(steady) // 2],
               "final_test_acc": log[-1]["test_acc"], "total_s": time.perf_counter() - t_start,
               "log": log}
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
        with open(os.path.splitext(args.out)[0] + ".csv", "w") as f:
            f.write("step,wall_s,loss,test_acc\n")
            for r in log:
                f.write(f"{r['step']},{r['wall_s']:.3f},{r['loss']:.5f},{r['test_acc']:.4f}\n")


if __name__ == "__main__":
    main()
