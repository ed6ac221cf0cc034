/* Sparse allgather allreduce (DGC): each rank encodes its error-corrected
 * gradient with top-k into a fixed-size slot, the slots are allgathered, and
 * every rank decodes all of them in rank order. Every rank reads every
 * header, so a flag or a disagreement sends all ranks to the exact
 * allreduce together.
 *
 * Fused (COMMPRESS_FUSE=on, feedback ef): ef's prepare writes v = e + g
 * into the tensor's spare buffer instead of the workspace, and the commit
 * subtracts the k values sent at their indices there, in place, and makes
 * it the state: one pass over the tensor less than ef's commit (a decode
 * with alpha -1 of v into e, which copies all n floats), the same bits
 * (cp_sparse_decode's rule: out = y, then out[i] += alpha * value). */
#include "collectives/allreduce_sparse.h"
#include "util/fault.h"
#include "util/log.h"

void cp_allreduce_sparse_plan(const cp_allreduce_args_t *a,
                              const cp_params_t *p, size_t need[CP_WS_SLOTS])
{
    const cp_compressor_ops_t *codec = a->cfg->codec;
    const size_t slot = cp_slot_size(codec->max_size(p, a->count));
    need[CP_WS_V] = a->count * sizeof(float);
    need[CP_WS_SEND1] = slot;
    need[CP_WS_RECV1] = slot * (size_t)a->tp->size;
    need[CP_WS_SCRATCH] = codec->scratch_size(p, a->count);
}

cp_status_t cp_allreduce_sparse(const cp_allreduce_args_t *a,
                                const cp_params_t *step_p,
                                cp_coll_result_t *res)
{
    const cp_coll_config_t *cfg = a->cfg;
    const cp_compressor_ops_t *codec = cfg->codec;
    const int n = a->tp->size;
    const float *g = a->send ? a->send : a->recv;
    const cp_feedback_ops_t *fb = cfg->feedback;
    const cp_fb_params_t fp = cp_step_fb(cfg, n, a->tensor->steps);
    cp_params_t p = *step_p;
    size_t need[CP_WS_SLOTS] = {0};
    unsigned char *send, *recv;
    void *work, *scratch;
    float *aux, *tmp;
    const float *v;
    cp_slots_view_t view;
    int bad;
    double t0 = cp_now();

    cp_allreduce_sparse_plan(a, &p, need);
    const size_t slot = need[CP_WS_SEND1];
    CP_CHECK(cp_workspace_get(a->ws, CP_WS_V, need[CP_WS_V], &work));
    CP_CHECK(cp_workspace_get(a->ws, CP_WS_SEND1, slot, (void **)&send));
    CP_CHECK(cp_workspace_get(a->ws, CP_WS_RECV1, need[CP_WS_RECV1], (void **)&recv));
    CP_CHECK(cp_workspace_get(a->ws, CP_WS_SCRATCH, need[CP_WS_SCRATCH], &scratch));
    CP_CHECK(cp_feedback_buffers(fb, a->ws, a->count, &aux, &tmp));
    cp_call_seeds(a, 0, 0, &p);
    const int fuse = cp_ef_fused(a, codec->entries != NULL);
    res->fused = fuse;
    v = fb->prepare(&fp, a->tensor->worker, g, fuse ? a->tensor->spare : work, aux,
                    a->count, &bad);
    if (!bad)
        cp_tensor_accumulate(a->tensor, v);
    const cp_slot_meta_t meta = {.flags = bad ? CP_SLOT_NONFINITE : 0,
                                 .check = cp_call_check(a),
                                 .evidence = a->evidence};
    cp_status_t est = cp_slot_encode(codec, &p, v, a->count, &meta, send, slot,
                                     scratch);
    if (est != CP_OK)
        cp_warn_rl("could not encode %zu floats (%s): every rank sends this call "
                "exact", a->count, cp_status_string(est));
    res->compress_seconds += cp_now() - t0;

    CP_CHECK(a->tp->ops->allgather(a->tp->ctx, send, recv, slot));
    res->bytes_sent = (size_t)(n - 1) * slot;
    if (cp_fault(CP_FAULT_CORRUPT))
        cp_slot_corrupt(recv + (size_t)((a->tp->rank + 1) % n) * slot);
    cp_slots_scan(recv, n, slot, meta.check, a->ev_period, &view);
    res->evidence = view.evidence;
    cp_fallback_t why = cp_slots_fallback(&view);
    if (why != CP_FALLBACK_NONE)
        return cp_allreduce_exact(a, res, why);

    t0 = cp_now();
    /* Decode first (it validates every peer's message), commit after: a
     * malformed message leaves the state untouched. Every rank decodes the
     * same bytes, so all fail together, unless the transport corrupted
     * this rank's copy alone; either way the caller stops the job. The
     * input g is dead by now (encoded, and v is the workspace copy when
     * feedback needs it). */
    for (int r = 0; r < n; r++)
        CP_CHECK(cp_slot_decode(codec, &p, recv + (size_t)r * slot, slot, 1.0f,
                                r == 0 ? NULL : a->recv, a->recv, a->count));
    if (fuse) {
        cp_topk_view_t sent;
        float *e = a->tensor->spare; /* v */
        CP_CHECK(codec->entries(cp_slot_payload(send), cp_slot_payload_len(send), a->count,
                                &sent));
        for (size_t j = 0; j < sent.k; j++)
            e[cp_get_u32(sent.idx + 4 * j)] += -1.0f * cp_topk_value(&sent, j);
        cp_tensor_swap_spare(a->tensor);
    } else {
        CP_CHECK(fb->commit(&fp, a->tensor->worker, v, aux, tmp, codec, &p,
                            cp_slot_payload(send), cp_slot_payload_len(send), a->count));
    }
    res->compress_seconds += cp_now() - t0;
    return CP_OK;
}
