"""commpress from Python: ctypes bindings to libcommpress.so (no compiling).

    from mpi4py import MPI
    from commpress import OneBitAdam          # torch.optim.Optimizer
    opt = OneBitAdam(model.parameters(), comm=MPI.COMM_WORLD, lr=1e-3,
                     freeze_step=1000)

OneBitAdamFlat is the same optimizer on flat numpy arrays (no torch).
FLClient and FLServer run SCAFCOM, SCALLION and FedAvg on numpy arrays.
register_layout and layout_offsets split a fused gradient buffer into its
layers for the preloaded shim. commpress.torch is a DDP comm hook that
compresses over torch.distributed (gloo), no MPI needed.
See docs/onebit_adam.md, docs/federated.md, docs/lgreco.md and docs/torch.md."""
from ._lib import CommpressError, lib, shim_stats, strerror  # noqa: F401
from .fl import FLClient, FLServer, RefusedError  # noqa: F401
from .layout import layout_offsets, register_layout, unregister_layout  # noqa: F401
from .moe import MoEComm, lsh_moe  # noqa: F401
from .onebit_adam import OneBitAdamFlat  # noqa: F401

NONFINITE = -9


def __getattr__(name):
    if name == "OneBitAdam":  # imports torch only when asked for
        from . import onebit_adam
        return onebit_adam.OneBitAdam
    if name == "torch":  # the DDP comm hook (commpress.torch)
        import importlib
        return importlib.import_module(".torch", __name__)
    raise AttributeError(name)
