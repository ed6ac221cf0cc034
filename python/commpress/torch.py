"""A PyTorch DDP communication hook: commpress's compressed allreduce of
each gradient bucket over the process group's own collectives (gloo, or
anything torch.distributed runs), without MPI.

    import commpress.torch
    state = commpress.torch.HookState(process_group=None, compressor="quant", bits=4)
    ddp_model.register_comm_hook(state, commpress.torch.compressed_hook)

Settings are named as the COMMPRESS_* variables, in lower case without
the prefix (bits=4, density=0.01, feedback="ef21", topk_values="fp16",
allreduce_algo="twophase"; `commpress-info` lists them). The collectives
run in the C library (the two-phase and sparse-allgather schedules, their
agreement and fallbacks: docs/design.md), which calls back here to move
bytes with torch.distributed: every rank gets identical bits, and a
bucket's error feedback is kept per bucket index. The hook returns the
mean (DDP's convention). CPU tensors (float32) are compressed; other
buckets (CUDA, other dtypes) go to the group's plain allreduce.
`HookState.layout(bucket)` gives a bucket's parameter offsets, and
`layouts=True` splits each bucket by its parameters (each its own
tensor: error feedback and L-GreCo settings per layer, docs/lgreco.md).
docs/torch.md has the details and an example."""
import ctypes

import torch
import torch.distributed as dist

from ._lib import CommpressError, check, lib, release


class _Config(ctypes.Structure):
    _fields_ = [("compressor", ctypes.c_char_p), ("density", ctypes.c_double),
                ("bits", ctypes.c_int), ("bucket", ctypes.c_size_t),
                ("stochastic", ctypes.c_int), ("feedback", ctypes.c_char_p),
                ("topk_select", ctypes.c_char_p), ("topk_sample_min", ctypes.c_size_t),
                ("algorithm", ctypes.c_char_p), ("seed", ctypes.c_uint64),
                ("dgc_momentum", ctypes.c_double), ("dgc_clip", ctypes.c_double),
                ("dgc_warmup_steps", ctypes.c_uint64), ("dgc_dense_below", ctypes.c_size_t),
                ("econtrol_eta", ctypes.c_double), ("topk_fp16", ctypes.c_int),
                ("ef21_sgdm_eta", ctypes.c_double), ("settings", ctypes.c_char_p)]


_BYTES = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                          ctypes.c_size_t)
_MAX = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64),
                        ctypes.c_size_t)
_SUM = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                        ctypes.c_size_t)


class _Transport(ctypes.Structure):
    _fields_ = [("rank", ctypes.c_int), ("size", ctypes.c_int), ("user", ctypes.c_void_p),
                ("alltoall", _BYTES), ("allgather", _BYTES), ("allreduce_max_u64", _MAX),
                ("allreduce_sum_f32", _SUM)]


def _declare(L):
    if getattr(L, "_torch_declared", False):
        return
    vp = ctypes.c_void_p
    L.commpress_config_default.argtypes = [ctypes.POINTER(_Config)]
    L.commpress_config_default.restype = None
    L.commpress_create_transport.argtypes = [ctypes.POINTER(_Config),
                                             ctypes.POINTER(_Transport), ctypes.POINTER(vp)]
    L.commpress_allreduce.argtypes = [vp, vp, vp, ctypes.c_size_t, ctypes.c_uint64]
    L.commpress_destroy.argtypes = [vp]
    L.commpress_destroy.restype = None
    L.commpress_ctx_set_layout.argtypes = [vp, ctypes.c_uint64, ctypes.c_size_t,
                                           ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
    L._torch_declared = True


def _bytes(addr, n):
    """A uint8 tensor over n bytes at addr (no copy)."""
    if n == 0:
        return torch.empty(0, dtype=torch.uint8)
    buf = (ctypes.c_uint8 * n).from_address(addr)
    return torch.frombuffer(buf, dtype=torch.uint8)


class HookState:
    """The compressed allreduce of one process group (default: the world).

    compressor: a codec name ("quant", "topk", "sign", "dgc", "fp16", ...);
    settings: COMMPRESS_* variables in lower case without the prefix;
    layouts: split each bucket by its parameters (see layout())."""

    def __init__(self, process_group=None, compressor="quant", layouts=False, **settings):
        self.group = process_group if process_group is not None else dist.group.WORLD
        self.rank = dist.get_rank(self.group)
        self.size = dist.get_world_size(self.group)
        self.layouts = layouts
        self._laid = set()
        self._error = None
        self.calls = 0
        L = lib()
        _declare(L)
        cfg = _Config()
        L.commpress_config_default(ctypes.byref(cfg))
        self._keep = [compressor.encode()]
        cfg.compressor = self._keep[0]
        items = " ".join(f"COMMPRESS_{k.upper()}={v}" for k, v in settings.items())
        self._keep.append(items.encode())
        cfg.settings = self._keep[1] if items else None
        self._cbs = (_BYTES(self._alltoall), _BYTES(self._allgather), _MAX(self._max_u64),
                     _SUM(self._sum_f32))
        t = _Transport(self.rank, self.size, None, *self._cbs)
        ctx = ctypes.c_void_p()
        check("commpress_create_transport",
              L.commpress_create_transport(ctypes.byref(cfg), ctypes.byref(t), ctypes.byref(ctx)))
        self._h, self._destroy = ctx, L.commpress_destroy

    def close(self):
        release(self)

    __del__ = close

    # The transport: torch.distributed on the group. An exception becomes
    # a failed call (COMMPRESS_ERR_TRANSPORT), re-raised by allreduce().
    def _guard(self, f):
        try:
            f()
            return 0
        except Exception as e:  # noqa: BLE001 (any failure fails the call)
            self._error = e
            return 1

    def _alltoall(self, user, send, recv, nbytes):
        n = self.size * nbytes
        return self._guard(lambda: dist.all_to_all_single(
            _bytes(recv, n), _bytes(send, n).clone(), group=self.group))

    def _allgather(self, user, send, recv, nbytes):
        def run():
            out = list(_bytes(recv, self.size * nbytes).split(nbytes)) if nbytes else \
                [torch.empty(0, dtype=torch.uint8) for _ in range(self.size)]
            dist.all_gather(out, _bytes(send, nbytes).clone(), group=self.group)
        return self._guard(run)

    def _max_u64(self, user, vals, n):
        # torch has no unsigned 64-bit max: gather every rank's words
        # and take the maximum here (n is a few words).
        def run():
            raw = _bytes(ctypes.addressof(vals.contents), 8 * n).clone()
            out = [torch.empty_like(raw) for _ in range(self.size)]
            dist.all_gather(out, raw, group=self.group)
            words = [memoryview(o.numpy()).cast("Q") for o in out]
            for i in range(n):
                vals[i] = max(w[i] for w in words)
        return self._guard(run)

    def _sum_f32(self, user, send, recv, count):
        def run():
            r = _bytes(recv, 4 * count).view(torch.float32)
            if send:
                r.copy_(_bytes(send, 4 * count).view(torch.float32))
            dist.all_reduce(r, group=self.group)
        return self._guard(run)

    def allreduce(self, t, tensor_id):
        """Compressed SUM allreduce of a contiguous float32 CPU tensor, in
        place; tensor_id names its error feedback (the same every step)."""
        assert t.dtype == torch.float32 and t.is_contiguous() and not t.is_cuda
        self._error = None
        rc = lib().commpress_allreduce(self._h, None, t.data_ptr(), t.numel(), tensor_id)
        self.calls += 1
        if rc != 0:
            err = self._error
            raise CommpressError("commpress_allreduce", rc) from err
        return t

    @staticmethod
    def layout(bucket):
        """The bucket's parameter offsets into its flat buffer: [0, ..., n]."""
        offs = [0]
        for g in bucket.gradients():
            offs.append(offs[-1] + g.numel())
        return offs

    def _set_layout(self, bucket):
        i = bucket.index()
        if i in self._laid:
            return
        self._laid.add(i)
        offs = self.layout(bucket)
        if len(offs) > 2:
            arr = (ctypes.c_size_t * len(offs))(*offs)
            check("commpress_ctx_set_layout",
                  lib().commpress_ctx_set_layout(self._h, i, offs[-1], len(offs) - 1, arr))


def compressed_hook(state, bucket):
    """DDP comm hook: the bucket's mean gradient, compressed by commpress."""
    t = bucket.buffer()
    if t.dtype != torch.float32 or t.is_cuda:
        fut = dist.all_reduce(t, group=state.group, async_op=True).get_future()
        return fut.then(lambda f: f.value()[0].div_(state.size))
    if state.layouts:
        state._set_layout(bucket)
    state.allreduce(t, bucket.index())
    t.div_(state.size)
    fut = torch.futures.Future()
    fut.set_result(t)
    return fut
