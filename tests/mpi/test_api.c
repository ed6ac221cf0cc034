/* The explicit API (include/commpress.h), linked rather than preloaded:
 *  - the same configuration gives the same bits as the shim;
 *  - invalid and mismatched configurations are reported on every rank;
 *  - any communicator, including one of a single rank;
 *  - non-finite steps as in the shim; statistics per context.
 * Run under mpirun with COMMPRESS_MIN_BYTES=0 (the shim compresses too). */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commpress.h"
#include "common/check.h"
#include "common/mpi_check.h"

static int rank, nranks;


static void fill(float *x, size_t n, unsigned seed)
{
    srand(seed * 131 + (unsigned)rank);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((rand() / (double)RAND_MAX - 0.5) * 1e-2);
}

/* The shim (configured by the environment) and the API (configured by the
 * struct, with the environment's settings) produce the same bits. */
static void same_as_shim(const char *comp)
{
    const size_t n = 100003;
    float *x = malloc(n * 4), *a = malloc(n * 4), *b = malloc(n * 4);
    commpress_config_t cfg;
    commpress_ctx_t *ctx;
    commpress_config_default(&cfg);
    cfg.compressor = comp;
    cfg.feedback = getenv("COMMPRESS_FEEDBACK"); /* NULL: the default */
    if (getenv("COMMPRESS_ECONTROL_ETA"))
        cfg.econtrol_eta = atof(getenv("COMMPRESS_ECONTROL_ETA"));
    /* A codec's parameter with no field: through the settings string. */
    char settings[128] = "";
    if (getenv("COMMPRESS_RANDK_DENSITY"))
        snprintf(settings, sizeof(settings), "COMMPRESS_RANDK_DENSITY=%s",
                 getenv("COMMPRESS_RANDK_DENSITY"));
    cfg.settings = settings;
    /* EControl sends a tensor's first step dense: no saving then. */
    const int dense_first = cfg.feedback && !strcmp(cfg.feedback, "econtrol");
    fill(x, n, 1);
    int rc = commpress_create(&cfg, MPI_COMM_WORLD, &ctx);
    CHECK(rc == COMMPRESS_OK, "create %s: %s", comp ? comp : "(unset)", commpress_strerror(rc));
    if (rc != COMMPRESS_OK) {
        free(x), free(a), free(b);
        return;
    }
    for (int step = 0; step < 3; step++) {
        CHECK(commpress_allreduce(ctx, x, a, n, 7) == COMMPRESS_OK, "allreduce");
        MPI_Allreduce(x, b, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        CHECK(memcmp(a, b, n * 4) == 0, "%s step %d: API and shim differ", comp, step);
    }
    /* In place through the API: a fresh tensor id gives step 0's result. */
    commpress_ctx_t *ctx2;
    commpress_create(&cfg, MPI_COMM_WORLD, &ctx2);
    commpress_allreduce(ctx2, x, a, n, 1);
    memcpy(b, x, n * 4);
    commpress_allreduce(ctx2, NULL, b, n, 2);
    CHECK(memcmp(a, b, n * 4) == 0, "%s: in place differs", comp);
    commpress_stats_t st;
    commpress_ctx_stats(ctx2, &st);
    CHECK(st.calls_compressed == 2 && st.bytes_sent > 0 &&
          (dense_first ? st.ratio > 0.9 : st.ratio > 1.0) &&
          st.state_bytes == commpress_state_bytes(ctx2),
          "%s: ctx stats calls %llu ratio %g", comp, st.calls_compressed, st.ratio);
    commpress_destroy(ctx2);
    commpress_destroy(ctx);
    free(x), free(a), free(b);
}

static void invalid_and_mismatch(void)
{
    commpress_config_t cfg;
    commpress_ctx_t *ctx = NULL;
    commpress_config_default(&cfg);
    cfg.compressor = "zip";
    CHECK(commpress_create(&cfg, MPI_COMM_WORLD, &ctx) < 0 && ctx == NULL, "zip accepted");
    commpress_config_default(&cfg);
    cfg.compressor = "quant";
    cfg.bits = rank == nranks - 1 ? 9 : 4; /* one rank invalid: all fail */
    CHECK(commpress_create(&cfg, MPI_COMM_WORLD, &ctx) < 0, "bits 9 accepted");
    cfg.bits = 4;
    cfg.density = rank == 0 ? 0.01 : 0.02;
    cfg.compressor = "topk";
    int rc = commpress_create(&cfg, MPI_COMM_WORLD, &ctx);
    CHECK(nranks == 1 || rc < 0, "mismatch accepted");
    if (nranks > 1)
        CHECK(strstr(commpress_strerror(rc), "differs") != NULL, "message: %s",
              commpress_strerror(rc));
    /* The settings string: validated as the environment is, agreed across
     * ranks like the fields. */
    static const char *const bad[] = {
        "COMMPRESS_RANDK_DENSITY=2",   /* out of range */
        "COMMPRESS_RANDK_DENSITY",     /* no value */
        "COMMPRESS_MIN_BYTES=0",       /* the shim's, not the collective's */
        "COMMPRESS_DENSITTY=0.1",      /* no such variable */
        "COMMPRESS_BITS=4 COMMPRESS_ROUNDING=up",
    };
    commpress_config_default(&cfg);
    cfg.compressor = "randk";
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        cfg.settings = bad[i];
        ctx = NULL;
        CHECK(commpress_create(&cfg, MPI_COMM_WORLD, &ctx) < 0 && ctx == NULL,
              "settings '%s' accepted", bad[i]);
    }
    cfg.settings = "COMMPRESS_RANDK_DENSITY=0.05, COMMPRESS_SEED=3";
    CHECK(commpress_create(&cfg, MPI_COMM_WORLD, &ctx) == COMMPRESS_OK,
          "settings '%s' refused", cfg.settings);
    commpress_destroy(ctx);
    cfg.settings = rank == 0 ? "COMMPRESS_RANDK_DENSITY=0.05" : "COMMPRESS_RANDK_DENSITY=0.1";
    rc = commpress_create(&cfg, MPI_COMM_WORLD, &ctx);
    CHECK(nranks == 1 || rc < 0, "settings mismatch accepted");
}

/* A single-rank communicator: the full compress/decompress path runs. */
static void single_rank(void)
{
    const size_t n = 5000;
    float x[5000], r[5000];
    commpress_config_t cfg;
    commpress_ctx_t *ctx;
    commpress_config_default(&cfg);
    cfg.compressor = "quant";
    cfg.bits = 8;
    fill(x, n, 3);
    if (commpress_create(&cfg, MPI_COMM_SELF, &ctx) != COMMPRESS_OK) {
        CHECK(0, "create self");
        return;
    }
    CHECK(commpress_allreduce(ctx, x, r, n, 1) == COMMPRESS_OK, "allreduce self");
    double err = 0, unit = 1e-2 / 255; /* range of the inputs / levels */
    for (size_t i = 0; i < n; i++)
        err = fmax(err, fabs(r[i] - x[i]));
    /* worker and server quantization, half a unit each (plus rounding) */
    CHECK(err <= unit * 1.01, "self: error %g > %g", err, unit);
    x[10] = NAN;
    CHECK(commpress_allreduce(ctx, x, r, n, 1) == COMMPRESS_OK, "nan step");
    CHECK(isnan(r[10]) && r[11] == x[11], "nan step not exact");
    commpress_destroy(ctx);
}

/* An intercommunicator (the world in two groups): the API refuses it on
 * every rank; the shim passes its allreduce through, which then sums the
 * other group's data as MPI defines. */
static void intercommunicator(void)
{
    if (nranks < 2)
        return;
    MPI_Comm half, inter;
    const int color = rank % 2;
    MPI_Comm_split(MPI_COMM_WORLD, color, rank, &half);
    /* Leaders: world rank 0 for group 0, world rank 1 for group 1. */
    MPI_Intercomm_create(half, 0, MPI_COMM_WORLD, color == 0 ? 1 : 0, 7, &inter);
    commpress_config_t cfg;
    commpress_ctx_t *ctx = (commpress_ctx_t *)&cfg;
    commpress_config_default(&cfg);
    cfg.compressor = "quant";
    int rc = commpress_create(&cfg, inter, &ctx);
    CHECK(rc == COMMPRESS_ERR_INVALID && ctx == NULL,
          "intercommunicator accepted by commpress_create (%d)", rc);
    enum { N = 50000 };
    float *x = malloc(N * sizeof(float)), *r = malloc(N * sizeof(float));
    for (size_t i = 0; i < N; i++)
        x[i] = (float)(rank + 1);
    MPI_Allreduce(x, r, N, MPI_FLOAT, MPI_SUM, inter);
    float other = 0; /* the sum of the other group's (world rank + 1) */
    for (int q = 0; q < nranks; q++)
        if (q % 2 != color)
            other += (float)(q + 1);
    size_t bad = 0;
    for (size_t i = 0; i < N; i++)
        bad += r[i] != other;
    CHECK(bad == 0, "intercommunicator allreduce: %zu wrong (expected %g, got %g)",
          bad, other, r[0]);
    free(x), free(r);
    MPI_Comm_free(&inter);
    MPI_Comm_free(&half);
}

/* COMMPRESS_ADAPT through the settings string: tensors named by the
 * caller's ids are the layers; plans every 3 steps; identical bits on
 * every rank and fewer bytes than the uniform setting. */
static void adapt(void)
{
    enum { T = 4, STEPS = 16 };
    static const size_t count[T] = {20000, 3000, 40000, 9000};
    float *x = malloc(40000 * 4), *r = malloc(40000 * 4);
    commpress_config_t cfg;
    commpress_ctx_t *ctx;
    commpress_config_default(&cfg);
    cfg.compressor = "quant";
    cfg.settings = "COMMPRESS_ADAPT=lgreco COMMPRESS_ADAPT_EVERY=3 COMMPRESS_ADAPT_WINDOW=1";
    int rc = commpress_create(&cfg, MPI_COMM_WORLD, &ctx);
    CHECK(rc == COMMPRESS_OK, "create with COMMPRESS_ADAPT: %d", rc);
    if (rc != COMMPRESS_OK)
        return;
    for (int s = 0; s < STEPS; s++)
        for (int t = 0; t < T; t++) {
            fill(x, count[t], (unsigned)(s * T + t));
            for (size_t i = 0; i < count[t]; i++)
                x[i] *= (float)(1 + 5 * t) * (i % 7 == 0 ? 10.0f : 1.0f);
            CHECK(commpress_allreduce(ctx, x, r, count[t], (uint64_t)t) == COMMPRESS_OK,
                  "adapt allreduce");
            CHECK(cp_test_identical(r, count[t] * 4, MPI_COMM_WORLD),
                  "adapt step %d tensor %d: ranks differ", s, t);
        }
    commpress_stats_t st;
    commpress_ctx_stats(ctx, &st);
    CHECK(st.adapt_plans >= 3, "%llu plans", st.adapt_plans);
    CHECK(st.calls_fallback == 0, "%llu calls sent exact", st.calls_fallback);
    CHECK(nranks == 1 || st.bytes_sent < st.bytes_sent_uniform,
          "adapt: %llu bytes sent, uniform %llu", st.bytes_sent, st.bytes_sent_uniform);
    if (rank == 0)
        printf("api adapt: %llu plans, %llu bytes sent, uniform %llu\n", st.adapt_plans,
               st.bytes_sent, st.bytes_sent_uniform);
    commpress_destroy(ctx);
    free(x), free(r);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    cp_test_rank = rank;
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    /* The shim reads COMMPRESS_COMPRESSOR at MPI_Init; ctest runs this
     * program once per compressor. */
    same_as_shim(getenv("COMMPRESS_COMPRESSOR"));
    invalid_and_mismatch();
    single_rank();
    intercommunicator();
    adapt();
    return cp_test_finish();
}
