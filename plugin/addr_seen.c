#include <stdlib.h>
#include <string.h>

#include "plugin/addr_seen.h"
#include "util/hd.h"

#define PROBES 8

cp_status_t cp_addrseen_init(cp_addrseen_t *a, size_t entries)
{
    a->cap = 64;
    while (a->cap < 2 * entries)
        a->cap *= 2;
    a->e = malloc(a->cap * sizeof(*a->e));
    if (a->e == NULL) {
        a->cap = 0;
        return CP_ERR_NOMEM;
    }
    for (size_t i = 0; i < a->cap; i++)
        a->e[i].call = UINT64_MAX;
    return CP_OK;
}

void cp_addrseen_fini(cp_addrseen_t *a)
{
    free(a->e);
    a->e = NULL;
    a->cap = 0;
}

size_t cp_addrseen_bytes(const cp_addrseen_t *a)
{
    return a->cap * sizeof(*a->e);
}

/* A few probes from the hashed slot; when none holds the buffer, the new
 * entry takes an empty slot or the oldest probed one. Forgetting an old
 * buffer only loses evidence. */
uint64_t cp_addrseen_note(cp_addrseen_t *a, uintptr_t addr, uint64_t sig,
                          uint64_t call, uint64_t window)
{
    if (a->cap == 0)
        return 0;
    size_t h = cp_hash32((uint64_t)addr, sig) & (a->cap - 1), victim = h;
    for (size_t k = 0; k < PROBES; k++) {
        cp_addr_entry_t *x = &a->e[(h + k) & (a->cap - 1)];
        if (x->call != UINT64_MAX && x->addr == addr && x->sig == sig) {
            uint64_t d = call - x->call;
            x->call = call;
            return d <= window ? d : 0;
        }
        cp_addr_entry_t *v = &a->e[victim];
        if (x->call == UINT64_MAX ||
            (v->call != UINT64_MAX && x->call < v->call))
            victim = (h + k) & (a->cap - 1);
    }
    a->e[victim] = (cp_addr_entry_t){.addr = addr, .sig = sig, .call = call};
    return 0;
}
