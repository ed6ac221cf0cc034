/* The two-phase algorithm (collectives/allreduce_twophase.c). */
#ifndef CP_ALLREDUCE_TWOPHASE_H
#define CP_ALLREDUCE_TWOPHASE_H

#include "collectives/coll.h"

void cp_allreduce_twophase_plan(const cp_allreduce_args_t *a,
                                const cp_compressor_ops_t *codec,
                                const cp_params_t *p, size_t need[CP_WS_SLOTS]);
/* Whether call a runs the pipelined schedule (COMMPRESS_PIPELINE and a
 * transport with point-to-point): equal on every rank. */
int cp_twophase_pipelined(const cp_allreduce_args_t *a);
cp_status_t cp_allreduce_twophase(const cp_allreduce_args_t *a,
                                  const cp_compressor_ops_t *codec,
                                  const cp_params_t *p, cp_coll_result_t *res);

#endif
