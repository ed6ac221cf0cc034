/* The real NCCL entry points, beneath any interception: the next
 * definition after ours (dlsym RTLD_NEXT), or NCCL's pnccl* aliases. */
#ifndef CP_NCCL_REAL_H
#define CP_NCCL_REAL_H

#include <nccl.h>

typedef struct {
    ncclResult_t (*AllReduce)(const void *, void *, size_t, ncclDataType_t,
                              ncclRedOp_t, ncclComm_t, cudaStream_t);
    ncclResult_t (*AllGather)(const void *, void *, size_t, ncclDataType_t,
                              ncclComm_t, cudaStream_t);
    ncclResult_t (*Send)(const void *, size_t, ncclDataType_t, int, ncclComm_t,
                         cudaStream_t);
    ncclResult_t (*Recv)(void *, size_t, ncclDataType_t, int, ncclComm_t,
                         cudaStream_t);
    ncclResult_t (*GroupStart)(void);
    ncclResult_t (*GroupEnd)(void);
    ncclResult_t (*CommCount)(const ncclComm_t, int *);
    ncclResult_t (*CommUserRank)(const ncclComm_t, int *);
    ncclResult_t (*CommCuDevice)(const ncclComm_t, int *);
    ncclResult_t (*CommInitRank)(ncclComm_t *, int, ncclUniqueId, int);
    ncclResult_t (*CommInitRankConfig)(ncclComm_t *, int, ncclUniqueId, int,
                                       ncclConfig_t *);
    ncclResult_t (*CommDestroy)(ncclComm_t);
    ncclResult_t (*CommAbort)(ncclComm_t);
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 22, 0)
    ncclResult_t (*GroupSimulateEnd)(ncclSimInfo_t *);
#define CP_HAVE_NCCL_GROUP_SIMULATE 1
#endif
} cp_nccl_real_t;

/* Resolved once; members are NULL where NCCL is not loaded. */
const cp_nccl_real_t *cp_nccl_real(void);

#endif
