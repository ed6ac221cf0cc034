/* Layouts of fused buffers (docs/lgreco.md, "Fused buffers"): a buffer
 * holding several layers back to back, each compressed as a tensor of its
 * own (its own error feedback, its own L-GreCo setting, a message that
 * decodes alone). A registry maps a key (the shim: a buffer address; the
 * explicit API: a tensor id) and a count to a layout. The registry is
 * local to a process: plugin/comm_state.c agrees on a tensor's layout
 * across ranks at its first call and stores a copy on the tensor, so a
 * layout registered, changed or removed later never splits one rank's
 * call differently from another's. */
#ifndef CP_LAYOUT_H
#define CP_LAYOUT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

/* At most this many layers in one layout (each is one exchange per call). */
#define CP_LAYOUT_MAX_LAYERS 65536

typedef struct {
    size_t count, nlayers;
    uint64_t hash;  /* of count and offsets; never 0 */
    size_t off[];   /* nlayers + 1 boundaries: 0 = off[0] < ... = count */
} cp_layout_t;

/* CP_OK when offsets[0..nlayers] are boundaries of count floats (0 first,
 * increasing, count last, 1 <= nlayers <= CP_LAYOUT_MAX_LAYERS); else
 * CP_ERR_INVALID with one sentence in err saying what is wrong. */
cp_status_t cp_layout_check(size_t count, size_t nlayers, const size_t *offsets,
                            char *err, size_t errlen);
/* A checked copy (free() it). */
cp_status_t cp_layout_new(size_t count, size_t nlayers, const size_t *offsets,
                          cp_layout_t **l_p);

typedef struct {
    pthread_mutex_t lock; /* threads may register while others call */
    struct cp_layout_entry {
        uint64_t key;
        cp_layout_t *layout;
    } *v;
    size_t n, cap;
} cp_layout_registry_t;

void cp_layout_registry_init(cp_layout_registry_t *r);
void cp_layout_registry_fini(cp_layout_registry_t *r);
/* Stores (a copy of) l under key, replacing what the key held; NULL
 * removes it. */
cp_status_t cp_layout_registry_set(cp_layout_registry_t *r, uint64_t key,
                                   const cp_layout_t *l);
/* A copy of the layout of the first key (of nkeys) that holds one of
 * `count` floats: *l_p NULL when none does. CP_ERR_NOMEM if the copy
 * failed. */
cp_status_t cp_layout_registry_copy(cp_layout_registry_t *r,
                                    const uint64_t *keys, size_t nkeys,
                                    size_t count, cp_layout_t **l_p);

/* The preloaded shim's registry (commpress_register_layout). */
cp_layout_registry_t *cp_shim_layouts(void);

#endif
