/* Max-min quantization (QSGD-like, as CGX): buckets of B elements, per
 * bucket min and unit = (max - min) / (2^b - 1); q = floor((x - min) / unit
 * + r) clamped to [0, 2^b - 1], r = 1/2 (nearest) or uniform in [0, 1)
 * (stochastic: unbiased). Decode x' = min + q * unit.
 * Wire: [nb x (f32 min, f32 unit)][ceil(n * b / 8) bytes of q, LSB first,
 * one bit stream across buckets]. */
#include <math.h>

#include "compressors/compressor.h"
#include "compressors/codec_math.h"

static size_t quant_nbuckets(const cp_params_t *p, size_t n)
{
    return (n + p->bucket - 1) / p->bucket;
}

static size_t quant_max_size(const cp_params_t *p, size_t n)
{
    return 8 * quant_nbuckets(p, n) + (n * (size_t)p->bits + 7) / 8;
}

/* Min and max of v[0..m), m >= 1. Eight independent lanes make the loop an
 * elementwise select, which vectorizes without -ffast-math (a float min
 * reduction does not). */
static void bucket_range(const float *v, size_t m, float *mn_p, float *mx_p)
{
    float lo[8], hi[8];
    size_t i = 0;
    for (int j = 0; j < 8; j++)
        lo[j] = hi[j] = v[0];
    for (; i + 8 <= m; i += 8)
        for (int j = 0; j < 8; j++) {
            lo[j] = v[i + j] < lo[j] ? v[i + j] : lo[j];
            hi[j] = v[i + j] > hi[j] ? v[i + j] : hi[j];
        }
    for (; i < m; i++) {
        lo[0] = v[i] < lo[0] ? v[i] : lo[0];
        hi[0] = v[i] > hi[0] ? v[i] : hi[0];
    }
    for (int j = 1; j < 8; j++) {
        lo[0] = lo[j] < lo[0] ? lo[j] : lo[0];
        hi[0] = hi[j] > hi[0] ? hi[j] : hi[0];
    }
    *mn_p = lo[0];
    *mx_p = hi[0];
}

#define QBLOCK 256 /* levels computed per block, then packed */

/* Packs m levels (m a multiple of 8 except at the stream's end) into the
 * LSB-first stream at byte `out`, for bits in {1, 2, 4, 8}. */
static void pack_aligned(const uint8_t *q, size_t m, unsigned bits,
                         unsigned char *out)
{
    const unsigned per = 8 / bits;
    size_t full = m / per;
    for (size_t j = 0; j < full; j++) {
        unsigned byte = 0;
        for (unsigned k = 0; k < per; k++)
            byte |= (unsigned)q[j * per + k] << (k * bits);
        out[j] = (unsigned char)byte;
    }
    if (m % per) {
        unsigned byte = 0;
        for (unsigned k = 0; k < m % per; k++)
            byte |= (unsigned)q[full * per + k] << (k * bits);
        out[full] = (unsigned char)byte;
    }
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
    const unsigned bits = (unsigned)p->bits;
    const float qmax = (float)((1u << bits) - 1u);
    const int stochastic = p->rounding == CP_ROUND_STOCHASTIC;
    /* Buckets start on a byte boundary when bucket * bits is a multiple of
     * 8 (the default 512 always is): then 1, 2, 4 and 8 bits pack with
     * fixed-width loops; otherwise through the generic bit writer. */
    const int aligned = (bits == 1 || bits == 2 || bits == 4 || bits == 8) &&
                        (p->bucket * bits) % 8 == 0;
    unsigned char *hdr = out, *stream = (unsigned char *)out + 8 * nb;
    cp_bitwriter_t w = {.out = stream};
    uint8_t q[QBLOCK];
    (void)scratch;

    if (cap < quant_max_size(p, n))
        return CP_ERR_NOSPACE;
    for (size_t b = 0; b < nb; b++) {
        const size_t lo = b * p->bucket;
        const size_t m = n - lo < p->bucket ? n - lo : p->bucket;
        const float *v = x + lo;
        float mn, mx;
        bucket_range(v, m, &mn, &mx);
        const float unit = (mx - mn) / qmax;
        const float inv = unit > 0.0f ? 1.0f / unit : 0.0f;
        cp_put_f32(hdr + 8 * b, mn);
        cp_put_f32(hdr + 8 * b + 4, unit);
        /* The bucket is still in cache: quantize and pack right away. */
        for (size_t k = 0; k < m; k += QBLOCK) {
            const size_t c = m - k < QBLOCK ? m - k : QBLOCK;
            if (stochastic)
                for (size_t i = 0; i < c; i++)
                    q[i] = (uint8_t)cp_quant_level(
                        v[k + i], mn, inv, cp_uniform01(p->seed, lo + k + i),
                        qmax);
            else
                for (size_t i = 0; i < c; i++)
                    q[i] = (uint8_t)cp_quant_level(v[k + i], mn, inv, 0.5f,
                                                   qmax);
            if (aligned)
                pack_aligned(q, c, bits, stream + (lo + k) * bits / 8);
            else
                for (size_t i = 0; i < c; i++)
                    bw_put(&w, q[i], bits);
        }
    }
    if (!aligned)
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
            float d = alpha * cp_quant_value(q, mn, unit);
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
