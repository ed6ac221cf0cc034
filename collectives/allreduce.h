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
 * size is fixed by (count, communicator size, config) at creation. steps
 * and hist change only on clean steps, which every rank learns of
 * together, so they are equal on every rank that names the tensor alike;
 * the slot header carries them so that a rank whose state differs is seen
 * by all before anything is committed. */
typedef struct {
    size_t count;
    uint64_t steps;        /* completed compressed steps */
    uint64_t hist;         /* hash of the calls those steps were */
    float *worker;         /* feedback state of the whole tensor */
    float *server;         /* feedback state of this rank's chunk */
    size_t worker_floats;
    size_t server_floats;
} cp_tensor_t;

/* Scratch shared by all tensors of a communicator; grows to the largest
 * call and is then reused: no allocation on the hot path. `agreed` is the
 * size every rank has (growth is agreed across ranks, see
 * cp_workspace_reserve); `cap` what this rank allocated. */
enum {
    CP_WS_V, CP_WS_SEND1, CP_WS_RECV1, CP_WS_SUM, CP_WS_VS, CP_WS_RECV2,
    CP_WS_SCRATCH, CP_WS_AUX, CP_WS_TMP, CP_WS_SLOTS
};
typedef struct {
    void *buf[CP_WS_SLOTS];
    size_t cap[CP_WS_SLOTS];
    size_t agreed[CP_WS_SLOTS];
} cp_workspace_t;

/* Why a compressed call ran the exact allreduce instead (all ranks alike). */
typedef enum {
    CP_FALLBACK_NONE = 0,
    CP_FALLBACK_NONFINITE, /* Inf/NaN in some rank's vector or a server sum */
    CP_FALLBACK_FAILED,    /* some rank could not encode, decode or allocate */
    CP_FALLBACK_DISAGREE,  /* ranks named the tensor or its state differently */
} cp_fallback_t;

typedef struct {
    cp_algo_t algo;        /* what ran */
    int nonfinite;         /* step carried Inf/NaN: exact fallback ran */
    cp_fallback_t fallback; /* the exact allreduce ran, and why */
    size_t bytes_sent;     /* bytes this rank put on the wire */
    size_t bytes_dense;    /* what a ring allreduce would send: 2(n-1)/n 4N */
    double compress_seconds;
    uint64_t evidence;     /* agreed step evidence (plugin/step_detect.h) */
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
} cp_allreduce_args_t;

/* Codec parameters of a tensor's step `steps`: the configured ones, except
 * DGC's warm-up density 0.25 (D / 0.25)^(steps / W) for steps < W. Steps
 * count completed clean steps, equal on all ranks. */
cp_params_t cp_step_params(const cp_coll_config_t *cfg, uint64_t steps);
/* Feedback parameters on a communicator of `size` ranks, for a tensor
 * with `steps` completed steps. */
cp_fb_params_t cp_step_fb(const cp_coll_config_t *cfg, int size, uint64_t steps);

/* The algorithm step `steps` of a tensor uses; a function of (count, size,
 * config, step) only, so every rank picks the same. */
cp_algo_t cp_allreduce_choose(const cp_coll_config_t *cfg,
                              const cp_params_t *p, uint64_t steps,
                              size_t count, int size);
/* Feedback buffers for a call of count elements: aux and tmp (NULL when the
 * variant does not use them). */
cp_status_t cp_feedback_buffers(const cp_feedback_ops_t *fb, cp_workspace_t *ws,
                                size_t count, float **aux, float **tmp);

/* Bytes of each workspace buffer the call a needs (a->tensor NULL: as
 * for a new tensor). */
void cp_allreduce_plan(const cp_allreduce_args_t *a, size_t need[CP_WS_SLOTS]);
void cp_allreduce_sparse_plan(const cp_allreduce_args_t *a,
                              const cp_params_t *p, size_t need[CP_WS_SLOTS]);
void cp_allreduce_twophase_plan(const cp_allreduce_args_t *a,
                                const cp_compressor_ops_t *codec,
                                const cp_params_t *p, size_t need[CP_WS_SLOTS]);

/* Makes the workspace ready for call a (need: cp_allreduce_plan's, or
 * more), agreeing with the other ranks when needed: collective when must_agree is set or the workspace grows beyond
 * the agreed sizes (a function of the calls so far, so every rank takes
 * that branch together). local_fail says this rank already failed (a
 * tensor allocation). words[0..nwords) travel in the same max-allreduce
 * and come back reduced. *ok_p: every rank is ready; else *fail_rank_p is
 * the highest rank that failed, and nobody may run the call compressed. */
#define CP_READY_MAX_WORDS 7
cp_status_t cp_allreduce_ready(const cp_allreduce_args_t *a,
                               const size_t need[CP_WS_SLOTS], int must_agree,
                               int local_fail, uint64_t *words, size_t nwords,
                               int *ok_p, int *fail_rank_p);

/* Returns CP_OK with res->fallback telling whether the exact allreduce ran
 * instead (then every rank ran it, and no state changed). An error means
 * this rank cannot go on in step with the others (a transport failure, or
 * a corrupt message in the final exchange that only it received): the
 * caller stops the job. */
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
/* Back to the state of a new tensor (zeros, step 0). */
void cp_tensor_reset(cp_tensor_t *t);

void cp_workspace_init(cp_workspace_t *ws);
void cp_workspace_free(cp_workspace_t *ws);
size_t cp_workspace_bytes(const cp_workspace_t *ws);
/* Buffer `slot` with at least `bytes` capacity, 64-byte aligned. */
cp_status_t cp_workspace_get(cp_workspace_t *ws, int slot, size_t bytes,
                             void **p);
/* Makes every buffer at least need[] large. *grow_p tells whether that is
 * beyond the agreed sizes, which every rank computes alike from the calls
 * so far: then the ranks must agree that all of them succeeded before the
 * call runs (cp_workspace_commit). CP_ERR_NOMEM when this rank failed. */
cp_status_t cp_workspace_reserve(cp_workspace_t *ws,
                                 const size_t need[CP_WS_SLOTS], int *grow_p);
void cp_workspace_commit(cp_workspace_t *ws, const size_t need[CP_WS_SLOTS]);

/* Slots: [u32 flags][u32 payload length][u64 check][u64 evidence][payload]
 * [zero padding to 8 bytes]. check names the tensor and its state (equal
 * on every rank that agrees); evidence is the sender's step evidence. */
#define CP_SLOT_HDR 24
#define CP_SLOT_NONFINITE 1u /* the sender's vector held Inf/NaN */
#define CP_SLOT_FAILED 2u    /* the sender could not encode or decode */
size_t cp_slot_size(size_t payload_max);
/* Bytes one rank sends in a ring allreduce of `bytes`: 2 (n-1)/n bytes. */
size_t cp_ring_bytes(int n, double bytes);

/* What a rank says about its call in every slot it sends. */
typedef struct {
    uint32_t flags;
    uint64_t check;
    uint64_t evidence;
} cp_slot_meta_t;
/* The check word of call a: its tensor's name, count, steps and history. */
uint64_t cp_slot_check(const cp_allreduce_args_t *a);

/* Encodes x into a slot (header + payload + zero padding). With a flag in
 * meta, only the header is sent. An encoding failure is sent as
 * CP_SLOT_FAILED (and returned, for the log): the message still goes out,
 * so no peer waits for it. */
cp_status_t cp_slot_encode(const cp_compressor_ops_t *codec,
                           const cp_params_t *p, const float *x, size_t m,
                           const cp_slot_meta_t *meta, unsigned char *slot,
                           size_t slot_size, void *scratch);
/* out = y + alpha * D(slot payload), the payload length bounds-checked. */
cp_status_t cp_slot_decode(const cp_compressor_ops_t *codec,
                           const cp_params_t *p, const unsigned char *slot,
                           size_t slot_size, float alpha, const float *y,
                           float *out, size_t m);

/* What n received slots say together: their flags, whether every check
 * word equals `check`, and the step evidence: the smallest one that is a
 * multiple >= 2 of ev_period, unless some rank's equals ev_period (0 if
 * none, or if ev_period is 0; plugin/step_detect.h). */
typedef struct {
    uint32_t flags;
    int disagree;
    uint64_t evidence;
} cp_slots_view_t;
void cp_slots_scan(const unsigned char *slots, int n, size_t slot_size,
                   uint64_t check, size_t ev_period, cp_slots_view_t *v);
/* The fallback a view calls for (CP_FALLBACK_NONE: go on). */
cp_fallback_t cp_slots_fallback(const cp_slots_view_t *v);
/* Runs the exact allreduce on the call's untouched input, for `why`. */
cp_status_t cp_allreduce_exact(const cp_allreduce_args_t *a,
                               cp_coll_result_t *res, cp_fallback_t why);
void cp_chunk_range(size_t count, int size, int j, size_t *off, size_t *len);
uint64_t cp_call_seed(const cp_allreduce_args_t *a, int phase, int chunk);
double cp_now(void);

#ifdef __cplusplus
}
#endif

#endif
