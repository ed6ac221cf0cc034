/* Two-phase compressed allreduce (1-bit Adam's compressed_allreduce, CGX's
 * scatter-reduce-allgather). The tensor is split into n chunks; rank j is the
 * "server" of chunk j.
 *  1. worker: v = feedback(g); encode each chunk of v into a slot; alltoall.
 *  2. server j: sum the n received chunk-j messages in rank order, apply
 *     server feedback, encode once more.
 *  3. allgather the server messages; every rank decodes all n chunks.
 * Every rank reads a header from every rank in phase 1: a disagreement
 * on the tensor's state is seen by all there. What only some servers see
 * travels in their phase-3 headers: a non-finite vector (flagged in the
 * worker's chunks from the one where it was found on: every chunk
 * unfused, where the whole vector is made before the first is encoded; the
 * later ones fused), a chunk a server could not decode or a worker could
 * not encode, an overflow in a server sum. Whatever the flag, every rank
 * runs the exact allreduce on the untouched input instead and commits no
 * state. With the identity codec this is a deterministic dense allreduce.
 *
 * Fused (COMMPRESS_FUSE=on, feedback ef, a codec with encode_ef): the
 * worker's feedback add, encode and new error are one pass per chunk
 * (e and g read, the message and e' written into the tensor's spare
 * buffer, which becomes its state at commit), instead of ef's prepare,
 * the encode and ef's commit (three passes and a decode). The same bits.
 *
 * Pipelined (COMMPRESS_PIPELINE=on, a transport with point-to-point): the
 * same messages and the same bits, moved by nonblocking sends on the
 * transport's private context instead of the two collectives. Receives
 * are posted first; each chunk leaves as soon as it is encoded (the next
 * server's first, this rank's own last, straight into its receive slot);
 * the server adds each rank's message as it arrives, still in rank order;
 * phase 3's receives are posted once phase 1 is known clean, and an
 * out-of-place call decodes each server's message as it arrives (in place,
 * the input must survive until every header is known: a late flag falls
 * back to the exact sum of it). Every peer always sends every message, so
 * each call completes all its requests before it returns, fallback or not. */
#include <string.h>

#include "collectives/allreduce_twophase.h"
#include "util/fault.h"
#include "util/log.h"

void cp_allreduce_twophase_plan(const cp_allreduce_args_t *a,
                                const cp_compressor_ops_t *codec,
                                const cp_params_t *p, size_t need[CP_WS_SLOTS])
{
    const int n = a->tp->size;
    size_t off, maxlen;
    cp_chunk_range(a->count, n, 0, &off, &maxlen);
    const size_t slot = cp_slot_size(codec->max_size(p, maxlen));
    need[CP_WS_V] = a->count * sizeof(float);
    need[CP_WS_SEND1] = need[CP_WS_RECV1] = need[CP_WS_RECV2] = slot * (size_t)n;
    need[CP_WS_SUM] = need[CP_WS_VS] = maxlen * sizeof(float);
    need[CP_WS_SCRATCH] = codec->scratch_size(p, maxlen);
    if (cp_twophase_pipelined(a))
        need[CP_WS_REQ] = 4 * (size_t)n * sizeof(cp_treq_t);
}

int cp_twophase_pipelined(const cp_allreduce_args_t *a)
{
    return a->cfg->pipeline && a->tp->p2p_ctx != NULL &&
           a->tp->ops->isend != NULL && a->tp->size > 1;
}

static void warn_encode(cp_status_t st, size_t m)
{
    cp_warn_rl("could not encode a chunk of %zu floats (%s): every rank sends "
            "this call exact", m, cp_status_string(st));
}

enum { TAG1 = 1, TAG2 = 2 };

/* The pipelined call's requests: n per kind, indexed by peer (this rank's
 * own entries stay null). */
typedef struct {
    const cp_transport_t *tp;
    cp_treq_t *recv1, *send1, *recv2, *send2;
} pipe_t;

static cp_status_t wait_all(const cp_transport_t *tp, cp_treq_t *r, int n)
{
    for (int i = 0; i < n; i++)
        CP_CHECK(tp->ops->wait(&r[i]));
    return CP_OK;
}

/* Pushes whatever the transport can move now (MPI progresses only inside
 * its calls). */
static void progress(const pipe_t *pp, int peer)
{
    int done;
    if (pp)
        (void)pp->tp->ops->test(&pp->recv1[peer], &done);
}

static cp_status_t post_recvs(const pipe_t *pp, unsigned char *buf, size_t slot,
                              int tag, cp_treq_t *r)
{
    const cp_transport_t *tp = pp->tp;
    for (int k = 1; k < tp->size; k++) {
        const int peer = (tp->rank + tp->size - k) % tp->size;
        CP_CHECK(tp->ops->irecv(tp->p2p_ctx, buf + (size_t)peer * slot, slot, peer,
                                tag, &r[peer]));
    }
    return CP_OK;
}

/* Phase 2 on the server: the rank-order sum of its chunk (waiting for each
 * rank's message where pipelined), server feedback, and the message for
 * phase 3 (only a flag when anything failed). Phase 1's headers are
 * checked by the caller after this returns: the sum stops at a message
 * flagged or from a rank that disagrees. */
static void serve_sum(const cp_allreduce_args_t *a, const cp_compressor_ops_t *codec,
                      const cp_params_t *p, unsigned char *recv1, size_t slot,
                      uint64_t check, const pipe_t *pp, float *sum, int *failed,
                      cp_status_t *st)
{
    const int n = a->tp->size, me = a->tp->rank;
    size_t moff, mlen;
    int stop = 0;

    cp_chunk_range(a->count, n, me, &moff, &mlen);
    for (int r = 0; r < n; r++) {
        unsigned char *s = recv1 + (size_t)r * slot;
        if (pp && r != me && *st == CP_OK)
            *st = a->tp->ops->wait(&pp->recv1[r]);
        if (r == (me + 1) % n && cp_fault(CP_FAULT_CORRUPT1))
            cp_slot_corrupt(s);
        if (stop || *st != CP_OK)
            continue;
        uint64_t c;
        memcpy(&c, s + 8, sizeof(c));
        if (cp_get_u32(s) != 0 || c != check) { /* the scan decides */
            stop = 1;
            continue;
        }
        if (cp_slot_decode(codec, p, s, slot, 1.0f, r == 0 ? NULL : sum, sum,
                           mlen) != CP_OK) {
            cp_warn_rl("malformed message from rank %d in phase 1 of an "
                    "allreduce of %zu floats: every rank sends it exact", r,
                    a->count);
            *failed = 1;
            stop = 1;
        }
    }
}

static void serve_encode(const cp_allreduce_args_t *a, const cp_compressor_ops_t *codec,
                         const cp_params_t *p, uint32_t flags, uint64_t check,
                         float *sum, void *vs_work, unsigned char *send2,
                         size_t slot, void *scratch, const float **vs_p)
{
    const cp_feedback_ops_t *sfb = a->cfg->feedback->server;
    const cp_fb_params_t fp = cp_step_fb(a->cfg, a->tp->size, a->tensor->steps);
    const int n = a->tp->size, me = a->tp->rank;
    size_t moff, mlen;
    int bad = 0;

    cp_chunk_range(a->count, n, me, &moff, &mlen);
    *vs_p = sum;
    if (!flags)
        *vs_p = sfb->prepare(&fp, a->tensor->server, sum, vs_work, NULL, mlen,
                             &bad);
    const cp_slot_meta_t meta = {
        .flags = flags ? flags : bad ? CP_SLOT_NONFINITE : 0,
        .check = check};
    cp_params_t ps = *p;
    cp_call_seeds(a, 2, me, &ps);
    cp_status_t st = cp_slot_encode(codec, &ps, *vs_p, mlen, &meta, send2, slot,
                                    scratch);
    if (st != CP_OK)
        warn_encode(st, mlen);
}

/* Completes every request still pending and returns the exact allreduce:
 * every rank reaches this at the same point, so every peer sends all the
 * messages these wait for. */
static cp_status_t drain_exact(const cp_allreduce_args_t *a, const pipe_t *pp,
                               cp_coll_result_t *res, cp_fallback_t why)
{
    if (pp) {
        const int n = a->tp->size;
        CP_CHECK(wait_all(pp->tp, pp->send1, n));
        CP_CHECK(wait_all(pp->tp, pp->recv2, n));
        CP_CHECK(wait_all(pp->tp, pp->send2, n));
    }
    return cp_allreduce_exact(a, res, why);
}

cp_status_t cp_allreduce_twophase(const cp_allreduce_args_t *a,
                                  const cp_compressor_ops_t *codec,
                                  const cp_params_t *step_p,
                                  cp_coll_result_t *res)
{
    const cp_coll_config_t *cfg = a->cfg;
    const cp_feedback_ops_t *fb = cfg->feedback, *sfb = fb->server;
    const cp_fb_params_t fp = cp_step_fb(cfg, a->tp->size, a->tensor->steps);
    const int n = a->tp->size, me = a->tp->rank;
    const float *g = a->send ? a->send : a->recv;
    cp_params_t p = *step_p;
    size_t need[CP_WS_SLOTS] = {0}, off, len, moff, mlen;
    unsigned char *send1, *recv1, *recv2, *send2, *own1;
    float *sum, *aux, *tmp;
    void *work, *vs_work, *scratch;
    const float *v, *vs;
    cp_slots_view_t view;
    pipe_t pipe, *pp = NULL;
    int bad, failed = 0;
    cp_status_t st = CP_OK;
    double t0 = cp_now();

    cp_allreduce_twophase_plan(a, codec, &p, need);
    const size_t slot = need[CP_WS_SEND1] / (size_t)n;
    cp_chunk_range(a->count, n, me, &moff, &mlen);
    CP_CHECK(cp_workspace_get(a->ws, CP_WS_V, need[CP_WS_V], &work));
    CP_CHECK(cp_workspace_get(a->ws, CP_WS_SEND1, need[CP_WS_SEND1], (void **)&send1));
    CP_CHECK(cp_workspace_get(a->ws, CP_WS_RECV1, need[CP_WS_RECV1], (void **)&recv1));
    CP_CHECK(cp_workspace_get(a->ws, CP_WS_SUM, need[CP_WS_SUM], (void **)&sum));
    CP_CHECK(cp_workspace_get(a->ws, CP_WS_VS, need[CP_WS_VS], &vs_work));
    CP_CHECK(cp_workspace_get(a->ws, CP_WS_RECV2, need[CP_WS_RECV2], (void **)&recv2));
    CP_CHECK(cp_workspace_get(a->ws, CP_WS_SCRATCH, need[CP_WS_SCRATCH], &scratch));
    CP_CHECK(cp_feedback_buffers(fb, a->ws, a->count, &aux, &tmp));
    if (cp_twophase_pipelined(a)) {
        cp_treq_t *r;
        CP_CHECK(cp_workspace_get(a->ws, CP_WS_REQ, need[CP_WS_REQ], (void **)&r));
        memset(r, 0, need[CP_WS_REQ]);
        pipe = (pipe_t){.tp = a->tp, .recv1 = r, .send1 = r + n,
                        .recv2 = r + 2 * n, .send2 = r + 3 * n};
        pp = &pipe;
        res->pipelined = 1;
        CP_CHECK(post_recvs(pp, recv1, slot, TAG1, pp->recv1));
    }
    /* This rank's own phase 1 chunk: where the server reads it. */
    own1 = (pp ? recv1 : send1) + (size_t)me * slot;
    const int fuse = cp_ef_fused(a, codec->encode_ef != NULL);
    res->fused = fuse;

    /* Phase 1: worker feedback, encode n chunks, the next server's first
     * (fused: each chunk's feedback with its encode). */
    bad = 0, v = NULL;
    if (!fuse) {
        v = fb->prepare(&fp, a->tensor->worker, g, work, aux, a->count, &bad);
        if (!bad)
            cp_tensor_accumulate(a->tensor, v);
    }
    cp_slot_meta_t meta = {.flags = bad ? CP_SLOT_NONFINITE : 0,
                           .check = cp_call_check(a),
                           .evidence = a->evidence};
    for (int k = 1; k <= n; k++) {
        const int j = (me + k) % n;
        unsigned char *s = j == me ? own1 : send1 + (size_t)j * slot;
        cp_chunk_range(a->count, n, j, &off, &len);
        cp_call_seeds(a, 1, j, &p);
        cp_status_t est = fuse ? cp_slot_encode_ef(codec, &p, a->tensor->worker + off,
                                                   g + off, len, &meta, s, slot, scratch,
                                                   a->tensor->spare + off)
                               : cp_slot_encode(codec, &p, v + off, len, &meta, s,
                                                slot, scratch);
        if (est != CP_OK)
            warn_encode(est, len);
        if (pp && j != me) {
            CP_CHECK(a->tp->ops->isend(a->tp->p2p_ctx, s, slot, j, TAG1,
                                       &pp->send1[j]));
            progress(pp, j);
        }
    }
    cp_call_seeds(a, 1, n - 1, &p); /* the later phases' base, as ever */
    res->compress_seconds += cp_now() - t0;
    if (!pp) {
        CP_CHECK(a->tp->ops->alltoall(a->tp->ctx, send1, recv1, slot));
        t0 = cp_now();
    }
    res->bytes_sent = (size_t)(n - 1) * slot;

    /* Phase 2: this rank serves its chunk, adding each message as it comes
     * (the time spent waiting for them is not compression time). */
    serve_sum(a, codec, &p, recv1, slot, meta.check, pp, sum, &failed, &st);
    CP_CHECK(st);
    if (pp)
        t0 = cp_now(); /* waits and sums interleave: counted as wire time */
    cp_slots_scan(recv1, n, slot, meta.check, a->ev_period, &view);
    res->evidence = view.evidence;
    if (view.disagree)
        return drain_exact(a, pp, res, CP_FALLBACK_DISAGREE);
    failed |= (view.flags & CP_SLOT_FAILED) != 0;
    if (pp)
        CP_CHECK(post_recvs(pp, recv2, slot, TAG2, pp->recv2));
    send2 = pp ? recv2 + (size_t)me * slot : recv1; /* phase 1 input is consumed */
    /* A flag this server saw goes on to every rank in its phase-3 header. */
    serve_encode(a, codec, &p,
                 (view.flags & CP_SLOT_NONFINITE) ? CP_SLOT_NONFINITE
                                                  : failed ? CP_SLOT_FAILED : 0,
                 meta.check, sum, vs_work, send2, slot, scratch, &vs);
    res->compress_seconds += cp_now() - t0;
    if (pp) {
        for (int k = 1; k < n; k++) {
            const int peer = (me + k) % n;
            CP_CHECK(a->tp->ops->isend(a->tp->p2p_ctx, send2, slot, peer, TAG2,
                                       &pp->send2[peer]));
        }
    } else {
        CP_CHECK(a->tp->ops->allgather(a->tp->ctx, send2, recv2, slot));
    }
    res->bytes_sent = 2 * (size_t)(n - 1) * slot;

    /* Phase 3: every rank decodes the same bytes into the result. Out of
     * place, each server's message as it arrives; in place, once every
     * header is known. A decode error ends the call after every request
     * completed. */
    const int early = pp && a->send != NULL;
    for (int k = 1; k <= n; k++) {
        const int j = (me + n - k) % n; /* servers in the order they send */
        unsigned char *s = recv2 + (size_t)j * slot;
        if (pp && j != me)
            CP_CHECK(a->tp->ops->wait(&pp->recv2[j]));
        if (j == (me + 1) % n && cp_fault(CP_FAULT_CORRUPT))
            cp_slot_corrupt(s);
        if (early && st == CP_OK && cp_get_u32(s) == 0) {
            t0 = cp_now();
            cp_chunk_range(a->count, n, j, &off, &len);
            st = cp_slot_decode(codec, &p, s, slot, 1.0f, NULL, a->recv + off, len);
            res->compress_seconds += cp_now() - t0;
        }
    }
    if (pp) {
        CP_CHECK(wait_all(a->tp, pp->send1, n));
        CP_CHECK(wait_all(a->tp, pp->send2, n));
    }
    CP_CHECK(st);
    cp_slots_scan(recv2, n, slot, meta.check, 0, &view);
    cp_fallback_t why = cp_slots_fallback(&view);
    if (why != CP_FALLBACK_NONE)
        return cp_allreduce_exact(a, res, why);

    /* Then commit both feedback states from what was sent. */
    t0 = cp_now();
    for (int j = 0; j < n && !early; j++) {
        cp_chunk_range(a->count, n, j, &off, &len);
        CP_CHECK(cp_slot_decode(codec, &p, recv2 + (size_t)j * slot, slot, 1.0f,
                                NULL, a->recv + off, len));
    }
    for (int j = 0; j < n && !fuse; j++) {
        const unsigned char *s = j == me ? own1 : send1 + (size_t)j * slot;
        cp_chunk_range(a->count, n, j, &off, &len);
        CP_CHECK(fb->commit(&fp, a->tensor->worker + fb->state_floats(off),
                            v + off, aux ? aux + off : NULL,
                            tmp ? tmp + off : NULL, codec, &p,
                            cp_slot_payload(s), cp_slot_payload_len(s), len));
    }
    if (fuse) /* the new error is the state now */
        cp_tensor_swap_spare(a->tensor);
    CP_CHECK(sfb->commit(&fp, a->tensor->server, vs, NULL, NULL, codec, &p,
                         cp_slot_payload(recv2 + (size_t)me * slot),
                         cp_slot_payload_len(recv2 + (size_t)me * slot), mlen));
    res->compress_seconds += cp_now() - t0;
    return CP_OK;
}
