/* Integration test of the preloaded shim, run by ctest under mpirun with
 * LD_PRELOAD=libcommpress.so and COMMPRESS_* set per test. Not linked with
 * commpress: it sees the shim only through MPI_Allreduce, and its
 * statistics through dlsym, as any application would.
 *
 *   test_allreduce compress      compressed path (run with MIN_BYTES=0)
 *   test_allreduce passthrough   what must go to PMPI unchanged
 *   test_allreduce order         per-tensor state keyed by call order
 * Ends with "N passed, M failed" on rank 0; exit status 1 on any failure. */
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
#include "common/splitmix.h"
#include "common/mpi_check.h"

static int rank, nranks;

/* The shim keys error-feedback state by buffer address (DESIGN.md item 7):
 * a buffer freed and reallocated at the same address would inherit the
 * previous tensor's state. Buffers handed to compressed calls therefore come
 * from here and live until exit, as a model's gradient buffers do. */
static void *kept[256];
static int nkept;
static float *fresh(size_t n)
{
    float *p = malloc(n * sizeof(float));
    if (p == NULL || nkept == 256)
        abort();
    kept[nkept++] = p;
    return p;
}
static void (*stats_fn)(commpress_stats_t *);


static commpress_stats_t stats(void)
{
    commpress_stats_t s;
    memset(&s, 0, sizeof(s));
    stats_fn(&s);
    return s;
}


/* Normal values with a heavy tail, different on every rank; fill_as makes
 * rank r's values anywhere (for replicas). */
static void fill_as(float *x, size_t n, uint64_t seed, int r)
{
    uint64_t s = seed * 1000003 + (uint64_t)r * 7919;
    for (size_t i = 0; i < n; i++) {
        double u1 = ((double)(cp_test_splitmix(&s) >> 11) + 0.5) / 9007199254740992.0;
        double u2 = (double)(cp_test_splitmix(&s) >> 11) / 9007199254740992.0;
        double z = sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
        if ((cp_test_splitmix(&s) & 127) == 0)
            z *= 30;
        x[i] = (float)(z * 1e-3);
    }
}
static void fill(float *x, size_t n, uint64_t seed) { fill_as(x, n, seed, rank); }

/* Exact sum and sum of magnitudes, in double. */
static void exact(const float *x, size_t n, double *sum, double *abs_sum)
{
    for (size_t i = 0; i < n; i++) {
        sum[i] = x[i];
        abs_sum[i] = fabs(x[i]);
    }
    PMPI_Allreduce(MPI_IN_PLACE, sum, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    PMPI_Allreduce(MPI_IN_PLACE, abs_sum, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

static double max_abs(const float *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(x[i]));
    return m;
}

static double rel_err(const float *r, const double *s, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += (r[i] - s[i]) * (r[i] - s[i]);
        den += s[i] * s[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

static const char *env(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v ? v : dflt;
}

/* Per-element error bound of one fresh (no feedback history) compressed
 * step, from the codec's math; < 0 when the codec has no such bound. */
static double bound(const char *comp, const float *x, size_t n, size_t i,
                    const double *s, const double *abs_sum, double sum_max)
{
    const double fp32 = nranks * FLT_EPSILON * abs_sum[i];
    if (strcmp(comp, "fp16") == 0) /* cast, fp32 sum, cast again */
        return 0x1p-11 * (abs_sum[i] + fabs(s[i]) + fp32) + (nranks + 1) * 0x1p-25 + fp32;
    if (strcmp(comp, "bf16") == 0)
        return 0x1p-8 * (abs_sum[i] + fabs(s[i]) + fp32) + fp32;
    if (strcmp(comp, "quant") == 0) {
        /* Each rank's error <= unit/2 with unit <= 2 max|x| / (2^b - 1);
         * the server's likewise over the summed chunk. */
        double q = (1 << atoi(env("COMMPRESS_BITS", "4"))) - 1;
        return sum_max / q + 8 * fp32 + 1e-9;
    }
    if (strcmp(comp, "topk") == 0 && atof(env("COMMPRESS_DENSITY", "0.01")) >= 1.0)
        return fp32; /* density 1 is the dense exact path */
    return -1;
}

static void test_count(const char *comp, size_t n)
{
    float *send = fresh(n), *recv = malloc(n * 4), *inplace = fresh(n);
    double *s = malloc(n * 8), *abs_sum = malloc(n * 8);
    commpress_stats_t before = stats();

    fill(send, n, n);
    memcpy(inplace, send, n * 4);
    exact(send, n, s, abs_sum);
    double local_max = max_abs(send, n), sum_max;
    PMPI_Allreduce(&local_max, &sum_max, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    /* sum_i max|x_i| bounds the workers' units and the server sum's range. */
    sum_max *= 2;

    CHECK(MPI_Allreduce(send, recv, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) == MPI_SUCCESS, "rc");
    CHECK(MPI_Allreduce(MPI_IN_PLACE, inplace, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) == MPI_SUCCESS, "rc");
    commpress_stats_t after = stats();
    if (strcmp(comp, "none") == 0) { /* the shim is an exact pass-through */
        PMPI_Allreduce(send, inplace, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        CHECK(memcmp(recv, inplace, n * 4) == 0, "none: differs from PMPI");
        CHECK(after.calls_compressed == before.calls_compressed, "none: compressed");
        free(recv), free(s), free(abs_sum);
        return;
    }
    CHECK(after.calls_compressed == before.calls_compressed + 2,
          "%s count %zu: compressed %llu -> %llu", comp, n,
          before.calls_compressed, after.calls_compressed);
    CHECK(cp_test_identical(recv, n * 4, MPI_COMM_WORLD), "%s count %zu: ranks differ", comp, n);
    CHECK(memcmp(recv, inplace, n * 4) == 0, "%s count %zu: in-place differs", comp, n);
    size_t bad = 0, first = n;
    for (size_t i = 0; i < n; i++) {
        double b = bound(comp, send, n, i, s, abs_sum, sum_max);
        if (b >= 0 && !(fabs(recv[i] - s[i]) <= b)) {
            bad++;
            if (first == n)
                first = i;
        }
    }
    CHECK(bad == 0, "%s count %zu: %zu elements beyond the bound, first %zu: %g vs %g",
          comp, n, bad, first, first < n ? recv[first] : 0.0, first < n ? s[first] : 0.0);
    if (rank == 0)
        printf("%s count %zu: relative error %.3g\n", comp, n, rel_err(recv, s, n));
    free(recv), free(s), free(abs_sum);
}

static int by_mag_desc_base_cmp(const float *x, size_t i, size_t j)
{
    float a = fabsf(x[i]), b = fabsf(x[j]);
    if (a != b)
        return a < b ? 1 : -1;
    return i < j ? -1 : 1;
}
static const float *sort_x;
static int cmp_idx(const void *a, const void *b)
{
    return by_mag_desc_base_cmp(sort_x, *(const size_t *)a, *(const size_t *)b);
}

/* Bytes of a slot's header (collectives/allreduce.h, docs/design.md). */
#define SLOT_HDR 24

/* topk below the sampling threshold: the result is exactly the fp32 sum,
 * in rank order, of every rank's exact top-k vector; unless one sparse
 * message (24-byte header, 4-byte k, 8 bytes per entry or 6 with fp16
 * values, padded to 8) is at least the dense share 8 n / ranks, where the
 * shim sends the tensor dense and the result is the rank-order sum of the
 * full vectors (docs/algorithms.md, "Choice of algorithm"). Sparse, each
 * rank sends its slot to every other rank. */
static void test_topk_exact_sum(size_t n)
{
    double density = atof(env("COMMPRESS_DENSITY", "0.01"));
    size_t k = (size_t)ceil(density * n);
    float *x = fresh(n), *r = malloc(n * 4), *mine = calloc(n, 4);
    float *all = malloc(n * 4 * nranks), *ref = calloc(n, 4);
    size_t *ord = malloc(n * sizeof(size_t));

    if (k < 1) k = 1;
    if (k > n) k = n;
    fill(x, n, 77 + n);
    for (size_t i = 0; i < n; i++)
        ord[i] = i;
    sort_x = x;
    qsort(ord, n, sizeof(size_t), cmp_idx);
    /* COMMPRESS_TOPK_VALUES=fp16: sparse values travel rounded to fp16
     * (these magnitudes are in fp16's normal range: no saturation). */
    const int f16v = strcmp(env("COMMPRESS_TOPK_VALUES", "f32"), "fp16") == 0;
    size_t slot = (SLOT_HDR + 4 + (f16v ? 6 : 8) * k + 7) / 8 * 8;
    /* EControl sends a tensor's first step dense. */
    int dense = (double)slot >= 8.0 * (double)n / nranks ||
                strcmp(env("COMMPRESS_FEEDBACK", ""), "econtrol") == 0;
    const int f16 = !dense && f16v;
    for (size_t j = 0; j < (dense ? n : k); j++)
        mine[ord[j]] = f16 ? (float)(_Float16)x[ord[j]] : x[ord[j]];
    PMPI_Allgather(mine, (int)n, MPI_FLOAT, all, (int)n, MPI_FLOAT, MPI_COMM_WORLD);
    for (int q = 0; q < nranks; q++)
        for (size_t i = 0; i < n; i++)
            ref[i] = q == 0 ? all[i] : ref[i] + all[(size_t)q * n + i];
    commpress_stats_t before = stats();
    MPI_Allreduce(x, r, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    commpress_stats_t after = stats();
    CHECK(memcmp(r, ref, n * 4) == 0, "topk count %zu: not the rank-order sum of exact top-k (%s)",
          n, dense ? "dense" : "sparse");
    CHECK(dense || after.bytes_sent - before.bytes_sent == (nranks - 1) * slot,
          "topk count %zu: sent %llu bytes, not %d slots of %zu", n,
          after.bytes_sent - before.bytes_sent, nranks - 1, slot);
    free(r), free(mine), free(all), free(ref), free(ord);
}

/* randk, error feedback on (sparse sizes only): every rank draws the same
 * k indices, so the result has exactly k nonzero elements (the gradients
 * are nonzero everywhere), each the fp32 rank-order sum of the ranks'
 * values there, and zero elsewhere; ranks drawing different indices would
 * leave up to ranks * k partial sums. The next step draws another subset
 * (the step is in the seed) and sends v = g + e, e being the first step's
 * values where they were not sent. */
static size_t randk_check(const float *r, const float *v_all, size_t n,
                          size_t k, unsigned char *sent, const char *what)
{
    size_t nz = 0, wrong = 0;
    for (size_t i = 0; i < n; i++) {
        float want = 0.0f;
        sent[i] = r[i] != 0.0f;
        nz += sent[i];
        if (sent[i])
            for (int q = 0; q < nranks; q++)
                want = q == 0 ? v_all[i] : want + v_all[(size_t)q * n + i];
        wrong += memcmp(&r[i], &want, 4) != 0;
    }
    CHECK(nz == k, "randk %s count %zu: %zu nonzero results, k = %zu", what, n, nz, k);
    CHECK(wrong == 0, "randk %s count %zu: %zu results are not the rank-order sum",
          what, n, wrong);
    return nz;
}

static void test_randk_sum(size_t n)
{
    const double density = atof(env("COMMPRESS_RANDK_DENSITY", "0.01"));
    const size_t k = (size_t)ceil(density * n);
    float *x = fresh(n), *r = malloc(n * 4), *v = malloc(n * 4);
    float *all = malloc(n * 4 * nranks);
    unsigned char *s1 = malloc(n), *s2 = malloc(n);

    fill(x, n, 500 + n);
    PMPI_Allgather(x, (int)n, MPI_FLOAT, all, (int)n, MPI_FLOAT, MPI_COMM_WORLD);
    MPI_Allreduce(x, r, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    randk_check(r, all, n, k, s1, "step 0");
    /* Step 1 on the same tensor: v = g + e, e = x where not sent. */
    float *g = malloc(n * 4);
    fill(g, n, 600 + n);
    for (size_t i = 0; i < n; i++)
        v[i] = s1[i] ? g[i] : g[i] + x[i];
    PMPI_Allgather(v, (int)n, MPI_FLOAT, all, (int)n, MPI_FLOAT, MPI_COMM_WORLD);
    memcpy(x, g, n * 4);
    MPI_Allreduce(x, r, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    randk_check(r, all, n, k, s2, "step 1");
    CHECK(memcmp(s1, s2, n) != 0, "randk count %zu: step 1 drew step 0's indices", n);
    free(r), free(v), free(all), free(s1), free(s2), free(g);
}

/* COMMPRESS_COMPRESSOR=dgc with exact selection: every step equals, bit for
 * bit, a replica of ALGORITHMS.md's DGC run here for every rank: clip to
 * c / sqrt(n), u <- m u + g, v <- v + u, exact top-k of |v| at the warm-up
 * density 0.25 (D / 0.25)^(t / W), rank-order sum, u and v zeroed where
 * sent. A step goes dense (all of v sent, v <- 0, u kept) for tensors below
 * COMMPRESS_DGC_DENSE_BELOW or when a sparse message would not pay. */
static void test_dgc(size_t n, int steps)
{
    const double D = atof(env("COMMPRESS_DENSITY", "0.01"));
    const float m = (float)atof(env("COMMPRESS_DGC_MOMENTUM", "0.9"));
    const double clip = atof(env("COMMPRESS_DGC_CLIP", "0")) / sqrt(nranks);
    const double W = atof(env("COMMPRESS_DGC_WARMUP_STEPS", "0"));
    const size_t below = (size_t)atol(env("COMMPRESS_DGC_DENSE_BELOW", "16384"));
    float *buf = fresh(n), *g = malloc(n * 4), *ref = malloc(n * 4);
    float *u = calloc(n * nranks, 4), *v = calloc(n * nranks, 4);
    size_t *ord = malloc(n * sizeof(size_t));
    int ndense = 0, nsparse = 0;

    for (int t = 0; t < steps; t++) {
        double d = t < W && D < 0.25 ? 0.25 * pow(D / 0.25, t / W) : D;
        size_t k = (size_t)ceil(d * (double)n);
        k = k < 1 ? 1 : k > n ? n : k;
        size_t slot = (SLOT_HDR + 4 + 8 * k + 7) / 8 * 8;
        int dense = n < below || (double)slot >= 8.0 * (double)n / nranks;
        ndense += dense, nsparse += !dense;
        for (int q = 0; q < nranks; q++) {
            float *uq = u + (size_t)q * n, *vq = v + (size_t)q * n;
            double ss = 0;
            fill_as(g, n, 500 + (uint64_t)t, q);
            if (q == rank)
                memcpy(buf, g, n * 4);
            for (size_t i = 0; i < n; i++)
                ss += (double)g[i] * g[i];
            float s = clip > 0 && sqrt(ss) > clip ? (float)(clip / sqrt(ss)) : 1.0f;
            for (size_t i = 0; i < n; i++) {
                uq[i] = m * uq[i] + s * g[i];
                vq[i] = vq[i] + uq[i];
                ord[i] = i;
            }
            sort_x = vq;
            if (!dense)
                qsort(ord, n, sizeof(size_t), cmp_idx);
            for (size_t j = 0; j < (dense ? n : k); j++) {
                size_t i = ord[j];
                ref[i] = q == 0 ? vq[i] : ref[i] + vq[i];
            }
            if (q == 0 && !dense) /* positions nobody sent stay 0 */
                for (size_t j = k; j < n; j++)
                    ref[ord[j]] = 0.0f;
            for (size_t j = 0; j < (dense ? n : k); j++) {
                vq[ord[j]] = 0.0f;
                if (!dense)
                    uq[ord[j]] = 0.0f;
            }
        }
        MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += buf[i] != ref[i];
        CHECK(bad == 0, "dgc count %zu step %d (%s, k %zu): %zu elements differ "
              "from the replica", n, t, dense ? "dense" : "sparse", k, bad);
        CHECK(cp_test_identical(buf, n * 4, MPI_COMM_WORLD), "dgc count %zu step %d: "
              "ranks differ", n, t);
    }
    if (rank == 0)
        printf("dgc count %zu: %d dense and %d sparse steps match the replica\n",
               n, ndense, nsparse);
    free(g), free(ref), free(u), free(v), free(ord);
}

/* COMMPRESS_FEEDBACK=ef21|econtrol with topk (exact selection, sparse):
 * every step equals a replica of the formulas (SUM form) computed for all
 * ranks, bit for bit: w = g - h; Delta = topk(eta e + w) (EF21: eta e
 * absent); e = (e + w) - Delta; h += Delta; H += rank-order sum of the
 * Deltas; the result is H. EControl's first step is sent dense: Delta = g.
 * Every rank holds the same H. Then what each promises:
 *  - EF21 tracks the current input: with one input repeated for more than
 *    n / k steps, every coordinate of g - h has been sent and H is the sum
 *    up to rounding;
 *  - EControl loses nothing: e_{t+1} = e_t + (g_t - h_{t+1}), so summed
 *    over ranks, sum_t G_t - sum_t H_{t+1} = sum_q e_q (G the input sum);
 *    checked on the shim's results, in double, to rounding. */
static void test_estimator(size_t n, int steps)
{
    const int ec = strcmp(env("COMMPRESS_FEEDBACK", ""), "econtrol") == 0;
    const float eta = (float)atof(env("COMMPRESS_ECONTROL_ETA", "0.01"));
    const double D = atof(env("COMMPRESS_DENSITY", "0.01"));
    size_t k = (size_t)ceil(D * (double)n);
    float *buf = fresh(n), *g = malloc(n * 4), *v = malloc(n * 4);
    float *e = calloc(n * nranks, 4), *h = calloc(n * nranks, 4);
    float *H = calloc(n, 4), *S = malloc(n * 4);
    double *cum = calloc(n, sizeof(double)), *s = malloc(n * sizeof(double));
    double *as = malloc(n * sizeof(double));
    size_t *ord = malloc(n * sizeof(size_t));

    for (int t = 0; t < steps; t++) {
        const int dense = ec && t == 0;
        /* EF21: steps past the middle repeat one input. */
        const uint64_t seed = 900 + (uint64_t)(ec || t < steps / 2 ? t : steps / 2);
        for (int q = 0; q < nranks; q++) {
            float *eq = e + (size_t)q * n, *hq = h + (size_t)q * n;
            fill_as(g, n, seed, q);
            if (q == rank)
                memcpy(buf, g, n * 4);
            for (size_t i = 0; i < n; i++) {
                float w = g[i] - hq[i];
                v[i] = ec ? eta * eq[i] + w : w;
                ord[i] = i;
            }
            sort_x = v;
            if (!dense)
                qsort(ord, n, sizeof(size_t), cmp_idx);
            if (q == 0)
                memset(S, 0, n * 4);
            for (size_t j = 0; j < n; j++) {
                size_t i = ord[j];
                float d = dense || j < k ? v[i] : 0.0f;
                if (dense || j < k)
                    S[i] = q == 0 ? 0.0f + d : S[i] + d;
                if (ec)
                    eq[i] = (eq[i] + (g[i] - hq[i])) - d;
                hq[i] = hq[i] + d;
            }
        }
        for (size_t i = 0; i < n; i++)
            H[i] = H[i] + S[i];
        exact(buf, n, s, as); /* G_t, before the call overwrites buf */
        MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) {
            bad += buf[i] != H[i];
            cum[i] += s[i] - buf[i];
        }
        CHECK(bad == 0, "%s count %zu step %d: %zu elements differ from the replica",
              ec ? "econtrol" : "ef21", n, t, bad);
        CHECK(cp_test_identical(buf, n * 4, MPI_COMM_WORLD), "step %d: ranks differ", t);
    }
    double err;
    if (ec) {
        double num = 0, den = 0;
        for (size_t i = 0; i < n; i++) {
            double es = 0;
            for (int q = 0; q < nranks; q++)
                es += e[(size_t)q * n + i];
            num += (cum[i] - es) * (cum[i] - es);
            den += es * es;
        }
        err = sqrt(num / den);
        CHECK(err < 1e-5, "econtrol: sum of inputs - sum of results differs from "
              "the summed error terms by %.3g (relative)", err);
    } else {
        fill(g, n, 900 + (uint64_t)(steps / 2));
        exact(g, n, s, as);
        err = rel_err(buf, s, n);
        CHECK(steps - steps / 2 > (int)(n / k) && err < 1e-5,
              "ef21 after %d repeated steps: relative error %.3g", steps - steps / 2, err);
    }
    if (rank == 0)
        printf("%s count %zu: %d steps equal the replica; %s %.3g\n",
               ec ? "econtrol" : "ef21", n, steps,
               ec ? "nothing lost, relative residual" : "tracks a repeated input, error",
               err);
    free(g), free(v), free(e), free(h), free(H), free(S), free(ord);
    free(cum), free(s), free(as);
}

static void dgc_mode(void)
{
    commpress_stats_t s0 = stats();
    test_dgc(1000, 4);  /* below COMMPRESS_DGC_DENSE_BELOW: dense */
    test_dgc(40000, 8); /* warm-up, then sparse */
    commpress_stats_t s1 = stats();
    CHECK(s1.calls_compressed - s0.calls_compressed == 12,
          "%llu dgc calls compressed, expected 12",
          s1.calls_compressed - s0.calls_compressed);
}

/* Error feedback: a fixed input repeated T times; the running mean of the
 * results approaches the exact sum. sum_t r_t = T s - (sum of the error
 * buffers), and the buffers stay bounded, so the error falls like 1/T. */
static void test_ef_convergence(const char *comp)
{
    const size_t n = 1000;
    const int T = 2000;
    float *g = fresh(n), *r = malloc(n * 4), *mean = malloc(n * 4);
    double *s = malloc(n * 8), *abs_sum = malloc(n * 8), *acc = calloc(n, 8);
    double err_early = 0, err_late = 0;

    fill(g, n, 4242);
    exact(g, n, s, abs_sum);
    for (int t = 1; t <= T; t++) {
        MPI_Allreduce(g, r, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        for (size_t i = 0; i < n; i++)
            acc[i] += r[i];
        if (t == 20 || t == T) {
            for (size_t i = 0; i < n; i++)
                mean[i] = (float)(acc[i] / t);
            *(t == 20 ? &err_early : &err_late) = rel_err(mean, s, n);
        }
    }
    if (rank == 0)
        printf("%s EF: relative error of the running mean %.3g at T=20, %.3g at T=%d\n",
               comp, err_early, err_late, T);
    CHECK(err_late <= 0.02, "%s EF: mean error %g at T=%d", comp, err_late, T);
    CHECK(err_late <= err_early / 10 || err_early < 1e-6,
          "%s EF: error did not fall like 1/T: %g -> %g", comp, err_early, err_late);
    free(r), free(mean), free(s), free(abs_sum), free(acc);
}

/* A step whose gradient holds NaN/Inf on one rank: non-finite result on
 * every rank (exactly the plain allreduce's), and state untouched: the clean
 * steps after it match a run in which the bad step never happened. */
static void test_nonfinite(const char *comp, size_t n, float poison)
{
    float *g[4], *ra[4], *rb[4], *sa = fresh(n), *sb = fresh(n);
    float *plain = malloc(n * 4);
    for (int t = 0; t < 4; t++) {
        g[t] = malloc(n * 4), ra[t] = malloc(n * 4), rb[t] = malloc(n * 4);
        fill(g[t], n, 900 + t);
    }
    if (rank == nranks - 1)
        g[1][n / 2] = poison;
    commpress_stats_t before = stats();
    for (int t = 0; t < 4; t++) { /* run A: steps 0, 1 (bad), 2, 3 */
        memcpy(sa, g[t], n * 4);
        MPI_Allreduce(sa, ra[t], (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
    commpress_stats_t after = stats();
    for (int t = 0; t < 4; t++) { /* run B: the bad step never happened */
        if (t == 1)
            continue;
        memcpy(sb, g[t], n * 4);
        MPI_Allreduce(sb, rb[t], (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
    PMPI_Allreduce(g[1], plain, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    CHECK(!isfinite(ra[1][n / 2]), "%s %g: result is finite", comp, poison);
    CHECK(memcmp(ra[1], plain, n * 4) == 0, "%s %g: bad step differs from plain allreduce", comp, poison);
    CHECK(after.calls_nonfinite == before.calls_nonfinite + 1, "nonfinite count");
    CHECK(memcmp(ra[0], rb[0], n * 4) == 0, "%s: step 0 differs", comp);
    CHECK(memcmp(ra[2], rb[2], n * 4) == 0, "%s %g: step after the bad one differs", comp, poison);
    CHECK(memcmp(ra[3], rb[3], n * 4) == 0, "%s %g: second step after differs", comp, poison);
    CHECK(cp_test_identical(ra[3], n * 4, MPI_COMM_WORLD), "ranks differ");
    for (int t = 0; t < 4; t++)
        free(g[t]), free(ra[t]), free(rb[t]);
    free(plain);
}

/* Sub-communicators: compressed, identical bits inside, state released
 * when freed. */
static void test_subcomm(void)
{
    const size_t n = 50000;
    MPI_Comm sub;
    int subsize;
    float *x = malloc(n * 4), *r = malloc(n * 4);
    MPI_Comm_split(MPI_COMM_WORLD, rank % 2, rank, &sub);
    MPI_Comm_size(sub, &subsize);
    fill(x, n, 5);
    commpress_stats_t b = stats();
    MPI_Allreduce(x, r, (int)n, MPI_FLOAT, MPI_SUM, sub);
    commpress_stats_t a = stats();
    CHECK(cp_test_identical(r, n * 4, sub), "sub-communicator ranks differ");
    if (subsize > 1) {
        CHECK(a.calls_compressed == b.calls_compressed + 1, "sub-communicator call not compressed");
        CHECK(a.state_bytes > b.state_bytes, "no state for the sub-communicator");
    }
    MPI_Comm_free(&sub);
    commpress_stats_t f = stats();
    CHECK(f.state_bytes == b.state_bytes, "state not released on MPI_Comm_free: %llu vs %llu",
          f.state_bytes, b.state_bytes);
    free(x), free(r);
}

static void compress_mode(void)
{
    const char *comp = env("COMMPRESS_COMPRESSOR", "none");
    size_t counts[] = {1, 7, 1000, (1u << 20) + 3};
    for (size_t c = 0; c < 4; c++)
        test_count(comp, counts[c]);
    if (strcmp(comp, "none") == 0)
        return;
    if (strcmp(comp, "topk") == 0 && strcmp(env("COMMPRESS_FEEDBACK", "auto"), "none") != 0 &&
        strcmp(env("COMMPRESS_TOPK_SELECT", "auto"), "sampled") != 0) {
        test_topk_exact_sum(1);
        test_topk_exact_sum(7);
        test_topk_exact_sum(1000);
    }
    const char *fbv = env("COMMPRESS_FEEDBACK", "auto");
    if (strcmp(comp, "randk") == 0 && (!strcmp(fbv, "auto") || !strcmp(fbv, "ef"))) {
        test_randk_sum(1000);
        test_randk_sum((1u << 20) + 3);
    }
    if (strcmp(comp, "fp16") && strcmp(comp, "bf16") &&
        strcmp(env("COMMPRESS_FEEDBACK", "auto"), "none"))
        test_ef_convergence(comp);
    test_nonfinite(comp, 1000, NAN);
    test_nonfinite(comp, 1000, INFINITY);
    test_nonfinite(comp, (1u << 20) + 3, -INFINITY);
    test_subcomm();
}

/* COMMPRESS_STATE_KEY=order with COMMPRESS_STEP_CALLS=2: two tensors of
 * the same size, handed over in buffers from a pool of 5, so every address
 * carries tensor A on some steps and B on others. Keyed by address their
 * error buffers would mix; keyed by call order each keeps its own, and the
 * running means of both converge to their exact sums. */
static void order_mode(void)
{
    const size_t n = 3000;
    const int T = 2000; /* error ~ 1/T: about half the bound below */
    float *pool[5], *g[2], *r = malloc(n * 4), *mean = malloc(n * 4);
    double *s[2], *abs_sum = malloc(n * 8), *acc[2];
    for (int i = 0; i < 5; i++)
        pool[i] = fresh(n);
    for (int j = 0; j < 2; j++) {
        g[j] = malloc(n * 4), s[j] = malloc(n * 8), acc[j] = calloc(n, 8);
        fill(g[j], n, 31 + j);
        exact(g[j], n, s[j], abs_sum);
    }
    for (int t = 0; t < T; t++)
        for (int j = 0; j < 2; j++) {
            float *buf = pool[(2 * t + j) % 5];
            memcpy(buf, g[j], n * 4);
            MPI_Allreduce(buf, r, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            for (size_t i = 0; i < n; i++)
                acc[j][i] += r[i];
        }
    for (int j = 0; j < 2; j++) {
        for (size_t i = 0; i < n; i++)
            mean[i] = (float)(acc[j][i] / T);
        double e = rel_err(mean, s[j], n);
        if (rank == 0)
            printf("order keying: tensor %d mean error %.3g after %d steps\n", j, e, T);
        CHECK(e <= 0.02, "order keying: tensor %d mean error %g", j, e);
        free(g[j]), free(s[j]), free(acc[j]);
    }
    free(r), free(mean), free(abs_sum);
}

static MPI_Op user_sum;
static void user_sum_fn(void *in, void *inout, int *len, MPI_Datatype *dt)
{
    int size;
    MPI_Type_size(*dt, &size);
    for (int i = 0; i < *len * size / 4; i++)
        ((float *)inout)[i] += ((float *)in)[i];
}

/* Calls the shim must hand to PMPI unchanged: compare bits with PMPI. */
static void expect_passthrough(const char *what, const void *send, size_t bytes,
                               int count, MPI_Datatype dt, MPI_Op op, MPI_Comm comm)
{
    void *r1 = malloc(bytes), *r2 = malloc(bytes);
    commpress_stats_t b = stats();
    MPI_Allreduce(send, r1, count, dt, op, comm);
    commpress_stats_t a = stats();
    PMPI_Allreduce(send, r2, count, dt, op, comm);
    CHECK(memcmp(r1, r2, bytes) == 0, "%s: differs from PMPI_Allreduce", what);
    CHECK(a.calls_compressed == b.calls_compressed, "%s: was compressed", what);
    CHECK(a.calls_passthrough == b.calls_passthrough + 1, "%s: not counted as pass-through", what);
    free(r1), free(r2);
}

static void passthrough_mode(void)
{
    const int n = 100000;
    float *f = malloc(n * 4), *r = malloc(n * 4);
    int *iv = malloc(n * 4);
    double *dv = malloc(n * 8);
    fill(f, n, 3);
    for (int i = 0; i < n; i++)
        iv[i] = (int)(f[i] * 1e6), dv[i] = f[i] * 1.000001;
    expect_passthrough("MPI_INT", iv, n * 4, n, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    expect_passthrough("MPI_MAX", f, n * 4, n, MPI_FLOAT, MPI_MAX, MPI_COMM_WORLD);
    expect_passthrough("MPI_DOUBLE", dv, n * 8, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    expect_passthrough("small", f, 16383 * 4, 16383, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    expect_passthrough("MPI_COMM_SELF", f, n * 4, n, MPI_FLOAT, MPI_SUM, MPI_COMM_SELF);
    MPI_Op_create(user_sum_fn, 1, &user_sum);
    expect_passthrough("user op", f, n * 4, n, MPI_FLOAT, user_sum, MPI_COMM_WORLD);
    MPI_Op_free(&user_sum);
    MPI_Datatype pair;
    MPI_Type_contiguous(2, MPI_FLOAT, &pair);
    MPI_Type_commit(&pair);
    MPI_Op_create(user_sum_fn, 1, &user_sum); /* sums the pair's floats */
    expect_passthrough("derived datatype", f, n * 4, n / 2, pair, user_sum, MPI_COMM_WORLD);
    MPI_Op_free(&user_sum);
    MPI_Type_free(&pair);
    /* In place, pass-through: as PMPI. */
    memcpy(r, f, n * 4);
    MPI_Allreduce(MPI_IN_PLACE, r, 1000, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    float *r2 = malloc(n * 4);
    PMPI_Allreduce(f, r2, 1000, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    CHECK(memcmp(r, r2, 1000 * 4) == 0, "in-place pass-through differs");
    /* The threshold: 16384 floats = 65536 bytes is compressed. */
    commpress_stats_t b = stats();
    MPI_Allreduce(f, r, 16384, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    commpress_stats_t a = stats();
    CHECK(a.calls_compressed == b.calls_compressed + 1, "threshold-sized call not compressed");
    free(f), free(r), free(r2), free(iv), free(dv);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    cp_test_rank = rank;
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    stats_fn = (void (*)(commpress_stats_t *))dlsym(RTLD_DEFAULT, "commpress_stats");
    if (stats_fn == NULL) {
        fprintf(stderr, "libcommpress.so is not preloaded\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    if (argc > 1 && strcmp(argv[1], "passthrough") == 0)
        passthrough_mode();
    else if (argc > 1 && strcmp(argv[1], "order") == 0)
        order_mode();
    else if (argc > 1 && strcmp(argv[1], "dgc") == 0)
        dgc_mode();
    else if (argc > 1 && strcmp(argv[1], "estimator") == 0)
        test_estimator(40000, 60);
    else
        compress_mode();
    int rc = cp_test_finish();
    for (int i = 0; i < nkept; i++)
        free(kept[i]);
    return rc;
}
