/* compressors/topk.c on the GPU: top-k by exact radix select (the GPU has
 * no sampled threshold yet), the sparse wire format of compressor.h. */
#include <cub/cub.cuh>
#include <thrust/iterator/counting_iterator.h>

#include "compressors/cuda/device.cuh"

namespace {

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

size_t topk_scratch_size(const cp_params_t *p, size_t n)
{
    return n ? topk_scratch(n).total : 0;
}

cp_status_t topk_gpu_encode(const cp_params_t *p, const float *x, size_t n,
                            const cp_gpu_seed_t *seed, unsigned char *slot,
                            void *scratch, cudaStream_t s)
{
    return topk_encode(p, x, n, slot, scratch, s);
}

cp_status_t topk_decode(const cp_params_t *p, const unsigned char *slot,
                        size_t slot_size, uint32_t expect, float alpha,
                        const float *y, float *out, size_t n, const int *abort,
                        int nan_on_abort, int *err, cudaStream_t s)
{
    size_t maxk = slot_size >= HDR + 4 ? (slot_size - HDR - 4) / 8 : 0;
    k_topk_validate<<<grid_for(maxk), THREADS, 0, s>>>(slot, slot_size, n,
                                                       abort, err);
    if (n)
        k_base<<<grid_for(n), THREADS, 0, s>>>(y, out, n, abort, err,
                                               nan_on_abort);
    k_topk_scatter<<<grid_for(maxk), THREADS, 0, s>>>(slot, maxk, alpha, out,
                                                      abort, err);
    return CP_OK;
}

} // namespace

extern "C" const cp_gpu_codec_t cp_gpu_topk = {
    CP_GPU_OWN_NAN | CP_GPU_DECODE_EMPTY, topk_scratch_size, topk_gpu_encode,
    topk_decode,
};
