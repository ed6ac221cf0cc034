#include <criterion/criterion.h>
#include <math.h>

#include "compressors/compressor.h"
#include "testutil.h"

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
