"""Layouts of fused buffers for the preloaded shim (docs/lgreco.md, "Fused
buffers"): a buffer that packs several layers back to back is compressed
layer by layer (each its own error feedback and, with COMMPRESS_ADAPT, its
own L-GreCo setting) once its layout is registered on every rank, before
the buffer's first allreduce:

    fused = torch.zeros(sum(p.numel() for p in params))
    commpress.register_layout(fused, commpress.layout_offsets(params))
    ...
    comm.Allreduce(MPI.IN_PLACE, fused.numpy(), op=MPI.SUM)

The layout is keyed by the buffer's address: unregister it before freeing
the buffer, or a later buffer at the same address and of the same size
would take it."""
import ctypes

from ._lib import CommpressError


def layout_offsets(tensors):
    """The len(tensors) + 1 offsets of a buffer packing `tensors` back to back
    in the order given, as torch.cat([t.view(-1) for t in tensors]) and
    torch._utils._flatten_dense_tensors pack them: 0, then each running
    sum of sizes. Items may be torch tensors or parameters, numpy arrays,
    or sizes (ints). A DDP-style bucket packs its parameters in its own
    order: pass them in that order."""
    off = [0]
    for t in tensors:
        if isinstance(t, int):
            n = t
        elif callable(getattr(t, "numel", None)):
            n = t.numel()
        else:
            n = t.size
        off.append(off[-1] + int(n))
    return off


def _shim(name):
    try:
        return getattr(ctypes.CDLL(None), name)
    except AttributeError:
        return None


def _address(buf):
    """Address and element count of a contiguous float32 numpy array or CPU
    torch tensor."""
    if callable(getattr(buf, "data_ptr", None)):
        if str(buf.dtype) != "torch.float32" or not buf.is_contiguous() or buf.is_cuda:
            raise ValueError("register_layout: a contiguous float32 CPU tensor is needed")
        return buf.data_ptr(), buf.numel()
    if str(buf.dtype) != "float32" or not buf.flags["C_CONTIGUOUS"]:
        raise ValueError("register_layout: a contiguous float32 array is needed")
    return buf.ctypes.data, buf.size


def register_layout(buf, offsets):
    """Registers buf's layout with the preloaded shim (commpress_register_layout):
    offsets are len(layers) + 1 boundaries, 0 first and buf's size last.
    Returns True, or False when libcommpress.so is not preloaded (the job's
    allreduces are then plain MPI). A layout that does not cover the buffer
    raises CommpressError (status -1) after the library's one-line message."""
    fn = _shim("commpress_register_layout")
    if fn is None:
        return False
    addr, count = _address(buf)
    arr = (ctypes.c_size_t * len(offsets))(*offsets)
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t,
                   ctypes.POINTER(ctypes.c_size_t)]
    rc = fn(addr, count, max(len(offsets) - 1, 0), arr)
    if rc != 0:
        raise CommpressError("commpress_register_layout", rc)
    return True


def unregister_layout(buf):
    """Forgets buf's layout (commpress_unregister_layout)."""
    fn = _shim("commpress_unregister_layout")
    if fn is None:
        return False
    fn.argtypes = [ctypes.c_void_p]
    return fn(_address(buf)[0]) == 0
