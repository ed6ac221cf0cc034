/* Error feedback: what a rank compresses, and what it remembers of what it
 * could not send (ALGORITHMS.md, "Error feedback").
 *
 * A step is split in two so that a bad step changes nothing (DESIGN.md,
 * contract 4):
 *  - prepare() forms the vector to compress from the gradient and the state,
 *    without modifying the state, and reports whether it holds Inf/NaN;
 *  - commit() updates the state from what was actually sent, and runs only
 *    after every rank has learned that the step was finite everywhere.
 * State is a flat array of state_floats(n) floats, zeroed at creation and
 * owned by the caller, so it can be saved, restored and counted. The layout
 * is element-major: the state of elements [off, off + m) starts at
 * state_floats(off), so a chunk of a tensor is committed on its own. */
#ifndef CP_FEEDBACK_H
#define CP_FEEDBACK_H

#include "compressors/compressor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Parameters of the variants that have any: each variant's rows
 * (configuration) point into this struct. */
typedef struct {
    float momentum;       /* dgc: m in u <- m u + g */
    double clip;          /* dgc: g is scaled to norm <= clip; 0 = off. The
                             collectives pass the configured norm / sqrt(n). */
    size_t warmup_steps;  /* dgc: density 0.25 -> the codec's over these steps */
    size_t dense_below;   /* dgc: tensors of fewer elements go dense */
    float eta;            /* econtrol: feedback strength */
    float sgdm_eta;       /* ef21-sgdm: momentum weight */
    int first;            /* set per call: the tensor's first step */
} cp_fb_params_t;

typedef size_t (*cp_fb_state_floats_func_t)(size_t n);
/* Returns the vector to encode: g itself, or work[0..n) filled by the call.
 * Sets *nonfinite when that vector holds Inf or NaN. Variants with uses_aux
 * also fill aux[0..n) with values commit needs (the input g may be gone by
 * commit time: in-place calls overwrite it with the result). */
typedef const float *(*cp_fb_prepare_func_t)(const cp_fb_params_t *fp,
                                             const float *state,
                                             const float *g, float *work,
                                             float *aux, size_t n,
                                             int *nonfinite);
/* v, aux: what prepare produced; msg/len: the encoding of v that was sent
 * with codec (cp_compressor_none when the step went dense); tmp: n floats
 * of scratch for variants with uses_tmp (NULL otherwise). */
typedef cp_status_t (*cp_fb_commit_func_t)(const cp_fb_params_t *fp,
                                           float *state, const float *v,
                                           const float *aux, float *tmp,
                                           const cp_compressor_ops_t *codec,
                                           const cp_params_t *p,
                                           const void *msg, size_t len,
                                           size_t n);
/* Variants whose result is an aggregated estimator (EF21, EControl): out
 * holds the sum over ranks of what was sent (identical on every rank);
 * finish adds it to the estimator Hbar kept in state and replaces out by
 * Hbar. Runs on the whole tensor, after commit, on clean steps only. */
typedef void (*cp_fb_finish_func_t)(float *state, float *out, size_t n);

/* What a variant is (flags). */
enum {
    CP_FB_GPU = 1u << 0,   /* the GPU path runs it by hand (none, ef) */
    CP_FB_FIXED = 1u << 1, /* only as a codec's own feedback (DGC's), not a
                              COMMPRESS_FEEDBACK choice */
    CP_FB_WARMUP = 1u << 2, /* the codec's density warms up from 0.25 over
                               warmup_steps (DGC's schedule) */
    CP_FB_ZERO_AFTER_EXACT = 1u << 3, /* a step with the identity codec
                               leaves the state zero, and a plain sum of g
                               equals such a step from a zero state (none,
                               EF: no momentum, no estimator) */
};

struct cp_gpu_feedback; /* compressors/cuda/gpu_feedback.h */
/* Declares a variant's GPU twin (compressors/cuda/feedback.cu): a weak
 * reference, NULL in a build without CUDA, as CP_GPU_TWIN for codecs. */
#define CP_GPU_FB_TWIN(sym)                                                  \
    extern const struct cp_gpu_feedback sym                                  \
        __attribute__((weak, visibility("hidden")))

typedef struct cp_feedback_ops {
    const char *name;
    const char *doc;         /* one line (commpress-info) */
    unsigned flags;          /* CP_FB_* */
    const cp_param_t *params; /* its rows, offsets into cp_fb_params_t */
    size_t nparams;
    cp_fb_state_floats_func_t state_floats;
    int uses_aux; /* prepare fills aux for commit */
    int uses_tmp; /* commit needs tmp */
    int dense_first; /* a tensor's first step goes uncompressed */
    /* The feedback the server side of the two-phase algorithm applies to
     * its summed chunk: EF for EF, EF21 and EControl; none for DGC, whose
     * momentum belongs to the worker only. It must use neither aux, tmp
     * nor finish (the server side gets NULL for both buffers). */
    const struct cp_feedback_ops *server;
    cp_fb_prepare_func_t prepare;
    cp_fb_commit_func_t commit;
    cp_fb_finish_func_t finish; /* NULL: the result is the decoded sum */
    /* Its GPU twin (same formulas, feedback_math.h), NULL where none or
     * where the GPU path runs it by hand (none and ef: CP_FB_GPU). */
    const struct cp_gpu_feedback *gpu;
} cp_feedback_ops_t;

/* Whether the NCCL path runs a variant. */
static inline int cp_feedback_on_gpu(const cp_feedback_ops_t *fb)
{
    return (fb->flags & CP_FB_GPU) || fb->gpu != NULL;
}

/* The variants other files name: the defaults (none, ef), the server
 * side of the estimators (ef), DGC's (fixed by the dgc codec). */
extern const cp_feedback_ops_t cp_feedback_none;
extern const cp_feedback_ops_t cp_feedback_ef;
extern const cp_feedback_ops_t cp_feedback_dgc;

/* The registry (compressors/feedback_registry.c). */
size_t cp_feedback_count(void);
const cp_feedback_ops_t *cp_feedback_at(size_t i);
const cp_feedback_ops_t *cp_feedback_find(const char *name);
int cp_feedback_index(const char *name);
#define CP_MAX_FEEDBACKS 8
/* EF21's and EControl's finish: H (the last float of each element's
 * stride floats of state) += out; out = H. */
void cp_feedback_finish_estimator(float *st, size_t stride, float *out,
                                  size_t n);
/* The same for variants whose H is the third of three floats (EControl,
 * EF21-SGDM): their finish slot. */
void cp_feedback_finish_estimator3(float *st, float *out, size_t n);

/* Shared by variants: nonzero if any of x[0..n) is Inf or NaN. */
int cp_any_nonfinite(const float *x, size_t n);

#ifdef __cplusplus
}
#endif

#endif
