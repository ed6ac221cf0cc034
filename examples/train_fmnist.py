#!/usr/bin/python3
"""Data-parallel training on Fashion-MNIST, the way Horovod does it, and the
same with PyTorch DDP for comparison.

    --mode mpi            mpi4py: gradients fused into one buffer,
                          Comm.Allreduce(IN_PLACE) per step. Unchanged with
                          and without LD_PRELOAD=libcommpress.so.
    --mode ddp            torch DistributedDataParallel over gloo
    --mode ddp-fp16       ... with PyTorch's fp16_compress_hook
    --mode ddp-powersgd   ... with PyTorch's PowerSGD hook (rank 4)
    --mode ddp-commpress-quant, ddp-commpress-topk
                          ... with commpress.torch's hook (quant 4 bits,
                          topk 1%; docs/torch.md): no MPI in the exchange

Ranks and world size come from Open MPI's environment (run under mpirun or
bench/cluster.sh). Rank 0 writes JSON (--out) with the settings, the log
(step, wall time, loss, test accuracy) and a summary, and a CSV beside it.
Data: Debian's dataset-fashion-mnist (IDX files). Model: an MLP
784-2048-1024-10 (3.7M parameters), SGD with momentum 0.9 by default.

Optimizers (--mode mpi):
    --optimizer sgd       SGD, --momentum (0.9); with COMMPRESS_COMPRESSOR=dgc
                          pass --momentum 0: DGC carries the momentum
    --optimizer adam      torch.optim.Adam on the allreduced gradient
    --optimizer onebit-adam
                          commpress.OneBitAdam (python/commpress): it
                          communicates itself (exact average until
                          --freeze-step, then the 1-bit momentum allreduce)
--bucket per-tensor allreduces each gradient on its own (DGC then sees
layers, and biases go dense); fused (default) packs them into one buffer
allocated once; fused-fresh packs them into a new buffer every step
(torch.cat); scratch copies each gradient in turn into one buffer and
allreduces it there (equal-size layers share its address). commpress
names tensors by the sequence of calls, so all four keep each layer's error
feedback (docs/design.md, "Tensor identity").
--model mlp-small: 784-256-256-256-10, whose equal layers repeat sizes.
--model cnn: conv 5x5x16, conv 5x5x32, 512-256-10 (L-GreCo's layers that
differ, bench/lgreco.sh).
The JSON records whether the final parameters are bit-identical on every
rank (replicas_identical).
--save-at N --ckpt PATH.%r saves model and optimizer state at step N (one
file per rank); --resume PATH.%r continues from it; --final-params F.npy
writes the final parameters (rank 0) for a bit-for-bit comparison.
"""
import os

# One BLAS thread per rank: the ranks share the machine's cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import gzip
import hashlib
import json
import struct
import time

import sys  # noqa: E402

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from commpress import shim_stats  # noqa: E402
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


class Image(nn.Module):
    """A batch of images, whatever its layout, as (N, 1, 28, 28)."""
    def forward(self, x):
        return x.reshape(x.shape[0], 1, 28, 28)


def model(act="relu", kind="mlp"):
    A = {"relu": nn.ReLU, "gelu": nn.GELU}[act]
    if kind == "cnn":  # layers that differ: 416 to 131k parameters
        return nn.Sequential(Image(), nn.Conv2d(1, 16, 5), A(),
                             nn.MaxPool2d(2), nn.Conv2d(16, 32, 5), A(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(512, 256), A(), nn.Linear(256, 10))
    if kind == "mlp-small":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), A(), nn.Linear(256, 256),
                             A(), nn.Linear(256, 256), A(), nn.Linear(256, 10))
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 2048), A(),
                         nn.Linear(2048, 1024), A(), nn.Linear(1024, 10))


def evaluate(net, x, y):
    net.eval()
    with torch.no_grad():
        correct = sum((net(x[i:i + 2000]).argmax(1) == y[i:i + 2000]).sum().item()
                      for i in range(0, len(x), 2000))
    net.train()
    return correct / len(x)


def ratios(d):
    """Ratios of a stats dict (or of the difference of two)."""
    total = d["bytes_sent"] + d["bytes_passthrough"]
    d["ratio_all"] = (d["bytes_uncompressed"] + d["bytes_passthrough"]) / total if total else 0
    d["ratio_sparse"] = (d["bytes_uncompressed_sparse"] / d["bytes_sent_sparse"]
                         if d["bytes_sent_sparse"] else 0)
    return d


def comm_stats(opt, at_warmup):
    """What was saved: 1-bit Adam's statistics, or the preloaded shim's, in
    all and (DGC) since the end of its warm-up."""
    if hasattr(opt, "stats"):
        s = opt.stats()
        return {"onebit_adam": s, "ratio": s["ratio"]}
    d = shim_stats()
    if d is None:
        return {}
    total = ratios(dict(d))
    out = {"commpress_stats": total, "ratio": total["ratio_all"]}
    if at_warmup is not None:
        after = {k: d[k] - at_warmup[k] for k in d if isinstance(d[k], int)}
        out["commpress_stats_after_warmup"] = ratios(after)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="mpi", choices=["mpi", "ddp", "ddp-fp16", "ddp-powersgd",
                                                      "ddp-commpress-quant", "ddp-commpress-topk"])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=64, help="per rank")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--master", default="10.215.0.1:29517",
                    help="rank 0's address for gloo (bench/cluster.sh: 10.215.0.1)")
    ap.add_argument("--optimizer", default="sgd", choices=["sgd", "adam", "onebit-adam"])
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--freeze-step", type=int, default=100000,
                    help="onebit-adam: warm-up steps before compression")
    ap.add_argument("--act", default="relu", choices=["relu", "gelu"])
    ap.add_argument("--beta2", type=float, default=0.999, help="adam, onebit-adam")
    ap.add_argument("--eps", type=float, default=1e-8, help="adam, onebit-adam")
    ap.add_argument("--bucket", default="fused",
                    choices=["fused", "fused-fresh", "per-tensor", "scratch"])
    ap.add_argument("--model", default="mlp", choices=["mlp", "mlp-small", "cnn"])
    ap.add_argument("--layout", action="store_true",
                    help="--bucket fused: register the buffer's layout (one layer per "
                         "parameter) with the preloaded shim")
    ap.add_argument("--save-at", type=int, default=0)
    ap.add_argument("--ckpt", default=None, help="checkpoint path; %%r is the rank")
    ap.add_argument("--resume", default=None, help="checkpoint to resume from; %%r is the rank")
    ap.add_argument("--final-params", default=None)
    ap.add_argument("--label", default=None)
    ap.add_argument("--seed", type=int, default=0,
                    help="0: the fixed defaults; else initial weights and data order")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", 0))
    world = int(os.environ.get("OMPI_COMM_WORLD_SIZE", 1))
    torch.manual_seed(1234 + args.seed)  # identical initial weights on every rank
    net = model(args.act, args.model)
    nparams = sum(p.numel() for p in net.parameters())

    if args.mode == "mpi":
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
        grads_of = [p for p in net.parameters()]

        def unfuse(fused):
            """The averaged gradients back from a fused buffer."""
            fused.div_(world)
            off = 0
            for p in grads_of:
                n = p.numel()
                p.grad.view(-1).copy_(fused[off:off + n])
                off += n
        if args.optimizer == "onebit-adam":
            sync = None  # the optimizer communicates
        elif args.bucket == "per-tensor":
            # Each gradient in place in its own buffer (p.grad lives for the
            # whole run: zero_grad keeps it).
            def sync():
                for p in grads_of:
                    comm.Allreduce(MPI.IN_PLACE, p.grad.numpy(), op=MPI.SUM)
                    p.grad.div_(world)
        elif args.bucket == "fused-fresh":
            # A new fused buffer every step, as torch.cat makes it.
            def sync():
                fused = torch.cat([p.grad.view(-1) for p in grads_of])
                comm.Allreduce(MPI.IN_PLACE, fused.numpy(), op=MPI.SUM)
                unfuse(fused)
        elif args.bucket == "scratch":
            # One scratch buffer for every layer in turn.
            scratch = torch.zeros(max(p.numel() for p in grads_of))

            def sync():
                for p in grads_of:
                    n = p.numel()
                    buf = scratch[:n]
                    buf.copy_(p.grad.view(-1))
                    comm.Allreduce(MPI.IN_PLACE, buf.numpy(), op=MPI.SUM)
                    p.grad.view(-1).copy_(buf)
                    p.grad.div_(world)
        else:
            # One fused buffer for all gradients, allocated once (Horovod's
            # fusion buffer): the same address every step.
            fused = torch.zeros(nparams)
            fused_np = fused.numpy()
            if args.layout:
                # Each layer of the fused buffer compressed on its own
                # (docs/lgreco.md, "Fused buffers").
                sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                "..", "python"))
                import commpress
                if not commpress.register_layout(fused, commpress.layout_offsets(grads_of)):
                    print("--layout: libcommpress.so is not preloaded", file=sys.stderr)

            def sync():
                off = 0
                for p in grads_of:
                    n = p.numel()
                    fused[off:off + n].copy_(p.grad.view(-1))
                    off += n
                comm.Allreduce(MPI.IN_PLACE, fused_np, op=MPI.SUM)
                unfuse(fused)
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
        elif args.mode.startswith("ddp-commpress"):
            import commpress.torch as ct
            settings = dict(bits=4) if args.mode.endswith("quant") else dict(density=0.01)
            hook_state = ct.HookState(compressor=args.mode.rsplit("-", 1)[1], **settings)
            trained.register_comm_hook(hook_state, ct.compressed_hook)
        sync = None

    xtr = torch.from_numpy(load_idx("train-images-idx3-ubyte").astype(np.float32) / 255.0)
    ytr = torch.from_numpy(load_idx("train-labels-idx1-ubyte").astype(np.int64))
    xte = torch.from_numpy(load_idx("t10k-images-idx3-ubyte").astype(np.float32) / 255.0)
    yte = torch.from_numpy(load_idx("t10k-labels-idx1-ubyte").astype(np.int64))
    xtr = (xtr - 0.2860) / 0.3530
    xte = (xte - 0.2860) / 0.3530
    gen = torch.Generator().manual_seed(99 + args.seed)
    if args.optimizer == "sgd":
        opt = torch.optim.SGD(trained.parameters(), lr=args.lr, momentum=args.momentum)
    elif args.optimizer == "adam":
        opt = torch.optim.Adam(trained.parameters(), lr=args.lr, betas=(0.9, args.beta2),
                               eps=args.eps)
    else:
        if args.mode != "mpi":
            raise SystemExit("train_fmnist: onebit-adam needs --mode mpi")
        from commpress import OneBitAdam
        opt = OneBitAdam(trained.parameters(), comm=comm, lr=args.lr,
                         betas=(0.9, args.beta2), eps=args.eps,
                         freeze_step=args.freeze_step)
    start_step = 0
    if args.resume:
        ck = torch.load(args.resume.replace("%r", str(rank)))
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        start_step = ck["step"]
    log, step_times = [], []
    # DGC: the shim's counters at the end of the warm-up, to report the
    # compression at the final density on its own.
    warm = int(os.environ.get("COMMPRESS_DGC_WARMUP_STEPS", "0") or 0)
    at_warmup = None
    t_start = time.perf_counter()
    perm = torch.randperm(len(xtr), generator=gen)
    pos = 0
    for step in range(1, args.steps + 1):
        if pos + args.batch * world > len(perm):
            perm, pos = torch.randperm(len(xtr), generator=gen), 0
        # Every rank draws the same global batch and takes its own slice.
        idx = perm[pos + rank * args.batch: pos + (rank + 1) * args.batch]
        pos += args.batch * world
        if step <= start_step:
            continue  # resumed: replay the data order only
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = F.cross_entropy(trained(xtr[idx]), ytr[idx])
        loss.backward()
        if sync:
            sync()
        opt.step()
        step_times.append(time.perf_counter() - t0)
        if warm and step == warm:
            at_warmup = shim_stats()
        if args.save_at and step == args.save_at:
            torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "step": step},
                       args.ckpt.replace("%r", str(rank)))
        if step % args.eval_every == 0 or step == args.steps:
            acc = evaluate(net, xte, yte) if rank == 0 else None
            log.append({"step": step, "wall_s": time.perf_counter() - t_start,
                        "loss": loss.item(), "test_acc": acc})
            if rank == 0:
                print(f"step {step}: loss {loss.item():.4f} test acc {acc:.4f} "
                      f"({time.perf_counter() - t_start:.1f} s)", flush=True)
    # Every rank holds the same model, or the replicas split.
    flat = torch.cat([p.detach().view(-1) for p in net.parameters()]).numpy()
    digest = hashlib.sha256(flat.tobytes()).hexdigest()
    if args.mode == "mpi":
        digests = comm.allgather(digest)
    else:
        digests = [None] * world
        dist.all_gather_object(digests, digest)
    identical = len(set(digests)) == 1
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
        out.update(replicas_identical=identical, params_sha256=digest,
                   final_loss=log[-1]["loss"], model=args.model)
        out.update(optimizer=args.optimizer, momentum=args.momentum, bucket=args.bucket,
                   act=args.act, beta2=args.beta2, eps=args.eps,
                   freeze_step=args.freeze_step, resumed_from=start_step, seed=args.seed,
                   layout=args.layout)
        out.update(comm_stats(opt, at_warmup))
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
        if args.final_params:
            np.save(args.final_params,
                    torch.cat([p.detach().view(-1) for p in net.parameters()]).numpy())
        with open(os.path.splitext(args.out)[0] + ".csv", "w") as f:
            f.write("step,wall_s,loss,test_acc\n")
            for r in log:
                f.write(f"{r['step']},{r['wall_s']:.3f},{r['loss']:.5f},{r['test_acc']:.4f}\n")


if __name__ == "__main__":
    main()
