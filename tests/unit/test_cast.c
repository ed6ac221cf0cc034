#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "compressors/compressor.h"
#include "testutil.h"
#include "util/hd.h"
#include "tests/common/codecs.h"

/* Every finite binary16 value converts to fp32 and back unchanged, and the
 * codec carries it exactly. */
Test(cast, fp16_exact_on_all_representable_values)
{
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00u) == 0x7c00u)
            continue; /* Inf, NaN */
        float f = cp_f16_to_f32((uint16_t)h);
        cr_assert_eq(cp_f32_to_f16(f), h, "h=%#x f=%a", h, f);
    }
}

Test(cast, bf16_exact_on_all_representable_values)
{
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7f80u) == 0x7f80u)
            continue;
        float f = cp_bf16_to_f32((uint16_t)h);
        cr_assert_eq(cp_f32_to_bf16(f), h, "h=%#x", h);
    }
}

/* Round to nearest, ties to even, checked against the neighbours. */
Test(cast, fp16_rounds_to_nearest_even)
{
    uint64_t s = 7;
    for (int i = 0; i < 200000; i++) {
        float x = (float)((tu_unif(&s) - 0.5) * ldexp(1.0, (int)(tu_next(&s) % 40) - 24));
        uint16_t h = cp_f32_to_f16(x);
        float r = cp_f16_to_f32(h);
        /* Neighbours in binary16 (same sign). */
        float up = cp_f16_to_f32((uint16_t)(h + 1));
        float dn = (h & 0x7fffu) ? cp_f16_to_f32((uint16_t)(h - 1)) : r;
        cr_assert_leq(fabsf(x - r), fabsf(x - up), "x=%a", x);
        cr_assert_leq(fabsf(x - r), fabsf(x - dn), "x=%a", x);
    }
    /* 1 + 2^-11 is a tie between 1 and 1 + 2^-10: even mantissa wins. */
    cr_assert_eq(cp_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
    cr_assert_eq(cp_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
    /* Smallest subnormal and half of it (tie to even: zero). */
    cr_assert_eq(cp_f32_to_f16(0x1p-24f), 0x0001);
    cr_assert_eq(cp_f32_to_f16(0x1p-25f), 0x0000);
}

Test(cast, saturates_finite_and_keeps_nonfinite)
{
    cr_assert_eq(cp_f32_to_f16(1e6f), 0x7bff);
    cr_assert_eq(cp_f32_to_f16(-1e6f), 0xfbff);
    cr_assert_eq(cp_f32_to_f16(65519.0f), 0x7bff);
    cr_assert_eq(cp_f32_to_f16(INFINITY), 0x7c00);
    cr_assert(isnan(cp_f16_to_f32(cp_f32_to_f16(NAN))));
    cr_assert_eq(cp_f32_to_bf16(3.4e38f), 0x7f7f);
    cr_assert_eq(cp_f32_to_bf16(-INFINITY), 0xff80);
    cr_assert(isnan(cp_bf16_to_f32(cp_f32_to_bf16(NAN))));
}

static void roundtrip(const cp_compressor_ops_t *c, float (*ref)(float))
{
    cp_params_t p = tu_params();
    for (size_t n = 0; n < 40; n += 13) {
        float *x = tu_gradient(n, n + 1);
        float *y = tu_gradient(n, n + 2);
        float out[64];
        size_t len;
        unsigned char *m = tu_encode(c, &p, x, n, &len);
        cr_assert_eq(len, 4 + 2 * n);
        cr_assert_eq(cp_get_u32(m), 0); /* in range: no scale */
        cr_assert_leq(len, c->max_size(&p, n));
        cr_assert_eq(c->decode(&p, m, len, 1.0f, y, out, n), CP_OK);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(out[i], y[i] + ref(x[i]));
        cr_assert_eq(c->decode(&p, m, len, -1.0f, NULL, out, n), CP_OK);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(out[i], -ref(x[i]));
        cr_assert_eq(c->decode(&p, m, len + 1, 1.0f, NULL, out, n), CP_ERR_MALFORMED);
        if (n)
            cr_assert_eq(c->decode(&p, m, len - 2, 1.0f, NULL, out, n), CP_ERR_MALFORMED);
        cp_put_u32(m, 128); /* a scale beyond any encoder's */
        cr_assert_eq(c->decode(&p, m, len, 1.0f, NULL, out, n), CP_ERR_MALFORMED);
        free(m), free(x), free(y);
    }
}

static float via_f16(float x) { return cp_f16_to_f32(cp_f32_to_f16(x)); }
static float via_bf16(float x) { return cp_bf16_to_f32(cp_f32_to_bf16(x)); }

Test(cast, codec_fp16) { roundtrip(&cp_compressor_fp16, via_f16); }
Test(cast, codec_bf16) { roundtrip(&cp_compressor_bf16, via_bf16); }

Test(cast, small_buffer_rejected)
{
    cp_params_t p = tu_params();
    float x[4] = {1, 2, 3, 4};
    unsigned char out[8];
    size_t len;
    cr_assert_eq(cp_compressor_fp16.encode(&p, x, 4, out, 7, &len, NULL), CP_ERR_NOSPACE);
}

/* Rounding toward zero: never above |x|, and the next binary16 up is. */
Test(cast, fp16_rtz_truncates)
{
    uint64_t s = 11;
    for (int i = 0; i < 200000; i++) {
        float x = (float)((tu_unif(&s) - 0.5) * ldexp(1.0, (int)(tu_next(&s) % 42) - 26));
        uint16_t h = cp_f32_to_f16_rtz(x);
        float r = cp_f16_to_f32(h), up = cp_f16_to_f32((uint16_t)(h + 1));
        cr_assert_leq(fabsf(r), fabsf(x), "x=%a", x);
        cr_assert_gt(fabsf(up), fabsf(x), "x=%a", x);
        cr_assert(x == 0.0f || signbit(r) == signbit(x) || r == 0.0f);
    }
    cr_assert_eq(cp_f32_to_f16_rtz(65504.0f), 0x7bff);
    cr_assert_eq(cp_f32_to_f16_rtz(65503.0f), 0x7bfe);
    cr_assert_eq(cp_f32_to_f16_rtz(0x1p-24f * 1.9f), 0x0001);
}

/* Two ranks of 40000 sum to 80000 on the server: the old cast saturated it
 * to 65504. Out of range, the message is scaled: nothing is clipped, no
 * decoded value exceeds its input, large values keep fp16's relative
 * precision, and it holds up to FLT_MAX. */
static void scaled(const cp_compressor_ops_t *c, float max, float rel)
{
    cp_params_t p = tu_params();
    const float big[] = {80000.0f, -1e6f, 3e30f, FLT_MAX, -FLT_MAX};
    for (size_t b = 0; b < sizeof(big) / sizeof(*big); b++) {
        if (fabsf(big[b]) <= max)
            continue;
        float x[6] = {big[b], 1.0f, -0.5f, 1e-30f, 0.0f, big[b] * 0.75f};
        float out[6];
        size_t len;
        unsigned char *m = tu_encode(c, &p, x, 6, &len);
        cr_assert_not_null(m);
        int e = (int)cp_get_u32(m);
        cr_assert_geq(e, 1);
        cr_assert_leq(fabsf(big[b]) * ldexpf(1.0f, -e), max);
        cr_assert_gt(fabsf(big[b]) * ldexpf(1.0f, 1 - e), max); /* the smallest */
        cr_assert_eq(c->decode(&p, m, len, 1.0f, NULL, out, 6), CP_OK);
        for (int i = 0; i < 6; i++) {
            cr_assert(isfinite(out[i]), "%g -> %g", x[i], out[i]);
            cr_assert_leq(fabsf(out[i]), fabsf(x[i]), "%g -> %g", x[i], out[i]);
        }
        cr_assert_geq(fabsf(out[0]), fabsf(x[0]) * (1 - rel), "%g -> %g", x[0], out[0]);
        cr_assert_geq(fabsf(out[5]), fabsf(x[5]) * (1 - rel), "%g -> %g", x[5], out[5]);
        free(m);
    }
}

Test(cast, fp16_scales_out_of_range_instead_of_clipping)
{
    scaled(&cp_compressor_fp16, CP_F16_MAX, 0x1p-10f);
}

Test(cast, bf16_scales_out_of_range_instead_of_clipping)
{
    scaled(&cp_compressor_bf16, CP_BF16_MAX, 0x1p-7f);
}

#ifdef __FLT16_MAX__
/* The conversions are written branch-free so that the codec loops
 * vectorize (util/hd.h); here they meet the compiler's own binary16
 * (_Float16, round to nearest even) on a sweep of every 509th fp32 bit
 * pattern and the neighbourhoods of the boundaries, with the documented
 * differences applied: saturation at 65504 instead of Inf, NaN as
 * 0x7e00 with its sign. */
static uint16_t ref_f16(float x)
{
    const uint32_t u = cp_f32_bits(x), a = u & 0x7fffffffu;
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    if (a > 0x7f800000u)
        return sign | 0x7e00u;
    if (a == 0x7f800000u)
        return sign | 0x7c00u;
    if (fabsf(x) >= 65520.0f)
        return sign | 0x7bffu;
    _Float16 h = (_Float16)x;
    uint16_t b;
    memcpy(&b, &h, 2);
    return b;
}

/* Toward zero for |x| <= 65504 (and saturating beyond): the nearest, one
 * step down where it rounded away from zero. */
static uint16_t ref_f16_rtz(float x)
{
    if (fabsf(x) >= 65504.0f)
        return (uint16_t)(((cp_f32_bits(x) >> 16) & 0x8000u) | 0x7bffu);
    uint16_t b = ref_f16(x);
    _Float16 h;
    memcpy(&h, &b, 2);
    if (fabsf((float)h) > fabsf(x))
        b--; /* same sign: the next magnitude down */
    return b;
}

static void check_f16_at(uint32_t bits)
{
    const float x = cp_bits_f32(bits);
    cr_assert_eq(cp_f32_to_f16(x), ref_f16(x), "bits %#x", bits);
    if ((bits & 0x7fffffffu) < 0x7f800000u)
        cr_assert_eq(cp_f32_to_f16_rtz(x), ref_f16_rtz(x), "rtz bits %#x", bits);
}

Test(cast, fp16_conversions_match_the_compilers_binary16, .timeout = 120)
{
    for (uint64_t b = 0; b < (1ull << 32); b += 509)
        check_f16_at((uint32_t)b);
    /* Each side of every boundary: zero, the subnormal range, the normal
     * range, saturation, Inf and NaN, both signs. */
    const uint32_t edges[] = {0x0u, 0x33000000u, 0x33800000u, 0x387fc000u,
                              0x38800000u, 0x477fe000u, 0x477ff000u,
                              0x7f7fffffu, 0x7f800000u, 0x7f800001u};
    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
        for (uint32_t d = 0; d < 4096; d++)
            for (uint32_t s = 0; s < 2; s++) {
                check_f16_at((edges[i] + d - 2048u) ^ (s << 31));
            }
    for (uint32_t h = 0; h < 65536; h++) {
        _Float16 f;
        uint16_t hb = (uint16_t)h;
        memcpy(&f, &hb, 2);
        const float r = cp_f16_to_f32(hb);
        if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu)) /* NaN: payload kept */
            cr_assert_eq(cp_f32_bits(r), ((h & 0x8000u) << 16) | 0x7f800000u | ((h & 0x3ffu) << 13));
        else
            cr_assert_eq(cp_f32_bits(r), cp_f32_bits((float)f), "h %#x", h);
    }
}
#endif
