/* Scratch shared by all tensors of a communicator; grows to the largest
 * call and is then reused: no allocation on the hot path. `agreed` is the
 * size every rank has (growth is agreed across ranks, see
 * cp_workspace_reserve); `cap` what this rank allocated. */
#ifndef CP_WORKSPACE_H
#define CP_WORKSPACE_H

#include <stddef.h>

#include "util/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    CP_WS_V, CP_WS_SEND1, CP_WS_RECV1, CP_WS_SUM, CP_WS_VS, CP_WS_RECV2,
    CP_WS_SCRATCH, CP_WS_AUX, CP_WS_TMP, CP_WS_REQ,
    CP_WS_PAIRS, CP_WS_GOT, CP_WS_META, /* sparse_rs (allreduce_sparse_rs.c) */
    CP_WS_SLOTS
};

typedef struct {
    void *buf[CP_WS_SLOTS];
    size_t cap[CP_WS_SLOTS];
    size_t agreed[CP_WS_SLOTS];
} cp_workspace_t;

void cp_workspace_init(cp_workspace_t *ws);
void cp_workspace_free(cp_workspace_t *ws);
size_t cp_workspace_bytes(const cp_workspace_t *ws);
/* Buffer `slot` with at least `bytes` capacity, 64-byte aligned. */
cp_status_t cp_workspace_get(cp_workspace_t *ws, int slot, size_t bytes,
                             void **p);
/* Makes every buffer at least need[] large. *grow_p tells whether that is
 * beyond the agreed sizes, which every rank computes alike from the calls
 * so far: then the ranks must agree that all of them succeeded before the
 * call runs (cp_workspace_commit). CP_ERR_NOMEM when this rank failed. */
cp_status_t cp_workspace_reserve(cp_workspace_t *ws,
                                 const size_t need[CP_WS_SLOTS], int *grow_p);
/* Bytes that reserving `need` would add (growth with its headroom). */
size_t cp_workspace_growth(const cp_workspace_t *ws,
                           const size_t need[CP_WS_SLOTS]);
void cp_workspace_commit(cp_workspace_t *ws, const size_t need[CP_WS_SLOTS]);

#ifdef __cplusplus
}
#endif

#endif
