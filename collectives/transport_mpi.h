#ifndef CP_TRANSPORT_MPI_H
#define CP_TRANSPORT_MPI_H

#include <mpi.h>

#include "collectives/transport.h"

extern const cp_transport_ops_t cp_transport_mpi;

/* Fills tp for comm; tp->ctx points at *comm_slot, which must outlive tp. */
cp_status_t cp_transport_mpi_init(cp_transport_t *tp, MPI_Comm *comm_slot);

/* Lets tp's pipelined schedules send point-to-point on *p2p_slot: a
 * communicator only commpress uses (a duplicate), so that its messages
 * cannot match the application's receives. It must outlive tp. */
void cp_transport_mpi_p2p(cp_transport_t *tp, MPI_Comm *p2p_slot);

/* cp_transport_agree (collectives/transport.h) over comm, before any
 * transport of commpress's exists. */
cp_status_t cp_mpi_agree(MPI_Comm comm, int valid, uint64_t hash);

#endif
