/* Compressed SUM allreduce of fp32 over a transport: the dispatcher. It
 * chooses the algorithm (a function of values equal on every rank) and
 * calls it; the algorithms live in their own files:
 *  - sparse allgather (collectives/allreduce_sparse.c, codecs with
 *    CP_CODEC_SPARSE): every rank's (index, value) message to all, decoded
 *    in rank order;
 *  - two-phase (collectives/allreduce_twophase.c: the other codecs, and the
 *    dense fallback with the identity codec): compressed alltoall, per-chunk
 *    sum in rank order with server error, compressed allgather.
 * Every rank decodes the same bytes in the same order, so every rank gets
 * identical bits (DESIGN.md, contract 1). */
#ifndef CP_ALLREDUCE_H
#define CP_ALLREDUCE_H

#include "collectives/coll.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The algorithm step `steps` of a tensor uses; a function of (count, size,
 * config, step) only, so every rank picks the same. */
cp_algo_t cp_allreduce_choose(const cp_coll_config_t *cfg,
                              const cp_params_t *p, uint64_t steps,
                              size_t count, int size);

/* Bytes one rank sends for a call of `count` floats with codec parameters
 * p at a step past the first: (n-1) slots for the sparse allgather, 2 (n-1)
 * for the two-phase algorithm (its slots sized by the largest chunk), as
 * cp_coll_result_t.bytes_sent counts them. The size L-GreCo weighs. */
/* Bytes one rank sends in sparse_rs with balanced regions (pairs both
 * ways, the blocks, counts and histograms). */
double cp_sparse_rs_bytes(const cp_params_t *p, size_t count, int size);
size_t cp_allreduce_wire_bytes(const cp_coll_config_t *cfg,
                               const cp_params_t *p, size_t count, int size);

/* Floats of feedback state a tensor needs: the whole tensor's (worker) and
 * this rank's chunk's (server; none for the sparse algorithm). */
void cp_tensor_floats(const cp_coll_config_t *cfg, size_t count, int size,
                      int rank, size_t *worker, size_t *server);
/* A zeroed tensor state for the algorithm cfg picks at (count, size). */
cp_status_t cp_tensor_create(const cp_coll_config_t *cfg, size_t count,
                             int size, int rank, cp_tensor_t **t_p);

/* Bytes of each workspace buffer the call a needs (a->tensor NULL: as
 * for a new tensor). */
void cp_allreduce_plan(const cp_allreduce_args_t *a, size_t need[CP_WS_SLOTS]);

/* Makes the workspace ready for call a (need: cp_allreduce_plan's, or
 * more), agreeing with the other ranks when needed: collective when
 * must_agree is set or the workspace grows beyond the agreed sizes (a
 * function of the calls so far, so every rank takes that branch
 * together). local_fail says this rank already failed (a tensor
 * allocation). words[0..nwords) travel in the same max-allreduce and come
 * back reduced. *ok_p: every rank is ready; else *fail_rank_p is the
 * highest rank that failed, and nobody may run the call compressed. */
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

#ifdef __cplusplus
}
#endif

#endif
