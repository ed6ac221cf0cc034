#include <stdlib.h>
#include <string.h>

#include "collectives/allreduce_gpu.h"
#include "compressors/cuda/gpu_feedback.h"
#include "util/log.h"

_Static_assert(CP_CUDA_SLOT_HDR == CP_SLOT_HDR, "GPU and CPU slots differ");

enum {
    WS_V, WS_SEND1, WS_RECV1, WS_SUM, WS_VS, WS_RECV2, WS_SCRATCH, WS_OUT,
    WS_AUX, WS_TMP, WS_G, WS_FB, /* a feedback twin's aux, tmp, fp32 input
                                    and scratch */
};
_Static_assert(WS_FB < CP_GPU_WS_SLOTS, "workspace slots");

static size_t dtype_size(cp_dtype_t t) { return t == CP_DT_F32 ? 4 : 2; }

cp_status_t cp_gpu_tensor_create(const cp_coll_config_t *cfg, size_t count,
                                 int size, int rank, cudaStream_t stream,
                                 cp_gpu_tensor_t **t_p)
{
    cp_gpu_tensor_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return CP_ERR_NOMEM;
    t->count = count;
    cp_tensor_floats(cfg, count, size, rank, &t->worker_floats,
                     &t->server_floats);
    if (cudaMalloc((void **)&t->worker, (t->worker_floats + 1) * 4) != cudaSuccess ||
        cudaMalloc((void **)&t->server, (t->server_floats + 1) * 4) != cudaSuccess ||
        cudaMalloc((void **)&t->steps, sizeof(uint64_t)) != cudaSuccess) {
        cp_gpu_tensor_destroy(t);
        return CP_ERR_NOMEM;
    }
    /* Zeroed in stream order, before the first use on that stream. */
    cudaMemsetAsync(t->worker, 0, (t->worker_floats + 1) * 4, stream);
    cudaMemsetAsync(t->server, 0, (t->server_floats + 1) * 4, stream);
    cudaMemsetAsync(t->steps, 0, sizeof(uint64_t), stream);
    *t_p = t;
    return cp_cuda_last_error();
}

void cp_gpu_tensor_destroy(cp_gpu_tensor_t *t)
{
    if (t == NULL)
        return;
    cudaFree(t->worker);
    cudaFree(t->server);
    cudaFree(t->steps);
    free(t);
}

size_t cp_gpu_tensor_bytes(const cp_gpu_tensor_t *t)
{
    return (t->worker_floats + t->server_floats) * sizeof(float);
}

void cp_gpu_ws_free(cp_gpu_ws_t *ws)
{
    for (int i = 0; i < CP_GPU_WS_SLOTS; i++)
        cudaFree(ws->buf[i]);
    cudaFree(ws->flags);
    memset(ws, 0, sizeof(*ws));
}

size_t cp_gpu_ws_bytes(const cp_gpu_ws_t *ws)
{
    size_t total = 0;
    for (int i = 0; i < CP_GPU_WS_SLOTS; i++)
        total += ws->cap[i];
    return total;
}

/* Grows a device buffer: cudaFree waits for the work still using the old
 * one, so growth is safe, and rare (a larger tensor than seen before). */
static cp_status_t ws_get(cp_gpu_ws_t *ws, int slot, size_t bytes, void **p)
{
    if (bytes == 0)
        bytes = 256;
    if (ws->cap[slot] < bytes) {
        size_t cap = (bytes + bytes / 4 + 255) & ~(size_t)255;
        void *b;
        if (cudaMalloc(&b, cap) != cudaSuccess)
            return CP_ERR_NOMEM;
        cudaFree(ws->buf[slot]);
        ws->buf[slot] = b;
        ws->cap[slot] = cap;
    }
    *p = ws->buf[slot];
    return CP_OK;
}

/* What one call runs with: the step's codec parameters and feedback
 * parameters (from the host's call count), the feedback buffers. */
typedef struct {
    cp_params_t p;
    cp_fb_params_t fp;
    const cp_feedback_ops_t *fb;
    int state;      /* the worker has feedback state */
    int server;     /* the server side has feedback state */
    float *aux, *tmp;
} call_t;

static int has_state(const cp_gpu_tensor_t *t)
{
    return t->worker != NULL && t->worker_floats > 0;
}

/* v (and aux) from the input and the worker's state. none and ef run by
 * hand, with the fp16/bf16 widening fused; a twin gets fp32 input (widened
 * first into WS_G when needed: a non-finite input is a non-finite v). */
static cp_status_t worker_prepare(const cp_gpu_args_t *a, call_t *c, float *v,
                                  cp_cuda_flags_t *f)
{
    const cp_gpu_feedback_t *gfb = c->fb->gpu;
    const size_t n = a->count;
    void *scratch;
    if (gfb == NULL)
        return cp_cuda_prepare(c->state ? a->tensor->worker : NULL, a->send,
                               a->dtype, v, n, &f->bad_local, a->stream);
    if (!c->state)
        return CP_ERR_INVALID; /* the shim never runs a twin without state */
    const float *g = a->send;
    if (a->dtype != CP_DT_F32) {
        float *w;
        CP_CHECK(ws_get(a->ws, WS_G, n * 4, (void **)&w));
        CP_CHECK(cp_cuda_prepare(NULL, a->send, a->dtype, w, n, &f->bad_local,
                                 a->stream));
        g = w;
    }
    if (c->fb->uses_aux)
        CP_CHECK(ws_get(a->ws, WS_AUX, n * 4, (void **)&c->aux));
    if (c->fb->uses_tmp)
        CP_CHECK(ws_get(a->ws, WS_TMP, n * 4, (void **)&c->tmp));
    CP_CHECK(ws_get(a->ws, WS_FB, gfb->scratch(&c->fp, n), &scratch));
    return gfb->prepare(&c->fp, a->tensor->worker, g, v, c->aux, n, scratch,
                        &f->bad_local, a->stream);
}

/* The worker's state from what it sent of elements [off, off + len): the
 * slot holds codec's encoding of v[off..). ef commits by hand: the decode
 * with alpha -1 on top of v. */
static cp_status_t worker_commit(const cp_gpu_args_t *a, const call_t *c,
                                 const cp_compressor_ops_t *codec,
                                 const unsigned char *slot, size_t slot_size,
                                 const float *v, size_t off, size_t len,
                                 cp_cuda_flags_t *f)
{
    if (!c->state)
        return CP_OK;
    if (c->fb->gpu == NULL)
        return cp_cuda_decode_slot(codec, &c->p, slot, slot_size, -1.0f, v + off,
                                   a->tensor->worker + off, len, &f->any, 0,
                                   &f->err, a->stream);
    return c->fb->gpu->commit(&c->fp, a->tensor->worker + c->fb->state_floats(off),
                              v + off, c->aux ? c->aux + off : NULL,
                              c->tmp ? c->tmp + off : NULL, codec, &c->p, slot,
                              slot_size, len, &f->any, &f->err, a->stream);
}

static cp_status_t sparse(const cp_gpu_args_t *a, call_t *c, float *out,
                          float alpha, cp_cuda_flags_t *f, cp_coll_result_t *res)
{
    const cp_compressor_ops_t *codec = a->cfg->codec;
    const int n = a->tp->size, me = a->tp->rank;
    const size_t slot = cp_slot_size(codec->max_size(&c->p, a->count));
    unsigned char *send, *recv;
    float *v;
    void *scratch;

    CP_CHECK(ws_get(a->ws, WS_V, a->count * 4, (void **)&v));
    CP_CHECK(ws_get(a->ws, WS_SEND1, slot, (void **)&send));
    CP_CHECK(ws_get(a->ws, WS_RECV1, slot * (size_t)n, (void **)&recv));
    CP_CHECK(ws_get(a->ws, WS_SCRATCH,
                    cp_cuda_encode_scratch(codec, &c->p, a->count), &scratch));
    CP_CHECK(worker_prepare(a, c, v, f));
    CP_CHECK(cp_cuda_encode_slot(codec, &c->p, v, a->count, &f->bad_local,
                                 a->tensor->steps, me, 0, 0, a->count, send,
                                 slot, scratch, a->stream));
    CP_CHECK(a->tp->ops->allgather(a->tp->ctx, send, recv, slot));
    CP_CHECK(cp_cuda_slots_flag(recv, n, slot, &f->any, a->stream));
    for (int r = 0; r < n; r++)
        CP_CHECK(cp_cuda_decode_slot(codec, &c->p, recv + (size_t)r * slot, slot,
                                     alpha, r == 0 ? NULL : out, out, a->count,
                                     &f->any, 1, &f->err, a->stream));
    CP_CHECK(worker_commit(a, c, codec, send, slot, v, 0, a->count, f));
    res->bytes_sent = (size_t)(n - 1) * slot;
    return CP_OK;
}

static cp_status_t twophase(const cp_gpu_args_t *a, call_t *c,
                            const cp_compressor_ops_t *codec, float *out,
                            float alpha, cp_cuda_flags_t *f,
                            cp_coll_result_t *res)
{
    const int n = a->tp->size, me = a->tp->rank;
    const cp_params_t *p = &c->p;
    size_t off, len, moff, mlen, maxlen;
    unsigned char *send1, *recv1, *recv2;
    float *v, *sum, *vs;
    void *scratch;

    cp_chunk_range(a->count, n, 0, &off, &maxlen);
    cp_chunk_range(a->count, n, me, &moff, &mlen);
    const size_t slot = cp_slot_size(codec->max_size(p, maxlen));
    CP_CHECK(ws_get(a->ws, WS_V, a->count * 4, (void **)&v));
    CP_CHECK(ws_get(a->ws, WS_SEND1, slot * n, (void **)&send1));
    CP_CHECK(ws_get(a->ws, WS_RECV1, slot * n, (void **)&recv1));
    CP_CHECK(ws_get(a->ws, WS_SUM, maxlen * 4, (void **)&sum));
    CP_CHECK(ws_get(a->ws, WS_VS, maxlen * 4, (void **)&vs));
    CP_CHECK(ws_get(a->ws, WS_RECV2, slot * n, (void **)&recv2));
    CP_CHECK(ws_get(a->ws, WS_SCRATCH,
                    cp_cuda_encode_scratch(codec, p, maxlen), &scratch));

    /* Phase 1: worker feedback, encode n chunks, alltoall. */
    CP_CHECK(worker_prepare(a, c, v, f));
    for (int j = 0; j < n; j++) {
        cp_chunk_range(a->count, n, j, &off, &len);
        CP_CHECK(cp_cuda_encode_slot(codec, p, v + off, len, &f->bad_local,
                                     a->tensor->steps, me, 1, j, a->count,
                                     send1 + (size_t)j * slot, slot, scratch,
                                     a->stream));
    }
    CP_CHECK(a->tp->ops->alltoall(a->tp->ctx, send1, recv1, slot));
    CP_CHECK(cp_cuda_slots_flag(recv1, n, slot, &f->any1, a->stream));

    /* Phase 2: sum my chunk in rank order, server feedback (ef or none:
     * every variant's server side, feedback.h), encode. A flag from phase
     * 1 travels on in the server's header. */
    for (int r = 0; r < n; r++)
        CP_CHECK(cp_cuda_decode_slot(codec, p, recv1 + (size_t)r * slot, slot,
                                     1.0f, r == 0 ? NULL : sum, sum, mlen,
                                     &f->any1, 0, &f->err, a->stream));
    CP_CHECK(cp_cuda_prepare(c->server ? a->tensor->server : NULL, sum, CP_DT_F32,
                             vs, mlen, &f->bad_server, a->stream));
    CP_CHECK(cp_cuda_slots_flag(recv1, n, slot, &f->bad_server, a->stream));
    /* send1 is still needed for the worker's commit; recv1 is consumed. */
    unsigned char *send2 = recv1;
    CP_CHECK(cp_cuda_encode_slot(codec, p, vs, mlen, &f->bad_server,
                                 a->tensor->steps, me, 2, me, a->count, send2,
                                 slot, scratch, a->stream));
    CP_CHECK(a->tp->ops->allgather(a->tp->ctx, send2, recv2, slot));
    CP_CHECK(cp_cuda_slots_flag(recv2, n, slot, &f->any, a->stream));

    /* Phase 3: every chunk into the result; then both commits. */
    for (int j = 0; j < n; j++) {
        cp_chunk_range(a->count, n, j, &off, &len);
        CP_CHECK(cp_cuda_decode_slot(codec, p, recv2 + (size_t)j * slot, slot,
                                     alpha, NULL, out + off, len, &f->any, 1,
                                     &f->err, a->stream));
    }
    for (int j = 0; j < n; j++) {
        cp_chunk_range(a->count, n, j, &off, &len);
        CP_CHECK(worker_commit(a, c, codec, send1 + (size_t)j * slot, slot, v,
                               off, len, f));
    }
    if (c->server)
        CP_CHECK(cp_cuda_decode_slot(codec, p, recv2 + (size_t)me * slot, slot,
                                     -1.0f, vs, a->tensor->server, mlen,
                                     &f->any, 0, &f->err, a->stream));
    res->bytes_sent = 2 * (size_t)(n - 1) * slot;
    return CP_OK;
}

cp_status_t cp_gpu_allreduce(const cp_gpu_args_t *a, cp_coll_result_t *res)
{
    const int n = a->tp->size;
    const cp_coll_config_t *cfg = a->cfg;
    float *out = a->recv;
    const float scale = a->avg ? 1.0f / (float)n : 1.0f;
    cp_status_t st;

    memset(res, 0, sizeof(*res));
    if (a->tensor->count != a->count || a->count > (size_t)INT32_MAX)
        return CP_ERR_INVALID;
    if (a->ws->flags == NULL &&
        cudaMalloc((void **)&a->ws->flags, sizeof(cp_cuda_flags_t)) != cudaSuccess)
        return CP_ERR_NOMEM;
    cp_cuda_flags_t *f = a->ws->flags;
    cudaMemsetAsync(f, 0, sizeof(*f), a->stream);
    if (a->dtype != CP_DT_F32)
        CP_CHECK(ws_get(a->ws, WS_OUT, a->count * 4, (void **)&out));
    /* The step's parameters from the host's call count (see the header). */
    const uint64_t calls = a->tensor->calls;
    call_t c = {.p = cp_step_params(cfg, calls),
                .fp = cp_step_fb(cfg, n, calls),
                .fb = cfg->feedback,
                .state = has_state(a->tensor),
                .server = a->tensor->server != NULL && a->tensor->server_floats > 0};
    c.p.seed = cfg->seed;
    res->algo = cp_allreduce_choose(cfg, &c.p, calls, a->count, n);
    if (res->algo == CP_ALGO_SPARSE_RS) /* MPI path only (refused when forced) */
        res->algo = CP_ALGO_SPARSE;
    res->bytes_dense = cp_ring_bytes(n, (double)dtype_size(a->dtype) * (double)a->count);
    /* An estimator's result is H (finish), scaled there for ncclAvg. */
    const int estimator = c.fb->gpu != NULL && c.fb->gpu->finish != NULL;
    const float alpha = estimator ? 1.0f : scale;
    if (res->algo == CP_ALGO_SPARSE)
        st = sparse(a, &c, out, alpha, f, res);
    else
        st = twophase(a, &c, res->algo == CP_ALGO_DENSE ? &cp_compressor_none
                                                        : cfg->codec,
                      out, alpha, f, res);
    if (st != CP_OK)
        return st;
    if (estimator && c.state)
        CP_CHECK(c.fb->gpu->finish(a->tensor->worker, out, a->count, scale,
                                   &f->any, &f->err, a->stream));
    CP_CHECK(cp_cuda_step(a->tensor->steps, &f->any, &f->err, a->stream));
    if (a->dtype != CP_DT_F32)
        CP_CHECK(cp_cuda_store(out, a->recv, a->dtype, a->count, a->stream));
    a->tensor->calls++;
    return cp_cuda_last_error();
}
