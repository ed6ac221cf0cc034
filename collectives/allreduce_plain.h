/* The plain call of a tensor (COMMPRESS_POLICY=auto chose not to compress
 * it; plugin/policy.h): the exact sum through the transport
 * (PMPI_Allreduce), the tensor's feedback kept. */
#ifndef CP_ALLREDUCE_PLAIN_H
#define CP_ALLREDUCE_PLAIN_H

#include "collectives/coll.h"

/* Runs call a plain. The feedback takes a step with the identity codec:
 *   v = prepare(g)             (EF: g + e)
 *   v[this rank's chunk] += server error, which becomes 0
 *   out = sum over ranks of v  (the transport's exact allreduce)
 *   commit(v sent whole)       (EF: e = 0; EF21: h = g; DGC: its
 *                               accumulation sent, its momentum kept;
 *                               EControl: eta e sent, (1 - eta) e kept)
 *   finish(out)                (EF21, EControl: the estimator)
 * so what error feedback held back is sent now, once (EControl: by its
 * own rule), and nothing is lost by switching a tensor from compressed to
 * plain. The worker commits its own v: the server's error added to the
 * chunk is not its own. A tensor whose
 * variant has CP_FB_ZERO_AFTER_EXACT (none, EF) and whose last step was
 * such a plain step has a zero state: its next plain calls are the plain
 * sum of g, with no pass over it. The workspace must hold the call's
 * plan (cp_allreduce_plan: V, and the variant's aux and tmp).
 *
 * A rank whose v holds Inf or NaN sends g instead and keeps its state;
 * when the sum holds Inf or NaN (seen alike on every rank), no rank
 * commits: a non-finite step changes no state, as in the compressed
 * algorithms. The result is identical on every rank (one allreduce);
 * steps and hist do not change (they count compressed steps). */
cp_status_t cp_allreduce_plain(const cp_allreduce_args_t *a,
                               cp_coll_result_t *res);
/* The plain sum of call a's input, no feedback (a tensor whose state is
 * zero, or a fused one whose segments' states all are), reported as a
 * plain call. */
cp_status_t cp_allreduce_plain_sum(const cp_allreduce_args_t *a,
                                   cp_coll_result_t *res);

#endif
