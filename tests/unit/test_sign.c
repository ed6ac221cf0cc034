#include <criterion/criterion.h>
#include <math.h>

#include "compressors/codec_math.h"
#include "compressors/compressor.h"
#include "testutil.h"
#include "tests/common/codecs.h"

/* Signs exact (sign(0) = +1, also for -0.0), scale = ||x|| / sqrt(n), and
 * decode gives y + alpha * scale * s exactly. */
Test(sign, signs_exact_and_scale_as_defined)
{
    const cp_compressor_ops_t *c = &cp_compressor_sign;
    cp_params_t p = tu_params();
    size_t sizes[] = {1, 7, 8, 9, 64, 1000, 2047, 2048, 2049, 4099, 10000};
    for (size_t t = 0; t < sizeof(sizes) / sizeof(*sizes); t++) {
        size_t n = sizes[t], len;
        float *x = tu_gradient(n, n);
        if (n > 3) {
            x[1] = 0.0f;
            x[2] = -0.0f;
        }
        float *out = malloc(n * sizeof(float));
        unsigned char *m = tu_encode(c, &p, x, n, &len);
        cr_assert_eq(len, 4 + (n + 7) / 8);
        cr_assert_eq(len, c->max_size(&p, n));
        double ss = 0;
        for (size_t i = 0; i < n; i++)
            ss += (double)x[i] * x[i];
        float scale = cp_get_f32(m);
        cr_assert_float_eq(scale, (float)sqrt(ss / n), 1e-6f * (float)sqrt(ss / n) + 1e-30f);
        cr_assert_eq(c->decode(&p, m, len, 1.0f, NULL, out, n), CP_OK);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(out[i], x[i] < 0.0f ? -scale : scale, "i=%zu", i);
        /* Unused bits of the last byte are zero. */
        if (n % 8)
            cr_assert_eq(m[len - 1] >> (n % 8), 0);
        free(m), free(x), free(out);
    }
}

Test(sign, malformed_rejected)
{
    const cp_compressor_ops_t *c = &cp_compressor_sign;
    cp_params_t p = tu_params();
    float x[16] = {1, -1, 2}, out[16];
    size_t len;
    unsigned char *m = tu_encode(c, &p, x, 16, &len);
    cr_assert_eq(c->decode(&p, m, len - 1, 1.0f, NULL, out, 16), CP_ERR_MALFORMED);
    cr_assert_eq(c->decode(&p, m, len, 1.0f, NULL, out, 17), CP_ERR_MALFORMED);
    cp_put_f32(m, NAN);
    cr_assert_eq(c->decode(&p, m, len, 1.0f, NULL, out, 16), CP_ERR_MALFORMED);
    cp_put_f32(m, -1.0f);
    cr_assert_eq(c->decode(&p, m, len, 1.0f, NULL, out, 16), CP_ERR_MALFORMED);
    cp_put_f32(m, INFINITY);
    cr_assert_eq(c->decode(&p, m, len, 1.0f, NULL, out, 16), CP_ERR_MALFORMED);
    free(m);
}

/* encode_ef (COMMPRESS_FUSE): the message of encode(e + g) and the error
 * ef's commit gives (decode with alpha -1 on top of e + g), bit for bit,
 * zeros and negative zeros included; a non-finite e + g is reported. */
Test(sign, encode_ef_equals_prepare_encode_commit)
{
    const cp_compressor_ops_t *c = &cp_compressor_sign;
    const size_t ns[] = {1, 7, 8, 1000, 4099, 70001};
    for (size_t a = 0; a < 6; a++) {
        const size_t n = ns[a];
        cp_params_t p = tu_params();
        float *e = tu_gradient(n, 5 * n + 1), *g = tu_gradient(n, 7 * n + 2);
        for (size_t i = 0; i < n; i += 5) /* v = +0 and -0 here and there */
            e[i] = -g[i];
        if (n > 3)
            e[3] = -0.0f, g[3] = -0.0f;
        tu_check_encode_ef(c, &p, e, g, n, n / 2, INFINITY, e[n / 2]);
        free(e), free(g);
    }
}

/* The fixed-order sum of squares (codec_math.h) written the plain way: all
 * block sums in an array, reduced level by level. */
static double sumsq_reference(const float *x, size_t n)
{
    const size_t B = CP_SUMSQ_BLOCK, L = CP_SUMSQ_LANES;
    size_t m = (n + B - 1) / B;
    double *part = calloc(m + 1, sizeof(double));
    for (size_t b = 0; b < m; b++) {
        double lane[CP_SUMSQ_LANES] = {0};
        for (size_t i = b * B; i < n && i < (b + 1) * B; i++)
            lane[(i - b * B) % L] += (double)x[i] * (double)x[i];
        for (size_t w = L / 2; w > 0; w /= 2)
            for (size_t l = 0; l < w; l++)
                lane[l] += lane[l + w];
        part[b] = lane[0];
    }
    while (m > 1) {
        size_t next = (m + B - 1) / B;
        for (size_t j = 0; j < next; j++) {
            double lane[CP_SUMSQ_LANES] = {0};
            for (size_t i = j * B; i < m && i < (j + 1) * B; i++)
                lane[(i - j * B) % L] += part[i];
            for (size_t w = L / 2; w > 0; w /= 2)
                for (size_t l = 0; l < w; l++)
                    lane[l] += lane[l + w];
            part[j] = lane[0];
        }
        m = next;
    }
    double s = n ? part[0] : 0.0;
    free(part);
    return s;
}

/* cp_sumsq_fixed (DGC's clip norm, scratch-free) is that order bit for bit,
 * across the level boundaries (one block, 2048 blocks, 2048 + 1 blocks),
 * and its scale is the sign codec's (which keeps the partials). */
Test(sign, sumsq_fixed_is_the_fixed_order)
{
    const size_t B = CP_SUMSQ_BLOCK;
    const size_t sizes[] = {0, 1, 31, 33, B - 1, B, B + 1, 5 * B + 7, B * B - 3,
                            B * B, B * B + 1, B * B + B + 5, 3 * B * B + 11};
    cp_params_t p = tu_params();
    for (size_t t = 0; t < sizeof(sizes) / sizeof(*sizes); t++) {
        const size_t n = sizes[t];
        float *x = tu_gradient(n ? n : 1, 77 + n);
        for (size_t i = 0; i < n; i += 97)
            x[i] *= 1e3f; /* spread the magnitudes: rounding order shows */
        const double got = cp_sumsq_fixed(x, n), want = sumsq_reference(x, n);
        cr_assert(memcmp(&got, &want, sizeof(got)) == 0, "n=%zu: %a vs %a", n, got, want);
        if (n) {
            size_t len;
            unsigned char *m = tu_encode(&cp_compressor_sign, &p, x, n, &len);
            cr_assert_eq(cp_get_f32(m), (float)sqrt(got / (double)n), "n=%zu", n);
            free(m);
        }
        free(x);
    }
}
