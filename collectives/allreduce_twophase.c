/* Two-phase compressed allreduce (1-bit Adam's compressed_allreduce, CGX's
 * scatter-reduce-allgather). The tensor is split into n chunks; rank j is the
 * "server" of chunk j.
 *  1. worker: v = feedback(g); encode each chunk of v into a slot; alltoall.
 *  2. server j: sum the n received chunk-j messages in rank order, apply
 *     server feedback, encode once more.
 *  3. allgather the server messages; every rank decodes all n chunks.
 * Every rank reads a header from every rank in phase 1: a non-finite
 * vector (flagged in every chunk) or a disagreement on the tensor's state
 * is seen by all there. A failure only one server sees (a chunk it could
 * not decode, a chunk a worker could not encode) and an overflow in a
 * server sum travel in that server's phase-3 header. Whatever the flag,
 * every rank runs the exact allreduce on the untouched input instead and
 * commits no state. With the identity codec this is a deterministic dense
 * allreduce. */
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
}

static void warn_encode(cp_status_t st, size_t m)
{
    cp_warn_rl("could not encode a chunk of %zu floats (%s): every rank sends "
            "this call exact", m, cp_status_string(st));
}

/* Phase 2 on the server: the rank-order sum of its chunk, server feedback,
 * and the message for phase 3 (only a flag when anything failed). */
static void serve(const cp_allreduce_args_t *a, const cp_compressor_ops_t *codec,
                  const cp_params_t *p, const unsigned char *recv1, size_t slot,
                  int failed, uint64_t check, float *sum, void *vs_work,
                  unsigned char *send2, void *scratch, const float **vs_p)
{
    const cp_feedback_ops_t *sfb = a->cfg->feedback->server;
    const cp_fb_params_t fp = cp_step_fb(a->cfg, a->tp->size, a->tensor->steps);
    const int n = a->tp->size, me = a->tp->rank;
    size_t moff, mlen;
    int bad = 0;

    cp_chunk_range(a->count, n, me, &moff, &mlen);
    for (int r = 0; r < n && !failed; r++)
        if (cp_slot_decode(codec, p, recv1 + (size_t)r * slot, slot, 1.0f,
                           r == 0 ? NULL : sum, sum, mlen) != CP_OK) {
            cp_warn_rl("malformed message from rank %d in phase 1 of an "
                    "allreduce of %zu floats: every rank sends it exact", r,
                    a->count);
            failed = 1;
        }
    *vs_p = sum;
    if (!failed)
        *vs_p = sfb->prepare(&fp, a->tensor->server, sum, vs_work, NULL, mlen,
                             &bad);
    const cp_slot_meta_t meta = {
        .flags = failed ? CP_SLOT_FAILED : bad ? CP_SLOT_NONFINITE : 0,
        .check = check};
    cp_params_t ps = *p;
    cp_call_seeds(a, 2, me, &ps);
    cp_status_t st = cp_slot_encode(codec, &ps, *vs_p, mlen, &meta, send2, slot,
                                    scratch);
    if (st != CP_OK)
        warn_encode(st, mlen);
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
    unsigned char *send1, *recv1, *recv2;
    float *sum, *aux, *tmp;
    void *work, *vs_work, *scratch;
    const float *v, *vs;
    cp_slots_view_t view;
    int bad;
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

    /* Phase 1: worker feedback, encode n chunks. */
    v = fb->prepare(&fp, a->tensor->worker, g, work, aux, a->count, &bad);
    if (!bad)
        cp_tensor_accumulate(a->tensor, v);
    const cp_slot_meta_t meta = {.flags = bad ? CP_SLOT_NONFINITE : 0,
                                 .check = cp_call_check(a),
                                 .evidence = a->evidence};
    for (int j = 0; j < n; j++) {
        cp_chunk_range(a->count, n, j, &off, &len);
        cp_call_seeds(a, 1, j, &p);
        cp_status_t st = cp_slot_encode(codec, &p, v + off, len, &meta,
                                        send1 + (size_t)j * slot, slot, scratch);
        if (st != CP_OK)
            warn_encode(st, len);
    }
    res->compress_seconds += cp_now() - t0;
    CP_CHECK(a->tp->ops->alltoall(a->tp->ctx, send1, recv1, slot));
    res->bytes_sent = (size_t)(n - 1) * slot;
    if (cp_fault(CP_FAULT_CORRUPT1))
        cp_slot_corrupt(recv1 + (size_t)((me + 1) % n) * slot);
    cp_slots_scan(recv1, n, slot, meta.check, a->ev_period, &view);
    res->evidence = view.evidence;
    if (view.flags & CP_SLOT_NONFINITE)
        return cp_allreduce_exact(a, res, CP_FALLBACK_NONFINITE);
    if (view.disagree)
        return cp_allreduce_exact(a, res, CP_FALLBACK_DISAGREE);

    /* Phase 2: this rank serves its chunk; phase 1 input is consumed. */
    t0 = cp_now();
    unsigned char *send2 = recv1;
    serve(a, codec, &p, recv1, slot, (view.flags & CP_SLOT_FAILED) != 0,
          meta.check, sum, vs_work, send2, scratch, &vs);
    res->compress_seconds += cp_now() - t0;
    CP_CHECK(a->tp->ops->allgather(a->tp->ctx, send2, recv2, slot));
    res->bytes_sent = 2 * (size_t)(n - 1) * slot;
    if (cp_fault(CP_FAULT_CORRUPT))
        cp_slot_corrupt(recv2 + (size_t)((me + 1) % n) * slot);
    cp_slots_scan(recv2, n, slot, meta.check, 0, &view);
    cp_fallback_t why = cp_slots_fallback(&view);
    if (why != CP_FALLBACK_NONE)
        return cp_allreduce_exact(a, res, why);

    /* Phase 3: decode every chunk into the result (every rank decodes the
     * same bytes), then commit both feedback states from what was sent. */
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
                            cp_slot_payload(s), cp_slot_payload_len(s), len));
    }
    CP_CHECK(sfb->commit(&fp, a->tensor->server, vs, NULL, NULL, codec, &p,
                         cp_slot_payload(recv2 + (size_t)me * slot),
                         cp_slot_payload_len(recv2 + (size_t)me * slot), mlen));
    res->compress_seconds += cp_now() - t0;
    return CP_OK;
}
