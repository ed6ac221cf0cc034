#include <stdlib.h>

#include "plugin/comm_state.h"
#include "util/hd.h"
#include "util/log.h"

cp_status_t cp_comm_state_create(MPI_Comm comm, size_t max_entries,
                                 cp_comm_state_t **s_p)
{
    cp_comm_state_t *s = calloc(1, sizeof(*s));
    cp_status_t st = CP_ERR_NOMEM;

    if (s == NULL)
        return CP_ERR_NOMEM;
    s->comm = comm;
    s->max_entries = max_entries;
    s->nbuckets = 16;
    while (s->nbuckets < 2 * max_entries)
        s->nbuckets *= 2;
    s->entries = calloc(max_entries, sizeof(*s->entries));
    s->heads = malloc(s->nbuckets * sizeof(*s->heads));
    if (s->entries == NULL || s->heads == NULL)
        goto err;
    for (size_t i = 0; i < s->nbuckets; i++)
        s->heads[i] = -1;
    cp_workspace_init(&s->ws);
    CP_CHECK_GOTO(cp_transport_mpi_init(&s->tp, &s->comm), st, err);
    PMPI_Comm_test_inter(comm, &s->is_inter);
    *s_p = s;
    return CP_OK;
err:
    free(s->entries);
    free(s->heads);
    free(s);
    return st;
}

void cp_comm_state_destroy(cp_comm_state_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->max_entries; i++)
        if (s->entries[i].used)
            cp_tensor_destroy(s->entries[i].tensor);
    cp_workspace_free(&s->ws);
    free(s->entries);
    free(s->heads);
    free(s);
}

static size_t bucket_of(const cp_comm_state_t *s, uintptr_t addr, size_t count)
{
    return cp_hash32((uint64_t)addr, count) & (s->nbuckets - 1);
}

static void unlink_entry(cp_comm_state_t *s, int e)
{
    cp_tensor_entry_t *x = &s->entries[e];
    int *link = &s->heads[bucket_of(s, x->addr, x->count)];
    while (*link != e)
        link = &s->entries[*link].next;
    *link = x->next;
    s->tensor_bytes -= cp_tensor_bytes(x->tensor);
    cp_tensor_destroy(x->tensor);
    x->used = 0;
    s->nused--;
}

/* A free entry; when the table is full, the least recently used tensor's
 * state is dropped. Which one is a local choice: it changes only this rank's
 * error buffers, never what is sent or how much. */
static int free_entry(cp_comm_state_t *s)
{
    int victim = -1;
    for (size_t i = 0; i < s->max_entries; i++) {
        if (!s->entries[i].used)
            return (int)i;
        if (victim < 0 || s->entries[i].last_used < s->entries[victim].last_used)
            victim = (int)i;
    }
    if (!s->warned_evict) {
        cp_warn("more than COMMPRESS_MAX_TENSORS=%zu tensors on one "
                "communicator: dropping the least recently used tensor's "
                "error feedback (raise the limit, or use "
                "COMMPRESS_STATE_KEY=order for fresh buffers each step)",
                s->max_entries);
        s->warned_evict = 1;
    }
    unlink_entry(s, victim);
    return victim;
}

cp_status_t cp_comm_state_tensor(cp_comm_state_t *s,
                                 const cp_coll_config_t *cfg, uintptr_t addr,
                                 size_t count, cp_tensor_t **t_p)
{
    size_t b = bucket_of(s, addr, count);
    cp_tensor_t *t;
    int e;

    s->clock++;
    for (e = s->heads[b]; e >= 0; e = s->entries[e].next)
        if (s->entries[e].addr == addr && s->entries[e].count == count) {
            s->entries[e].last_used = s->clock;
            *t_p = s->entries[e].tensor;
            return CP_OK;
        }
    CP_CHECK(cp_tensor_create(cfg, count, s->tp.size, s->tp.rank, &t));
    e = free_entry(s);
    s->entries[e] = (cp_tensor_entry_t){.addr = addr, .count = count,
                                        .tensor = t, .last_used = s->clock,
                                        .next = s->heads[b], .used = 1};
    s->heads[b] = e;
    s->nused++;
    s->tensor_bytes += cp_tensor_bytes(t);
    cp_trace("new tensor state: count %zu, %zu bytes", count,
             cp_tensor_bytes(t));
    *t_p = t;
    return CP_OK;
}
