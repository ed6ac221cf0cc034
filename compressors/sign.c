/* 1-bit sign compression as in 1-bit Adam: s = sign(x), sign(0) = +1,
 * packed 8 per byte (bit set = negative, LSB first; -0.0 counts as +), one scale per encoded
 * segment: scale = ||x||_2 / sqrt(n); decode x' = scale * s.
 * Wire: [f32 scale][ceil(n/8) bytes]. */
#include <math.h>
#include <string.h>

#include "compressors/compressor.h"
#include "compressors/codec_math.h"
#include "util/simd.h"

static size_t sign_max_size(const cp_params_t *p, size_t n)
{
    (void)p;
    return 4 + (n + 7) / 8;
}

static size_t sumsq_blocks(size_t n)
{
    return (n + CP_SUMSQ_BLOCK - 1) / CP_SUMSQ_BLOCK;
}

static size_t sign_scratch_size(const cp_params_t *p, size_t n)
{
    (void)p;
    return (sumsq_blocks(n) + 1) * sizeof(double);
}

CP_INLINE double fold_lanes(double *lane)
{
    for (int w = CP_SUMSQ_LANES / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++)
            lane[l] += lane[l + w];
    return lane[0];
}

/* One block of the fixed-order sum (codec_math.h): of squares of floats at
 * level 0, of doubles above. */
CP_INLINE double block_sumsq(const float *x, size_t m)
{
    double lane[CP_SUMSQ_LANES] = {0};
    size_t k = 0;
    for (; k + CP_SUMSQ_LANES <= m; k += CP_SUMSQ_LANES)
        for (int l = 0; l < CP_SUMSQ_LANES; l++)
            lane[l] += (double)x[k + l] * (double)x[k + l];
    for (int l = 0; k + (size_t)l < m; l++)
        lane[l] += (double)x[k + l] * (double)x[k + l];
    return fold_lanes(lane);
}

static double block_sum(const double *x, size_t m)
{
    double lane[CP_SUMSQ_LANES] = {0};
    for (size_t i = 0; i < m; i++)
        lane[i % CP_SUMSQ_LANES] += x[i];
    return fold_lanes(lane);
}

/* Reduces the m block sums in partials level by level, in place (block j
 * reads from index j * BLOCK >= j). */
static double reduce_partials(double *partials, size_t m)
{
    while (m > 1) {
        size_t next = (m + CP_SUMSQ_BLOCK - 1) / CP_SUMSQ_BLOCK;
        for (size_t j = 0; j < next; j++) {
            size_t lo = j * CP_SUMSQ_BLOCK;
            partials[j] = block_sum(partials + lo, m - lo < CP_SUMSQ_BLOCK
                                                       ? m - lo
                                                       : CP_SUMSQ_BLOCK);
        }
        m = next;
    }
    return partials[0];
}

/* reduce_partials without the partials: each level above 0 keeps the lanes
 * of its open block (value j of a block goes to lane j % 32, as in
 * block_sum), a full block folds into the level above, and at the end the
 * open blocks fold bottom up; the first level that received one value in
 * all holds the sum. 2048^8 blocks bound n far beyond size_t. */
double cp_sumsq_fixed(const float *x, size_t n)
{
    enum { LEVELS = 8 };
    double lane[LEVELS][CP_SUMSQ_LANES] = {{0}};
    size_t fill[LEVELS] = {0}, total[LEVELS] = {0};

    if (n == 0)
        return 0.0;
    for (size_t lo = 0; lo < n; lo += CP_SUMSQ_BLOCK) {
        double v = block_sumsq(x + lo, n - lo < CP_SUMSQ_BLOCK ? n - lo : CP_SUMSQ_BLOCK);
        for (int l = 1; l < LEVELS; l++) {
            lane[l][fill[l] % CP_SUMSQ_LANES] += v;
            total[l]++;
            if (++fill[l] < CP_SUMSQ_BLOCK)
                break;
            v = fold_lanes(lane[l]);
            memset(lane[l], 0, sizeof(lane[l]));
            fill[l] = 0;
        }
    }
    for (int l = 1; l < LEVELS - 1; l++) {
        if (total[l] == 1)
            return lane[l][0]; /* 0.0 + v: v exactly */
        if (fill[l] > 0) {
            lane[l + 1][fill[l + 1] % CP_SUMSQ_LANES] += fold_lanes(lane[l]);
            fill[l + 1]++;
            total[l + 1]++;
        }
    }
    return lane[LEVELS - 1][0];
}

/* Packs the signs of m floats (bit set where x < 0) into ceil(m / 8)
 * bytes. Eight 0/1 bytes read as one little-endian word gather into one
 * byte with a multiply: bit 8 j lands on bit 56 + j, nothing carries. */
CP_INLINE void pack_signs(const float *x, size_t m, unsigned char *out)
{
    size_t b = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint8_t neg[CP_SUMSQ_BLOCK];
    size_t full = m / 8 * 8;
    for (size_t i = 0; i < full; i++)
        neg[i] = x[i] < 0.0f; /* sign(0) = +1 */
    for (; b < full / 8; b++) {
        uint64_t w;
        memcpy(&w, neg + 8 * b, 8);
        out[b] = (unsigned char)((w * 0x0102040810204080ull) >> 56);
    }
#endif
    for (; 8 * b < m; b++) {
        unsigned byte = 0;
        for (size_t j = 0; j < 8 && 8 * b + j < m; j++)
            byte |= (unsigned)(x[8 * b + j] < 0.0f) << j;
        out[b] = (unsigned char)byte;
    }
}

/* One pass over memory: each block of CP_SUMSQ_BLOCK elements is packed
 * and summed while it is in cache; the block sums then reduce as in
 * the fixed order of codec_math.h. With e (encode_ef, compressor.h) the
 * block is first made as v = e + g in resid (and checked finite); the
 * scale needs the whole chunk, so a second pass over resid subtracts what
 * the message decodes to, as sign_decode with alpha -1 on top of v would:
 * v + (-scale), its sign flipped where v < 0. */
CP_INLINE cp_status_t sign_encode_body(const cp_params_t *p, const float *x,
                                       const float *e, const float *g, size_t n,
                                       void *out, size_t cap, size_t *len_p,
                                       void *scratch, float *resid, int *nonfinite)
{
    unsigned char *bytes = (unsigned char *)out + 4;
    double *partials = scratch;
    size_t nblk = sumsq_blocks(n);

    if (cap < sign_max_size(p, n))
        return CP_ERR_NOSPACE;
    for (size_t b = 0; b < nblk; b++) {
        size_t lo = b * CP_SUMSQ_BLOCK;
        size_t m = n - lo < CP_SUMSQ_BLOCK ? n - lo : CP_SUMSQ_BLOCK;
        const float *v = x + lo;
        if (e) {
            cp_prefetch_next(e + lo + m, n - lo - m, CP_SUMSQ_BLOCK);
            cp_prefetch_next(g + lo + m, n - lo - m, CP_SUMSQ_BLOCK);
            if (cp_ef_add(e + lo, g + lo, resid + lo, m)) {
                *nonfinite = 1;
                return CP_ERR_RANGE;
            }
            v = resid + lo;
        } else {
            cp_prefetch_next(v + m, n - lo - m, CP_SUMSQ_BLOCK);
        }
        pack_signs(v, m, bytes + lo / 8);
        partials[b] = block_sumsq(v, m);
    }
    double sumsq = n ? reduce_partials(partials, nblk) : 0.0;
    const float scale = n ? (float)sqrt(sumsq / (double)n) : 0.0f;
    cp_put_f32(out, scale);
    if (e) {
        const float pos = -1.0f * scale;
        const float neg = cp_bits_f32(cp_f32_bits(pos) ^ 0x80000000u);
        for (size_t i = 0; i < n; i++)
            resid[i] = resid[i] + (resid[i] < 0.0f ? neg : pos);
    }
    *len_p = sign_max_size(p, n);
    return CP_OK;
}

CP_CLONES static cp_status_t sign_encode(const cp_params_t *p, const float *x,
                                         size_t n, void *out, size_t cap,
                                         size_t *len_p, void *scratch)
{
    return sign_encode_body(p, x, NULL, NULL, n, out, cap, len_p, scratch, NULL, NULL);
}

CP_CLONES static cp_status_t sign_encode_ef(const cp_params_t *p, const float *e,
                                            const float *g, size_t n, void *out,
                                            size_t cap, size_t *len_p, void *scratch,
                                            float *resid, int *nonfinite)
{
    *nonfinite = 0;
    return sign_encode_body(p, NULL, e, g, n, out, cap, len_p, scratch, resid, nonfinite);
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

CP_CLONES static cp_status_t sign_decode(const cp_params_t *p, const void *in, size_t len,
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

CP_GPU_TWIN(cp_gpu_sign);

const cp_compressor_ops_t cp_compressor_sign = {
    .name = "sign",
    .doc = "1-bit sign compression with one scale (norm / sqrt(n)) a chunk",
    .caps = CP_CODEC_BIASED,
    .gpu = &cp_gpu_sign,
    .max_size = sign_max_size,
    .scratch_size = sign_scratch_size,
    .encode = sign_encode,
    .decode = sign_decode,
    .encode_ef = sign_encode_ef,
};
