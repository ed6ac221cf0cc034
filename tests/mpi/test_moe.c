/* LSH-MoE's explicit API (include/commpress_moe.h) under mpirun:
 *  - an identity expert with compensation gives back every token (centroid
 *    + residual, to rounding), and without it the mean of its bucket;
 *  - raw rows (hashes 0, a destination over max_fraction, and always the
 *    rows for the sender's own expert) come back exactly;
 *  - clustered tokens travel as far fewer rows;
 *  - the backward of dispatch and combine against finite differences of a
 *    loss through a nonlinear expert, with and without compensation;
 *  - invalid and mismatched configurations fail on every rank; a corrupt
 *    size message (COMMPRESS_FAULT=corrupt1) fails the dispatch on every
 *    rank before any payload moves. */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commpress.h"
#include "commpress_moe.h"
#include "common/check.h"
#include "common/mpi_check.h"
#include "common/splitmix.h"

static int rank, nranks;

static float normal(uint64_t *s)
{
    double u1 = ((double)(cp_test_splitmix(s) >> 11) + 0.5) / 9007199254740992.0;
    double u2 = (double)(cp_test_splitmix(s) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
}

/* n rows of d floats, grouped by destination: each destination's rows
 * are G cluster centres plus noise of `noise` (relative), different on
 * every rank. */
static float *tokens(size_t n, size_t d, size_t G, float noise, uint64_t seed)
{
    float *x = malloc(n * d * sizeof(float)), *c = malloc(G * d * sizeof(float));
    uint64_t s = seed * 1000003 + (uint64_t)rank;
    for (size_t i = 0; i < G * d; i++)
        c[i] = normal(&s);
    for (size_t r = 0; r < n; r++)
        for (size_t i = 0; i < d; i++)
            x[r * d + i] = c[(r % G) * d + i] + noise * normal(&s);
    free(c);
    return x;
}

static commpress_moe_t *make(size_t d, int hashes, double frac, int comp)
{
    commpress_moe_config_t c;
    commpress_moe_t *m = NULL;
    commpress_moe_config_default(&c);
    c.hidden = d, c.hashes = hashes, c.max_fraction = frac, c.compensate = comp;
    CHECK(commpress_moe_create(&c, MPI_COMM_WORLD, &m) == 0, "create");
    return m;
}

/* Identity expert: combine(dispatch(x)) against x. */
static void identity(int hashes, double frac, int comp, const char *what)
{
    const size_t d = 64, per = 300, n = per * (size_t)nranks;
    size_t counts[64];
    for (int p = 0; p < nranks; p++)
        counts[p] = per;
    float *x = tokens(n, d, 8, 1e-4f, 7), *y = malloc(n * d * sizeof(float));
    commpress_moe_t *m = make(d, hashes, frac, comp);
    commpress_moe_handle_t *h = NULL;
    CHECK(commpress_moe_dispatch(m, x, counts, &h) == 0, "%s: dispatch", what);
    size_t R;
    const size_t *rc;
    const float *in = commpress_moe_expert_rows(h, &R, &rc);
    CHECK(commpress_moe_combine(h, in, y) == 0, "%s: combine", what);
    double worst = 0, worst_mean = 0;
    size_t exact = 0;
    for (size_t t = 0; t < n; t++) {
        for (size_t i = 0; i < d; i++) {
            const double e = fabs((double)y[t * d + i] - x[t * d + i]);
            /* c + (x - c) rounds twice: within 2 ulps of the larger. */
            const double ulp = ldexp(fabs(x[t * d + i]) + 4, -22);
            worst = e / ulp > worst ? e / ulp : worst;
        }
        exact += memcmp(y + t * d, x + t * d, d * sizeof(float)) == 0;
    }
    /* The rows for this rank's own expert cross no link: never clustered. */
    CHECK(memcmp(y + (size_t)rank * per * d, x + (size_t)rank * per * d,
                 per * d * sizeof(float)) == 0,
          "%s: the rows for this rank's own expert changed", what);
    commpress_moe_stats_t st;
    commpress_moe_stats(m, &st);
    if (hashes == 0 || frac < 1e-3) { /* raw: every row back exactly */
        CHECK(exact == n, "%s: %zu of %zu rows exact", what, exact, n);
        CHECK(st.rows_sent == st.rows, "%s: %llu rows sent for %llu", what, st.rows_sent,
              st.rows);
    } else if (comp) {
        CHECK(worst <= 1.0, "%s: a row off by %.3g x its rounding bound", what, worst);
        CHECK(st.rows_sent * 5 < st.rows, "%s: %llu rows sent for %llu", what,
              st.rows_sent, st.rows);
    } else {
        /* Each token comes back as the mean of its bucket: within the
         * noise of its cluster's centre. */
        for (size_t t = 0; t < n; t++)
            for (size_t i = 0; i < d; i++) {
                const double e = fabs((double)y[t * d + i] - x[t * d + i]);
                worst_mean = e > worst_mean ? e : worst_mean;
            }
        CHECK(worst_mean < 1e-3, "%s: a row %.3g from its centroid", what, worst_mean);
    }
    if (rank == 0)
        printf("%s: %llu token rows sent as %llu (%.1f%%), bytes %llu of %llu\n", what,
               st.rows, st.rows_sent, 100.0 * st.rows_sent / (st.rows ? st.rows : 1),
               st.bytes_sent, st.bytes_raw);
    commpress_moe_release(h);
    commpress_moe_destroy(m);
    free(x), free(y);
}

/* Expert E(z) = tanh(W z) (W the same on every rank), loss L = sum over
 * every rank's tokens of <w_t, y_t>. Returns L (global) and, with grad
 * set, dL/dx through the library's backward. */
static double forward(commpress_moe_t *m, const float *x, const size_t *counts, size_t n,
                      size_t d, const float *W, const float *w, float *grad)
{
    commpress_moe_handle_t *h = NULL;
    float *y = malloc(n * d * sizeof(float));
    CHECK(commpress_moe_dispatch(m, x, counts, &h) == 0, "dispatch");
    size_t R;
    const float *in = commpress_moe_expert_rows(h, &R, NULL);
    float *z = malloc((R ? R : 1) * d * sizeof(float)), *gz = malloc((R ? R : 1) * d * 4),
          *gin = malloc((R ? R : 1) * d * sizeof(float));
    for (size_t r = 0; r < R; r++)
        for (size_t i = 0; i < d; i++) {
            double s = 0;
            for (size_t k = 0; k < d; k++)
                s += (double)W[i * d + k] * in[r * d + k];
            z[r * d + i] = (float)tanh(s);
        }
    CHECK(commpress_moe_combine(h, z, y) == 0, "combine");
    double L = 0;
    for (size_t t = 0; t < n * d; t++)
        L += (double)w[t] * y[t];
    MPI_Allreduce(MPI_IN_PLACE, &L, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    if (grad) {
        CHECK(commpress_moe_combine_backward(h, w, gz) == 0, "combine backward");
        for (size_t r = 0; r < R; r++) /* g = W^T (gz * (1 - z^2)) */
            for (size_t k = 0; k < d; k++) {
                double s = 0;
                for (size_t i = 0; i < d; i++)
                    s += (double)W[i * d + k] * gz[r * d + i] *
                         (1.0 - (double)z[r * d + i] * z[r * d + i]);
                gin[r * d + k] = (float)s;
            }
        CHECK(commpress_moe_dispatch_backward(h, gin, grad) == 0, "dispatch backward");
    }
    commpress_moe_release(h);
    free(y), free(z), free(gz), free(gin);
    return L;
}

static void backward(int comp)
{
    const size_t d = 16, per = 40, n = per * (size_t)nranks;
    size_t counts[64];
    for (int p = 0; p < nranks; p++)
        counts[p] = per;
    float *x = tokens(n, d, 4, 1e-2f, 11), *g = malloc(n * d * sizeof(float));
    float *W = malloc(d * d * sizeof(float)), *w = malloc(n * d * sizeof(float));
    uint64_t s = 99; /* W alike everywhere */
    for (size_t i = 0; i < d * d; i++)
        W[i] = 0.3f * normal(&s);
    s = 1234 + (uint64_t)rank;
    for (size_t i = 0; i < n * d; i++)
        w[i] = normal(&s);
    commpress_moe_t *m = make(d, 6, 0.9, comp);
    forward(m, x, counts, n, d, W, w, g);
    /* Central differences in double of the float forward: a step of 1e-2
     * keeps every token in its bucket here (clusters 100x wider apart
     * than their noise); the check allows the float forward's rounding. */
    int worst_rank = 0;
    double worst = 0;
    for (int owner = 0; owner < nranks; owner++)
        for (int k = 0; k < 4; k++) {
            const size_t t = (size_t)(k * 37 + owner) % n, i = (size_t)(k * 5) % d;
            float *xp = malloc(n * d * sizeof(float));
            memcpy(xp, x, n * d * sizeof(float));
            const float eps = 1e-2f;
            if (rank == owner)
                xp[t * d + i] += eps;
            const double Lp = forward(m, xp, counts, n, d, W, w, NULL);
            if (rank == owner)
                xp[t * d + i] -= 2 * eps;
            const double Lm = forward(m, xp, counts, n, d, W, w, NULL);
            double fd = (Lp - Lm) / (2 * eps), an = g[t * d + i];
            MPI_Bcast(&an, 1, MPI_DOUBLE, owner, MPI_COMM_WORLD);
            const double err = fabs(fd - an) / (fabs(fd) + 1e-2);
            if (err > worst)
                worst = err, worst_rank = owner;
            free(xp);
        }
    CHECK(worst < 2e-2, "backward (compensation %d): relative error %.3g (rank %d's token)",
          comp, worst, worst_rank);
    commpress_moe_stats_t st; /* buckets of several rows, not raw rows */
    commpress_moe_stats(m, &st);
    CHECK(nranks == 1 || st.rows_sent * 4 < st.rows, "backward: %llu rows sent for %llu",
          st.rows_sent, st.rows);
    if (rank == 0)
        printf("backward, compensation %d: finite differences within %.2g\n", comp, worst);
    commpress_moe_destroy(m);
    free(x), free(g), free(W), free(w);
}

static void invalid(void)
{
    commpress_moe_config_t c;
    commpress_moe_t *m = NULL;
    commpress_moe_config_default(&c);
    CHECK(commpress_moe_create(&c, MPI_COMM_WORLD, &m) == COMMPRESS_ERR_INVALID && !m,
          "hidden 0 accepted");
    c.hidden = 8, c.hashes = rank == 1 ? 99 : 6;
    const int rc = commpress_moe_create(&c, MPI_COMM_WORLD, &m);
    CHECK(nranks == 1 || (rc < 0 && !m), "one rank's 99 hashes: %d", rc);
    c.hashes = 6, c.hidden = 8 + (size_t)rank;
    const int rc2 = commpress_moe_create(&c, MPI_COMM_WORLD, &m);
    CHECK(nranks == 1 || rc2 == COMMPRESS_ERR_MISMATCH, "hidden sizes differ: %d", rc2);
    /* One rank passes no rows for rows it counts: -1 on every rank, and
     * the next dispatch goes through. */
    size_t counts[64];
    for (int p = 0; p < nranks; p++)
        counts[p] = 5;
    float *x = tokens(5 * (size_t)nranks, 8, 2, 1e-3f, 5);
    m = make(8, 4, 1.0, 1);
    commpress_moe_handle_t *h = NULL;
    const int rc3 = commpress_moe_dispatch(m, rank == nranks - 1 ? NULL : x, counts, &h);
    CHECK(rc3 == COMMPRESS_ERR_INVALID && h == NULL, "rows NULL on the last rank: %d", rc3);
    CHECK(commpress_moe_dispatch(m, x, counts, &h) == 0, "the dispatch after");
    commpress_moe_release(h);
    commpress_moe_destroy(m);
    free(x);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    cp_test_rank = rank;
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    const char *mode = argc > 1 ? argv[1] : "all";
    if (strcmp(mode, "corrupt") == 0) {
        /* COMMPRESS_FAULT=corrupt1@R:0: every rank's dispatch fails alike. */
        const size_t d = 8, n = 10 * (size_t)nranks;
        size_t counts[64];
        for (int p = 0; p < nranks; p++)
            counts[p] = 10;
        float *x = tokens(n, d, 2, 1e-3f, 3);
        commpress_moe_t *m = make(d, 4, 1.0, 1);
        commpress_moe_handle_t *h = NULL;
        const int rc = commpress_moe_dispatch(m, x, counts, &h);
        CHECK(rc == COMMPRESS_ERR_MALFORMED && h == NULL, "corrupt sizes: %d", rc);
        CHECK(commpress_moe_dispatch(m, x, counts, &h) == 0, "the next dispatch");
        commpress_moe_release(h);
        commpress_moe_destroy(m);
        free(x);
        return cp_test_finish();
    }
    identity(6, 0.9, 1, "lsh 6, compensation");
    identity(6, 0.9, 0, "lsh 6, no compensation");
    identity(0, 1.0, 1, "raw (0 hashes)");
    identity(6, 1e-6, 1, "raw (over max_fraction)");
    backward(1);
    backward(0);
    invalid();
    return cp_test_finish();
}
