"""Loads libcommpress.so with ctypes: no compilation at install.

Search order: $COMMPRESS_LIB, a libcommpress.so already in the process
(LD_PRELOAD), the library an install put next to this package (its
_install.py, written by cmake --install), the build tree beside this
package (../../build), then the system's library path."""
import ctypes
import ctypes.util
import os

_HERE = os.path.dirname(os.path.abspath(__file__))
_lib = None


class CommpressError(RuntimeError):
    """A commpress call failed; .status is the negative status code."""

    def __init__(self, what, status):
        self.status = status
        super().__init__(f"{what}: {strerror(status)} ({status})")


def _candidates():
    env = os.environ.get("COMMPRESS_LIB")
    if env:
        yield env
    for entry in os.environ.get("LD_PRELOAD", "").replace(":", " ").split():
        if os.path.basename(entry).startswith("libcommpress"):
            yield entry
    try:
        from ._install import LIBRARY  # cmake --install writes it
        yield os.path.normpath(os.path.join(_HERE, LIBRARY))
    except ImportError:
        pass
    yield os.path.join(_HERE, "..", "..", "build", "libcommpress.so")
    found = ctypes.util.find_library("commpress")
    if found:
        yield found


def lib():
    global _lib
    if _lib is not None:
        return _lib
    tried = []
    for path in _candidates():
        tried.append(path)
        if os.path.sep in path and not os.path.exists(path):
            continue
        try:
            _lib = ctypes.CDLL(path)
        except OSError:
            continue
        _declare(_lib)
        return _lib
    raise ImportError("libcommpress.so not found (tried: " + ", ".join(tried) +
                      "); build it (scripts/build.sh) or set COMMPRESS_LIB")


class OneBitAdamConfig(ctypes.Structure):
    _fields_ = [("lr", ctypes.c_double), ("beta1", ctypes.c_double),
                ("beta2", ctypes.c_double), ("eps", ctypes.c_double),
                ("weight_decay", ctypes.c_double), ("freeze_step", ctypes.c_uint64)]


class OneBitAdamStats(ctypes.Structure):
    _fields_ = [("steps", ctypes.c_ulonglong), ("steps_compressed", ctypes.c_ulonglong),
                ("steps_skipped", ctypes.c_ulonglong), ("bytes_sent", ctypes.c_ulonglong),
                ("bytes_dense", ctypes.c_ulonglong), ("ratio", ctypes.c_double)]


def _declare(L):
    vp, sz, fp = ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_float)
    L.commpress_strerror.restype = ctypes.c_char_p
    L.commpress_strerror.argtypes = [ctypes.c_int]
    L.commpress_onebit_adam_config_default.argtypes = [ctypes.POINTER(OneBitAdamConfig)]
    L.commpress_onebit_adam_create.argtypes = [ctypes.POINTER(OneBitAdamConfig), vp, sz,
                                               ctypes.POINTER(vp)]
    L.commpress_onebit_adam_destroy.argtypes = [vp]
    L.commpress_onebit_adam_destroy.restype = None
    L.commpress_onebit_adam_step.argtypes = [vp, fp, fp, sz]
    L.commpress_onebit_adam_set_lr.argtypes = [vp, ctypes.c_double]
    L.commpress_onebit_adam_steps.argtypes = [vp]
    L.commpress_onebit_adam_steps.restype = ctypes.c_uint64
    L.commpress_onebit_adam_save.argtypes = [vp, vp, sz, ctypes.POINTER(sz)]
    L.commpress_onebit_adam_load.argtypes = [vp, ctypes.c_char_p, sz]
    L.commpress_onebit_adam_stats.argtypes = [vp, ctypes.POINTER(OneBitAdamStats)]
    L.commpress_onebit_adam_stats.restype = None


def release(obj):
    """__del__ of the handle classes: frees obj._h with obj._destroy (bound
    at creation: at interpreter exit module globals may be gone) and never
    raises."""
    h, obj._h = getattr(obj, "_h", None), None
    if h:
        try:
            obj._destroy(h)
        except Exception:
            pass


def strerror(status):
    return lib().commpress_strerror(status).decode()


def check(what, status):
    if status != 0:
        raise CommpressError(what, status)


def save_blob(what, fn, handle):
    """Bytes of a C save function that takes (handle, buf, cap, &len) and
    gives the size when buf is NULL."""
    n = ctypes.c_size_t()
    check(what, fn(handle, None, 0, ctypes.byref(n)))
    buf = ctypes.create_string_buffer(n.value)
    check(what, fn(handle, buf, n.value, ctypes.byref(n)))
    return buf.raw[:n.value]


class ShimStats(ctypes.Structure):
    """commpress_stats_t of include/commpress.h, field for field."""
    _fields_ = [(n, ctypes.c_double if n in ("ratio", "compress_seconds") else ctypes.c_ulonglong)
                for n in ("calls_compressed", "calls_passthrough", "calls_nonfinite",
                          "bytes_uncompressed", "bytes_sent", "bytes_passthrough", "ratio",
                          "compress_seconds", "state_bytes", "state_bytes_peak", "calls_sparse",
                          "bytes_uncompressed_sparse", "bytes_sent_sparse",
                          "calls_fallback", "states_dropped",
                          "adapt_plans", "bytes_sent_uniform", "a2a_calls_compressed",
                          "a2a_bytes_uncompressed", "a2a_bytes_sent", "calls_plain",
                          "calls_pipelined", "calls_fused")]


def shim_stats():
    """The preloaded shim's statistics (commpress_stats) as a dict, or None
    when libcommpress.so is not preloaded into this process."""
    try:
        f = ctypes.CDLL(None).commpress_stats
    except AttributeError:
        return None
    st = ShimStats()
    f(ctypes.byref(st))
    return {n: getattr(st, n) for n, _ in ShimStats._fields_}


def mpi_comm_handle(comm):
    """The C MPI_Comm of an mpi4py communicator (Open MPI: a pointer)."""
    from mpi4py import MPI
    return ctypes.c_void_p(MPI._handleof(comm))
