/* A small open-addressing map from uint64_t keys to uint64_t values. Keys
 * must not be UINT64_MAX (the empty marker). Reserved once for the most
 * keys it will hold, so that puts never allocate (the step detector must
 * not fail halfway on one rank). */
#ifndef CP_U64MAP_H
#define CP_U64MAP_H

#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

typedef struct {
    uint64_t *keys, *vals;
    size_t cap; /* power of two, or 0 before the first insertion */
    size_t used;
} cp_u64map_t;

void cp_u64map_init(cp_u64map_t *m);
/* Room for `keys` distinct keys: later puts of at most that many keys
 * never allocate. */
cp_status_t cp_u64map_reserve(cp_u64map_t *m, size_t keys);
void cp_u64map_fini(cp_u64map_t *m);
void cp_u64map_clear(cp_u64map_t *m);
/* The value stored under key, or dflt. */
uint64_t cp_u64map_get(const cp_u64map_t *m, uint64_t key, uint64_t dflt);
/* Stores val under key (inserting or replacing); grows if needed. */
cp_status_t cp_u64map_put(cp_u64map_t *m, uint64_t key, uint64_t val);

#endif
