/* State of one communicator: its transport, workspace and the table of
 * per-tensor states (DESIGN.md, contract 7). */
#ifndef CP_COMM_STATE_H
#define CP_COMM_STATE_H

#include <mpi.h>

#include "collectives/allreduce.h"
#include "collectives/transport_mpi.h"

typedef struct {
    uintptr_t addr;      /* buffer address, or call slot in order mode */
    size_t count;
    cp_tensor_t *tensor;
    uint64_t last_used;
    int next;            /* hash chain, -1 ends */
    int used;
} cp_tensor_entry_t;

typedef struct cp_comm_state {
    MPI_Comm comm;       /* the user's handle; the transport context */
    cp_transport_t tp;
    int is_inter;
    cp_workspace_t ws;
    cp_tensor_entry_t *entries;
    int *heads;
    size_t nbuckets;     /* power of two */
    size_t max_entries;
    size_t nused;
    uint64_t clock;      /* compressed calls on this communicator */
    size_t tensor_bytes; /* sum of cp_tensor_bytes over the table */
    int warned_evict;
    struct cp_comm_state *prev, *next; /* list of live states */
} cp_comm_state_t;

cp_status_t cp_comm_state_create(MPI_Comm comm, size_t max_entries,
                                 cp_comm_state_t **s_p);
void cp_comm_state_destroy(cp_comm_state_t *s);

/* Finds or creates the state of tensor (addr, count). */
cp_status_t cp_comm_state_tensor(cp_comm_state_t *s,
                                 const cp_coll_config_t *cfg, uintptr_t addr,
                                 size_t count, cp_tensor_t **t_p);

#endif
