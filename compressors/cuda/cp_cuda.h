/* The codecs on the GPU. Every function only enqueues work on `stream`:
 * no host synchronization, no allocation (scratch comes from the caller's
 * workspace, sized by cp_cuda_encode_scratch).
 *
 * Slots are the same as on the CPU (collectives/slot.h): [u32 flags]
 * [u32 payload length][u64 check][u64 evidence][payload], here in device
 * memory. The GPU path fills check and evidence with zeros (its ranks do
 * not compare them yet: docs/gpu.md).
 *
 * Device flags replace the CPU's early returns, since the host cannot look:
 *  - d_bad: set by prepare when the vector holds Inf/NaN; encode then
 *    writes only the non-finite flag;
 *  - d_abort: when set, a decode leaves its output untouched, or fills it
 *    with NaN when nan_on_abort (a result must show the bad step, a state
 *    must not change);
 *  - d_err: a malformed message sets it, and it aborts like d_abort.
 * Top-k selects as on the CPU (exact or sampled, compressors/cuda/topk.cu);
 * its messages may be shorter than max_size (CP_GPU_OWN_LEN). */
#ifndef CP_CUDA_H
#define CP_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "compressors/compressor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes before the payload: CP_SLOT_HDR of collectives/slot.h
 * (collectives/allreduce_gpu.c checks that they agree). */
#define CP_CUDA_SLOT_HDR 24

typedef enum {
    CP_DT_F32 = 0,
    CP_DT_F16 = 1,
    CP_DT_BF16 = 2,
} cp_dtype_t;

/* Device flags of one call, in one small device array. */
typedef struct {
    int bad_local;  /* this rank's vector held Inf/NaN */
    int bad_server; /* this rank's server chunk held Inf/NaN */
    int any1;       /* some phase-1 slot was flagged */
    int any;        /* some final slot was flagged: the step is void */
    int err;        /* a malformed message was seen */
    int pad[3];
} cp_cuda_flags_t;

size_t cp_cuda_encode_scratch(const cp_compressor_ops_t *codec,
                              const cp_params_t *p, size_t n);

/* Encodes x[0..n) into the slot. seed_base/rank/phase/chunk/count and the
 * device step counter d_steps give the seed (cp_seed_mix), as on the CPU.
 * Writes the header: flag = *d_bad, length = the payload's. */
cp_status_t cp_cuda_encode_slot(const cp_compressor_ops_t *codec,
                                const cp_params_t *p, const float *d_x,
                                size_t n, const int *d_bad,
                                const uint64_t *d_steps, int rank, int phase,
                                int chunk, uint64_t count, unsigned char *d_slot,
                                size_t slot_size, void *d_scratch,
                                cudaStream_t stream);

/* out = y + alpha * D(slot) over n elements (y NULL: zero; y may be out),
 * unless *d_abort or *d_err. */
cp_status_t cp_cuda_decode_slot(const cp_compressor_ops_t *codec,
                                const cp_params_t *p,
                                const unsigned char *d_slot, size_t slot_size,
                                float alpha, const float *d_y, float *d_out,
                                size_t n, const int *d_abort, int nan_on_abort,
                                int *d_err, cudaStream_t stream);

/* *d_flag |= the OR of the non-finite flags of n slots. */
cp_status_t cp_cuda_slots_flag(const unsigned char *d_slots, int n,
                               size_t slot_size, int *d_flag,
                               cudaStream_t stream);

/* v = state + g (state NULL: v = g), g of type gtype; *d_bad |= any
 * non-finite v. */
cp_status_t cp_cuda_prepare(const float *d_state, const void *d_g,
                            cp_dtype_t gtype, float *d_v, size_t n, int *d_bad,
                            cudaStream_t stream);

/* out (of type otype) = in (fp32), for results of fp16/bf16 calls. */
cp_status_t cp_cuda_store(const float *d_in, void *d_out, cp_dtype_t otype,
                          size_t n, cudaStream_t stream);

/* *d_steps += 1 unless *d_abort or *d_err. */
cp_status_t cp_cuda_step(uint64_t *d_steps, const int *d_abort,
                         const int *d_err, cudaStream_t stream);

/* The last CUDA error, as a status (launch failures). */
cp_status_t cp_cuda_last_error(void);

#ifdef __cplusplus
}
#endif

#endif
