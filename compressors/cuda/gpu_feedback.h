/* A feedback variant's GPU twin (compressors/cuda/feedback.cu), the table
 * its CPU file points to (feedback.h, `gpu`): the formulas of its CPU file,
 * element by element through feedback_math.h, so both give the same bits.
 * Same contract as the codecs' twins (gpu_codec.h): enqueue on the stream
 * only, no allocation, no host synchronization. States are the CPU's
 * layouts (element-major, state_floats(off) starts element off), in device
 * memory. none and ef have no twin: collectives/allreduce_gpu.c runs them
 * by hand (fused with the fp16/bf16 widening). */
#ifndef CP_GPU_FEEDBACK_H
#define CP_GPU_FEEDBACK_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#include "compressors/feedback.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cp_gpu_feedback {
    /* Bytes of device scratch prepare needs for n elements. */
    size_t (*scratch)(const cp_fb_params_t *fp, size_t n);
    /* v[0..n) (and aux, for variants with uses_aux) from the state and the
     * fp32 gradient g; *d_bad |= v holds Inf/NaN. The state is not
     * touched. */
    cp_status_t (*prepare)(const cp_fb_params_t *fp, const float *d_state,
                           const float *d_g, float *d_v, float *d_aux, size_t n,
                           void *d_scratch, int *d_bad, cudaStream_t s);
    /* The state from what was sent (the slot this rank encoded with codec;
     * cp_compressor_none for a dense step), unless *d_abort or *d_err. tmp:
     * n floats (variants with uses_tmp). */
    cp_status_t (*commit)(const cp_fb_params_t *fp, float *d_state,
                          const float *d_v, const float *d_aux, float *d_tmp,
                          const cp_compressor_ops_t *codec, const cp_params_t *p,
                          const unsigned char *d_slot, size_t slot_size,
                          size_t n, const int *d_abort, int *d_err,
                          cudaStream_t s);
    /* Estimators (the CPU variant has finish): H += out, out = scale * H
     * (scale: ncclAvg's 1/n, else 1), unless *d_abort or *d_err; NULL
     * otherwise. */
    cp_status_t (*finish)(float *d_state, float *d_out, size_t n, float scale,
                          const int *d_abort, const int *d_err, cudaStream_t s);
} cp_gpu_feedback_t;

/* The fixed-order sum of squares of codec_math.h (compressors/cuda/sign.cu):
 * enqueues the sum of x[0..n)^2 (n > 0), in the order the CPU's
 * cp_sumsq_fixed uses, and returns the device address it will be at
 * (inside the scratch of cp_cuda_sumsq_scratch(n) bytes). */
size_t cp_cuda_sumsq_scratch(size_t n);
const double *cp_cuda_sumsq(const float *d_x, size_t n, void *d_scratch,
                            cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
