/* 1-bit sign compression as in 1-bit Adam: s = sign(x), sign(0) = +1,
 * packed 8 per byte (bit set = negative, LSB first; -0.0 counts as +), one scale per encoded
 * segment: scale = ||x||_2 / sqrt(n); decode x' = scale * s.
 * Wire: [f32 scale][ceil(n/8) bytes]. */
#include <math.h>

#include "compressors/compressor.h"
#include "util/hd.h"

static size_t sign_max_size(const cp_params_t *p, size_t n)
{
    (void)p;
    return 4 + (n + 7) / 8;
}

static cp_status_t sign_encode(const cp_params_t *p, const float *x, size_t n,
                               void *out, size_t cap, size_t *len_p,
                               void *scratch)
{
    unsigned char *bytes = (unsigned char *)out + 4;
    double sumsq = 0.0;
    size_t nfull = n / 8;
    (void)p;
    (void)scratch;

    if (cap < sign_max_size(p, n))
        return CP_ERR_NOSPACE;
    /* One pass: pack signs and accumulate the norm together. */
    for (size_t b = 0; b < nfull; b++) {
        const float *v = x + 8 * b;
        unsigned byte = 0;
        float part = 0.0f;
        for (int j = 0; j < 8; j++) {
            byte |= (unsigned)(v[j] < 0.0f) << j; /* sign(0) = +1 */
            part += v[j] * v[j];
        }
        bytes[b] = (unsigned char)byte;
        sumsq += part;
    }
    if (n % 8) {
        unsigned byte = 0;
        for (size_t j = 0; j < n % 8; j++) {
            float v = x[8 * nfull + j];
            byte |= (unsigned)(v < 0.0f) << j;
            sumsq += (double)v * v;
        }
        bytes[nfull] = (unsigned char)byte;
    }
    cp_put_f32(out, n ? (float)sqrt(sumsq / (double)n) : 0.0f);
    *len_p = sign_max_size(p, n);
    return CP_OK;
}

/* mask[byte][j]: the sign bit where bit j of byte is set. Built once;
 * concurrent first calls write identical values. */
static const uint32_t (*sign_masks(void))[8]
{
    static uint32_t mask[256][8];
    static volatile int ready;
    if (!ready) {
        for (int b = 0; b < 256; b++)
            for (int j = 0; j < 8; j++)
                mask[b][j] = ((b >> j) & 1) ? 0x80000000u : 0u;
        __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    }
    return (const uint32_t(*)[8])mask;
}

static cp_status_t sign_decode(const cp_params_t *p, const void *in, size_t len,
                               float alpha, const float *y, float *out,
                               size_t n)
{
    const unsigned char *bytes = (const unsigned char *)in + 4;
    float scale;

    if (len != sign_max_size(p, n))
        return CP_ERR_MALFORMED;
    scale = cp_get_f32(in);
    if (!(scale >= 0.0f) || cp_nonfinite(scale))
        return CP_ERR_MALFORMED;
    const float pos = alpha * scale;
    const uint32_t posbits = cp_f32_bits(pos);
    const uint32_t(*mask)[8] = sign_masks();
    const size_t nfull = n / 8;
    /* x' = pos with its sign flipped where the bit is set: a byte selects 8
     * sign masks from an L1-resident table, and the XOR and add vectorize
     * on any x86-64 (no per-lane variable shifts needed). */
    for (size_t b = 0; b < nfull; b++) {
        const uint32_t *m = mask[bytes[b]];
        float *o = out + 8 * b;
        if (y) {
            const float *yy = y + 8 * b;
            for (int j = 0; j < 8; j++)
                o[j] = yy[j] + cp_bits_f32(posbits ^ m[j]);
        } else {
            for (int j = 0; j < 8; j++)
                o[j] = cp_bits_f32(posbits ^ m[j]);
        }
    }
    for (size_t i = 8 * nfull; i < n; i++) {
        float d = ((bytes[i / 8] >> (i % 8)) & 1u) ? -pos : pos;
        out[i] = (y ? y[i] : 0.0f) + d;
    }
    return CP_OK;
}

const cp_compressor_ops_t cp_compressor_sign = {
    .name = "sign",
    .max_size = sign_max_size,
    .scratch_size = cp_scratch_none,
    .encode = sign_encode,
    .decode = sign_decode,
};
