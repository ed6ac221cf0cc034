/* Every rank agrees (docs/design.md, "Tensor identity" and "Agreement"),
 * checked under mpirun with the shim preloaded, as an application sees it
 * (the explicit API, reached through dlsym, is the reference):
 *
 *   patterns   a step of tensors whose sizes repeat, allreduced through
 *              buffers that each rank handles its own way: stable, two
 *              alternating sets, a fresh allocation every call, one scratch
 *              buffer for all, or a different one of these on each rank.
 *              Every result is bit-identical on every rank; with stable
 *              buffers it equals the API with one id per tensor (for the
 *              tensors of a size of their own, from the first step); with
 *              any other handling it equals the stable run bit for bit,
 *              but for alternating sets on every rank, which read as a
 *              step twice as long (each tensor then keeps two states).
 *   changes    the sequence changes (a tensor appears, an extra call comes
 *              between two steps): the tensors that did not change keep
 *              their state (the API's results, bit for bit, every step).
 *   converge   tensors of one size, through one scratch buffer or stable
 *              ones: each converges to its own sum under error feedback.
 *   faults     COMMPRESS_FAULT makes one rank fail (allocation, encoding,
 *              a corrupt message): every rank sends that call exact, with
 *              the same bits, and the steps after it equal a run in which
 *              it never happened. (A corrupt message in the final exchange
 *              stops the job instead: tests/CMakeLists.txt.)
 *   overflow   fp16/bf16 sums beyond the 16-bit range: never clipped.
 *   adapt      COMMPRESS_ADAPT=lgreco: a step of layers that differ (scales,
 *              tails, sparsity), plans every few steps: identical bits
 *              on every rank through every plan change, no call sent
 *              exact, plans made, fewer bytes than the uniform setting.
 *   layout     a fused buffer of 6 layers with a registered layout
 *              (commpress_register_layout, through the shim), the same
 *              buffer with a layout on an API context
 *              (commpress_ctx_set_layout), and the 6 layers allreduced
 *              one by one through the API (one id each): bit for bit the
 *              same every step, the same bytes, identical on every rank.
 *              With COMMPRESS_ADAPT, the two API contexts stay bit for
 *              bit the same through plans that give the segments
 *              different settings (tests/mpi/layout.sh reads them); the
 *              shim, which learns the step a step later, plans a step
 *              later: its results are identical on every rank, in fewer
 *              bytes than the uniform setting. Layouts
 *              that do not cover the buffer are refused. A layout only
 *              one rank registered, layouts that differ across ranks,
 *              or one registered after the buffer's first call leave
 *              the buffer one layer on every rank (equal bit for bit to
 *              a buffer without a layout). Under COMMPRESS_MAX_STATE_BYTES
 *              states are dropped and made again, and all of this still
 *              holds but for fewer bytes. ("layout_fault": one rank
 *              fails to make the segments: that call goes exact on
 *              every rank, the next compresses.)
 *   bound      COMMPRESS_MAX_STATE_BYTES below the step's state: the least
 *              recently used states are dropped every step, and rank 0
 *              holds an extra communicator's state (so it alone is over
 *              the bound): the ranks agree which states go (identical
 *              bits, no call sent exact, the state within the bound);
 *              then a fresh buffer of F floats every step for S steps runs
 *              at flat memory (400000 floats, 200 steps; "bound F S" runs
 *              only this part, with F floats for S steps).
 * Ends with "N passed, M failed" on rank 0. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <float.h>
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "include/commpress.h"
#include "common/check.h"
#include "common/mpi_check.h"
#include "common/splitmix.h"

static int rank, nranks;

/* The library, as an application that did not link it finds it. */
static struct {
    void (*stats)(commpress_stats_t *);
    void (*config_default)(commpress_config_t *);
    int (*create)(const commpress_config_t *, MPI_Comm, commpress_ctx_t **);
    int (*allreduce)(commpress_ctx_t *, const float *, float *, size_t, uint64_t);
    void (*destroy)(commpress_ctx_t *);
    int (*register_layout)(const void *, size_t, size_t, const size_t *);
    int (*unregister_layout)(const void *);
    int (*ctx_set_layout)(commpress_ctx_t *, uint64_t, size_t, size_t, const size_t *);
    void (*ctx_stats)(const commpress_ctx_t *, commpress_stats_t *);
} L;

static void load_library(void)
{
    L.stats = (void (*)(commpress_stats_t *))dlsym(RTLD_DEFAULT, "commpress_stats");
    L.config_default = (void (*)(commpress_config_t *))dlsym(RTLD_DEFAULT,
                                                               "commpress_config_default");
    L.create = (int (*)(const commpress_config_t *, MPI_Comm, commpress_ctx_t **))
        dlsym(RTLD_DEFAULT, "commpress_create");
    L.allreduce = (int (*)(commpress_ctx_t *, const float *, float *, size_t, uint64_t))
        dlsym(RTLD_DEFAULT, "commpress_allreduce");
    L.destroy = (void (*)(commpress_ctx_t *))dlsym(RTLD_DEFAULT, "commpress_destroy");
    L.register_layout = (int (*)(const void *, size_t, size_t, const size_t *))
        dlsym(RTLD_DEFAULT, "commpress_register_layout");
    L.unregister_layout = (int (*)(const void *))dlsym(RTLD_DEFAULT,
                                                       "commpress_unregister_layout");
    L.ctx_set_layout = (int (*)(commpress_ctx_t *, uint64_t, size_t, size_t,
                                const size_t *))dlsym(RTLD_DEFAULT, "commpress_ctx_set_layout");
    L.ctx_stats = (void (*)(const commpress_ctx_t *, commpress_stats_t *))
        dlsym(RTLD_DEFAULT, "commpress_ctx_stats");
    if (!L.stats || !L.config_default || !L.create || !L.allreduce || !L.destroy ||
        !L.register_layout || !L.unregister_layout || !L.ctx_set_layout || !L.ctx_stats) {
        fprintf(stderr, "libcommpress.so is not preloaded\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
}

static commpress_stats_t stats(void)
{
    commpress_stats_t s;
    memset(&s, 0, sizeof(s));
    L.stats(&s);
    return s;
}

static const char *env(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v ? v : dflt;
}

/* The API configured as the environment configures the shim. */
static commpress_ctx_t *api_context(void)
{
    commpress_config_t c;
    commpress_ctx_t *ctx = NULL;
    L.config_default(&c);
    c.compressor = env("COMMPRESS_COMPRESSOR", "none");
    c.feedback = getenv("COMMPRESS_FEEDBACK");
    c.density = atof(env("COMMPRESS_DENSITY", "0.01"));
    c.bits = atoi(env("COMMPRESS_BITS", "4"));
    c.topk_select = getenv("COMMPRESS_TOPK_SELECT");
    c.algorithm = getenv("COMMPRESS_ALLREDUCE_ALGO");
    c.econtrol_eta = atof(env("COMMPRESS_ECONTROL_ETA", "0.01"));
    c.dgc_warmup_steps = strtoull(env("COMMPRESS_DGC_WARMUP_STEPS", "0"), NULL, 10);
    c.dgc_dense_below = strtoull(env("COMMPRESS_DGC_DENSE_BELOW", "16384"), NULL, 10);
    c.stochastic = strcmp(env("COMMPRESS_ROUNDING", "nearest"), "stochastic") == 0;
    static char settings[256]; /* parameters with no field */
    snprintf(settings, sizeof(settings),
             "COMMPRESS_RANDK_DENSITY=%s COMMPRESS_ADAPT=%s COMMPRESS_ADAPT_EVERY=%s "
             "COMMPRESS_ADAPT_WINDOW=%s COMMPRESS_ADAPT_ALPHA=%s",
             env("COMMPRESS_RANDK_DENSITY", "0.01"), env("COMMPRESS_ADAPT", "none"),
             env("COMMPRESS_ADAPT_EVERY", "500"), env("COMMPRESS_ADAPT_WINDOW", "10"),
             env("COMMPRESS_ADAPT_ALPHA", "1"));
    c.settings = settings;
    int rc = L.create(&c, MPI_COMM_WORLD, &ctx);
    CHECK(rc == COMMPRESS_OK, "commpress_create: %d", rc);
    return ctx;
}

/* Gradient of tensor t at step s on rank r: normal values with a heavy
 * tail, different for every (s, t, r). */
static void gradient(float *x, size_t n, int s, int t, int r)
{
    uint64_t st = ((uint64_t)s * 1000003 + (uint64_t)t) * 7919 + (uint64_t)r;
    for (size_t i = 0; i < n; i++) {
        double u1 = ((double)(cp_test_splitmix(&st) >> 11) + 0.5) / 9007199254740992.0;
        double u2 = (double)(cp_test_splitmix(&st) >> 11) / 9007199254740992.0;
        double z = sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
        if ((cp_test_splitmix(&st) & 127) == 0)
            z *= 30;
        x[i] = (float)(z * 1e-3);
    }
}

/* ---- patterns ---- */

/* Sizes repeat (1, 3, 5), and not next to each other; 0, 2, 4 are sizes
 * of their own. The 3000s are below COMMPRESS_DGC_DENSE_BELOW in the DGC
 * test: dense steps and sparse ones in one step. */
static const size_t pcount[] = {20000, 3000, 50000, 3000, 7000, 3000};
#define PT 6
#define PSTEPS 12
#define PMAX 50000

typedef enum { STABLE, ALTERNATE, FRESH, SCRATCH, MIXED } pattern_t;
static const char *const pattern_names[] = {"stable", "alternating", "fresh",
                                            "scratch", "mixed"};

typedef struct {
    pattern_t p;
    float *stable[PT], *alt[2][PT], *scratch, *fresh;
} buffers_t;

/* The buffer tensor t goes through at step s. */
static float *buffer(buffers_t *b, int s, int t)
{
    pattern_t p = b->p == MIXED ? (pattern_t)(rank % 4) : b->p;
    switch (p) {
    case STABLE:
        return b->stable[t];
    case ALTERNATE:
        return b->alt[s % 2][t];
    case FRESH:
        free(b->fresh); /* the allocator may hand the same address back */
        b->fresh = malloc(pcount[t] * 4);
        return b->fresh;
    default:
        return b->scratch;
    }
}

static void buffers_init(buffers_t *b, pattern_t p)
{
    memset(b, 0, sizeof(*b));
    b->p = p;
    for (int t = 0; t < PT; t++) {
        b->stable[t] = malloc(pcount[t] * 4);
        b->alt[0][t] = malloc(pcount[t] * 4);
        b->alt[1][t] = malloc(pcount[t] * 4);
    }
    b->scratch = malloc(PMAX * 4);
}

static void buffers_free(buffers_t *b)
{
    for (int t = 0; t < PT; t++)
        free(b->stable[t]), free(b->alt[0][t]), free(b->alt[1][t]);
    free(b->scratch), free(b->fresh);
}

static int unique_size(int t)
{
    int k = 0;
    for (int u = 0; u < PT; u++)
        k += pcount[u] == pcount[t];
    return k == 1;
}

/* Runs the step PSTEPS times on a new communicator with pattern p; results
 * of call (s, t) at res + (s * PT + t) * PMAX. */
static void run_pattern(pattern_t p, float *res)
{
    MPI_Comm comm;
    buffers_t b;
    float *g = malloc(PMAX * 4);
    MPI_Comm_dup(MPI_COMM_WORLD, &comm);
    buffers_init(&b, p);
    for (int s = 0; s < PSTEPS; s++)
        for (int t = 0; t < PT; t++) {
            const size_t n = pcount[t];
            float *buf = buffer(&b, s, t), *out = res + ((size_t)s * PT + t) * PMAX;
            gradient(g, n, s, t, rank);
            if (p == STABLE) { /* out of place, the input untouched */
                memcpy(buf, g, n * 4);
                MPI_Allreduce(buf, out, (int)n, MPI_FLOAT, MPI_SUM, comm);
            } else { /* in place, as gradients usually are */
                memcpy(buf, g, n * 4);
                MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, comm);
                memcpy(out, buf, n * 4);
            }
            CHECK(cp_test_identical(out, n * 4, MPI_COMM_WORLD),
                  "%s step %d tensor %d: ranks differ", pattern_names[p], s, t);
        }
    buffers_free(&b);
    free(g);
    MPI_Comm_free(&comm);
}

static void patterns_mode(void)
{
    const size_t per = (size_t)PSTEPS * PT * PMAX;
    float *stable = malloc(per * 4), *other = malloc(per * 4), *api = malloc(PMAX * 4);
    float *g = malloc(PMAX * 4);
    commpress_stats_t s0 = stats();
    run_pattern(STABLE, stable);
    commpress_stats_t s1 = stats();
    CHECK(s1.calls_compressed - s0.calls_compressed == PSTEPS * PT &&
          s1.calls_fallback == s0.calls_fallback,
          "stable: %llu compressed, %llu fallbacks",
          s1.calls_compressed - s0.calls_compressed, s1.calls_fallback - s0.calls_fallback);

    /* Stable buffers name each tensor as the API's ids do. */
    commpress_ctx_t *ctx = api_context();
    size_t api_same = 0, api_calls = 0;
    for (int s = 0; s < PSTEPS && ctx; s++)
        for (int t = 0; t < PT; t++) {
            gradient(g, pcount[t], s, t, rank);
            L.allreduce(ctx, g, api, pcount[t], (uint64_t)t);
            if (!unique_size(t))
                continue;
            api_calls++;
            api_same += memcmp(api, stable + ((size_t)s * PT + t) * PMAX,
                               pcount[t] * 4) == 0;
        }
    CHECK(api_same == api_calls, "stable buffers: %zu of %zu calls of tensors "
          "of their own size differ from the API with one id per tensor",
          api_calls - api_same, api_calls);
    if (ctx)
        L.destroy(ctx);

    for (pattern_t p = ALTERNATE; p <= MIXED; p++) {
        if (p == MIXED && nranks < 2)
            continue;
        run_pattern(p, other);
        if (p == ALTERNATE)
            continue; /* a longer step: other states, the same bits on all ranks */
        size_t differ = 0, first = 0;
        for (int s = PSTEPS - 1; s >= 0; s--)
            for (int t = PT - 1; t >= 0; t--) {
                size_t o = ((size_t)s * PT + t) * PMAX;
                if (memcmp(stable + o, other + o, pcount[t] * 4) != 0)
                    differ++, first = (size_t)s * PT + t;
            }
        CHECK(differ == 0, "%s buffers: %zu calls differ from the stable run, "
              "first step %zu tensor %zu", pattern_names[p], differ, first / PT,
              first % PT);
    }
    if (rank == 0)
        printf("patterns (%s): stable buffers equal the API; fresh, scratch and "
               "mixed equal the stable run bit for bit; all identical across "
               "ranks\n", env("COMMPRESS_COMPRESSOR", "none"));
    free(stable), free(other), free(api), free(g);
}

/* ---- changes ---- */

/* Tensors 0, 1, 2; then 3 appears between 1 and 2; then a one-off 4. The
 * shim, with stable buffers, against the API with one id per tensor. */
static void changes_mode(void)
{
    const size_t count[] = {20000, 3000, 50000, 7000, 9000};
    const int seq1[] = {0, 1, 2}, seq2[] = {0, 1, 3, 2};
    float *buf[5], *a = malloc(50000 * 4), *r = malloc(50000 * 4);
    commpress_ctx_t *ctx = api_context();
    int calls = 0, same = 0, step = 0;
    MPI_Comm comm;
    MPI_Comm_dup(MPI_COMM_WORLD, &comm);
    for (int t = 0; t < 5; t++)
        buf[t] = malloc(count[t] * 4);
    for (int phase = 0; phase < 3 && ctx; phase++) {
        const int *seq = phase == 0 ? seq1 : seq2;
        const int len = phase == 0 ? 3 : 4;
        for (int s = 0; s < 6; s++, step++) {
            for (int i = 0; i < len; i++) {
                const int t = seq[i];
                gradient(buf[t], count[t], step, t, rank);
                L.allreduce(ctx, buf[t], a, count[t], (uint64_t)t);
                MPI_Allreduce(buf[t], r, (int)count[t], MPI_FLOAT, MPI_SUM, comm);
                calls++;
                same += memcmp(a, r, count[t] * 4) == 0;
                CHECK(cp_test_identical(r, count[t] * 4, MPI_COMM_WORLD),
                      "changes step %d tensor %d: ranks differ", step, t);
            }
            if (phase == 1 && s == 2) { /* one extra call between two steps */
                gradient(buf[4], count[4], step, 4, rank);
                L.allreduce(ctx, buf[4], a, count[4], 4);
                MPI_Allreduce(buf[4], r, (int)count[4], MPI_FLOAT, MPI_SUM, comm);
                calls++;
                same += memcmp(a, r, count[4] * 4) == 0;
            }
        }
    }
    CHECK(same == calls, "changes: %d of %d calls differ from the API with one "
          "id per tensor", calls - same, calls);
    if (rank == 0)
        printf("changes: %d calls, a tensor added and an extra call: every "
               "result equals the API's\n", calls);
    for (int t = 0; t < 5; t++)
        free(buf[t]);
    free(a), free(r);
    if (ctx)
        L.destroy(ctx);
    MPI_Comm_free(&comm);
}

/* ---- converge ---- */

/* Tensors of one size (and one of another) with fixed inputs: the running
 * mean of each result approaches its own exact sum, error ~ 1/T, only if
 * each keeps its own error feedback. */
static void converge(const char *what, int scratch, int equal)
{
    const size_t size[4] = {3000, 3000, equal ? 3000 : 5000, 3000};
    const int T = 1500;
    float *g[4], *buf[4], *r = malloc(5000 * 4), *tmp = malloc(5000 * 4);
    double *acc[4], *exact[4];
    MPI_Comm comm;
    MPI_Comm_dup(MPI_COMM_WORLD, &comm);
    for (int t = 0; t < 4; t++) {
        g[t] = malloc(size[t] * 4), buf[t] = malloc(5000 * 4);
        acc[t] = calloc(size[t], 8), exact[t] = malloc(size[t] * 8);
        gradient(g[t], size[t], 999, t, rank);
        for (size_t i = 0; i < size[t]; i++)
            exact[t][i] = g[t][i];
        PMPI_Allreduce(MPI_IN_PLACE, exact[t], (int)size[t], MPI_DOUBLE, MPI_SUM,
                       MPI_COMM_WORLD);
    }
    for (int s = 0; s < T; s++)
        for (int t = 0; t < 4; t++) {
            float *b = scratch ? buf[0] : buf[t];
            memcpy(b, g[t], size[t] * 4);
            MPI_Allreduce(b, r, (int)size[t], MPI_FLOAT, MPI_SUM, comm);
            for (size_t i = 0; i < size[t]; i++)
                acc[t][i] += r[i];
        }
    for (int t = 0; t < 4; t++) {
        double num = 0, den = 0;
        for (size_t i = 0; i < size[t]; i++) {
            double d = acc[t][i] / T - exact[t][i];
            num += d * d, den += exact[t][i] * exact[t][i];
        }
        double e = sqrt(num / den);
        if (rank == 0)
            printf("converge %s: tensor %d mean error %.3g after %d steps\n",
                   what, t, e, T);
        CHECK(e <= 0.02, "converge %s: tensor %d mean error %g", what, t, e);
        free(g[t]), free(buf[t]), free(acc[t]), free(exact[t]);
    }
    free(r), free(tmp);
    MPI_Comm_free(&comm);
}

static void converge_mode(void)
{
    /* Sizes that repeat, one scratch buffer: the sizes give the step. */
    converge("scratch, sizes 3000 3000 5000 3000", 1, 0);
    /* All four of one size: only stable buffers tell them apart (on one
     * rank is enough); COMMPRESS_STATE_KEY=order with COMMPRESS_STEP_CALLS
     * for a scratch buffer (the order test). */
    if (strcmp(env("COMMPRESS_STATE_KEY", "auto"), "order") == 0)
        converge("all 3000, scratch, order keying", 1, 1);
    else
        converge("all 3000, stable buffers", 0, 1);
}

/* ---- faults ---- */

/* COMMPRESS_FAULT=kind@rank:call, parsed as the library does. */
static int fault_call(char *kind, size_t klen)
{
    const char *f = getenv("COMMPRESS_FAULT");
    const char *at = f ? strchr(f, '@') : NULL, *colon = at ? strchr(at, ':') : NULL;
    if (!colon || (size_t)(at - f) >= klen)
        return -1;
    memcpy(kind, f, (size_t)(at - f));
    kind[at - f] = '\0';
    return atoi(colon + 1);
}

/* On a new communicator: one call of another size (it creates the
 * communicator's state), then 8 steps of one tensor; skip (if >= 0) is a
 * step left out. Results per step in res. */
static void fault_run(float *res, size_t n, int skip, MPI_Comm comm)
{
    float *g = malloc(n * 4);
    gradient(g, 1000, 99, 1, rank);
    MPI_Allreduce(MPI_IN_PLACE, g, 1000, MPI_FLOAT, MPI_SUM, comm);
    for (int s = 0; s < 8; s++) {
        if (s == skip)
            continue;
        gradient(g, n, s, 0, rank);
        MPI_Allreduce(g, res + (size_t)s * n, (int)n, MPI_FLOAT, MPI_SUM, comm);
    }
    free(g);
}

static void faults_mode(void)
{
    const size_t n = 40000;
    char kind[32] = "";
    const int at = fault_call(kind, sizeof(kind));
    float *ref = malloc(8 * n * 4), *run = malloc(8 * n * 4), *exact = malloc(n * 4);
    float *g = malloc(n * 4);
    MPI_Comm c1, c2;

    /* The fault comes at compressed call `at` of the process (counted over
     * all communicators): the reference run's 8 calls (0..7) come first,
     * then the faulty run's: its first call (8) creates the communicator's
     * state, step s is call 9 + s. */
    const int bad = at - 9, at_creation = bad == -1;
    CHECK(bad >= -1 && bad < 8, "COMMPRESS_FAULT call %d outside the faulty run", at);
    MPI_Comm_dup(MPI_COMM_WORLD, &c1);
    fault_run(ref, n, at_creation ? 7 : bad, c1); /* 8 calls either way */
    commpress_stats_t s0 = stats();
    MPI_Comm_dup(MPI_COMM_WORLD, &c2);
    fault_run(run, n, -1, c2);
    commpress_stats_t s1 = stats();
    for (int s = 0; s < 8; s++)
        CHECK(cp_test_identical(run + (size_t)s * n, n * 4, MPI_COMM_WORLD),
              "%s: step %d: ranks differ", kind, s);
    if (at_creation) {
        /* No state for the communicator on one rank: none compresses on
         * it, every call equals PMPI's. */
        CHECK(s1.calls_compressed == s0.calls_compressed &&
              s1.calls_passthrough == s0.calls_passthrough + 9,
              "%s at creation: %llu compressed, %llu passed through", kind,
              s1.calls_compressed - s0.calls_compressed,
              s1.calls_passthrough - s0.calls_passthrough);
        for (int s = 0; s < 8; s++) {
            gradient(g, n, s, 0, rank);
            PMPI_Allreduce(g, exact, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            CHECK(memcmp(run + (size_t)s * n, exact, n * 4) == 0,
                  "%s at creation: step %d not PMPI's sum", kind, s);
        }
    } else {
        gradient(g, n, bad, 0, rank);
        PMPI_Allreduce(g, exact, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        CHECK(memcmp(run + (size_t)bad * n, exact, n * 4) == 0,
              "%s: the failed step is not the exact sum", kind);
        CHECK(s1.calls_fallback == s0.calls_fallback + 1 &&
              s1.calls_compressed == s0.calls_compressed + 9,
              "%s: %llu calls sent exact after a failure (expected 1)", kind,
              s1.calls_fallback - s0.calls_fallback);
        if (strcmp(kind, "diverge") == 0 && bad < 7) {
            /* A disagreement resets the tensor on every rank: the next
             * step is a first step, as on a new communicator. */
            MPI_Comm c3;
            float *first = malloc(n * 4);
            MPI_Comm_dup(MPI_COMM_WORLD, &c3);
            gradient(g, n, bad + 1, 0, rank);
            MPI_Allreduce(g, first, (int)n, MPI_FLOAT, MPI_SUM, c3);
            CHECK(memcmp(run + (size_t)(bad + 1) * n, first, n * 4) == 0,
                  "diverge: the step after it is not a first step");
            MPI_Comm_free(&c3);
            free(first);
        } else {
            /* State untouched: the steps after it equal a run without it. */
            for (int s = bad + 1; s < 8; s++)
                CHECK(memcmp(run + (size_t)s * n, ref + (size_t)s * n, n * 4) == 0,
                      "%s: step %d after the failure differs from a run without it",
                      kind, s);
        }
    }
    if (rank == 0)
        printf("fault %s at %s: every rank took the same path\n", kind,
               at_creation ? "the communicator's creation" : "a step");
    MPI_Comm_free(&c1), MPI_Comm_free(&c2);
    free(ref), free(run), free(exact), free(g);
}

/* A finite input that quant cannot encode on one rank (a bucket spanning
 * most of the float range), and a server sum that it cannot: both sent
 * exact on every rank. */
static void range_failures(void)
{
    const size_t n = 40000;
    float *x = malloc(n * 4), *r = malloc(n * 4), *p = malloc(n * 4);
    for (int k = 0; k < 2; k++) {
        gradient(x, n, 77 + k, 0, rank);
        if (k == 0 && rank == nranks - 1)
            x[5] = -3e38f, x[6] = 3e38f; /* this rank's own range */
        if (k == 1 && rank < 2) /* only the server's sum spans it */
            x[5 + rank] = rank == 0 ? 3e38f : -3e38f;
        commpress_stats_t s0 = stats();
        MPI_Allreduce(x, r, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        commpress_stats_t s1 = stats();
        PMPI_Allreduce(x, p, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        CHECK(memcmp(r, p, n * 4) == 0 && s1.calls_fallback == s0.calls_fallback + 1,
              "quant range %s: not sent exact (%llu fallbacks)",
              k ? "of a sum" : "of one rank", s1.calls_fallback - s0.calls_fallback);
    }
    free(x), free(r), free(p);
}

/* ---- overflow ---- */

/* Sums beyond fp16's (and bf16's) range: every rank holds a value whose
 * sum over the ranks exceeds the format's largest; the old cast clipped
 * the server's sum to 65504. Now: within the format's relative precision
 * of the exact sum, and never above it. */
static void overflow_mode(void)
{
    const int bf = strcmp(env("COMMPRESS_COMPRESSOR", ""), "bf16") == 0;
    const size_t n = 30000;
    float *x = malloc(n * 4), *r = malloc(n * 4);
    double *e = malloc(n * 8);
    /* fp16: 40000 on every rank; bf16: just under FLT_MAX in all. */
    const float big = bf ? 3.395e38f / (float)nranks : 40000.0f;
    const double rel = bf ? 0x1p-7 : 0x1p-10;
    gradient(x, n, 5, 0, rank);
    for (size_t i = 0; i < n; i += 1000)
        x[i] = big * (i % 2000 ? -1.0f : 1.0f);
    for (size_t i = 0; i < n; i++)
        e[i] = x[i];
    PMPI_Allreduce(MPI_IN_PLACE, e, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(x, r, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i += 1000) {
        double d = fabs((double)r[i] - e[i]);
        if (!(isfinite(r[i]) && d <= rel * fabs(e[i]) && fabs(r[i]) <= fabs(e[i])))
            bad++, first = i;
    }
    CHECK(bad == 0, "%s: %zu sums beyond the range wrong, e.g. %g for %g",
          bf ? "bf16" : "fp16", bad, r[first], e[first]);
    CHECK(cp_test_identical(r, n * 4, MPI_COMM_WORLD), "overflow: ranks differ");
    if (rank == 0)
        printf("%s: sums of %g over %d ranks kept (%g), not clipped\n",
               bf ? "bf16" : "fp16", big, nranks, r[0]);
    free(x), free(r), free(e);
}

/* ---- adapt ---- */

static void adapt_mode(void)
{
    enum { T = 6, STEPS = 40 };
    static const size_t count[T] = {30000, 8000, 50000, 12000, 20000, 4000};
    float *g = malloc(50000 * 4), *r = malloc(50000 * 4);
    commpress_stats_t s0 = stats();
    for (int s = 0; s < STEPS; s++)
        for (int t = 0; t < T; t++) {
            const size_t n = count[t];
            gradient(g, n, s, t, rank);
            for (size_t i = 0; i < n; i++) {
                g[i] *= (float)(1 + 3 * t);          /* scales differ */
                if (t % 3 == 1 && (i % 16) != 0)     /* a sparse layer */
                    g[i] *= 0.01f;
            }
            MPI_Allreduce(g, r, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            CHECK(cp_test_identical(r, n * 4, MPI_COMM_WORLD),
                  "adapt step %d tensor %d: ranks differ", s, t);
        }
    commpress_stats_t s1 = stats();
    const unsigned long long sent = s1.bytes_sent - s0.bytes_sent,
                             uniform = s1.bytes_sent_uniform - s0.bytes_sent_uniform;
    CHECK(s1.calls_fallback == s0.calls_fallback, "adapt: %llu calls sent exact",
          s1.calls_fallback - s0.calls_fallback);
    CHECK(s1.adapt_plans - s0.adapt_plans >= 3, "adapt: %llu plans",
          s1.adapt_plans - s0.adapt_plans);
    /* Fewer bytes, except for sign, whose only other candidates (fp16,
     * none) are larger: never more. */
    const char *comp = env("COMMPRESS_COMPRESSOR", "none");
    if (strcmp(comp, "sign") == 0)
        CHECK(sent <= uniform, "adapt: %llu bytes sent, uniform %llu", sent, uniform);
    else
        CHECK(sent < uniform, "adapt: %llu bytes sent, uniform %llu", sent, uniform);
    if (rank == 0)
        printf("adapt: %llu plans, %llu bytes sent, uniform %llu (%.2fx)\n",
               s1.adapt_plans - s0.adapt_plans, sent, uniform,
               sent ? (double)uniform / (double)sent : 0.0);
    free(g), free(r);
}

/* ---- layout ---- */

static void scale_layer(float *g, size_t n, int t)
{
    for (size_t i = 0; i < n; i++) {
        g[i] *= (float)(1 + 3 * t);      /* scales differ */
        if (t % 3 == 1 && (i % 16) != 0) /* a sparse layer */
            g[i] *= 0.01f;
    }
}

/* Layouts that do not describe the buffer: -1, nothing registered. */
static void layout_refusals(float *buf, size_t n)
{
    const size_t short_[] = {0, 100, n - 1}, unordered[] = {0, 500, 400, n},
                 from1[] = {1, 100, n};
    CHECK(L.register_layout(buf, n, 2, short_) == COMMPRESS_ERR_INVALID,
          "a layout ending before the count was taken");
    CHECK(L.register_layout(buf, n, 3, unordered) == COMMPRESS_ERR_INVALID,
          "decreasing offsets were taken");
    CHECK(L.register_layout(buf, n, 2, from1) == COMMPRESS_ERR_INVALID,
          "a layout not starting at 0 was taken");
    CHECK(L.register_layout(buf, n, 0, short_) == COMMPRESS_ERR_INVALID,
          "0 layers were taken");
    CHECK(L.register_layout(NULL, n, 2, short_) == COMMPRESS_ERR_INVALID,
          "a NULL buffer was taken");
    CHECK(L.unregister_layout(buf) == COMMPRESS_OK, "unregister");
}

/* Buffers whose ranks do not share a layout stay one layer: against a
 * communicator where nobody registers one, bit for bit. */
static void layout_disagreements(void)
{
    enum { T = 3, STEPS = 6 };
    static const size_t count[T] = {6000, 2000, 9000};
    const size_t n = count[0] + count[1] + count[2];
    size_t off[T + 1] = {0, count[0], count[0] + count[1], n};
    size_t other[T + 1] = {0, count[0] + 500, count[0] + count[1], n};
    MPI_Comm cases[3], ref;
    float *buf[3], *r = malloc(n * 4);
    for (int c = 0; c < 3; c++) {
        MPI_Comm_dup(MPI_COMM_WORLD, &cases[c]);
        buf[c] = malloc(n * 4);
    }
    MPI_Comm_dup(MPI_COMM_WORLD, &ref);
    /* Case 0: rank 0 alone; case 1: rank 1 another layout than the
     * others; case 2: every rank, but after the buffer's first call. */
    if (rank == 0)
        CHECK(L.register_layout(buf[0], n, T, off) == 0, "register");
    CHECK(L.register_layout(buf[1], n, T, rank == 1 ? other : off) == 0, "register");
    for (int s = 0; s < STEPS; s++) {
        if (s == 1)
            CHECK(L.register_layout(buf[2], n, T, off) == 0, "register");
        gradient(r, n, s, 99, rank);
        for (int c = 0; c < 3; c++)
            memcpy(buf[c], r, n * 4);
        MPI_Allreduce(MPI_IN_PLACE, r, (int)n, MPI_FLOAT, MPI_SUM, ref);
        for (int c = 0; c < 3; c++) {
            MPI_Allreduce(MPI_IN_PLACE, buf[c], (int)n, MPI_FLOAT, MPI_SUM, cases[c]);
            CHECK(memcmp(buf[c], r, n * 4) == 0,
                  "layout case %d step %d: not the one-layer result", c, s);
            CHECK(cp_test_identical(buf[c], n * 4, MPI_COMM_WORLD),
                  "layout case %d step %d: ranks differ", c, s);
        }
    }
    for (int c = 0; c < 3; c++) {
        L.unregister_layout(buf[c]);
        MPI_Comm_free(&cases[c]);
        free(buf[c]);
    }
    MPI_Comm_free(&ref);
    free(r);
    if (rank == 0)
        printf("layout: one layer where the ranks' layouts differ\n");
}

static void layout_mode(void)
{
    enum { T = 6, STEPS = 40 };
    static const size_t count[T] = {30000, 8000, 50000, 12000, 20000, 4000};
    size_t off[T + 1] = {0};
    for (int t = 0; t < T; t++)
        off[t + 1] = off[t] + count[t];
    const size_t n = off[T];
    const int adapting = strcmp(env("COMMPRESS_ADAPT", "none"), "lgreco") == 0;
    /* Under COMMPRESS_MAX_STATE_BYTES, another tensor on the fused
     * buffer's communicator takes turns with it, so that each drops the
     * other's state every step: the fused tensor and its layout are made
     * and agreed again every step. */
    const int bounded = getenv("COMMPRESS_MAX_STATE_BYTES") != NULL;
    const int compare_shim = !adapting && !bounded;
    float *other = malloc(60000 * 4);
    float *fused = malloc(n * 4), *viaapi = malloc(n * 4), *sep = malloc(n * 4),
          *g = malloc(n * 4);
    MPI_Comm fc;
    MPI_Comm_dup(MPI_COMM_WORLD, &fc);
    commpress_ctx_t *layers = api_context(), *whole = api_context();
    layout_refusals(fused, n);
    CHECK(L.register_layout(fused, n, T, off) == 0, "register_layout");
    CHECK(L.ctx_set_layout(whole, 0, n, T, off) == 0, "ctx_set_layout");
    const commpress_stats_t s0 = stats();
    for (int s = 0; s < STEPS; s++) {
        for (int t = 0; t < T; t++) {
            gradient(g + off[t], count[t], s, t, rank);
            scale_layer(g + off[t], count[t], t);
        }
        for (int t = 0; t < T; t++)
            CHECK(L.allreduce(layers, g + off[t], sep + off[t], count[t], (uint64_t)t) == 0,
                  "api allreduce");
        CHECK(L.allreduce(whole, g, viaapi, n, 0) == 0, "api allreduce");
        memcpy(fused, g, n * 4);
        MPI_Allreduce(MPI_IN_PLACE, fused, (int)n, MPI_FLOAT, MPI_SUM, fc);
        if (bounded) {
            gradient(other, 60000, s, 7, rank);
            MPI_Allreduce(MPI_IN_PLACE, other, 60000, MPI_FLOAT, MPI_SUM, fc);
            CHECK(cp_test_identical(other, 60000 * 4, MPI_COMM_WORLD),
                  "layout step %d: ranks differ (other tensor)", s);
        }
        CHECK(cp_test_identical(fused, n * 4, MPI_COMM_WORLD),
              "layout step %d: ranks differ", s);
        for (int t = 0; t < T; t++) {
            /* The shim learns the step a step later than the API knows
             * it (the detector needs a repeat), so its plans come a step
             * later; and a bound drops its state: bit for bit the same
             * without either. */
            CHECK(!compare_shim || memcmp(fused + off[t], sep + off[t], count[t] * 4) == 0,
                  "layout step %d layer %d: the fused buffer's segment differs "
                  "from the separate call", s, t);
            CHECK(memcmp(viaapi + off[t], sep + off[t], count[t] * 4) == 0,
                  "layout step %d layer %d: the API's fused segment differs "
                  "from the separate call", s, t);
        }
    }
    const commpress_stats_t s1 = stats();
    commpress_stats_t a, b;
    L.ctx_stats(layers, &a);
    L.ctx_stats(whole, &b);
    const unsigned long long sent = s1.bytes_sent - s0.bytes_sent,
                             uniform = s1.bytes_sent_uniform - s0.bytes_sent_uniform;
    CHECK((!compare_shim || (sent == a.bytes_sent && uniform == a.bytes_sent_uniform)) &&
          b.bytes_sent == a.bytes_sent && b.bytes_sent_uniform == a.bytes_sent_uniform,
          "layout: bytes fused %llu (uniform %llu), API fused %llu (uniform %llu), "
          "separate %llu (uniform %llu)", sent, uniform, b.bytes_sent,
          b.bytes_sent_uniform, a.bytes_sent, a.bytes_sent_uniform);
    CHECK(s1.calls_fallback == s0.calls_fallback && a.calls_fallback == 0 &&
          b.calls_fallback == 0, "layout: calls sent exact");
    CHECK(s1.calls_compressed - s0.calls_compressed == (bounded ? 2 : 1) * STEPS,
          "layout: %llu calls",
          s1.calls_compressed - s0.calls_compressed);
    const unsigned long long dropped = s1.states_dropped - s0.states_dropped;
    if (adapting) {
        CHECK(s1.adapt_plans - s0.adapt_plans >= 3 && b.adapt_plans == a.adapt_plans &&
              a.adapt_plans >= 3,
              "layout: %llu plans (API %llu and %llu)", s1.adapt_plans - s0.adapt_plans,
              a.adapt_plans, b.adapt_plans);
        /* Fewer bytes than the uniform setting, unless the bound drops
         * the states (and their settings) every step. */
        if (!bounded)
            CHECK(sent < uniform, "layout: %llu bytes sent, uniform %llu", sent, uniform);
    }
    if (bounded)
        CHECK(dropped >= STEPS, "layout: %llu states dropped under the bound", dropped);
    if (rank == 0)
        printf("layout: %d steps, API fused = API separate bit for bit%s; shim: "
               "%llu bytes sent (uniform %llu), %llu plans, %llu states dropped\n",
               STEPS, compare_shim ? ", = the shim's fused buffer" : "", sent,
               uniform, s1.adapt_plans - s0.adapt_plans, dropped);
    L.unregister_layout(fused);
    L.destroy(layers);
    L.destroy(whole);
    free(fused), free(viaapi), free(sep), free(g), free(other);
    MPI_Comm_free(&fc);
    layout_disagreements();
}

/* COMMPRESS_FAULT=alloc@R:0 with a layout on an API context: rank R
 * cannot make the fused tensor's segments at its first call (the second
 * round): every rank sends that call exact (PMPI's sum, bit for bit), and
 * the next call makes the segments and compresses. */
static void layout_fault_mode(void)
{
    const size_t n = 29000, off[4] = {0, 6000, 26000, n};
    float *g = malloc(n * 4), *r = malloc(n * 4), *exact = malloc(n * 4);
    commpress_ctx_t *ctx = api_context();
    CHECK(L.ctx_set_layout(ctx, 0, n, 3, off) == 0, "ctx_set_layout");
    for (int s = 0; s < 6; s++) {
        gradient(g, n, s, 3, rank);
        CHECK(L.allreduce(ctx, g, r, n, 0) == 0, "allreduce");
        CHECK(cp_test_identical(r, n * 4, MPI_COMM_WORLD), "layout fault step %d: "
              "ranks differ", s);
        if (s == 0) {
            PMPI_Allreduce(g, exact, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            CHECK(memcmp(r, exact, n * 4) == 0, "layout fault: step 0 not PMPI's sum");
        }
    }
    commpress_stats_t st;
    L.ctx_stats(ctx, &st);
    CHECK(st.calls_compressed == 6 && st.calls_fallback == 1,
          "layout fault: %llu calls, %llu sent exact", st.calls_compressed,
          st.calls_fallback);
    if (rank == 0)
        printf("layout fault: the segments' allocation failed on one rank: "
               "sent exact on every rank, then compressed\n");
    L.destroy(ctx);
    free(g), free(r), free(exact);
}

/* ---- bound ---- */

static size_t resident_bytes(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return (size_t)rss * 4096;
}

static void bound_mode(int argc, char **argv)
{
    const size_t limit = strtoull(env("COMMPRESS_MAX_STATE_BYTES", "0"), NULL, 10);
    CHECK(limit > 0, "set COMMPRESS_MAX_STATE_BYTES for this mode");
    if (argc > 2)
        goto fresh;
    /* 1. A step of 8 tensors of distinct sizes whose states (with the
     * workspace) exceed the bound; on rank 0 an idle communicator's state
     * takes a share of it, so rank 0 alone must drop more. */
    enum { T = 8, STEPS = 6 };
    const size_t base = 200000;
    float *g = malloc((base + T * 1000) * 4), *r = malloc((base + T * 1000) * 4);
    MPI_Comm self = MPI_COMM_NULL, comm;
    MPI_Comm_dup(MPI_COMM_WORLD, &comm);
    if (rank == 0) { /* (COMMPRESS_MIN_RANKS=1: one rank compresses too) */
        MPI_Comm_dup(MPI_COMM_SELF, &self);
        gradient(g, base, 99, 0, rank);
        MPI_Allreduce(MPI_IN_PLACE, g, (int)base, MPI_FLOAT, MPI_SUM, self);
    }
    commpress_stats_t s0 = stats();
    for (int s = 0; s < STEPS; s++)
        for (int t = 0; t < T; t++) {
            size_t n = base + (size_t)t * 1000;
            gradient(g, n, s, t, rank);
            MPI_Allreduce(g, r, (int)n, MPI_FLOAT, MPI_SUM, comm);
            CHECK(cp_test_identical(r, n * 4, MPI_COMM_WORLD),
                  "bound step %d tensor %d: ranks differ", s, t);
        }
    commpress_stats_t s1 = stats();
    CHECK(s1.calls_compressed - s0.calls_compressed == (unsigned long long)T * STEPS,
          "bound: %llu calls compressed", s1.calls_compressed - s0.calls_compressed);
    CHECK(s1.calls_fallback == s0.calls_fallback,
          "bound: %llu calls sent exact (the ranks disagreed)",
          s1.calls_fallback - s0.calls_fallback);
    CHECK(s1.state_bytes_peak <= limit, "bound: state peak %llu > bound %zu",
          (unsigned long long)s1.state_bytes_peak, limit);
    /* States were dropped, as many on every rank (rank 0 alone is over
     * the bound with fewer: the largest count is agreed). */
    const unsigned long long dropped = s1.states_dropped - s0.states_dropped;
    CHECK(dropped > 0, "bound: no state dropped");
    CHECK(cp_test_identical(&dropped, sizeof(dropped), MPI_COMM_WORLD),
          "bound: ranks dropped different numbers of states (%llu)", dropped);
    MPI_Comm_free(&comm);
    if (self != MPI_COMM_NULL)
        MPI_Comm_free(&self);
    free(g), free(r);

    /* 2. A fresh buffer every step: flat memory. */
fresh:;
    const size_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 400000;
    const int steps = argc > 3 ? atoi(argv[3]) : 200;
    size_t rss_mid = 0, rss_max = 0;
    double t0 = MPI_Wtime();
    for (int s = 0; s < steps; s++) {
        float *b = malloc(n * 4);
        CHECK(b != NULL, "out of memory");
        for (size_t i = 0; i < n; i++)
            b[i] = (float)((i * 2654435761u + (size_t)s * 97 + (size_t)rank) % 1000) * 1e-3f;
        MPI_Allreduce(MPI_IN_PLACE, b, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        free(b);
        size_t rss = resident_bytes();
        if (s == steps / 10)
            rss_mid = rss;
        if (s >= steps / 10 && rss > rss_max)
            rss_max = rss;
    }
    commpress_stats_t s2 = stats();
    CHECK(s2.state_bytes_peak <= limit, "fresh buffers: state peak %llu > bound %zu",
          (unsigned long long)s2.state_bytes_peak, limit);
    /* Flat: after the first tenth, the resident set grows by less than
     * one buffer's state. */
    CHECK(rss_max - rss_mid < n * 4, "fresh buffers: resident %zu -> %zu bytes",
          rss_mid, rss_max);
    if (rank == 0)
        printf("bound: %d fresh buffers of %zu floats in %.1f s: state peak "
               "%.1f MB (bound %.1f MB), resident %.1f -> %.1f MB\n",
               steps, n, MPI_Wtime() - t0, s2.state_bytes_peak / 1e6,
               limit / 1e6, rss_mid / 1e6, rss_max / 1e6);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    cp_test_rank = rank;
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    load_library();
    const char *mode = argc > 1 ? argv[1] : "patterns";
    if (strcmp(mode, "patterns") == 0)
        patterns_mode();
    else if (strcmp(mode, "changes") == 0)
        changes_mode();
    else if (strcmp(mode, "converge") == 0)
        converge_mode();
    else if (strcmp(mode, "faults") == 0)
        faults_mode();
    else if (strcmp(mode, "range") == 0)
        range_failures();
    else if (strcmp(mode, "overflow") == 0)
        overflow_mode();
    else if (strcmp(mode, "adapt") == 0)
        adapt_mode();
    else if (strcmp(mode, "layout") == 0)
        layout_mode();
    else if (strcmp(mode, "layout_fault") == 0)
        layout_fault_mode();
    else if (strcmp(mode, "bound") == 0)
        bound_mode(argc, argv);
    else
        CHECK(0, "unknown mode %s", mode);
    return cp_test_finish();
}
