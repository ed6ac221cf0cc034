/* compressors/quant.c on the GPU: max-min quantization per bucket. */
#include "compressors/cuda/device.cuh"

namespace {

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

/* Widths of 1, 2, 4 or 8 bits with whole bytes per bucket: one warp per
 * bucket (k_quant_enc_warp, k_quant_dec_warp). */
bool quant_aligned(const cp_params_t *p)
{
    const int bits = p->bits;
    return (bits == 1 || bits == 2 || bits == 4 || bits == 8) &&
           (p->bucket * (size_t)bits) % 8 == 0;
}

size_t quant_scratch(const cp_params_t *p, size_t n) { return 0; }

cp_status_t quant_encode(const cp_params_t *p, const float *x, size_t n,
                         const cp_gpu_seed_t *sd, unsigned char *slot,
                         void *scratch, cudaStream_t s)
{
    if (n == 0)
        return CP_OK;
    const size_t nb = (n + p->bucket - 1) / p->bucket;
    const float qmax = (float)((1u << p->bits) - 1u);
    const int bits = p->bits;
    const int st = p->rounding == CP_ROUND_STOCHASTIC;
    const unsigned wg = grid_for(nb * 32);
    if (quant_aligned(p)) {
#define CP_QENC(B)                                                           \
    k_quant_enc_warp<B><<<wg, THREADS, 0, s>>>(x, n, p->bucket, st, p->seed, \
                                               sd->d_steps, sd->rank,        \
                                               sd->phase, sd->chunk,         \
                                               sd->count, slot)
        if (bits == 1) CP_QENC(1);
        else if (bits == 2) CP_QENC(2);
        else if (bits == 4) CP_QENC(4);
        else CP_QENC(8);
#undef CP_QENC
    } else {
        k_quant_hdr<<<(unsigned)nb, THREADS, 0, s>>>(x, n, p->bucket, qmax,
                                                     slot);
        size_t nbytes = (n * (size_t)p->bits + 7) / 8;
        k_quant_pack<<<grid_for(nbytes), THREADS, 0, s>>>(
            x, n, p->bucket, p->bits, qmax, st, p->seed, sd->d_steps, sd->rank,
            sd->phase, sd->chunk, sd->count, slot);
    }
    return CP_OK;
}

cp_status_t quant_decode(const cp_params_t *p, const unsigned char *slot,
                         size_t slot_size, uint32_t expect, float alpha,
                         const float *y, float *out, size_t n, const int *abort,
                         int nan_on_abort, int *err, cudaStream_t s)
{
    size_t nb = (n + p->bucket - 1) / p->bucket;
    k_quant_validate<<<grid_for(nb), THREADS, 0, s>>>(slot, nb, abort, err);
    const int bits = p->bits;
    const unsigned wg = grid_for(nb * 32);
    if (quant_aligned(p)) {
#define CP_QDEC(B)                                                          \
    k_quant_dec_warp<B><<<wg, THREADS, 0, s>>>(slot, expect, p->bucket,      \
                                               alpha, y, out, n, abort, err)
        if (bits == 1) CP_QDEC(1);
        else if (bits == 2) CP_QDEC(2);
        else if (bits == 4) CP_QDEC(4);
        else CP_QDEC(8);
#undef CP_QDEC
    } else {
        k_quant_dec<<<grid_for(n), THREADS, 0, s>>>(slot, expect, p->bucket,
                                                    p->bits, alpha, y, out, n,
                                                    abort, err);
    }
    return CP_OK;
}

} // namespace

extern "C" const cp_gpu_codec_t cp_gpu_quant = {
    0, quant_scratch, quant_encode, quant_decode,
};
