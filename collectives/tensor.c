#include <stdlib.h>
#include <string.h>

#include "collectives/tensor.h"
#include "util/hd.h"

cp_status_t cp_tensor_new(size_t count, size_t worker_floats,
                          size_t server_floats, cp_tensor_t **t_p)
{
    cp_tensor_t *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return CP_ERR_NOMEM;
    t->count = count;
    t->setting = -1;
    t->worker_floats = worker_floats;
    t->server_floats = server_floats;
    t->worker = calloc(worker_floats ? worker_floats : 1, sizeof(float));
    t->server = calloc(server_floats ? server_floats : 1, sizeof(float));
    if (t->worker == NULL || t->server == NULL) {
        cp_tensor_destroy(t);
        return CP_ERR_NOMEM;
    }
    *t_p = t;
    return CP_OK;
}

void cp_tensor_destroy(cp_tensor_t *t)
{
    if (t == NULL)
        return;
    free(t->worker);
    free(t->server);
    free(t->acc);
    free(t);
}

size_t cp_tensor_bytes(const cp_tensor_t *t)
{
    return (t->worker_floats + t->server_floats) * sizeof(float);
}

void cp_tensor_reset(cp_tensor_t *t)
{
    memset(t->worker, 0, t->worker_floats * sizeof(float));
    memset(t->server, 0, t->server_floats * sizeof(float));
    t->steps = 0;
    t->hist = 0;
}

void cp_tensor_accumulate(cp_tensor_t *t, const float *v)
{
    if (t->acc == NULL)
        return;
    for (size_t i = 0; i < t->count; i++)
        t->acc[i] += v[i];
    t->acc_calls++;
}

void cp_tensor_step(cp_tensor_t *t, uint64_t call)
{
    t->steps++;
    t->hist = ((uint64_t)cp_hash32(t->hist, call) << 32) |
              cp_hash32(t->hist ^ 0x5851f42d4c957f2dull, call);
}
