/* Per-tensor state of one communicator, keyed by (id, count, kind): id is
 * the tensor's name (plugin/comm_state.c: from the step detector, the call
 * order, the buffer address or the caller), kind separates datatypes.
 * Bounded: beyond max_entries the least recently used state is freed. The
 * table owns its entries and frees them with the function given at init,
 * so MPI (host) and NCCL (device) states share it. Its contents are a
 * function of the sequence of keys looked up, so ranks that name tensors
 * alike keep the same states (and evict the same ones). */
#ifndef CP_TENSOR_TABLE_H
#define CP_TENSOR_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "plugin/step_detect.h"
#include "util/status.h"

typedef void (*cp_tensor_free_func_t)(void *tensor);

typedef struct {
    uint64_t id;
    size_t count;
    uint32_t kind;
    int used;
    int keep;        /* remap: survives, renamed to new_id */
    int next;        /* hash chain, -1 ends */
    uint64_t new_id;
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
void *cp_tensor_table_find(cp_tensor_table_t *t, uint64_t id, size_t count,
                           uint32_t kind);
/* Whether a state is stored under the key (not a use). */
int cp_tensor_table_contains(const cp_tensor_table_t *t, uint64_t id,
                             size_t count, uint32_t kind);
/* Stores tensor under the key (not present), evicting if full. */
void cp_tensor_table_insert(cp_tensor_table_t *t, uint64_t id, size_t count,
                            uint32_t kind, void *tensor, size_t bytes);
/* Memory bound (COMMPRESS_MAX_STATE_BYTES). fit: drops the fewest least
 * recently used states (the one holding `keep` aside) that bring `want`
 * bytes within `limit`, or all of them if they cannot (*over set then);
 * returns how many it dropped. evict_lru: drops the n least recently used
 * (`keep` aside), returning the bytes freed. Ranks whose tables agree
 * drop the same states for the same n. */
size_t cp_tensor_table_fit(cp_tensor_table_t *t, size_t want, size_t limit,
                           const void *keep, int *over);
size_t cp_tensor_table_evict_lru(cp_tensor_table_t *t, size_t n,
                                 const void *keep);
/* Keeps the states named by renames (signature and old id) under their
 * new ids and frees all others (plugin/step_detect.h); no allocation.
 * Returns the number kept. */
size_t cp_tensor_table_remap(cp_tensor_table_t *t, const cp_sd_rename_t *ren,
                             size_t n);

#endif
