"""LSH-MoE (Nie et al., NeurIPS 2024) from Python: the explicit API of
include/commpress_moe.h through ctypes, over an mpi4py communicator, on
numpy arrays or CPU torch tensors (docs/moe.md).

    moe = commpress.MoEComm(MPI.COMM_WORLD, hidden=d, hashes=6)
    y = commpress.lsh_moe(x, send_counts, expert, moe)   # torch, autograd

x holds this rank's tokens grouped by destination rank (send_counts[p]
rows for rank p); expert maps the rows this rank receives (the senders'
centroids) to outputs of the same shape; y holds one output row per token
of x: the output of its bucket's centroid plus its residual. Every rank
calls together (the exchanges are all-to-alls)."""
import ctypes

import numpy as np

from ._lib import check, lib, mpi_comm_handle, release


class MoEConfig(ctypes.Structure):
    _fields_ = [("hidden", ctypes.c_size_t), ("hashes", ctypes.c_int),
                ("seed", ctypes.c_uint64), ("max_fraction", ctypes.c_double),
                ("compensate", ctypes.c_int)]


class MoEStats(ctypes.Structure):
    _fields_ = [(n, ctypes.c_double if n == "hash_seconds" else ctypes.c_ulonglong)
                for n in ("dispatches", "rows", "rows_sent", "raw_destinations",
                          "bytes_sent", "bytes_raw", "hash_seconds")]


def _declared():
    L = lib()
    if getattr(L, "_moe_declared", False):
        return L
    vp, sz = ctypes.c_void_p, ctypes.c_size_t
    fp = ctypes.POINTER(ctypes.c_float)
    L.commpress_moe_config_default.argtypes = [ctypes.POINTER(MoEConfig)]
    L.commpress_moe_config_default.restype = None
    L.commpress_moe_create.argtypes = [ctypes.POINTER(MoEConfig), vp, ctypes.POINTER(vp)]
    L.commpress_moe_destroy.argtypes = [vp]
    L.commpress_moe_destroy.restype = None
    L.commpress_moe_dispatch.argtypes = [vp, fp, ctypes.POINTER(sz), ctypes.POINTER(vp)]
    L.commpress_moe_expert_rows.argtypes = [vp, ctypes.POINTER(sz),
                                            ctypes.POINTER(ctypes.POINTER(sz))]
    L.commpress_moe_expert_rows.restype = fp
    L.commpress_moe_combine.argtypes = [vp, fp, fp]
    L.commpress_moe_combine_backward.argtypes = [vp, fp, fp]
    L.commpress_moe_dispatch_backward.argtypes = [vp, fp, fp]
    L.commpress_moe_release.argtypes = [vp]
    L.commpress_moe_release.restype = None
    L.commpress_moe_stats.argtypes = [vp, ctypes.POINTER(MoEStats)]
    L.commpress_moe_stats.restype = None
    L._moe_declared = True
    return L


def _f32(a, rows, d, what):
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.size != rows * d:
        raise ValueError(f"{what}: {rows} rows of {d} floats expected, got {a.size} floats")
    return a


def _ptr(a):
    return a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


class MoEComm:
    """A context on `comm` (collective to create): rows of `hidden` floats."""

    def __init__(self, comm, hidden, hashes=6, seed=1, max_fraction=0.5, compensate=True):
        L = _declared()
        cfg = MoEConfig()
        L.commpress_moe_config_default(ctypes.byref(cfg))
        cfg.hidden, cfg.hashes, cfg.seed = hidden, hashes, seed
        cfg.max_fraction, cfg.compensate = max_fraction, int(bool(compensate))
        self.hidden, self.size = int(hidden), comm.Get_size()
        self._h = ctypes.c_void_p()
        self._destroy = L.commpress_moe_destroy
        check("commpress_moe_create",
              L.commpress_moe_create(ctypes.byref(cfg), mpi_comm_handle(comm),
                                     ctypes.byref(self._h)))

    def __del__(self):
        release(self)

    def dispatch(self, rows, send_counts):
        """Collective: returns a Handle whose expert_rows() the expert runs on."""
        counts = [int(c) for c in send_counts]
        if len(counts) != self.size:
            raise ValueError(f"send_counts: one count per rank ({self.size})")
        n = sum(counts)
        rows = _f32(rows, n, self.hidden, "dispatch")
        c = (ctypes.c_size_t * self.size)(*counts)
        h = ctypes.c_void_p()
        check("commpress_moe_dispatch",
              _declared().commpress_moe_dispatch(self._h, _ptr(rows), c, ctypes.byref(h)))
        return Handle(self, h, n)

    def stats(self):
        st = MoEStats()
        _declared().commpress_moe_stats(self._h, ctypes.byref(st))
        return {n: getattr(st, n) for n, _ in MoEStats._fields_}


class Handle:
    """One dispatch, paired with its combine and both backward steps."""

    def __init__(self, moe, h, n):
        self.moe, self._h, self.n = moe, h, n
        self._destroy = _declared().commpress_moe_release
        R, counts = ctypes.c_size_t(), ctypes.POINTER(ctypes.c_size_t)()
        p = _declared().commpress_moe_expert_rows(h, ctypes.byref(R), ctypes.byref(counts))
        self.R = R.value
        self.recv_counts = [counts[i] for i in range(moe.size)]
        d = moe.hidden
        self._rows = np.ctypeslib.as_array(p, shape=(max(self.R * d, 1),))[:self.R * d].copy()

    def __del__(self):
        release(self)

    def expert_rows(self):
        """The expert's input, R x hidden (a copy), grouped by source rank."""
        return self._rows.reshape(self.R, self.moe.hidden)

    def _call(self, fn, what, a, rows_in, rows_out):
        d = self.moe.hidden
        a = _f32(a, rows_in, d, what)
        out = np.empty((rows_out, d), dtype=np.float32)
        check(what, fn(self._h, _ptr(a), _ptr(out)))
        return out

    def combine(self, expert_out):
        """Collective: one output row per token dispatched."""
        return self._call(_declared().commpress_moe_combine, "commpress_moe_combine",
                          expert_out, self.R, self.n)

    def combine_backward(self, grad_out):
        return self._call(_declared().commpress_moe_combine_backward,
                          "commpress_moe_combine_backward", grad_out, self.n, self.R)

    def dispatch_backward(self, grad_expert_in):
        return self._call(_declared().commpress_moe_dispatch_backward,
                          "commpress_moe_dispatch_backward", grad_expert_in, self.R, self.n)


def lsh_moe(x, send_counts, expert, moe):
    """y = LSH-MoE(x) with autograd (torch, CPU float32): dispatch, the
    expert (any torch callable, rows to rows), combine. The backward runs
    the library's rule (docs/moe.md) through both exchanges."""
    import torch

    box = {}

    class Dispatch(torch.autograd.Function):
        @staticmethod
        def forward(ctx, rows):
            box["h"] = moe.dispatch(rows.detach().numpy(), send_counts)
            return torch.from_numpy(box["h"].expert_rows().copy())

        @staticmethod
        def backward(ctx, grad_in):
            g = box["h"].dispatch_backward(grad_in.detach().contiguous().numpy())
            return torch.from_numpy(g)

    class Combine(torch.autograd.Function):
        @staticmethod
        def forward(ctx, expert_out):
            return torch.from_numpy(box["h"].combine(expert_out.detach().contiguous().numpy()))

        @staticmethod
        def backward(ctx, grad_out):
            # Runs first in the backward pass: the bucket sums go to the
            # experts, and dL/dy stays in the handle for Dispatch's.
            g = box["h"].combine_backward(grad_out.detach().contiguous().numpy())
            return torch.from_numpy(g)

    return Combine.apply(expert(Dispatch.apply(x)))
