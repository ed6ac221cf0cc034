/* Sparse allgather allreduce (DGC): each rank encodes its error-corrected
 * gradient with top-k into a fixed-size slot, the slots are allgathered, and
 * every rank decodes all of them in rank order. */
#include "collectives/allreduce.h"

enum { WS_V, WS_SEND, WS_RECV, WS_SCRATCH };

cp_status_t cp_allreduce_sparse(const cp_allreduce_args_t *a,
                                const cp_params_t *step_p,
                                cp_coll_result_t *res)
{
    const cp_coll_config_t *cfg = a->cfg;
    const cp_compressor_ops_t *codec = cfg->codec;
    const int n = a->tp->size;
    const float *g = a->send ? a->send : a->recv;
    const cp_feedback_ops_t *fb = cfg->feedback;
    const cp_fb_params_t fp = cp_step_fb(cfg, n);
    cp_params_t p = *step_p;
    const size_t slot = cp_slot_size(codec->max_size(&p, a->count));
    unsigned char *send, *recv;
    void *work, *scratch;
    float *aux, *tmp;
    const float *v;
    int bad;
    double t0 = cp_now();

    CP_CHECK(cp_workspace_get(a->ws, WS_V, a->count * sizeof(float), &work));
    CP_CHECK(cp_workspace_get(a->ws, WS_SEND, slot, (void **)&send));
    CP_CHECK(cp_workspace_get(a->ws, WS_RECV, slot * (size_t)n, (void **)&recv));
    CP_CHECK(cp_workspace_get(a->ws, WS_SCRATCH,
                              codec->scratch_size(&p, a->count), &scratch));
    CP_CHECK(cp_feedback_buffers(fb, a->ws, a->count, &aux, &tmp));
    p.seed = cp_call_seed(a, 0, 0);
    v = fb->prepare(&fp, a->tensor->worker, g, work, aux, a->count, &bad);
    CP_CHECK(cp_slot_encode(codec, &p, v, a->count, bad, send, slot, scratch));
    res->compress_seconds += cp_now() - t0;

    CP_CHECK(a->tp->ops->allgather(a->tp->ctx, send, recv, slot));
    res->bytes_sent = (size_t)(n - 1) * slot;
    if (cp_slots_nonfinite(recv, n, slot)) {
        res->nonfinite = 1;
        return a->tp->ops->allreduce_sum_f32(a->tp->ctx, a->send, a->recv,
                                             a->count);
    }

    t0 = cp_now();
    /* Decode first (it validates every peer's message), commit after: a
     * malformed message leaves the state untouched. The input g is dead by
     * now (encoded, and v is the workspace copy when feedback needs it). */
    for (int r = 0; r < n; r++)
        CP_CHECK(cp_slot_decode(codec, &p, recv + (size_t)r * slot, slot, 1.0f,
                                r == 0 ? NULL : a->recv, a->recv, a->count));
    CP_CHECK(fb->commit(&fp, a->tensor->worker, v, aux, tmp, codec, &p,
                        send + CP_SLOT_HDR, cp_get_u32(send + 4), a->count));
    res->compress_seconds += cp_now() - t0;
    return CP_OK;
}
