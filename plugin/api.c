/* The explicit API (include/commpress.h): the same collectives as the
 * shim, configured by a struct, tensors named by the caller. */
#include <stdlib.h>
#include <string.h>

#include "include/commpress.h"
#include "plugin/comm_state.h"
#include "plugin/config.h"
#include "plugin/stats.h"
#include "util/fault.h"
#include "util/hd.h"
#include "util/log.h"

struct commpress_ctx {
    MPI_Comm comm; /* a duplicate: our traffic never mixes with the caller's */
    cp_comm_state_t *state;
    cp_coll_config_t coll;
    commpress_stats_t stats;
};

void commpress_config_default(commpress_config_t *c)
{
    cp_config_t d;
    cp_config_defaults(&d);
    memset(c, 0, sizeof(*c));
    c->compressor = "none";
    c->density = d.density;
    c->bits = d.bits;
    c->bucket = d.bucket;
    c->topk_sample_min = d.topk_sample_min;
    c->dgc_momentum = d.dgc_momentum;
    c->dgc_clip = d.dgc_clip;
    c->dgc_warmup_steps = d.dgc_warmup_steps;
    c->dgc_dense_below = d.dgc_dense_below;
    c->econtrol_eta = d.econtrol_eta;
    c->ef21_sgdm_eta = d.ef21_sgdm_eta;
}

const char *commpress_strerror(int status)
{
    return cp_status_string((cp_status_t)status);
}

static int pick(const char *v, const char *const *names, int n, int dflt)
{
    if (v == NULL)
        return dflt;
    for (int i = 0; i < n; i++)
        if (strcmp(v, names[i]) == 0)
            return i;
    return -1;
}

static cp_status_t to_coll(const commpress_config_t *c, cp_coll_config_t *o)
{
    static const char *const fb[] = {"none", "ef", "ef21", "econtrol", "ef21-sgdm"};
    static const char *const sel[] = {"auto", "exact", "sampled"};
    static const char *const algo[] = {"auto", "sparse", "twophase", "dense"};
    int f, s, a;

    const int dgc = c->compressor && strcmp(c->compressor, "dgc") == 0;
    memset(o, 0, sizeof(*o));
    o->codec = c->compressor ? cp_compressor_find(dgc ? "topk" : c->compressor)
                             : NULL;
    f = pick(c->feedback, fb, 5, -2);
    if (dgc && (f != -2 || !(c->dgc_momentum >= 0.0 && c->dgc_momentum < 1.0) ||
                !(c->dgc_clip >= 0.0)))
        return CP_ERR_INVALID;
    s = pick(c->topk_select, sel, 3, 0);
    a = pick(c->algorithm, algo, 4, 0);
    if (o->codec == NULL || f == -1 || s < 0 || a < 0 ||
        !(c->density > 0.0 && c->density <= 1.0) || c->bits < 1 ||
        !(c->econtrol_eta >= 0.0 && c->econtrol_eta <= 1.0) ||
        !(c->ef21_sgdm_eta > 0.0 && c->ef21_sgdm_eta <= 1.0) ||
        c->bits > 8 || c->bucket < 1)
        return CP_ERR_INVALID;
    if (f == -2)
        f = (o->codec == &cp_compressor_topk || o->codec == &cp_compressor_sign ||
             o->codec == &cp_compressor_quant) ? 1 : 0;
    o->feedback = dgc ? &cp_feedback_dgc : cp_feedback_find(fb[f]);
    o->params.density = c->density;
    o->params.bits = c->bits;
    o->params.bucket = c->bucket;
    o->params.rounding = c->stochastic ? CP_ROUND_STOCHASTIC : CP_ROUND_NEAREST;
    o->params.topk_select = (cp_topk_select_t)s;
    o->params.topk_sample_min = c->topk_sample_min;
    o->params.topk_fp16 = c->topk_fp16 != 0;
    o->algo = (cp_algo_t)a;
    o->seed = c->seed;
    o->fb.momentum = (float)c->dgc_momentum;
    o->fb.clip = c->dgc_clip;
    o->fb.eta = (float)c->econtrol_eta;
    o->fb.sgdm_eta = (float)c->ef21_sgdm_eta;
    o->warmup_steps = c->dgc_warmup_steps;
    o->dense_below = c->dgc_dense_below;
    return CP_OK;
}

/* Hash of the resolved configuration, to be compared across ranks. */
static uint64_t coll_hash(const cp_coll_config_t *o)
{
    char buf[384];
    snprintf(buf, sizeof(buf),
             "%s|%s|%.17g|%d|%zu|%d|%d|%zu|%d|%llu|%.9g|%.17g|%llu|%zu|%.9g|%d|%.9g",
             o->codec->name, o->feedback->name, o->params.density,
             o->params.bits, o->params.bucket, (int)o->params.rounding,
             (int)o->params.topk_select, o->params.topk_sample_min,
             (int)o->algo, (unsigned long long)o->seed, (double)o->fb.momentum,
             o->fb.clip, (unsigned long long)o->warmup_steps, o->dense_below,
             (double)o->fb.eta, o->params.topk_fp16, (double)o->fb.sgdm_eta);
    return cp_fnv1a(buf, strlen(buf));
}

int commpress_create(const commpress_config_t *cfg, MPI_Comm comm,
                     commpress_ctx_t **ctx_p)
{
    commpress_ctx_t *ctx;
    cp_coll_config_t coll;
    cp_status_t st = to_coll(cfg, &coll);
    int fail;

    /* Agree on validity and configuration before anyone allocates. */
    CP_CHECK(cp_mpi_agree(comm, st == CP_OK, st == CP_OK ? coll_hash(&coll) : 0));

    ctx = calloc(1, sizeof(*ctx));
    fail = ctx == NULL;
    if (!fail) {
        ctx->coll = coll;
        fail = PMPI_Comm_dup(comm, &ctx->comm) != MPI_SUCCESS;
        if (fail)
            ctx->comm = MPI_COMM_NULL;
    }
    if (!fail)
        fail = cp_comm_state_create(ctx->comm, 1 << 16, 0, &ctx->state) != CP_OK;
    /* ... and on whether every rank could: all get a context, or none. */
    if (PMPI_Allreduce(MPI_IN_PLACE, &fail, 1, MPI_INT, MPI_MAX, comm) !=
            MPI_SUCCESS || fail) {
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
    free(ctx);
}

int commpress_allreduce(commpress_ctx_t *ctx, const float *send, float *recv,
                        size_t count, uint64_t tensor_id)
{
    const cp_name_t name = {.naming = CP_NAME_EXPLICIT, .id = tensor_id};
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
    out->state_bytes = commpress_state_bytes(ctx);
    out->state_bytes_peak = out->state_bytes;
}

size_t commpress_state_bytes(const commpress_ctx_t *ctx)
{
    return cp_comm_state_bytes(ctx->state);
}
