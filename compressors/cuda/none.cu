/* compressors/none.c on the GPU: the values as they are. */
#include "compressors/cuda/device.cuh"

namespace {

__global__ void k_none_enc(const float *x, unsigned char *slot, size_t n)
{
    float *o = (float *)(slot + HDR);
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        o[i] = x[i];
}

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

size_t none_scratch(const cp_params_t *p, size_t n) { return 0; }

cp_status_t none_encode(const cp_params_t *p, const float *x, size_t n,
                        const cp_gpu_seed_t *seed, unsigned char *slot,
                        void *scratch, cudaStream_t s)
{
    if (n)
        k_none_enc<<<grid_for(n), THREADS, 0, s>>>(x, slot, n);
    return CP_OK;
}

cp_status_t none_decode(const cp_params_t *p, const unsigned char *slot,
                        size_t slot_size, uint32_t expect, float alpha,
                        const float *y, float *out, size_t n, const int *abort,
                        int nan_on_abort, int *err, cudaStream_t s)
{
    k_none_dec<<<grid_for(n), THREADS, 0, s>>>(slot, expect, alpha, y, out, n,
                                               abort, err);
    return CP_OK;
}

} // namespace

extern "C" const cp_gpu_codec_t cp_gpu_none = {
    0, none_scratch, none_encode, none_decode,
};
