/* Max-min quantization (QSGD-like, as CGX): buckets of B elements, per
 * bucket min and unit = (max - min) / (2^b - 1); q = floor((x - min) / unit
 * + r) clamped to [0, 2^b - 1], r = 1/2 (nearest) or uniform in [0, 1)
 * (stochastic: unbiased). Decode x' = min + q * unit.
 * Wire: [nb x (f32 min, f32 unit)][ceil(n * b / 8) bytes of q, LSB first,
 * one bit stream across buckets]. */
#include <math.h>

#include "compressors/compressor.h"
#include "util/hd.h"

static size_t quant_nbuckets(const cp_params_t *p, size_t n)
{
    return (n + p->bucket - 1) / p->bucket;
}

static size_t quant_max_size(const cp_params_t *p, size_t n)
{
    return 8 * quant_nbuckets(p, n) + (n * (size_t)p->bits + 7) / 8;
}

/* Per-element quantizer, shared with the GPU kernels. */
CP_HD uint32_t cp_quant_level(float x, float min, float inv_unit, float r,
                              uint32_t qmax)
{
    float q = floorf((x - min) * inv_unit + r);
    if (!(q > 0.0f)) /* also maps a NaN from 0 * Inf to level 0 */
        return 0;
    return q >= (float)qmax ? qmax : (uint32_t)q;
}

/* Appends levels to a bit stream through a 64-bit accumulator. */
typedef struct {
    unsigned char *out;
    uint64_t acc;
    unsigned nacc;
} cp_bitwriter_t;

static inline void bw_put(cp_bitwriter_t *w, uint32_t v, unsigned bits)
{
    w->acc |= (uint64_t)v << w->nacc;
    w->nacc += bits;
    if (w->nacc >= 32) {
        cp_put_u32(w->out, (uint32_t)w->acc);
        w->out += 4;
        w->acc >>= 32;
        w->nacc -= 32;
    }
}

static inline void bw_flush(cp_bitwriter_t *w)
{
    while (w->nacc > 0) {
        *w->out++ = (unsigned char)w->acc;
        w->acc >>= 8;
        w->nacc = w->nacc > 8 ? w->nacc - 8 : 0;
    }
}

static cp_status_t quant_encode(const cp_params_t *p, const float *x, size_t n,
                                void *out, size_t cap, size_t *len_p,
                                void *scratch)
{
    const size_t nb = quant_nbuckets(p, n);
    const uint32_t qmax = (1u << p->bits) - 1u;
    const int stochastic = p->rounding == CP_ROUND_STOCHASTIC;
    unsigned char *hdr = out;
    cp_bitwriter_t w = {.out = (unsigned char *)out + 8 * nb};
    (void)scratch;

    if (cap < quant_max_size(p, n))
        return CP_ERR_NOSPACE;
    for (size_t b = 0; b < nb; b++) {
        const size_t lo = b * p->bucket;
        const size_t m = n - lo < p->bucket ? n - lo : p->bucket;
        const float *v = x + lo;
        float mn = v[0], mx = v[0];
        for (size_t i = 1; i < m; i++) {
            mn = v[i] < mn ? v[i] : mn;
            mx = v[i] > mx ? v[i] : mx;
        }
        const float unit = (mx - mn) / (float)qmax;
        const float inv = unit > 0.0f ? 1.0f / unit : 0.0f;
        cp_put_f32(hdr + 8 * b, mn);
        cp_put_f32(hdr + 8 * b + 4, unit);
        /* The bucket is still in L1: quantize and pack right away. */
        for (size_t i = 0; i < m; i++) {
            float r = stochastic ? cp_uniform01(p->seed, lo + i) : 0.5f;
            bw_put(&w, cp_quant_level(v[i], mn, inv, r, qmax),
                   (unsigned)p->bits);
        }
    }
    bw_flush(&w);
    *len_p = quant_max_size(p, n);
    return CP_OK;
}

static cp_status_t quant_decode(const cp_params_t *p, const void *in, size_t len,
                                float alpha, const float *y, float *out,
                                size_t n)
{
    const size_t nb = quant_nbuckets(p, n);
    const unsigned bits = (unsigned)p->bits;
    const uint32_t qmax = (1u << bits) - 1u;
    const unsigned char *hdr = in;
    const unsigned char *s = hdr + 8 * nb;
    const unsigned char *end = hdr + len;
    uint64_t acc = 0;
    unsigned nacc = 0;

    if (len != quant_max_size(p, n))
        return CP_ERR_MALFORMED;
    for (size_t b = 0; b < nb; b++) {
        const float mn = cp_get_f32(hdr + 8 * b);
        const float unit = cp_get_f32(hdr + 8 * b + 4);
        if (cp_nonfinite(mn) || cp_nonfinite(unit) || unit < 0.0f)
            return CP_ERR_MALFORMED;
    }
    for (size_t b = 0; b < nb; b++) {
        const size_t lo = b * p->bucket;
        const size_t m = n - lo < p->bucket ? n - lo : p->bucket;
        const float mn = cp_get_f32(hdr + 8 * b);
        const float unit = cp_get_f32(hdr + 8 * b + 4);
        for (size_t i = 0; i < m; i++) {
            /* The length check above guarantees the stream holds n * bits
             * bits, so s never passes end; refill a byte at a time. */
            while (nacc < bits && s < end) {
                acc |= (uint64_t)*s++ << nacc;
                nacc += 8;
            }
            uint32_t q = (uint32_t)acc & qmax;
            acc >>= bits;
            nacc -= bits;
            float d = alpha * (mn + (float)q * unit);
            out[lo + i] = (y ? y[lo + i] : 0.0f) + d;
        }
    }
    return CP_OK;
}

const cp_compressor_ops_t cp_compressor_quant = {
    .name = "quant",
    .max_size = quant_max_size,
    .scratch_size = cp_scratch_none,
    .encode = quant_encode,
    .decode = quant_decode,
};
