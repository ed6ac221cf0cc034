/* Where a rank last saw each buffer: the local half of the step evidence
 * (plugin/step_detect.h). For a call on buffer (addr, sig) it returns how
 * many calls ago the same buffer was used with the same signature. Stable
 * buffers (per-parameter gradients, DDP buckets) repeat at the step's
 * length; a scratch buffer shared by several tensors, or a fresh buffer,
 * says nothing the caller would act on. Local to the rank: the caller
 * agrees on it with the other ranks before it may steer anything. */
#ifndef CP_ADDR_SEEN_H
#define CP_ADDR_SEEN_H

#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

typedef struct {
    uintptr_t addr;
    uint64_t sig;
    uint64_t call; /* UINT64_MAX: empty */
} cp_addr_entry_t;

typedef struct {
    cp_addr_entry_t *e;
    size_t cap; /* power of two */
} cp_addrseen_t;

cp_status_t cp_addrseen_init(cp_addrseen_t *a, size_t entries);
void cp_addrseen_fini(cp_addrseen_t *a);
size_t cp_addrseen_bytes(const cp_addrseen_t *a);
/* Distance from `call` back to the last call on (addr, sig), 0 if none
 * within `window` calls; records this call. */
uint64_t cp_addrseen_note(cp_addrseen_t *a, uintptr_t addr, uint64_t sig,
                          uint64_t call, uint64_t window);

#endif
