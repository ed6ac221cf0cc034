/* The codecs as CUDA kernels. Each mirrors its CPU twin in
 * compressors/<codec>.c expression for expression (shared CP_HD math,
 * -fmad=false), so a GPU encoding equals the CPU's byte for byte and a GPU
 * decode equals the CPU's bit for bit; tests/gpu checks it. */
#include <cub/cub.cuh>
#include <thrust/iterator/counting_iterator.h>

#include "compressors/codec_math.h"
#include "compressors/cuda/cp_cuda.h"

#define THREADS 256
#define HDR CP_CUDA_SLOT_HDR

namespace {

unsigned grid_for(size_t n)
{
    size_t b = (n + THREADS - 1) / THREADS;
    if (b < 1)
        b = 1;
    return b > (1u << 20) ? (1u << 20) : (unsigned)b;
}

size_t align256(size_t x) { return (x + 255) & ~(size_t)255; }

size_t sumsq_blocks(size_t n)
{
    return (n + CP_SUMSQ_BLOCK - 1) / CP_SUMSQ_BLOCK;
}

__device__ __forceinline__ uint32_t ld_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

__device__ __forceinline__ void st_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

__device__ __forceinline__ float ld_f32(const unsigned char *p)
{
    return __uint_as_float(ld_u32(p));
}

/* The block of `block` elements (out of `total`) that this warp owns:
 * false when there is none (the whole warp returns together). */
__device__ __forceinline__ bool warp_block(size_t total, size_t block,
                                           size_t *b, size_t *lo, size_t *m,
                                           int *lane)
{
    *b = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32;
    *lane = threadIdx.x & 31;
    if (*b >= (total + block - 1) / block)
        return false;
    *lo = *b * block;
    *m = total - *lo < block ? total - *lo : block;
    return true;
}

/* Whether a decode must not run: the flags of earlier kernels, or a header
 * length other than the expected one (seen alike by every thread). */
__device__ __forceinline__ bool unusable(const unsigned char *slot,
                                         uint32_t expect, const int *abort,
                                         int *err)
{
    /* An aborted step's slots carry no payload (length 0): not malformed. */
    if ((abort && *abort) || *err)
        return true;
    if (ld_u32(slot + 4) != expect) {
        if (blockIdx.x == 0 && threadIdx.x == 0)
            atomicOr(err, 1);
        return true;
    }
    return false;
}

__global__ void k_header(unsigned char *slot, const int *bad, uint32_t len)
{
    int b = bad ? *bad : 0;
    st_u32(slot, b ? 1u : 0u);
    st_u32(slot + 4, b ? 0u : len);
    for (int i = 8; i < HDR; i += 4) /* check, evidence: not used here yet */
        st_u32(slot + i, 0u);
}

__global__ void k_slots_flag(const unsigned char *slots, int n, size_t slot,
                             int *flag)
{
    uint32_t f = 0;
    for (int r = 0; r < n; r++)
        f |= ld_u32(slots + (size_t)r * slot);
    if (f & 1u)
        atomicOr(flag, 1);
}

/* For messages whose length the receiver knows, an abort in a result
 * decode shows as NaN everywhere. */
__global__ void k_fill_nan(float *out, size_t n, const unsigned char *slot,
                           uint32_t expect, const int *abort, int *err,
                           int check_len)
{
    bool bad = (abort && *abort) || *err ||
               (check_len && ld_u32(slot + 4) != expect);
    if (!bad)
        return;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = __uint_as_float(0x7fc00000u);
}

/* ---- none ---- */
__global__ void k_none_dec(const unsigned char *slot, uint32_t expect,
                           float alpha, const float *y, float *out, size_t n,
                           const int *abort, int *err)
{
    if (unusable(slot, expect, abort, err))
        return;
    const unsigned char *pl = slot + HDR;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = (y ? y[i] : 0.0f) + alpha * ld_f32(pl + 4 * i);
}

__global__ void k_none_enc(const float *x, unsigned char *slot, size_t n)
{
    float *o = (float *)(slot + HDR);
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        o[i] = x[i];
}

/* ---- fp16 / bf16 (compressors/cast.c) ----
 * The plain cast and the largest magnitude in one pass; a second kernel
 * writes the scale exponent and, only when that magnitude is out of the
 * format's range, encodes again scaled (rounding toward zero). */
template <int BF>
__global__ void k_cast_enc(const float *x, unsigned char *slot, size_t n,
                           unsigned int *amax_bits)
{
    uint16_t *h = (uint16_t *)(slot + HDR + 4);
    unsigned int m = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        unsigned int a = __float_as_uint(x[i]) & 0x7fffffffu;
        m = a > m ? a : m;
        h[i] = BF ? cp_f32_to_bf16(x[i]) : cp_f32_to_f16(x[i]);
    }
    for (int w = 16; w > 0; w /= 2) {
        unsigned int o = __shfl_down_sync(0xffffffffu, m, w);
        m = o > m ? o : m;
    }
    if ((threadIdx.x & 31) == 0 && m)
        atomicMax(amax_bits, m);
}

template <int BF>
__global__ void k_cast_scale(const float *x, unsigned char *slot, size_t n,
                             const unsigned int *amax_bits)
{
    const int e = cp_cast_exponent(__uint_as_float(*amax_bits),
                                   BF ? CP_BF16_MAX : CP_F16_MAX);
    if (blockIdx.x == 0 && threadIdx.x == 0)
        st_u32(slot + HDR, (uint32_t)e);
    if (e == 0)
        return;
    const float s = cp_bits_f32((uint32_t)(127 - e) << 23);
    uint16_t *h = (uint16_t *)(slot + HDR + 4);
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        h[i] = BF ? cp_f32_to_bf16_rtz(x[i] * s) : cp_f32_to_f16_rtz(x[i] * s);
}

template <int BF>
__global__ void k_cast_dec(const unsigned char *slot, uint32_t expect,
                           float alpha, const float *y, float *out, size_t n,
                           const int *abort, int *err)
{
    if (unusable(slot, expect, abort, err))
        return;
    const uint32_t e = ld_u32(slot + HDR);
    if (e > 127) { /* beyond any encoder's scale: malformed */
        if (blockIdx.x == 0 && threadIdx.x == 0)
            atomicOr(err, 1);
        return;
    }
    const float s = cp_pow2f((int)e);
    const uint16_t *h = (const uint16_t *)(slot + HDR + 4);
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float f = (BF ? cp_bf16_to_f32(h[i]) : cp_f16_to_f32(h[i])) * s;
        out[i] = y ? y[i] + alpha * f : alpha * f;
    }
}

/* ---- sign ---- */
/* The fixed-order sum of squares of codec_math.h: one warp per block,
 * lanes add in sequence, a shfl_down tree folds them as the CPU does. */
__device__ __forceinline__ double warp_fold(double acc)
{
    for (int w = CP_SUMSQ_LANES / 2; w > 0; w /= 2)
        acc += __shfl_down_sync(0xffffffffu, acc, w);
    return acc;
}

__global__ void k_sumsq_level0(const float *x, size_t n, double *out)
{
    size_t warp, lo, m;
    int lane;
    if (!warp_block(n, CP_SUMSQ_BLOCK, &warp, &lo, &m, &lane))
        return;
    double acc = 0.0;
    for (size_t i = lane; i < m; i += CP_SUMSQ_LANES)
        acc += (double)x[lo + i] * (double)x[lo + i];
    acc = warp_fold(acc);
    if (lane == 0)
        out[warp] = acc;
}

__global__ void k_sum_level(const double *in, size_t m, double *out)
{
    size_t warp, lo, mm;
    int lane;
    if (!warp_block(m, CP_SUMSQ_BLOCK, &warp, &lo, &mm, &lane))
        return;
    double acc = 0.0;
    for (size_t i = lane; i < mm; i += CP_SUMSQ_LANES)
        acc += in[lo + i];
    acc = warp_fold(acc);
    if (lane == 0)
        out[warp] = acc;
}

__global__ void k_sign_scale(const double *sum, size_t n, unsigned char *slot)
{
    float scale = n ? (float)sqrt(*sum / (double)n) : 0.0f;
    st_u32(slot + HDR, __float_as_uint(scale));
}

__global__ void k_sign_pack(const float *x, size_t n, unsigned char *slot)
{
    unsigned char *bytes = slot + HDR + 4;
    size_t nbytes = (n + 7) / 8;
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < nbytes;
         j += (size_t)gridDim.x * blockDim.x) {
        unsigned byte = 0;
        for (int k = 0; k < 8 && 8 * j + k < n; k++)
            byte |= (unsigned)(x[8 * j + k] < 0.0f) << k;
        bytes[j] = (unsigned char)byte;
    }
}

__global__ void k_sign_dec(const unsigned char *slot, uint32_t expect,
                           float alpha, const float *y, float *out, size_t n,
                           const int *abort, int *err, int nan_on_abort)
{
    const float scale = ld_f32(slot + HDR);
    bool bad = unusable(slot, expect, abort, err);
    if (!bad && (!(scale >= 0.0f) || cp_nonfinite(scale))) {
        if (blockIdx.x == 0 && threadIdx.x == 0)
            atomicOr(err, 1);
        bad = true; /* every thread sees the same scale */
    }
    const unsigned char *bytes = slot + HDR + 4;
    const float pos = alpha * scale;
    const size_t nfull = 8 * (n / 8);
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        if (bad) {
            if (nan_on_abort)
                out[i] = __uint_as_float(0x7fc00000u);
            continue;
        }
        float d = ((bytes[i / 8] >> (i % 8)) & 1u) ? -pos : pos;
        /* As the CPU: whole bytes add d to y (or store d), the tail adds d
         * to y or to 0.0f. */
        if (i < nfull)
            out[i] = y ? y[i] + d : d;
        else
            out[i] = (y ? y[i] : 0.0f) + d;
    }
}

/* ---- quant ---- */
__global__ void k_quant_hdr(const float *x, size_t n, size_t bucket, float qmax,
                            unsigned char *slot)
{
    __shared__ float lo_s[THREADS], hi_s[THREADS];
    const size_t b = blockIdx.x, lo = b * bucket;
    const size_t m = n - lo < bucket ? n - lo : bucket;
    float lo_v = x[lo], hi_v = x[lo];
    for (size_t i = threadIdx.x; i < m; i += blockDim.x) {
        float v = x[lo + i];
        lo_v = v < lo_v ? v : lo_v;
        hi_v = v > hi_v ? v : hi_v;
    }
    lo_s[threadIdx.x] = lo_v;
    hi_s[threadIdx.x] = hi_v;
    __syncthreads();
    for (int w = THREADS / 2; w > 0; w /= 2) {
        if (threadIdx.x < w) {
            float a = lo_s[threadIdx.x + w], c = hi_s[threadIdx.x + w];
            lo_s[threadIdx.x] = a < lo_s[threadIdx.x] ? a : lo_s[threadIdx.x];
            hi_s[threadIdx.x] = c > hi_s[threadIdx.x] ? c : hi_s[threadIdx.x];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        unsigned char *h = slot + HDR + 8 * b;
        st_u32(h, __float_as_uint(lo_s[0]));
        st_u32(h + 4, __float_as_uint((hi_s[0] - lo_s[0]) / qmax));
    }
}

/* One thread per byte of the stream: gathers the bits of the levels that
 * cover it (a level straddling two bytes is computed by both threads). */
__global__ void k_quant_pack(const float *x, size_t n, size_t bucket, int bits,
                             float qmax, int stochastic, uint64_t seed_base,
                             const uint64_t *steps, int rank, int phase,
                             int chunk, uint64_t count, unsigned char *slot)
{
    const size_t nb = (n + bucket - 1) / bucket;
    const unsigned char *hdr = slot + HDR;
    unsigned char *stream = slot + HDR + 8 * nb;
    const size_t nbits = n * (size_t)bits, nbytes = (nbits + 7) / 8;
    const uint64_t seed =
        stochastic ? cp_seed_mix(seed_base, rank, phase, chunk, *steps, count)
                   : 0;
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < nbytes;
         j += (size_t)gridDim.x * blockDim.x) {
        unsigned byte = 0;
        size_t last = (size_t)-1;
        uint32_t q = 0;
        for (int k = 0; k < 8; k++) {
            size_t bit = 8 * j + k;
            if (bit >= nbits)
                break;
            size_t e = bit / bits;
            if (e != last) {
                const size_t b = e / bucket;
                const float mn = ld_f32(hdr + 8 * b);
                const float unit = ld_f32(hdr + 8 * b + 4);
                const float inv = unit > 0.0f ? 1.0f / unit : 0.0f;
                const float r = stochastic ? cp_uniform01(seed, e) : 0.5f;
                q = cp_quant_level(x[e], mn, inv, r, qmax);
                last = e;
            }
            byte |= ((q >> (bit % bits)) & 1u) << k;
        }
        stream[j] = (unsigned char)byte;
    }
}

/* Aligned widths (1, 2, 4, 8 bits, bucket * bits a multiple of 8): one warp
 * per bucket does it all. Lane l holds elements l + 32 k; min and max by
 * shuffles (exact in any order); a byte's levels come from `per`
 * neighbouring lanes. No integer division per element. */
template <int BITS>
__global__ void k_quant_enc_warp(const float *x, size_t n, size_t bucket,
                                 int stochastic, uint64_t seed_base,
                                 const uint64_t *steps, int rank, int phase,
                                 int chunk, uint64_t count, unsigned char *slot)
{
    constexpr int per = 8 / BITS;
    const float qmax = (float)((1u << BITS) - 1u);
    size_t b, lo, m;
    int lane;
    if (!warp_block(n, bucket, &b, &lo, &m, &lane))
        return;
    const size_t nb = (n + bucket - 1) / bucket;
    const float *v = x + lo;
    float mn = v[0], mx = v[0];
    for (size_t i = lane; i < m; i += 32) {
        float t = v[i];
        mn = t < mn ? t : mn;
        mx = t > mx ? t : mx;
    }
    for (int w = 16; w > 0; w /= 2) {
        float a = __shfl_xor_sync(0xffffffffu, mn, w);
        float c = __shfl_xor_sync(0xffffffffu, mx, w);
        mn = a < mn ? a : mn;
        mx = c > mx ? c : mx;
    }
    const float unit = (mx - mn) / qmax;
    const float inv = unit > 0.0f ? 1.0f / unit : 0.0f;
    unsigned char *hdr = slot + HDR + 8 * b;
    if (lane == 0) {
        st_u32(hdr, __float_as_uint(mn));
        st_u32(hdr + 4, __float_as_uint(unit));
    }
    unsigned char *stream = slot + HDR + 8 * nb + lo * BITS / 8;
    const uint64_t seed =
        stochastic ? cp_seed_mix(seed_base, rank, phase, chunk, *steps, count)
                   : 0;
    for (size_t k = 0; k < m; k += 32) {
        const size_t i = k + lane;
        uint32_t q = 0;
        if (i < m) {
            const float r = stochastic ? cp_uniform01(seed, lo + i) : 0.5f;
            q = cp_quant_level(v[i], mn, inv, r, qmax);
        }
        uint32_t byte = q;
        for (int j = 1; j < per; j++)
            byte |= __shfl_down_sync(0xffffffffu, q, j) << (j * BITS);
        if (lane % per == 0 && i < m)
            stream[i / per] = (unsigned char)byte;
    }
}

template <int BITS>
__global__ void k_quant_dec_warp(const unsigned char *slot, uint32_t expect,
                                 size_t bucket, float alpha, const float *y,
                                 float *out, size_t n, const int *abort,
                                 int *err)
{
    if (unusable(slot, expect, abort, err))
        return;
    constexpr int per = 8 / BITS;
    constexpr uint32_t qmax = (1u << BITS) - 1u;
    size_t b, lo, m;
    int lane;
    if (!warp_block(n, bucket, &b, &lo, &m, &lane))
        return;
    const size_t nb = (n + bucket - 1) / bucket;
    const float mn = ld_f32(slot + HDR + 8 * b), unit = ld_f32(slot + HDR + 4 + 8 * b);
    const unsigned char *stream = slot + HDR + 8 * nb + lo * BITS / 8;
    for (size_t i = lane; i < m; i += 32) {
        const uint32_t q = (stream[i / per] >> ((i % per) * BITS)) & qmax;
        float d = alpha * cp_quant_value(q, mn, unit);
        out[lo + i] = (y ? y[lo + i] : 0.0f) + d;
    }
}

__global__ void k_quant_validate(const unsigned char *slot, size_t nb,
                                 const int *abort, int *err)
{
    if (abort && *abort)
        return;
    for (size_t b = blockIdx.x * (size_t)blockDim.x + threadIdx.x; b < nb;
         b += (size_t)gridDim.x * blockDim.x) {
        float mn = ld_f32(slot + HDR + 8 * b), unit = ld_f32(slot + HDR + 4 + 8 * b);
        if (cp_nonfinite(mn) || cp_nonfinite(unit) || unit < 0.0f)
            atomicOr(err, 1);
    }
}

__global__ void k_quant_dec(const unsigned char *slot, uint32_t expect,
                            size_t bucket, int bits, float alpha,
                            const float *y, float *out, size_t n,
                            const int *abort, int *err)
{
    if (unusable(slot, expect, abort, err))
        return;
    const size_t nb = (n + bucket - 1) / bucket;
    const unsigned char *hdr = slot + HDR, *stream = slot + HDR + 8 * nb;
    const size_t nbytes = (n * (size_t)bits + 7) / 8;
    const uint32_t qmax = (1u << bits) - 1u;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t bit = i * (size_t)bits, byte = bit / 8;
        uint32_t w = stream[byte];
        if (byte + 1 < nbytes)
            w |= (uint32_t)stream[byte + 1] << 8;
        const uint32_t q = (w >> (bit % 8)) & qmax;
        const size_t b = i / bucket;
        float d = alpha * cp_quant_value(q, ld_f32(hdr + 8 * b),
                                         ld_f32(hdr + 8 * b + 4));
        out[i] = (y ? y[i] : 0.0f) + d;
    }
}

/* ---- top-k (exact) ---- */
struct topk_state {
    uint32_t prefix, pmask;
    unsigned long long k; /* remaining rank within the current digit */
    unsigned long long eq; /* elements equal to T (after the last level) */
    int num;              /* selected count (CUB output) */
};

__global__ void k_topk_init(topk_state *st, unsigned long long k)
{
    st->prefix = 0;
    st->pmask = 0;
    st->k = k;
}

__constant__ unsigned c_shift[3] = {20, 10, 0};
__constant__ uint32_t c_width[3] = {2048, 1024, 1024};

__global__ void k_topk_hist(const float *x, size_t n, int level,
                            const topk_state *st, unsigned int *hist)
{
    __shared__ unsigned int h[2048];
    const uint32_t width = c_width[level];
    for (uint32_t d = threadIdx.x; d < width; d += blockDim.x)
        h[d] = 0;
    __syncthreads();
    const uint32_t prefix = st->prefix, pmask = st->pmask;
    const int lane = threadIdx.x & 31;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    /* Gradient magnitudes crowd into few bins: lanes with the same bin add
     * once (one atomic per distinct bin per warp). The trip count is
     * uniform across the warp, as __match_any_sync requires. */
    for (size_t i0 = blockIdx.x * (size_t)blockDim.x + (threadIdx.x & ~31u);
         i0 < n; i0 += stride) {
        const size_t i = i0 + lane;
        uint32_t bin = 0xffffffffu;
        if (i < n) {
            uint32_t m = cp_mag_bits(x[i]);
            if ((m & pmask) == prefix)
                bin = (m >> c_shift[level]) & (width - 1);
        }
        /* Levels 1 and 2 keep few elements: most warps have none left. */
        if (!__any_sync(0xffffffffu, bin != 0xffffffffu))
            continue;
        const unsigned peers = __match_any_sync(0xffffffffu, bin);
        if (bin != 0xffffffffu && lane == __ffs(peers) - 1)
            atomicAdd(&h[bin], (unsigned)__popc(peers));
    }
    __syncthreads();
    for (uint32_t d = threadIdx.x; d < width; d += blockDim.x)
        if (h[d])
            atomicAdd(&hist[d], h[d]);
}

/* As radix_select in compressors/topk.c: the digit holding the k-th
 * largest magnitude, and the rank left within it. */
__global__ void k_topk_pick(const unsigned int *hist, int level,
                            topk_state *st)
{
    const uint32_t width = c_width[level];
    unsigned long long k = st->k;
    uint32_t d = width;
    while (d-- > 0) {
        if (hist[d] >= k)
            break;
        k -= hist[d];
    }
    st->prefix |= d << c_shift[level];
    st->pmask |= (width - 1) << c_shift[level];
    st->k = k;
    st->eq = hist[d];
}

/* The common case: every element equal to T is needed (eq == ties), so the
 * candidates |x| >= T are exactly the top k: copy them out in parallel. */
__global__ void k_topk_gather(const float *x, const uint32_t *cand,
                              const topk_state *st, size_t k, uint32_t *oi,
                              float *ov)
{
    if (st->eq != st->k)
        return;
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < k;
         j += (size_t)gridDim.x * blockDim.x) {
        uint32_t i = cand[j];
        oi[j] = i;
        ov[j] = x[i];
    }
}

/* Candidates: |x| >= T, the k-th largest magnitude (indices in order). */
struct topk_ge {
    const float *x;
    const topk_state *st;
    __device__ bool operator()(uint32_t i) const
    {
        return cp_mag_bits(x[i]) >= st->prefix;
    }
};

/* Surplus ties: one block walks the candidates in order, keeping all above
 * T and the first `ties` equal to T (the CPU's tie rule). Slow for long
 * lists, but only reached when the k-th magnitude repeats. */
#define COMPACT_THREADS 1024
__global__ void k_topk_compact(const float *x, const uint32_t *cand,
                               const topk_state *st, uint32_t *oi, float *ov)
{
    typedef cub::BlockScan<int, COMPACT_THREADS> scan_t;
    __shared__ typename scan_t::TempStorage tmp;
    __shared__ int agg_eq, agg_keep;
    if (st->eq == st->k)
        return; /* k_topk_gather did it */
    const uint32_t t = st->prefix;
    const unsigned long long ties = st->k;
    const int numc = st->num;
    unsigned long long eq_base = 0, out_base = 0;
    for (int tile = 0; tile < numc; tile += COMPACT_THREADS) {
        const int j = tile + (int)threadIdx.x;
        uint32_t idx = 0, m = 0;
        if (j < numc) {
            idx = cand[j];
            m = cp_mag_bits(x[idx]);
        }
        int eq = j < numc && m == t, eq_rank, keep, pos;
        scan_t(tmp).ExclusiveSum(eq, eq_rank);
        if (threadIdx.x == COMPACT_THREADS - 1)
            agg_eq = eq_rank + eq;
        __syncthreads();
        keep = j < numc && (m > t || (eq && eq_base + eq_rank < ties));
        scan_t(tmp).ExclusiveSum(keep, pos);
        if (threadIdx.x == COMPACT_THREADS - 1)
            agg_keep = pos + keep;
        if (keep) {
            oi[out_base + pos] = idx;
            ov[out_base + pos] = x[idx];
        }
        __syncthreads();
        eq_base += agg_eq;
        out_base += agg_keep;
        __syncthreads();
    }
}

__global__ void k_put_u32(unsigned char *p, uint32_t v) { st_u32(p, v); }

__global__ void k_topk_validate(const unsigned char *slot, size_t slot_size,
                                size_t n, const int *abort, int *err)
{
    if (abort && *abort)
        return;
    const unsigned char *pl = slot + HDR;
    const uint32_t len = ld_u32(slot + 4), k = ld_u32(pl);
    if (len < 4 || len > slot_size - HDR || k > n || len != 4 + 8ull * k) {
        if (blockIdx.x == 0 && threadIdx.x == 0)
            atomicOr(err, 1);
        return;
    }
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < k;
         j += (size_t)gridDim.x * blockDim.x) {
        uint32_t i = ld_u32(pl + 4 + 4 * j);
        if (i >= n || (j > 0 && i <= ld_u32(pl + 4 * j)) ||
            cp_nonfinite(ld_f32(pl + 4 + 4ull * k + 4 * j)))
            atomicOr(err, 1);
    }
}

__global__ void k_base(const float *y, float *out, size_t n, const int *abort,
                       int *err, int nan_on_abort)
{
    bool bad = (abort && *abort) || *err;
    if (bad ? !nan_on_abort : y == out)
        return; /* untouched state, or in-place accumulation */
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = bad ? __uint_as_float(0x7fc00000u) : (y ? y[i] : 0.0f);
}

__global__ void k_topk_scatter(const unsigned char *slot, size_t maxk,
                               float alpha, float *out, const int *abort,
                               int *err)
{
    if ((abort && *abort) || *err)
        return;
    const unsigned char *pl = slot + HDR;
    const uint32_t k = ld_u32(pl);
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
         j < k && j < maxk; j += (size_t)gridDim.x * blockDim.x) {
        uint32_t i = ld_u32(pl + 4 + 4 * j);
        out[i] += alpha * ld_f32(pl + 4 + 4ull * k + 4 * j);
    }
}

/* ---- feedback, types, steps ---- */
template <typename T> __device__ __forceinline__ float load_as_f32(const T *g, size_t i);
template <> __device__ __forceinline__ float load_as_f32(const float *g, size_t i) { return g[i]; }
template <> __device__ __forceinline__ float load_as_f32(const uint16_t *g, size_t i) { return cp_f16_to_f32(g[i]); }

template <typename T, int BF>
__global__ void k_prepare(const float *state, const T *g, float *v, size_t n,
                          int *bad)
{
    int found = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float gv = BF ? cp_bf16_to_f32(((const uint16_t *)g)[i])
                      : load_as_f32<T>(g, i);
        float x = state ? state[i] + gv : gv;
        v[i] = x;
        found |= cp_nonfinite(x);
    }
    if (found)
        atomicOr(bad, 1);
}

template <int BF>
__global__ void k_store16(const float *in, uint16_t *out, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = BF ? cp_f32_to_bf16_ovf(in[i]) : cp_f32_to_f16_ovf(in[i]);
}

__global__ void k_step(unsigned long long *steps, const int *abort,
                       const int *err)
{
    if (!((abort && *abort) || *err))
        *steps += 1;
}

/* Byte offsets of the top-k scratch. */
struct topk_layout {
    size_t state, hist, cand, temp, temp_bytes, total;
};

topk_layout topk_scratch(size_t n)
{
    topk_layout L;
    size_t sel = 0;
    cub::DeviceSelect::If(nullptr, sel, thrust::counting_iterator<uint32_t>(0),
                          (uint32_t *)nullptr, (int *)nullptr, (int)n,
                          topk_ge{nullptr, nullptr});
    L.temp_bytes = sel;
    L.state = 0;
    L.hist = align256(sizeof(topk_state));
    L.cand = L.hist + align256(2048 * sizeof(unsigned int));
    L.temp = L.cand + align256(n * sizeof(uint32_t));
    L.total = L.temp + align256(L.temp_bytes);
    return L;
}

cp_status_t topk_encode(const cp_params_t *p, const float *x, size_t n,
                        unsigned char *slot, void *scratch, cudaStream_t s)
{
    if (n > (size_t)INT32_MAX)
        return CP_ERR_UNSUPPORTED;
    const size_t k = n ? cp_topk_k(p->density, n) : 0;
    unsigned char *pl = slot + HDR;
    k_put_u32<<<1, 1, 0, s>>>(pl, (uint32_t)k);
    if (n == 0)
        return CP_OK;
    topk_layout L = topk_scratch(n);
    char *base = (char *)scratch;
    topk_state *st = (topk_state *)(base + L.state);
    unsigned int *hist = (unsigned int *)(base + L.hist);
    uint32_t *cand = (uint32_t *)(base + L.cand);
    size_t tb = L.temp_bytes;
    k_topk_init<<<1, 1, 0, s>>>(st, k);
    for (int level = 0; level < 3; level++) {
        cudaMemsetAsync(hist, 0, 2048 * sizeof(unsigned int), s);
        k_topk_hist<<<grid_for(n) > 1024 ? 1024 : grid_for(n), THREADS, 0, s>>>(
            x, n, level, st, hist);
        k_topk_pick<<<1, 1, 0, s>>>(hist, level, st);
    }
    cub::DeviceSelect::If(base + L.temp, tb,
                          thrust::counting_iterator<uint32_t>(0), cand,
                          &st->num, (int)n, topk_ge{x, st}, s);
    uint32_t *oi = (uint32_t *)(pl + 4);
    float *ov = (float *)(pl + 4 + 4 * k);
    k_topk_gather<<<grid_for(k), THREADS, 0, s>>>(x, cand, st, k, oi, ov);
    k_topk_compact<<<1, COMPACT_THREADS, 0, s>>>(x, cand, st, oi, ov);
    return CP_OK;
}

} // namespace

extern "C" {

size_t cp_cuda_encode_scratch(const cp_compressor_ops_t *codec,
                              const cp_params_t *p, size_t n)
{
    (void)p;
    if (codec == &cp_compressor_topk)
        return n ? topk_scratch(n).total : 0;
    if (codec == &cp_compressor_sign)
        return (sumsq_blocks(n) + sumsq_blocks(sumsq_blocks(n)) + 2) *
               sizeof(double);
    if (codec == &cp_compressor_fp16 || codec == &cp_compressor_bf16)
        return sizeof(unsigned int); /* the largest magnitude's bits */
    return 0;
}

cp_status_t cp_cuda_last_error(void)
{
    cudaError_t e = cudaGetLastError();
    return e == cudaSuccess ? CP_OK : CP_ERR_TRANSPORT;
}

cp_status_t cp_cuda_encode_slot(const cp_compressor_ops_t *codec,
                                const cp_params_t *p, const float *d_x,
                                size_t n, const int *d_bad,
                                const uint64_t *d_steps, int rank, int phase,
                                int chunk, uint64_t count, unsigned char *d_slot,
                                size_t slot_size, void *d_scratch,
                                cudaStream_t s)
{
    const unsigned g = grid_for(n);
    size_t len = codec->max_size(p, n);
    if (len + HDR > slot_size)
        return CP_ERR_NOSPACE;
    if (codec == &cp_compressor_none) {
        if (n)
            k_none_enc<<<g, THREADS, 0, s>>>(d_x, d_slot, n);
    } else if (codec == &cp_compressor_fp16 || codec == &cp_compressor_bf16) {
        unsigned int *amax = (unsigned int *)d_scratch;
        cudaMemsetAsync(amax, 0, sizeof(*amax), s);
        if (codec == &cp_compressor_fp16) {
            if (n)
                k_cast_enc<0><<<g, THREADS, 0, s>>>(d_x, d_slot, n, amax);
            k_cast_scale<0><<<g, THREADS, 0, s>>>(d_x, d_slot, n, amax);
        } else {
            if (n)
                k_cast_enc<1><<<g, THREADS, 0, s>>>(d_x, d_slot, n, amax);
            k_cast_scale<1><<<g, THREADS, 0, s>>>(d_x, d_slot, n, amax);
        }
    } else if (codec == &cp_compressor_sign) {
        /* Levels ping-pong between two partial arrays. */
        double *buf[2] = {(double *)d_scratch,
                          (double *)d_scratch + sumsq_blocks(n) + 1};
        size_t m = sumsq_blocks(n);
        int cur = 0;
        if (n) {
            k_sumsq_level0<<<grid_for(m * 32), THREADS, 0, s>>>(d_x, n, buf[0]);
            while (m > 1) {
                size_t next = sumsq_blocks(m);
                k_sum_level<<<grid_for(next * 32), THREADS, 0, s>>>(buf[cur], m,
                                                                    buf[1 - cur]);
                cur = 1 - cur;
                m = next;
            }
        }
        k_sign_scale<<<1, 1, 0, s>>>(buf[cur], n, d_slot);
        if (n)
            k_sign_pack<<<grid_for((n + 7) / 8), THREADS, 0, s>>>(d_x, n, d_slot);
    } else if (codec == &cp_compressor_quant) {
        const size_t nb = (n + p->bucket - 1) / p->bucket;
        const float qmax = (float)((1u << p->bits) - 1u);
        const int bits = p->bits;
        const int fast = (bits == 1 || bits == 2 || bits == 4 || bits == 8) &&
                         (p->bucket * (size_t)bits) % 8 == 0;
        const int st = p->rounding == CP_ROUND_STOCHASTIC;
        const unsigned wg = grid_for(nb * 32);
#define CP_QENC(B)                                                          \
    k_quant_enc_warp<B><<<wg, THREADS, 0, s>>>(d_x, n, p->bucket, st, p->seed,  \
                                               d_steps, rank, phase, chunk,   \
                                               count, d_slot)
        if (n && fast) {
            if (bits == 1) CP_QENC(1);
            else if (bits == 2) CP_QENC(2);
            else if (bits == 4) CP_QENC(4);
            else CP_QENC(8);
        } else if (n) {
#undef CP_QENC
            k_quant_hdr<<<(unsigned)nb, THREADS, 0, s>>>(d_x, n, p->bucket,
                                                         qmax, d_slot);
            size_t nbytes = (n * (size_t)p->bits + 7) / 8;
            k_quant_pack<<<grid_for(nbytes), THREADS, 0, s>>>(
                d_x, n, p->bucket, p->bits, qmax,
                p->rounding == CP_ROUND_STOCHASTIC, p->seed, d_steps, rank,
                phase, chunk, count, d_slot);
        }
    } else if (codec == &cp_compressor_topk) {
        cp_status_t st = topk_encode(p, d_x, n, d_slot, d_scratch, s);
        if (st != CP_OK)
            return st;
    } else {
        return CP_ERR_UNSUPPORTED;
    }
    k_header<<<1, 1, 0, s>>>(d_slot, d_bad, (uint32_t)len);
    return cp_cuda_last_error();
}

cp_status_t cp_cuda_decode_slot(const cp_compressor_ops_t *codec,
                                const cp_params_t *p,
                                const unsigned char *d_slot, size_t slot_size,
                                float alpha, const float *d_y, float *d_out,
                                size_t n, const int *d_abort, int nan_on_abort,
                                int *d_err, cudaStream_t s)
{
    const unsigned g = grid_for(n);
    const uint32_t expect = (uint32_t)codec->max_size(p, n);
    if (codec == &cp_compressor_topk) {
        size_t maxk = slot_size >= HDR + 4 ? (slot_size - HDR - 4) / 8 : 0;
        k_topk_validate<<<grid_for(maxk), THREADS, 0, s>>>(d_slot, slot_size,
                                                           n, d_abort, d_err);
        if (n)
            k_base<<<g, THREADS, 0, s>>>(d_y, d_out, n, d_abort, d_err,
                                         nan_on_abort);
        k_topk_scatter<<<grid_for(maxk), THREADS, 0, s>>>(d_slot, maxk, alpha,
                                                          d_out, d_abort, d_err);
        return cp_cuda_last_error();
    }
    if (n == 0)
        return cp_cuda_last_error();
    if (codec == &cp_compressor_none)
        k_none_dec<<<g, THREADS, 0, s>>>(d_slot, expect, alpha, d_y, d_out, n,
                                         d_abort, d_err);
    else if (codec == &cp_compressor_fp16)
        k_cast_dec<0><<<g, THREADS, 0, s>>>(d_slot, expect, alpha, d_y, d_out,
                                            n, d_abort, d_err);
    else if (codec == &cp_compressor_bf16)
        k_cast_dec<1><<<g, THREADS, 0, s>>>(d_slot, expect, alpha, d_y, d_out,
                                            n, d_abort, d_err);
    else if (codec == &cp_compressor_sign)
        k_sign_dec<<<g, THREADS, 0, s>>>(d_slot, expect, alpha, d_y, d_out, n,
                                         d_abort, d_err, nan_on_abort);
    else if (codec == &cp_compressor_quant) {
        size_t nb = (n + p->bucket - 1) / p->bucket;
        k_quant_validate<<<grid_for(nb), THREADS, 0, s>>>(d_slot, nb, d_abort,
                                                          d_err);
        const int bits = p->bits;
        const unsigned wg = grid_for(nb * 32);
        if ((bits == 1 || bits == 2 || bits == 4 || bits == 8) &&
            (p->bucket * (size_t)bits) % 8 == 0) {
#define CP_QDEC(B)                                                          \
    k_quant_dec_warp<B><<<wg, THREADS, 0, s>>>(d_slot, expect, p->bucket,    \
                                               alpha, d_y, d_out, n, d_abort, \
                                               d_err)
            if (bits == 1) CP_QDEC(1);
            else if (bits == 2) CP_QDEC(2);
            else if (bits == 4) CP_QDEC(4);
            else CP_QDEC(8);
#undef CP_QDEC
        } else {
            k_quant_dec<<<g, THREADS, 0, s>>>(d_slot, expect, p->bucket, p->bits,
                                              alpha, d_y, d_out, n, d_abort,
                                              d_err);
        }
    } else
        return CP_ERR_UNSUPPORTED;
    /* Codecs whose kernels return early on abort: show it as NaN. */
    if (nan_on_abort && codec != &cp_compressor_sign)
        k_fill_nan<<<g, THREADS, 0, s>>>(d_out, n, d_slot, expect, d_abort,
                                         d_err, 1);
    return cp_cuda_last_error();
}

cp_status_t cp_cuda_slots_flag(const unsigned char *d_slots, int n,
                               size_t slot_size, int *d_flag, cudaStream_t s)
{
    k_slots_flag<<<1, 1, 0, s>>>(d_slots, n, slot_size, d_flag);
    return cp_cuda_last_error();
}

cp_status_t cp_cuda_prepare(const float *d_state, const void *d_g,
                            cp_dtype_t gtype, float *d_v, size_t n, int *d_bad,
                            cudaStream_t s)
{
    if (n == 0)
        return CP_OK;
    const unsigned g = grid_for(n);
    if (gtype == CP_DT_F32)
        k_prepare<float, 0><<<g, THREADS, 0, s>>>(d_state, (const float *)d_g,
                                                  d_v, n, d_bad);
    else if (gtype == CP_DT_F16)
        k_prepare<uint16_t, 0><<<g, THREADS, 0, s>>>(
            d_state, (const uint16_t *)d_g, d_v, n, d_bad);
    else
        k_prepare<uint16_t, 1><<<g, THREADS, 0, s>>>(
            d_state, (const uint16_t *)d_g, d_v, n, d_bad);
    return cp_cuda_last_error();
}

cp_status_t cp_cuda_store(const float *d_in, void *d_out, cp_dtype_t otype,
                          size_t n, cudaStream_t s)
{
    if (n == 0)
        return CP_OK;
    if (otype == CP_DT_F32)
        cudaMemcpyAsync(d_out, d_in, n * sizeof(float),
                        cudaMemcpyDeviceToDevice, s);
    else if (otype == CP_DT_F16)
        k_store16<0><<<grid_for(n), THREADS, 0, s>>>(d_in, (uint16_t *)d_out, n);
    else
        k_store16<1><<<grid_for(n), THREADS, 0, s>>>(d_in, (uint16_t *)d_out, n);
    return cp_cuda_last_error();
}

cp_status_t cp_cuda_step(uint64_t *d_steps, const int *d_abort,
                         const int *d_err, cudaStream_t s)
{
    k_step<<<1, 1, 0, s>>>((unsigned long long *)d_steps, d_abort, d_err);
    return cp_cuda_last_error();
}

} // extern "C"
