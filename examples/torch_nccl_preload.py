#!/usr/bin/env python3
"""The commpress NCCL shim inside PyTorch.

PyTorch loads libnccl dynamically, so preloading libcommpress.so puts the
shim's ncclAllReduce in front of NCCL's. This script allreduces a
ResNet-50-sized gradient with torch.distributed (backend nccl) and prints
what the shim did, read from its statistics (commpress.shim_stats, whose
ctypes mirror of commpress_stats_t lives in python/commpress/_lib.py).

    LD_PRELOAD=$PWD/build/libcommpress.so COMMPRESS_COMPRESSOR=quant \\
        COMMPRESS_MIN_RANKS=1 python3 examples/torch_nccl_preload.py

Run with one GPU it uses a 1-rank communicator, where COMMPRESS_MIN_RANKS=1
makes the shim run the whole compressed path; under torchrun with several
GPUs it needs no such setting.
"""
import os
import sys
import tempfile
import time

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from commpress import shim_stats  # noqa: E402  (python/commpress)


def main():
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if "MASTER_ADDR" in os.environ:
        dist.init_process_group("nccl")
    else:
        store = tempfile.mktemp(prefix="commpress-torch-")
        dist.init_process_group("nccl", init_method=f"file://{store}",
                                rank=rank, world_size=world)
    n = 25_557_032
    g = torch.Generator(device="cuda").manual_seed(1 + rank)
    results = {}
    for dtype in (torch.float32, torch.bfloat16):
        x = (torch.randn(n, device="cuda", generator=g) * 1e-3).to(dtype)
        exact = x.double()
        dist.all_reduce(exact)  # float64 is never compressed: the exact sum
        times = []
        y = torch.empty_like(x)  # one buffer, as DDP's buckets: one state
        for _ in range(5):
            y.copy_(x)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            dist.all_reduce(y)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        err = ((y.double() - exact).norm() / exact.norm()).item()
        results[str(dtype)] = (sorted(times)[2], err)
    s = shim_stats()
    if rank == 0:
        print(f"torch {torch.__version__}, NCCL {torch.cuda.nccl.version()}, "
              f"{torch.cuda.get_device_name()}, world {world}")
        for k, (t, e) in results.items():
            print(f"  {k}: median all_reduce {t * 1e3:.2f} ms, relative error {e:.3g}")
        if s is None:
            print("commpress: not preloaded (plain NCCL)")
        else:
            print(f"commpress: {s['calls_compressed']} calls compressed, "
                  f"{s['calls_passthrough']} passed through; "
                  f"{s['bytes_uncompressed'] / 1e6:.1f} MB a ring allreduce would send, "
                  f"{s['bytes_sent'] / 1e6:.1f} MB sent, ratio {s['ratio']:.2f}x; "
                  f"state {s['state_bytes'] / 1e6:.1f} MB on the GPU")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
