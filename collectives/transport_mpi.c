/* The MPI transport. It calls only PMPI_* so that it never re-enters the
 * interception layer. Byte counts above INT_MAX travel as a contiguous
 * datatype (MPI 3 has no large-count calls). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "collectives/transport_mpi.h"
#include "util/log.h"

static cp_status_t mpi_result(int rc, const char *what)
{
    if (rc == MPI_SUCCESS)
        return CP_OK;
    cp_warn_rl("%s failed with MPI error %d", what, rc);
    return CP_ERR_TRANSPORT;
}

/* Expresses `bytes` as (count, type); a derived type is made only for
 * blocks too large for an int count, and freed by the caller. */
static int block_type(size_t bytes, int *count, MPI_Datatype *type)
{
    if (bytes <= INT_MAX) {
        *count = (int)bytes;
        *type = MPI_BYTE;
        return MPI_SUCCESS;
    }
    /* Slots are multiples of 8 bytes, so 8-byte units fit any realistic size. */
    if (bytes % 8 != 0 || bytes / 8 > INT_MAX)
        return MPI_ERR_COUNT;
    int rc = PMPI_Type_contiguous((int)(bytes / 8), MPI_DOUBLE, type);
    if (rc == MPI_SUCCESS)
        rc = PMPI_Type_commit(type);
    *count = 1;
    return rc;
}

static void block_type_free(MPI_Datatype *type)
{
    if (*type != MPI_BYTE)
        PMPI_Type_free(type);
}

static cp_status_t mpi_alltoall(void *ctx, const void *send, void *recv,
                                size_t bytes)
{
    MPI_Datatype t;
    int count, rc = block_type(bytes, &count, &t);
    if (rc == MPI_SUCCESS) {
        rc = PMPI_Alltoall(send, count, t, recv, count, t, *(MPI_Comm *)ctx);
        block_type_free(&t);
    }
    return mpi_result(rc, "PMPI_Alltoall");
}

static cp_status_t mpi_allgather(void *ctx, const void *send, void *recv,
                                 size_t bytes)
{
    MPI_Datatype t;
    int count, rc = block_type(bytes, &count, &t);
    if (rc == MPI_SUCCESS) {
        rc = PMPI_Allgather(send, count, t, recv, count, t, *(MPI_Comm *)ctx);
        block_type_free(&t);
    }
    return mpi_result(rc, "PMPI_Allgather");
}

static cp_status_t mpi_allreduce_sum_f32(void *ctx, const float *send,
                                         float *recv, size_t count)
{
    MPI_Comm comm = *(MPI_Comm *)ctx;
    const void *s = send ? (const void *)send : MPI_IN_PLACE;
    /* Split counts above INT_MAX into int-sized pieces. */
    for (size_t off = 0; off < count;) {
        size_t m = count - off > INT_MAX ? INT_MAX : count - off;
        int rc = PMPI_Allreduce(send ? (const void *)(send + off) : s,
                                recv + off, (int)m, MPI_FLOAT, MPI_SUM, comm);
        if (rc != MPI_SUCCESS)
            return mpi_result(rc, "PMPI_Allreduce");
        off += m;
    }
    return CP_OK;
}

static cp_status_t mpi_allreduce_max_u64(void *ctx, uint64_t *vals, size_t n)
{
    int rc = PMPI_Allreduce(MPI_IN_PLACE, vals, (int)n, MPI_UINT64_T, MPI_MAX,
                            *(MPI_Comm *)ctx);
    return mpi_result(rc, "PMPI_Allreduce(config check)");
}

static cp_status_t mpi_allreduce_sum_u64(void *ctx, uint64_t *vals, size_t n)
{
    int rc = PMPI_Allreduce(MPI_IN_PLACE, vals, (int)n, MPI_UINT64_T, MPI_SUM,
                            *(MPI_Comm *)ctx);
    return mpi_result(rc, "PMPI_Allreduce(sparse_rs histogram)");
}

/* Byte counts and displacements (multiples of 8) as ints of 8-byte
 * units, into c and d (n each). */
static int units(const size_t *counts, const size_t *displs, int n, int *c, int *d)
{
    for (int r = 0; r < n; r++) {
        if (counts[r] % 8 || displs[r] % 8 || counts[r] / 8 > INT_MAX || displs[r] / 8 > INT_MAX)
            return MPI_ERR_COUNT;
        c[r] = (int)(counts[r] / 8);
        d[r] = (int)(displs[r] / 8);
    }
    return MPI_SUCCESS;
}

/* The int arrays MPI's v-collectives take, `sets` of comm's size each,
 * allocated per call (a few bytes a rank; sparse_rs makes two such calls
 * a step). */
static cp_status_t int_arrays(MPI_Comm comm, int sets, int *n, int **v)
{
    int rc = PMPI_Comm_size(comm, n);
    if (rc != MPI_SUCCESS)
        return mpi_result(rc, "PMPI_Comm_size");
    *v = malloc((size_t)sets * (size_t)*n * sizeof(int));
    return *v ? CP_OK : CP_ERR_NOMEM;
}

static cp_status_t mpi_alltoallv(void *ctx, const void *send, const size_t *scounts,
                                 const size_t *sdispls, void *recv, const size_t *rcounts,
                                 const size_t *rdispls)
{
    MPI_Comm comm = *(MPI_Comm *)ctx;
    int n, *v;
    CP_CHECK(int_arrays(comm, 4, &n, &v));
    int rc = units(scounts, sdispls, n, v, v + n);
    if (rc == MPI_SUCCESS)
        rc = units(rcounts, rdispls, n, v + 2 * n, v + 3 * n);
    if (rc == MPI_SUCCESS)
        rc = PMPI_Alltoallv(send, v, v + n, MPI_UINT64_T, recv, v + 2 * n, v + 3 * n,
                            MPI_UINT64_T, comm);
    free(v);
    return mpi_result(rc, "PMPI_Alltoallv");
}

static cp_status_t mpi_allgatherv(void *ctx, const void *send, size_t bytes, void *recv,
                                  const size_t *counts, const size_t *displs)
{
    MPI_Comm comm = *(MPI_Comm *)ctx;
    int n, *v;
    CP_CHECK(int_arrays(comm, 2, &n, &v));
    int rc = units(counts, displs, n, v, v + n);
    if (rc == MPI_SUCCESS && (bytes % 8 || bytes / 8 > INT_MAX))
        rc = MPI_ERR_COUNT;
    if (rc == MPI_SUCCESS)
        rc = PMPI_Allgatherv(send ? send : MPI_IN_PLACE, (int)(bytes / 8), MPI_UINT64_T, recv, v, v + n,
                             MPI_UINT64_T, comm);
    free(v);
    return mpi_result(rc, "PMPI_Allgatherv");
}

/* The request lives in the first bytes of a cp_treq_t; MPI_REQUEST_NULL
 * is stored as all zero, so a zeroed cp_treq_t is a finished request. */
_Static_assert(sizeof(MPI_Request) <= sizeof(cp_treq_t), "MPI_Request fits");

static void req_put(cp_treq_t *req, MPI_Request r)
{
    memset(req, 0, sizeof(*req));
    if (r != MPI_REQUEST_NULL)
        memcpy(req, &r, sizeof(r));
}

static MPI_Request req_get(const cp_treq_t *req)
{
    static const cp_treq_t zero;
    MPI_Request r;
    if (memcmp(req, &zero, sizeof(zero)) == 0)
        return MPI_REQUEST_NULL;
    memcpy(&r, req, sizeof(r));
    return r;
}

static cp_status_t mpi_isend(void *p2p, const void *buf, size_t bytes,
                             int peer, int tag, cp_treq_t *req)
{
    MPI_Datatype t;
    MPI_Request r = MPI_REQUEST_NULL;
    int count, rc = block_type(bytes, &count, &t);
    if (rc == MPI_SUCCESS) {
        /* Freeing the type at once is allowed: the send keeps it. */
        rc = PMPI_Isend(buf, count, t, peer, tag, *(MPI_Comm *)p2p, &r);
        block_type_free(&t);
    }
    req_put(req, r);
    return mpi_result(rc, "PMPI_Isend");
}

static cp_status_t mpi_irecv(void *p2p, void *buf, size_t bytes, int peer,
                             int tag, cp_treq_t *req)
{
    MPI_Datatype t;
    MPI_Request r = MPI_REQUEST_NULL;
    int count, rc = block_type(bytes, &count, &t);
    if (rc == MPI_SUCCESS) {
        rc = PMPI_Irecv(buf, count, t, peer, tag, *(MPI_Comm *)p2p, &r);
        block_type_free(&t);
    }
    req_put(req, r);
    return mpi_result(rc, "PMPI_Irecv");
}

static cp_status_t mpi_wait(cp_treq_t *req)
{
    MPI_Request r = req_get(req);
    int rc = PMPI_Wait(&r, MPI_STATUS_IGNORE);
    req_put(req, r);
    return mpi_result(rc, "PMPI_Wait");
}

static cp_status_t mpi_test(cp_treq_t *req, int *done)
{
    MPI_Request r = req_get(req);
    int rc = PMPI_Test(&r, done, MPI_STATUS_IGNORE);
    req_put(req, r);
    return mpi_result(rc, "PMPI_Test");
}

const cp_transport_ops_t cp_transport_mpi = {
    .name = "mpi",
    .alltoall = mpi_alltoall,
    .allgather = mpi_allgather,
    .allreduce_sum_f32 = mpi_allreduce_sum_f32,
    .allreduce_max_u64 = mpi_allreduce_max_u64,
    .alltoallv = mpi_alltoallv,
    .allgatherv = mpi_allgatherv,
    .allreduce_sum_u64 = mpi_allreduce_sum_u64,
    .isend = mpi_isend,
    .irecv = mpi_irecv,
    .wait = mpi_wait,
    .test = mpi_test,
};

cp_status_t cp_transport_mpi_init(cp_transport_t *tp, MPI_Comm *comm_slot)
{
    int rank, size;
    if (PMPI_Comm_rank(*comm_slot, &rank) != MPI_SUCCESS ||
        PMPI_Comm_size(*comm_slot, &size) != MPI_SUCCESS)
        return CP_ERR_TRANSPORT;
    tp->ops = &cp_transport_mpi;
    tp->ctx = comm_slot;
    tp->p2p_ctx = NULL;
    tp->rank = rank;
    tp->size = size;
    return CP_OK;
}

void cp_transport_mpi_p2p(cp_transport_t *tp, MPI_Comm *p2p_slot)
{
    tp->p2p_ctx = p2p_slot;
}

cp_status_t cp_mpi_agree(MPI_Comm comm, int valid, uint64_t hash)
{
    const cp_transport_t tp = {.ops = &cp_transport_mpi, .ctx = &comm};
    return cp_transport_agree(&tp, valid, hash);
}
