"""1-bit Adam (Tang et al., 2021) as a torch.optim.Optimizer, running the C
implementation (optim/onebit_adam.c) through ctypes.

All parameters are flattened into one fp32 vector per optimizer; every
step copies the parameters and gradients in, runs the collective step on
the given mpi4py communicator, and copies the parameters back. The
optimizer is collective: every rank of `comm` calls step() together, with
the same parameter shapes. A step whose gradient is non-finite on any rank
is skipped everywhere (step() then sets .last_step_skipped = True)."""
import ctypes

import numpy as np

from ._lib import (OneBitAdamConfig, OneBitAdamStats, check, lib, mpi_comm_handle, release,
                   save_blob)

_NONFINITE = -9


class OneBitAdamFlat:
    """The optimizer on flat numpy float32 vectors (no torch needed)."""

    def __init__(self, count, comm, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                 weight_decay=0.0, freeze_step=100000):
        L = lib()
        cfg = OneBitAdamConfig()
        L.commpress_onebit_adam_config_default(ctypes.byref(cfg))
        cfg.lr, (cfg.beta1, cfg.beta2), cfg.eps = lr, betas, eps
        cfg.weight_decay, cfg.freeze_step = weight_decay, freeze_step
        self._h = ctypes.c_void_p()
        # Bound now: at interpreter exit module globals may already be gone
        # when __del__ runs.
        self._destroy = L.commpress_onebit_adam_destroy
        self.count = int(count)
        self.comm = comm
        check("commpress_onebit_adam_create",
              L.commpress_onebit_adam_create(ctypes.byref(cfg), mpi_comm_handle(comm),
                                             self.count, ctypes.byref(self._h)))

    def __del__(self):
        # After MPI_Finalize the C destroy frees memory only
        # (commpress_onebit_adam_destroy).
        release(self)

    @staticmethod
    def _ptr(a):
        return a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))

    def step(self, params, grads):
        """params, grads: contiguous float32 arrays of `count`; params is
        updated in place. Returns False when the step was skipped."""
        for a in (params, grads):
            if a.dtype != np.float32 or not a.flags.c_contiguous or a.size != self.count:
                raise ValueError(f"need contiguous float32 arrays of {self.count} elements")
        rc = lib().commpress_onebit_adam_step(self._h, self._ptr(params),
                                              self._ptr(grads), self.count)
        if rc == _NONFINITE:
            return False
        check("commpress_onebit_adam_step", rc)
        return True

    def set_lr(self, lr):
        check("commpress_onebit_adam_set_lr", lib().commpress_onebit_adam_set_lr(self._h, lr))

    @property
    def steps(self):
        return int(lib().commpress_onebit_adam_steps(self._h))

    def save(self):
        """This rank's complete state as bytes."""
        return save_blob("commpress_onebit_adam_save", lib().commpress_onebit_adam_save,
                         self._h)

    def load(self, blob):
        check("commpress_onebit_adam_load",
              lib().commpress_onebit_adam_load(self._h, bytes(blob), len(blob)))

    def stats(self):
        s = OneBitAdamStats()
        lib().commpress_onebit_adam_stats(self._h, ctypes.byref(s))
        return {k: getattr(s, k) for k, _ in s._fields_}


def _torch_optimizer():
    import torch

    class OneBitAdam(torch.optim.Optimizer):
        """torch.optim.Optimizer for 1-bit Adam over an mpi4py communicator.

        Do not allreduce the gradients yourself: the optimizer does it (an
        exact average before freeze_step, the 1-bit momentum allreduce
        after). One parameter group; its 'lr' is read every step, so
        learning-rate schedulers work."""

        def __init__(self, params, comm, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                     weight_decay=0.0, freeze_step=100000):
            defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                            freeze_step=freeze_step)
            super().__init__(params, defaults)
            if len(self.param_groups) != 1:
                raise ValueError("OneBitAdam takes one parameter group")
            ps = self.param_groups[0]["params"]
            for p in ps:
                if p.dtype != torch.float32 or p.device.type != "cpu":
                    raise ValueError("OneBitAdam needs float32 CPU parameters")
            self._count = sum(p.numel() for p in ps)
            self._flat = OneBitAdamFlat(self._count, comm, lr, betas, eps, weight_decay,
                                        freeze_step)
            self._p = torch.zeros(self._count)
            self._g = torch.zeros(self._count)
            self.last_step_skipped = False

        def _gather(self, dst, grads):
            off = 0
            for p in self.param_groups[0]["params"]:
                n = p.numel()
                if grads:
                    if p.grad is None:
                        dst[off:off + n].zero_()
                    else:
                        dst[off:off + n].copy_(p.grad.detach().view(-1))
                else:
                    dst[off:off + n].copy_(p.detach().view(-1))
                off += n

        @torch.no_grad()
        def step(self, closure=None):
            loss = None
            if closure is not None:
                with torch.enable_grad():
                    loss = closure()
            self._flat.set_lr(self.param_groups[0]["lr"])
            self._gather(self._p, False)
            self._gather(self._g, True)
            ok = self._flat.step(self._p.numpy(), self._g.numpy())
            self.last_step_skipped = not ok
            if ok:
                off = 0
                for p in self.param_groups[0]["params"]:
                    n = p.numel()
                    p.copy_(self._p[off:off + n].view_as(p))
                    off += n
            return loss

        def stats(self):
            return self._flat.stats()

        def state_dict(self):
            sd = super().state_dict()
            sd["commpress_onebit_adam"] = self._flat.save()
            return sd

        def load_state_dict(self, state_dict):
            """Collective: every rank loads its own checkpoint; if any rank's
            is missing, corrupt or of another step, all raise and none
            changes (commpress_onebit_adam_load)."""
            state_dict = dict(state_dict)
            blob = state_dict.pop("commpress_onebit_adam", None)
            # Called on every rank even without a blob (it then fails
            # there), so that the others refuse too instead of waiting.
            self._flat.load(blob if blob is not None else b"")
            super().load_state_dict(state_dict)

    return OneBitAdam


_OneBitAdam = None


def __getattr__(name):
    global _OneBitAdam
    if name == "OneBitAdam":
        if _OneBitAdam is None:
            _OneBitAdam = _torch_optimizer()
        return _OneBitAdam
    raise AttributeError(name)
