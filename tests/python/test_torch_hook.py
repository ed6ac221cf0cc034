"""commpress.torch's DDP comm hook over gloo, without MPI (mpirun only
starts the processes): torch.distributed moves the bytes, commpress's C
collectives decide them.

- topk at density 1 sends every entry: each bucket's result must equal
  the rank-order float32 sum of the ranks' own gradients over the ranks
  (DDP's mean), for every bucket of every step;
- quant 4 bits (per bucket, then split by layer with layouts=True): after
  training steps every rank holds identical parameters, bit for bit, and
  the loss falls; sign, dgc, randk, topk with EF21, quant with EControl
  and fp16: identical parameters after 12 steps;
- a forced sparse_rs is refused over this transport (it needs
  v-collectives), on every rank alike."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.nn as nn  # noqa: E402

import commpress  # noqa: E402
import commpress.torch as ct  # noqa: E402

rank = int(os.environ["OMPI_COMM_WORLD_RANK"])
size = int(os.environ["OMPI_COMM_WORLD_SIZE"])
dist.init_process_group("gloo", init_method="file://" + sys.argv[1], rank=rank, world_size=size)
fails = 0


def check(ok, what):
    global fails
    if not ok:
        fails += 1
        print(f"rank {rank} FAIL: {what}", flush=True)


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


def batch(step):
    g = torch.Generator().manual_seed(1000 * step + rank)
    return torch.randn(32, 64, generator=g), torch.randint(0, 10, (32,), generator=g)


# 1. Density 1: the exact mean, bucket by bucket.
net = model()
ddp = nn.parallel.DistributedDataParallel(net, bucket_cap_mb=0.01)
state = ct.HookState(compressor="topk", density=1, feedback="ef")
seen = []


def recording_hook(st, bucket):
    local = bucket.buffer().clone()
    fut = ct.compressed_hook(st, bucket)
    got = fut.value()
    every = [torch.empty_like(local) for _ in range(size)]
    dist.all_gather(every, local)
    want = torch.zeros_like(local)
    for t in every:  # rank order, from 0.0f
        want = want + t
    want /= size
    seen.append(torch.equal(got, want))
    return fut


ddp.register_comm_hook(state, recording_hook)
for step in range(3):
    x, y = batch(step)
    net.zero_grad()
    nn.functional.cross_entropy(ddp(x), y).backward()
check(len(seen) >= 3 and all(seen), f"density 1: {seen.count(False)} of {len(seen)} buckets "
      "differ from the rank-order mean")

# 2. quant 4 bits, per bucket and per layer: identical parameters, a falling loss.
for layouts in (False, True):
    net = model()
    ddp = nn.parallel.DistributedDataParallel(net, bucket_cap_mb=0.01)
    state = ct.HookState(compressor="quant", layouts=layouts, bits=4)
    ddp.register_comm_hook(state, ct.compressed_hook)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for step in range(60):
        x, y = batch(step % 4)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(ddp(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    every = [torch.empty_like(flat) for _ in range(size)]
    dist.all_gather(every, flat)
    check(all(e.view(torch.int32).equal(flat.view(torch.int32)) for e in every),
          f"quant (layouts={layouts}): parameters differ between ranks")
    check(sum(losses[-4:]) < 0.7 * sum(losses[:4]), f"quant (layouts={layouts}): loss "
          f"{sum(losses[:4]) / 4:.3f} -> {sum(losses[-4:]) / 4:.3f}")
    check(state.calls >= 60, f"{state.calls} compressed calls")
    state.close()

# 2b. Every other codec family and feedback variant, through the same
# transport: identical parameters on every rank after 12 steps.
for comp, settings in (("sign", {}), ("dgc", {"density": 0.05}), ("randk", {"randk_density": 0.05}),
                       ("topk", {"density": 0.05, "feedback": "ef21"}),
                       ("quant", {"bits": 2, "feedback": "econtrol"}), ("fp16", {})):
    net = model()
    ddp = nn.parallel.DistributedDataParallel(net, bucket_cap_mb=0.01)
    state = ct.HookState(compressor=comp, **settings)
    ddp.register_comm_hook(state, ct.compressed_hook)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    for step in range(12):
        x, y = batch(step % 4)
        opt.zero_grad()
        nn.functional.cross_entropy(ddp(x), y).backward()
        opt.step()
    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    every = [torch.empty_like(flat) for _ in range(size)]
    dist.all_gather(every, flat)
    check(torch.isfinite(flat).all() and
          all(e.view(torch.int32).equal(flat.view(torch.int32)) for e in every),
          f"{comp} {settings}: parameters differ between ranks (or are not finite)")
    check(state.calls >= 12, f"{comp}: {state.calls} compressed calls")
    state.close()

# 3. sparse_rs needs v-collectives: refused, on every rank.
try:
    ct.HookState(compressor="topk", allreduce_algo="sparse_rs")
    check(False, "sparse_rs over torch.distributed was accepted")
except commpress.CommpressError as e:
    check(e.status == -7, f"sparse_rs refused with {e.status}, not -7 (config)")

total = torch.tensor([fails])
dist.all_reduce(total)
if rank == 0:
    print(f"torch hook: {'passed' if total.item() == 0 else 'FAILED'} ({total.item()} failures)")
dist.destroy_process_group()
sys.exit(1 if total.item() else 0)
