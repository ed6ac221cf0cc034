/* Tensor identity from the sequence of calls (docs/design.md, "Tensor
 * identity"). Every rank of a communicator makes the same compressed calls
 * in the same order with the same counts (MPI requires matching
 * collectives), so whatever is computed from that sequence alone is equal
 * on every rank. The detector finds the training step, the repeating
 * pattern of call signatures, and names each call (signature, id): the
 * id-th tensor of that signature in the step. A tensor keeps its name from
 * step to step whatever buffer it arrives in, and the name is the same on
 * every rank.
 *
 *  - learning: ids count the occurrences of each signature since learning
 *    began; the step is found once the last 2p signatures repeat with
 *    period p (the smallest such p);
 *  - locked: the step is a template of P (signature, id) entries and each
 *    call must match the next one. A call that does not starts
 *    relearning;
 *  - relearning: calls are aligned to the old template (a call matching a
 *    later entry skips the ones between; one matching none is a new tensor
 *    with a new id), so unchanged tensors keep their names, and the new
 *    step is found once the last 2p (signature, id) pairs repeat.
 *
 * Equal signatures in a repeating pattern (identical layers) look like a
 * shorter step than the real one. Evidence from buffer addresses, agreed
 * across ranks by the caller, lengthens it (cp_stepdet_evidence): the
 * caller passes, per call, the smallest distance D = m P (m >= 2) some
 * rank reports back to the previous use of the same buffer, or 0 when no
 * rank does or one reports exactly P (a stable buffer confirms the step;
 * cp_slots_scan). When D holds for P consecutive calls, the step is D.
 *
 * Nothing here allocates after init, so no rank can fail halfway. */
#ifndef CP_STEP_DETECT_H
#define CP_STEP_DETECT_H

#include <stddef.h>
#include <stdint.h>

#include "util/status.h"
#include "util/u64map.h"

/* A call's signature: its count and a kind (datatype), equal on every rank. */
static inline uint64_t cp_stepdet_sig(size_t count, unsigned kind)
{
    return ((uint64_t)count << 2) | (kind & 3u);
}

typedef struct {
    uint64_t sig, old_id, new_id;
} cp_sd_rename_t;

enum {
    CP_SD_LOCKED = 1,   /* a step was found */
    CP_SD_CHANGED = 2,  /* a call did not match the step: relearning */
    CP_SD_RELOCKED = 4, /* the changed step was found */
    CP_SD_UPGRADED = 8, /* buffer evidence lengthened the step */
    CP_SD_WINDOW = 16,  /* no step within the window: ids start over */
};

/* What the caller does before this call's lookup. With remap set, it
 * keeps the states named old_id in renames, under new_id, and frees every
 * other state of the communicator. */
typedef struct {
    unsigned events;   /* CP_SD_* bits of this call */
    size_t period;     /* the step after this call's events (0: learning) */
    size_t old_period;
    int remap;
    const cp_sd_rename_t *renames;
    size_t nrenames;
} cp_sd_action_t;

typedef struct {
    size_t maxp, W;       /* longest step found; history window W = 2 maxp */
    uint64_t *rsig, *rid; /* history ring: call i at i % W */
    uint64_t n;           /* calls seen */
    int mode;
    uint64_t base;        /* first call the period tracker considers */
    size_t cand, run;     /* candidate period and its run of matches */
    cp_u64map_t occ;      /* learning: sig -> next id; relearning: sig ->
                             new tensors since the old step wrapped */
    cp_u64map_t top;      /* sig -> first unused id (relearning, upgrade) */
    uint64_t *tsig, *tid; /* the template: P entries */
    size_t P, pos;
    uint64_t *osig, *oid; /* relearning: the old template and its pointer */
    size_t oP, j;
    size_t streak;        /* relearning: new tensors in a row */
    uint64_t first_new;   /* relearning: first new signature since a wrap */
    int has_first_new;
    uint64_t ev_val;      /* evidence: proposed step and its run */
    size_t ev_run;
    int pending;          /* a transition applied at the next call */
    size_t pend_p;
    cp_sd_rename_t *ren;
    size_t *order;        /* scratch for relock's duplicate check */
} cp_stepdet_t;

cp_status_t cp_stepdet_init(cp_stepdet_t *d, size_t max_period);
void cp_stepdet_fini(cp_stepdet_t *d);
size_t cp_stepdet_bytes(const cp_stepdet_t *d);
/* The id of the next call, of signature sig. */
uint64_t cp_stepdet_next(cp_stepdet_t *d, uint64_t sig, cp_sd_action_t *act);
/* After the call: the step evidence all ranks agreed on, 0 for none. */
void cp_stepdet_evidence(cp_stepdet_t *d, uint64_t dist);
/* The step when locked (evidence is filtered against it), else 0. */
size_t cp_stepdet_period(const cp_stepdet_t *d);

#endif
