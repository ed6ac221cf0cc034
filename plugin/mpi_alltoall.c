/* MPI_Alltoall and MPI_Alltoallv of MPI_FLOAT, compressed
 * (COMMPRESS_ALLTOALL; docs/moe.md, "Transparent mode"). Each block to
 * another rank becomes one self-describing message; the sizes travel
 * first, every rank checks those it received, and the ranks agree (one
 * allreduce) before the payload moves, so a bad size makes every rank run
 * the plain call instead. A block to this rank is copied exactly.
 *
 * Message: [u32 magic][u8 kind][u8 map bytes][u16 0][u64 floats][u64 rows
 * sent], then by kind:
 *   raw    floats x f32
 *   fp16   floats x u16 (binary16), bf16: floats x u16 (bfloat16)
 *   lsh    (floats / ROW) x u16 or u32 bucket of each row (u16 when at
 *          most 65535 buckets), zero bytes to a multiple of 4, then
 *          (rows sent) x ROW x f32 centroids.
 * A block goes raw when it cannot be compressed exactly as its kind says:
 * non-finite values, values beyond fp16's range, a count that is not a
 * multiple of COMMPRESS_A2A_ROW, fewer than two rows, or more buckets than
 * COMMPRESS_A2A_MAX_FRACTION of its rows. */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moe/lsh.h"
#include "plugin/runtime.h"
#include "plugin/stats.h"
#include "util/fault.h"
#include "util/hd.h"
#include "util/log.h"

#define A2A_MAGIC 0x32415043u /* "CPA2" */
#define A2A_HDR 24
enum { K_RAW = 0, K_LSH = 1, K_FP16 = 2, K_BF16 = 3 };

static pthread_mutex_t lsh_lock = PTHREAD_MUTEX_INITIALIZER;
static cp_lsh_t shim_lsh; /* made at the first lsh call, read-only after */
static int lsh_state;     /* 0 not made, 1 made, -1 failed */

static const cp_lsh_t *get_lsh(const cp_config_t *cfg)
{
    pthread_mutex_lock(&lsh_lock);
    if (lsh_state == 0)
        lsh_state = cp_lsh_init(&shim_lsh, cfg->a2a_row, cfg->a2a_hashes,
                                0x4c53484d6f45ull) == CP_OK ? 1 : -1;
    pthread_mutex_unlock(&lsh_lock);
    return lsh_state == 1 ? &shim_lsh : NULL;
}

static void put_hdr(unsigned char *m, int kind, int mapb, uint64_t n, uint64_t nb)
{
    const uint32_t magic = A2A_MAGIC;
    memcpy(m, &magic, 4);
    m[4] = (unsigned char)kind, m[5] = (unsigned char)mapb, m[6] = m[7] = 0;
    memcpy(m + 8, &n, 8);
    memcpy(m + 16, &nb, 8);
}

/* Largest message for a block of n floats (any kind). */
static size_t msg_bound(size_t n) { return 32 + 8 * n; }

static size_t encode_raw(const float *x, size_t n, unsigned char *m)
{
    put_hdr(m, K_RAW, 0, n, 0);
    memcpy(m + A2A_HDR, x, n * sizeof(float));
    return A2A_HDR + n * sizeof(float);
}

static int cast_ok(const float *x, size_t n, int kind)
{
    /* Beyond 65504 (fp16) or bfloat16's largest, or non-finite: raw. */
    const uint32_t lim = kind == K_FP16 ? 0x477ff000u : 0x7f7f8000u;
    for (size_t i = 0; i < n; i++)
        if ((cp_f32_bits(x[i]) & 0x7fffffffu) >= lim)
            return 0;
    return 1;
}

/* One block's message; returns its length (within msg_bound(n)). */
static size_t encode_block(const cp_config_t *cfg, const float *x, size_t n,
                           unsigned char *m, void **scratch, size_t *scratch_bytes)
{
    const int mode = cfg->alltoall;
    if ((mode == CP_A2A_FP16 || mode == CP_A2A_BF16) && cast_ok(x, n, mode == CP_A2A_FP16 ? K_FP16 : K_BF16)) {
        const int kind = mode == CP_A2A_FP16 ? K_FP16 : K_BF16;
        put_hdr(m, kind, 0, n, 0);
        for (size_t i = 0; i < n; i++) {
            const uint16_t h = kind == K_FP16 ? cp_f32_to_f16(x[i]) : cp_f32_to_bf16(x[i]);
            memcpy(m + A2A_HDR + 2 * i, &h, 2);
        }
        return A2A_HDR + 2 * n;
    }
    const size_t row = cfg->a2a_row, rows = row ? n / row : 0;
    const cp_lsh_t *h = mode == CP_A2A_LSH ? get_lsh(cfg) : NULL;
    if (h == NULL || n % row != 0 || rows < 2 || rows > UINT32_MAX || !cast_ok(x, n, K_BF16))
        return encode_raw(x, n, m);
    /* scratch: clustering's, then the buckets */
    const size_t need = cp_lsh_cluster_scratch(h, rows) + rows * sizeof(uint32_t);
    if (need > *scratch_bytes) {
        void *s = realloc(*scratch, need);
        if (s == NULL)
            return encode_raw(x, n, m);
        *scratch = s, *scratch_bytes = need;
    }
    uint32_t *bucket = (uint32_t *)((char *)*scratch + cp_lsh_cluster_scratch(h, rows));
    size_t nb;
    if (cp_lsh_cluster(h, x, rows, row, bucket, &nb, *scratch) != CP_OK ||
        (double)nb > cfg->a2a_max_fraction * (double)rows)
        return encode_raw(x, n, m);
    const int mapb = nb <= 65535 ? 2 : 4;
    size_t o = A2A_HDR;
    for (size_t r = 0; r < rows; r++, o += (size_t)mapb) {
        if (mapb == 2) {
            const uint16_t b = (uint16_t)bucket[r];
            memcpy(m + o, &b, 2);
        } else {
            memcpy(m + o, &bucket[r], 4);
        }
    }
    while (o % 4)
        m[o++] = 0;
    /* The centroids, and their counts in the scratch (not sent). */
    uint32_t *cnt = (uint32_t *)*scratch; /* the clustering's scratch is done */
    cp_lsh_centroids(x, rows, row, row, bucket, nb, (float *)(void *)(m + o), cnt);
    put_hdr(m, K_LSH, mapb, n, nb);
    return o + nb * row * sizeof(float);
}

/* Bucket of row r in a map of mapb-byte entries. */
static uint32_t map_at(const unsigned char *map, int mapb, size_t r)
{
    if (mapb == 2) {
        uint16_t s;
        memcpy(&s, map + 2 * r, 2);
        return s;
    }
    uint32_t b;
    memcpy(&b, map + 4 * r, 4);
    return b;
}

/* A received message into out (n floats expected): CP_OK, or
 * CP_ERR_MALFORMED with nothing written beyond out's n floats. */
static cp_status_t decode_block(const cp_config_t *cfg, const unsigned char *m, size_t len,
                                float *out, size_t n)
{
    uint32_t magic;
    uint64_t fn, nb;
    if (len < A2A_HDR)
        return CP_ERR_MALFORMED;
    memcpy(&magic, m, 4);
    memcpy(&fn, m + 8, 8);
    memcpy(&nb, m + 16, 8);
    const int kind = m[4], mapb = m[5];
    if (magic != A2A_MAGIC || fn != n || m[6] || m[7])
        return CP_ERR_MALFORMED;
    const unsigned char *p = m + A2A_HDR;
    const size_t body = len - A2A_HDR;
    switch (kind) {
    case K_RAW:
        if (body != n * sizeof(float) || nb || mapb)
            return CP_ERR_MALFORMED;
        memcpy(out, p, body);
        return CP_OK;
    case K_FP16:
    case K_BF16:
        if (body != 2 * n || nb || mapb)
            return CP_ERR_MALFORMED;
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = kind == K_FP16 ? cp_f16_to_f32(h) : cp_bf16_to_f32(h);
        }
        return CP_OK;
    case K_LSH: {
        const size_t row = cfg->a2a_row;
        if (row == 0 || n % row != 0)
            return CP_ERR_MALFORMED;
        const size_t rows = n / row;
        if (nb == 0 || nb > rows || (mapb != (nb <= 65535 ? 2 : 4)))
            return CP_ERR_MALFORMED;
        size_t mapl = rows * (size_t)mapb;
        mapl = (mapl + 3) & ~(size_t)3;
        if (body != mapl + nb * row * sizeof(float))
            return CP_ERR_MALFORMED;
        const float *cen = (const float *)(const void *)(p + mapl);
        for (size_t r = 0; r < rows; r++) /* every index checked first */
            if (map_at(p, mapb, r) >= nb)
                return CP_ERR_MALFORMED;
        for (size_t r = 0; r < rows; r++)
            memcpy(out + r * row, cen + (size_t)map_at(p, mapb, r) * row,
                   row * sizeof(float));
        return CP_OK;
    }
    default:
        return CP_ERR_MALFORMED;
    }
}

/* Blocks of an all-to-all, in floats: the caller's count and
 * displacement arrays (MPI_Alltoallv), or one count for every rank
 * (MPI_Alltoall; cnt NULL). No allocation before the ranks agree. */
typedef struct {
    const int *cnt, *displ;
    size_t count;
} blocks_t;

static size_t bcount(const blocks_t *b, int p)
{
    return b->cnt ? (size_t)b->cnt[p] : b->count;
}

static size_t bdispl(const blocks_t *b, int p)
{
    return b->displ ? (size_t)b->displ[p] : (size_t)p * b->count;
}

/* The compressed all-to-all: block p of sb to rank p, block q of rb from
 * rank q. Returns MPI_SUCCESS, an MPI error (after the communicator's
 * error handler) when a message this rank alone received was corrupt, or
 * -1 when every rank agreed to run the plain call instead. */
static int a2a(const cp_config_t *cfg, const float *send, const blocks_t *sb,
               float *recv, const blocks_t *rb, MPI_Comm comm)
{
    int P, rank;
    PMPI_Comm_size(comm, &P);
    PMPI_Comm_rank(comm, &rank);
    cp_fault_tick();
    size_t cap = 0;
    for (int p = 0; p < P; p++)
        if (p != rank)
            cap += msg_bound(bcount(sb, p));
    unsigned char *sbuf = malloc(cap ? cap : 1), *rbuf = NULL;
    uint64_t *sz = malloc(2 * (size_t)P * sizeof(uint64_t));
    int *v = malloc(4 * (size_t)P * sizeof(int));
    void *scratch = NULL;
    size_t scratch_bytes = 0, o = 0;
    int bad = !sbuf || !sz || !v;
    for (int p = 0; !bad && p < P; p++) {
        sz[p] = 0;
        if (p == rank)
            continue;
        sz[p] = encode_block(cfg, send + bdispl(sb, p), bcount(sb, p), sbuf + o,
                             &scratch, &scratch_bytes);
        o += sz[p];
    }
    free(scratch);
    /* The sizes, then the agreement: a rank short of memory, or one that
     * received a size out of range, makes every rank run the plain call. */
    int rc = MPI_SUCCESS;
    if (sz) {
        if (bad)
            memset(sz, 0, (size_t)P * sizeof(uint64_t));
        rc = PMPI_Alltoall(sz, 1, MPI_UINT64_T, sz + P, 1, MPI_UINT64_T, comm);
    } else {
        /* Zero sizes from this rank (bad is set: the agreement below
         * makes every rank run the plain call). Without even P words,
         * it fails as MPI itself would. */
        uint64_t *z = calloc((size_t)P, sizeof(uint64_t));
        rc = z ? PMPI_Alltoall(MPI_IN_PLACE, 1, MPI_UINT64_T, z, 1, MPI_UINT64_T, comm)
               : MPI_ERR_NO_MEM;
        free(z);
    }
    if (rc != MPI_SUCCESS) {
        free(sbuf), free(sz), free(v);
        return rc;
    }
    size_t rtotal = 0;
    if (!bad && cp_fault(CP_FAULT_CORRUPT1)) /* tests: a size out of range */
        sz[P + (rank + 1) % P] = msg_bound(bcount(rb, (rank + 1) % P)) + 1;
    for (int q = 0; !bad && q < P; q++) {
        if (q == rank)
            continue;
        if (sz[P + q] < A2A_HDR || sz[P + q] > msg_bound(bcount(rb, q)))
            bad = 1;
        rtotal += sz[P + q];
    }
    if (!bad && (o > INT_MAX || rtotal > INT_MAX))
        bad = 1; /* MPI_Alltoallv's int counts */
    if (!bad && (rbuf = malloc(rtotal ? rtotal : 1)) == NULL)
        bad = 1;
    int any = bad;
    rc = PMPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, comm);
    if (rc != MPI_SUCCESS || any) {
        free(sbuf), free(rbuf), free(sz), free(v);
        if (rc == MPI_SUCCESS && bad)
            cp_warn_rl("compressed all-to-all: this rank ran out of memory or "
                       "received a size out of range: every rank runs it plain");
        return rc == MPI_SUCCESS ? -1 : rc;
    }
    size_t so = 0, ro = 0;
    for (int p = 0; p < P; p++) {
        v[p] = (int)sz[p], v[P + p] = (int)so, so += sz[p];
        v[2 * P + p] = p == rank ? 0 : (int)sz[P + p], v[3 * P + p] = (int)ro;
        ro += (size_t)v[2 * P + p];
    }
    rc = PMPI_Alltoallv(sbuf, v, v + P, MPI_BYTE, rbuf, v + 2 * P, v + 3 * P, MPI_BYTE, comm);
    size_t raw = 0;
    cp_status_t st = CP_OK;
    for (int q = 0; rc == MPI_SUCCESS && q < P; q++) {
        if (q == rank) {
            memmove(recv + bdispl(rb, q), send + bdispl(sb, q),
                    bcount(rb, q) * sizeof(float));
            continue;
        }
        raw += bcount(sb, q) * sizeof(float);
        if (st == CP_OK)
            st = decode_block(cfg, rbuf + v[3 * P + q], (size_t)v[2 * P + q],
                              recv + bdispl(rb, q), bcount(rb, q));
    }
    if (rc == MPI_SUCCESS && st == CP_OK && cp_fault(CP_FAULT_CORRUPT))
        st = CP_ERR_MALFORMED; /* tests */
    free(sbuf), free(rbuf), free(sz), free(v);
    if (rc != MPI_SUCCESS)
        return rc;
    if (st != CP_OK) {
        /* Only this rank saw it: it stops the job (as the allreduce's
         * final exchange does, docs/design.md "Agreement"). */
        fprintf(stderr, "commpress: error: rank %d: a compressed all-to-all "
                        "message was malformed (%s); stopping\n", rank,
                cp_status_string(st));
        fflush(stderr);
        PMPI_Comm_call_errhandler(comm, MPI_ERR_INTERN);
        return MPI_ERR_INTERN;
    }
    cp_stats_add_a2a(raw, o + (size_t)(P - 1) * sizeof(uint64_t));
    return MPI_SUCCESS;
}

/* Whether this call takes the compressed path: from values equal on every
 * rank (the configuration, the datatypes, the communicator). */
static int a2a_eligible(const void *sendbuf, MPI_Datatype st, MPI_Datatype rt,
                        MPI_Comm comm)
{
    const cp_config_t *cfg = cp_runtime_config();
    int inter = 0, size = 0;
    if (!cp_shim_ready() || cfg->alltoall == CP_A2A_NONE || sendbuf == MPI_IN_PLACE ||
        st != MPI_FLOAT || rt != MPI_FLOAT || comm == MPI_COMM_NULL)
        return 0;
    if (PMPI_Comm_test_inter(comm, &inter) != MPI_SUCCESS || inter)
        return 0;
    PMPI_Comm_size(comm, &size);
    return (size_t)size >= cfg->min_ranks;
}

int MPI_Alltoall(const void *sendbuf, int sendcount, MPI_Datatype sendtype, void *recvbuf,
                 int recvcount, MPI_Datatype recvtype, MPI_Comm comm)
{
    const cp_config_t *cfg = cp_runtime_config();
    /* sendcount: the same on every rank (equal types, MPI's matching). */
    if (a2a_eligible(sendbuf, sendtype, recvtype, comm) && sendcount == recvcount &&
        sendcount > 0 && (size_t)sendcount * sizeof(float) >= cfg->min_bytes) {
        const blocks_t b = {.count = (size_t)sendcount};
        const int rc = a2a(cfg, sendbuf, &b, recvbuf, &b, comm);
        if (rc != -1)
            return rc;
    }
    return PMPI_Alltoall(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, comm);
}

/* Every MPI_Alltoallv of MPI_FLOAT takes the protocol: its counts differ
 * across ranks, so a size threshold could split them; blocks that cannot
 * be compressed go raw inside it. */
int MPI_Alltoallv(const void *sendbuf, const int sendcounts[], const int sdispls[],
                  MPI_Datatype sendtype, void *recvbuf, const int recvcounts[],
                  const int rdispls[], MPI_Datatype recvtype, MPI_Comm comm)
{
    if (a2a_eligible(sendbuf, sendtype, recvtype, comm)) {
        const blocks_t sb = {.cnt = sendcounts, .displ = sdispls},
                       rb = {.cnt = recvcounts, .displ = rdispls};
        const int rc = a2a(cp_runtime_config(), sendbuf, &sb, recvbuf, &rb, comm);
        if (rc != -1)
            return rc;
    }
    return PMPI_Alltoallv(sendbuf, sendcounts, sdispls, sendtype, recvbuf, recvcounts,
                          rdispls, recvtype, comm);
}
