/* commpress: compressed collectives for distributed training.
 *
 * Two ways in:
 *  - preload: LD_PRELOAD=libcommpress.so intercepts MPI_Allreduce and is
 *    configured by COMMPRESS_* environment variables (docs/configuration.md);
 *  - link: the explicit API below, configured by a struct.
 * Both run the same collectives. Functions return 0 (COMMPRESS_OK) or a
 * negative status; commpress_strerror() names it. */
#ifndef COMMPRESS_H
#define COMMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

#define COMMPRESS_OK 0
/* The negative statuses (the same numbers as util/status.h). */
#define COMMPRESS_ERR_INVALID (-1)     /* invalid argument */
#define COMMPRESS_ERR_NOMEM (-2)       /* out of memory */
#define COMMPRESS_ERR_MALFORMED (-3)   /* malformed message or state */
#define COMMPRESS_ERR_NOSPACE (-4)     /* output buffer too small */
#define COMMPRESS_ERR_TRANSPORT (-5)   /* an MPI/NCCL call failed */
#define COMMPRESS_ERR_UNSUPPORTED (-6)
#define COMMPRESS_ERR_CONFIG (-7)      /* invalid configuration */
#define COMMPRESS_ERR_MISMATCH (-8)    /* configuration differs across ranks */
#define COMMPRESS_ERR_NONFINITE (-9)   /* non-finite values */
#define COMMPRESS_ERR_RANGE (-10)      /* beyond what the codec represents */
#define COMMPRESS_ERR_RANKS (-11)      /* another rank failed or disagrees */

typedef struct {
    const char *compressor; /* a codec of `commpress-info`: none, fp16,
                               bf16, topk, sign, quant, dgc, randk */
    double density;         /* topk: fraction kept, (0, 1] */
    int bits;               /* quant: 1..8 */
    size_t bucket;          /* quant: elements per bucket */
    int stochastic;         /* quant: 1 = stochastic rounding */
    const char *feedback;   /* none | ef | ef21 | econtrol | ef21-sgdm; NULL = ef for
                               topk/sign/quant, and DGC's own for dgc (which
                               accepts only NULL) */
    const char *topk_select;/* auto | exact | sampled; NULL = auto */
    size_t topk_sample_min; /* auto: sampled from this many elements */
    const char *algorithm;  /* auto | sparse | twophase | dense | sparse_rs;
                               NULL = auto */
    uint64_t seed;
    /* dgc (docs/dgc.md): the optimizer must run without momentum. */
    double dgc_momentum;       /* [0, 1) */
    double dgc_clip;           /* local clipping norm; 0 = off */
    uint64_t dgc_warmup_steps; /* density 0.25 -> density over these steps */
    size_t dgc_dense_below;    /* smaller tensors go dense */
    double econtrol_eta;       /* econtrol: feedback strength, [0, 1]; 0.01 */
    int topk_fp16;             /* topk, dgc: values travel as fp16 */
    double ef21_sgdm_eta;      /* ef21-sgdm: moving-average weight, (0, 1]; 0.1 */
    /* Any other setting of the collective, by its environment variable:
     * "NAME=value" items separated by spaces or commas, applied after the
     * fields above and validated as the environment is (e.g.
     * "COMMPRESS_RANDK_DENSITY=0.05"; `commpress-info` lists the
     * variables). NULL = none. A codec added later is reached here without
     * a new field. */
    const char *settings;
} commpress_config_t;

/* Fills the documented defaults (those of the environment variables). */
void commpress_config_default(commpress_config_t *cfg);

typedef struct commpress_ctx commpress_ctx_t;

/* Collective over comm: checks that every rank passed the same
 * configuration (COMMPRESS_ERR_MISMATCH otherwise, on every rank). An
 * intercommunicator (or MPI_COMM_NULL) is refused with -1 on every rank:
 * its allreduce sums the other group's data. */
int commpress_create(const commpress_config_t *cfg, MPI_Comm comm,
                     commpress_ctx_t **ctx_p);
void commpress_destroy(commpress_ctx_t *ctx);

/* A transport of the caller's, for groups that are not MPI communicators
 * (python/commpress/torch.py drives it with torch.distributed): the
 * collectives commpress's algorithms move their bytes with, over a group
 * of `size` ranks in which this one is `rank`. Every rank calls them in
 * the same order; each returns 0 on success (anything else fails the
 * commpress call with COMMPRESS_ERR_TRANSPORT). The algorithms are the
 * same as over MPI (the two-phase and sparse-allgather schedules,
 * sparse_rs excepted: it needs v-collectives), so are the results: every
 * rank gets identical bits. */
typedef struct {
    int rank, size;
    void *user; /* passed to every call */
    /* recv[r * bytes ..] receives the `bytes` rank r sent to this one
     * from its send[this rank * bytes ..] */
    int (*alltoall)(void *user, const void *send, void *recv, size_t bytes);
    /* recv[r * bytes ..] receives rank r's `bytes` of send */
    int (*allgather)(void *user, const void *send, void *recv, size_t bytes);
    /* the elementwise maximum of n unsigned 64-bit values, in place */
    int (*allreduce_max_u64)(void *user, uint64_t *vals, size_t n);
    /* the exact sum of count floats (send NULL: in place on recv) */
    int (*allreduce_sum_f32)(void *user, const float *send, float *recv, size_t count);
} commpress_transport_t;

/* commpress_create over the caller's transport (copied: t need not
 * outlive the call, its user pointer must outlive the context).
 * Collective over the group, as commpress_create. */
int commpress_create_transport(const commpress_config_t *cfg, const commpress_transport_t *t,
                               commpress_ctx_t **ctx_p);

/* Compressed SUM allreduce of fp32. send == NULL means in place (recv holds
 * the input). tensor_id names the tensor whose error-feedback state is used:
 * pass the same id for the same tensor every step, and the same on every
 * rank (a tensor's first call and the workspace's growth are agreed across
 * ranks at points every rank must reach together). Every rank gets
 * identical bits. A rank out of memory makes every rank send the call
 * exact; a rank that cannot go on in step with its peers (a corrupt
 * message only it received) returns an error, which the caller should
 * treat as fatal. A step holding Inf/NaN on any rank is reduced exactly (non-finite
 * results everywhere) and leaves all state unchanged. */
int commpress_allreduce(commpress_ctx_t *ctx, const float *send, float *recv,
                        size_t count, uint64_t tensor_id);

/* Fused buffers (docs/lgreco.md, "Fused buffers"): a buffer of `count`
 * floats holding nlayers layers back to back, layer i being floats
 * [offsets[i], offsets[i + 1]) (nlayers + 1 offsets: 0 first, increasing,
 * count last; 1 to 65536 layers). Each layer is then compressed as a
 * tensor of its own: its own error feedback, its own L-GreCo setting
 * (COMMPRESS_ADAPT), its own message. A layout whose offsets do not start
 * at 0, increase and end at count is refused: -1 (COMMPRESS_ERR_INVALID)
 * and one line on stderr naming what is wrong.
 *
 * The ranks agree on a tensor's layout at its first compressed call: if
 * every rank registered the same layout, the tensor is split by it (a
 * copy kept with the tensor's state, so later changes to the registration
 * apply only to tensors named afterwards); otherwise it is one layer on
 * every rank, with a warning. Register before the buffer's first
 * allreduce, on every rank.
 *
 * commpress_register_layout: for the preloaded shim, the buffer at `buf`
 * (an allreduce's send buffer, or its receive buffer in place), under
 * COMMPRESS_STATE_KEY=auto or order (address keying ignores layouts). A
 * new registration of the same address replaces the old. */
int commpress_register_layout(const void *buf, size_t count, size_t nlayers,
                              const size_t *offsets);
/* Forgets buf's layout (0; a buffer without one is no error). */
int commpress_unregister_layout(const void *buf);
/* The explicit API: the layout of ctx's tensor `tensor_id` of `count`
 * floats; nlayers 0 forgets it. Not collective; pass the same on every
 * rank. */
int commpress_ctx_set_layout(commpress_ctx_t *ctx, uint64_t tensor_id,
                             size_t count, size_t nlayers,
                             const size_t *offsets);

/* Bytes of per-tensor state and workspace held by ctx. */
size_t commpress_state_bytes(const commpress_ctx_t *ctx);

const char *commpress_strerror(int status);

/* Statistics of the preloaded shim in this process. */
typedef struct {
    unsigned long long calls_compressed;
    unsigned long long calls_passthrough;
    unsigned long long calls_nonfinite;  /* compressed calls sent exact */
    unsigned long long bytes_uncompressed; /* ring allreduce, compressed calls */
    unsigned long long bytes_sent;         /* actually sent, compressed calls */
    unsigned long long bytes_passthrough;  /* ring estimate, passed-through calls */
    double ratio;                          /* bytes_uncompressed / bytes_sent */
    double compress_seconds;
    unsigned long long state_bytes;
    unsigned long long state_bytes_peak;
    /* The part of the compressed calls that ran a sparse (top-k/DGC)
     * algorithm, the allgather or sparse_rs: its ratio is the compression
     * of the sparsified tensors alone, without the tensors sent dense. */
    unsigned long long calls_sparse;
    unsigned long long bytes_uncompressed_sparse;
    unsigned long long bytes_sent_sparse;
    /* Compressed calls every rank sent exact because some rank failed (out
     * of memory, a message it could not encode or decode) or the ranks
     * disagreed on a tensor's state (docs/design.md, "Agreement"). */
    unsigned long long calls_fallback;
    /* Tensor states dropped to stay within COMMPRESS_MAX_STATE_BYTES (the
     * same number on every rank of a communicator). state_bytes counts
     * error feedback, workspaces and naming tables. */
    unsigned long long states_dropped;
    /* COMMPRESS_ADAPT=lgreco (docs/lgreco.md): plans applied, and the
     * bytes the configured setting on every tensor would have sent for
     * the same calls (= bytes_sent without COMMPRESS_ADAPT). */
    unsigned long long adapt_plans;
    unsigned long long bytes_sent_uniform;
    /* COMMPRESS_ALLTOALL (docs/moe.md): all-to-alls that ran compressed,
     * the bytes their blocks to other ranks hold, and the bytes sent for
     * them (the size exchange included). */
    unsigned long long a2a_calls_compressed;
    unsigned long long a2a_bytes_uncompressed;
    unsigned long long a2a_bytes_sent;
    /* COMMPRESS_POLICY=auto (docs/policy.md): calls the policy ran plain
     * (the exact sum, error feedback kept), not in calls_compressed; their
     * ring bytes count in bytes_uncompressed and bytes_sent alike. */
    unsigned long long calls_plain;
    /* COMMPRESS_PIPELINE=on (docs/policy.md): compressed two-phase calls
     * that ran the pipelined schedule (also in calls_compressed). */
    unsigned long long calls_pipelined;
    /* COMMPRESS_FUSE=on (docs/policy.md): compressed two-phase calls whose
     * error feedback ran fused with the encode (also in calls_compressed). */
    unsigned long long calls_fused;
} commpress_stats_t;

void commpress_stats(commpress_stats_t *out);

/* Statistics of the explicit calls made through ctx (same fields). */
void commpress_ctx_stats(const commpress_ctx_t *ctx, commpress_stats_t *out);

/* 1-bit Adam (Tang et al., 2021; docs/onebit_adam.md) over any
 * communicator. Steps below freeze_step are Adam with an exact gradient
 * allreduce (identical bits on every rank); from then on the variance is
 * frozen and the momentum is averaged by a two-phase 1-bit compressed
 * allreduce with worker and server error feedback. No bias correction:
 *   x <- x - lr (m / (sqrt(v) + eps) + weight_decay x). */
typedef struct {
    double lr;            /* default 1e-3 */
    double beta1, beta2;  /* default 0.9, 0.999; each in [0, 1) */
    double eps;           /* default 1e-8; > 0 */
    double weight_decay;  /* default 0 */
    uint64_t freeze_step; /* default 100000 (DeepSpeed's); steps of warm-up */
} commpress_onebit_adam_config_t;

typedef struct commpress_onebit_adam commpress_onebit_adam_t;

void commpress_onebit_adam_config_default(commpress_onebit_adam_config_t *c);
/* Collective over comm (which it duplicates): every rank passes the same
 * configuration and count, or all get COMMPRESS_ERR_INVALID/_MISMATCH. */
int commpress_onebit_adam_create(const commpress_onebit_adam_config_t *cfg,
                                 MPI_Comm comm, size_t count,
                                 commpress_onebit_adam_t **opt_p);
/* Frees the optimizer. While MPI is running it frees the duplicated
 * communicator too (MPI_Comm_free: by the MPI standard a collective over
 * it, so destroy on every rank); after MPI_Finalize (checked with
 * MPI_Finalized: a garbage collector at exit) it frees memory only, since
 * MPI_Comm_free would then be erroneous (Open MPI aborts the process). */
void commpress_onebit_adam_destroy(commpress_onebit_adam_t *opt);
/* Collective: one step over params[0..count) with this rank's gradient.
 * Inf/NaN in any rank's gradient (or momentum) skips the step everywhere:
 * parameters and state stay as they were, the return is -9
 * (COMMPRESS_ERR_NONFINITE), as a loss scaler expects. A rank out of
 * memory for the exchange makes every rank skip it alike, returning -2
 * (COMMPRESS_ERR_NOMEM). */
int commpress_onebit_adam_step(commpress_onebit_adam_t *opt, float *params,
                               const float *grads, size_t count);
/* Learning rate for the following steps (schedules); not part of the
 * saved state. */
int commpress_onebit_adam_set_lr(commpress_onebit_adam_t *opt, double lr);
uint64_t commpress_onebit_adam_steps(const commpress_onebit_adam_t *opt);
/* The complete state of this rank (step, m, v, worker and server error),
 * so that a resumed run continues bit for bit as if uninterrupted. Each
 * rank saves and loads its own. save with buf == NULL gives the size. */
int commpress_onebit_adam_save(const commpress_onebit_adam_t *opt, void *buf,
                               size_t cap, size_t *len);
/* Collective over the optimizer's communicator: every rank loads its own
 * checkpoint, and either all of them take it or none does (state
 * unchanged everywhere). A rank rejects (COMMPRESS_ERR_MALFORMED) a buffer
 * that is truncated, corrupt, or from another count, rank, communicator
 * size or freeze_step, or whose m, v or error buffers hold Inf/NaN or whose
 * v is negative (a crafted checkpoint: the checksum proves integrity, not
 * origin); when any rank rejected its checkpoint, or the ranks'
 * checkpoints are of different steps, the others return -11
 * (COMMPRESS_ERR_RANKS): no rank carries on fresh, or from another step,
 * while its peers resume. */
int commpress_onebit_adam_load(commpress_onebit_adam_t *opt, const void *buf,
                               size_t len);

typedef struct {
    unsigned long long steps, steps_compressed, steps_skipped;
    unsigned long long bytes_sent;  /* by this rank, all steps */
    unsigned long long bytes_dense; /* a ring allreduce of the fp32 gradient
                                       every step would have sent */
    double ratio;                   /* bytes_dense / bytes_sent */
} commpress_onebit_adam_stats_t;
void commpress_onebit_adam_stats(const commpress_onebit_adam_t *opt,
                                 commpress_onebit_adam_stats_t *out);

#ifdef __cplusplus
}
#endif

#endif
