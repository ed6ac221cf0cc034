/* compressors/topk.c on the GPU: the same selection rules, the same wire
 * format (f32 or fp16 values), so the message equals the CPU's byte for
 * byte.
 *
 * Exact: radix select over the magnitude bits (three histogram passes with
 * warp-aggregated atomics), one cub::DeviceSelect::If for |x| >= T, ties
 * resolved in index order.
 *
 * Sampled (COMMPRESS_TOPK_SELECT=sampled, or auto from
 * COMMPRESS_TOPK_SAMPLE_MIN elements; DGC's threshold): the sample the CPU
 * takes (every stride-th element from the seed's offset) gives T by the
 * same radix select; the CPU's up to ten rounds of "count |x| >= thr, lower
 * thr by 0.8 while fewer than 0.8 k pass" are one pass here, which counts
 * every element against all ten thresholds at once, and a one-thread kernel
 * replays the CPU's loop on the counts. Then, as on the CPU: more than 2k
 * candidates fall back to the exact selection, at most k are the message,
 * and between k and 2k the exact selection runs on the candidates alone.
 * The host cannot see which case holds: every case's kernels are enqueued
 * and return at once unless theirs is the one (a device-side mode), so the
 * call never synchronizes and captures into a CUDA graph as before.
 *
 * The message may hold fewer than k entries (sampled, c <= k): its length
 * is written into the slot header here (CP_GPU_OWN_LEN), from the device. */
#include <cub/cub.cuh>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/iterator/transform_iterator.h>

#include "compressors/cuda/device.cuh"

namespace {

#define TOPK_FP16 0x80000000u
#define ROUNDS 10

enum { MODE_EXACT = 0, MODE_ALL = 1, MODE_SELECT = 2 };

struct topk_state {
    uint32_t prefix, pmask;
    unsigned long long k;  /* remaining rank within the current digit */
    unsigned long long eq; /* elements equal to T (after the last level) */
    int num;               /* selected count (CUB output) */
};

/* The sampled path's decisions, and the message's entry count. */
struct topk_plan {
    int mode;        /* MODE_*: which selection writes the message */
    float thr;       /* the sampled threshold chosen */
    float thrs[ROUNDS];
    unsigned long long cnt[ROUNDS + 1]; /* elements first passing round r */
    int out_c;       /* entries in the message */
};

/* What a selection runs over: x[idx[j]] (x[j] when idx is NULL) for
 * j < *count (n when count is NULL), only when *mode == want. */
struct src_t {
    const float *x;
    const uint32_t *idx;
    const int *count;
    size_t n;
    const int *mode;
    int want;
};

__device__ __forceinline__ bool off(const src_t &s)
{
    return s.mode && *s.mode != s.want;
}

__device__ __forceinline__ size_t src_count(const src_t &s)
{
    return s.count ? (size_t)*s.count : s.n;
}

__device__ __forceinline__ float src_at(const src_t &s, size_t j)
{
    return s.x[s.idx ? s.idx[j] : j];
}

__global__ void k_topk_init(topk_state *st, unsigned long long k,
                            topk_plan *plan)
{
    st->prefix = 0;
    st->pmask = 0;
    st->k = k;
    if (plan) {
        plan->mode = MODE_EXACT;
        plan->out_c = (int)k;
    }
}

__constant__ unsigned c_shift[3] = {20, 10, 0};
__constant__ uint32_t c_width[3] = {2048, 1024, 1024};

__global__ void k_topk_hist(src_t src, int level, const topk_state *st,
                            unsigned int *hist)
{
    __shared__ unsigned int h[2048];
    if (off(src))
        return;
    const size_t n = src_count(src);
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
            uint32_t m = cp_mag_bits(src_at(src, i));
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

__device__ void pick_digit(const unsigned int *hist, int level, topk_state *st)
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

/* As radix_select in compressors/topk.c: the digit holding the k-th
 * largest magnitude, and the rank left within it (lane 0). Then the warp
 * clears the histogram for the next level (no memset between launches). */
__global__ void k_topk_pick(unsigned int *hist, int level, topk_state *st,
                            const int *mode, int want)
{
    if (mode && *mode != want)
        return;
    if (threadIdx.x == 0)
        pick_digit(hist, level, st);
    __syncwarp();
    for (uint32_t j = threadIdx.x; j < 2048; j += 32)
        hist[j] = 0;
}

/* Three levels of radix select over src into st (hist starts zeroed). */
void radix(src_t src, size_t nmax, topk_state *st, unsigned int *hist,
           cudaStream_t s)
{
    const unsigned g = grid_for(nmax) > 1024 ? 1024 : grid_for(nmax);
    for (int level = 0; level < 3; level++) {
        k_topk_hist<<<g, THREADS, 0, s>>>(src, level, st, hist);
        k_topk_pick<<<1, 32, 0, s>>>(hist, level, st, src.mode, src.want);
    }
}

/* ---- the sampled threshold ---- */
size_t sample_count(const cp_params_t *p, size_t n)
{
    double s = fmax(ceil(0.01 * (double)n), ceil(2.0 / p->density));
    return s >= (double)n ? n : (size_t)s;
}

/* sample[j] = x[off + j stride], off = the call's seed mod stride (the
 * CPU's loop; off + (s - 1) stride < s stride <= n, so all s exist). */
__global__ void k_sample(const float *x, size_t s, size_t stride,
                         uint64_t seed_base, cp_gpu_seed_t sd, float *sample)
{
    const uint64_t seed = cp_seed_mix(seed_base, sd.rank, sd.phase, sd.chunk,
                                      *sd.d_steps, sd.count);
    const size_t off = (size_t)(seed % stride);
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < s;
                j += (size_t)gridDim.x * blockDim.x)
        sample[j] = x[off + j * stride];
}

/* The ten thresholds the CPU's loop would try: T, then 0.8 times the last,
 * 0 below 1e-38. */
__global__ void k_thresholds(const topk_state *ss, topk_plan *plan)
{
    float thr = cp_bits_f32(ss->prefix);
    for (int r = 0; r < ROUNDS; r++) {
        plan->thrs[r] = thr;
        thr *= 0.8f;
        if (thr < 1e-38f)
            thr = 0.0f;
    }
    for (int r = 0; r <= ROUNDS; r++)
        plan->cnt[r] = 0;
}

/* cnt[r] += elements whose first passing round is r (|x| >= thrs[r]; the
 * thresholds do not increase, so it passes every later round too; NaN
 * passes none, as in the CPU's comparisons). */
__global__ void k_count(const float *x, size_t n, topk_plan *plan)
{
    __shared__ float t[ROUNDS];
    __shared__ unsigned int h[ROUNDS + 1];
    if (threadIdx.x < ROUNDS)
        t[threadIdx.x] = plan->thrs[threadIdx.x];
    if (threadIdx.x <= ROUNDS)
        h[threadIdx.x] = 0;
    __syncthreads();
    const int lane = threadIdx.x & 31;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i0 = blockIdx.x * (size_t)blockDim.x + (threadIdx.x & ~31u);
         i0 < n; i0 += stride) {
        const size_t i = i0 + lane;
        int r = ROUNDS;
        if (i < n) {
            const float a = fabsf(x[i]);
            for (int q = 0; q < ROUNDS; q++)
                if (a >= t[q]) {
                    r = q;
                    break;
                }
        }
        if (!__any_sync(0xffffffffu, r != ROUNDS))
            continue;
        const unsigned peers = __match_any_sync(0xffffffffu, r);
        if (r != ROUNDS && lane == __ffs(peers) - 1)
            atomicAdd(&h[r], (unsigned)__popc(peers));
    }
    __syncthreads();
    if (threadIdx.x < ROUNDS && h[threadIdx.x])
        atomicAdd(&plan->cnt[threadIdx.x], (unsigned long long)h[threadIdx.x]);
}

/* The CPU's loop on the counts: the first round with c >= 0.8 k (or thr
 * 0), else the last; then which selection writes the message. */
__global__ void k_plan(topk_plan *plan, unsigned long long k)
{
    unsigned long long c = 0;
    int r = 0;
    for (; r < ROUNDS; r++) {
        c += plan->cnt[r];
        if (c * 5 >= k * 4 || plan->thrs[r] == 0.0f)
            break;
    }
    if (r == ROUNDS)
        r = ROUNDS - 1;
    plan->thr = plan->thrs[r];
    plan->mode = c > 2 * k ? MODE_EXACT : c <= k ? MODE_ALL : MODE_SELECT;
    plan->out_c = plan->mode == MODE_ALL ? (int)c : (int)k;
}

/* Candidates of the first select: |x| >= T of the exact selection, or
 * |x| >= the sampled threshold (as float, as the CPU compares). */
struct topk_ge {
    const float *x;
    const topk_state *st;
    const topk_plan *plan;
    __device__ bool operator()(uint32_t i) const
    {
        if (plan && plan->mode != MODE_EXACT)
            return fabsf(x[i]) >= plan->thr;
        return cp_mag_bits(x[i]) >= st->prefix;
    }
};

/* The second select (MODE_SELECT) runs over the first one's candidates,
 * whose count only the device knows: positions past it read as a
 * sentinel index that no predicate passes. */
#define NO_INDEX 0xffffffffu
struct cand_at {
    const uint32_t *cand;
    const int *num;
    __device__ uint32_t operator()(uint32_t j) const
    {
        return (int)j < *num ? cand[j] : NO_INDEX;
    }
};

/* ... keeping those with |x| >= T of the selection among them. */
struct cand_ge {
    const float *x;
    const topk_state *st;
    const topk_plan *plan;
    __device__ bool operator()(uint32_t i) const
    {
        return plan->mode == MODE_SELECT && i != NO_INDEX &&
               cp_mag_bits(x[i]) >= st->prefix;
    }
};

typedef thrust::transform_iterator<cand_at, thrust::counting_iterator<uint32_t>>
    cand_iter;

/* The common case: every element equal to T is needed (eq == ties), so the
 * candidates |x| >= T are exactly the top k: copy them out in parallel. */
__global__ void k_topk_gather(const float *x, const uint32_t *cand,
                              const topk_state *st, size_t k, uint32_t *oi,
                              float *ov, const int *mode, int want)
{
    if ((mode && *mode != want) || st->eq != st->k)
        return;
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < k;
         j += (size_t)gridDim.x * blockDim.x) {
        uint32_t i = cand[j];
        oi[j] = i;
        ov[j] = x[i];
    }
}

/* MODE_ALL: the candidates are the message. */
__global__ void k_topk_all(const float *x, const uint32_t *cand,
                           const topk_plan *plan, const int *num, uint32_t *oi,
                           float *ov)
{
    if (plan->mode != MODE_ALL)
        return;
    const size_t c = (size_t)*num;
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < c;
         j += (size_t)gridDim.x * blockDim.x) {
        uint32_t i = cand[j];
        oi[j] = i;
        ov[j] = x[i];
    }
}

/* Surplus ties: one block walks the candidates in order, keeping all above
 * T and the first `ties` equal to T (the CPU's tie rule). Slow for long
 * lists, but only reached when the k-th magnitude repeats. */
#define COMPACT_THREADS 1024
__global__ void k_topk_compact(const float *x, const uint32_t *cand,
                               const topk_state *st, uint32_t *oi, float *ov,
                               const int *mode, int want)
{
    typedef cub::BlockScan<int, COMPACT_THREADS> scan_t;
    __shared__ typename scan_t::TempStorage tmp;
    __shared__ int agg_eq, agg_keep;
    if ((mode && *mode != want) || st->eq == st->k)
        return; /* not this case, or k_topk_gather did it */
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

/* The message around the indices already in place: [u32 c | fp16 flag]
 * [c indices][c values, f32 or fp16], and its length in the slot header
 * (slots.cu keeps it; a non-finite step's header says 0 there). */
__global__ void k_topk_emit(unsigned char *slot, const float *ov,
                            const topk_plan *plan, size_t k, int fp16,
                            size_t max_len)
{
    const size_t c = plan ? (size_t)plan->out_c : k;
    unsigned char *pl = slot + HDR;
    unsigned char *vals = pl + 4 + 4 * c;
    /* A message shorter than max_len: the bytes after it are zeros, as in
     * the CPU's slots (they travel too). */
    for (size_t b = 4 + (fp16 ? 6 : 8) * c + blockIdx.x * (size_t)blockDim.x + threadIdx.x;
         b < max_len; b += (size_t)gridDim.x * blockDim.x)
        pl[b] = 0;
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < c;
         j += (size_t)gridDim.x * blockDim.x) {
        if (fp16) {
            const uint16_t h = cp_f32_to_f16(ov[j]);
            vals[2 * j] = (unsigned char)h;
            vals[2 * j + 1] = (unsigned char)(h >> 8);
        } else {
            st_u32(vals + 4 * j, __float_as_uint(ov[j]));
        }
    }
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        st_u32(pl, (uint32_t)c | (fp16 ? TOPK_FP16 : 0u));
        st_u32(slot + 4, (uint32_t)(4 + (fp16 ? 6 : 8) * c));
    }
}

/* k == n: everything, in order. */
__global__ void k_topk_every(const float *x, size_t n, uint32_t *oi, float *ov)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        oi[i] = (uint32_t)i;
        ov[i] = x[i];
    }
}

__global__ void k_topk_validate(const unsigned char *slot, size_t slot_size,
                                size_t n, const int *abort, int *err)
{
    if (abort && *abort)
        return;
    const unsigned char *pl = slot + HDR;
    const uint32_t len = ld_u32(slot + 4), w = ld_u32(pl), k = w & ~TOPK_FP16;
    const unsigned long long esz = (w & TOPK_FP16) ? 6 : 8;
    if (len < 4 || len > slot_size - HDR || k > n || len != 4 + esz * k) {
        if (blockIdx.x == 0 && threadIdx.x == 0)
            atomicOr(err, 1);
        return;
    }
    const unsigned char *vals = pl + 4 + 4ull * k;
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < k;
         j += (size_t)gridDim.x * blockDim.x) {
        uint32_t i = ld_u32(pl + 4 + 4 * j);
        float v = ld_topk_value(vals, j, esz == 6);
        if (i >= n || (j > 0 && i <= ld_u32(pl + 4 * j)) || cp_nonfinite(v))
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
    const uint32_t w = ld_u32(pl), k = w & ~TOPK_FP16;
    const int fp16 = (w & TOPK_FP16) != 0;
    const unsigned char *vals = pl + 4 + 4ull * k;
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
         j < k && j < maxk; j += (size_t)gridDim.x * blockDim.x) {
        uint32_t i = ld_u32(pl + 4 + 4 * j);
        float v = ld_topk_value(vals, j, fp16);
        out[i] += alpha * v;
    }
}

bool is_sampled(const cp_params_t *p, size_t n)
{
    return p->topk_select == CP_TOPK_SAMPLED ||
           (p->topk_select == CP_TOPK_AUTO && n >= p->topk_sample_min);
}

/* Byte offsets of the top-k scratch. */
struct topk_layout {
    size_t sx, sc, ss, plan, hist, cand, cand2, sample, ov, temp, temp_bytes,
        total;
};

topk_layout topk_scratch(const cp_params_t *p, size_t n)
{
    topk_layout L;
    const size_t k = n ? cp_topk_k(p->density, n) : 0;
    const size_t k2 = 2 * k < n ? 2 * k : n;
    size_t sel = 0, sel2 = 0;
    cub::DeviceSelect::If(nullptr, sel, thrust::counting_iterator<uint32_t>(0),
                          (uint32_t *)nullptr, (int *)nullptr, (int)n,
                          topk_ge{nullptr, nullptr, nullptr});
    cub::DeviceSelect::If(nullptr, sel2,
                          cand_iter(thrust::counting_iterator<uint32_t>(0),
                                    cand_at{nullptr, nullptr}),
                          (uint32_t *)nullptr, (int *)nullptr, (int)k2,
                          cand_ge{nullptr, nullptr, nullptr});
    const bool sampled = is_sampled(p, n);
    L.temp_bytes = sel > sel2 ? sel : sel2;
    L.sx = 0;
    L.sc = L.sx + align256(sizeof(topk_state));
    L.ss = L.sc + align256(sizeof(topk_state));
    L.plan = L.ss + align256(sizeof(topk_state));
    L.hist = L.plan + align256(sizeof(topk_plan));
    L.cand = L.hist + align256(2048 * sizeof(unsigned int));
    L.cand2 = L.cand + align256(n * sizeof(uint32_t));
    L.sample = L.cand2 + (sampled ? align256(k2 * sizeof(uint32_t)) : 0);
    L.ov = L.sample + (sampled ? align256(sample_count(p, n) * sizeof(float)) : 0);
    L.temp = L.ov + align256(k * sizeof(float));
    L.total = L.temp + align256(L.temp_bytes);
    return L;
}

cp_status_t topk_encode(const cp_params_t *p, const float *x, size_t n,
                        const cp_gpu_seed_t *sd, unsigned char *slot,
                        void *scratch, cudaStream_t s)
{
    if (n > (size_t)INT32_MAX)
        return CP_ERR_UNSUPPORTED;
    const size_t k = n ? cp_topk_k(p->density, n) : 0;
    const int fp16 = p->topk_fp16 != 0;
    unsigned char *pl = slot + HDR;
    uint32_t *oi = (uint32_t *)(pl + 4);
    if (n == 0) {
        k_topk_emit<<<1, 1, 0, s>>>(slot, nullptr, nullptr, 0, 0, 0); /* as the CPU: 0 */
        return CP_OK;
    }
    const topk_layout L = topk_scratch(p, n);
    char *base = (char *)scratch;
    topk_state *sx = (topk_state *)(base + L.sx);
    topk_state *sc = (topk_state *)(base + L.sc);
    topk_state *ss = (topk_state *)(base + L.ss);
    unsigned int *hist = (unsigned int *)(base + L.hist);
    uint32_t *cand = (uint32_t *)(base + L.cand);
    uint32_t *cand2 = (uint32_t *)(base + L.cand2);
    float *ov = (float *)(base + L.ov);
    size_t tb = L.temp_bytes;
    const bool sampled = k < n && is_sampled(p, n);
    topk_plan *plan = sampled ? (topk_plan *)(base + L.plan) : nullptr;
    const int *mode = sampled ? &plan->mode : nullptr;

    cudaMemsetAsync(hist, 0, 2048 * sizeof(unsigned int), s);
    k_topk_init<<<1, 1, 0, s>>>(sx, k, plan);
    if (k == n) {
        k_topk_every<<<grid_for(n), THREADS, 0, s>>>(x, n, oi, ov);
        k_topk_emit<<<grid_for(k), THREADS, 0, s>>>(slot, ov, nullptr, k, fp16, 0);
        return CP_OK;
    }
    if (sampled) {
        const size_t ns = sample_count(p, n), stride = n / ns;
        float *sample = (float *)(base + L.sample);
        k_sample<<<grid_for(ns), THREADS, 0, s>>>(x, ns, stride, p->seed, *sd,
                                                  sample);
        k_topk_init<<<1, 1, 0, s>>>(ss, cp_topk_k(p->density, ns), nullptr);
        radix(src_t{sample, nullptr, nullptr, ns, nullptr, 0}, ns, ss, hist, s);
        k_thresholds<<<1, 1, 0, s>>>(ss, plan);
        k_count<<<grid_for(n) > 1024 ? 1024 : grid_for(n), THREADS, 0, s>>>(x, n, plan);
        k_plan<<<1, 1, 0, s>>>(plan, k);
    }
    /* The exact selection over x (sampled: only when > 2k passed). */
    radix(src_t{x, nullptr, nullptr, n, mode, MODE_EXACT}, n, sx, hist, s);
    cub::DeviceSelect::If(base + L.temp, tb,
                          thrust::counting_iterator<uint32_t>(0), cand,
                          &sx->num, (int)n, topk_ge{x, sx, plan}, s);
    k_topk_gather<<<grid_for(k), THREADS, 0, s>>>(x, cand, sx, k, oi, ov, mode,
                                                  MODE_EXACT);
    k_topk_compact<<<1, COMPACT_THREADS, 0, s>>>(x, cand, sx, oi, ov, mode,
                                                 MODE_EXACT);
    if (sampled) {
        /* At most k candidates: the message. Between k and 2k: the exact
         * selection among them (they hold every |x| >= thr). */
        const size_t k2 = 2 * k < n ? 2 * k : n;
        k_topk_all<<<grid_for(k), THREADS, 0, s>>>(x, cand, plan, &sx->num, oi, ov);
        k_topk_init<<<1, 1, 0, s>>>(sc, k, nullptr);
        radix(src_t{x, cand, &sx->num, k2, mode, MODE_SELECT}, k2, sc, hist, s);
        tb = L.temp_bytes;
        cub::DeviceSelect::If(base + L.temp, tb,
                              cand_iter(thrust::counting_iterator<uint32_t>(0),
                                        cand_at{cand, &sx->num}),
                              cand2, &sc->num, (int)k2, cand_ge{x, sc, plan}, s);
        k_topk_gather<<<grid_for(k), THREADS, 0, s>>>(x, cand2, sc, k, oi, ov,
                                                      mode, MODE_SELECT);
        k_topk_compact<<<1, COMPACT_THREADS, 0, s>>>(x, cand2, sc, oi, ov, mode,
                                                     MODE_SELECT);
    }
    k_topk_emit<<<grid_for(k), THREADS, 0, s>>>(slot, ov, plan, k, fp16,
                                                cp_sparse_max_size(k, fp16));
    return CP_OK;
}

size_t topk_scratch_size(const cp_params_t *p, size_t n)
{
    return n ? topk_scratch(p, n).total : 0;
}

cp_status_t topk_decode(const cp_params_t *p, const unsigned char *slot,
                        size_t slot_size, uint32_t expect, float alpha,
                        const float *y, float *out, size_t n, const int *abort,
                        int nan_on_abort, int *err, cudaStream_t s)
{
    size_t maxk = slot_size >= HDR + 4 ? (slot_size - HDR - 4) / 6 : 0;
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
    CP_GPU_OWN_NAN | CP_GPU_DECODE_EMPTY | CP_GPU_OWN_LEN, topk_scratch_size,
    topk_encode, topk_decode,
};
