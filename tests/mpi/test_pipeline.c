/* COMMPRESS_PIPELINE: the pipelined two-phase schedule gives the bits of
 * the one that runs encode, MPI_Alltoall, sum, MPI_Allgather and decode in
 * turn (collectives/allreduce_twophase.c). Two explicit-API contexts with
 * the same settings but the pipeline on and off get the same inputs, step
 * after step, and must return the same bits, with their error feedback
 * evolving alike:
 *  - every two-phase codec and the feedback variants (argv: a settings
 *    string for both contexts);
 *  - counts below the rank count, uneven chunks, one large tensor;
 *  - in place and out of place, alternating;
 *  - a step with a NaN on one rank (fallback seen in phase 1), and a step
 *    whose server sums overflow (the flag arrives in phase 3, after an
 *    out-of-place call already decoded some chunks; in place the input
 *    must survive until then; argv[3] "overflow" where the codec keeps
 *    magnitudes, so that the sums do overflow and the result is +Inf);
 *  - ranks that arrive late by random amounts, so messages come in any
 *    order.
 * It also checks that the pipelined context did pipeline (its
 * calls_pipelined statistic) and that every rank got identical bits. */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commpress.h"
#include "common/check.h"
#include "common/mpi_check.h"

static int rank, nranks;

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* Gradient-like values of step s, tensor t on this rank: a normal-ish
 * bulk with a few large entries. */
static void fill(float *x, size_t n, int s, int t)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t h = mix(((uint64_t)s << 40) ^ ((uint64_t)t << 32) ^
                         ((uint64_t)rank << 56) ^ i);
        double u = (double)(h >> 11) / 9007199254740992.0 - 0.5;
        x[i] = (float)(u * (h % 97 == 0 ? 10.0 : 0.01));
    }
}

static commpress_ctx_t *make(const char *comp, const char *settings, int pipeline)
{
    static char buf[2][512];
    commpress_config_t c;
    commpress_ctx_t *ctx = NULL;
    commpress_config_default(&c);
    c.compressor = comp;
    snprintf(buf[pipeline], sizeof(buf[0]), "%s COMMPRESS_PIPELINE=%s",
             settings, pipeline ? "on" : "off");
    c.settings = buf[pipeline];
    int rc = commpress_create(&c, MPI_COMM_WORLD, &ctx);
    CHECK(rc == COMMPRESS_OK, "commpress_create(%s): %d", buf[pipeline], rc);
    if (rc != COMMPRESS_OK)
        MPI_Abort(MPI_COMM_WORLD, 2);
    return ctx;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    cp_test_rank = rank;
    if (argc < 2) {
        fprintf(stderr, "usage: test_pipeline COMPRESSOR [SETTINGS]\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    const char *settings = argc > 2 ? argv[2] : "";
    /* "overflow": the codec keeps magnitudes, so step 5's server sums
     * overflow (sign and momentum-scaled feedback shrink them). */
    const int overflow = argc > 3 && strcmp(argv[3], "overflow") == 0;
    commpress_ctx_t *on = make(argv[1], settings, 1), *off = make(argv[1], settings, 0);
    const size_t counts[] = {1, 2, 7, 1000, 4097, 100003, (1u << 20) + 5};
    const int ncounts = sizeof(counts) / sizeof(counts[0]), steps = 8;
    const size_t max = counts[ncounts - 1];
    float *x = malloc(max * 4), *in_on = malloc(max * 4), *in_off = malloc(max * 4),
          *r_on = malloc(max * 4), *r_off = malloc(max * 4);
    uint64_t seed = 12345 + (uint64_t)rank;
    int differ = 0, calls = 0;

    for (int s = 0; s < steps; s++) {
        for (int t = 0; t < ncounts; t++) {
            const size_t n = counts[t];
            const int inplace = (s + t) % 2;
            fill(x, n, s, t);
            if (s == 3 && rank == 1) /* a NaN on one rank: seen in phase 1 */
                x[n / 2] = NAN;
            if (s == 5 && rank < 2) /* sums beyond FLT_MAX: seen in phase 3 */
                x[n - 1] = 3e38f;
            memcpy(in_on, x, n * 4);
            memcpy(in_off, x, n * 4);
            seed = mix(seed);
            usleep((useconds_t)(seed % 3000)); /* arrive in any order */
            int rc1 = commpress_allreduce(on, inplace ? NULL : in_on,
                                          inplace ? in_on : r_on, n, (uint64_t)t);
            int rc2 = commpress_allreduce(off, inplace ? NULL : in_off,
                                          inplace ? in_off : r_off, n, (uint64_t)t);
            CHECK(rc1 == COMMPRESS_OK && rc2 == COMMPRESS_OK,
                  "step %d count %zu: %d %d", s, n, rc1, rc2);
            const float *a = inplace ? in_on : r_on, *b = inplace ? in_off : r_off;
            if (memcmp(a, b, n * 4) != 0) {
                size_t i = 0;
                while (memcmp(a + i, b + i, 4) == 0)
                    i++;
                if (differ++ < 5)
                    CHECK(0, "step %d count %zu %s: [%zu] %a (pipelined) != %a",
                          s, n, inplace ? "in place" : "out of place", i,
                          a[i], b[i]);
            }
            if (!inplace) /* the input is left as it was */
                CHECK(memcmp(in_on, x, n * 4) == 0, "step %d count %zu: input changed", s, n);
            /* Every rank has the same bits. */
            CHECK(cp_test_identical(a, n * 4, MPI_COMM_WORLD),
                  "step %d count %zu: ranks differ", s, n);
            /* Both steps fall back to the exact sum. */
            if (s == 3)
                CHECK(isnan(a[n / 2]), "step 3 count %zu: %a, not NaN", n, a[n / 2]);
            if (s == 5 && overflow)
                CHECK(isinf(a[n - 1]) && a[n - 1] > 0, "step 5 count %zu: %a, not +Inf",
                      n, a[n - 1]);
            calls++;
        }
    }
    CHECK(differ == 0, "%d calls differ", differ);
    commpress_stats_t st_on, st_off;
    commpress_ctx_stats(on, &st_on);
    commpress_ctx_stats(off, &st_off);
    CHECK(st_on.calls_pipelined > 0 || nranks == 1,
          "the pipelined context pipelined no call");
    CHECK(st_off.calls_pipelined == 0, "pipeline off: %llu calls pipelined",
          st_off.calls_pipelined);
    CHECK(st_on.bytes_sent == st_off.bytes_sent,
          "bytes sent %llu (pipelined) != %llu", st_on.bytes_sent, st_off.bytes_sent);
    CHECK(st_on.calls_nonfinite == st_off.calls_nonfinite &&
              st_on.calls_nonfinite >= (unsigned long long)ncounts * (overflow ? 2 : 1),
          "non-finite calls %llu, %llu", st_on.calls_nonfinite, st_off.calls_nonfinite);
    if (rank == 0)
        printf("%d calls, %llu pipelined, %llu non-finite\n", calls,
               st_on.calls_pipelined, st_on.calls_nonfinite);
    commpress_destroy(on);
    commpress_destroy(off);
    free(x), free(in_on), free(in_off), free(r_on), free(r_off);
    return cp_test_finish();
}
