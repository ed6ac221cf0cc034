/* fp16 and bf16: a cast to 16 bits on send, back to fp32 on receipt, so sums
 * are formed in fp32. The per-element conversions live in util/hd.h, shared
 * with the GPU kernels. */
#include "compressors/compressor.h"
#include "util/hd.h"

static size_t cast_max_size(const cp_params_t *p, size_t n)
{
    (void)p;
    return n * sizeof(uint16_t);
}

#define CP_DEFINE_CAST(kind, to16, from16)                                   \
    static cp_status_t kind##_encode(const cp_params_t *p, const float *x,  \
                                     size_t n, void *out, size_t cap,       \
                                     size_t *len_p, void *scratch)          \
    {                                                                       \
        uint16_t *h = out;                                                  \
        (void)p;                                                            \
        (void)scratch;                                                      \
        if (cap < n * sizeof(uint16_t))                                     \
            return CP_ERR_NOSPACE;                                          \
        for (size_t i = 0; i < n; i++)                                      \
            h[i] = to16(x[i]);                                              \
        *len_p = n * sizeof(uint16_t);                                      \
        return CP_OK;                                                       \
    }                                                                       \
    static cp_status_t kind##_decode(const cp_params_t *p, const void *in,  \
                                     size_t len, float alpha,               \
                                     const float *y, float *out, size_t n)  \
    {                                                                       \
        const uint16_t *h = in;                                             \
        (void)p;                                                            \
        if (len != n * sizeof(uint16_t))                                    \
            return CP_ERR_MALFORMED;                                        \
        if (y == NULL) {                                                    \
            for (size_t i = 0; i < n; i++)                                  \
                out[i] = alpha * from16(h[i]);                              \
        } else {                                                            \
            for (size_t i = 0; i < n; i++)                                  \
                out[i] = y[i] + alpha * from16(h[i]);                       \
        }                                                                   \
        return CP_OK;                                                       \
    }                                                                       \
    const cp_compressor_ops_t cp_compressor_##kind = {                      \
        .name = #kind,                                                      \
        .max_size = cast_max_size,                                          \
        .scratch_size = cp_scratch_none,                                    \
        .encode = kind##_encode,                                            \
        .decode = kind##_decode,                                            \
    };

CP_DEFINE_CAST(fp16, cp_f32_to_f16, cp_f16_to_f32)
CP_DEFINE_CAST(bf16, cp_f32_to_bf16, cp_bf16_to_f32)
