/* Fault injection, for the tests that prove a failure on one rank never
 * hangs or splits a job (tests/mpi/test_identity.c, "faults").
 * COMMPRESS_FAULT=kind@rank:call[,kind@rank:call...] makes the named
 * failure happen once on that rank (of MPI_COMM_WORLD) during its call-th
 * compressed call (counted from 0 over all communicators):
 *   alloc     allocating a communicator's or a tensor's state fails
 *   wsalloc   growing the communicator's workspace fails
 *   encode    encoding this rank's message fails
 *   corrupt1  a message this rank receives in phase 1 (two-phase) is
 *             corrupt: its payload length is out of range
 *   corrupt   a message this rank receives in the final exchange is
 *             corrupt
 *   diverge   this rank's state of the call's tensor differs from its
 *             peers' (as if it had missed a step)
 * Unset, every check is one load and a compare. */
#ifndef CP_FAULT_H
#define CP_FAULT_H

#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

typedef enum {
    CP_FAULT_ALLOC = 0,
    CP_FAULT_WSALLOC,
    CP_FAULT_ENCODE,
    CP_FAULT_CORRUPT1,
    CP_FAULT_CORRUPT,
    CP_FAULT_DIVERGE,
    CP_FAULT_KINDS
} cp_fault_kind_t;

/* Whether the specification is well formed (CP_ERR_CONFIG if not). */
cp_status_t cp_fault_check(const char *spec);
/* Arms the faults of a well-formed specification. */
cp_status_t cp_fault_configure(const char *spec);
void cp_fault_set_rank(int rank);
/* Marks the start of the next compressed call. */
void cp_fault_tick(void);
/* True (once) when a fault of this kind is due now. */
int cp_fault(cp_fault_kind_t kind);

#endif
