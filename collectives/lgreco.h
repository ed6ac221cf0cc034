/* L-GreCo's planner (Markov et al., MLSys 2024; ALGORITHMS.md, "L-GreCo"):
 * given, per layer l and candidate setting v, the compression error
 * err[l][v] >= 0 and the exact wire size size[l][v], choose one candidate
 * per layer so that the total size is the smallest whose total error stays
 * within a budget E. A multiple-choice knapsack, solved by dynamic
 * programming over errors discretized into B units of E / B:
 *   units[l][v] = ceil(err[l][v] / (E / B))   (a candidate beyond B: never)
 *   D[-1][b] = 0;  D[l][b] = min_v D[l-1][b - units[l][v]] + size[l][v]
 * the answer D[L-1][B], backtracked. Rounding units up makes the chosen
 * plan's true total error <= E, always. O(L |V| B) time, O(L B) bytes of
 * choices (one byte each) and two rows of sizes. Deterministic: among
 * equal sizes the smaller candidate index wins, so any rank computing from
 * the same table gets the same plan. */
#ifndef CP_LGRECO_H
#define CP_LGRECO_H

#include <stddef.h>
#include <stdint.h>

#include "collectives/coll.h"
#include "util/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CP_LGRECO_MAX_CANDIDATES 16
#define CP_LGRECO_BINS 10000 /* B of the reference code */

typedef struct {
    size_t nlayers, ncand;
    const double *err;    /* [l * ncand + v], >= 0 and finite */
    const uint64_t *size; /* [l * ncand + v], bytes */
    double budget;        /* E >= 0 */
    size_t bins;          /* B >= 1 */
} cp_lgreco_problem_t;

/* Bytes of scratch cp_lgreco_solve needs. */
size_t cp_lgreco_scratch(size_t nlayers, size_t bins);
/* choice[l] = the chosen candidate of layer l; *total its total size.
 * CP_ERR_RANGE when no plan fits the budget (choice untouched);
 * CP_ERR_INVALID for a bad problem. */
cp_status_t cp_lgreco_solve(const cp_lgreco_problem_t *p, void *scratch,
                            uint8_t *choice, uint64_t *total);
/* The units of a candidate (UINT32_MAX: beyond the budget). */
uint32_t cp_lgreco_units(double err, double budget, size_t bins);

/* One candidate setting of a layer: the configuration its calls run with
 * (the codec's own settings from its `adapt`, then, for a biased codec,
 * fp16 and none, and for a cast, none: the "no compression" candidates). */
typedef struct cp_lgreco_cand {
    cp_coll_config_t cfg;
    char name[32]; /* "quant bits=4", "topk density=0.0025", "fp16", "none" */
} cp_lgreco_cand_t;

/* cfg's candidates (at most CP_LGRECO_MAX_CANDIDATES), *v0 the configured
 * setting's index. */
size_t cp_lgreco_candidates(const cp_coll_config_t *cfg, cp_lgreco_cand_t *out,
                            size_t *v0);
/* The error table of one layer: err[v] = ||D_v(C_v(x)) - x||_2 of its
 * (accumulated, error-corrected) gradient x, size[v] = the bytes one rank
 * sends for a call of n floats on nranks ranks (cp_allreduce_wire_bytes).
 * scratch: cp_lgreco_measure_scratch bytes. */
size_t cp_lgreco_measure_scratch(const cp_lgreco_cand_t *c, size_t nc, size_t n);
/* size only, and err only (the same scratch). */
void cp_lgreco_sizes(const cp_lgreco_cand_t *c, size_t nc, size_t n,
                     int nranks, uint64_t *size);
cp_status_t cp_lgreco_errors(const cp_lgreco_cand_t *c, size_t nc,
                             const float *x, size_t n, double *err,
                             void *scratch);
cp_status_t cp_lgreco_measure(const cp_lgreco_cand_t *c, size_t nc,
                              const float *x, size_t n, int nranks,
                              double *err, uint64_t *size, void *scratch);

#ifdef __cplusplus
}
#endif

#endif
