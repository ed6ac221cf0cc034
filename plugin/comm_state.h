/* State of one MPI communicator: its transport, workspace and tensor
 * table (DESIGN.md, contract 7). */
#ifndef CP_COMM_STATE_H
#define CP_COMM_STATE_H

#include <mpi.h>

#include "collectives/allreduce.h"
#include "collectives/transport_mpi.h"
#include "plugin/tensor_table.h"

typedef struct cp_comm_state {
    MPI_Comm comm; /* the user's handle; the transport context */
    cp_transport_t tp;
    int is_inter;
    cp_workspace_t ws;
    cp_tensor_table_t tensors;
    uint64_t calls; /* compressed calls on this communicator */
    struct cp_comm_state *prev, *next; /* list of live states */
} cp_comm_state_t;

cp_status_t cp_comm_state_create(MPI_Comm comm, size_t max_entries,
                                 cp_comm_state_t **s_p);
void cp_comm_state_destroy(cp_comm_state_t *s);
size_t cp_comm_state_bytes(const cp_comm_state_t *s);

/* Finds or creates the state of tensor (addr, count). */
cp_status_t cp_comm_state_tensor(cp_comm_state_t *s,
                                 const cp_coll_config_t *cfg, uintptr_t addr,
                                 size_t count, cp_tensor_t **t_p);

#endif
