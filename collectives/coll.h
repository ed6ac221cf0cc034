/* What the collective files share: the configuration a collective runs
 * with, the arguments and result of one call, and small helpers. The
 * dispatcher (allreduce.c) and the algorithms (allreduce_sparse.c,
 * allreduce_twophase.c) include this; the algorithms do not include the
 * dispatcher, so nothing calls back up. */
#ifndef CP_COLL_H
#define CP_COLL_H

#include "collectives/slot.h"
#include "collectives/tensor.h"
#include "collectives/transport.h"
#include "collectives/workspace.h"
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
    CP_ALGO_SPARSE_RS = 4, /* sparse reduce-scatter, global top-k,
                              allgatherv (collectives/allreduce_sparse_rs.h) */
    CP_ALGO_PLAIN = 5,    /* the transport's exact sum, feedback kept
                             (COMMPRESS_POLICY; collectives/allreduce_plain.h) */
} cp_algo_t;

/* The configuration one collective runs with (collectives/coll_config.c
 * builds it from the settings). */
/* Layer-adaptive settings (L-GreCo; collectives/lgreco.h). */
typedef struct {
    int on;           /* COMMPRESS_ADAPT: 0 none, 1 lgreco */
    size_t every;     /* steps between plans */
    size_t window;    /* steps of statistics before a plan */
    double alpha;     /* error budget relative to the uniform setting */
} cp_adapt_t;

typedef struct {
    const cp_compressor_ops_t *codec;
    cp_params_t params;
    const cp_feedback_ops_t *feedback;
    cp_fb_params_t fb; /* the feedback variant's parameters */
    cp_algo_t algo;
    int pipeline;      /* two-phase over point-to-point where the transport
                          has it (allreduce_twophase.c) */
    int fuse;          /* ef fused with the encode where the codec has it */
    uint64_t seed;     /* base of the per-call seeds */
    cp_adapt_t adapt;
} cp_coll_config_t;

/* Why a compressed call ran the exact allreduce instead (all ranks alike). */
typedef enum {
    CP_FALLBACK_NONE = 0,
    CP_FALLBACK_NONFINITE, /* Inf/NaN in some rank's vector or a server sum */
    CP_FALLBACK_FAILED,    /* some rank could not encode, decode or allocate */
    CP_FALLBACK_DISAGREE,  /* ranks named the tensor or its state differently */
} cp_fallback_t;

typedef struct {
    cp_algo_t algo;         /* what ran */
    int nonfinite;          /* step carried Inf/NaN: exact fallback ran */
    cp_fallback_t fallback; /* the exact allreduce ran, and why */
    size_t bytes_sent;      /* bytes this rank put on the wire */
    size_t bytes_dense;     /* what a ring allreduce would send: 2(n-1)/n 4N */
    double compress_seconds;
    uint64_t evidence;      /* agreed step evidence (plugin/step_detect.h) */
    size_t bytes_uniform;   /* COMMPRESS_ADAPT: what the configured setting
                               would have sent (0: not adapting) */
    int pipelined;          /* the pipelined two-phase schedule ran */
    int fused;              /* ef ran fused with the encode */
} cp_coll_result_t;

/* Bytes this rank put on the wire for a call: the compressed exchange, plus
 * the exact allreduce a call fell back to. */
static inline size_t cp_coll_wire_bytes(const cp_coll_result_t *res)
{
    return res->bytes_sent + (res->fallback ? res->bytes_dense : 0);
}

typedef struct {
    const float *send; /* NULL: in place, the input is recv */
    float *recv;
    size_t count;
    cp_tensor_t *tensor;
    const cp_coll_config_t *cfg;
    cp_workspace_t *ws;
    const cp_transport_t *tp;
    uint64_t ident;     /* the tensor's name, equal on every rank */
    uint64_t call;      /* this call's index on the communicator */
    uint64_t evidence;  /* this rank's step evidence (0: none) */
    size_t ev_period;   /* the step it is judged against (0: none asked) */
    int plain;          /* run plain (COMMPRESS_POLICY; allreduce_plain.h) */
} cp_allreduce_args_t;

/* Codec parameters of a tensor's step `steps`: the configured ones, except
 * DGC's warm-up density 0.25 (D / 0.25)^(steps / W) for steps < W. Steps
 * count completed clean steps, equal on all ranks. */
cp_params_t cp_step_params(const cp_coll_config_t *cfg, uint64_t steps);
/* Feedback parameters on a communicator of `size` ranks, for a tensor
 * with `steps` completed steps. */
cp_fb_params_t cp_step_fb(const cp_coll_config_t *cfg, int size, uint64_t steps);

/* Balanced split: chunk j of `size` over count elements. */
void cp_chunk_range(size_t count, int size, int j, size_t *off, size_t *len);
uint64_t cp_call_seed(const cp_allreduce_args_t *a, int phase, int chunk);
/* Both seeds of an encode: this rank's (seed) and one equal on every rank
 * (shared_seed), for (phase, chunk) of call a. */
void cp_call_seeds(const cp_allreduce_args_t *a, int phase, int chunk,
                   cp_params_t *p);
/* Bytes one rank sends in a ring allreduce of `bytes`: 2 (n-1)/n bytes. */
size_t cp_ring_bytes(int n, double bytes);
double cp_now(void);

/* The check word of call a: its tensor's name, count, steps and history
 * (collectives/slot.h carries it). */
uint64_t cp_call_check(const cp_allreduce_args_t *a);
/* Feedback buffers for a call of count elements: aux and tmp (NULL when the
 * variant does not use them). */
/* COMMPRESS_FUSE: whether this call's worker feedback runs fused, given
 * that the algorithm and codec can (codec_can): it is on, the feedback is
 * ef, no L-GreCo statistics want the vector, and the tensor has (or could
 * make) its spare buffer. Local to this rank: the bits are the same either
 * way. After a fused call commits, cp_tensor_swap_spare. */
int cp_ef_fused(const cp_allreduce_args_t *a, int codec_can);
cp_status_t cp_feedback_buffers(const cp_feedback_ops_t *fb, cp_workspace_t *ws,
                                size_t count, float **aux, float **tmp);
/* The fallback a view of received slots calls for (NONE: go on). */
cp_fallback_t cp_slots_fallback(const cp_slots_view_t *v);
/* Runs the exact allreduce on the call's untouched input, for `why`. */
cp_status_t cp_allreduce_exact(const cp_allreduce_args_t *a,
                               cp_coll_result_t *res, cp_fallback_t why);

#ifdef __cplusplus
}
#endif

#endif
