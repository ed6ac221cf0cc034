/* Max-min quantization (QSGD-like, as CGX): buckets of B elements, per
 * bucket min and unit = (max - min) / (2^b - 1); q = floor((x - min) / unit
 * + r) clamped to [0, 2^b - 1], r = 1/2 (nearest) or uniform in [0, 1)
 * (stochastic: unbiased). Decode x' = min + q * unit.
 * Wire: [nb x (f32 min, f32 unit)][ceil(n * b / 8) bytes of q, LSB first,
 * one bit stream across buckets]. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "compressors/compressor.h"
#include "compressors/codec_math.h"
#include "util/simd.h"

#define CP_QUANT_MAX_SETTINGS 8 /* bits 1..8 */

static size_t quant_nbuckets(const cp_params_t *p, size_t n)
{
    return (n + p->bucket - 1) / p->bucket;
}

/* Buckets start on a byte boundary when bucket * bits is a multiple of 8
 * (the default 512 always is): then 1, 2, 4 and 8 bits pack and unpack
 * with fixed-width loops; otherwise through the generic bit stream. */
static int quant_aligned(const cp_params_t *p)
{
    const unsigned bits = (unsigned)p->bits;
    return (bits == 1 || bits == 2 || bits == 4 || bits == 8) &&
           (p->bucket * bits) % 8 == 0;
}

static size_t quant_max_size(const cp_params_t *p, size_t n)
{
    return 8 * quant_nbuckets(p, n) + (n * (size_t)p->bits + 7) / 8;
}

/* Min and max of v[0..m), m >= 1. Two cp_v8f hold 16 lanes (two
 * independent dependency chains); lane j sees elements 16 k + j
 * (x < lo ? x : lo), the tail goes to lane 0, and the lanes fold in order.
 * A float min reduction would not vectorize without -ffast-math. The result is the same value in any order (only the sign of
 * a zero minimum could differ, as between the CPU and the GPU's shuffle
 * tree; it decodes to the same values). */
CP_INLINE void bucket_range(const float *v, size_t m, float *mn_p, float *mx_p)
{
    cp_v8f lo0, hi0, lo1, hi1, x0, x1;
    float l[16], h[16];
    size_t i = 0;
    for (int j = 0; j < 8; j++)
        lo0[j] = hi0[j] = v[0];
    lo1 = lo0, hi1 = hi0;
    for (; i + 16 <= m; i += 16) {
        memcpy(&x0, v + i, sizeof(x0));
        memcpy(&x1, v + i + 8, sizeof(x1));
        lo0 = CP_V8_SELECT(x0 < lo0, x0, lo0);
        hi0 = CP_V8_SELECT(x0 > hi0, x0, hi0);
        lo1 = CP_V8_SELECT(x1 < lo1, x1, lo1);
        hi1 = CP_V8_SELECT(x1 > hi1, x1, hi1);
    }
    memcpy(l, &lo0, sizeof(lo0)), memcpy(l + 8, &lo1, sizeof(lo1));
    memcpy(h, &hi0, sizeof(hi0)), memcpy(h + 8, &hi1, sizeof(hi1));
    for (; i < m; i++) {
        l[0] = v[i] < l[0] ? v[i] : l[0];
        h[0] = v[i] > h[0] ? v[i] : h[0];
    }
    for (int j = 1; j < 16; j++) {
        l[0] = l[j] < l[0] ? l[j] : l[0];
        h[0] = h[j] > h[0] ? h[j] : h[0];
    }
    *mn_p = l[0];
    *mx_p = h[0];
}

#define QBLOCK 256 /* levels computed per block, then packed */

/* Packs m levels (m a multiple of 8 except at the stream's end) into the
 * LSB-first stream at byte `out`, for bits in {1, 2, 4, 8}. Inline and
 * called with a literal bits (pack_levels), so per is a constant and the
 * byte loop vectorizes. */
CP_INLINE void pack_aligned(const uint8_t *q, size_t m, unsigned bits,
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

CP_INLINE void pack_levels(const uint8_t *q, size_t m, unsigned bits,
                           unsigned char *out)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* 4 and 2 bits: read the levels of one output byte as one little-endian
     * word and fold it with shifts (levels are < 2^bits, so no bits
     * collide): elementwise, so it vectorizes. */
    if (bits == 4) {
        size_t j = 0;
        for (; j < m / 2; j++) {
            uint16_t w;
            memcpy(&w, q + 2 * j, 2);
            out[j] = (unsigned char)(w | w >> 4);
        }
        pack_aligned(q + 2 * j, m - 2 * j, 4, out + j);
        return;
    }
    if (bits == 2) {
        size_t j = 0;
        for (; j < m / 4; j++) {
            uint32_t w;
            memcpy(&w, q + 4 * j, 4);
            w |= w >> 6;
            out[j] = (unsigned char)(w | w >> 12);
        }
        pack_aligned(q + 4 * j, m - 4 * j, 2, out + j);
        return;
    }
#endif
    switch (bits) {
    case 1: pack_aligned(q, m, 1, out); break;
    case 2: pack_aligned(q, m, 2, out); break;
    case 4: pack_aligned(q, m, 4, out); break;
    default: pack_aligned(q, m, 8, out); break;
    }
}

/* The inverse for m levels starting on a byte boundary. */
CP_INLINE void unpack_aligned(const unsigned char *s, size_t m,
                                  unsigned bits, uint8_t *q)
{
    const unsigned per = 8 / bits, mask = (1u << bits) - 1u;
    size_t full = m / per;
    for (size_t j = 0; j < full; j++)
        for (unsigned k = 0; k < per; k++)
            q[j * per + k] = (uint8_t)((s[j] >> (k * bits)) & mask);
    for (unsigned k = 0; k < m % per; k++)
        q[full * per + k] = (uint8_t)((s[full] >> (k * bits)) & mask);
}

CP_INLINE void unpack_levels(const unsigned char *s, size_t m, unsigned bits,
                          uint8_t *q)
{
    switch (bits) {
    case 1: unpack_aligned(s, m, 1, q); break;
    case 2: unpack_aligned(s, m, 2, q); break;
    case 4: unpack_aligned(s, m, 4, q); break;
    default: unpack_aligned(s, m, 8, q); break;
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

/* out[i] = (y ? y[i] : 0) + alpha * (mn + q[i] * unit) over one block:
 * the same expression as the generic loop, so both give the same bits. */
CP_INLINE void dequant_block(const uint8_t *q, size_t c, float mn, float unit,
                          float alpha, const float *y, float *out)
{
    if (y)
        for (size_t i = 0; i < c; i++)
            out[i] = y[i] + alpha * cp_quant_value(q[i], mn, unit);
    else
        for (size_t i = 0; i < c; i++)
            out[i] = 0.0f + alpha * cp_quant_value(q[i], mn, unit);
}

/* encode (e NULL: of x) and encode_ef (of v = e + g, made a bucket at a
 * time in resid, where the bucket's error then replaces it) in one body. */
CP_INLINE cp_status_t quant_encode_body(const cp_params_t *p, const float *x,
                                        const float *e, const float *g, size_t n,
                                        void *out, size_t cap, size_t *len_p,
                                        float *resid, int *nonfinite)
{
    const size_t nb = quant_nbuckets(p, n);
    const unsigned bits = (unsigned)p->bits;
    const float qmax = (float)((1u << bits) - 1u);
    const int stochastic = p->rounding == CP_ROUND_STOCHASTIC;
    const int aligned = quant_aligned(p);
    unsigned char *hdr = out, *stream = (unsigned char *)out + 8 * nb;
    cp_bitwriter_t w = {.out = stream};
    uint8_t q[QBLOCK];

    if (cap < quant_max_size(p, n))
        return CP_ERR_NOSPACE;
    for (size_t b = 0; b < nb; b++) {
        const size_t lo = b * p->bucket;
        const size_t m = n - lo < p->bucket ? n - lo : p->bucket;
        const float *v = x + lo;
        float mn, mx;
        if (e) { /* ef's prepare, one bucket: v = e + g, finite or not */
            float *r = resid + lo;
            cp_prefetch_next(e + lo + m, n - lo - m, p->bucket);
            cp_prefetch_next(g + lo + m, n - lo - m, p->bucket);
            if (cp_ef_add(e + lo, g + lo, r, m)) {
                *nonfinite = 1;
                return CP_ERR_RANGE;
            }
            v = r;
        } else {
            cp_prefetch_next(v + m, n - lo - m, p->bucket);
        }
        bucket_range(v, m, &mn, &mx);
        const float unit = (mx - mn) / qmax;
        /* A range beyond FLT_MAX (values near both ends of the float
         * range) has no finite unit, or levels whose value overflows: the
         * caller sends such a call exact (collectives/slot.h, CP_SLOT_FAILED).
         * Levels decode in increasing order from mn, so the top one tells:
         * min + qmax * unit can round past FLT_MAX even when unit * qmax
         * does not (mn 3.4e35, mx FLT_MAX, 5 bits). */
        if (cp_nonfinite(unit * qmax) ||
            cp_nonfinite(cp_quant_value((uint32_t)qmax, mn, unit)))
            return CP_ERR_RANGE;
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
                pack_levels(q, c, bits, stream + (lo + k) * bits / 8);
            else
                for (size_t i = 0; i < c; i++)
                    bw_put(&w, q[i], bits);
            if (e) /* ef's commit: the expression of dequant_block */
                dequant_block(q, c, mn, unit, -1.0f, resid + lo + k, resid + lo + k);
        }
    }
    if (!aligned)
        bw_flush(&w);
    *len_p = quant_max_size(p, n);
    return CP_OK;
}

CP_CLONES static cp_status_t quant_encode(const cp_params_t *p, const float *x, size_t n,
                                          void *out, size_t cap, size_t *len_p,
                                          void *scratch)
{
    (void)scratch;
    return quant_encode_body(p, x, NULL, NULL, n, out, cap, len_p, NULL, NULL);
}

CP_CLONES static cp_status_t quant_encode_ef(const cp_params_t *p, const float *e,
                                             const float *g, size_t n, void *out,
                                             size_t cap, size_t *len_p, void *scratch,
                                             float *resid, int *nonfinite)
{
    (void)scratch;
    *nonfinite = 0;
    return quant_encode_body(p, NULL, e, g, n, out, cap, len_p, resid, nonfinite);
}

CP_CLONES static cp_status_t quant_decode(const cp_params_t *p, const void *in, size_t len,
                                float alpha, const float *y, float *out,
                                size_t n)
{
    const size_t nb = quant_nbuckets(p, n);
    const unsigned bits = (unsigned)p->bits;
    const uint32_t qmax = (1u << bits) - 1u;
    const int aligned = quant_aligned(p);
    const unsigned char *hdr = in;
    const unsigned char *s = hdr + 8 * nb;
    const unsigned char *end = hdr + len;
    uint64_t acc = 0;
    unsigned nacc = 0;
    uint8_t q[QBLOCK];

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
        for (size_t k = 0; k < m; k += QBLOCK) {
            const size_t c = m - k < QBLOCK ? m - k : QBLOCK;
            if (aligned) {
                /* Blocks start on a byte boundary (QBLOCK * bits and
                 * bucket * bits are multiples of 8). */
                unpack_levels(s + (lo + k) * bits / 8, c, bits, q);
            } else {
                for (size_t i = 0; i < c; i++) {
                    /* The length check above guarantees the stream holds
                     * n * bits bits, so s never passes end. */
                    while (nacc < bits && s < end) {
                        acc |= (uint64_t)*s++ << nacc;
                        nacc += 8;
                    }
                    q[i] = (uint8_t)(acc & qmax);
                    acc >>= bits;
                    nacc -= bits;
                }
            }
            dequant_block(q, c, mn, unit, alpha, y ? y + lo + k : NULL,
                          out + lo + k);
        }
    }
    return CP_OK;
}

static const char *const rounding_choices[] = {"nearest", "stochastic", NULL};

static const cp_param_t quant_params[] = {
    {.name = "COMMPRESS_BITS", .dflt = "4", .type = CP_PT_INT,
     .offset = offsetof(cp_params_t, bits), .lo = 1, .hi = 8, .must_match = 1,
     .doc = "quant: bits per element."},
    {.name = "COMMPRESS_BUCKET", .dflt = "512", .type = CP_PT_SIZE,
     .offset = offsetof(cp_params_t, bucket), .lo = 1, .hi = 1 << 24,
     .must_match = 1,
     .doc = "quant: elements per bucket (one min and unit per bucket)."},
    {.name = "COMMPRESS_ROUNDING", .dflt = "nearest", .type = CP_PT_ENUM,
     .offset = offsetof(cp_params_t, rounding), .choices = rounding_choices,
     .must_match = 1, .doc = "quant: nearest, or stochastic (unbiased)."},
};

CP_GPU_TWIN(cp_gpu_quant);

/* L-GreCo's candidates: bits 2..8 (and the configured bits if outside). */
static size_t quant_adapt(const cp_params_t *base, cp_params_t *out,
                          size_t max, size_t *v0)
{
    size_t n = 0;
    for (int b = 1; b <= 8 && n < max; b++) {
        if (b == 1 && base->bits != 1)
            continue;
        if (b == base->bits)
            *v0 = n;
        out[n] = *base;
        out[n++].bits = b;
    }
    return n;
}

/* The error of every bit width at once: one range per bucket, and per
 * element each width's level and value computed as encode and decode
 * compute them (the same levels and values as an encode and decode each;
 * only the squares are summed per bucket first). A width whose bucket range overflows is sent exact: error 0, as
 * for cp_lgreco_errors's encode path. */
CP_CLONES static cp_status_t quant_adapt_errors(const cp_params_t *p, size_t np,
                                                const float *x, size_t n,
                                                double *err, void *scratch)
{
    float qmax[CP_QUANT_MAX_SETTINGS], unit[CP_QUANT_MAX_SETTINGS],
        inv[CP_QUANT_MAX_SETTINGS];
    int exact[CP_QUANT_MAX_SETTINGS] = {0};
    (void)scratch;
    if (np > CP_QUANT_MAX_SETTINGS)
        return CP_ERR_INVALID;
    for (size_t j = 0; j < np; j++) {
        err[j] = 0;
        qmax[j] = (float)((1u << p[j].bits) - 1u);
        if (p[j].bucket != p[0].bucket)
            return CP_ERR_INVALID;
    }
    for (size_t lo = 0; lo < n; lo += p[0].bucket) {
        const size_t m = n - lo < p[0].bucket ? n - lo : p[0].bucket;
        const float *v = x + lo;
        float mn, mx;
        bucket_range(v, m, &mn, &mx);
        for (size_t j = 0; j < np; j++) {
            unit[j] = (mx - mn) / qmax[j];
            if (cp_nonfinite(unit[j] * qmax[j]) ||
                cp_nonfinite(cp_quant_value((uint32_t)qmax[j], mn, unit[j])))
                exact[j] = 1;
            inv[j] = unit[j] > 0.0f ? 1.0f / unit[j] : 0.0f;
        }
        for (size_t j = 0; j < np; j++) {
            /* Eight partial sums, so that the loop vectorizes. */
            double e[8] = {0};
            size_t i = 0;
            if (p[j].rounding == CP_ROUND_STOCHASTIC) {
                for (; i < m; i++) {
                    const float r = cp_uniform01(p[j].seed, lo + i);
                    const uint32_t q = cp_quant_level(v[i], mn, inv[j], r, qmax[j]);
                    const double d = (double)cp_quant_value(q, mn, unit[j]) - (double)v[i];
                    e[0] += d * d;
                }
            } else {
                for (; i + 8 <= m; i += 8)
                    for (size_t l = 0; l < 8; l++) {
                        const uint32_t q = cp_quant_level(v[i + l], mn, inv[j], 0.5f, qmax[j]);
                        const double d = (double)cp_quant_value(q, mn, unit[j]) -
                                         (double)v[i + l];
                        e[l] += d * d;
                    }
                for (; i < m; i++) {
                    const uint32_t q = cp_quant_level(v[i], mn, inv[j], 0.5f, qmax[j]);
                    const double d = (double)cp_quant_value(q, mn, unit[j]) - (double)v[i];
                    e[0] += d * d;
                }
            }
            err[j] += ((e[0] + e[1]) + (e[2] + e[3])) + ((e[4] + e[5]) + (e[6] + e[7]));
        }
    }
    for (size_t j = 0; j < np; j++)
        err[j] = exact[j] ? 0.0 : sqrt(err[j]);
    return CP_OK;
}

const cp_compressor_ops_t cp_compressor_quant = {
    .name = "quant",
    .doc = "max-min quantization: 1-8 bits a value, a min and unit a bucket",
    .caps = CP_CODEC_BIASED,
    .params = quant_params,
    .nparams = sizeof(quant_params) / sizeof(*quant_params),
    .gpu = &cp_gpu_quant,
    .max_size = quant_max_size,
    .scratch_size = cp_scratch_none,
    .encode = quant_encode,
    .encode_ef = quant_encode_ef,
    .decode = quant_decode,
    .adapt = quant_adapt,
    .adapt_errors = quant_adapt_errors,
};
