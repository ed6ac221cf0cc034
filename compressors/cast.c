/* fp16 and bf16: a cast to 16 bits on send, back to fp32 on receipt, so sums
 * are formed in fp32. The per-element conversions live in util/hd.h, shared
 * with the GPU kernels.
 *
 * Nothing is clipped: a message whose largest magnitude exceeds the 16-bit
 * format's range (a server's sum of several ranks, a large gradient)
 * travels scaled by 2^-e, the smallest power of two that brings it in
 * range, rounded toward zero so that no decoded value exceeds its input.
 * Its large values keep the format's relative precision; values below
 * 2^-e times the format's smallest normal lose theirs (for fp16, anything
 * below amax * 2^-30). Wire: [i32 e][n x u16]; e = 0 is the plain cast. */
#include "compressors/compressor.h"
#include "util/hd.h"
#include "util/simd.h"

#define CAST_HDR 4
#define CAST_MAX_E 127 /* cp_pow2f's range; encoders use at most 113 */

static size_t cast_max_size(const cp_params_t *p, size_t n)
{
    (void)p;
    return CAST_HDR + n * sizeof(uint16_t);
}

#define CP_DEFINE_CAST(kind, to16, to16_rtz, from16, limit)                 \
    CP_CLONES static cp_status_t kind##_encode(                             \
        const cp_params_t *p, const float *x, size_t n, void *out,          \
        size_t cap, size_t *len_p, void *scratch)                           \
    {                                                                       \
        uint16_t *h = (uint16_t *)((unsigned char *)out + CAST_HDR);        \
        uint32_t amax = 0; /* |x| as bits: an integer max vectorizes */     \
        int e = 0;                                                          \
        (void)p;                                                            \
        (void)scratch;                                                      \
        if (cap < cast_max_size(p, n))                                      \
            return CP_ERR_NOSPACE;                                          \
        for (size_t i = 0; i < n; i++) {                                    \
            uint32_t a = cp_f32_bits(x[i]) & 0x7fffffffu;                   \
            amax = a > amax ? a : amax;                                     \
            h[i] = to16(x[i]);                                              \
        }                                                                   \
        e = cp_cast_exponent(cp_bits_f32(amax), (limit));                   \
        if (e > 0) {                                                        \
            const float s = cp_bits_f32((uint32_t)(127 - e) << 23);         \
            for (size_t i = 0; i < n; i++)                                  \
                h[i] = to16_rtz(x[i] * s);                                  \
        }                                                                   \
        cp_put_u32(out, (uint32_t)e);                                       \
        *len_p = cast_max_size(p, n);                                       \
        return CP_OK;                                                       \
    }                                                                       \
    static cp_status_t kind##_decode(const cp_params_t *p, const void *in,  \
                                     size_t len, float alpha,               \
                                     const float *y, float *out, size_t n)  \
    {                                                                       \
        const uint16_t *h =                                                 \
            (const uint16_t *)((const unsigned char *)in + CAST_HDR);       \
        if (len != cast_max_size(p, n) || cp_get_u32(in) > CAST_MAX_E)      \
            return CP_ERR_MALFORMED;                                        \
        const float s = cp_pow2f((int)cp_get_u32(in));                      \
        if (y == NULL) {                                                    \
            for (size_t i = 0; i < n; i++)                                  \
                out[i] = alpha * (from16(h[i]) * s);                        \
        } else {                                                            \
            for (size_t i = 0; i < n; i++)                                  \
                out[i] = y[i] + alpha * (from16(h[i]) * s);                 \
        }                                                                   \
        return CP_OK;                                                       \
    }                                                                       \
    CP_GPU_TWIN(cp_gpu_##kind);                                             \
    const cp_compressor_ops_t cp_compressor_##kind = {                      \
        .name = #kind,                                                      \
        .doc = #kind " cast: 16 bits a value, sums in fp32, a power-of-two " \
               "scale beyond the format's range",                          \
        .gpu = &cp_gpu_##kind,                                              \
        .max_size = cast_max_size,                                          \
        .scratch_size = cp_scratch_none,                                    \
        .encode = kind##_encode,                                            \
        .decode = kind##_decode,                                            \
    };

CP_DEFINE_CAST(fp16, cp_f32_to_f16, cp_f32_to_f16_rtz, cp_f16_to_f32, CP_F16_MAX)
CP_DEFINE_CAST(bf16, cp_f32_to_bf16, cp_f32_to_bf16_rtz, cp_bf16_to_f32, CP_BF16_MAX)
