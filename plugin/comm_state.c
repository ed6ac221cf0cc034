#include <stdlib.h>

#include "plugin/comm_state.h"
#include "util/log.h"

static void tensor_free(void *t) { cp_tensor_destroy(t); }

cp_status_t cp_comm_state_create(MPI_Comm comm, size_t max_entries,
                                 cp_comm_state_t **s_p)
{
    cp_comm_state_t *s = calloc(1, sizeof(*s));
    cp_status_t st;

    if (s == NULL)
        return CP_ERR_NOMEM;
    s->comm = comm;
    cp_workspace_init(&s->ws);
    CP_CHECK_GOTO(cp_tensor_table_init(&s->tensors, max_entries, tensor_free),
                  st, err);
    CP_CHECK_GOTO(cp_transport_mpi_init(&s->tp, &s->comm), st, err_table);
    PMPI_Comm_test_inter(comm, &s->is_inter);
    *s_p = s;
    return CP_OK;
err_table:
    cp_tensor_table_fini(&s->tensors);
err:
    free(s);
    return st;
}

void cp_comm_state_destroy(cp_comm_state_t *s)
{
    if (s == NULL)
        return;
    cp_tensor_table_fini(&s->tensors);
    cp_workspace_free(&s->ws);
    free(s);
}

size_t cp_comm_state_bytes(const cp_comm_state_t *s)
{
    return s->tensors.bytes + cp_workspace_bytes(&s->ws);
}

cp_status_t cp_comm_state_tensor(cp_comm_state_t *s,
                                 const cp_coll_config_t *cfg, uintptr_t addr,
                                 size_t count, cp_tensor_t **t_p)
{
    cp_tensor_t *t = cp_tensor_table_find(&s->tensors, addr, count, 0);
    if (t == NULL) {
        CP_CHECK(cp_tensor_create(cfg, count, s->tp.size, s->tp.rank, &t));
        cp_tensor_table_insert(&s->tensors, addr, count, 0, t,
                               cp_tensor_bytes(t));
        cp_trace("new tensor state: count %zu, %zu bytes", count,
                 cp_tensor_bytes(t));
    }
    s->calls++;
    *t_p = t;
    return CP_OK;
}
