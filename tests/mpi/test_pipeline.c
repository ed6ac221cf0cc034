/* COMMPRESS_PIPELINE and COMMPRESS_FUSE: the pipelined two-phase schedule
 * and the fused error feedback give the bits of the schedule that runs
 * ef's prepare, encode, MPI_Alltoall, sum, MPI_Allgather, decode and ef's
 * commit in turn (collectives/allreduce_twophase.c). Three explicit-API
 * contexts with the same settings (pipelined and fused; neither, the
 * reference; fused only) get the same inputs, step after step, and must
 * return the same bits, with their error feedback evolving alike:
 *  - every two-phase codec and the feedback variants (argv: a settings
 *    string for both contexts);
 *  - counts below the rank count, uneven chunks, one large tensor;
 *  - in place and out of place, alternating;
 *  - a step with a NaN on one rank (seen in phase 1 by every server, or
 *    fused by the one server whose chunk holds it and passed on in phase
 *    3), and a step
 *    whose server sums overflow (the flag arrives in phase 3, after an
 *    out-of-place call already decoded some chunks; in place the input
 *    must survive until then; argv[3] "overflow" where the codec keeps
 *    magnitudes, so that the sums do overflow and the result is +Inf);
 *  - ranks that arrive late by random amounts, so messages come in any
 *    order.
 * It also checks that the contexts pipelined and fused as set (the
 * calls_pipelined and calls_fused statistics; argv[4] "fused" where the
 * setting can fuse, argv[5] "sparse" where it runs the sparse allgather,
 * which fuses but does not pipeline) and that every rank got identical
 * bits. */
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

/* The contexts: 0 pipelined and fused (the defaults), 1 the reference
 * (sequential, unfused), 2 sequential and fused. */
enum { NCTX = 3 };
static const char *const modes[NCTX] = {"COMMPRESS_PIPELINE=on COMMPRESS_FUSE=on",
                                        "COMMPRESS_PIPELINE=off COMMPRESS_FUSE=off",
                                        "COMMPRESS_PIPELINE=off COMMPRESS_FUSE=on"};

static commpress_ctx_t *make(const char *comp, const char *settings, int mode)
{
    static char buf[NCTX][512];
    commpress_config_t c;
    commpress_ctx_t *ctx = NULL;
    commpress_config_default(&c);
    c.compressor = comp;
    snprintf(buf[mode], sizeof(buf[0]), "%s %s", settings, modes[mode]);
    c.settings = buf[mode];
    int rc = commpress_create(&c, MPI_COMM_WORLD, &ctx);
    CHECK(rc == COMMPRESS_OK, "commpress_create(%s): %d", buf[mode], rc);
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
        fprintf(stderr, "usage: test_pipeline COMPRESSOR [SETTINGS [overflow|no "
                        "[fused|no [sparse]]]]\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    const char *settings = argc > 2 ? argv[2] : "";
    /* "overflow": the codec keeps magnitudes, so step 5's server sums
     * overflow (sign and momentum-scaled feedback shrink them). */
    const int overflow = argc > 3 && strcmp(argv[3], "overflow") == 0;
    /* "fused": the setting fuses its error feedback with the encode;
     * "sparse": it runs the sparse allgather, which does not pipeline. */
    const int fusing = argc > 4 && strcmp(argv[4], "fused") == 0;
    const int sparse = argc > 5 && strcmp(argv[5], "sparse") == 0;
    commpress_ctx_t *ctx[NCTX];
    const size_t counts[] = {1, 2, 7, 1000, 4097, 100003, (1u << 20) + 5};
    const int ncounts = sizeof(counts) / sizeof(counts[0]), steps = 8;
    const size_t max = counts[ncounts - 1];
    float *x = malloc(max * 4), *in[NCTX], *r[NCTX];
    for (int c = 0; c < NCTX; c++)
        ctx[c] = make(argv[1], settings, c), in[c] = malloc(max * 4), r[c] = malloc(max * 4);
    uint64_t seed = 12345 + (uint64_t)rank;
    int differ = 0, calls = 0;

    for (int s = 0; s < steps; s++) {
        for (int t = 0; t < ncounts; t++) {
            const size_t n = counts[t];
            const int inplace = (s + t) % 2;
            fill(x, n, s, t);
            /* A NaN on one rank: in the middle chunk, which rank 1 encodes
             * last (fused, its other chunks have left clean). */
            if (s == 3 && rank == 1)
                x[n / 2] = NAN;
            if (s == 5 && rank < 2) /* sums beyond FLT_MAX: seen in phase 3 */
                x[n - 1] = 3e38f;
            const float *out[NCTX];
            for (int c = 0; c < NCTX; c++) {
                memcpy(in[c], x, n * 4);
                seed = mix(seed);
                usleep((useconds_t)(seed % 3000)); /* arrive in any order */
                int rc = commpress_allreduce(ctx[c], inplace ? NULL : in[c],
                                             inplace ? in[c] : r[c], n, (uint64_t)t);
                CHECK(rc == COMMPRESS_OK, "step %d count %zu context %d: %d", s, n, c, rc);
                out[c] = inplace ? in[c] : r[c];
                if (!inplace) /* the input is left as it was */
                    CHECK(memcmp(in[c], x, n * 4) == 0, "step %d count %zu context %d: "
                          "input changed", s, n, c);
            }
            for (int c = 0; c < NCTX; c++) {
                const float *a = out[c], *b = out[1];
                if (c != 1 && memcmp(a, b, n * 4) != 0) {
                    size_t i = 0;
                    while (memcmp(a + i, b + i, 4) == 0)
                        i++;
                    if (differ++ < 5)
                        CHECK(0, "step %d count %zu %s: [%zu] %a (%s) != %a (%s)", s, n,
                              inplace ? "in place" : "out of place", i, a[i], modes[c],
                              b[i], modes[1]);
                }
                /* Every rank has the same bits. */
                CHECK(cp_test_identical(a, n * 4, MPI_COMM_WORLD),
                      "step %d count %zu context %d: ranks differ", s, n, c);
            }
            /* Both steps fall back to the exact sum. */
            if (s == 3)
                CHECK(isnan(out[0][n / 2]), "step 3 count %zu: %a, not NaN", n, out[0][n / 2]);
            if (s == 5 && overflow)
                CHECK(isinf(out[0][n - 1]) && out[0][n - 1] > 0,
                      "step 5 count %zu: %a, not +Inf", n, out[0][n - 1]);
            calls++;
        }
    }
    CHECK(differ == 0, "%d calls differ", differ);
    commpress_stats_t st[NCTX];
    for (int c = 0; c < NCTX; c++)
        commpress_ctx_stats(ctx[c], &st[c]);
    CHECK(st[0].calls_pipelined > 0 || nranks == 1 || sparse,
          "the pipelined context pipelined no call");
    CHECK(!sparse || st[0].calls_pipelined == 0, "the sparse allgather pipelined %llu calls",
          st[0].calls_pipelined);
    CHECK(st[1].calls_pipelined == 0 && st[2].calls_pipelined == 0,
          "pipeline off: %llu, %llu calls pipelined", st[1].calls_pipelined,
          st[2].calls_pipelined);
    CHECK(st[1].calls_fused == 0, "fuse off: %llu calls fused", st[1].calls_fused);
    if (fusing)
        CHECK(st[0].calls_fused > 0 && st[2].calls_fused > 0, "fuse on: %llu, %llu calls "
              "fused", st[0].calls_fused, st[2].calls_fused);
    else
        CHECK(st[0].calls_fused == 0 && st[2].calls_fused == 0, "a setting that cannot "
              "fuse: %llu, %llu calls fused", st[0].calls_fused, st[2].calls_fused);
    for (int c = 0; c < NCTX; c += 2) {
        CHECK(st[c].bytes_sent == st[1].bytes_sent, "bytes sent %llu (%s) != %llu",
              st[c].bytes_sent, modes[c], st[1].bytes_sent);
        CHECK(st[c].calls_nonfinite == st[1].calls_nonfinite &&
                  st[c].calls_nonfinite >= (unsigned long long)ncounts * (overflow ? 2 : 1),
              "non-finite calls %llu, %llu", st[c].calls_nonfinite, st[1].calls_nonfinite);
    }
    if (rank == 0)
        printf("%d calls, %llu pipelined, %llu fused, %llu non-finite\n", calls,
               st[0].calls_pipelined, st[0].calls_fused, st[0].calls_nonfinite);
    for (int c = 0; c < NCTX; c++)
        commpress_destroy(ctx[c]), free(in[c]), free(r[c]);
    free(x);
    return cp_test_finish();
}
