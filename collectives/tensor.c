#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "collectives/coll.h"
#include "collectives/lgreco.h"
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

cp_status_t cp_tensor_new_fused(size_t count, size_t nseg, const size_t *off,
                                uint64_t layout_hash, cp_tensor_t **t_p)
{
    cp_tensor_t *t;
    CP_CHECK(cp_tensor_new(count, 0, 0, &t));
    t->seg_off = malloc((nseg + 1) * sizeof(size_t));
    t->seg = calloc(nseg, sizeof(*t->seg));
    if (t->seg_off == NULL || t->seg == NULL) {
        cp_tensor_destroy(t);
        return CP_ERR_NOMEM;
    }
    memcpy(t->seg_off, off, (nseg + 1) * sizeof(size_t));
    t->nseg = nseg;
    t->layout_hash = layout_hash;
    *t_p = t;
    return CP_OK;
}

void cp_tensor_destroy(cp_tensor_t *t)
{
    if (t == NULL)
        return;
    for (size_t k = 0; k < t->nseg; k++)
        cp_tensor_destroy(t->seg[k]);
    free(t->seg);
    free(t->seg_off);
    free(t->worker);
    free(t->spare);
    free(t->server);
    free(t->rs_bounds);
    free(t->err2);
    free(t);
}

size_t cp_tensor_bytes(const cp_tensor_t *t)
{
    size_t b = ((t->spare ? 2 : 1) * t->worker_floats + t->server_floats) * sizeof(float) +
               t->rs_parts * sizeof(size_t);
    for (size_t k = 0; k < t->nseg; k++)
        b += t->seg[k] ? cp_tensor_bytes(t->seg[k]) : 0;
    return b;
}

cp_status_t cp_tensor_spare(cp_tensor_t *t)
{
    if (t->spare == NULL && t->worker_floats > 0)
        t->spare = malloc(t->worker_floats * sizeof(float));
    return t->spare || t->worker_floats == 0 ? CP_OK : CP_ERR_NOMEM;
}

void cp_tensor_swap_spare(cp_tensor_t *t)
{
    float *e = t->worker;
    t->worker = t->spare;
    t->spare = e;
}

void cp_tensor_reset(cp_tensor_t *t)
{
    for (size_t k = 0; k < t->nseg; k++)
        if (t->seg[k])
            cp_tensor_reset(t->seg[k]);
    memset(t->worker, 0, t->worker_floats * sizeof(float));
    memset(t->server, 0, t->server_floats * sizeof(float));
    t->steps = 0;
    t->hist = 0;
    t->clean = 0;
    t->rs_parts = 0; /* even regions again */
}

void cp_tensor_accumulate(cp_tensor_t *t, const float *v)
{
    double e[CP_LGRECO_MAX_CANDIDATES];
    if (t->err2 == NULL || t->scratch == NULL)
        return;
    const double t0 = cp_now();
    int finite = cp_lgreco_errors(t->cands, t->ncand, v, t->count, e,
                                  t->scratch) == CP_OK;
    for (size_t c = 0; finite && c < t->ncand; c++)
        finite = isfinite(e[c]);
    if (finite) { /* a step with Inf/NaN (sent exact) tells nothing */
        for (size_t c = 0; c < t->ncand; c++)
            t->err2[c] += e[c] * e[c];
        t->err_calls++;
    }
    t->err_seconds += cp_now() - t0;
}

void cp_tensor_step(cp_tensor_t *t, uint64_t call)
{
    t->steps++;
    t->clean = 0;
    t->hist = ((uint64_t)cp_hash32(t->hist, call) << 32) |
              cp_hash32(t->hist ^ 0x5851f42d4c957f2dull, call);
}
