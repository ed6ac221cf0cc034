#include <criterion/criterion.h>
#include <math.h>

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
