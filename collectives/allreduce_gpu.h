/* Compressed allreduce on the GPU: the algorithms of allreduce.h with
 * device buffers, the codecs of compressors/cuda and a stream-ordered
 * transport (NCCL). Everything is enqueued on one stream: no host
 * synchronization; allocation only when a tensor is first seen or the
 * workspace must grow.
 *
 * Differences from the CPU path, forced by not synchronizing:
 *  - a step that holds Inf/NaN on any rank yields NaN in every element of
 *    the result (the CPU path yields the exact plain sum), and leaves all
 *    state unchanged, as on the CPU;
 *  - the tensor's step counter lives on the device and advances only on
 *    clean steps, so seeds (stochastic rounding) match the CPU's; what
 *    must be known on the host before the exchange (DGC's warm-up density,
 *    a first dense step of EControl and EF21-SGDM) counts the tensor's
 *    calls instead (`calls`), the same on every rank: equal to the CPU's
 *    clean steps until a step is non-finite;
 *  - compute time is not measured (it would need a synchronization). */
#ifndef CP_ALLREDUCE_GPU_H
#define CP_ALLREDUCE_GPU_H

#include "collectives/allreduce.h"
#include "compressors/cuda/cp_cuda.h"

typedef struct {
    size_t count;
    float *worker;    /* device, worker_floats */
    float *server;    /* device, server_floats */
    size_t worker_floats, server_floats;
    uint64_t *steps;  /* device: completed clean steps */
    uint64_t calls;   /* host: compressed calls made (see above) */
} cp_gpu_tensor_t;

#define CP_GPU_WS_SLOTS 12
typedef struct {
    void *buf[CP_GPU_WS_SLOTS];
    size_t cap[CP_GPU_WS_SLOTS];
    cp_cuda_flags_t *flags; /* device */
} cp_gpu_ws_t;

typedef struct {
    const void *send; /* device, of type dtype; may equal recv */
    void *recv;
    size_t count;
    cp_dtype_t dtype;
    int avg;          /* ncclAvg: scale the sum by 1/n */
    cp_gpu_tensor_t *tensor;
    const cp_coll_config_t *cfg;
    cp_gpu_ws_t *ws;
    const cp_transport_t *tp; /* stream-ordered (NCCL) */
    cudaStream_t stream;
} cp_gpu_args_t;

cp_status_t cp_gpu_tensor_create(const cp_coll_config_t *cfg, size_t count,
                                 int size, int rank, cudaStream_t stream,
                                 cp_gpu_tensor_t **t_p);
void cp_gpu_tensor_destroy(cp_gpu_tensor_t *t);
size_t cp_gpu_tensor_bytes(const cp_gpu_tensor_t *t);

void cp_gpu_ws_free(cp_gpu_ws_t *ws);
size_t cp_gpu_ws_bytes(const cp_gpu_ws_t *ws);

/* res gets the algorithm and the bytes sent (compute time stays 0). */
cp_status_t cp_gpu_allreduce(const cp_gpu_args_t *a, cp_coll_result_t *res);

#endif
