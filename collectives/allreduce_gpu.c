#include <stdlib.h>
#include <string.h>

#include "collectives/allreduce_gpu.h"
#include "util/log.h"

_Static_assert(CP_CUDA_SLOT_HDR == CP_SLOT_HDR, "GPU and CPU slots differ");

enum { WS_V, WS_SEND1, WS_RECV1, WS_SUM, WS_VS, WS_RECV2, WS_SCRATCH, WS_OUT };

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

static cp_status_t sparse(const cp_gpu_args_t *a, float *out, float alpha,
                          cp_cuda_flags_t *f, cp_coll_result_t *res)
{
    const cp_coll_config_t *cfg = a->cfg;
    const cp_compressor_ops_t *codec = cfg->codec;
    const int n = a->tp->size, me = a->tp->rank;
    const int ef = a->tensor->worker != NULL && a->tensor->worker_floats > 0;
    cp_params_t p = cfg->params;
    const size_t slot = cp_slot_size(codec->max_size(&p, a->count));
    unsigned char *send, *recv;
    float *v;
    void *scratch;

    p.seed = cfg->seed;
    CP_CHECK(ws_get(a->ws, WS_V, a->count * 4, (void **)&v));
    CP_CHECK(ws_get(a->ws, WS_SEND1, slot, (void **)&send));
    CP_CHECK(ws_get(a->ws, WS_RECV1, slot * (size_t)n, (void **)&recv));
    CP_CHECK(ws_get(a->ws, WS_SCRATCH,
                    cp_cuda_encode_scratch(codec, &p, a->count), &scratch));
    CP_CHECK(cp_cuda_prepare(ef ? a->tensor->worker : NULL, a->send, a->dtype,
                             v, a->count, &f->bad_local, a->stream));
    CP_CHECK(cp_cuda_encode_slot(codec, &p, v, a->count, &f->bad_local,
                                 a->tensor->steps, me, 0, 0, a->count, send,
                                 slot, scratch, a->stream));
    CP_CHECK(a->tp->ops->allgather(a->tp->ctx, send, recv, slot));
    CP_CHECK(cp_cuda_slots_flag(recv, n, slot, &f->any, a->stream));
    for (int r = 0; r < n; r++)
        CP_CHECK(cp_cuda_decode_slot(codec, &p, recv + (size_t)r * slot, slot,
                                     alpha, r == 0 ? NULL : out, out, a->count,
                                     &f->any, 1, &f->err, a->stream));
    if (ef)
        CP_CHECK(cp_cuda_decode_slot(codec, &p, send, slot, -1.0f, v,
                                     a->tensor->worker, a->count, &f->any, 0,
                                     &f->err, a->stream));
    res->bytes_sent = (size_t)(n - 1) * slot;
    return CP_OK;
}

static cp_status_t twophase(const cp_gpu_args_t *a,
                            const cp_compressor_ops_t *codec, float *out,
                            float alpha, cp_cuda_flags_t *f,
                            cp_coll_result_t *res)
{
    const cp_coll_config_t *cfg = a->cfg;
    const int n = a->tp->size, me = a->tp->rank;
    const int ef = a->tensor->worker != NULL && a->tensor->worker_floats > 0;
    cp_params_t p = cfg->params;
    size_t off, len, moff, mlen, maxlen;
    unsigned char *send1, *recv1, *recv2;
    float *v, *sum, *vs;
    void *scratch;

    p.seed = cfg->seed;
    cp_chunk_range(a->count, n, 0, &off, &maxlen);
    cp_chunk_range(a->count, n, me, &moff, &mlen);
    const size_t slot = cp_slot_size(codec->max_size(&p, maxlen));
    CP_CHECK(ws_get(a->ws, WS_V, a->count * 4, (void **)&v));
    CP_CHECK(ws_get(a->ws, WS_SEND1, slot * n, (void **)&send1));
    CP_CHECK(ws_get(a->ws, WS_RECV1, slot * n, (void **)&recv1));
    CP_CHECK(ws_get(a->ws, WS_SUM, maxlen * 4, (void **)&sum));
    CP_CHECK(ws_get(a->ws, WS_VS, maxlen * 4, (void **)&vs));
    CP_CHECK(ws_get(a->ws, WS_RECV2, slot * n, (void **)&recv2));
    CP_CHECK(ws_get(a->ws, WS_SCRATCH,
                    cp_cuda_encode_scratch(codec, &p, maxlen), &scratch));

    /* Phase 1: worker feedback, encode n chunks, alltoall. */
    CP_CHECK(cp_cuda_prepare(ef ? a->tensor->worker : NULL, a->send, a->dtype,
                             v, a->count, &f->bad_local, a->stream));
    for (int j = 0; j < n; j++) {
        cp_chunk_range(a->count, n, j, &off, &len);
        CP_CHECK(cp_cuda_encode_slot(codec, &p, v + off, len, &f->bad_local,
                                     a->tensor->steps, me, 1, j, a->count,
                                     send1 + (size_t)j * slot, slot, scratch,
                                     a->stream));
    }
    CP_CHECK(a->tp->ops->alltoall(a->tp->ctx, send1, recv1, slot));
    CP_CHECK(cp_cuda_slots_flag(recv1, n, slot, &f->any1, a->stream));

    /* Phase 2: sum my chunk in rank order, server feedback, encode. A flag
     * from phase 1 travels on in the server's header. */
    for (int r = 0; r < n; r++)
        CP_CHECK(cp_cuda_decode_slot(codec, &p, recv1 + (size_t)r * slot, slot,
                                     1.0f, r == 0 ? NULL : sum, sum, mlen,
                                     &f->any1, 0, &f->err, a->stream));
    CP_CHECK(cp_cuda_prepare(ef ? a->tensor->server : NULL, sum, CP_DT_F32, vs,
                             mlen, &f->bad_server, a->stream));
    CP_CHECK(cp_cuda_slots_flag(recv1, n, slot, &f->bad_server, a->stream));
    /* send1 is still needed for the worker's commit; recv1 is consumed. */
    unsigned char *send2 = recv1;
    CP_CHECK(cp_cuda_encode_slot(codec, &p, vs, mlen, &f->bad_server,
                                 a->tensor->steps, me, 2, me, a->count, send2,
                                 slot, scratch, a->stream));
    CP_CHECK(a->tp->ops->allgather(a->tp->ctx, send2, recv2, slot));
    CP_CHECK(cp_cuda_slots_flag(recv2, n, slot, &f->any, a->stream));

    /* Phase 3: every chunk into the result; then both commits. */
    for (int j = 0; j < n; j++) {
        cp_chunk_range(a->count, n, j, &off, &len);
        CP_CHECK(cp_cuda_decode_slot(codec, &p, recv2 + (size_t)j * slot, slot,
                                     alpha, NULL, out + off, len, &f->any, 1,
                                     &f->err, a->stream));
    }
    if (ef) {
        for (int j = 0; j < n; j++) {
            cp_chunk_range(a->count, n, j, &off, &len);
            CP_CHECK(cp_cuda_decode_slot(codec, &p, send1 + (size_t)j * slot,
                                         slot, -1.0f, v + off,
                                         a->tensor->worker + off, len, &f->any,
                                         0, &f->err, a->stream));
        }
        CP_CHECK(cp_cuda_decode_slot(codec, &p, recv2 + (size_t)me * slot, slot,
                                     -1.0f, vs, a->tensor->server, mlen,
                                     &f->any, 0, &f->err, a->stream));
    }
    res->bytes_sent = 2 * (size_t)(n - 1) * slot;
    return CP_OK;
}

cp_status_t cp_gpu_allreduce(const cp_gpu_args_t *a, cp_coll_result_t *res)
{
    const int n = a->tp->size;
    float *out = a->recv;
    const float alpha = a->avg ? 1.0f / (float)n : 1.0f;
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
    res->algo = cp_allreduce_choose(a->cfg, &a->cfg->params, 0, a->count, n);
    if (res->algo == CP_ALGO_SPARSE_RS) /* MPI path only (refused when forced) */
        res->algo = CP_ALGO_SPARSE;
    /* (The GPU path runs feedback none or ef only: no step dependence.) */
    res->bytes_dense = cp_ring_bytes(n, (double)dtype_size(a->dtype) * (double)a->count);
    if (res->algo == CP_ALGO_SPARSE)
        st = sparse(a, out, alpha, f, res);
    else
        st = twophase(a, res->algo == CP_ALGO_DENSE ? &cp_compressor_none
                                                    : a->cfg->codec,
                      out, alpha, f, res);
    if (st != CP_OK)
        return st;
    CP_CHECK(cp_cuda_step(a->tensor->steps, &f->any, &f->err, a->stream));
    if (a->dtype != CP_DT_F32)
        CP_CHECK(cp_cuda_store(out, a->recv, a->dtype, a->count, a->stream));
    return cp_cuda_last_error();
}
