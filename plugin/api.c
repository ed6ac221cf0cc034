/* The explicit API (include/commpress.h): the same collectives as the
 * shim, configured by a struct, tensors named by the caller. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "include/commpress.h"
#include "collectives/coll_config.h"
#include "plugin/comm_state.h"
#include "plugin/stats.h"
#include "util/fault.h"
#include "util/hd.h"
#include "util/log.h"

/* The public numbers are util/status.h's. */
#define CP_SAME(x) _Static_assert(COMMPRESS_##x == CP_##x, #x)
CP_SAME(ERR_INVALID); CP_SAME(ERR_NOMEM); CP_SAME(ERR_MALFORMED);
CP_SAME(ERR_NOSPACE); CP_SAME(ERR_TRANSPORT); CP_SAME(ERR_UNSUPPORTED);
CP_SAME(ERR_CONFIG); CP_SAME(ERR_MISMATCH); CP_SAME(ERR_NONFINITE);
CP_SAME(ERR_RANGE); CP_SAME(ERR_RANKS);
#undef CP_SAME

struct commpress_ctx {
    MPI_Comm comm; /* a duplicate: our traffic never mixes with the caller's
                      (MPI_COMM_NULL over a caller's transport) */
    commpress_transport_t user; /* commpress_create_transport's */
    cp_comm_state_t *state;
    cp_layout_registry_t layouts; /* by tensor id */
    cp_coll_config_t coll;
    commpress_stats_t stats;
};

/* The default of a row, as a number (commpress_config_t's defaults are
 * the environment's). */
static double row_default(const char *name)
{
    const cp_param_t *r = cp_coll_row(name);
    return r ? strtod(r->dflt, NULL) : 0.0;
}

void commpress_config_default(commpress_config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->compressor = "none";
    c->density = row_default("COMMPRESS_DENSITY");
    c->bits = (int)row_default("COMMPRESS_BITS");
    c->bucket = (size_t)row_default("COMMPRESS_BUCKET");
    c->topk_sample_min = (size_t)row_default("COMMPRESS_TOPK_SAMPLE_MIN");
    c->dgc_momentum = row_default("COMMPRESS_DGC_MOMENTUM");
    c->dgc_clip = row_default("COMMPRESS_DGC_CLIP");
    c->dgc_warmup_steps = (uint64_t)row_default("COMMPRESS_DGC_WARMUP_STEPS");
    c->dgc_dense_below = (size_t)row_default("COMMPRESS_DGC_DENSE_BELOW");
    c->econtrol_eta = row_default("COMMPRESS_ECONTROL_ETA");
    c->ef21_sgdm_eta = row_default("COMMPRESS_EF21_SGDM_ETA");
}

const char *commpress_strerror(int status)
{
    return cp_status_string((cp_status_t)status);
}

/* The struct, as settings: each field through the variable's own row, so
 * the API accepts exactly what the environment accepts. */
static cp_status_t to_settings(const commpress_config_t *c,
                               cp_coll_settings_t *s)
{
    cp_status_t st = CP_OK;
#define SET(...) cp_coll_settings_setf(s, &st, __VA_ARGS__)
    cp_coll_settings_defaults(s);
    if (c->compressor == NULL)
        return CP_ERR_INVALID;
    SET("COMMPRESS_COMPRESSOR", "%s", c->compressor);
    SET("COMMPRESS_DENSITY", "%.17g", c->density);
    SET("COMMPRESS_BITS", "%d", c->bits);
    SET("COMMPRESS_BUCKET", "%zu", c->bucket);
    SET("COMMPRESS_ROUNDING", "%s", c->stochastic ? "stochastic" : "nearest");
    SET("COMMPRESS_FEEDBACK", "%s", c->feedback ? c->feedback : "auto");
    SET("COMMPRESS_TOPK_SELECT", "%s", c->topk_select ? c->topk_select : "auto");
    SET("COMMPRESS_TOPK_SAMPLE_MIN", "%zu", c->topk_sample_min);
    SET("COMMPRESS_TOPK_VALUES", "%s", c->topk_fp16 ? "fp16" : "f32");
    SET("COMMPRESS_ALLREDUCE_ALGO", "%s", c->algorithm ? c->algorithm : "auto");
    SET("COMMPRESS_SEED", "%llu", (unsigned long long)c->seed);
    SET("COMMPRESS_DGC_MOMENTUM", "%.17g", c->dgc_momentum);
    SET("COMMPRESS_DGC_CLIP", "%.17g", c->dgc_clip);
    SET("COMMPRESS_DGC_WARMUP_STEPS", "%llu", (unsigned long long)c->dgc_warmup_steps);
    SET("COMMPRESS_DGC_DENSE_BELOW", "%zu", c->dgc_dense_below);
    SET("COMMPRESS_ECONTROL_ETA", "%.17g", c->econtrol_eta);
    SET("COMMPRESS_EF21_SGDM_ETA", "%.17g", c->ef21_sgdm_eta);
#undef SET
    if (st == CP_OK && c->settings)
        st = cp_coll_settings_apply(s, c->settings, NULL, 0);
    return st == CP_OK ? CP_OK : CP_ERR_INVALID;
}

int commpress_create(const commpress_config_t *cfg, MPI_Comm comm,
                     commpress_ctx_t **ctx_p)
{
    commpress_ctx_t *ctx;
    cp_coll_settings_t settings;
    cp_coll_config_t coll;
    cp_status_t st = cfg ? to_settings(cfg, &settings) : CP_ERR_INVALID;
    int fail, inter = 0;

    if (ctx_p == NULL)
        return CP_ERR_INVALID;
    *ctx_p = NULL;
    /* An intercommunicator's allreduce sums the other group's data: not
     * what the collectives compute. Every rank of it sees that (local). */
    if (comm == MPI_COMM_NULL || PMPI_Comm_test_inter(comm, &inter) != MPI_SUCCESS ||
        inter)
        return CP_ERR_INVALID;
    if (st == CP_OK && cp_coll_build(&settings, &coll, NULL, 0) != CP_OK)
        st = CP_ERR_INVALID;
    /* Agree on validity and configuration before anyone allocates. */
    CP_CHECK(cp_mpi_agree(comm, st == CP_OK,
                          st == CP_OK ? cp_coll_settings_hash(&settings) : 0));

    ctx = calloc(1, sizeof(*ctx));
    fail = ctx == NULL;
    if (!fail) {
        cp_layout_registry_init(&ctx->layouts);
        ctx->coll = coll;
        fail = PMPI_Comm_dup(comm, &ctx->comm) != MPI_SUCCESS;
        if (fail)
            ctx->comm = MPI_COMM_NULL;
    }
    if (!fail)
        fail = cp_comm_state_create(ctx->comm, &ctx->coll, 1 << 16, 0, &ctx->state) != CP_OK;
    /* ctx->comm is commpress's own: the pipelined schedules may send on it. */
    if (!fail && ctx->coll.pipeline)
        cp_transport_mpi_p2p(&ctx->state->tp, &ctx->comm);
    /* ... and on whether every rank could: all get a context, or none. */
    if (PMPI_Allreduce(MPI_IN_PLACE, &fail, 1, MPI_INT, MPI_MAX, comm) !=
            MPI_SUCCESS || fail) {
        commpress_destroy(ctx);
        return CP_ERR_NOMEM;
    }
    *ctx_p = ctx;
    return CP_OK;
}

/* The caller's transport as the collectives' (no v-collectives: the
 * choice never takes sparse_rs over it, collectives/allreduce.c). */
static cp_status_t user_rc(int rc) { return rc == 0 ? CP_OK : CP_ERR_TRANSPORT; }
static cp_status_t u_alltoall(void *c, const void *send, void *recv, size_t bytes)
{
    const commpress_transport_t *t = c;
    return user_rc(t->alltoall(t->user, send, recv, bytes));
}
static cp_status_t u_allgather(void *c, const void *send, void *recv, size_t bytes)
{
    const commpress_transport_t *t = c;
    return user_rc(t->allgather(t->user, send, recv, bytes));
}
static cp_status_t u_sum_f32(void *c, const float *send, float *recv, size_t count)
{
    const commpress_transport_t *t = c;
    return user_rc(t->allreduce_sum_f32(t->user, send, recv, count));
}
static cp_status_t u_max_u64(void *c, uint64_t *vals, size_t n)
{
    const commpress_transport_t *t = c;
    return user_rc(t->allreduce_max_u64(t->user, vals, n));
}
static const cp_transport_ops_t user_ops = {
    .name = "user",
    .alltoall = u_alltoall,
    .allgather = u_allgather,
    .allreduce_sum_f32 = u_sum_f32,
    .allreduce_max_u64 = u_max_u64,
};

int commpress_create_transport(const commpress_config_t *cfg, const commpress_transport_t *t,
                               commpress_ctx_t **ctx_p)
{
    cp_coll_settings_t settings;
    cp_coll_config_t coll;
    if (ctx_p == NULL)
        return CP_ERR_INVALID;
    *ctx_p = NULL;
    if (t == NULL || t->size < 1 || t->rank < 0 || t->rank >= t->size || !t->alltoall ||
        !t->allgather || !t->allreduce_max_u64 || !t->allreduce_sum_f32)
        return CP_ERR_INVALID;
    cp_status_t st = cfg ? to_settings(cfg, &settings) : CP_ERR_INVALID;
    if (st == CP_OK && cp_coll_build(&settings, &coll, NULL, 0) != CP_OK)
        st = CP_ERR_INVALID;
    if (st == CP_OK && coll.algo == CP_ALGO_SPARSE_RS)
        st = CP_ERR_CONFIG; /* needs v-collectives this transport lacks */
    /* Agree on validity and configuration before anyone allocates (over
     * the caller's transport as it is; the context keeps a copy). */
    const cp_transport_t tp = {.ops = &user_ops, .ctx = (void *)t, .rank = t->rank,
                               .size = t->size};
    const cp_status_t ag =
        cp_transport_agree(&tp, st == CP_OK, st == CP_OK ? cp_coll_settings_hash(&settings) : 0);
    if (ag == CP_ERR_INVALID) /* this rank's reason, or another rank's refusal */
        return st != CP_OK ? st : CP_ERR_RANKS;
    if (ag != CP_OK)
        return ag;
    commpress_ctx_t *ctx = calloc(1, sizeof(*ctx));
    uint64_t fail = ctx == NULL;
    if (!fail) {
        cp_layout_registry_init(&ctx->layouts);
        ctx->coll = coll;
        ctx->comm = MPI_COMM_NULL;
        ctx->user = *t;
        fail = cp_comm_state_create(MPI_COMM_NULL, &ctx->coll, 1 << 16, 0, &ctx->state) != CP_OK;
    }
    if (!fail) {
        ctx->state->tp = tp;
        ctx->state->tp.ctx = &ctx->user;
    }
    /* ... and on whether every rank could: all get a context, or none. */
    if (t->allreduce_max_u64(t->user, &fail, 1) != 0 || fail) {
        commpress_destroy(ctx);
        return CP_ERR_NOMEM;
    }
    *ctx_p = ctx;
    return CP_OK;
}

void commpress_destroy(commpress_ctx_t *ctx)
{
    if (ctx == NULL)
        return;
    cp_comm_state_destroy(ctx->state);
    if (ctx->comm != MPI_COMM_NULL)
        PMPI_Comm_free(&ctx->comm);
    cp_layout_registry_fini(&ctx->layouts);
    free(ctx);
}

int commpress_allreduce(commpress_ctx_t *ctx, const float *send, float *recv,
                        size_t count, uint64_t tensor_id)
{
    const cp_name_t name = {.naming = CP_NAME_EXPLICIT, .id = tensor_id,
                            .layouts = &ctx->layouts, .keys = {tensor_id},
                            .nkeys = 1};
    cp_coll_result_t res;

    if (ctx == NULL || recv == NULL || count == 0)
        return CP_ERR_INVALID;
    cp_fault_tick();
    CP_CHECK(cp_comm_state_allreduce(ctx->state, &ctx->coll, &name, send, recv,
                                     count, &res));
    cp_stats_accumulate(&ctx->stats, &res);
    return CP_OK;
}

void commpress_ctx_stats(const commpress_ctx_t *ctx, commpress_stats_t *out)
{
    *out = ctx->stats;
    cp_stats_set_ratio(out);
    out->adapt_plans = ctx->state->adapt.plans;
    out->state_bytes = commpress_state_bytes(ctx);
    out->state_bytes_peak = out->state_bytes;
}

size_t commpress_state_bytes(const commpress_ctx_t *ctx)
{
    return cp_comm_state_bytes(ctx->state);
}

/* ---- layouts (plugin/layout.h) ---- */

/* The shim's, by buffer address. */
static cp_layout_registry_t cp_shim_registry = {.lock = PTHREAD_MUTEX_INITIALIZER};

cp_layout_registry_t *cp_shim_layouts(void) { return &cp_shim_registry; }

/* A checked layout, or one line on stderr saying why not. */
static int make_layout(const char *fn, size_t count, size_t nlayers,
                       const size_t *offsets, cp_layout_t **l_p)
{
    char err[256];
    if (cp_layout_check(count, nlayers, offsets, err, sizeof(err)) != CP_OK) {
        fprintf(stderr, "commpress: error: %s: %s\n", fn, err);
        return CP_ERR_INVALID;
    }
    return cp_layout_new(count, nlayers, offsets, l_p);
}

int commpress_register_layout(const void *buf, size_t count, size_t nlayers,
                              const size_t *offsets)
{
    cp_layout_t *l;
    if (buf == NULL) {
        fprintf(stderr, "commpress: error: commpress_register_layout: buf is NULL\n");
        return CP_ERR_INVALID;
    }
    CP_CHECK(make_layout("commpress_register_layout", count, nlayers, offsets, &l));
    cp_status_t st = cp_layout_registry_set(&cp_shim_registry, (uintptr_t)buf, l);
    free(l);
    return st;
}

int commpress_unregister_layout(const void *buf)
{
    return cp_layout_registry_set(&cp_shim_registry, (uintptr_t)buf, NULL);
}

int commpress_ctx_set_layout(commpress_ctx_t *ctx, uint64_t tensor_id,
                             size_t count, size_t nlayers,
                             const size_t *offsets)
{
    cp_layout_t *l = NULL;
    if (ctx == NULL)
        return CP_ERR_INVALID;
    if (nlayers)
        CP_CHECK(make_layout("commpress_ctx_set_layout", count, nlayers, offsets, &l));
    cp_status_t st = cp_layout_registry_set(&ctx->layouts, tensor_id, l);
    free(l);
    return st;
}
