#include <stdlib.h>

#include "plugin/tensor_table.h"
#include "util/hd.h"
#include "util/log.h"

cp_status_t cp_tensor_table_init(cp_tensor_table_t *t, size_t max_entries,
                                 cp_tensor_free_func_t free_fn)
{
    *t = (cp_tensor_table_t){.max_entries = max_entries, .nbuckets = 16,
                             .free_fn = free_fn};
    while (t->nbuckets < 2 * max_entries)
        t->nbuckets *= 2;
    t->entries = calloc(max_entries, sizeof(*t->entries));
    t->heads = malloc(t->nbuckets * sizeof(*t->heads));
    if (t->entries == NULL || t->heads == NULL) {
        free(t->entries);
        free(t->heads);
        return CP_ERR_NOMEM;
    }
    for (size_t i = 0; i < t->nbuckets; i++)
        t->heads[i] = -1;
    return CP_OK;
}

void cp_tensor_table_fini(cp_tensor_table_t *t)
{
    for (size_t i = 0; t->entries && i < t->max_entries; i++)
        if (t->entries[i].used)
            t->free_fn(t->entries[i].tensor);
    free(t->entries);
    free(t->heads);
    t->entries = NULL;
    t->heads = NULL;
}

static size_t bucket_of(const cp_tensor_table_t *t, uint64_t id,
                        size_t count, uint32_t kind)
{
    return cp_hash32(id ^ ((uint64_t)kind << 56), count) & (t->nbuckets - 1);
}

static int lookup(const cp_tensor_table_t *t, uint64_t id, size_t count,
                  uint32_t kind)
{
    for (int e = t->heads[bucket_of(t, id, count, kind)]; e >= 0;
         e = t->entries[e].next) {
        const cp_tensor_entry_t *x = &t->entries[e];
        if (x->id == id && x->count == count && x->kind == kind)
            return e;
    }
    return -1;
}

void *cp_tensor_table_find(cp_tensor_table_t *t, uint64_t id, size_t count,
                           uint32_t kind)
{
    t->clock++;
    int e = lookup(t, id, count, kind);
    if (e < 0)
        return NULL;
    t->entries[e].last_used = t->clock;
    return t->entries[e].tensor;
}

int cp_tensor_table_contains(const cp_tensor_table_t *t, uint64_t id,
                             size_t count, uint32_t kind)
{
    return lookup(t, id, count, kind) >= 0;
}

static void unlink_entry(cp_tensor_table_t *t, int e)
{
    cp_tensor_entry_t *x = &t->entries[e];
    int *link = &t->heads[bucket_of(t, x->id, x->count, x->kind)];
    while (*link != e)
        link = &t->entries[*link].next;
    *link = x->next;
    t->bytes -= x->bytes;
    t->free_fn(x->tensor);
    x->used = 0;
    t->nused--;
}

/* The least recently used entry other than the one holding `keep`; -1 if
 * none. Use times are distinct (one per lookup); the index breaks ties. */
static int lru_entry(const cp_tensor_table_t *t, const void *keep)
{
    int best = -1;
    for (size_t i = 0; i < t->max_entries; i++) {
        const cp_tensor_entry_t *x = &t->entries[i];
        if (!x->used || x->tensor == keep)
            continue;
        if (best < 0 || x->last_used < t->entries[best].last_used)
            best = (int)i;
    }
    return best;
}

/* A free entry; when full, the least recently used state is dropped. The
 * table's contents and use times are a function of the names looked up,
 * which agree across ranks (plugin/comm_state.c), so every rank drops the
 * same state. */
static int free_entry(cp_tensor_table_t *t)
{
    for (size_t i = 0; i < t->max_entries; i++)
        if (!t->entries[i].used)
            return (int)i;
    const int victim = lru_entry(t, NULL);
    if (!t->warned_evict) {
        cp_warn("more than COMMPRESS_MAX_TENSORS=%zu tensors on one "
                "communicator: dropping the least recently used tensor's "
                "error feedback (raise the limit)",
                t->max_entries);
        t->warned_evict = 1;
    }
    unlink_entry(t, victim);
    return victim;
}

size_t cp_tensor_table_evict_lru(cp_tensor_table_t *t, size_t n,
                                 const void *keep)
{
    size_t freed = 0;
    int e;
    while (n-- > 0 && (e = lru_entry(t, keep)) >= 0) {
        freed += t->entries[e].bytes;
        unlink_entry(t, e);
    }
    return freed;
}

size_t cp_tensor_table_fit(cp_tensor_table_t *t, size_t want, size_t limit,
                           const void *keep, int *over)
{
    size_t n = 0, freed = 0;
    int e;
    /* Least recently used first, until what is left fits. */
    while (want - freed > limit && (e = lru_entry(t, keep)) >= 0) {
        freed += t->entries[e].bytes;
        unlink_entry(t, e);
        n++;
    }
    *over = want - freed > limit;
    return n;
}

void cp_tensor_table_insert(cp_tensor_table_t *t, uint64_t id, size_t count,
                            uint32_t kind, void *tensor, size_t bytes)
{
    int e = free_entry(t);
    size_t b = bucket_of(t, id, count, kind);
    t->entries[e] = (cp_tensor_entry_t){.id = id, .count = count,
                                        .kind = kind, .used = 1,
                                        .next = t->heads[b],
                                        .last_used = t->clock,
                                        .tensor = tensor, .bytes = bytes};
    t->heads[b] = e;
    t->nused++;
    t->bytes += bytes;
}

size_t cp_tensor_table_remap(cp_tensor_table_t *t, const cp_sd_rename_t *ren,
                             size_t n)
{
    size_t kept = 0;
    for (size_t i = 0; i < t->max_entries; i++)
        t->entries[i].keep = 0;
    /* Mark first, rename after: a rename may take the name of a state that
     * is itself renamed or dropped. */
    for (size_t r = 0; r < n; r++) {
        int e = lookup(t, ren[r].old_id, (size_t)(ren[r].sig >> 2),
                       (uint32_t)(ren[r].sig & 3));
        if (e >= 0 && !t->entries[e].keep) {
            t->entries[e].keep = 1;
            t->entries[e].new_id = ren[r].new_id;
        }
    }
    for (size_t b = 0; b < t->nbuckets; b++)
        t->heads[b] = -1;
    for (size_t i = 0; i < t->max_entries; i++) {
        cp_tensor_entry_t *x = &t->entries[i];
        if (!x->used)
            continue;
        if (!x->keep) {
            t->bytes -= x->bytes;
            t->free_fn(x->tensor);
            x->used = 0;
            t->nused--;
            continue;
        }
        x->id = x->new_id;
        size_t b = bucket_of(t, x->id, x->count, x->kind);
        x->next = t->heads[b];
        t->heads[b] = (int)i;
        kept++;
    }
    return kept;
}
