"""Federated learning from Python (numpy): SCAFCOM, SCALLION and FedAvg
clients and server of optim/fl.c through ctypes (docs/federated.md).

    cfg = dict(algorithm="scafcom", compressor="topk", density=0.01, dim=d)
    server = FLServer(cfg, x0)
    client = FLClient(cfg, client_id=7)
    msg = client.round(server.model, server.control, server.round, grad_fn)
    server.aggregate([msg, ...])

grad_fn(y) takes the local model (float32 numpy array) and returns the
stochastic gradient (an array of the same size). Messages are bytes.

A round with a bad message (malformed, or decoding to Inf/NaN, or whose
sum or update overflows) is refused whole: aggregate() raises RefusedError
with the C library's one-line reason and the client it names, and the
server is unchanged. The recommended policy (docs/federated.md, "Refused
rounds"): drop that message and aggregate again; the refused client
reloads the state it saved before its round.

    saved = {i: clients[i].save() for i in sampled}   # before the round
    msgs = {i: clients[i].round(x, c, r, grad_fn) for i in sampled}
    while msgs:
        try:
            server.aggregate(list(msgs.values()))
            break
        except RefusedError as e:
            if e.client is None or e.client not in msgs:
                raise                                   # nobody to drop
            del msgs[e.client]
            clients[e.client].load(saved[e.client])     # roll c_i back
"""
import ctypes

import numpy as np

from ._lib import CommpressError, check, lib, release as _release, save_blob

_FP = ctypes.POINTER(ctypes.c_float)
_GRAD = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, _FP, _FP, ctypes.c_size_t)


class _Config(ctypes.Structure):
    _fields_ = [("algorithm", ctypes.c_char_p), ("compressor", ctypes.c_char_p),
                ("density", ctypes.c_double), ("bits", ctypes.c_int),
                ("bucket", ctypes.c_size_t), ("stochastic", ctypes.c_int),
                ("dim", ctypes.c_size_t), ("num_clients", ctypes.c_size_t),
                ("local_steps", ctypes.c_int), ("lr_local", ctypes.c_double),
                ("lr_global", ctypes.c_double), ("beta", ctypes.c_double),
                ("alpha", ctypes.c_double), ("seed", ctypes.c_uint64),
                ("topk_fp16", ctypes.c_int)]


def _declared():
    L = lib()
    if getattr(L, "_fl_declared", False):
        return L
    vp, sz, cp = ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(_Config)
    L.commpress_fl_config_default.argtypes = [cp]
    L.commpress_fl_config_default.restype = None
    L.commpress_fl_message_max.argtypes = [cp]
    L.commpress_fl_message_max.restype = sz
    L.commpress_fl_client_create.argtypes = [cp, ctypes.c_uint32, ctypes.POINTER(vp)]
    L.commpress_fl_client_destroy.argtypes = [vp]
    L.commpress_fl_client_destroy.restype = None
    L.commpress_fl_client_round.argtypes = [vp, _FP, _FP, ctypes.c_uint64, _GRAD, vp,
                                            vp, sz, ctypes.POINTER(sz)]
    L.commpress_fl_client_save.argtypes = [vp, vp, sz, ctypes.POINTER(sz)]
    L.commpress_fl_client_load.argtypes = [vp, ctypes.c_char_p, sz]
    L.commpress_fl_server_create.argtypes = [cp, _FP, ctypes.POINTER(vp)]
    L.commpress_fl_server_destroy.argtypes = [vp]
    L.commpress_fl_server_destroy.restype = None
    L.commpress_fl_server_model.argtypes = [vp]
    L.commpress_fl_server_model.restype = _FP
    L.commpress_fl_server_control.argtypes = [vp]
    L.commpress_fl_server_control.restype = _FP
    L.commpress_fl_server_round.argtypes = [vp]
    L.commpress_fl_server_round.restype = ctypes.c_uint64
    L.commpress_fl_server_aggregate.argtypes = [vp, ctypes.POINTER(ctypes.c_void_p),
                                                ctypes.POINTER(sz), sz]
    L.commpress_fl_server_save.argtypes = [vp, vp, sz, ctypes.POINTER(sz)]
    L.commpress_fl_server_load.argtypes = [vp, ctypes.c_char_p, sz]
    L.commpress_fl_server_uplink.argtypes = [vp, ctypes.POINTER(ctypes.c_ulonglong),
                                             ctypes.POINTER(ctypes.c_ulonglong)]
    L.commpress_fl_server_uplink.restype = None
    L.commpress_fl_server_error.argtypes = [vp]
    L.commpress_fl_server_error.restype = ctypes.c_char_p
    L.commpress_fl_server_refused.argtypes = [vp]
    L.commpress_fl_server_refused.restype = ctypes.c_int64
    L._fl_declared = True
    return L


class RefusedError(CommpressError, ValueError):
    """The server refused a round (or a checkpoint) and did not change.
    str(e) is commpress_fl_server_error's line, exactly; .client is the
    client it names (commpress_fl_server_refused) or None; .status is the
    C status: -3 malformed, -9 non-finite values (sum or update overflow)."""

    def __init__(self, message, client, status):
        Exception.__init__(self, message)
        self.client = client
        self.status = status


def _config(cfg):
    c = _Config()
    _declared().commpress_fl_config_default(ctypes.byref(c))
    for k, v in cfg.items():
        if k not in dict(_Config._fields_):
            raise ValueError(f"unknown FL setting {k!r}")
        setattr(c, k, v.encode() if isinstance(v, str) else v)
    return c


def _ptr(a):
    return a.ctypes.data_as(_FP)


def _f32(a, n, what):
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.size != n:
        raise ValueError(f"{what} has {a.size} elements, expected {n}")
    return a


class FLClient:
    def __init__(self, cfg, client_id):
        self._c = _config(cfg)  # keeps the strings alive
        self.dim = self._c.dim
        self._h = ctypes.c_void_p()
        L = _declared()
        self._destroy = L.commpress_fl_client_destroy
        check("commpress_fl_client_create",
              L.commpress_fl_client_create(ctypes.byref(self._c), client_id, ctypes.byref(self._h)))
        self._buf = ctypes.create_string_buffer(L.commpress_fl_message_max(ctypes.byref(self._c)))

    def __del__(self):
        _release(self)

    def round(self, x, c, rnd, grad_fn):
        """K local steps from (x, c); returns the uplink message (bytes)."""
        x, c = _f32(x, self.dim, "x"), _f32(c, self.dim, "c")
        err = []

        def cb(_user, y, g, n):
            try:
                out = np.asarray(grad_fn(np.ctypeslib.as_array(y, (n,))), dtype=np.float32)
                if out.size != n:
                    raise ValueError("gradient of the wrong size")
                np.ctypeslib.as_array(g, (n,))[:] = out.ravel()
                return 0
            except Exception as e:  # reported after the C call returns
                err.append(e)
                return 1
        n = ctypes.c_size_t()
        rc = _declared().commpress_fl_client_round(self._h, _ptr(x), _ptr(c), rnd, _GRAD(cb),
                                                   None, self._buf, len(self._buf),
                                                   ctypes.byref(n))
        if err:
            raise err[0]
        check("commpress_fl_client_round", rc)
        return self._buf.raw[:n.value]

    def save(self):
        return save_blob("commpress_fl_client_save", _declared().commpress_fl_client_save,
                         self._h)

    def load(self, blob):
        check("commpress_fl_client_load",
              _declared().commpress_fl_client_load(self._h, bytes(blob), len(blob)))


class FLServer:
    def __init__(self, cfg, x0):
        self._c = _config(cfg)
        self.dim = self._c.dim
        x0 = _f32(x0, self.dim, "x0")
        self._h = ctypes.c_void_p()
        self._destroy = _declared().commpress_fl_server_destroy
        check("commpress_fl_server_create",
              _declared().commpress_fl_server_create(ctypes.byref(self._c), _ptr(x0),
                                                     ctypes.byref(self._h)))

    def __del__(self):
        _release(self)

    @property
    def model(self):
        return np.ctypeslib.as_array(_declared().commpress_fl_server_model(self._h),
                                     (self.dim,)).copy()

    @property
    def control(self):
        return np.ctypeslib.as_array(_declared().commpress_fl_server_control(self._h),
                                     (self.dim,)).copy()

    @property
    def round(self):
        return int(_declared().commpress_fl_server_round(self._h))

    def aggregate(self, msgs):
        """One round from the sampled clients' messages. A refused round
        raises RefusedError (str: the C reason; .client: the client named)
        and changes nothing."""
        msgs = [bytes(m) for m in msgs]
        bufs = [ctypes.create_string_buffer(m, len(m)) for m in msgs]
        ptrs = (ctypes.c_void_p * len(msgs))(*[ctypes.cast(b, ctypes.c_void_p) for b in bufs])
        lens = (ctypes.c_size_t * len(msgs))(*[len(m) for m in msgs])
        self._refused("commpress_fl_server_aggregate",
                      _declared().commpress_fl_server_aggregate(self._h, ptrs, lens, len(msgs)))

    def _refused(self, what, rc):
        """Raises RefusedError for a refusal (-3, -9) that the server
        explains, CommpressError for any other failure."""
        if rc == 0:
            return
        L = _declared()
        why = L.commpress_fl_server_error(self._h).decode()
        if rc in (-3, -9) and why:
            who = int(L.commpress_fl_server_refused(self._h))
            raise RefusedError(why, None if who < 0 else who, rc)
        check(what, rc)

    def uplink(self):
        b, d = ctypes.c_ulonglong(), ctypes.c_ulonglong()
        _declared().commpress_fl_server_uplink(self._h, ctypes.byref(b), ctypes.byref(d))
        return b.value, d.value

    def save(self):
        return save_blob("commpress_fl_server_save", _declared().commpress_fl_server_save,
                         self._h)

    def load(self, blob):
        """Refuses (RefusedError, client None; the server unchanged) a
        truncated, corrupt or foreign checkpoint, or one holding Inf/NaN."""
        self._refused("commpress_fl_server_load",
                      _declared().commpress_fl_server_load(self._h, bytes(blob), len(blob)))

    @property
    def error(self):
        """commpress_fl_server_error: why the last aggregate or load failed
        ("" after a success)."""
        return _declared().commpress_fl_server_error(self._h).decode()
