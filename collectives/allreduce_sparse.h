/* The sparse allgather algorithm (collectives/allreduce_sparse.c). */
#ifndef CP_ALLREDUCE_SPARSE_H
#define CP_ALLREDUCE_SPARSE_H

#include "collectives/coll.h"

void cp_allreduce_sparse_plan(const cp_allreduce_args_t *a,
                              const cp_params_t *p, size_t need[CP_WS_SLOTS]);
cp_status_t cp_allreduce_sparse(const cp_allreduce_args_t *a,
                                const cp_params_t *p, cp_coll_result_t *res);

#endif
