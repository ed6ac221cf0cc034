#include <stdlib.h>
#include <string.h>

#include "util/hd.h"
#include "util/u64map.h"

#define EMPTY UINT64_MAX

void cp_u64map_init(cp_u64map_t *m) { memset(m, 0, sizeof(*m)); }

void cp_u64map_fini(cp_u64map_t *m)
{
    free(m->keys);
    free(m->vals);
    cp_u64map_init(m);
}

void cp_u64map_clear(cp_u64map_t *m)
{
    if (m->cap)
        memset(m->keys, 0xff, m->cap * sizeof(*m->keys));
    m->used = 0;
}

static size_t slot_of(const cp_u64map_t *m, uint64_t key)
{
    size_t i = cp_hash32(key, 0x5bd1e995u) & (m->cap - 1);
    while (m->keys[i] != EMPTY && m->keys[i] != key)
        i = (i + 1) & (m->cap - 1);
    return i;
}

uint64_t cp_u64map_get(const cp_u64map_t *m, uint64_t key, uint64_t dflt)
{
    if (m->cap == 0)
        return dflt;
    size_t i = slot_of(m, key);
    return m->keys[i] == key ? m->vals[i] : dflt;
}

static cp_status_t grow(cp_u64map_t *m, size_t cap)
{
    cp_u64map_t n = {.cap = cap};
    n.keys = malloc(n.cap * sizeof(*n.keys));
    n.vals = malloc(n.cap * sizeof(*n.vals));
    if (n.keys == NULL || n.vals == NULL) {
        free(n.keys);
        free(n.vals);
        return CP_ERR_NOMEM;
    }
    memset(n.keys, 0xff, n.cap * sizeof(*n.keys));
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i] != EMPTY) {
            size_t j = slot_of(&n, m->keys[i]);
            n.keys[j] = m->keys[i];
            n.vals[j] = m->vals[i];
            n.used++;
        }
    cp_u64map_fini(m);
    *m = n;
    return CP_OK;
}

cp_status_t cp_u64map_reserve(cp_u64map_t *m, size_t keys)
{
    size_t cap = 64;
    while (cap < 2 * keys)
        cap *= 2;
    return cap > m->cap ? grow(m, cap) : CP_OK;
}

cp_status_t cp_u64map_put(cp_u64map_t *m, uint64_t key, uint64_t val)
{
    if (2 * (m->used + 1) > m->cap)
        CP_CHECK(grow(m, m->cap ? 2 * m->cap : 64));
    size_t i = slot_of(m, key);
    if (m->keys[i] != key) {
        m->keys[i] = key;
        m->used++;
    }
    m->vals[i] = val;
    return CP_OK;
}
