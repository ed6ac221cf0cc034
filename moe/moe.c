/* LSH-MoE's explicit API (include/commpress_moe.h; docs/moe.md). */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "include/commpress.h"
#include "include/commpress_moe.h"
#include "collectives/coll.h"
#include "collectives/transport_mpi.h"
#include "moe/lsh.h"
#include "util/fault.h"

struct commpress_moe {
    MPI_Comm comm; /* a duplicate */
    int rank, size;
    commpress_moe_config_t cfg;
    cp_lsh_t lsh;  /* hashes > 0 */
    void *scratch; /* clustering's, grown as needed */
    size_t scratch_bytes;
    uint64_t *cw;  /* 4 P: the size exchange's (made at create, so that a
                      rank short of memory later still takes part) */
    commpress_moe_stats_t stats;
};

struct commpress_moe_handle {
    commpress_moe_t *m;
    size_t n;            /* token rows */
    size_t *cnt, *off;   /* per destination: rows, first row */
    size_t *nb, *boff;   /* per destination: rows sent (buckets), first */
    size_t nbt;          /* sum of nb */
    uint32_t *bucket;    /* per token: its bucket within its destination */
    uint32_t *bsize;     /* per bucket (nbt): its rows */
    float *resid;        /* n x d, compensation */
    size_t R;            /* expert rows */
    size_t *rcnt, *roff; /* per source: expert rows */
    size_t *rn;          /* per source: the token rows they stand for */
    float *expert_in;    /* R x d */
    float *s;            /* nbt x d: combine_backward's bucket sums */
    float *gout;         /* n x d: combine_backward's grad_out (compensation) */
    int stage;           /* 1 dispatched, 2 combined, 3 combine's backward */
};

void commpress_moe_config_default(commpress_moe_config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->hashes = 6;
    c->seed = 1;
    c->max_fraction = 0.5;
    c->compensate = 1;
}

static int config_valid(const commpress_moe_config_t *c)
{
    return c && c->hidden >= 1 && c->hidden <= CP_LSH_MAX_DIM && c->hashes >= 0 &&
           c->hashes <= CP_LSH_MAX_HASHES && c->max_fraction > 0 &&
           c->max_fraction <= 1 && (c->compensate == 0 || c->compensate == 1);
}

int commpress_moe_create(const commpress_moe_config_t *cfg, MPI_Comm comm,
                         commpress_moe_t **moe_p)
{
    int inter = 0, fail;
    if (moe_p == NULL)
        return CP_ERR_INVALID;
    *moe_p = NULL;
    if (comm == MPI_COMM_NULL || PMPI_Comm_test_inter(comm, &inter) != MPI_SUCCESS || inter)
        return CP_ERR_INVALID;
    const int valid = config_valid(cfg);
    /* The hidden size must match (the rows travel between ranks); the
     * rest is each sender's own. */
    CP_CHECK(cp_mpi_agree(comm, valid, valid ? (uint64_t)cfg->hidden : 0));
    commpress_moe_t *m = calloc(1, sizeof(*m));
    fail = m == NULL;
    if (!fail) {
        m->cfg = *cfg;
        m->comm = MPI_COMM_NULL;
        int P = 0;
        PMPI_Comm_size(comm, &P);
        m->cw = malloc(4 * (size_t)P * sizeof(uint64_t));
        fail = m->cw == NULL ||
               (cfg->hashes > 0 && cp_lsh_init(&m->lsh, cfg->hidden, (size_t)cfg->hashes,
                                              cfg->seed) != CP_OK) ||
               PMPI_Comm_dup(comm, &m->comm) != MPI_SUCCESS;
    }
    if (PMPI_Allreduce(MPI_IN_PLACE, &fail, 1, MPI_INT, MPI_MAX, comm) != MPI_SUCCESS ||
        fail) {
        commpress_moe_destroy(m);
        return CP_ERR_NOMEM;
    }
    PMPI_Comm_rank(m->comm, &m->rank);
    PMPI_Comm_size(m->comm, &m->size);
    *moe_p = m;
    return CP_OK;
}

void commpress_moe_destroy(commpress_moe_t *m)
{
    if (m == NULL)
        return;
    if (m->comm != MPI_COMM_NULL)
        PMPI_Comm_free(&m->comm);
    cp_lsh_fini(&m->lsh);
    free(m->scratch);
    free(m->cw);
    free(m);
}

void commpress_moe_stats(const commpress_moe_t *m, commpress_moe_stats_t *out)
{
    *out = m->stats;
}

void commpress_moe_release(commpress_moe_handle_t *h)
{
    if (h == NULL)
        return;
    free(h->cnt), free(h->off), free(h->nb), free(h->boff), free(h->bucket);
    free(h->bsize), free(h->resid), free(h->rcnt), free(h->roff), free(h->rn);
    free(h->expert_in), free(h->s), free(h->gout);
    free(h);
}

/* An all-to-all of rows of d floats: scnt[p] rows from sbuf (at row soff[p])
 * to rank p, rcnt[q] rows from rank q into rbuf (at row roff[q]). The
 * bytes to other ranks are added to *sent. */
static cp_status_t rows_alltoall(commpress_moe_t *m, const float *sbuf,
                                 const size_t *scnt, const size_t *soff,
                                 float *rbuf, const size_t *rcnt,
                                 const size_t *roff, unsigned long long *sent)
{
    const int P = m->size;
    const size_t d = m->cfg.hidden;
    int *v = malloc(4 * (size_t)P * sizeof(int));
    if (v == NULL)
        return CP_ERR_NOMEM; /* sizes were agreed to fit: see dispatch */
    for (int p = 0; p < P; p++) {
        v[p] = (int)(scnt[p] * d), v[P + p] = (int)(soff[p] * d);
        v[2 * P + p] = (int)(rcnt[p] * d), v[3 * P + p] = (int)(roff[p] * d);
        if (p != m->rank)
            *sent += (unsigned long long)scnt[p] * d * sizeof(float);
    }
    const int rc = PMPI_Alltoallv(sbuf, v, v + P, MPI_FLOAT, rbuf, v + 2 * P,
                                  v + 3 * P, MPI_FLOAT, m->comm);
    free(v);
    return rc == MPI_SUCCESS ? CP_OK : CP_ERR_TRANSPORT;
}

/* Clusters destination p's rows (or not: raw), filling h->bucket for them
 * and returning its number of buckets; *over counts destinations sent raw
 * for exceeding max_fraction. The rows for this rank's own expert stay
 * raw: they cross no link, so clustering them would lose accuracy and
 * time for nothing. */
static cp_status_t cluster_rows(commpress_moe_t *m, commpress_moe_handle_t *h,
                                const float *rows, int p, size_t *nb, size_t *over)
{
    const size_t n = h->cnt[p], d = m->cfg.hidden;
    uint32_t *b = h->bucket + h->off[p];
    *nb = n;
    if (m->cfg.hashes > 0 && n > 0 && p != m->rank) {
        const size_t need = cp_lsh_cluster_scratch(&m->lsh, n);
        if (need > m->scratch_bytes) {
            void *s = realloc(m->scratch, need);
            if (s == NULL)
                return CP_ERR_NOMEM;
            m->scratch = s, m->scratch_bytes = need;
        }
        size_t k;
        CP_CHECK(cp_lsh_cluster(&m->lsh, rows + h->off[p] * d, n, d, b, &k, m->scratch));
        if ((double)k <= m->cfg.max_fraction * (double)n) {
            *nb = k;
            return CP_OK;
        }
        (*over)++;
    }
    for (size_t r = 0; r < n; r++) /* raw: every row its own bucket */
        b[r] = (uint32_t)r;
    return CP_OK;
}

static size_t *prefix(const size_t *c, int P, size_t *total)
{
    size_t *o = malloc(((size_t)P + 1) * sizeof(size_t));
    if (o) {
        o[0] = 0;
        for (int p = 0; p < P; p++)
            o[p + 1] = o[p] + c[p];
        *total = o[P];
    }
    return o;
}

int commpress_moe_dispatch(commpress_moe_t *m, const float *rows,
                           const size_t *send_counts, commpress_moe_handle_t **h_p)
{
    if (m == NULL || send_counts == NULL || h_p == NULL)
        return CP_ERR_INVALID;
    *h_p = NULL;
    const int P = m->size;
    const size_t d = m->cfg.hidden;
    cp_fault_tick();
    commpress_moe_handle_t *h = calloc(1, sizeof(*h));
    float *cent = NULL;
    uint64_t *cw = m->cw;
    cp_status_t st = CP_OK;
    int bad = h == NULL;
    size_t over = 0; /* destinations sent raw by max_fraction */
    int invalid = 0; /* this rank's input is wrong (rows NULL) */
    const double t0 = cp_now();
    if (!bad) {
        h->m = m;
        h->cnt = malloc((size_t)P * sizeof(size_t));
        h->nb = malloc((size_t)P * sizeof(size_t));
        h->rcnt = malloc((size_t)P * sizeof(size_t));
        h->rn = malloc((size_t)P * sizeof(size_t));
        bad = !h->cnt || !h->nb || !h->rcnt || !h->rn;
    }
    if (!bad) {
        memcpy(h->cnt, send_counts, (size_t)P * sizeof(size_t));
        h->off = prefix(h->cnt, P, &h->n);
        invalid = h->off != NULL && h->n && rows == NULL;
        bad = h->off == NULL || invalid;
    }
    if (!bad) {
        h->bucket = malloc((h->n ? h->n : 1) * sizeof(uint32_t));
        bad = h->bucket == NULL;
    }
    for (int p = 0; !bad && p < P; p++)
        bad = cluster_rows(m, h, rows, p, &h->nb[p], &over) != CP_OK;
    if (!bad) {
        h->boff = prefix(h->nb, P, &h->nbt);
        cent = malloc((h->nbt ? h->nbt : 1) * d * sizeof(float));
        h->bsize = malloc((h->nbt ? h->nbt : 1) * sizeof(uint32_t));
        if (m->cfg.compensate)
            h->resid = malloc((h->n ? h->n : 1) * d * sizeof(float));
        bad = !h->boff || !cent || !h->bsize || (m->cfg.compensate && !h->resid);
    }
    for (int p = 0; !bad && p < P; p++) {
        const float *x = rows + h->off[p] * d;
        float *c = cent + h->boff[p] * d;
        const uint32_t *b = h->bucket + h->off[p];
        cp_lsh_centroids(x, h->cnt[p], d, d, b, h->nb[p], c, h->bsize + h->boff[p]);
        for (size_t r = 0; h->resid && r < h->cnt[p]; r++)
            for (size_t i = 0; i < d; i++)
                h->resid[(h->off[p] + r) * d + i] = x[r * d + i] - c[(size_t)b[r] * d + i];
    }
    m->stats.hash_seconds += cp_now() - t0;
    /* The sizes first: (rows, rows sent) to each rank; each rank checks
     * what it received, and all agree before any payload moves. */
    for (int p = 0; !bad && p < P; p++)
        cw[2 * p] = h->cnt[p], cw[2 * p + 1] = h->nb[p];
    if (bad)
        memset(cw, 0, 2 * (size_t)P * sizeof(uint64_t));
    if (PMPI_Alltoall(cw, 2, MPI_UINT64_T, cw + 2 * P, 2, MPI_UINT64_T, m->comm) !=
        MPI_SUCCESS)
        st = CP_ERR_TRANSPORT;
    size_t sends = 0, recvs = 0;
    int malformed = 0;
    if (cp_fault(CP_FAULT_CORRUPT1)) /* tests: a corrupt size message */
        cw[2 * P + 1] = cw[2 * P] + 1;
    for (int q = 0; st == CP_OK && !bad && q < P; q++) {
        const uint64_t nq = cw[2 * P + 2 * q], bq = cw[2 * P + 2 * q + 1];
        if (bq > nq || bq > (uint64_t)INT_MAX / d) {
            malformed = 1;
            break;
        }
        h->rcnt[q] = (size_t)bq;
        h->rn[q] = (size_t)nq;
        recvs += (size_t)bq;
        sends += h->nb[q];
    }
    /* MPI_Alltoallv's counts and offsets are ints. */
    if (!malformed && (recvs > (size_t)INT_MAX / d || sends > (size_t)INT_MAX / d))
        malformed = 2;
    int v[3] = {bad || st != CP_OK, malformed, invalid}, all[3];
    if (PMPI_Allreduce(v, all, 3, MPI_INT, MPI_MAX, m->comm) != MPI_SUCCESS)
        st = CP_ERR_TRANSPORT;
    if (st == CP_OK && (all[0] || all[1])) /* every rank alike */
        st = all[2] ? CP_ERR_INVALID : all[1] == 1 ? CP_ERR_MALFORMED
                                     : all[1] == 2 ? CP_ERR_RANGE : CP_ERR_NOMEM;
    if (st == CP_OK) {
        h->roff = prefix(h->rcnt, P, &h->R);
        h->expert_in = malloc((h->R ? h->R : 1) * d * sizeof(float));
        /* A rank without memory here cannot take part: its peers would
         * wait in the exchange (the sizes are known; agreed as above). */
        int f = !h->roff || !h->expert_in, any = f;
        if (PMPI_Allreduce(&f, &any, 1, MPI_INT, MPI_MAX, m->comm) != MPI_SUCCESS)
            st = CP_ERR_TRANSPORT;
        else if (any)
            st = CP_ERR_NOMEM;
    }
    if (st == CP_OK)
        st = rows_alltoall(m, cent, h->nb, h->boff, h->expert_in, h->rcnt, h->roff,
                           &m->stats.bytes_sent);
    free(cent);
    if (st != CP_OK) {
        commpress_moe_release(h);
        return st;
    }
    /* Counted only for a dispatch that went through, as the rest. */
    m->stats.dispatches++;
    m->stats.raw_destinations += over;
    m->stats.bytes_sent += 2 * sizeof(uint64_t) * (unsigned long long)(P - 1);
    for (int p = 0; p < P; p++)
        if (p != m->rank) {
            m->stats.rows += h->cnt[p];
            m->stats.rows_sent += h->nb[p];
            m->stats.bytes_raw += (unsigned long long)h->cnt[p] * d * sizeof(float);
        }
    h->stage = 1;
    *h_p = h;
    return CP_OK;
}

const float *commpress_moe_expert_rows(const commpress_moe_handle_t *h,
                                       size_t *nrows, const size_t **counts)
{
    if (nrows)
        *nrows = h->R;
    if (counts)
        *counts = h->rcnt;
    return h->expert_in;
}

size_t commpress_moe_token_rows(const commpress_moe_handle_t *h) { return h->n; }

/* What an exchange of every token row would send to other ranks: this
 * rank's tokens (to_experts), or the tokens its expert stood for. */
static unsigned long long raw_bytes(const commpress_moe_handle_t *h, int to_experts)
{
    const commpress_moe_t *m = h->m;
    unsigned long long b = 0;
    for (int p = 0; p < m->size; p++)
        if (p != m->rank)
            b += (unsigned long long)(to_experts ? h->cnt[p] : h->rn[p]) *
                 m->cfg.hidden * sizeof(float);
    return b;
}

int commpress_moe_combine(commpress_moe_handle_t *h, const float *expert_out, float *out)
{
    if (h == NULL || h->stage != 1 || (h->R && !expert_out) || (h->n && !out))
        return CP_ERR_INVALID;
    commpress_moe_t *m = h->m;
    const size_t d = m->cfg.hidden;
    float *back = malloc((h->nbt ? h->nbt : 1) * d * sizeof(float));
    if (back == NULL)
        return CP_ERR_NOMEM;
    cp_status_t st = rows_alltoall(m, expert_out, h->rcnt, h->roff, back, h->nb, h->boff,
                                   &m->stats.bytes_sent);
    if (st == CP_OK) {
        m->stats.bytes_raw += raw_bytes(h, 0);
        for (int p = 0; p < m->size; p++)
            for (size_t r = 0; r < h->cnt[p]; r++) {
                const size_t t = h->off[p] + r;
                const float *e = back + (h->boff[p] + h->bucket[t]) * d;
                float *y = out + t * d;
                if (h->resid)
                    for (size_t i = 0; i < d; i++)
                        y[i] = e[i] + h->resid[t * d + i];
                else
                    memcpy(y, e, d * sizeof(float));
            }
        h->stage = 2;
    }
    free(back);
    return st;
}

int commpress_moe_combine_backward(commpress_moe_handle_t *h, const float *grad_out,
                                   float *grad_expert_out)
{
    if (h == NULL || h->stage != 2 || (h->n && !grad_out) || (h->R && !grad_expert_out))
        return CP_ERR_INVALID;
    commpress_moe_t *m = h->m;
    const size_t d = m->cfg.hidden;
    h->s = calloc((h->nbt ? h->nbt : 1) * d, sizeof(float));
    if (m->cfg.compensate)
        h->gout = malloc((h->n ? h->n : 1) * d * sizeof(float));
    if (h->s == NULL || (m->cfg.compensate && h->gout == NULL))
        return CP_ERR_NOMEM;
    for (int p = 0; p < m->size; p++)
        for (size_t r = 0; r < h->cnt[p]; r++) { /* in token order */
            const size_t t = h->off[p] + r;
            float *s = h->s + (h->boff[p] + h->bucket[t]) * d;
            for (size_t i = 0; i < d; i++)
                s[i] += grad_out[t * d + i];
        }
    if (h->gout)
        memcpy(h->gout, grad_out, h->n * d * sizeof(float));
    cp_status_t st = rows_alltoall(m, h->s, h->nb, h->boff, grad_expert_out, h->rcnt,
                                   h->roff, &m->stats.bytes_sent);
    if (st == CP_OK) {
        m->stats.bytes_raw += raw_bytes(h, 1);
        h->stage = 3;
    }
    return st;
}

int commpress_moe_dispatch_backward(commpress_moe_handle_t *h, const float *grad_expert_in,
                                    float *grad_rows)
{
    if (h == NULL || h->stage != 3 || (h->R && !grad_expert_in) || (h->n && !grad_rows))
        return CP_ERR_INVALID;
    commpress_moe_t *m = h->m;
    const size_t d = m->cfg.hidden;
    float *g = malloc((h->nbt ? h->nbt : 1) * d * sizeof(float));
    if (g == NULL)
        return CP_ERR_NOMEM;
    cp_status_t st = rows_alltoall(m, grad_expert_in, h->rcnt, h->roff, g, h->nb, h->boff,
                                   &m->stats.bytes_sent);
    if (st == CP_OK) {
        m->stats.bytes_raw += raw_bytes(h, 0);
        for (int p = 0; p < m->size; p++)
            for (size_t r = 0; r < h->cnt[p]; r++) {
                const size_t t = h->off[p] + r, j = h->boff[p] + h->bucket[t];
                const float nj = (float)h->bsize[j];
                const float *gj = g + j * d, *sj = h->s + j * d;
                float *dx = grad_rows + t * d;
                if (h->gout)
                    for (size_t i = 0; i < d; i++)
                        dx[i] = h->gout[t * d + i] + (gj[i] - sj[i]) / nj;
                else
                    for (size_t i = 0; i < d; i++)
                        dx[i] = gj[i] / nj;
            }
        h->stage = 4;
    }
    free(g);
    return st;
}
