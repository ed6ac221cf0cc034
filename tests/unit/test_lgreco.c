/* L-GreCo's planner (collectives/lgreco.c) against brute force: on small
 * random instances the DP's plan is the exact optimum of the discretized
 * problem, fits the budget in true error, and is never beaten by any
 * other choice; edge cases (nothing fits, a zero budget, ties). */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "collectives/lgreco.h"
#include "collectives/slot.h"
#include "compressors/compressor.h"
#include "testutil.h"

/* The smallest total size over all V^L choices whose units sum <= B;
 * INF when none. */
static uint64_t brute(const cp_lgreco_problem_t *p)
{
    const size_t L = p->nlayers, V = p->ncand;
    uint64_t best = UINT64_MAX;
    size_t combos = 1;
    for (size_t l = 0; l < L; l++)
        combos *= V;
    for (size_t c = 0; c < combos; c++) {
        size_t k = c, units = 0;
        uint64_t size = 0;
        int ok = 1;
        for (size_t l = 0; l < L; l++, k /= V) {
            const size_t v = k % V;
            uint32_t u = cp_lgreco_units(p->err[l * V + v], p->budget, p->bins);
            if (u == UINT32_MAX) {
                ok = 0;
                break;
            }
            units += u;
            size += p->size[l * V + v];
        }
        if (ok && units <= p->bins && size < best)
            best = size;
    }
    return best;
}

Test(lgreco, dp_equals_brute_force)
{
    uint64_t s = 7;
    int solved = 0, infeasible = 0;
    for (int it = 0; it < 3000; it++) {
        const size_t L = 1 + tu_next(&s) % 5, V = 1 + tu_next(&s) % 5;
        const size_t B = 1 + tu_next(&s) % (it % 3 == 0 ? 20 : 400);
        double err[25];
        uint64_t size[25];
        double e0 = 0;
        for (size_t i = 0; i < L * V; i++) {
            /* Errors fall as sizes grow, as with real codecs, but not
             * always (noise), and some are exactly 0. */
            const size_t v = i % V;
            err[i] = (tu_next(&s) % 7 == 0) ? 0.0
                     : (double)(tu_next(&s) % 1000) / (1.0 + (double)v);
            size[i] = 1 + tu_next(&s) % 50 + 40 * v;
        }
        for (size_t l = 0; l < L; l++)
            e0 += err[l * V + (V - 1) / 2]; /* the "uniform" setting */
        const double alpha = (double)(1 + tu_next(&s) % 20) / 10.0;
        cp_lgreco_problem_t p = {.nlayers = L, .ncand = V, .err = err,
                                 .size = size, .budget = alpha * e0, .bins = B};
        void *scratch = malloc(cp_lgreco_scratch(L, B));
        uint8_t choice[5];
        uint64_t total = 0;
        cp_status_t st = cp_lgreco_solve(&p, scratch, choice, &total);
        const uint64_t want = brute(&p);
        if (want == UINT64_MAX) {
            cr_assert_eq(st, CP_ERR_RANGE, "it %d: a plan where none fits", it);
            infeasible++;
        } else {
            cr_assert_eq(st, CP_OK, "it %d: st %d", it, st);
            cr_assert_eq(total, want, "it %d: DP %llu, optimum %llu", it,
                         (unsigned long long)total, (unsigned long long)want);
            uint64_t sz = 0;
            double e = 0;
            size_t units = 0;
            for (size_t l = 0; l < L; l++) {
                cr_assert_lt(choice[l], V);
                sz += size[l * V + choice[l]];
                e += err[l * V + choice[l]];
                units += cp_lgreco_units(err[l * V + choice[l]], p.budget, B);
            }
            cr_assert_eq(sz, total, "it %d: the backtracked plan's size", it);
            cr_assert_leq(units, B);
            /* Units round up: the true error is within the budget. */
            cr_assert_leq(e, p.budget * (1 + 1e-12), "it %d: error %g > budget %g",
                          it, e, p.budget);
            solved++;
        }
        free(scratch);
    }
    cr_assert_gt(solved, 1000);
    cr_assert_gt(infeasible, 10);
}

Test(lgreco, edges)
{
    /* One layer, three settings: the smallest that fits. */
    double err[3] = {9.0, 4.0, 1.0};
    uint64_t size[3] = {10, 20, 40};
    uint8_t choice[2];
    uint64_t total;
    void *scratch = malloc(cp_lgreco_scratch(2, 1200));
    cp_lgreco_problem_t p = {.nlayers = 1, .ncand = 3, .err = err, .size = size,
                             .budget = 4.0, .bins = 100};
    cr_assert_eq(cp_lgreco_solve(&p, scratch, choice, &total), CP_OK);
    cr_assert(choice[0] == 1 && total == 20);
    p.budget = 0.5; /* nothing fits */
    cr_assert_eq(cp_lgreco_solve(&p, scratch, choice, &total), CP_ERR_RANGE);
    /* Zero budget: only error-free candidates. */
    double err0[3] = {1.0, 0.0, 0.0};
    p.err = err0, p.budget = 0;
    cr_assert_eq(cp_lgreco_solve(&p, scratch, choice, &total), CP_OK);
    cr_assert(choice[0] == 1 && total == 20);
    /* Ties: the smaller index. */
    uint64_t same[3] = {5, 5, 5};
    double zero[3] = {0, 0, 0};
    p.err = zero, p.size = same, p.budget = 1;
    cr_assert_eq(cp_lgreco_solve(&p, scratch, choice, &total), CP_OK);
    cr_assert_eq(choice[0], 0);
    /* Two layers share the budget: the layer whose error is cheap to cut
     * gets the bytes. */
    double e2[4] = {10.0, 1.0, 10.0, 9.0};  /* layer 0: 10 -> 1; layer 1: 10 -> 9 */
    uint64_t s2[4] = {1, 2, 1, 2};
    cp_lgreco_problem_t q = {.nlayers = 2, .ncand = 2, .err = e2, .size = s2,
                             .budget = 12.0, .bins = 1200};
    cr_assert_eq(cp_lgreco_solve(&q, scratch, choice, &total), CP_OK);
    cr_assert(choice[0] == 1 && choice[1] == 0 && total == 3);
    /* Invalid problems. */
    q.budget = NAN;
    cr_assert_eq(cp_lgreco_solve(&q, scratch, choice, &total), CP_ERR_INVALID);
    q.budget = 1, q.ncand = CP_LGRECO_MAX_CANDIDATES + 1;
    cr_assert_eq(cp_lgreco_solve(&q, scratch, choice, &total), CP_ERR_INVALID);
    free(scratch);
}

/* ---- candidates and their error table ---- */

#include "collectives/coll_config.h"

static cp_coll_config_t config(const char *settings)
{
    cp_coll_settings_t s;
    cp_coll_config_t c;
    cp_coll_settings_defaults(&s);
    cr_assert_eq(cp_coll_settings_apply(&s, settings, NULL, 0), CP_OK, "%s", settings);
    cr_assert_eq(cp_coll_build(&s, &c, NULL, 0), CP_OK);
    return c;
}

Test(lgreco, candidates_of_each_family)
{
    cp_lgreco_cand_t c[CP_LGRECO_MAX_CANDIDATES];
    size_t v0, n;
    cp_coll_config_t q = config("COMMPRESS_COMPRESSOR=quant COMMPRESS_BITS=4");
    n = cp_lgreco_candidates(&q, c, &v0);
    cr_assert_eq(n, 9); /* bits 2..8, fp16, none */
    cr_assert_str_eq(c[v0].name, "quant bits=4");
    cr_assert_str_eq(c[0].name, "quant bits=2");
    cr_assert_str_eq(c[6].name, "quant bits=8");
    cr_assert_str_eq(c[7].name, "fp16");
    cr_assert_str_eq(c[8].name, "none");
    cr_assert_eq(c[8].cfg.feedback, q.feedback); /* feedback unchanged */
    cp_coll_config_t t = config("COMMPRESS_COMPRESSOR=topk COMMPRESS_DENSITY=0.01");
    n = cp_lgreco_candidates(&t, c, &v0);
    cr_assert_eq(n, 7);
    cr_assert_eq(v0, 2);
    cr_assert_str_eq(c[0].name, "topk density=0.0025");
    cr_assert_str_eq(c[4].name, "topk density=0.04");
    /* Densities stop at 1. */
    cp_coll_config_t t4 = config("COMMPRESS_COMPRESSOR=topk COMMPRESS_DENSITY=0.4");
    n = cp_lgreco_candidates(&t4, c, &v0);
    cr_assert_eq(n, 6); /* 0.1 0.2 0.4 0.8, fp16, none */
    cr_assert_eq(v0, 2);
    cp_coll_config_t sg = config("COMMPRESS_COMPRESSOR=sign");
    n = cp_lgreco_candidates(&sg, c, &v0);
    cr_assert(n == 3 && v0 == 0);
    cr_assert_str_eq(c[0].name, "sign");
    cp_coll_config_t h = config("COMMPRESS_COMPRESSOR=fp16");
    n = cp_lgreco_candidates(&h, c, &v0);
    cr_assert(n == 2 && v0 == 0);
    cr_assert_str_eq(c[1].name, "none");
    cp_coll_config_t d = config("COMMPRESS_COMPRESSOR=dgc");
    n = cp_lgreco_candidates(&d, c, &v0);
    cr_assert(n == 7 && v0 == 2);
}

/* The table: none's error is 0 and its size the dense exchange; quant's
 * error falls and its size grows with the bits; top-k's error is exactly
 * sqrt(||x||^2 - the k largest squares) with exact selection; sizes are
 * the collectives' slots. */
Test(lgreco, measure_errors_and_sizes)
{
    const size_t n = 10000;
    float *x = tu_gradient(n, 3);
    cp_lgreco_cand_t c[CP_LGRECO_MAX_CANDIDATES];
    double err[CP_LGRECO_MAX_CANDIDATES];
    uint64_t size[CP_LGRECO_MAX_CANDIDATES];
    size_t v0;
    cp_coll_config_t q = config("COMMPRESS_COMPRESSOR=quant");
    size_t nc = cp_lgreco_candidates(&q, c, &v0);
    void *scratch = malloc(cp_lgreco_measure_scratch(c, nc, n));
    cr_assert_eq(cp_lgreco_measure(c, nc, x, n, 4, err, size, scratch), CP_OK);
    for (size_t v = 1; v < 7; v++) {
        cr_assert_lt(err[v], err[v - 1], "bits %zu", v + 2);
        cr_assert_gt(size[v], size[v - 1]);
    }
    cr_assert_eq(err[8], 0.0);
    /* none: two exchanges of 3 slots of the largest chunk (2500 floats). */
    cr_assert_eq(size[8], 2 * 3 * cp_slot_size(2500 * 4));
    cr_assert_lt(err[7], err[6]); /* fp16 beats 8 bits */
    cr_assert_lt(size[7], size[8]);
    free(scratch);

    cp_coll_config_t t = config("COMMPRESS_COMPRESSOR=topk COMMPRESS_DENSITY=0.01 "
                                "COMMPRESS_TOPK_SELECT=exact");
    nc = cp_lgreco_candidates(&t, c, &v0);
    scratch = malloc(cp_lgreco_measure_scratch(c, nc, n));
    cr_assert_eq(cp_lgreco_measure(c, nc, x, n, 4, err, size, scratch), CP_OK);
    double *sq = malloc(n * sizeof(double)), all = 0;
    for (size_t i = 0; i < n; i++)
        all += sq[i] = (double)x[i] * x[i];
    for (size_t i = 1; i < n; i++) /* descending, insertion sort */
        for (size_t j = i; j > 0 && sq[j] > sq[j - 1]; j--) {
            double tmp = sq[j];
            sq[j] = sq[j - 1], sq[j - 1] = tmp;
        }
    for (size_t v = 0; v < 5; v++) {
        const size_t k = cp_topk_k(c[v].cfg.params.density, n);
        double kept = 0;
        for (size_t i = 0; i < k; i++)
            kept += sq[i];
        cr_assert_float_eq(err[v], sqrt(all - kept), 1e-6 * sqrt(all),
                           "density %g: %g vs %g", c[v].cfg.params.density,
                           err[v], sqrt(all - kept));
        /* The sparse allgather: 3 slots of k entries. */
        cr_assert_eq(size[v], 3 * cp_slot_size(cp_sparse_max_size(k, 0)));
    }
    free(sq), free(scratch), free(x);
}

/* cfg's candidates' errors from cp_lgreco_errors equal each candidate's
 * encode and decode. */
static void check_errors_at_once(const char *cfg, const float *x, size_t n)
{
    float *y = malloc(n * sizeof(float));
    cp_lgreco_cand_t c[CP_LGRECO_MAX_CANDIDATES];
    double err[CP_LGRECO_MAX_CANDIDATES];
    size_t v0;
    cp_coll_config_t t = config(cfg);
    const size_t nc = cp_lgreco_candidates(&t, c, &v0);
    void *scratch = malloc(cp_lgreco_measure_scratch(c, nc, n));
    cr_assert_eq(cp_lgreco_errors(c, nc, x, n, err, scratch), CP_OK);
    for (size_t v = 0; v < nc; v++) {
        const cp_compressor_ops_t *k = c[v].cfg.codec;
        cp_params_t p = c[v].cfg.params;
        p.seed = p.shared_seed = 0x4c47726543ull; /* cp_lgreco_errors's */
        const size_t cap = k->max_size(&p, n);
        unsigned char *msg = malloc(cap);
        void *es = malloc(k->scratch_size(&p, n) + 1);
        size_t len;
        double e = 0;
        const cp_status_t st = k->encode(&p, x, n, msg, cap, &len, es);
        cr_assert(st == CP_OK || st == CP_ERR_RANGE, "%s: encode %d", c[v].name, st);
        if (st == CP_OK) { /* CP_ERR_RANGE: sent exact, error 0 */
            cr_assert_eq(k->decode(&p, msg, len, 1.0f, NULL, y, n), CP_OK);
            for (size_t i = 0; i < n; i++)
                e += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
        }
        cr_assert_float_eq(err[v], sqrt(e), 1e-9 * (sqrt(e) + 1e-30),
                           "%s, %s: %.12g vs encode/decode %.12g", cfg, c[v].name,
                           err[v], sqrt(e));
        free(msg), free(es);
    }
    free(scratch), free(y);
}

/* The codecs' errors of every setting at once (adapt_errors) equal each
 * setting's encode and decode: top-k's and DGC's from one selection, with
 * f32 and fp16 values, ties included; quant's every bit width from one
 * pass, nearest and stochastic, buckets that split bytes, and a range
 * beyond FLT_MAX (sent exact: 0). */
Test(lgreco, errors_at_once_equal_encode_decode)
{
    const size_t n = 20000;
    float *x = tu_gradient(n, 5);
    for (size_t i = 0; i < n; i += 97) /* ties at every magnitude */
        x[i] = (i % 2 ? -1 : 1) * 0.0625f;
    static const char *const cfgs[] = {
        "COMMPRESS_COMPRESSOR=topk COMMPRESS_TOPK_SELECT=exact",
        "COMMPRESS_COMPRESSOR=topk COMMPRESS_TOPK_SELECT=exact COMMPRESS_TOPK_VALUES=fp16",
        "COMMPRESS_COMPRESSOR=dgc COMMPRESS_TOPK_SELECT=exact",
        "COMMPRESS_COMPRESSOR=quant",
        "COMMPRESS_COMPRESSOR=quant COMMPRESS_ROUNDING=stochastic COMMPRESS_BUCKET=100",
        "COMMPRESS_COMPRESSOR=quant COMMPRESS_BITS=1 COMMPRESS_BUCKET=37"};
    for (size_t f = 0; f < sizeof(cfgs) / sizeof(*cfgs); f++)
        check_errors_at_once(cfgs[f], x, n);
    x[0] = -FLT_MAX, x[1] = FLT_MAX; /* one bucket spanning the float range */
    check_errors_at_once("COMMPRESS_COMPRESSOR=quant", x, n);
    free(x);
}
