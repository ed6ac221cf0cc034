#!/usr/bin/python3
"""Federated learning through python/commpress (numpy only, no MPI): a
poisoned round is refused whole with RefusedError carrying the C library's
reason and client, the server unchanged bit for bit; the recommended policy
(drop the message, aggregate again, roll the refused client back) gives
the round a server without the bad message would have; a crafted
checkpoint with NaN is refused. Run directly, or under mpirun (each rank
runs the same checks alone)."""
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

import numpy as np  # noqa: E402

from commpress import CommpressError, FLClient, FLServer, RefusedError  # noqa: E402

fails = 0


def check(cond, what):
    global fails
    if not cond:
        fails += 1
        print(f"FAIL: {what}", file=sys.stderr)


ALGO = {"fedavg": 0, "scafcom": 1, "scallion": 2}


def message(cid, algo, rnd, d, payload):
    """optim/fl.c's 40-byte header, by hand, then the payload."""
    return struct.pack("<IIIIQQQ", 0x4d465043, 1, cid, ALGO[algo], rnd, d,
                       len(payload)) + payload


def topk_one(cid, algo, d, idx, val):
    return message(cid, algo, 0, d, struct.pack("<IIf", 1, idx, val))


def fnv1a(b):
    h = 0xcbf29ce484222325
    for x in b:
        h = ((h ^ x) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def reseal(blob, i, v):
    """Float i of a checkpoint's arrays set to v, the checksum recomputed."""
    b = bytearray(blob)
    struct.pack_into("<f", b, 32 + 4 * i, v)
    struct.pack_into("<Q", b, len(b) - 8, fnv1a(bytes(b[:-8])))
    return bytes(b)


def refused(fn):
    try:
        fn()
    except RefusedError as e:
        return e
    return None


d = 48
tgt = np.linspace(-1, 1, d).astype(np.float32)
for algo in ("fedavg", "scafcom", "scallion"):
    cfg = dict(algorithm=algo, compressor="topk", density=0.25, dim=d, num_clients=8,
               local_steps=3, lr_global=100.0)  # gamma 30: FLT_MAX / 4 overflows x
    x0 = np.linspace(0, 1, d).astype(np.float32)
    srv, ref = FLServer(cfg, x0), FLServer(cfg, x0)
    clients = {i: FLClient(cfg, i) for i in range(4)}
    saved = {i: c.save() for i, c in clients.items()}
    msgs = {i: c.round(srv.model, srv.control, srv.round, lambda y: y - tgt)
            for i, c in clients.items()}
    before = srv.save()
    good = [msgs[0], msgs[1], msgs[2]]
    cases = [
        ([msgs[0], topk_one(5, algo, d, 4, 3e38), msgs[1], topk_one(6, algo, d, 4, 3e38)],
         -9, 6, "client 6: the round's sum overflows when its message is added"),
        ([msgs[0], topk_one(5, algo, d, 4, float(np.finfo(np.float32).max)), msgs[1]],
         -9, 5, "the round's update would make the model non-finite (largest message: client 5)"),
        ([msgs[0], msgs[1][:-3]], -3, 1, "client 1: payload of %d bytes in a %d-byte message"
         % (len(msgs[1]) - 40, len(msgs[1]) - 3)),
    ]
    for batch, status, cid, why in cases:
        e = refused(lambda: srv.aggregate(batch))
        check(e is not None, f"{algo}: {why!r} not refused")
        if e is None:
            continue
        check(str(e) == why, f"{algo}: message {str(e)!r}, expected {why!r}")
        check(str(e) == srv.error, f"{algo}: exception and server error differ")
        check(e.client == cid and e.status == status, f"{algo}: client {e.client} status {e.status}")
        check(isinstance(e, ValueError) and isinstance(e, CommpressError), "exception classes")
        check(srv.save() == before and srv.uplink() == (0, 0), f"{algo}: refused round changed the server")

    # The recommended policy: a poisoned message from a real client (3): drop
    # it, aggregate again, client 3 rolls back to its saved state.
    bad3 = bytearray(msgs[3])
    struct.pack_into("<f", bad3, 40 + 4 + 4 * struct.unpack_from("<I", bad3, 40)[0], 3e38)
    round_msgs = {0: msgs[0], 1: msgs[1], 3: bytes(bad3), 2: msgs[2]}
    round_msgs[4] = topk_one(4, algo, d, struct.unpack_from("<I", bad3, 44)[0], 3e38)
    dropped = []
    while round_msgs:
        try:
            srv.aggregate(list(round_msgs.values()))
            break
        except RefusedError as e:
            if e.client is None or e.client not in round_msgs:
                raise
            dropped.append(e.client)
            del round_msgs[e.client]
            if e.client in clients:
                clients[e.client].load(saved[e.client])
    check(dropped == [4, 3], f"{algo}: dropped {dropped}")  # sum overflow, then update
    ref.aggregate([round_msgs[i] for i in round_msgs])
    check(srv.save() == ref.save() and srv.error == "", f"{algo}: re-aggregated round differs")
    check(np.all(np.isfinite(srv.model)) and np.all(np.isfinite(srv.control)), "non-finite state")
    check(clients[3].save() == saved[3], f"{algo}: client 3 not rolled back")

    # A crafted checkpoint: NaN in the model, or Inf in c, checksum resealed.
    ok = srv.save()
    for i, v in ((3, float("nan")), (d + 5, float("-inf"))):
        e = refused(lambda: srv.load(reseal(ok, i, v)))
        check(e is not None and e.client is None and e.status == -3 and
              str(e) == "checkpoint: a non-finite model or control variate",
              f"{algo}: non-finite checkpoint {e!r}")
        check(srv.save() == ok, f"{algo}: refused checkpoint changed the server")
    cb = clients[0].save()
    try:
        clients[0].load(reseal(cb, 1, float("nan")))
        check(False, f"{algo}: client checkpoint with NaN accepted")
    except CommpressError as e:
        check(e.status == -3 and clients[0].save() == cb, f"{algo}: client load {e}")

print(f"{'ok' if fails == 0 else 'FAILED'}: {fails} failures")
sys.exit(1 if fails else 0)
