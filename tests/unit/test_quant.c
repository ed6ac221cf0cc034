#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "compressors/compressor.h"
#include "util/hd.h"
#include "testutil.h"
#include "tests/common/codecs.h"

/* Nearest rounding: |x' - x| <= unit / 2 per element, up to the rounding
 * of (x - min) * (1/unit) and min + q * unit in fp32 (a few ulps of the
 * bucket's magnitude). */
static void check_nearest(size_t n, int bits, size_t bucket)
{
    const cp_compressor_ops_t *c = &cp_compressor_quant;
    cp_params_t p = tu_params();
    p.bits = bits;
    p.bucket = bucket;
    float *x = tu_gradient(n, n * 31 + bits);
    float *out = malloc(n * sizeof(float));
    size_t len, nb = (n + bucket - 1) / bucket;
    unsigned char *m = tu_encode(c, &p, x, n, &len);

    cr_assert_eq(len, 8 * nb + (n * bits + 7) / 8);
    cr_assert_leq(len, c->max_size(&p, n));
    cr_assert_eq(c->decode(&p, m, len, 1.0f, NULL, out, n), CP_OK);
    for (size_t b = 0; b < nb; b++) {
        float mn = cp_get_f32(m + 8 * b), unit = cp_get_f32(m + 8 * b + 4);
        float mx = -INFINITY, lo = INFINITY, amax = 0;
        for (size_t i = b * bucket; i < n && i < (b + 1) * bucket; i++) {
            mx = fmaxf(mx, x[i]);
            lo = fminf(lo, x[i]);
            amax = fmaxf(amax, fabsf(x[i]));
        }
        cr_assert_eq(mn, lo);
        cr_assert_float_eq(unit, (mx - lo) / (float)((1 << bits) - 1), 1e-7f * amax);
        float slack = 4 * FLT_EPSILON * amax;
        for (size_t i = b * bucket; i < n && i < (b + 1) * bucket; i++) {
            cr_assert_leq(fabsf(out[i] - x[i]), unit / 2 + slack,
                          "n=%zu bits=%d i=%zu err=%g unit=%g", n, bits, i,
                          fabsf(out[i] - x[i]), unit);
            cr_assert_geq(out[i], lo - slack);
            cr_assert_leq(out[i], mx + slack);
        }
    }
    free(m), free(x), free(out);
}

Test(quant, nearest_error_at_most_half_unit)
{
    size_t sizes[] = {1, 7, 511, 512, 513, 4099};
    for (int bits = 1; bits <= 8; bits++)
        for (size_t t = 0; t < sizeof(sizes) / sizeof(*sizes); t++) {
            check_nearest(sizes[t], bits, 512);
            check_nearest(sizes[t], bits, 3);
        }
}

/* The wire format, transcribed one bit at a time from quant.c's header
 * comment: the fast paths (aligned widths packed through words, the
 * vectorized range, target clones) must give these bytes exactly, and
 * decode must give y + alpha * (min + q * unit) exactly. */
static void check_reference_bits(size_t n, int bits, size_t bucket,
                                 int stochastic)
{
    const cp_compressor_ops_t *c = &cp_compressor_quant;
    cp_params_t p = tu_params();
    p.bits = bits;
    p.bucket = bucket;
    p.rounding = stochastic ? CP_ROUND_STOCHASTIC : CP_ROUND_NEAREST;
    p.seed = 1234 + n;
    const float qmax = (float)((1u << bits) - 1u);
    const size_t nb = (n + bucket - 1) / bucket;
    const size_t len = 8 * nb + (n * bits + 7) / 8;
    float *x = tu_gradient(n, n * 7 + bits);
    float *y = tu_gradient(n, n * 5 + 1);
    float *out = malloc(n * sizeof(float));
    unsigned char *ref = calloc(len, 1);
    uint8_t *q = malloc(n);
    size_t got;

    if (n > 10)
        x[3] = 0.0f, x[4] = -0.0f, x[5] = x[6]; /* zeros and a tie */
    for (size_t b = 0; b < nb; b++) {
        size_t lo = b * bucket, hi = lo + bucket < n ? lo + bucket : n;
        float mn = x[lo], mx = x[lo];
        for (size_t i = lo; i < hi; i++)
            mn = x[i] < mn ? x[i] : mn, mx = x[i] > mx ? x[i] : mx;
        float unit = (mx - mn) / qmax, inv = unit > 0.0f ? 1.0f / unit : 0.0f;
        cp_put_f32(ref + 8 * b, mn);
        cp_put_f32(ref + 8 * b + 4, unit);
        for (size_t i = lo; i < hi; i++) {
            float r = stochastic ? cp_uniform01(p.seed, i) : 0.5f;
            float t = (x[i] - mn) * inv + r;
            t = t > 0.0f ? t : 0.0f;
            t = t < qmax ? t : qmax;
            q[i] = (uint8_t)t;
            for (int k = 0; k < bits; k++) {
                size_t bit = i * bits + k;
                ref[8 * nb + bit / 8] |= ((q[i] >> k) & 1u) << (bit % 8);
            }
        }
    }
    unsigned char *m = tu_encode(c, &p, x, n, &got);
    cr_assert_eq(got, len);
    cr_assert_eq(memcmp(m, ref, len), 0, "n=%zu bits=%d bucket=%zu stoch=%d",
                 n, bits, bucket, stochastic);
    cr_assert_eq(c->decode(&p, m, len, -1.0f, y, out, n), CP_OK);
    for (size_t i = 0; i < n; i++) {
        float mn = cp_get_f32(ref + 8 * (i / bucket));
        float unit = cp_get_f32(ref + 8 * (i / bucket) + 4);
        float want = y[i] + -1.0f * (mn + (float)q[i] * unit);
        cr_assert_eq(cp_f32_bits(out[i]), cp_f32_bits(want), "i=%zu", i);
    }
    cr_assert_eq(c->decode(&p, m, len, 1.0f, NULL, out, n), CP_OK);
    for (size_t i = 0; i < n; i++) {
        float mn = cp_get_f32(ref + 8 * (i / bucket));
        float unit = cp_get_f32(ref + 8 * (i / bucket) + 4);
        float want = 0.0f + (mn + (float)q[i] * unit);
        cr_assert_eq(cp_f32_bits(out[i]), cp_f32_bits(want), "i=%zu", i);
    }
    free(m), free(ref), free(q), free(x), free(y), free(out);
}

Test(quant, matches_the_reference_bitstream)
{
    size_t sizes[] = {1, 5, 255, 256, 257, 1000, 4099};
    size_t buckets[] = {512, 256, 24, 3};
    for (int bits = 1; bits <= 8; bits++)
        for (size_t t = 0; t < sizeof(sizes) / sizeof(*sizes); t++)
            for (size_t b = 0; b < sizeof(buckets) / sizeof(*buckets); b++)
                for (int st = 0; st < 2; st++)
                    check_reference_bits(sizes[t], bits, buckets[b], st);
}

/* Stochastic rounding: every element lands on one of the two levels around
 * it (|err| < unit), and the mean over seeds is unbiased: for T draws the
 * mean error is within 5 standard deviations (<= unit / (2 sqrt T)). */
Test(quant, stochastic_unbiased)
{
    const cp_compressor_ops_t *c = &cp_compressor_quant;
    cp_params_t p = tu_params();
    const size_t n = 256;
    const int T = 2000;
    float *x = tu_gradient(n, 99);
    double *sum = calloc(n, sizeof(double));
    float out[256], unit = 0;
    p.bits = 2;
    p.rounding = CP_ROUND_STOCHASTIC;
    for (int t = 0; t < T; t++) {
        size_t len;
        p.seed = (uint64_t)t * 7919;
        unsigned char *m = tu_encode(c, &p, x, n, &len);
        unit = cp_get_f32(m + 4);
        cr_assert_eq(c->decode(&p, m, len, 1.0f, NULL, out, n), CP_OK);
        for (size_t i = 0; i < n; i++) {
            cr_assert_lt(fabsf(out[i] - x[i]), unit * (1 + 1e-5f));
            sum[i] += out[i];
        }
        free(m);
    }
    for (size_t i = 0; i < n; i++)
        cr_assert_leq(fabs(sum[i] / T - x[i]), 5 * unit / (2 * sqrt(T)) + 1e-7,
                      "i=%zu bias=%g unit=%g", i, sum[i] / T - x[i], unit);
    free(x), free(sum);
}

Test(quant, constant_bucket_and_alpha)
{
    const cp_compressor_ops_t *c = &cp_compressor_quant;
    cp_params_t p = tu_params();
    float x[100], y[100], out[100];
    size_t len;
    for (int i = 0; i < 100; i++)
        x[i] = 0.25f, y[i] = (float)i;
    unsigned char *m = tu_encode(c, &p, x, 100, &len);
    cr_assert_eq(c->decode(&p, m, len, -1.0f, y, out, 100), CP_OK);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(out[i], (float)i - 0.25f);
    free(m);
}

Test(quant, malformed_rejected)
{
    const cp_compressor_ops_t *c = &cp_compressor_quant;
    cp_params_t p = tu_params();
    float *x = tu_gradient(1000, 5), out[1000];
    size_t len;
    unsigned char *m = tu_encode(c, &p, x, 1000, &len);
    cr_assert_eq(c->decode(&p, m, len - 1, 1.0f, NULL, out, 1000), CP_ERR_MALFORMED);
    cr_assert_eq(c->decode(&p, m, len, 1.0f, NULL, out, 1001), CP_ERR_MALFORMED);
    cp_put_f32(m + 4, -1.0f);
    cr_assert_eq(c->decode(&p, m, len, 1.0f, NULL, out, 1000), CP_ERR_MALFORMED);
    cp_put_f32(m + 4, NAN);
    cr_assert_eq(c->decode(&p, m, len, 1.0f, NULL, out, 1000), CP_ERR_MALFORMED);
    cp_put_f32(m + 4, 0.1f);
    cp_put_f32(m + 8, INFINITY);
    cr_assert_eq(c->decode(&p, m, len, 1.0f, NULL, out, 1000), CP_ERR_MALFORMED);
    free(m), free(x);
}

/* Found by tests/fuzz/fuzz_codec (round trip): the top level min + qmax *
 * unit rounded past FLT_MAX while unit * qmax did not, so a finite bucket
 * decoded to Inf. Such a range is refused (CP_ERR_RANGE: the call goes
 * exact), and whatever is encoded decodes finite. */
Test(quant, top_level_never_overflows)
{
    const cp_compressor_ops_t *c = &cp_compressor_quant;
    cp_params_t p = tu_params();
    float x[2] = {3.40282e35f, FLT_MAX}, out[2];
    unsigned char m[64];
    size_t len;
    p.bucket = 2;
    for (p.bits = 1; p.bits <= 8; p.bits++) {
        cp_status_t st = c->encode(&p, x, 2, m, sizeof(m), &len, NULL);
        if (p.bits == 5 || p.bits == 8)
            cr_assert_eq(st, CP_ERR_RANGE, "bits %d", p.bits);
        if (st != CP_OK)
            continue;
        cr_assert_eq(c->decode(&p, m, len, 1.0f, NULL, out, 2), CP_OK);
        cr_assert(isfinite(out[0]) && isfinite(out[1]), "bits %d", p.bits);
    }
}

/* encode_ef (COMMPRESS_FUSE): the message of encode(e + g) and the error
 * ef's commit gives (decode with alpha -1 on top of e + g), bit for bit,
 * for aligned and bit-stream widths, buckets that do not divide n,
 * stochastic rounding; a non-finite e + g anywhere is reported. */
Test(quant, encode_ef_equals_prepare_encode_commit)
{
    const cp_compressor_ops_t *c = &cp_compressor_quant;
    const size_t ns[] = {1, 7, 512, 1000, 4099};
    const int bits[] = {1, 3, 4, 8};
    const size_t buckets[] = {512, 100, 1};
    for (size_t a = 0; a < 5; a++)
        for (size_t b = 0; b < 4; b++)
            for (size_t k = 0; k < 3; k++)
                for (int st = 0; st < 2; st++) {
                    const size_t n = ns[a];
                    cp_params_t p = tu_params();
                    p.bits = bits[b];
                    p.bucket = buckets[k];
                    p.rounding = st ? CP_ROUND_STOCHASTIC : CP_ROUND_NEAREST;
                    p.seed = 77 + n;
                    float *e = tu_gradient(n, 5 * n + 1), *g = tu_gradient(n, 7 * n + 2);
                    /* A NaN or an overflowing sum in the last bucket. */
                    tu_check_encode_ef(c, &p, e, g, n, n - 1, st ? NAN : 3e38f,
                                       st ? 0.0f : 3e38f);
                    free(e), free(g);
                }
}
