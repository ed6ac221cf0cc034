/* L-GreCo in the shim (COMMPRESS_ADAPT=lgreco; docs/lgreco.md): each
 * tensor of a communicator is a layer. During the last
 * COMMPRESS_ADAPT_WINDOW steps of every COMMPRESS_ADAPT_EVERY, rank 0
 * measures each layer's candidates on each step's error-corrected vector
 * (the squared errors summed); then it solves the knapsack
 * (collectives/lgreco.h) and sends the plan (one byte per layer) to every
 * rank in one allreduce; every rank applies it at that same call. A
 * fused buffer's segments (plugin/layout.h) are layers of their own. The
 * schedule counts the communicator's compressed calls in steps of the
 * agreed period (the step detector's, or COMMPRESS_STEP_CALLS), so
 * every rank reaches the plan at the same call; tables that agree hold
 * the same tensors at the same entries. */
#ifndef CP_ADAPT_H
#define CP_ADAPT_H

#include "collectives/lgreco.h"
#include "collectives/transport.h"
#include "plugin/tensor_table.h"

typedef struct {
    cp_lgreco_cand_t cands[CP_LGRECO_MAX_CANDIDATES];
    size_t ncand, v0;
    uint64_t calls;          /* compressed calls since the last plan */
    int collecting;          /* in the window before a plan */
    int report;              /* the shim's: plans go to its statistics */
    void *scratch;           /* rank 0, during a window: the measurements' */
    size_t scratch_bytes;
    unsigned long long plans;
} cp_adapt_state_t;

void cp_adapt_init(cp_adapt_state_t *ad, const cp_coll_config_t *cfg);
/* At each compressed call, after it is named and before its tensor is
 * used; `period` is the agreed step in calls (0: not known yet, nothing
 * happens). Plans when a plan is due: collective over tp. */
cp_status_t cp_adapt_tick(cp_adapt_state_t *ad, const cp_coll_config_t *cfg,
                          cp_tensor_table_t *table, const cp_transport_t *tp,
                          size_t period);
/* Starts the tensor's statistics during a window (rank 0 only; a tensor
 * rank 0 lacks the memory for keeps its setting). */
void cp_adapt_collect(cp_adapt_state_t *ad, cp_tensor_t *t, int rank);
void cp_adapt_fini(cp_adapt_state_t *ad);
/* The configuration the tensor's calls run with. */
const cp_coll_config_t *cp_adapt_config(const cp_adapt_state_t *ad,
                                        const cp_coll_config_t *cfg,
                                        const cp_tensor_t *t);

#endif
