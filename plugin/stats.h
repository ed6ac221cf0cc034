/* Process-wide statistics of the shim, reported at MPI_Finalize. */
#ifndef CP_STATS_H
#define CP_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "collectives/allreduce.h"
#include "include/commpress.h"

/* Returns the calls the shim handled so far (compressed, or plain by the
 * policy): COMMPRESS_STATS_EVERY counts them. */
unsigned long long cp_stats_add_compressed(const cp_coll_result_t *res);
/* Adds one compressed call to s (the shim's totals or an API context's). */
void cp_stats_accumulate(commpress_stats_t *s, const cp_coll_result_t *res);
/* Sets s->ratio from the byte counts. */
void cp_stats_set_ratio(commpress_stats_t *s);
void cp_stats_add_passthrough(size_t bytes_dense);
/* State memory is kept in parts (host: the MPI communicators' states;
 * device: the NCCL communicators'). Each owner (one communicator's state)
 * reports its own size, *charged remembering what it reported last, so no
 * list of owners is ever walked and a thread reports only what it owns.
 * state_bytes and its peak are the parts' sum. Thread-safe. */
enum { CP_STATS_PART_MPI = 0, CP_STATS_PART_NCCL = 1, CP_STATS_PARTS = 2 };
void cp_stats_state_charge(int part, size_t *charged, size_t bytes);
/* The part's total with one owner's `bytes` in place of what it charged
 * (what the total would be if it reported now). */
size_t cp_stats_state_with(int part, size_t charged, size_t bytes);
/* Tensor states dropped by COMMPRESS_MAX_STATE_BYTES. */
void cp_stats_add_dropped(size_t n);
/* A COMMPRESS_ADAPT plan applied; rank 0's last plan as a JSON array
 * (per layer: count, setting, error, bytes) for the statistics file. */
void cp_stats_add_plan(void);
void cp_stats_set_plan(const char *json);
/* A compressed all-to-all (COMMPRESS_ALLTOALL). */
void cp_stats_add_a2a(size_t bytes_uncompressed, size_t bytes_sent);
void cp_stats_get(commpress_stats_t *out);
/* The file of one rank: %r becomes the rank; without %r and with several
 * ranks, ".<rank>" is appended. */
void cp_stats_path(const char *path_template, int rank, int nranks,
                   char *path, size_t len);
/* Writes the JSON file (never through a symbolic link): CP_STATS_OBJECT,
 * one object (the file's whole content); CP_STATS_LINE and CP_STATS_FINAL
 * (COMMPRESS_STATS_EVERY), one line appended (the first truncates the
 * file) with the line's number, the seconds since the first and whether
 * it is MPI_Finalize's. 0 on success, -1 with one warning naming the path
 * and the reason. */
enum { CP_STATS_OBJECT = 0, CP_STATS_LINE = 1, CP_STATS_FINAL = 2 };
int cp_stats_write_json(const char *path_template, int rank, int nranks, int mode);
void cp_stats_print_summary(int rank, const char *compressor);

#endif
