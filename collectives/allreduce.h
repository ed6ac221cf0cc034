/* Compressed SUM allreduce of fp32 over a transport.
 *
 * Algorithms (ALGORITHMS.md, "Compressed allreduce algorithms"):
 *  - sparse allgather (topk): every rank's (index, value) message to all,
 *    decoded in rank order;
 *  - two-phase (sign, quant, fp16, bf16, and the dense fallback with the
 *    identity codec): compressed alltoall, per-chunk sum in rank order with
 *    server error, compressed allgather.
 * Every rank decodes the same bytes in the same order, so every rank gets
 * identical bits (DESIGN.md, contract 1). */
#ifndef CP_ALLREDUCE_H
#define CP_ALLREDUCE_H

#include "collectives/transport.h"
#include "compressors/compressor.h"
#include "compressors/feedback.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CP_ALGO_AUTO = 0,
    CP_ALGO_SPARSE = 1,   /* allgather of sparse messages */
    CP_ALGO_TWOPHASE = 2, /* compressed reduce-scatter + allgather */
    CP_ALGO_DENSE = 3,    /* two-phase with the identity codec */
} cp_algo_t;

typedef struct {
    const cp_compressor_ops_t *codec;
    cp_params_t params;
    const cp_feedback_ops_t *feedback;
    cp_algo_t algo;
    uint64_t seed; /* base of the per-call seeds */
    /* DGC (feedback dgc with the topk codec): */
    cp_fb_params_t fb;     /* momentum; clip as configured (c, not c/sqrt n) */
    uint64_t warmup_steps; /* density falls from 0.25 over this many steps */
    size_t dense_below;    /* tensors of fewer elements always go dense */
} cp_coll_config_t;

/* State of one tensor (DESIGN.md, contract 7): worker and server error. Its
 * size is fixed by (count, communicator size, config) at creation. */
typedef struct {
    size_t count;
    uint64_t steps;        /* completed compressed steps */
    float *worker;         /* feedback state of the whole tensor */
    float *server;         /* feedback state of this rank's chunk */
    size_t worker_floats;
    size_t server_floats;
} cp_tensor_t;

/* Scratch shared by all tensors of a communicator; grows to the largest
 * call and is then reused: no allocation on the hot path. */
typedef struct {
    void *buf[9];
    size_t cap[9];
} cp_workspace_t;
/* Feedback buffers of count floats, shared by the algorithms. */
#define CP_WS_AUX 7
#define CP_WS_TMP 8

typedef struct {
    cp_algo_t algo;        /* what ran */
    int nonfinite;         /* step carried Inf/NaN: exact fallback ran */
    size_t bytes_sent;     /* bytes this rank put on the wire */
    size_t bytes_dense;    /* what a ring allreduce would send: 2(n-1)/n 4N */
    double compress_seconds;
} cp_coll_result_t;

/* Bytes this rank put on the wire for a call: the compressed exchange, plus
 * the exact allreduce a non-finite step fell back to. */
static inline size_t cp_coll_wire_bytes(const cp_coll_result_t *res)
{
    return res->bytes_sent + (res->nonfinite ? res->bytes_dense : 0);
}

typedef struct {
    const float *send; /* NULL: in place, the input is recv */
    float *recv;
    size_t count;
    cp_tensor_t *tensor;
    const cp_coll_config_t *cfg;
    cp_workspace_t *ws;
    const cp_transport_t *tp;
} cp_allreduce_args_t;

/* Codec parameters of a tensor's step `steps`: the configured ones, except
 * DGC's warm-up density 0.25 (D / 0.25)^(steps / W) for steps < W. Steps
 * count completed clean steps, equal on all ranks. */
cp_params_t cp_step_params(const cp_coll_config_t *cfg, uint64_t steps);
/* Feedback parameters on a communicator of `size` ranks. */
cp_fb_params_t cp_step_fb(const cp_coll_config_t *cfg, int size);

/* The algorithm step `steps` of a tensor uses; a function of (count, size,
 * config, step) only, so every rank picks the same. */
cp_algo_t cp_allreduce_choose(const cp_coll_config_t *cfg,
                              const cp_params_t *p, uint64_t steps,
                              size_t count, int size);
/* Feedback buffers for a call of count elements: aux and tmp (NULL when the
 * variant does not use them). */
cp_status_t cp_feedback_buffers(const cp_feedback_ops_t *fb, cp_workspace_t *ws,
                                size_t count, float **aux, float **tmp);

cp_status_t cp_allreduce(const cp_allreduce_args_t *a, cp_coll_result_t *res);
cp_status_t cp_allreduce_sparse(const cp_allreduce_args_t *a,
                                const cp_params_t *p, cp_coll_result_t *res);
cp_status_t cp_allreduce_twophase(const cp_allreduce_args_t *a,
                                  const cp_compressor_ops_t *codec,
                                  const cp_params_t *p, cp_coll_result_t *res);

/* Floats of feedback state a tensor needs: the whole tensor's (worker) and
 * this rank's chunk's (server; none for the sparse algorithm). */
void cp_tensor_floats(const cp_coll_config_t *cfg, size_t count, int size,
                      int rank, size_t *worker, size_t *server);

/* Tensor state: created zeroed for the algorithm cfg picks at (count, size). */
cp_status_t cp_tensor_create(const cp_coll_config_t *cfg, size_t count,
                             int size, int rank, cp_tensor_t **t_p);
void cp_tensor_destroy(cp_tensor_t *t);
size_t cp_tensor_bytes(const cp_tensor_t *t);

void cp_workspace_init(cp_workspace_t *ws);
void cp_workspace_free(cp_workspace_t *ws);
size_t cp_workspace_bytes(const cp_workspace_t *ws);
/* Buffer `slot` with at least `bytes` capacity, 64-byte aligned. */
cp_status_t cp_workspace_get(cp_workspace_t *ws, int slot, size_t bytes,
                             void **p);

/* Helpers shared by the algorithms. */
#define CP_SLOT_HDR 8
#define CP_SLOT_NONFINITE 1u
size_t cp_slot_size(size_t payload_max);
/* Bytes one rank sends in a ring allreduce of `bytes`: 2 (n-1)/n bytes. */
size_t cp_ring_bytes(int n, double bytes);
/* Encodes x into a slot (header + payload + zero padding); with nonfinite
 * set, only the flag is sent. */
cp_status_t cp_slot_encode(const cp_compressor_ops_t *codec,
                           const cp_params_t *p, const float *x, size_t m,
                           int nonfinite, unsigned char *slot,
                           size_t slot_size, void *scratch);
/* out = y + alpha * D(slot payload), the payload length bounds-checked. */
cp_status_t cp_slot_decode(const cp_compressor_ops_t *codec,
                           const cp_params_t *p, const unsigned char *slot,
                           size_t slot_size, float alpha, const float *y,
                           float *out, size_t m);
/* Nonzero if any of n slots carries the non-finite flag. */
int cp_slots_nonfinite(const unsigned char *slots, int n, size_t slot_size);
void cp_chunk_range(size_t count, int size, int j, size_t *off, size_t *len);
uint64_t cp_call_seed(const cp_allreduce_args_t *a, int phase, int chunk);
double cp_now(void);

#ifdef __cplusplus
}
#endif

#endif
