#include <math.h>
#include <stdio.h>
#include <string.h>

#include "collectives/allreduce.h"
#include "collectives/lgreco.h"
#include "util/log.h"

#define UP64(b) (((b) + 63) & ~(size_t)63)

#define INF UINT64_MAX

uint32_t cp_lgreco_units(double err, double budget, size_t bins)
{
    if (!(err >= 0) || !isfinite(err))
        return UINT32_MAX;
    if (budget <= 0)
        return err == 0 ? 0 : UINT32_MAX;
    /* ceil(err / (E / B)): rounded up, so units never undercount. */
    const double u = ceil(err * (double)bins / budget);
    return u > (double)bins ? UINT32_MAX : (uint32_t)u;
}

size_t cp_lgreco_scratch(size_t nlayers, size_t bins)
{
    return 2 * (bins + 1) * sizeof(uint64_t) + nlayers * (bins + 1);
}

cp_status_t cp_lgreco_solve(const cp_lgreco_problem_t *p, void *scratch,
                            uint8_t *choice, uint64_t *total)
{
    const size_t L = p->nlayers, V = p->ncand, B = p->bins;
    if (L == 0 || V == 0 || V > CP_LGRECO_MAX_CANDIDATES || B == 0 ||
        !(p->budget >= 0) || !isfinite(p->budget) || scratch == NULL)
        return CP_ERR_INVALID;
    uint64_t *prev = scratch, *cur = prev + (B + 1);
    uint8_t *pick = (uint8_t *)(cur + (B + 1)); /* [l * (B + 1) + b] */

    for (size_t b = 0; b <= B; b++)
        prev[b] = 0; /* no layer yet: size 0 within any budget */
    for (size_t l = 0; l < L; l++) {
        uint32_t units[CP_LGRECO_MAX_CANDIDATES];
        for (size_t v = 0; v < V; v++)
            units[v] = cp_lgreco_units(p->err[l * V + v], p->budget, B);
        uint8_t *pl = pick + l * (B + 1);
        for (size_t b = 0; b <= B; b++) {
            uint64_t best = INF;
            uint8_t arg = 0;
            for (size_t v = 0; v < V; v++) {
                if (units[v] > b || prev[b - units[v]] == INF)
                    continue;
                const uint64_t s = prev[b - units[v]] + p->size[l * V + v];
                if (s < best) /* strict: the smaller index wins ties */
                    best = s, arg = (uint8_t)v;
            }
            cur[b] = best;
            pl[b] = arg;
        }
        uint64_t *t = prev;
        prev = cur, cur = t;
    }
    if (prev[B] == INF)
        return CP_ERR_RANGE;
    *total = prev[B];
    /* Backtrack from the full budget. */
    size_t b = B;
    for (size_t l = L; l-- > 0;) {
        const uint8_t v = pick[l * (B + 1) + b];
        choice[l] = v;
        b -= cp_lgreco_units(p->err[l * V + v], p->budget, B);
    }
    return CP_OK;
}

static void add(cp_lgreco_cand_t *out, size_t *n, const cp_coll_config_t *cfg,
                const cp_compressor_ops_t *codec, const cp_params_t *p,
                const char *name)
{
    if (codec == NULL || *n >= CP_LGRECO_MAX_CANDIDATES)
        return;
    out[*n].cfg = *cfg;
    out[*n].cfg.codec = codec;
    out[*n].cfg.params = *p;
    snprintf(out[*n].name, sizeof(out[*n].name), "%s", name);
    (*n)++;
}

size_t cp_lgreco_candidates(const cp_coll_config_t *cfg, cp_lgreco_cand_t *out,
                            size_t *v0)
{
    const cp_compressor_ops_t *codec = cfg->codec;
    cp_params_t ps[CP_LGRECO_MAX_CANDIDATES];
    size_t n = 0, k = 1;
    char name[32];

    *v0 = 0;
    ps[0] = cfg->params;
    if (codec->adapt)
        k = codec->adapt(&cfg->params, ps, CP_LGRECO_MAX_CANDIDATES - 2, v0);
    for (size_t i = 0; i < k; i++) {
        /* The density codecs vary density, the others bits. */
        if (codec->adapt == NULL)
            snprintf(name, sizeof(name), "%s", codec->name);
        else if (codec->caps & CP_CODEC_SPARSE)
            snprintf(name, sizeof(name), "%s density=%.3g", codec->name,
                     ps[i].density);
        else
            snprintf(name, sizeof(name), "%s bits=%d", codec->name, ps[i].bits);
        add(out, &n, cfg, codec, &ps[i], name);
    }
    if (codec->caps & CP_CODEC_IDENTITY)
        return n;
    if (codec->caps & CP_CODEC_BIASED)
        add(out, &n, cfg, cp_compressor_find("fp16"), &cfg->params, "fp16");
    add(out, &n, cfg, &cp_compressor_none, &cfg->params, "none");
    return n;
}

size_t cp_lgreco_measure_scratch(const cp_lgreco_cand_t *c, size_t nc, size_t n)
{
    size_t m = 0;
    for (size_t v = 0; v < nc; v++) {
        const cp_compressor_ops_t *k = c[v].cfg.codec;
        size_t b = UP64(k->max_size(&c[v].cfg.params, n)) +
                   k->scratch_size(&c[v].cfg.params, n);
        m = b > m ? b : m;
    }
    return UP64(n * sizeof(float)) + m + 64;
}

void cp_lgreco_sizes(const cp_lgreco_cand_t *c, size_t nc, size_t n,
                     int nranks, uint64_t *size)
{
    for (size_t v = 0; v < nc; v++)
        size[v] = cp_allreduce_wire_bytes(&c[v].cfg, &c[v].cfg.params, n, nranks);
}

cp_status_t cp_lgreco_measure(const cp_lgreco_cand_t *c, size_t nc,
                              const float *x, size_t n, int nranks,
                              double *err, uint64_t *size, void *scratch)
{
    cp_lgreco_sizes(c, nc, n, nranks, size);
    return cp_lgreco_errors(c, nc, x, n, err, scratch);
}

cp_status_t cp_lgreco_errors(const cp_lgreco_cand_t *c, size_t nc,
                             const float *x, size_t n, double *err,
                             void *scratch)
{
    float *y = scratch; /* scratch: malloc'd, so aligned */
    unsigned char *msg = (unsigned char *)scratch + UP64(n * sizeof(float));
    uint8_t done[CP_LGRECO_MAX_CANDIDATES] = {0};
    for (size_t v = 0; v < nc; v++) {
        const cp_compressor_ops_t *k = c[v].cfg.codec;
        cp_params_t p = c[v].cfg.params;
        if (done[v])
            continue;
        if (k->caps & CP_CODEC_IDENTITY) { /* sends x as it is */
            err[v] = 0;
            continue;
        }
        if (k->adapt_errors) {
            /* Every candidate of this codec at once (top-k: one
             * selection for every density). */
            cp_params_t ps[CP_LGRECO_MAX_CANDIDATES];
            double e[CP_LGRECO_MAX_CANDIDATES];
            size_t at[CP_LGRECO_MAX_CANDIDATES], m = 0;
            for (size_t w = v; w < nc; w++)
                if (c[w].cfg.codec == k) {
                    ps[m] = c[w].cfg.params;
                    ps[m].seed = ps[m].shared_seed = 0x4c47726543ull;
                    at[m++] = w;
                }
            CP_CHECK(k->adapt_errors(ps, m, x, n, e, scratch));
            for (size_t j = 0; j < m; j++)
                err[at[j]] = e[j], done[at[j]] = 1;
            continue;
        }
        const size_t cap = k->max_size(&p, n);
        size_t len = 0;
        p.seed = p.shared_seed = 0x4c47726543ull; /* fixed: one measurement */
        cp_status_t st = k->encode(&p, x, n, msg, cap, &len, msg + UP64(cap));
        if (st == CP_ERR_RANGE) { /* sent exact (collectives/slot.h) */
            err[v] = 0;
            continue;
        }
        CP_CHECK(st);
        CP_CHECK(k->decode(&p, msg, len, 1.0f, NULL, y, n));
        double e = 0;
        for (size_t i = 0; i < n; i++) {
            const double d = (double)y[i] - (double)x[i];
            e += d * d;
        }
        err[v] = sqrt(e);
    }
    return CP_OK;
}
