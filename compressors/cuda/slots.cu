/* The GPU side of a slot (cp_cuda.h): the header, the non-finite flags,
 * NaN on abort, and the calls into a codec's GPU twin (gpu_codec.h, one
 * .cu file per codec); with them the feedback's prepare, the result's
 * store and the step counter. */
#include "compressors/cuda/device.cuh"

namespace {

/* own_len: the codec wrote the length (CP_GPU_OWN_LEN). */
__global__ void k_header(unsigned char *slot, const int *bad, uint32_t len,
                         int own_len)
{
    int b = bad ? *bad : 0;
    st_u32(slot, b ? 1u : 0u);
    if (b || !own_len)
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

} // namespace

extern "C" {

size_t cp_cuda_encode_scratch(const cp_compressor_ops_t *codec,
                              const cp_params_t *p, size_t n)
{
    return codec->gpu ? codec->gpu->scratch(p, n) : 0;
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
    size_t len = codec->max_size(p, n);
    if (len + HDR > slot_size)
        return CP_ERR_NOSPACE;
    if (codec->gpu == NULL)
        return CP_ERR_UNSUPPORTED;
    const cp_gpu_seed_t seed = {d_steps, rank, phase, chunk, count};
    cp_status_t st = codec->gpu->encode(p, d_x, n, &seed, d_slot, d_scratch, s);
    if (st != CP_OK)
        return st;
    k_header<<<1, 1, 0, s>>>(d_slot, d_bad, (uint32_t)len,
                             (codec->gpu->flags & CP_GPU_OWN_LEN) != 0);
    return cp_cuda_last_error();
}

cp_status_t cp_cuda_decode_slot(const cp_compressor_ops_t *codec,
                                const cp_params_t *p,
                                const unsigned char *d_slot, size_t slot_size,
                                float alpha, const float *d_y, float *d_out,
                                size_t n, const int *d_abort, int nan_on_abort,
                                int *d_err, cudaStream_t s)
{
    const cp_gpu_codec_t *gpu = codec->gpu;
    if (gpu == NULL)
        return CP_ERR_UNSUPPORTED;
    const uint32_t expect = (uint32_t)codec->max_size(p, n);
    if (n == 0 && !(gpu->flags & CP_GPU_DECODE_EMPTY))
        return cp_cuda_last_error();
    cp_status_t st = gpu->decode(p, d_slot, slot_size, expect, alpha, d_y,
                                 d_out, n, d_abort, nan_on_abort, d_err, s);
    if (st != CP_OK)
        return st;
    /* Codecs whose kernels return early on abort: show it as NaN. */
    if (nan_on_abort && !(gpu->flags & CP_GPU_OWN_NAN))
        k_fill_nan<<<grid_for(n), THREADS, 0, s>>>(d_out, n, d_slot, expect,
                                                   d_abort, d_err, 1);
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
