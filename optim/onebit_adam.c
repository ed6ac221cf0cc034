/* 1-bit Adam (Tang et al., 2021; ALGORITHMS.md, "1-bit Adam") on the
 * library's own collectives:
 *  - warm-up (step < freeze_step): g = exact allreduce average (the dense
 *    two-phase algorithm: deterministic, identical bits everywhere);
 *    m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
 *  - compression stage: v frozen; m_i <- b1 m + (1-b1) g_i locally, then
 *    m <- (two-phase sign-compressed allreduce of m_i with worker and
 *    server error feedback) / n;
 *  - always x <- x - lr (m / (sqrt(v) + eps) + wd x).
 * Elements whose frozen v is exactly 0 keep m = 0 (the momentum mask).
 * The saved state holds everything a step reads (DeepSpeed drops its error
 * buffers on reload; here they travel with the checkpoint). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collectives/allreduce.h"
#include "collectives/transport_mpi.h"
#include "include/commpress.h"
#include "optim/state_blob.h"
#include "util/hd.h"

struct commpress_onebit_adam {
    commpress_onebit_adam_config_t cfg;
    MPI_Comm comm; /* a duplicate: our traffic never mixes with the caller's */
    cp_transport_t tp;
    cp_workspace_t ws;
    cp_coll_config_t dense, onebit;
    cp_tensor_t *t_dense, *t_onebit; /* worker/server error in t_onebit */
    size_t count;
    uint64_t step;
    float *m, *v, *buf;
    commpress_onebit_adam_stats_t stats;
};

void commpress_onebit_adam_config_default(commpress_onebit_adam_config_t *c)
{
    c->lr = 1e-3;
    c->beta1 = 0.9;
    c->beta2 = 0.999;
    c->eps = 1e-8;
    c->weight_decay = 0.0;
    c->freeze_step = 100000;
}

static int config_valid(const commpress_onebit_adam_config_t *c, size_t count)
{
    return c != NULL && count > 0 && count <= UINT32_MAX && isfinite(c->lr) &&
           c->lr >= 0 && c->beta1 >= 0 && c->beta1 < 1 && c->beta2 >= 0 &&
           c->beta2 < 1 && c->eps > 0 && isfinite(c->eps) &&
           isfinite(c->weight_decay) && c->weight_decay >= 0;
}

static uint64_t config_hash(const commpress_onebit_adam_config_t *c,
                            size_t count)
{
    char b[256];
    int n = snprintf(b, sizeof(b), "%.17g|%.17g|%.17g|%.17g|%.17g|%llu|%zu",
                     c->lr, c->beta1, c->beta2, c->eps, c->weight_decay,
                     (unsigned long long)c->freeze_step, count);
    return cp_fnv1a(b, (size_t)n);
}

void commpress_onebit_adam_destroy(commpress_onebit_adam_t *o)
{
    if (o == NULL)
        return;
    cp_tensor_destroy(o->t_dense);
    cp_tensor_destroy(o->t_onebit);
    cp_workspace_free(&o->ws);
    free(o->m), free(o->v), free(o->buf);
    /* After MPI_Finalize (a Python object collected at exit, after an
     * explicit MPI.Finalize()) freeing the communicator is erroneous: Open
     * MPI aborts the process. MPI_Finalized may be called at any time; the
     * duplicate is then the library's to forget, only memory is freed. */
    int finalized = 0;
    if (o->comm != MPI_COMM_NULL &&
        (PMPI_Finalized(&finalized) != MPI_SUCCESS || !finalized))
        PMPI_Comm_free(&o->comm);
    free(o);
}

int commpress_onebit_adam_create(const commpress_onebit_adam_config_t *cfg,
                                 MPI_Comm comm, size_t count,
                                 commpress_onebit_adam_t **opt_p)
{
    const int valid = config_valid(cfg, count);
    commpress_onebit_adam_t *o;
    int size, rank, fail;

    if (opt_p == NULL)
        return CP_ERR_INVALID;
    *opt_p = NULL;
    CP_CHECK(cp_mpi_agree(comm, valid, valid ? config_hash(cfg, count) : 0));
    if (PMPI_Comm_size(comm, &size) != MPI_SUCCESS ||
        PMPI_Comm_rank(comm, &rank) != MPI_SUCCESS)
        return CP_ERR_TRANSPORT;
    /* Everything local first, then one agreement: either every rank has
     * an optimizer or none has (a rank out of memory never leaves its
     * peers waiting in the first step). */
    o = calloc(1, sizeof(*o));
    fail = o == NULL;
    if (!fail) {
        o->cfg = *cfg;
        o->count = count;
        o->comm = MPI_COMM_NULL;
        cp_workspace_init(&o->ws);
        /* Warm-up: uncompressed and deterministic. Compression stage: sign
         * codec, EF on both sides of the two-phase algorithm. */
        o->dense.codec = &cp_compressor_none;
        o->dense.feedback = &cp_feedback_none;
        o->dense.algo = CP_ALGO_DENSE;
        o->onebit.codec = cp_compressor_find("sign");
        o->onebit.feedback = &cp_feedback_ef;
        o->onebit.algo = CP_ALGO_TWOPHASE;
        o->m = calloc(count, sizeof(float));
        o->v = calloc(count, sizeof(float));
        o->buf = malloc(count * sizeof(float));
        fail = o->m == NULL || o->v == NULL || o->buf == NULL ||
               cp_tensor_create(&o->dense, count, size, rank, &o->t_dense) != CP_OK ||
               cp_tensor_create(&o->onebit, count, size, rank, &o->t_onebit) != CP_OK;
    }
    if (PMPI_Allreduce(MPI_IN_PLACE, &fail, 1, MPI_INT, MPI_MAX, comm) !=
            MPI_SUCCESS || fail) {
        commpress_onebit_adam_destroy(o);
        return CP_ERR_NOMEM;
    }
    if (PMPI_Comm_dup(comm, &o->comm) != MPI_SUCCESS ||
        cp_transport_mpi_init(&o->tp, &o->comm) != CP_OK) {
        commpress_onebit_adam_destroy(o);
        return CP_ERR_TRANSPORT;
    }
    *opt_p = o;
    return CP_OK;
}

/* One allreduce, its workspace agreed across ranks first: a rank that
 * cannot grow it makes every rank skip the step alike. */
static cp_status_t exchange(commpress_onebit_adam_t *o, cp_allreduce_args_t *a,
                            cp_coll_result_t *res)
{
    size_t need[CP_WS_SLOTS];
    int ok, fail_rank;
    cp_allreduce_plan(a, need);
    CP_CHECK(cp_allreduce_ready(a, need, 0, 0, NULL, 0, &ok, &fail_rank));
    if (ok)
        return cp_allreduce(a, res);
    memset(res, 0, sizeof(*res));
    res->fallback = CP_FALLBACK_FAILED;
    return CP_OK;
}

static void account(commpress_onebit_adam_t *o, const cp_coll_result_t *res)
{
    o->stats.bytes_sent += cp_coll_wire_bytes(res);
    o->stats.bytes_dense += res->bytes_dense;
}

int commpress_onebit_adam_step(commpress_onebit_adam_t *o, float *params,
                               const float *grads, size_t count)
{
    const size_t n = count;
    cp_coll_result_t res;

    if (o == NULL || params == NULL || grads == NULL || count != o->count)
        return CP_ERR_INVALID;
    const float b1 = (float)o->cfg.beta1, c1 = (float)(1.0 - o->cfg.beta1);
    const float b2 = (float)o->cfg.beta2, c2 = (float)(1.0 - o->cfg.beta2);
    const float inv = 1.0f / (float)o->tp.size;
    const int warm = o->step < o->cfg.freeze_step;
    float *buf = o->buf;

    cp_allreduce_args_t a = {.send = grads, .recv = buf, .count = n,
                             .tensor = o->t_dense, .cfg = &o->dense,
                             .ws = &o->ws, .tp = &o->tp, .call = o->step};
    if (!warm) {
        for (size_t i = 0; i < n; i++)
            buf[i] = b1 * o->m[i] + c1 * grads[i];
        a.send = NULL;
        a.tensor = o->t_onebit;
        a.cfg = &o->onebit;
    }
    CP_CHECK(exchange(o, &a, &res));
    account(o, &res);
    if (res.fallback == CP_FALLBACK_FAILED) { /* a rank without memory */
        o->stats.steps_skipped++;
        return CP_ERR_NOMEM;
    }
    if (res.fallback != CP_FALLBACK_NONE) { /* every rank saw the flag: nobody moves */
        o->stats.steps_skipped++;
        return CP_ERR_NONFINITE;
    }
    if (warm) {
        for (size_t i = 0; i < n; i++) {
            float g = buf[i] * inv;
            o->m[i] = b1 * o->m[i] + c1 * g;
            o->v[i] = b2 * o->v[i] + c2 * (g * g);
        }
    } else {
        /* Momentum mask (DeepSpeed asks users for one; here it is derived):
         * an element whose frozen variance is exactly 0 never had a
         * gradient in the warm-up (a dead unit, a padding row). 1-bit
         * compression cannot send its zero momentum: it would get +-scale
         * and an update of scale / eps. It keeps m = 0 instead. */
        for (size_t i = 0; i < n; i++)
            o->m[i] = o->v[i] == 0.0f ? 0.0f : buf[i] * inv;
        o->stats.steps_compressed++;
    }
    const float lr = (float)o->cfg.lr, wd = (float)o->cfg.weight_decay;
    const float eps = (float)o->cfg.eps;
    for (size_t i = 0; i < n; i++) {
        float upd = o->m[i] / (sqrtf(o->v[i]) + eps) + wd * params[i];
        params[i] -= lr * upd;
    }
    o->step++;
    o->stats.steps++;
    return CP_OK;
}

int commpress_onebit_adam_set_lr(commpress_onebit_adam_t *o, double lr)
{
    if (o == NULL || !isfinite(lr) || lr < 0)
        return CP_ERR_INVALID;
    o->cfg.lr = lr;
    return CP_OK;
}

uint64_t commpress_onebit_adam_steps(const commpress_onebit_adam_t *o)
{
    return o ? o->step : 0;
}

void commpress_onebit_adam_stats(const commpress_onebit_adam_t *o,
                                 commpress_onebit_adam_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (o == NULL)
        return;
    *out = o->stats;
    out->ratio = o->stats.bytes_sent
                     ? (double)o->stats.bytes_dense / (double)o->stats.bytes_sent
                     : 0.0;
}

/* Saved state (optim/state_blob.h), magic "CPOBADAM", header words:
 *   version, communicator size, rank, count, freeze_step, step,
 *   onebit steps, dense steps, worker floats, server floats
 * then m[count], v[count], worker[], server[]. */
#define OBA_MAGIC "CPOBADAM"
#define OBA_VERSION 2u
#define OBA_NH 10

static size_t state_floats(const commpress_onebit_adam_t *o)
{
    return 2 * o->count + o->t_onebit->worker_floats + o->t_onebit->server_floats;
}

int commpress_onebit_adam_save(const commpress_onebit_adam_t *o, void *buf,
                               size_t cap, size_t *len)
{
    if (o == NULL || len == NULL)
        return CP_ERR_INVALID;
    *len = cp_blob_size(OBA_NH, state_floats(o));
    if (buf == NULL)
        return CP_OK;
    if (cap < *len)
        return CP_ERR_NOSPACE;
    const cp_tensor_t *t = o->t_onebit;
    uint64_t h[OBA_NH] = {OBA_VERSION, (uint64_t)o->tp.size, (uint64_t)o->tp.rank,
                          o->count, o->cfg.freeze_step, o->step, t->steps,
                          o->t_dense->steps, t->worker_floats, t->server_floats};
    const float *arr[4] = {o->m, o->v, t->worker, t->server};
    size_t lens[4] = {o->count, o->count, t->worker_floats, t->server_floats};
    cp_blob_write(buf, OBA_MAGIC, h, OBA_NH, arr, lens, 4);
    return CP_OK;
}

/* This rank's checkpoint: checked, nothing written. */
static cp_status_t check_blob(const commpress_onebit_adam_t *o, const void *buf,
                              size_t len, uint64_t *h, const unsigned char **p)
{
    const cp_tensor_t *t = o->t_onebit;
    if (buf == NULL)
        return CP_ERR_INVALID;
    CP_CHECK(cp_blob_check(buf, len, OBA_MAGIC, OBA_NH, state_floats(o), h, p));
    if (h[0] != OBA_VERSION || h[1] != (uint64_t)o->tp.size ||
        h[2] != (uint64_t)o->tp.rank || h[3] != o->count ||
        h[4] != o->cfg.freeze_step || h[8] != t->worker_floats ||
        h[9] != t->server_floats)
        return CP_ERR_MALFORMED;
    /* The checksum proves integrity, not origin: a crafted checkpoint could
     * hold Inf/NaN (every later step would be skipped, or the parameters
     * poisoned) or a negative v (sqrt(v) NaN). m, v, worker and server
     * error lie one after another; p is not aligned for float access. */
    const size_t nf = state_floats(o);
    uint32_t bad = 0;
    for (size_t i = 0; i < nf; i++)
        bad |= (uint32_t)cp_nonfinite(cp_get_f32(*p + 4 * i));
    for (size_t i = o->count; i < 2 * o->count; i++) /* v */
        bad |= (uint32_t)(cp_get_f32(*p + 4 * i) < 0.0f);
    if (bad)
        return CP_ERR_MALFORMED;
    return CP_OK;
}

int commpress_onebit_adam_load(commpress_onebit_adam_t *o, const void *buf,
                               size_t len)
{
    uint64_t h[OBA_NH] = {0}, v[5];
    const unsigned char *p = NULL;

    if (o == NULL)
        return CP_ERR_INVALID;
    /* Everything is checked before anything is written, on every rank: a
     * rank must not start afresh, or from another step, while its peers
     * resume (the steps of one job are equal on every rank). */
    cp_status_t st = check_blob(o, buf, len, h, &p);
    const uint64_t at = cp_fnv1a(h + 5, 3 * sizeof(uint64_t)); /* the steps */
    v[0] = st != CP_OK;
    v[1] = st == CP_OK ? at : 0, v[2] = st == CP_OK ? ~at : ~(uint64_t)0;
    v[3] = h[5], v[4] = ~h[5];
    if (PMPI_Allreduce(MPI_IN_PLACE, v, 5, MPI_UINT64_T, MPI_MAX, o->comm) !=
        MPI_SUCCESS)
        return CP_ERR_TRANSPORT;
    if (st != CP_OK)
        return st;
    if (v[0] || v[1] != at || v[2] != ~at)
        return CP_ERR_RANKS;
    memcpy(o->m, p, 4 * o->count), p += 4 * o->count;
    memcpy(o->v, p, 4 * o->count), p += 4 * o->count;
    memcpy(o->t_onebit->worker, p, 4 * o->t_onebit->worker_floats);
    p += 4 * o->t_onebit->worker_floats;
    memcpy(o->t_onebit->server, p, 4 * o->t_onebit->server_floats);
    o->step = h[5];
    o->t_onebit->steps = h[6];
    o->t_dense->steps = h[7];
    return CP_OK;
}
