/* Byte-moving primitives on the real NCCL entry points. alltoall is a group
 * of ncclSend/ncclRecv (NCCL has no alltoall); everything is enqueued on the
 * caller's stream. */
#include <cuda_runtime_api.h>

#include "collectives/nccl_real.h"
#include "collectives/transport_nccl.h"
#include "util/log.h"

static __thread ncclResult_t cp_nccl_last;

ncclResult_t cp_transport_nccl_last_error(void) { return cp_nccl_last; }

/* ncclInProgress is how non-blocking communicators accept work. The NCCL
 * code of a failure is kept so the shim can return it unchanged. */
static cp_status_t nccl_result(ncclResult_t r, const char *what)
{
    if (r == ncclSuccess || r == ncclInProgress)
        return CP_OK;
    cp_nccl_last = r;
    cp_warn_rl("%s failed: NCCL error %d", what, (int)r);
    return CP_ERR_TRANSPORT;
}

static cp_status_t nccl_alltoall(void *vctx, const void *send, void *recv,
                                 size_t bytes)
{
    const cp_nccl_real_t *R = cp_nccl_real();
    cp_nccl_ctx_t *c = vctx;
    int n;
    ncclResult_t r = R->CommCount(c->comm, &n);
    if (r != ncclSuccess)
        return nccl_result(r, "ncclCommCount");
    r = R->GroupStart();
    for (int p = 0; p < n && r == ncclSuccess; p++) {
        r = R->Send((const char *)send + (size_t)p * bytes, bytes, ncclUint8, p,
                    c->comm, c->stream);
        if (r == ncclSuccess)
            r = R->Recv((char *)recv + (size_t)p * bytes, bytes, ncclUint8, p,
                        c->comm, c->stream);
    }
    ncclResult_t e = R->GroupEnd();
    return nccl_result(r != ncclSuccess ? r : e, "alltoall (ncclSend/ncclRecv)");
}

static cp_status_t nccl_allgather(void *vctx, const void *send, void *recv,
                                  size_t bytes)
{
    cp_nccl_ctx_t *c = vctx;
    return nccl_result(cp_nccl_real()->AllGather(send, recv, bytes, ncclUint8,
                                                 c->comm, c->stream),
                       "ncclAllGather");
}

static cp_status_t nccl_allreduce_sum_f32(void *vctx, const float *send,
                                          float *recv, size_t count)
{
    cp_nccl_ctx_t *c = vctx;
    return nccl_result(cp_nccl_real()->AllReduce(send ? send : recv, recv,
                                                 count, ncclFloat32, ncclSum,
                                                 c->comm, c->stream),
                       "ncclAllReduce");
}

/* Host values: staged through the device, synchronous. Used once per
 * communicator (the configuration check), never on the hot path. */
static cp_status_t nccl_allreduce_max_u64(void *vctx, uint64_t *vals, size_t n)
{
    cp_nccl_ctx_t *c = vctx;
    uint64_t *d = NULL;
    cudaStream_t s;
    cp_status_t st = CP_ERR_TRANSPORT;

    if (cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) != cudaSuccess)
        return CP_ERR_TRANSPORT;
    if (cudaMalloc((void **)&d, n * sizeof(uint64_t)) == cudaSuccess &&
        cudaMemcpy(d, vals, n * sizeof(uint64_t), cudaMemcpyHostToDevice) ==
            cudaSuccess) {
        st = nccl_result(cp_nccl_real()->AllReduce(d, d, n, ncclUint64, ncclMax,
                                                   c->comm, s),
                         "ncclAllReduce(config check)");
        if (st == CP_OK && (cudaStreamSynchronize(s) != cudaSuccess ||
                            cudaMemcpy(vals, d, n * sizeof(uint64_t),
                                       cudaMemcpyDeviceToHost) != cudaSuccess))
            st = CP_ERR_TRANSPORT;
    }
    cudaFree(d);
    cudaStreamDestroy(s);
    return st;
}

const cp_transport_ops_t cp_transport_nccl = {
    .name = "nccl",
    .alltoall = nccl_alltoall,
    .allgather = nccl_allgather,
    .allreduce_sum_f32 = nccl_allreduce_sum_f32,
    .allreduce_max_u64 = nccl_allreduce_max_u64,
};

cp_status_t cp_transport_nccl_init(cp_transport_t *tp, cp_nccl_ctx_t *ctx)
{
    const cp_nccl_real_t *R = cp_nccl_real();
    int rank, size;
    if (R->CommCount == NULL || R->CommCount(ctx->comm, &size) != ncclSuccess ||
        R->CommUserRank(ctx->comm, &rank) != ncclSuccess)
        return CP_ERR_TRANSPORT;
    tp->ops = &cp_transport_nccl;
    tp->ctx = ctx;
    tp->p2p_ctx = NULL; /* no pipelined schedules on the GPU path */
    tp->rank = rank;
    tp->size = size;
    return CP_OK;
}
