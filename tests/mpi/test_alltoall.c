/* COMMPRESS_ALLTOALL (plugin/mpi_alltoall.c), preloaded, as an application
 * calls MPI_Alltoall(v):
 *  - what is not compressed is exact: other datatypes, in place, below
 *    COMMPRESS_MIN_BYTES, blocks that are not whole rows, non-finite
 *    values, values beyond fp16's range, and this rank's own block;
 *  - lsh: rows that are cluster centres plus noise come back within the
 *    noise of the rows sent, in far fewer bytes;
 *  - fp16, bf16: within the format's rounding;
 *  - MPI_Alltoallv with uneven counts, some not whole rows;
 *  - "corrupt": COMMPRESS_FAULT=corrupt1 makes one rank receive a size out
 *    of range: every rank runs that call plain (exact), none hangs.
 * Ends with "N passed, M failed". */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commpress.h"
#include "common/check.h"
#include "common/mpi_check.h"
#include "common/splitmix.h"

static int rank, nranks;
static const size_t ROW = 64; /* COMMPRESS_A2A_ROW in tests/CMakeLists.txt */

static float normal(uint64_t *s)
{
    double u1 = ((double)(cp_test_splitmix(s) >> 11) + 0.5) / 9007199254740992.0;
    double u2 = (double)(cp_test_splitmix(s) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
}

/* n floats of rows: 6 centres (per rank and block) plus noise. */
static void rows(float *x, size_t n, float noise, uint64_t seed)
{
    uint64_t s = seed;
    float c[6][64];
    for (int k = 0; k < 6; k++)
        for (size_t i = 0; i < ROW; i++)
            c[k][i] = normal(&s);
    for (size_t j = 0; j < n; j++)
        x[j] = c[(j / ROW) % 6][j % ROW] + noise * normal(&s);
}

static const char *mode(void)
{
    const char *m = getenv("COMMPRESS_ALLTOALL");
    return m ? m : "none";
}

/* The largest error the mode allows for a value v (noise: the rows'). */
static double allowed(double v, float noise)
{
    if (strcmp(mode(), "fp16") == 0)
        return ldexp(fabs(v), -11) + 6e-8;
    if (strcmp(mode(), "bf16") == 0)
        return ldexp(fabs(v), -8);
    if (strcmp(mode(), "lsh") == 0)
        return 12.0 * noise; /* the row's distance to its bucket's mean */
    return 0;
}

static void check_alltoall(size_t per, float noise, int expect_exact, const char *what)
{
    const size_t n = per * (size_t)nranks;
    float *x = malloc(n * 4), *y = malloc(n * 4), *ref = malloc(n * 4);
    for (int p = 0; p < nranks; p++)
        rows(x + (size_t)p * per, per, noise, 1000 * (uint64_t)rank + (uint64_t)p);
    PMPI_Alltoall(x, (int)per, MPI_FLOAT, ref, (int)per, MPI_FLOAT, MPI_COMM_WORLD);
    commpress_stats_t s0, s1;
    commpress_stats(&s0);
    MPI_Alltoall(x, (int)per, MPI_FLOAT, y, (int)per, MPI_FLOAT, MPI_COMM_WORLD);
    commpress_stats(&s1);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        const double e = fabs((double)y[i] - ref[i]), a = allowed(ref[i], noise);
        worst = a > 0 ? fmax(worst, e / a) : (e > 0 ? INFINITY : worst);
    }
    /* This rank's own block is copied exactly. */
    CHECK(memcmp(y + (size_t)rank * per, x + (size_t)rank * per, per * 4) == 0,
          "%s: own block not exact", what);
    if (expect_exact)
        CHECK(memcmp(y, ref, n * 4) == 0, "%s: not exact", what);
    else
        CHECK(worst <= 1.0, "%s: an element off by %.3g x the allowed error", what, worst);
    const unsigned long long raw = s1.a2a_bytes_uncompressed - s0.a2a_bytes_uncompressed,
                             sent = s1.a2a_bytes_sent - s0.a2a_bytes_sent;
    if (rank == 0)
        printf("%s (%s): %llu bytes of blocks sent as %llu\n", what, mode(), raw, sent);
    if (!expect_exact && strcmp(mode(), "lsh") == 0)
        CHECK(sent * 5 < raw, "%s: %llu bytes sent for %llu", what, sent, raw);
    if (!expect_exact && strcmp(mode(), "none") != 0 && strcmp(mode(), "lsh") != 0)
        CHECK(sent < raw * 0.55, "%s: %llu bytes sent for %llu", what, sent, raw);
    free(x), free(y), free(ref);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    cp_test_rank = rank;
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    const int none = strcmp(mode(), "none") == 0;
    if (argc > 1 && strcmp(argv[1], "corrupt") == 0) {
        /* The first compressed all-to-all: a size out of range on one
         * rank, so every rank runs it plain. */
        check_alltoall(ROW * 300, 1e-3f, 1, "a size out of range");
        check_alltoall(ROW * 300, 1e-3f, none, "the next call");
        return cp_test_finish();
    }
    check_alltoall(ROW * 300, 1e-3f, none, "300 rows a block");
    check_alltoall(ROW * 10, 1e-3f, 1, "below COMMPRESS_MIN_BYTES");
    /* Not whole rows: raw for lsh (exact), still cast for fp16/bf16. */
    check_alltoall(ROW * 300 + 7, 1e-3f, none || strcmp(mode(), "lsh") == 0,
                   "blocks not whole rows");
    {   /* Other datatypes and in place: passed through. */
        const size_t per = 40000;
        int *a = malloc(per * nranks * sizeof(int)), *b = malloc(per * nranks * sizeof(int)),
            *r = malloc(per * nranks * sizeof(int));
        for (size_t i = 0; i < per * nranks; i++)
            a[i] = (int)(i * 7 + (size_t)rank);
        MPI_Alltoall(a, (int)per, MPI_INT, b, (int)per, MPI_INT, MPI_COMM_WORLD);
        PMPI_Alltoall(a, (int)per, MPI_INT, r, (int)per, MPI_INT, MPI_COMM_WORLD);
        CHECK(memcmp(b, r, per * nranks * sizeof(int)) == 0, "MPI_INT: not exact");
        float *f = malloc(per * nranks * 4), *g = malloc(per * nranks * 4);
        rows(f, per * nranks, 1e-3f, 77 + (uint64_t)rank);
        PMPI_Alltoall(f, (int)per, MPI_FLOAT, g, (int)per, MPI_FLOAT, MPI_COMM_WORLD);
        MPI_Alltoall(MPI_IN_PLACE, (int)per, MPI_FLOAT, f, (int)per, MPI_FLOAT, MPI_COMM_WORLD);
        CHECK(memcmp(f, g, per * nranks * 4) == 0, "in place: not exact");
        free(a), free(b), free(r), free(f), free(g);
    }
    {   /* Non-finite values, and beyond fp16's range: those blocks exact. */
        const size_t per = ROW * 300, n = per * (size_t)nranks;
        float *x = malloc(n * 4), *y = malloc(n * 4), *ref = malloc(n * 4);
        for (int p = 0; p < nranks; p++)
            rows(x + (size_t)p * per, per, 1e-3f, 5000 + 10 * (uint64_t)rank + (uint64_t)p);
        for (int p = 0; p < nranks; p++)
            x[(size_t)p * per + 5] = p % 2 ? NAN : 1e6f;
        PMPI_Alltoall(x, (int)per, MPI_FLOAT, ref, (int)per, MPI_FLOAT, MPI_COMM_WORLD);
        MPI_Alltoall(x, (int)per, MPI_FLOAT, y, (int)per, MPI_FLOAT, MPI_COMM_WORLD);
        for (int q = 0; q < nranks; q++) {
            /* Rank q's block to this rank carries NaN (odd rank) or 1e6. */
            const int nan_block = rank % 2;
            const int exact = nan_block || strcmp(mode(), "fp16") == 0 ||
                              strcmp(mode(), "none") == 0;
            if (exact)
                CHECK(memcmp(y + (size_t)q * per, ref + (size_t)q * per, per * 4) == 0,
                      "block from %d with %s: not exact", q, nan_block ? "NaN" : "1e6");
        }
        free(x), free(y), free(ref);
    }
    {   /* MPI_Alltoallv: uneven blocks, whole rows or not. */
        int sc[64], sd[64], rc[64], rd[64];
        size_t st = 0, rt = 0;
        for (int p = 0; p < nranks; p++) {
            sc[p] = (int)(ROW * (size_t)(200 + 50 * ((rank + p) % 3)) + (p == 1 ? 3 : 0));
            sd[p] = (int)st, st += (size_t)sc[p];
        }
        MPI_Alltoall(sc, 1, MPI_INT, rc, 1, MPI_INT, MPI_COMM_WORLD);
        for (int q = 0; q < nranks; q++)
            rd[q] = (int)rt, rt += (size_t)rc[q];
        float *x = malloc(st * 4), *y = malloc(rt * 4), *ref = malloc(rt * 4);
        rows(x, st, 1e-3f, 9000 + (uint64_t)rank);
        PMPI_Alltoallv(x, sc, sd, MPI_FLOAT, ref, rc, rd, MPI_FLOAT, MPI_COMM_WORLD);
        MPI_Alltoallv(x, sc, sd, MPI_FLOAT, y, rc, rd, MPI_FLOAT, MPI_COMM_WORLD);
        double worst = 0;
        for (int q = 0; q < nranks; q++) {
            const int whole = rc[q] % (int)ROW == 0;
            for (int i = 0; i < rc[q]; i++) {
                const double e = fabs((double)y[rd[q] + i] - ref[rd[q] + i]);
                const double a = (q == rank || (!whole && strcmp(mode(), "lsh") == 0))
                                     ? 0 : allowed(ref[rd[q] + i], 1e-3f);
                worst = a > 0 ? fmax(worst, e / a) : (e > 0 ? INFINITY : worst);
            }
        }
        CHECK(worst <= 1.0, "alltoallv: an element off by %.3g x the allowed error", worst);
        free(x), free(y), free(ref);
    }
    return cp_test_finish();
}
