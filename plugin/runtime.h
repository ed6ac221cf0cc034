/* The process-wide configuration, parsed once whichever entry point comes
 * first: MPI_Init (which also checks it across ranks) or the first NCCL
 * communicator. */
#ifndef CP_RUNTIME_H
#define CP_RUNTIME_H

#include "plugin/config.h"

/* Parses the environment once; later calls return the first result (and
 * its message). Thread-safe. */
cp_status_t cp_runtime_load(char *err, size_t errlen);
/* As cp_runtime_load, but an invalid configuration stops the process with
 * the one-line error (for entry points with no collective to coordinate). */
void cp_runtime_load_or_exit(void);
const cp_config_t *cp_runtime_config(void);
/* MPI_Init ran through the shim and its configuration is valid
 * (plugin/mpi_allreduce.c). */
int cp_shim_ready(void);
const cp_coll_config_t *cp_runtime_coll(void);

#endif
