/* Per-tensor state of one communicator, keyed (DESIGN.md item 7) by
 * (address, count, kind): kind separates datatypes. Bounded: beyond
 * max_entries the least recently used state is freed. The table owns its
 * entries and frees them with the function given at init, so MPI (host)
 * and NCCL (device) states share it. */
#ifndef CP_TENSOR_TABLE_H
#define CP_TENSOR_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

typedef void (*cp_tensor_free_func_t)(void *tensor);

typedef struct {
    uintptr_t addr;
    size_t count;
    uint32_t kind;
    int used;
    int next; /* hash chain, -1 ends */
    uint64_t last_used;
    void *tensor;
    size_t bytes;
} cp_tensor_entry_t;

typedef struct {
    cp_tensor_entry_t *entries;
    int *heads;
    size_t nbuckets; /* power of two */
    size_t max_entries;
    size_t nused;
    uint64_t clock;  /* lookups so far */
    size_t bytes;    /* sum of the entries' bytes */
    int warned_evict;
    cp_tensor_free_func_t free_fn;
} cp_tensor_table_t;

cp_status_t cp_tensor_table_init(cp_tensor_table_t *t, size_t max_entries,
                                 cp_tensor_free_func_t free_fn);
void cp_tensor_table_fini(cp_tensor_table_t *t);
/* The tensor stored under the key, or NULL; counts as a use. */
void *cp_tensor_table_find(cp_tensor_table_t *t, uintptr_t addr, size_t count,
                           uint32_t kind);
/* Stores tensor under the key (not present), evicting if full. */
void cp_tensor_table_insert(cp_tensor_table_t *t, uintptr_t addr, size_t count,
                            uint32_t kind, void *tensor, size_t bytes);

#endif
