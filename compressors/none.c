/* The identity codec: raw fp32. The collectives use it for the dense,
 * deterministic fallback (identical bits on every rank, unlike a reduction
 * whose order the MPI library chooses). */
#include "compressors/compressor.h"

static size_t none_max_size(const cp_params_t *p, size_t n)
{
    (void)p;
    return n * sizeof(float);
}

static cp_status_t none_encode(const cp_params_t *p, const float *x, size_t n,
                               void *out, size_t cap, size_t *len_p,
                               void *scratch)
{
    (void)p;
    (void)scratch;
    if (cap < n * sizeof(float))
        return CP_ERR_NOSPACE;
    memcpy(out, x, n * sizeof(float));
    *len_p = n * sizeof(float);
    return CP_OK;
}

static cp_status_t none_decode(const cp_params_t *p, const void *in, size_t len,
                               float alpha, const float *y, float *out,
                               size_t n)
{
    const unsigned char *b = in;
    (void)p;
    if (len != n * sizeof(float))
        return CP_ERR_MALFORMED;
    for (size_t i = 0; i < n; i++) {
        float v = cp_get_f32(b + 4 * i);
        out[i] = (y ? y[i] : 0.0f) + alpha * v;
    }
    return CP_OK;
}

CP_GPU_TWIN(cp_gpu_none);

const cp_compressor_ops_t cp_compressor_none = {
    .name = "none",
    .doc = "no compression: COMMPRESS_COMPRESSOR=none passes every call "
           "through; the dense algorithm sends with it",
    .caps = CP_CODEC_IDENTITY,
    .gpu = &cp_gpu_none,
    .max_size = none_max_size,
    .scratch_size = cp_scratch_none,
    .encode = none_encode,
    .decode = none_decode,
};
