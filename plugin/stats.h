/* Process-wide statistics of the shim, reported at MPI_Finalize. */
#ifndef CP_STATS_H
#define CP_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "collectives/allreduce.h"
#include "include/commpress.h"

void cp_stats_add_compressed(const cp_coll_result_t *res);
/* Adds one compressed call to s (the shim's totals or an API context's). */
void cp_stats_accumulate(commpress_stats_t *s, const cp_coll_result_t *res);
/* Sets s->ratio from the byte counts. */
void cp_stats_set_ratio(commpress_stats_t *s);
void cp_stats_add_passthrough(size_t bytes_dense);
/* State is reported in parts (MPI communicators, NCCL communicators),
 * each set as a whole by its owner. */
enum { CP_STATS_PART_MPI = 0, CP_STATS_PART_NCCL = 1 };
void cp_stats_set_state_bytes_part(int part, size_t bytes);
#define cp_stats_set_state_bytes(b) cp_stats_set_state_bytes_part(CP_STATS_PART_MPI, (b))
void cp_stats_get(commpress_stats_t *out);
/* Writes the JSON file (path with %r replaced by rank); 0 on success. */
int cp_stats_write_json(const char *path_template, int rank);
void cp_stats_print_summary(int rank, const char *compressor);

#endif
