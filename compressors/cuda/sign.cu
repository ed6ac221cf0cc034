/* compressors/sign.c on the GPU: scaled sign (1 bit per element). */
#include "compressors/cuda/device.cuh"
#include "compressors/cuda/gpu_feedback.h"

namespace {

size_t sumsq_blocks(size_t n)
{
    return (n + CP_SUMSQ_BLOCK - 1) / CP_SUMSQ_BLOCK;
}

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

/* The sum's scratch: two partial arrays. */
size_t sumsq_scratch(size_t n)
{
    return (sumsq_blocks(n) + sumsq_blocks(sumsq_blocks(n)) + 2) *
           sizeof(double);
}

/* Enqueues the sum; returns where it will be (the last level's only
 * partial; for n = 0 nothing is written there). */
const double *sumsq(const float *x, size_t n, void *scratch, cudaStream_t s)
{
    /* Levels ping-pong between two partial arrays. */
    double *buf[2] = {(double *)scratch,
                      (double *)scratch + sumsq_blocks(n) + 1};
    size_t m = sumsq_blocks(n);
    int cur = 0;
    if (n) {
        k_sumsq_level0<<<grid_for(m * 32), THREADS, 0, s>>>(x, n, buf[0]);
        while (m > 1) {
            size_t next = sumsq_blocks(m);
            k_sum_level<<<grid_for(next * 32), THREADS, 0, s>>>(buf[cur], m,
                                                                buf[1 - cur]);
            cur = 1 - cur;
            m = next;
        }
    }
    return buf[cur];
}

size_t sign_scratch(const cp_params_t *p, size_t n) { return sumsq_scratch(n); }

cp_status_t sign_encode(const cp_params_t *p, const float *x, size_t n,
                        const cp_gpu_seed_t *seed, unsigned char *slot,
                        void *scratch, cudaStream_t s)
{
    k_sign_scale<<<1, 1, 0, s>>>(sumsq(x, n, scratch, s), n, slot);
    if (n)
        k_sign_pack<<<grid_for((n + 7) / 8), THREADS, 0, s>>>(x, n, slot);
    return CP_OK;
}

cp_status_t sign_decode(const cp_params_t *p, const unsigned char *slot,
                        size_t slot_size, uint32_t expect, float alpha,
                        const float *y, float *out, size_t n, const int *abort,
                        int nan_on_abort, int *err, cudaStream_t s)
{
    k_sign_dec<<<grid_for(n), THREADS, 0, s>>>(slot, expect, alpha, y, out, n,
                                               abort, err, nan_on_abort);
    return CP_OK;
}

} // namespace

extern "C" size_t cp_cuda_sumsq_scratch(size_t n) { return sumsq_scratch(n); }

extern "C" const double *cp_cuda_sumsq(const float *d_x, size_t n, void *d_scratch,
                                       cudaStream_t s)
{
    return sumsq(d_x, n, d_scratch, s);
}

extern "C" const cp_gpu_codec_t cp_gpu_sign = {
    CP_GPU_OWN_NAN, sign_scratch, sign_encode, sign_decode,
};
