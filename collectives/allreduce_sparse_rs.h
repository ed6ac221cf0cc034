/* The scalable sparse allreduce (COMMPRESS_ALLREDUCE_ALGO=sparse_rs), after
 * Ok-Topk (Li and Hoefler, PPoPP 2022); collectives/allreduce_sparse_rs.c
 * and docs/scaling.md say what it computes. */
#ifndef CP_ALLREDUCE_SPARSE_RS_H
#define CP_ALLREDUCE_SPARSE_RS_H

#include "collectives/coll.h"

/* Bytes of an exchange block: a slot header and a u64 count. */
#define CP_RS_BLOCK (CP_SLOT_HDR + 8)

/* The algorithm choice's cost model (collectives/allreduce.c,
 * docs/scaling.md): sparse_rs's bytes count CP_RS_IMBALANCE times (its
 * regions are balanced from the last step, not this one), and each of its
 * rounds beyond the allgather's one (the agreement, the alltoallv, four
 * histograms, the counts, the allgatherv) as CP_RS_LATENCY_BYTES: about
 * 130 us at 1 Gbit/s, a small collective's latency over TCP. */
#define CP_RS_IMBALANCE 1.5
#define CP_RS_ROUNDS 8
#define CP_RS_LATENCY_BYTES 16384.0

/* Whether the transport has what sparse_rs needs. */
int cp_allreduce_sparse_rs_can(const cp_transport_t *tp);
/* The index regions of a call: bounds[0..size] (0 to count), rank j owns
 * [bounds[j], bounds[j + 1]); the tensor's, balanced at its last
 * sparse_rs step, or even ones. Equal on every rank that agrees on the
 * tensor. */
void cp_sparse_rs_bounds(const cp_tensor_t *t, size_t count, int size, size_t *bounds);
void cp_allreduce_sparse_rs_plan(const cp_allreduce_args_t *a, const cp_params_t *p,
                                 size_t need[CP_WS_SLOTS]);
cp_status_t cp_allreduce_sparse_rs(const cp_allreduce_args_t *a, const cp_params_t *p,
                                   cp_coll_result_t *res);

#endif
