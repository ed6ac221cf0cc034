/* Dispatch, per-tensor state and the workspace shared by the algorithms. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collectives/allreduce.h"
#include "compressors/codec_math.h"
#include "util/fault.h"
#include "util/hd.h"
#include "util/log.h"

double cp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

size_t cp_ring_bytes(int n, double bytes)
{
    return n > 1 ? (size_t)(2.0 * (n - 1) / n * bytes) : 0;
}

size_t cp_slot_size(size_t payload_max)
{
    return (CP_SLOT_HDR + payload_max + 7) & ~(size_t)7;
}

static uint64_t mix64(uint64_t h, uint64_t v)
{
    return ((uint64_t)cp_hash32(h, v) << 32) | cp_hash32(h + 1, v);
}

uint64_t cp_slot_check(const cp_allreduce_args_t *a)
{
    const cp_tensor_t *t = a->tensor;
    return mix64(mix64(mix64(a->ident, a->count), t->steps), t->hist);
}

static void put_u64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

cp_status_t cp_slot_encode(const cp_compressor_ops_t *codec,
                           const cp_params_t *p, const float *x, size_t m,
                           const cp_slot_meta_t *meta, unsigned char *slot,
                           size_t slot_size, void *scratch)
{
    cp_status_t st = CP_OK;
    uint32_t flags = meta->flags;
    size_t len = 0;
    if (flags == 0 && cp_fault(CP_FAULT_ENCODE))
        st = CP_ERR_UNSUPPORTED;
    else if (flags == 0)
        st = codec->encode(p, x, m, slot + CP_SLOT_HDR,
                           slot_size - CP_SLOT_HDR, &len, scratch);
    if (st != CP_OK) {
        flags |= CP_SLOT_FAILED;
        len = 0;
    }
    cp_put_u32(slot, flags);
    cp_put_u32(slot + 4, (uint32_t)len);
    put_u64(slot + 8, meta->check);
    put_u64(slot + 16, meta->evidence);
    memset(slot + CP_SLOT_HDR + len, 0, slot_size - CP_SLOT_HDR - len);
    return st;
}

cp_status_t cp_slot_decode(const cp_compressor_ops_t *codec,
                           const cp_params_t *p, const unsigned char *slot,
                           size_t slot_size, float alpha, const float *y,
                           float *out, size_t m)
{
    size_t len = cp_get_u32(slot + 4);
    if (len > slot_size - CP_SLOT_HDR)
        return CP_ERR_MALFORMED;
    return codec->decode(p, slot + CP_SLOT_HDR, len, alpha, y, out, m);
}

void cp_slots_scan(const unsigned char *slots, int n, size_t slot_size,
                   uint64_t check, size_t ev_period, cp_slots_view_t *v)
{
    int support = 0;
    memset(v, 0, sizeof(*v));
    for (int r = 0; r < n; r++) {
        const unsigned char *s = slots + (size_t)r * slot_size;
        uint64_t ev = get_u64(s + 16);
        v->flags |= cp_get_u32(s);
        v->disagree |= get_u64(s + 8) != check;
        support |= ev_period && ev == ev_period;
        if (ev_period && ev >= 2 * (uint64_t)ev_period && ev % ev_period == 0 &&
            (v->evidence == 0 || ev < v->evidence))
            v->evidence = ev;
    }
    /* A rank whose buffer came back after exactly one step confirms it
     * (stable buffers); then longer returns elsewhere are buffers that
     * alternate, not a longer step. */
    if (support)
        v->evidence = 0;
}

cp_fallback_t cp_slots_fallback(const cp_slots_view_t *v)
{
    if (v->flags & CP_SLOT_NONFINITE)
        return CP_FALLBACK_NONFINITE;
    if (v->flags & CP_SLOT_FAILED)
        return CP_FALLBACK_FAILED;
    return v->disagree ? CP_FALLBACK_DISAGREE : CP_FALLBACK_NONE;
}

cp_status_t cp_allreduce_exact(const cp_allreduce_args_t *a,
                               cp_coll_result_t *res, cp_fallback_t why)
{
    res->fallback = why;
    res->nonfinite = why == CP_FALLBACK_NONFINITE;
    return a->tp->ops->allreduce_sum_f32(a->tp->ctx, a->send, a->recv,
                                         a->count);
}

/* Balanced split: the first count % size chunks get one extra element. */
void cp_chunk_range(size_t count, int size, int j, size_t *off, size_t *len)
{
    size_t base = count / (size_t)size, rem = count % (size_t)size;
    size_t uj = (size_t)j;
    *off = uj * base + (uj < rem ? uj : rem);
    *len = base + (uj < rem ? 1 : 0);
}

uint64_t cp_call_seed(const cp_allreduce_args_t *a, int phase, int chunk)
{
    return cp_seed_mix(a->cfg->seed, a->tp->rank, phase, chunk,
                       a->tensor->steps, a->count);
}

cp_params_t cp_step_params(const cp_coll_config_t *cfg, uint64_t steps)
{
    cp_params_t p = cfg->params;
    const double d0 = 0.25;
    if (cfg->feedback == &cp_feedback_dgc && steps < cfg->warmup_steps &&
        p.density < d0)
        p.density = d0 * pow(p.density / d0,
                             (double)steps / (double)cfg->warmup_steps);
    return p;
}

cp_fb_params_t cp_step_fb(const cp_coll_config_t *cfg, int size, uint64_t steps)
{
    cp_fb_params_t fp = cfg->fb;
    fp.first = steps == 0;
    fp.clip = cfg->fb.clip / sqrt((double)size);
    return fp;
}

cp_algo_t cp_allreduce_choose(const cp_coll_config_t *cfg,
                              const cp_params_t *p, uint64_t steps,
                              size_t count, int size)
{
    if ((cfg->feedback == &cp_feedback_dgc && count < cfg->dense_below) ||
        (cfg->feedback->dense_first && steps == 0))
        return CP_ALGO_DENSE;
    if (cfg->algo != CP_ALGO_AUTO)
        return cfg->algo;
    if (cfg->codec != &cp_compressor_topk)
        return CP_ALGO_TWOPHASE;
    /* Sparse allgather sends (n-1) messages; a ring allreduce 2(n-1)/n of
     * the dense tensor. Fill-in makes sparse lose once n k grows. */
    double sparse = (double)cp_slot_size(cfg->codec->max_size(p, count));
    double dense = 2.0 / (double)size * 4.0 * (double)count;
    if (sparse >= dense || count > UINT32_MAX)
        return CP_ALGO_DENSE;
    return CP_ALGO_SPARSE;
}

cp_status_t cp_feedback_buffers(const cp_feedback_ops_t *fb, cp_workspace_t *ws,
                                size_t count, float **aux, float **tmp)
{
    *aux = *tmp = NULL;
    if (fb->uses_aux)
        CP_CHECK(cp_workspace_get(ws, CP_WS_AUX, count * sizeof(float),
                                  (void **)aux));
    if (fb->uses_tmp)
        CP_CHECK(cp_workspace_get(ws, CP_WS_TMP, count * sizeof(float),
                                  (void **)tmp));
    return CP_OK;
}

void cp_allreduce_plan(const cp_allreduce_args_t *a, size_t need[CP_WS_SLOTS])
{
    const cp_coll_config_t *cfg = a->cfg;
    const uint64_t steps = a->tensor ? a->tensor->steps : 0;
    const int n = a->tp->size;
    const cp_params_t p = cp_step_params(cfg, steps);
    const cp_algo_t algo = cp_allreduce_choose(cfg, &p, steps, a->count, n);

    memset(need, 0, CP_WS_SLOTS * sizeof(size_t));
    if (algo == CP_ALGO_SPARSE)
        cp_allreduce_sparse_plan(a, &p, need);
    else
        cp_allreduce_twophase_plan(a, algo == CP_ALGO_DENSE ? &cp_compressor_none
                                                             : cfg->codec,
                                   &p, need);
    if (cfg->feedback->uses_aux)
        need[CP_WS_AUX] = a->count * sizeof(float);
    if (cfg->feedback->uses_tmp)
        need[CP_WS_TMP] = a->count * sizeof(float);
}

cp_status_t cp_allreduce_ready(const cp_allreduce_args_t *a,
                               const size_t need[CP_WS_SLOTS], int must_agree,
                               int local_fail, uint64_t *words, size_t nwords,
                               int *ok_p, int *fail_rank_p)
{
    uint64_t v[1 + CP_READY_MAX_WORDS];
    int grow = 0;

    *ok_p = 0;
    *fail_rank_p = -1;
    if (nwords > CP_READY_MAX_WORDS)
        return CP_ERR_INVALID;
    if (cp_workspace_reserve(a->ws, need, &grow) != CP_OK)
        local_fail = 1;
    if (!must_agree && !grow) {
        /* Nothing beyond the agreed sizes: this rank allocated nothing. */
        *ok_p = !local_fail;
        return CP_OK;
    }
    v[0] = local_fail ? (uint64_t)a->tp->rank + 1 : 0;
    for (size_t i = 0; i < nwords; i++)
        v[1 + i] = words[i];
    CP_CHECK(a->tp->ops->allreduce_max_u64(a->tp->ctx, v, 1 + nwords));
    for (size_t i = 0; i < nwords; i++)
        words[i] = v[1 + i];
    *ok_p = v[0] == 0;
    *fail_rank_p = (int)v[0] - 1;
    if (*ok_p)
        cp_workspace_commit(a->ws, need);
    return CP_OK;
}

void cp_tensor_floats(const cp_coll_config_t *cfg, size_t count, int size,
                      int rank, size_t *worker, size_t *server)
{
    size_t off, len;
    cp_params_t p = cp_step_params(cfg, 0);
    cp_chunk_range(count, size, rank, &off, &len);
    *worker = cfg->feedback->state_floats(count);
    /* No server state when the first step is sparse: density only falls
     * (DGC's warm-up), so every later step is sparse too. */
    *server = cp_allreduce_choose(cfg, &p, 0, count, size) == CP_ALGO_SPARSE
                  ? 0
                  : cfg->feedback->server->state_floats(len);
}

cp_status_t cp_tensor_create(const cp_coll_config_t *cfg, size_t count,
                             int size, int rank, cp_tensor_t **t_p)
{
    cp_tensor_t *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return CP_ERR_NOMEM;
    t->count = count;
    cp_tensor_floats(cfg, count, size, rank, &t->worker_floats,
                     &t->server_floats);
    t->worker = calloc(t->worker_floats ? t->worker_floats : 1, sizeof(float));
    t->server = calloc(t->server_floats ? t->server_floats : 1, sizeof(float));
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

void cp_workspace_init(cp_workspace_t *ws) { memset(ws, 0, sizeof(*ws)); }

void cp_workspace_free(cp_workspace_t *ws)
{
    for (size_t i = 0; i < sizeof(ws->buf) / sizeof(*ws->buf); i++)
        free(ws->buf[i]);
    cp_workspace_init(ws);
}

size_t cp_workspace_bytes(const cp_workspace_t *ws)
{
    size_t total = 0;
    for (size_t i = 0; i < sizeof(ws->cap) / sizeof(*ws->cap); i++)
        total += ws->cap[i];
    return total;
}

/* Grown with headroom so that a slowly growing sequence of sizes does not
 * reallocate every call. */
static cp_status_t ws_alloc(cp_workspace_t *ws, int slot, size_t bytes)
{
    size_t cap = (bytes + bytes / 4 + 63) & ~(size_t)63;
    void *b = cp_fault(CP_FAULT_WSALLOC) ? NULL : aligned_alloc(64, cap);
    if (b == NULL)
        return CP_ERR_NOMEM;
    free(ws->buf[slot]);
    ws->buf[slot] = b;
    ws->cap[slot] = cap;
    return CP_OK;
}

cp_status_t cp_workspace_get(cp_workspace_t *ws, int slot, size_t bytes,
                             void **p)
{
    if (bytes == 0)
        bytes = 64;
    if (ws->cap[slot] < bytes)
        CP_CHECK(ws_alloc(ws, slot, bytes));
    *p = ws->buf[slot];
    return CP_OK;
}

cp_status_t cp_workspace_reserve(cp_workspace_t *ws,
                                 const size_t need[CP_WS_SLOTS], int *grow_p)
{
    cp_status_t st = CP_OK;
    *grow_p = 0;
    for (int i = 0; i < CP_WS_SLOTS; i++) {
        size_t b = need[i] ? need[i] : 64;
        *grow_p |= b > ws->agreed[i];
        if (st == CP_OK && ws->cap[i] < b)
            st = ws_alloc(ws, i, b);
    }
    return st;
}

void cp_workspace_commit(cp_workspace_t *ws, const size_t need[CP_WS_SLOTS])
{
    for (int i = 0; i < CP_WS_SLOTS; i++) {
        size_t b = need[i] ? need[i] : 64;
        if (b > ws->agreed[i])
            ws->agreed[i] = b;
    }
}

static uint64_t hist_mix(uint64_t h, uint64_t call)
{
    return ((uint64_t)cp_hash32(h, call) << 32) | cp_hash32(h ^ 0x5851f42d4c957f2dull, call);
}

cp_status_t cp_allreduce(const cp_allreduce_args_t *a, cp_coll_result_t *res)
{
    cp_status_t st;
    int n = a->tp->size;

    memset(res, 0, sizeof(*res));
    if (a->tensor->count != a->count)
        return CP_ERR_INVALID;
    const cp_params_t p = cp_step_params(a->cfg, a->tensor->steps);
    res->algo = cp_allreduce_choose(a->cfg, &p, a->tensor->steps, a->count, n);
    res->bytes_dense = cp_ring_bytes(n, 4.0 * (double)a->count);
    switch (res->algo) {
    case CP_ALGO_SPARSE:
        st = cp_allreduce_sparse(a, &p, res);
        break;
    case CP_ALGO_DENSE:
        st = cp_allreduce_twophase(a, &cp_compressor_none, &p, res);
        break;
    default:
        st = cp_allreduce_twophase(a, a->cfg->codec, &p, res);
        break;
    }
    if (st != CP_OK)
        return st;
    if (res->fallback == CP_FALLBACK_NONE) {
        if (a->cfg->feedback->finish)
            a->cfg->feedback->finish(a->tensor->worker, a->recv, a->count);
        a->tensor->steps++;
        a->tensor->hist = hist_mix(a->tensor->hist, a->call);
    } else if (res->fallback == CP_FALLBACK_DISAGREE) {
        /* Every rank saw the same words: all start this tensor afresh. */
        cp_tensor_reset(a->tensor);
    }
    return CP_OK;
}
