#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "compressors/compressor.h"
#include "util/hd.h"
#include "testutil.h"
#include "tests/common/codecs.h"

static const float *sort_base;
/* Larger magnitude first; equal magnitudes by lower index (the codec's
 * tie rule: it keeps the first ties in index order). */
static int by_mag_desc(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    float x = fabsf(sort_base[i]), y = fabsf(sort_base[j]);
    if (x != y)
        return x < y ? 1 : -1;
    return i < j ? -1 : 1;
}

/* Reference: the k largest magnitudes by sorting, as a membership mask. */
static char *reference_topk(const float *x, size_t n, size_t k)
{
    size_t *ord = malloc(n * sizeof(size_t));
    char *keep = calloc(n, 1);
    for (size_t i = 0; i < n; i++)
        ord[i] = i;
    sort_base = x;
    qsort(ord, n, sizeof(size_t), by_mag_desc);
    for (size_t j = 0; j < k; j++)
        keep[ord[j]] = 1;
    free(ord);
    return keep;
}

static void check_exact(const float *x, size_t n, double density)
{
    const cp_compressor_ops_t *c = &cp_compressor_topk;
    cp_params_t p = tu_params();
    size_t len, k;
    p.density = density;
    k = cp_topk_k(density, n);
    unsigned char *m = tu_encode(c, &p, x, n, &len);
    char *keep = reference_topk(x, n, k);
    float *out = malloc(n * sizeof(float));

    cr_assert_eq(cp_get_u32(m), k, "n=%zu", n);
    cr_assert_eq(len, 4 + 8 * k);
    cr_assert_leq(len, c->max_size(&p, n));
    cr_assert_eq(c->decode(&p, m, len, 1.0f, NULL, out, n), CP_OK);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(out[i], keep[i] ? x[i] : 0.0f, "n=%zu i=%zu", n, i);
    free(m), free(keep), free(out);
}

Test(topk, exact_keeps_exactly_the_k_largest)
{
    size_t sizes[] = {1, 2, 7, 100, 1000, 65537};
    double dens[] = {0.001, 0.01, 0.3, 1.0};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(*sizes); s++)
        for (size_t d = 0; d < 4; d++) {
            float *x = tu_gradient(sizes[s], s * 10 + d);
            check_exact(x, sizes[s], dens[d]);
            free(x);
        }
}

Test(topk, exact_with_ties_and_zeros)
{
    float x[1000];
    for (int i = 0; i < 1000; i++)
        x[i] = (i % 3 == 0) ? 0.5f : ((i % 3 == 1) ? -0.5f : 0.0f);
    check_exact(x, 1000, 0.01);  /* all ties: first k in index order */
    check_exact(x, 1000, 0.9);   /* includes zeros */
    memset(x, 0, sizeof(x));
    check_exact(x, 1000, 0.05);
}

/* The sampled threshold gives a "top set": at most k entries, every kept
 * magnitude >= every dropped one, and on gradient-like data at least 0.8 k. */
Test(topk, sampled_is_a_top_set)
{
    const cp_compressor_ops_t *c = &cp_compressor_topk;
    const size_t n = 1 << 20;
    double dens[] = {0.001, 0.01, 0.1};
    float *x = tu_gradient(n, 3);
    float *out = malloc(n * sizeof(float));
    for (int d = 0; d < 3; d++) {
        cp_params_t p = tu_params();
        size_t len;
        p.density = dens[d];
        p.topk_select = CP_TOPK_SAMPLED;
        for (uint64_t seed = 0; seed < 3; seed++) {
            p.seed = seed;
            unsigned char *m = tu_encode(c, &p, x, n, &len);
            size_t k = cp_topk_k(p.density, n), got = cp_get_u32(m);
            cr_assert_leq(got, k);
            cr_assert_geq(got * 5, k * 4, "got %zu of k %zu", got, k);
            cr_assert_eq(len, 4 + 8 * got);
            cr_assert_eq(c->decode(&p, m, len, 1.0f, NULL, out, n), CP_OK);
            float min_kept = INFINITY, max_dropped = 0;
            size_t kept = 0;
            for (size_t i = 0; i < n; i++) {
                if (out[i] != 0.0f) {
                    cr_assert_eq(out[i], x[i]);
                    min_kept = fminf(min_kept, fabsf(x[i]));
                    kept++;
                } else {
                    max_dropped = fmaxf(max_dropped, fabsf(x[i]));
                }
            }
            cr_assert_eq(kept, got);
            cr_assert_geq(min_kept, max_dropped);
            free(m);
        }
    }
    free(x), free(out);
}

/* A sample that misjudges (a spike of equal values) still ends in a top
 * set of at most k, through the exact fallback. */
Test(topk, sampled_falls_back_on_degenerate_input)
{
    const cp_compressor_ops_t *c = &cp_compressor_topk;
    const size_t n = 300000;
    float *x = calloc(n, sizeof(float)), *out = malloc(n * sizeof(float));
    cp_params_t p = tu_params();
    size_t len;
    for (size_t i = 0; i < n; i++)
        x[i] = 1.0f;
    p.topk_select = CP_TOPK_SAMPLED;
    unsigned char *m = tu_encode(c, &p, x, n, &len);
    cr_assert_eq(cp_get_u32(m), cp_topk_k(0.01, n));
    cr_assert_eq(c->decode(&p, m, len, 1.0f, NULL, out, n), CP_OK);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(out[i], i < cp_topk_k(0.01, n) ? 1.0f : 0.0f);
    free(m), free(x), free(out);
}

static unsigned char *message(uint32_t k, const uint32_t *idx, const float *val)
{
    unsigned char *m = malloc(4 + 8 * k + 1);
    cp_put_u32(m, k);
    for (uint32_t j = 0; j < k; j++) {
        cp_put_u32(m + 4 + 4 * j, idx[j]);
        cp_put_f32(m + 4 + 4 * k + 4 * j, val[j]);
    }
    return m;
}

Test(topk, malformed_rejected_and_nothing_written)
{
    const cp_compressor_ops_t *c = &cp_compressor_topk;
    cp_params_t p = tu_params();
    float out[10], v[3] = {1, 2, 3};
    struct { uint32_t idx[3]; float val0; size_t extra; uint32_t k; } cases[] = {
        {{1, 5, 10}, 1, 0, 3},  /* index == n */
        {{1, 5, 5}, 1, 0, 3},   /* duplicate */
        {{5, 1, 2}, 1, 0, 3},   /* not increasing */
        {{1, 2, 3}, NAN, 0, 3}, /* non-finite value */
        {{1, 2, 3}, 1, 1, 3},   /* trailing byte */
    };
    for (size_t t = 0; t < sizeof(cases) / sizeof(*cases); t++) {
        v[0] = cases[t].val0;
        unsigned char *m = message(cases[t].k, cases[t].idx, v);
        for (int i = 0; i < 10; i++)
            out[i] = 7.0f;
        cr_assert_eq(c->decode(&p, m, 4 + 8 * 3 + cases[t].extra, 1.0f, NULL, out, 10),
                     CP_ERR_MALFORMED, "case %zu", t);
        for (int i = 0; i < 10; i++)
            cr_assert_eq(out[i], 7.0f);
        free(m);
    }
    unsigned char hdr[4];
    cp_put_u32(hdr, 11); /* k > n */
    cr_assert_eq(c->decode(&p, hdr, 4, 1.0f, NULL, out, 10), CP_ERR_MALFORMED);
    cp_put_u32(hdr, 0xffffffffu); /* huge k: 4 + 8k must not wrap */
    cr_assert_eq(c->decode(&p, hdr, 4, 1.0f, NULL, out, 10), CP_ERR_MALFORMED);
    cr_assert_eq(c->decode(&p, hdr, 3, 1.0f, NULL, out, 10), CP_ERR_MALFORMED);
}

Test(topk, decode_accumulates_with_alpha)
{
    const cp_compressor_ops_t *c = &cp_compressor_topk;
    cp_params_t p = tu_params();
    uint32_t idx[2] = {0, 4};
    float val[2] = {2.0f, -3.0f}, y[5] = {1, 1, 1, 1, 1}, out[5];
    unsigned char *m = message(2, idx, val);
    cr_assert_eq(c->decode(&p, m, 20, -1.0f, y, out, 5), CP_OK);
    float want[5] = {-1, 1, 1, 1, 4};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(out[i], want[i]);
    free(m);
}

/* topk_fp16: the same entries as the f32 message, values rounded to fp16
 * (saturating), 6 bytes each; the flag and the length must agree. */
Test(topk, fp16_values)
{
    const size_t n = 5000;
    cp_params_t p = tu_params(), h = tu_params();
    h.topk_fp16 = 1;
    float *x = tu_gradient(n, 21), *a = malloc(n * 4), *b = malloc(n * 4);
    x[17] = 1e6f; /* beyond fp16's range: saturates to 65504 */
    size_t la, lb;
    unsigned char *ma = tu_encode(&cp_compressor_topk, &p, x, n, &la);
    unsigned char *mb = tu_encode(&cp_compressor_topk, &h, x, n, &lb);
    size_t k = cp_topk_k(p.density, n);
    cr_assert_eq(la, 4 + 8 * k);
    cr_assert_eq(lb, 4 + 6 * k);
    /* The slot is sized for fp16 values (what the allgather sends): tu_encode
     * allocates exactly max_size, so an f32 staging in the message would
     * overflow it (ASan). */
    cr_assert_eq(cp_compressor_topk.max_size(&h, n), 4 + 6 * k);
    cr_assert_eq(cp_compressor_topk.max_size(&p, n), 4 + 8 * k);
    cr_assert_eq(cp_get_u32(mb), (uint32_t)k | 0x80000000u);
    cr_assert_eq(memcmp(ma + 4, mb + 4, 4 * k), 0, "indices differ");
    cr_assert_eq(cp_compressor_topk.decode(&p, ma, la, 1.0f, NULL, a, n), CP_OK);
    cr_assert_eq(cp_compressor_topk.decode(&h, mb, lb, 1.0f, NULL, b, n), CP_OK);
    for (size_t i = 0; i < n; i++) {
        float want = cp_f16_to_f32(cp_f32_to_f16(a[i]));
        cr_assert_eq(b[i], want, "i %zu: %g vs %g", i, b[i], want);
    }
    cr_assert_eq(b[17], 65504.0f);
    /* The flag with f32-sized values, or the reverse, is malformed. */
    cp_put_u32(ma, (uint32_t)k | 0x80000000u);
    cr_assert_eq(cp_compressor_topk.decode(&p, ma, la, 1.0f, NULL, a, n), CP_ERR_MALFORMED);
    cp_put_u32(mb, (uint32_t)k);
    cr_assert_eq(cp_compressor_topk.decode(&p, mb, lb, 1.0f, NULL, a, n), CP_ERR_MALFORMED);
    /* An infinite fp16 value is malformed. */
    cp_put_u32(mb, (uint32_t)k | 0x80000000u);
    uint16_t inf = 0x7c00;
    memcpy(mb + 4 + 4 * k, &inf, 2);
    cr_assert_eq(cp_compressor_topk.decode(&p, mb, lb, 1.0f, NULL, a, n), CP_ERR_MALFORMED);
    /* The sampled selection too: the same entries as its f32 message. */
    free(ma), free(mb);
    p.topk_select = h.topk_select = CP_TOPK_SAMPLED;
    ma = tu_encode(&cp_compressor_topk, &p, x, n, &la);
    mb = tu_encode(&cp_compressor_topk, &h, x, n, &lb);
    const size_t c = cp_get_u32(ma);
    cr_assert(c > 0 && c <= k);
    cr_assert_eq(cp_get_u32(mb), (uint32_t)c | 0x80000000u);
    cr_assert_eq(lb, 4 + 6 * c);
    cr_assert_eq(memcmp(ma + 4, mb + 4, 4 * c), 0, "indices differ");
    for (size_t j = 0; j < c; j++) {
        uint16_t hv;
        memcpy(&hv, mb + 4 + 4 * c + 2 * j, 2);
        cr_assert_eq(hv, cp_f32_to_f16(cp_get_f32(ma + 4 + 4 * c + 4 * j)));
    }
    free(x), free(a), free(b), free(ma), free(mb);
}
