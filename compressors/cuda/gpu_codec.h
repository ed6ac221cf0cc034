/* A codec's GPU twin: the table a codec's .cu file defines (cp_gpu_<name>)
 * and its CPU table points to (compressor.h, `gpu`). compressors/cuda/
 * slots.cu calls it through cp_cuda_encode_slot/cp_cuda_decode_slot, which
 * add what every codec shares (the size check, the slot header, NaN on
 * abort). Same contract as cp_cuda.h: enqueue only, no allocation, no host
 * synchronization; the encoding equals the CPU's byte for byte. */
#ifndef CP_GPU_CODEC_H
#define CP_GPU_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "compressors/compressor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What gives a call's seed on the device (cp_seed_mix of codec_math.h):
 * p->seed is the base, the step comes from d_steps. */
typedef struct {
    const uint64_t *d_steps;
    int rank, phase, chunk;
    uint64_t count;
} cp_gpu_seed_t;

enum {
    /* decode fills out with NaN itself on abort (when asked); otherwise
     * slots.cu does it after the decode */
    CP_GPU_OWN_NAN = 1u << 0,
    /* decode runs for n = 0 too (it validates the message's own count) */
    CP_GPU_DECODE_EMPTY = 1u << 1,
    /* encode writes the payload length into the header itself (messages
     * shorter than max_size: sampled top-k); the header then only zeroes
     * it on a non-finite step */
    CP_GPU_OWN_LEN = 1u << 2,
};

struct cp_gpu_codec {
    unsigned flags; /* CP_GPU_* */
    /* Bytes of device scratch encode needs for n elements. */
    size_t (*scratch)(const cp_params_t *p, size_t n);
    /* The payload of x[0..n) at d_slot + CP_CUDA_SLOT_HDR (the header is
     * written afterwards by the caller). */
    cp_status_t (*encode)(const cp_params_t *p, const float *d_x, size_t n,
                          const cp_gpu_seed_t *seed, unsigned char *d_slot,
                          void *d_scratch, cudaStream_t s);
    /* out = y + alpha * D(slot) unless *d_abort or *d_err; expect is the
     * payload length of a dense codec (max_size). */
    cp_status_t (*decode)(const cp_params_t *p, const unsigned char *d_slot,
                          size_t slot_size, uint32_t expect, float alpha,
                          const float *d_y, float *d_out, size_t n,
                          const int *d_abort, int nan_on_abort, int *d_err,
                          cudaStream_t s);
};

#ifdef __cplusplus
}
#endif

#endif
