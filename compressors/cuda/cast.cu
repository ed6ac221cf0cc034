/* compressors/cast.c on the GPU: fp16 and bf16.
 * The plain cast and the largest magnitude in one pass; a second kernel
 * writes the scale exponent and, only when that magnitude is out of the
 * format's range, encodes again scaled (rounding toward zero). */
#include "compressors/cuda/device.cuh"

namespace {

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

size_t cast_scratch(const cp_params_t *p, size_t n)
{
    return sizeof(unsigned int); /* the largest magnitude's bits */
}

template <int BF>
cp_status_t cast_encode(const cp_params_t *p, const float *x, size_t n,
                        const cp_gpu_seed_t *seed, unsigned char *slot,
                        void *scratch, cudaStream_t s)
{
    const unsigned g = grid_for(n);
    unsigned int *amax = (unsigned int *)scratch;
    cudaMemsetAsync(amax, 0, sizeof(*amax), s);
    if (n)
        k_cast_enc<BF><<<g, THREADS, 0, s>>>(x, slot, n, amax);
    k_cast_scale<BF><<<g, THREADS, 0, s>>>(x, slot, n, amax);
    return CP_OK;
}

template <int BF>
cp_status_t cast_decode(const cp_params_t *p, const unsigned char *slot,
                        size_t slot_size, uint32_t expect, float alpha,
                        const float *y, float *out, size_t n, const int *abort,
                        int nan_on_abort, int *err, cudaStream_t s)
{
    k_cast_dec<BF><<<grid_for(n), THREADS, 0, s>>>(slot, expect, alpha, y,
                                                   out, n, abort, err);
    return CP_OK;
}

} // namespace

extern "C" const cp_gpu_codec_t cp_gpu_fp16 = {
    0, cast_scratch, cast_encode<0>, cast_decode<0>,
};

extern "C" const cp_gpu_codec_t cp_gpu_bf16 = {
    0, cast_scratch, cast_encode<1>, cast_decode<1>,
};
