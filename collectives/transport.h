/* Byte-moving primitives the compressed collectives are written against.
 * Three implement them: MPI (transport_mpi.c, PMPI_*), NCCL
 * (transport_nccl.c, the real library's functions, for the GPU path), and
 * a caller's own collectives (plugin/api.c, commpress_create_transport:
 * the DDP hook's torch.distributed; no point-to-point, no v-collectives).
 * Sizes are bytes per rank. Buffers live where the transport moves data
 * from: host memory for MPI (calls complete before returning), device
 * memory for NCCL (calls are enqueued on a stream and return at once). */
#ifndef CP_TRANSPORT_H
#define CP_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A pending point-to-point transfer; holds the transport's own handle
 * (an MPI_Request). A null request (done) is all zero. */
typedef struct {
    uint64_t opaque[2];
} cp_treq_t;

typedef struct {
    const char *name;
    /* recv[r * bytes ..] receives the block rank r sent to us. */
    cp_status_t (*alltoall)(void *ctx, const void *send, void *recv,
                            size_t bytes);
    cp_status_t (*allgather)(void *ctx, const void *send, void *recv,
                             size_t bytes);
    /* The exact, uncompressed sum (the library's own allreduce); send NULL
     * means in place. Used for steps that carry Inf/NaN. */
    cp_status_t (*allreduce_sum_f32)(void *ctx, const float *send, float *recv,
                                     size_t count);
    /* Elementwise max of n uint64 values across ranks, in place. */
    cp_status_t (*allreduce_max_u64)(void *ctx, uint64_t *vals, size_t n);
    /* For sparse_rs (allreduce_sparse_rs.c); NULL where the transport has
     * none. Counts and displacements in bytes, multiples of 8: the block
     * to (from) rank r is scounts[r] (rcounts[r]) bytes at sdispls[r]
     * (rdispls[r]); allgatherv's block from rank r lands at displs[r]
     * (send NULL: this rank's is in place there already). */
    cp_status_t (*alltoallv)(void *ctx, const void *send, const size_t *scounts,
                             const size_t *sdispls, void *recv, const size_t *rcounts,
                             const size_t *rdispls);
    cp_status_t (*allgatherv)(void *ctx, const void *send, size_t bytes, void *recv,
                              const size_t *counts, const size_t *displs);
    /* Elementwise sum of n uint64 values across ranks, in place. */
    cp_status_t (*allreduce_sum_u64)(void *ctx, uint64_t *vals, size_t n);
    /* Point-to-point for the pipelined schedules (allreduce_twophase.c),
     * on p2p_ctx: a context no one else sends on. NULL where the
     * transport has none. A request completes in wait (which also
     * progresses the others); test progresses without blocking. */
    cp_status_t (*isend)(void *p2p_ctx, const void *buf, size_t bytes, int peer,
                         int tag, cp_treq_t *req);
    cp_status_t (*irecv)(void *p2p_ctx, void *buf, size_t bytes, int peer,
                         int tag, cp_treq_t *req);
    cp_status_t (*wait)(cp_treq_t *req);
    cp_status_t (*test)(cp_treq_t *req, int *done);
} cp_transport_ops_t;

typedef struct {
    const cp_transport_ops_t *ops;
    void *ctx;
    void *p2p_ctx; /* NULL: no point-to-point (the collectives only) */
    int rank;
    int size;
} cp_transport_t;

/* Collective agreement before anyone allocates, over any transport:
 * CP_ERR_INVALID on every rank if any rank passes valid = 0,
 * CP_ERR_MISMATCH if the hashes of the ranks' configurations differ (one
 * max-allreduce of 3 words: the hash and its complement are equal
 * everywhere iff their maxima are). */
static inline cp_status_t cp_transport_agree(const cp_transport_t *tp, int valid,
                                             uint64_t hash)
{
    uint64_t v[3] = {!valid, valid ? hash : 0, valid ? ~hash : ~(uint64_t)0};
    if (tp->ops->allreduce_max_u64(tp->ctx, v, 3) != CP_OK)
        return CP_ERR_TRANSPORT;
    if (!valid || v[0])
        return CP_ERR_INVALID;
    if (v[1] != hash || v[2] != ~hash)
        return CP_ERR_MISMATCH;
    return CP_OK;
}

#ifdef __cplusplus
}
#endif

#endif
