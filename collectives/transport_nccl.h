#ifndef CP_TRANSPORT_NCCL_H
#define CP_TRANSPORT_NCCL_H

#include <nccl.h>

#include "collectives/transport.h"

/* The NCCL transport: blocks live in device memory and every operation is
 * enqueued on `stream` (set per call) and returns at once. */
typedef struct {
    ncclComm_t comm;
    cudaStream_t stream;
} cp_nccl_ctx_t;

extern const cp_transport_ops_t cp_transport_nccl;

cp_status_t cp_transport_nccl_init(cp_transport_t *tp, cp_nccl_ctx_t *ctx);

/* The NCCL result of this thread's last failed transport call. */
ncclResult_t cp_transport_nccl_last_error(void);

#endif
