#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collectives/tensor.h"
#include "plugin/adapt.h"
#include "plugin/stats.h"
#include "util/log.h"

void cp_adapt_init(cp_adapt_state_t *ad, const cp_coll_config_t *cfg)
{
    memset(ad, 0, sizeof(*ad));
    if (cfg->adapt.on)
        ad->ncand = cp_lgreco_candidates(cfg, ad->cands, &ad->v0);
}

const cp_coll_config_t *cp_adapt_config(const cp_adapt_state_t *ad,
                                        const cp_coll_config_t *cfg,
                                        const cp_tensor_t *t)
{
    if (ad->ncand == 0 || t == NULL || t->setting < 0 ||
        (size_t)t->setting >= ad->ncand)
        return cfg;
    return &ad->cands[t->setting].cfg;
}

void cp_adapt_fini(cp_adapt_state_t *ad)
{
    free(ad->scratch);
    ad->scratch = NULL;
    ad->scratch_bytes = 0;
}

void cp_adapt_collect(cp_adapt_state_t *ad, cp_tensor_t *t, int rank)
{
    if (rank != 0 || t == NULL)
        return;
    t->scratch = NULL; /* measured only during a window, with this scratch */
    if (!ad->collecting)
        return;
    /* One scratch for the communicator's measurements (its calls are one
     * at a time), kept for the window only. */
    const size_t need = cp_lgreco_measure_scratch(ad->cands, ad->ncand, t->count);
    if (need > ad->scratch_bytes) {
        void *p = realloc(ad->scratch, need);
        if (p == NULL) {
            free(t->err2); /* no statistics: the layer keeps its setting */
            t->err2 = NULL;
            return;
        }
        ad->scratch = p, ad->scratch_bytes = need;
    }
    t->scratch = ad->scratch;
    if (t->err2 != NULL)
        return;
    t->err2 = calloc(ad->ncand, sizeof(double)); /* none: no statistics */
    t->cands = ad->cands;
    t->ncand = ad->ncand;
    t->err_calls = 0;
    t->err_seconds = 0;
}

/* The layers of a table, in an order every rank shares (tables agree):
 * the entries by index, a fused buffer's segments in its place. */
typedef struct {
    const cp_tensor_table_t *table;
    size_t e, k;
} layer_iter_t;

static cp_tensor_t *next_layer(layer_iter_t *it)
{
    while (it->e < it->table->max_entries) {
        const cp_tensor_entry_t *x = &it->table->entries[it->e];
        cp_tensor_t *t = x->used ? x->tensor : NULL;
        if (t && it->k < t->nseg)
            return t->seg[it->k++];
        it->e++, it->k = 0;
        if (t && t->nseg == 0)
            return t;
    }
    return NULL;
}

static int has_stats(const cp_tensor_t *t) { return t->err2 && t->err_calls; }

/* Rank 0: the plan of every layer with statistics (candidate + 1; 0
 * keeps the layer's setting), with one INFO line per layer. */
static void make_plan(cp_adapt_state_t *ad, const cp_coll_config_t *cfg,
                      cp_tensor_table_t *table, int nranks, uint8_t *plan)
{
    const size_t V = ad->ncand;
    layer_iter_t it = {.table = table};
    size_t L = 0;
    for (const cp_tensor_t *t; (t = next_layer(&it)) != NULL;)
        L += has_stats(t);
    if (L == 0)
        return;
    size_t *ent = malloc(L * sizeof(size_t));      /* layer positions */
    const cp_tensor_t **lt = malloc(L * sizeof(*lt)); /* and tensors */
    double *err = malloc(L * V * sizeof(double));
    uint64_t *size = malloc(L * V * sizeof(uint64_t));
    uint8_t *choice = malloc(L);
    void *dp = malloc(cp_lgreco_scratch(L, CP_LGRECO_BINS));
    double e0 = 0;
    uint64_t total = 0, uniform = 0;
    cp_status_t st = ent && lt && err && size && choice && dp ? CP_OK : CP_ERR_NOMEM;
    const double t_table = cp_now();
    double stat_s = 0; /* the window's measurements */
    it = (layer_iter_t){.table = table};
    for (size_t pos = 0, l = 0; st == CP_OK; pos++) {
        const cp_tensor_t *t = next_layer(&it);
        if (t == NULL)
            break;
        if (!has_stats(t))
            continue;
        ent[l] = pos;
        lt[l] = t;
        stat_s += t->err_seconds;
        /* e[l,v]: the l2 error over the window's steps, each step's
         * vector compressed as it was sent (docs/lgreco.md says why not
         * the error of the window's sum). */
        for (size_t v = 0; v < V; v++)
            err[l * V + v] = sqrt(t->err2[v]);
        cp_lgreco_sizes(ad->cands, V, t->count, nranks, size + l * V);
        e0 += err[l * V + ad->v0];
        uniform += size[l * V + ad->v0];
        l++;
    }
    cp_lgreco_problem_t p = {.nlayers = L, .ncand = V, .err = err, .size = size,
                             .budget = cfg->adapt.alpha * e0,
                             .bins = CP_LGRECO_BINS};
    double t0 = cp_now();
    const double table_s = t0 - t_table;
    if (st == CP_OK)
        st = cp_lgreco_solve(&p, dp, choice, &total);
    const double dp_s = cp_now() - t0;
    /* Never worse than the configured setting, which is within the budget
     * in true error (alpha >= 1) even when rounding the units up puts it
     * over in the DP's. */
    if (st == CP_ERR_RANGE || (st == CP_OK && total > uniform)) {
        memset(choice, (int)ad->v0, L);
        total = uniform;
        st = CP_OK;
    }
    if (st == CP_OK) {
        double et = 0;
        /* The plan for the statistics file: one object per layer. */
        size_t cap = 64 + L * 160, o = 0;
        char *json = malloc(cap);
        if (json)
            o += (size_t)snprintf(json, cap, "[");
        for (size_t l = 0; l < L; l++) {
            const size_t v = choice[l];
            const cp_tensor_t *t = lt[l];
            plan[ent[l]] = (uint8_t)(v + 1);
            et += err[l * V + v];
            if (json && o < cap)
                o += (size_t)snprintf(json + o, cap - o,
                                      "%s{\"count\": %zu, \"setting\": \"%s\", "
                                      "\"error\": %.6g, \"bytes\": %llu}",
                                      l ? ", " : "", t->count, ad->cands[v].name,
                                      err[l * V + v],
                                      (unsigned long long)size[l * V + v]);
            cp_info("lgreco plan %llu: tensor of %zu floats: %s (error %.4g, "
                    "%llu bytes; %s: error %.4g, %llu bytes)",
                    ad->plans + 1, t->count, ad->cands[v].name, err[l * V + v],
                    (unsigned long long)size[l * V + v], ad->cands[ad->v0].name,
                    err[l * V + ad->v0], (unsigned long long)size[l * V + ad->v0]);
        }
        cp_info("lgreco plan %llu: %zu tensors, %llu bytes per step (uniform "
                "%llu: %.2fx fewer), error %.4g (budget %.4g); measuring "
                "the window %.3f ms, error table %.3f ms, DP %.3f ms",
                ad->plans + 1, L, (unsigned long long)total,
                (unsigned long long)uniform,
                total ? (double)uniform / (double)total : 0.0, et, p.budget,
                stat_s * 1e3, table_s * 1e3, dp_s * 1e3);
        if (json && o + 2 < cap && ad->report) {
            snprintf(json + o, cap - o, "]");
            cp_stats_set_plan(json);
        }
        free(json);
    } else {
        cp_warn_rl("lgreco: no plan (%s): settings kept", cp_status_string(st));
    }
    free(ent), free(lt), free(err), free(size), free(choice), free(dp);
}

cp_status_t cp_adapt_tick(cp_adapt_state_t *ad, const cp_coll_config_t *cfg,
                          cp_tensor_table_t *table, const cp_transport_t *tp,
                          size_t period)
{
    if (ad->ncand == 0)
        return CP_OK;
    if (period == 0) { /* the step is being relearned: wait for it */
        ad->collecting = 0;
        return CP_OK;
    }
    const uint64_t every = (uint64_t)cfg->adapt.every * period;
    const uint64_t window = (uint64_t)cfg->adapt.window * period;
    ad->calls++;
    ad->collecting = ad->calls > every - window && ad->calls <= every;
    if (ad->calls <= every)
        return CP_OK;
    /* The plan, at this call on every rank: rank 0 makes it, one byte per
     * layer, sent in one allreduce (max; the others send zeros) per 2048
     * layers, the same number on every rank (the layers agree). A plan
     * rank 0 has no memory for keeps every setting. */
    layer_iter_t it = {.table = table};
    size_t N = 0;
    while (next_layer(&it))
        N++;
    uint8_t *plan = tp->rank == 0 && N ? calloc(N, 1) : NULL;
    if (plan)
        make_plan(ad, cfg, table, tp->size, plan);
    uint64_t w[256];
    it = (layer_iter_t){.table = table};
    for (size_t base = 0; base < N; base += 8 * 256) {
        const size_t n = N - base < 8 * 256 ? N - base : 8 * 256;
        memset(w, 0, sizeof(w));
        for (size_t i = 0; plan && i < n; i++)
            w[i / 8] |= (uint64_t)plan[base + i] << (8 * (i % 8));
        CP_CHECK(tp->ops->allreduce_max_u64(tp->ctx, w, (n + 7) / 8));
        for (size_t i = 0; i < n; i++) {
            const unsigned v = (unsigned)(w[i / 8] >> (8 * (i % 8))) & 0xff;
            cp_tensor_t *t = next_layer(&it);
            if (v)
                t->setting = (int)v - 1;
        }
    }
    free(plan);
    cp_adapt_fini(ad); /* the window's scratch */
    /* Statistics start afresh for the next window. */
    it = (layer_iter_t){.table = table};
    for (cp_tensor_t *t; (t = next_layer(&it)) != NULL;) {
        free(t->err2);
        t->err2 = NULL;
        t->err_calls = 0;
        t->scratch = NULL;
    }
    ad->plans++;
    ad->calls = 1; /* this call is the first of the next period */
    ad->collecting = 0;
    if (ad->report)
        cp_stats_add_plan();
    return CP_OK;
}
