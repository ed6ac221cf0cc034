/* The dispatcher: choice of algorithm, tensor sizes, the workspace plan
 * and its agreement, and the call. */
#include <string.h>

#include "collectives/allreduce.h"
#include "collectives/allreduce_sparse.h"
#include "collectives/allreduce_sparse_rs.h"
#include "collectives/allreduce_twophase.h"
#include "util/log.h"

cp_algo_t cp_allreduce_choose(const cp_coll_config_t *cfg,
                              const cp_params_t *p, uint64_t steps,
                              size_t count, int size)
{
    if (count < cfg->fb.dense_below || (cfg->feedback->dense_first && steps == 0))
        return CP_ALGO_DENSE;
    if (cfg->algo != CP_ALGO_AUTO)
        return cfg->algo;
    if (!(cfg->codec->caps & CP_CODEC_SPARSE))
        return CP_ALGO_TWOPHASE;
    if (count > UINT32_MAX)
        return CP_ALGO_DENSE;
    /* Bytes per rank (docs/scaling.md): the sparse allgather sends (n-1)
     * messages; sparse_rs about k (n-1)/n pairs of 8 bytes twice (the
     * regions' imbalance counted as CP_RS_IMBALANCE) and CP_RS_ROUNDS
     * latency-bound rounds, each charged as CP_RS_LATENCY_BYTES;
     * a ring allreduce 2 (n-1)/n of the dense tensor. sparse_rs must halve
     * the allgather's bytes to be chosen (it computes a different sum,
     * and its extra rounds cost latency the bytes do not show). */
    const double slot = (double)cp_slot_size(cfg->codec->max_size(p, count));
    if (size > 1) {
        const double sparse = (size - 1) * slot;
        const double rs = CP_RS_IMBALANCE * cp_sparse_rs_bytes(p, count, size) +
                          CP_RS_ROUNDS * CP_RS_LATENCY_BYTES;
        const double dense = (double)cp_ring_bytes(size, 4.0 * (double)count);
        if (2 * rs <= sparse && rs < dense)
            return CP_ALGO_SPARSE_RS;
    }
    if (slot >= 2.0 / (double)size * 4.0 * (double)count)
        return CP_ALGO_DENSE;
    return CP_ALGO_SPARSE;
}

double cp_sparse_rs_bytes(const cp_params_t *p, size_t count, int size)
{
    const double n = size, k = (double)cp_topk_k(p->density, count);
    return 2 * 8 * k * (n - 1) / n + (n - 1) * (CP_RS_BLOCK + 16) +
           4 * (double)cp_ring_bytes(size, 256 * 8.0);
}

size_t cp_allreduce_wire_bytes(const cp_coll_config_t *cfg,
                               const cp_params_t *p, size_t count, int size)
{
    const size_t peers = size > 1 ? (size_t)size - 1 : 0;
    const cp_algo_t algo = cp_allreduce_choose(cfg, p, 1, count, size);
    if (algo == CP_ALGO_SPARSE)
        return peers * cp_slot_size(cfg->codec->max_size(p, count));
    if (algo == CP_ALGO_SPARSE_RS)
        return (size_t)cp_sparse_rs_bytes(p, count, size);
    const cp_compressor_ops_t *codec =
        algo == CP_ALGO_DENSE ? &cp_compressor_none : cfg->codec;
    size_t off, maxlen;
    cp_chunk_range(count, size, 0, &off, &maxlen);
    return 2 * peers * cp_slot_size(codec->max_size(p, maxlen));
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
    const cp_algo_t algo = cp_allreduce_choose(cfg, &p, 0, count, size);
    *server = algo == CP_ALGO_SPARSE || algo == CP_ALGO_SPARSE_RS
                  ? 0
                  : cfg->feedback->server->state_floats(len);
}

cp_status_t cp_tensor_create(const cp_coll_config_t *cfg, size_t count,
                             int size, int rank, cp_tensor_t **t_p)
{
    size_t worker, server;
    cp_tensor_floats(cfg, count, size, rank, &worker, &server);
    return cp_tensor_new(count, worker, server, t_p);
}

/* The choice for this call's transport: sparse_rs needs v-collectives,
 * which a caller's transport (commpress_create_transport) lacks; every
 * rank has the same transport, so the same algorithm. */
static cp_algo_t algo_for(const cp_allreduce_args_t *a, const cp_params_t *p, uint64_t steps)
{
    const cp_algo_t algo = cp_allreduce_choose(a->cfg, p, steps, a->count, a->tp->size);
    return algo == CP_ALGO_SPARSE_RS && !cp_allreduce_sparse_rs_can(a->tp) ? CP_ALGO_SPARSE
                                                                            : algo;
}

void cp_allreduce_plan(const cp_allreduce_args_t *a, size_t need[CP_WS_SLOTS])
{
    const cp_coll_config_t *cfg = a->cfg;
    const uint64_t steps = a->tensor ? a->tensor->steps : 0;
    const cp_params_t p = cp_step_params(cfg, steps);
    const cp_algo_t algo = algo_for(a, &p, steps);

    memset(need, 0, CP_WS_SLOTS * sizeof(size_t));
    if (algo == CP_ALGO_SPARSE)
        cp_allreduce_sparse_plan(a, &p, need);
    else if (algo == CP_ALGO_SPARSE_RS)
        cp_allreduce_sparse_rs_plan(a, &p, need);
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

cp_status_t cp_allreduce(const cp_allreduce_args_t *a, cp_coll_result_t *res)
{
    cp_status_t st;
    int n = a->tp->size;

    memset(res, 0, sizeof(*res));
    if (a->tensor->count != a->count)
        return CP_ERR_INVALID;
    const cp_params_t p = cp_step_params(a->cfg, a->tensor->steps);
    res->algo = algo_for(a, &p, a->tensor->steps);
    res->bytes_dense = cp_ring_bytes(n, 4.0 * (double)a->count);
    switch (res->algo) {
    case CP_ALGO_SPARSE:
        st = cp_allreduce_sparse(a, &p, res);
        break;
    case CP_ALGO_SPARSE_RS:
        st = cp_allreduce_sparse_rs(a, &p, res);
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
        cp_tensor_step(a->tensor, a->call);
    } else if (res->fallback == CP_FALLBACK_DISAGREE) {
        /* Every rank saw the same words: all start this tensor afresh. */
        cp_tensor_reset(a->tensor);
    }
    return CP_OK;
}
