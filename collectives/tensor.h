/* State of one tensor (DESIGN.md, contract 7): worker and server error.
 * Its size is fixed at creation (cp_tensor_floats, collectives/allreduce.h,
 * says how much a configuration needs). steps and hist change only on clean steps, which
 * every rank learns of together, so they are equal on every rank that
 * names the tensor alike; the slot header carries them so that a rank
 * whose state differs is seen by all before anything is committed. */
#ifndef CP_TENSOR_H
#define CP_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cp_tensor {
    size_t count;
    uint64_t steps; /* completed compressed steps */
    uint64_t hist;  /* hash of the calls those steps were */
    float *worker;  /* feedback state of the whole tensor */
    /* COMMPRESS_FUSE (allreduce_twophase.c): a second worker state the
     * fused pass writes the new error into; it and worker swap at commit.
     * NULL until a fused call needs it. */
    float *spare;
    float *server;  /* feedback state of this rank's chunk */
    /* sparse_rs (collectives/allreduce_sparse_rs.h): the index regions of
     * the next call, rs_parts = ranks + 1 bounds, balanced from the last
     * step's selection (equal on every rank); NULL: even regions. */
    size_t *rs_bounds;
    size_t rs_parts;
    size_t worker_floats;
    size_t server_floats;
    /* The state is zero after a plain step (collectives/allreduce_plain.h)
     * of a variant with CP_FB_ZERO_AFTER_EXACT; any compressed step or
     * reset clears it. */
    int clean;
    /* L-GreCo (COMMPRESS_ADAPT): the candidate this tensor runs with (-1:
     * the configured setting), equal on every rank (a plan applies at one
     * agreed call; it joins the slot check word); and, on the planning
     * rank during a window, each candidate's squared error on each step's
     * error-corrected vector, summed (err2[ncand]), with the scratch
     * that takes (not owned: the communicator's) and the seconds spent. */
    int setting;
    const struct cp_lgreco_cand *cands;
    size_t ncand;
    double *err2;
    uint32_t err_calls;
    void *scratch;
    double err_seconds;
    /* A fused buffer (plugin/layout.h): nseg > 0 segments, segment k being
     * floats [seg_off[k], seg_off[k + 1]) and the tensor seg[k] of its
     * own; the fused tensor then holds no feedback itself. layout_hash
     * names the layout (agreed across ranks at the tensor's first call). */
    size_t nseg;
    size_t *seg_off;
    struct cp_tensor **seg;
    uint64_t layout_hash;
} cp_tensor_t;

/* A zeroed state of count elements holding the given floats. */
cp_status_t cp_tensor_new(size_t count, size_t worker_floats,
                          size_t server_floats, cp_tensor_t **t_p);
/* A fused tensor of count floats split at off[0..nseg] (0 to count), its
 * segments not made yet (seg[k] NULL: the caller makes them). */
cp_status_t cp_tensor_new_fused(size_t count, size_t nseg, const size_t *off,
                                uint64_t layout_hash, cp_tensor_t **t_p);
/* Frees the tensor and its segments. */
void cp_tensor_destroy(cp_tensor_t *t);
/* Bytes of feedback state, the segments' included. */
size_t cp_tensor_bytes(const cp_tensor_t *t);
/* Makes t->spare (worker_floats floats) if it has none yet. */
cp_status_t cp_tensor_spare(cp_tensor_t *t);
/* The spare buffer, holding the new error, becomes the worker state. */
void cp_tensor_swap_spare(cp_tensor_t *t);
/* Back to the state of a new tensor (zeros, step 0; segments too). */
void cp_tensor_reset(cp_tensor_t *t);
/* L-GreCo's statistics, when err2 is set: err2[c] += ||D_c(C_c(v)) - v||^2
 * for every candidate c (collectives/lgreco.h). */
void cp_tensor_accumulate(cp_tensor_t *t, const float *v);
/* Records a completed clean step: the call's index joins the history. */
void cp_tensor_step(cp_tensor_t *t, uint64_t call);

#ifdef __cplusplus
}
#endif

#endif
