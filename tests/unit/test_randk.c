/* randk (compressors/randk.c): exactly k indices, a uniform k-subset that
 * depends only on the shared seed, topk's wire format. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "compressors/compressor.h"
#include "testutil.h"
#include "tests/common/codecs.h"

static cp_params_t params(double density, uint64_t shared)
{
    cp_params_t p = tu_params();
    p.density = density;
    p.shared_seed = shared;
    return p;
}

/* The message of x: k strictly increasing indices, x's values there bit for
 * bit; decode puts alpha x there and y elsewhere. */
static unsigned char *check_message(const cp_params_t *p, const float *x,
                                    size_t n)
{
    const cp_compressor_ops_t *c = &cp_compressor_randk;
    const size_t k = n ? cp_topk_k(p->density, n) : 0;
    size_t len;
    unsigned char *m = tu_encode(c, p, x, n, &len);
    cr_assert_not_null(m);
    cr_assert_eq(len, 4 + 8 * k);
    cr_assert_eq(len, c->max_size(p, n));
    cr_assert_eq(cp_get_u32(m), (uint32_t)k);
    for (size_t j = 0; j < k; j++) {
        uint32_t i = cp_get_u32(m + 4 + 4 * j);
        cr_assert_lt(i, n);
        if (j > 0)
            cr_assert_gt(i, cp_get_u32(m + 4 + 4 * (j - 1)));
        float v = cp_get_f32(m + 4 + 4 * k + 4 * j);
        cr_assert_eq(memcmp(&v, &x[i], 4), 0, "value of index %u", i);
    }
    float *y = malloc((n + 1) * 4), *out = malloc((n + 1) * 4);
    for (size_t i = 0; i < n; i++)
        y[i] = (float)i;
    cr_assert_eq(c->decode(p, m, len, -2.0f, y, out, n), CP_OK);
    size_t sent = 0;
    for (size_t i = 0, j = 0; i < n; i++) {
        int here = j < k && cp_get_u32(m + 4 + 4 * j) == i;
        float want = here ? (float)i + -2.0f * x[i] : (float)i;
        cr_assert_eq(out[i], want, "i %zu", i);
        j += here;
        sent += here;
    }
    cr_assert_eq(sent, k);
    free(y), free(out);
    return m;
}

Test(randk, exact_k_sorted_values_and_decode)
{
    const size_t sizes[] = {1, 2, 7, 100, 1000, 4099, 100003};
    const double dens[] = {0.001, 0.01, 0.3, 0.5, 0.99, 1.0};
    for (size_t a = 0; a < sizeof(sizes) / sizeof(*sizes); a++)
        for (size_t b = 0; b < sizeof(dens) / sizeof(*dens); b++) {
            float *x = tu_gradient(sizes[a], 3 + a);
            cp_params_t p = params(dens[b], 11 * a + b);
            free(check_message(&p, x, sizes[a]));
            free(x);
        }
}

/* Density 1: every index; n = 0: an empty message. */
Test(randk, edges)
{
    float *x = tu_gradient(50, 5);
    cp_params_t p = params(1.0, 9);
    size_t len;
    unsigned char *m = tu_encode(&cp_compressor_randk, &p, x, 50, &len);
    for (uint32_t i = 0; i < 50; i++)
        cr_assert_eq(cp_get_u32(m + 4 + 4 * i), i);
    free(m);
    m = tu_encode(&cp_compressor_randk, &p, x, 0, &len);
    cr_assert_eq(len, 4);
    cr_assert_eq(cp_get_u32(m), 0);
    free(m);
    /* A buffer one byte short is refused, not overrun. */
    unsigned char small[4 + 8 * 50 - 1];
    void *scratch = malloc(cp_compressor_randk.scratch_size(&p, 50) + 1);
    cr_assert_eq(cp_compressor_randk.encode(&p, x, 50, small, sizeof(small), &len,
                                            scratch),
                 CP_ERR_NOSPACE);
    free(scratch), free(x);
}

/* The subset is a function of (shared seed, n, k) alone: other values, or
 * another rank's seed, draw the same indices; another shared seed draws
 * others. */
Test(randk, indices_from_the_shared_seed_only)
{
    const size_t n = 10000, k = cp_topk_k(0.01, n);
    float *x = tu_gradient(n, 1), *z = tu_gradient(n, 2);
    cp_params_t p = params(0.01, 77), q = p, r = p;
    q.seed = 12345; /* the per-rank seed: unused */
    r.shared_seed = 78;
    unsigned char *a = check_message(&p, x, n), *b = check_message(&q, z, n),
                  *c = check_message(&r, x, n);
    cr_assert_eq(memcmp(a + 4, b + 4, 4 * k), 0, "same shared seed, other indices");
    cr_assert_neq(memcmp(a + 4, c + 4, 4 * k), 0, "other shared seed, same indices");
    free(a), free(b), free(c), free(x), free(z);
}

/* A uniform k-subset: over S seeds every index is drawn with probability
 * k/n and every pair with k(k-1)/(n(n-1)); the counts are binomial, and a
 * deviation beyond 6 standard deviations would not happen by chance (a
 * per-index bias of ~3% would). */
Test(randk, uniform_subsets)
{
    const size_t n = 100, S = 40000;
    const cp_params_t p0 = params(0.1, 0);
    const size_t k = cp_topk_k(p0.density, n);
    size_t single[100] = {0}, pair01 = 0, pair_far = 0;
    float *x = tu_gradient(n, 4);
    void *scratch = malloc(cp_compressor_randk.scratch_size(&p0, n) + 1);
    unsigned char *m = malloc(cp_compressor_randk.max_size(&p0, n));
    for (size_t s = 0; s < S; s++) {
        cp_params_t p = p0;
        size_t len;
        unsigned char in[100] = {0};
        p.shared_seed = 0x9e3779b97f4a7c15ull * (s + 1);
        cr_assert_eq(cp_compressor_randk.encode(&p, x, n, m, 4 + 8 * k, &len,
                                                scratch), CP_OK);
        for (size_t j = 0; j < k; j++)
            in[cp_get_u32(m + 4 + 4 * j)] = 1;
        for (size_t i = 0; i < n; i++)
            single[i] += in[i];
        pair01 += in[0] && in[1];
        pair_far += in[3] && in[97];
    }
    const double p1 = (double)k / n, e1 = S * p1, sd1 = sqrt(S * p1 * (1 - p1));
    for (size_t i = 0; i < n; i++)
        cr_assert_leq(fabs((double)single[i] - e1), 6 * sd1, "index %zu: %zu draws, %g expected",
                      i, single[i], e1);
    const double p2 = (double)k * (k - 1) / ((double)n * (n - 1)), e2 = S * p2,
                 sd2 = sqrt(S * p2 * (1 - p2));
    cr_assert_leq(fabs((double)pair01 - e2), 6 * sd2, "pair (0, 1): %zu, %g expected", pair01, e2);
    cr_assert_leq(fabs((double)pair_far - e2), 6 * sd2, "pair (3, 97): %zu, %g expected", pair_far, e2);
    free(x), free(scratch), free(m);
}

/* The decoder is topk's: a malformed message is refused. */
Test(randk, malformed_refused)
{
    const size_t n = 1000;
    float *x = tu_gradient(n, 6), *out = malloc(n * 4);
    cp_params_t p = params(0.01, 5);
    size_t len;
    unsigned char *m = tu_encode(&cp_compressor_randk, &p, x, n, &len);
    unsigned char *bad = malloc(len);
    const cp_compressor_ops_t *c = &cp_compressor_randk;
    memcpy(bad, m, len);
    cp_put_u32(bad + 4, n); /* index out of range */
    cr_assert_eq(c->decode(&p, bad, len, 1.0f, NULL, out, n), CP_ERR_MALFORMED);
    memcpy(bad, m, len);
    cp_put_u32(bad + 8, cp_get_u32(bad + 4)); /* not increasing */
    cr_assert_eq(c->decode(&p, bad, len, 1.0f, NULL, out, n), CP_ERR_MALFORMED);
    cr_assert_eq(c->decode(&p, m, len - 1, 1.0f, NULL, out, n), CP_ERR_MALFORMED);
    free(m), free(bad), free(x), free(out);
}

/* It describes itself: found by name, a biased sparse codec with one row
 * and no GPU twin. */
Test(randk, registry_entry)
{
    const cp_compressor_ops_t *c = cp_compressor_find("randk");
    cr_assert_eq(c, &cp_compressor_randk);
    cr_assert_eq(c->caps, CP_CODEC_SPARSE | CP_CODEC_BIASED);
    cr_assert_null(c->gpu);
    cr_assert_null(c->feedback);
    cr_assert_eq(c->nparams, 1);
    cr_assert_str_eq(c->params[0].name, "COMMPRESS_RANDK_DENSITY");
    cr_assert_eq(c->entries, cp_topk_entries);
}
