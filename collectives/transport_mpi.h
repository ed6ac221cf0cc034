#ifndef CP_TRANSPORT_MPI_H
#define CP_TRANSPORT_MPI_H

#include <mpi.h>

#include "collectives/transport.h"

extern const cp_transport_ops_t cp_transport_mpi;

/* Fills tp for comm; tp->ctx points at *comm_slot, which must outlive tp. */
cp_status_t cp_transport_mpi_init(cp_transport_t *tp, MPI_Comm *comm_slot);

#endif
