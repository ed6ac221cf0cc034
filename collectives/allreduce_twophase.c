/* Two-phase compressed allreduce (1-bit Adam's compressed_allreduce, CGX's
 * scatter-reduce-allgather). The tensor is split into n chunks; rank j is the
 * "server" of chunk j.
 *  1. worker: v = feedback(g); encode each chunk of v into a slot; alltoall.
 *  2. server j: sum the n received chunk-j messages in rank order, apply
 *     server feedback, encode once more.
 *  3. allgather the server messages; every rank decodes all n chunks.
 * Non-finite input is flagged in the slot headers of phase 1; an overflow in
 * the server sum in those of phase 3. Either way every rank sees the flag,
 * runs the exact allreduce on the untouched input instead, and commits no
 * state. With the identity codec this is a deterministic dense allreduce. */
#include "collectives/allreduce.h"

enum { WS_V, WS_SEND1, WS_RECV1, WS_SUM, WS_VS, WS_RECV2, WS_SCRATCH };

static cp_status_t fallback(const cp_allreduce_args_t *a, cp_coll_result_t *res)
{
    res->nonfinite = 1;
    return a->tp->ops->allreduce_sum_f32(a->tp->ctx, a->send, a->recv,
                                         a->count);
}

cp_status_t cp_allreduce_twophase(const cp_allreduce_args_t *a,
                                  const cp_compressor_ops_t *codec,
                                  const cp_params_t *step_p,
                                  cp_coll_result_t *res)
{
    const cp_coll_config_t *cfg = a->cfg;
    const cp_feedback_ops_t *fb = cfg->feedback, *sfb = fb->server;
    const cp_fb_params_t fp = cp_step_fb(cfg, a->tp->size);
    const int n = a->tp->size, me = a->tp->rank;
    const float *g = a->send ? a->send : a->recv;
    cp_params_t p = *step_p;
    size_t off, len, moff, mlen, maxlen;
    unsigned char *send1, *recv1, *recv2;
    float *sum, *aux, *tmp;
    void *work, *vs_work, *scratch;
    const float *v, *vs;
    int bad;
    double t0 = cp_now();

    cp_chunk_range(a->count, n, 0, &off, &maxlen);
    cp_chunk_range(a->count, n, me, &moff, &mlen);
    const size_t slot = cp_slot_size(codec->max_size(&p, maxlen));
    CP_CHECK(cp_workspace_get(a->ws, WS_V, a->count * sizeof(float), &work));
    CP_CHECK(cp_workspace_get(a->ws, WS_SEND1, slot * n, (void **)&send1));
    CP_CHECK(cp_workspace_get(a->ws, WS_RECV1, slot * n, (void **)&recv1));
    CP_CHECK(cp_workspace_get(a->ws, WS_SUM, maxlen * 4, (void **)&sum));
    CP_CHECK(cp_workspace_get(a->ws, WS_VS, maxlen * 4, &vs_work));
    CP_CHECK(cp_workspace_get(a->ws, WS_RECV2, slot * n, (void **)&recv2));
    CP_CHECK(cp_workspace_get(a->ws, WS_SCRATCH,
                              codec->scratch_size(&p, maxlen), &scratch));
    CP_CHECK(cp_feedback_buffers(fb, a->ws, a->count, &aux, &tmp));

    /* Phase 1: worker feedback, encode n chunks. */
    v = fb->prepare(&fp, a->tensor->worker, g, work, aux, a->count, &bad);
    for (int j = 0; j < n; j++) {
        cp_chunk_range(a->count, n, j, &off, &len);
        p.seed = cp_call_seed(a, 1, j);
        CP_CHECK(cp_slot_encode(codec, &p, v + off, len, bad,
                             send1 + (size_t)j * slot, slot, scratch));
    }
    res->compress_seconds += cp_now() - t0;
    CP_CHECK(a->tp->ops->alltoall(a->tp->ctx, send1, recv1, slot));
    if (cp_slots_nonfinite(recv1, n, slot))
        return fallback(a, res);

    /* Phase 2: sum my chunk in rank order, server feedback, encode. */
    t0 = cp_now();
    for (int r = 0; r < n; r++)
        CP_CHECK(cp_slot_decode(codec, &p, recv1 + (size_t)r * slot, slot, 1.0f,
                             r == 0 ? NULL : sum, sum, mlen));
    vs = sfb->prepare(&fp, a->tensor->server, sum, vs_work, NULL, mlen, &bad);
    p.seed = cp_call_seed(a, 2, me);
    unsigned char *send2 = recv1; /* phase 1 input is consumed */
    CP_CHECK(cp_slot_encode(codec, &p, vs, mlen, bad, send2, slot, scratch));
    res->compress_seconds += cp_now() - t0;
    CP_CHECK(a->tp->ops->allgather(a->tp->ctx, send2, recv2, slot));
    res->bytes_sent = 2 * (size_t)(n - 1) * slot;
    if (cp_slots_nonfinite(recv2, n, slot))
        return fallback(a, res);

    /* Phase 3: decode every chunk into the result, then commit both
     * feedback states from what was actually sent. */
    t0 = cp_now();
    for (int j = 0; j < n; j++) {
        cp_chunk_range(a->count, n, j, &off, &len);
        CP_CHECK(cp_slot_decode(codec, &p, recv2 + (size_t)j * slot, slot, 1.0f,
                             NULL, a->recv + off, len));
    }
    for (int j = 0; j < n; j++) {
        const unsigned char *s = send1 + (size_t)j * slot;
        cp_chunk_range(a->count, n, j, &off, &len);
        CP_CHECK(fb->commit(&fp, a->tensor->worker + fb->state_floats(off),
                            v + off, aux ? aux + off : NULL,
                            tmp ? tmp + off : NULL, codec, &p,
                            s + CP_SLOT_HDR, cp_get_u32(s + 4), len));
    }
    CP_CHECK(sfb->commit(&fp, a->tensor->server, vs, NULL, NULL, codec, &p,
                        recv2 + (size_t)me * slot + CP_SLOT_HDR,
                        cp_get_u32(recv2 + (size_t)me * slot + 4), mlen));
    res->compress_seconds += cp_now() - t0;
    return CP_OK;
}
