/* The plain call of a tensor under COMMPRESS_POLICY=auto (see the header). */
#include <string.h>

#include "collectives/allreduce_plain.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "commit reads v as the identity codec's message: little-endian floats"
#endif

/* res as a plain call of a reports it: the ring's bytes, sent. */
static void plain_result(const cp_allreduce_args_t *a, cp_coll_result_t *res)
{
    memset(res, 0, sizeof(*res));
    res->algo = CP_ALGO_PLAIN;
    res->bytes_dense = cp_ring_bytes(a->tp->size, 4.0 * (double)a->count);
    res->bytes_sent = res->bytes_dense;
}

cp_status_t cp_allreduce_plain_sum(const cp_allreduce_args_t *a,
                                   cp_coll_result_t *res)
{
    plain_result(a, res);
    return a->tp->ops->allreduce_sum_f32(a->tp->ctx, a->send, a->recv, a->count);
}

cp_status_t cp_allreduce_plain(const cp_allreduce_args_t *a,
                               cp_coll_result_t *res)
{
    cp_tensor_t *t = a->tensor;
    const cp_coll_config_t *cfg = a->cfg;
    const cp_feedback_ops_t *fb = cfg->feedback;
    const int n = a->tp->size, me = a->tp->rank;
    const float *g = a->send ? a->send : a->recv;

    if (t->count != a->count)
        return CP_ERR_INVALID;
    if (t->clean) /* the state is zero: the plain sum of g */
        return cp_allreduce_plain_sum(a, res);
    plain_result(a, res);

    const double t0 = cp_now();
    const cp_params_t p = cp_step_params(cfg, t->steps);
    const cp_fb_params_t fp = cp_step_fb(cfg, n, t->steps);
    float *work, *aux, *tmp;
    int bad = 0;
    CP_CHECK(cp_workspace_get(a->ws, CP_WS_V, a->count * sizeof(float), (void **)&work));
    CP_CHECK(cp_feedback_buffers(fb, a->ws, a->count, &aux, &tmp));
    const float *v = fb->prepare(&fp, t->worker, g, work, aux, a->count, &bad);
    size_t moff, mlen;
    cp_chunk_range(a->count, n, me, &moff, &mlen);
    /* Server state is this rank's chunk's EF error (the server variant is
     * EF or none), or nothing (sparse tensors). */
    int server = !bad && fb->server == &cp_feedback_ef && mlen > 0 &&
                       t->server_floats == mlen;
    float *keep = NULL;
    if (server) {
        /* The server's error of this rank's chunk joins what this rank
         * sends there (the sum counts it once: only this rank holds it);
         * the worker's own v of the chunk is kept aside for its commit. */
        CP_CHECK(cp_workspace_get(a->ws, CP_WS_SUM, mlen * sizeof(float), (void **)&keep));
        if (v != work) {
            memcpy(work, v, a->count * sizeof(float));
            v = work;
        }
        memcpy(keep, work + moff, mlen * sizeof(float));
        for (size_t i = 0; i < mlen; i++)
            work[moff + i] += t->server[i];
        bad = cp_any_nonfinite(work + moff, mlen);
    }
    if (bad) { /* this rank sends its input; its state stays */
        v = g;
        server = 0;
    }
    res->compress_seconds += cp_now() - t0;
    CP_CHECK(a->tp->ops->allreduce_sum_f32(a->tp->ctx, v == a->recv ? NULL : v,
                                           a->recv, a->count));
    if (bad || cp_any_nonfinite(a->recv, a->count)) {
        res->nonfinite = 1;
        return CP_OK;
    }
    const double t1 = cp_now();
    if (server)
        memcpy(work + moff, keep, mlen * sizeof(float));
    /* v was sent whole: the identity codec's message is v itself. */
    CP_CHECK(fb->commit(&fp, t->worker, v, aux, tmp, &cp_compressor_none, &p, v,
                        a->count * sizeof(float), a->count));
    if (server)
        memset(t->server, 0, mlen * sizeof(float));
    if (fb->finish)
        fb->finish(t->worker, a->recv, a->count);
    t->clean = (fb->flags & CP_FB_ZERO_AFTER_EXACT) != 0;
    res->compress_seconds += cp_now() - t1;
    return CP_OK;
}
