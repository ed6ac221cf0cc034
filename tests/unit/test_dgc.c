/* DGC (feedback_dgc.c, cp_step_params): each rule against a direct
 * transcription of ALGORITHMS.md "DGC", exact. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "collectives/allreduce.h"
#include "compressors/topk.h"
#include "testutil.h"
#include "tests/common/codecs.h"

/* One DGC step by the book, in the same float operations:
 * u <- m u + s g; v <- v + u; send top-k(v); zero u, v where sent. */
static void reference_step(float *u, float *v, const float *g, size_t n,
                           float m, float s, const float *sent_mask)
{
    for (size_t i = 0; i < n; i++) {
        u[i] = m * u[i] + s * g[i];
        v[i] = v[i] + u[i];
        if (sent_mask[i] != 0.0f)
            u[i] = 0.0f, v[i] = 0.0f;
    }
}

static void run_steps(double clip, size_t n, int steps, float m)
{
    cp_params_t p = tu_params();
    cp_fb_params_t fp = {.momentum = m, .clip = clip};
    float *st = calloc(2 * n, sizeof(float)), *work = malloc(n * 4);
    float *aux = malloc(n * 4), *d = malloc(n * 4), *before = malloc(2 * n * 4);
    float *u = calloc(n, 4), *v = calloc(n, 4);
    p.density = 0.02;

    for (int t = 0; t < steps; t++) {
        float *g = tu_gradient(n, 7 + (uint64_t)t);
        int bad = 1;
        size_t len;
        double ss = 0.0;
        for (size_t i = 0; i < n; i++)
            ss += (double)g[i] * g[i];
        float s = clip > 0 && sqrt(ss) > clip ? (float)(clip / sqrt(ss)) : 1.0f;

        memcpy(before, st, 2 * n * 4);
        const float *x = cp_feedback_dgc.prepare(&fp, st, g, work, aux, n, &bad);
        cr_assert_eq(bad, 0);
        cr_assert_eq(memcmp(before, st, 2 * n * 4), 0, "prepare changed state");
        unsigned char *msg = tu_encode(&cp_compressor_topk, &p, x, n, &len);
        cr_assert_not_null(msg);
        cr_assert_eq(cp_compressor_topk.decode(&p, msg, len, 1.0f, NULL, d, n),
                     CP_OK);
        /* What is sent is v' = v + (m u + s g), the corrected momentum. */
        for (size_t i = 0; i < n; i++) {
            float ur = m * u[i] + s * g[i];
            cr_assert_eq(x[i], v[i] + ur, "step %d i %zu", t, i);
            cr_assert(d[i] == 0.0f || d[i] == x[i]);
        }
        cr_assert_eq(cp_feedback_dgc.commit(&fp, st, x, aux, NULL, &cp_compressor_topk,
                                            &p, msg, len, n),
                     CP_OK);
        reference_step(u, v, g, n, m, s, d);
        for (size_t i = 0; i < n; i++) {
            cr_assert_eq(st[2 * i], u[i], "u step %d i %zu", t, i);
            cr_assert_eq(st[2 * i + 1], v[i], "v step %d i %zu", t, i);
        }
        free(g), free(msg);
    }
    free(st), free(work), free(aux), free(d), free(before), free(u), free(v);
}

Test(dgc, momentum_correction_and_masking_match_the_formulas)
{
    run_steps(0.0, 2001, 6, 0.9f);
    run_steps(0.0, 517, 4, 0.0f); /* m = 0: plain accumulation (EF) */
}

Test(dgc, clipping_matches_the_formula)
{
    /* The gradients have norm about 1e-3 sqrt(n) ~ 0.045 (plus the heavy
     * tail); 0.01 clips every step, 100 none. */
    run_steps(0.01, 2001, 4, 0.9f);
    run_steps(100.0, 2001, 2, 0.9f);
}

/* Clipped gradient norm is c (up to float rounding of the scale). */
Test(dgc, clipped_norm_is_the_bound)
{
    const size_t n = 4096;
    cp_fb_params_t fp = {.clip = 0.05};
    float *st = calloc(2 * n, 4), *work = malloc(n * 4), *aux = malloc(n * 4);
    float *g = tu_gradient(n, 3);
    int bad;
    cp_feedback_dgc.prepare(&fp, st, g, work, aux, n, &bad);
    double ss = 0.0, ss0 = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += (double)aux[i] * aux[i], ss0 += (double)g[i] * g[i];
    cr_assert_gt(sqrt(ss0), 0.05);
    cr_assert_leq(fabs(sqrt(ss) - 0.05), 0.05 * 4 * FLT_EPSILON);
    free(st), free(work), free(aux), free(g);
}

/* A dense send delivers all of v: v <- 0, u kept. Over steps the values
 * sent are exactly momentum SGD's u_t = m u_{t-1} + g_t. */
Test(dgc, dense_send_is_momentum_sgd)
{
    const size_t n = 300;
    cp_params_t p = tu_params();
    cp_fb_params_t fp = {.momentum = 0.9f};
    float *st = calloc(2 * n, 4), *work = malloc(n * 4), *aux = malloc(n * 4);
    float *u = calloc(n, 4);
    for (int t = 0; t < 5; t++) {
        float *g = tu_gradient(n, 100 + (uint64_t)t);
        int bad;
        size_t len;
        const float *x = cp_feedback_dgc.prepare(&fp, st, g, work, aux, n, &bad);
        unsigned char *msg = tu_encode(&cp_compressor_none, &p, x, n, &len);
        cr_assert_eq(cp_feedback_dgc.commit(&fp, st, x, aux, NULL, &cp_compressor_none,
                                            &p, msg, len, n),
                     CP_OK);
        for (size_t i = 0; i < n; i++) {
            u[i] = 0.9f * u[i] + g[i];
            cr_assert_eq(x[i], u[i]);
            cr_assert_eq(st[2 * i], u[i]);
            cr_assert_eq(st[2 * i + 1], 0.0f);
        }
        free(g), free(msg);
    }
    free(st), free(work), free(aux), free(u);
}

/* Commit refuses a malformed own message and codecs DGC cannot mask. */
Test(dgc, commit_rejects_bad_input)
{
    cp_params_t p = tu_params();
    cp_fb_params_t fp = {.momentum = 0.9f};
    float st[8] = {0}, v[4] = {1, 2, 3, 4}, aux[4] = {1, 2, 3, 4};
    unsigned char msg[12];
    cp_put_u32(msg, 1);
    cp_put_u32(msg + 4, 4); /* index 4 of a 4-element tensor */
    cp_put_f32(msg + 8, 1.0f);
    cr_assert_eq(cp_feedback_dgc.commit(&fp, st, v, aux, NULL, &cp_compressor_topk,
                                        &p, msg, 12, 4),
                 CP_ERR_MALFORMED);
    cr_assert_eq(cp_feedback_dgc.commit(&fp, st, v, aux, NULL, &cp_compressor_sign,
                                        &p, msg, 12, 4),
                 CP_ERR_INVALID);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(st[i], 0.0f);
}

static cp_coll_config_t dgc_config(void)
{
    cp_coll_config_t c;
    memset(&c, 0, sizeof(c));
    c.codec = &cp_compressor_topk;
    c.feedback = &cp_feedback_dgc;
    c.params = tu_params();
    c.params.density = 0.001;
    return c;
}

/* Warm-up: 0.25 (D / 0.25)^(t / W) for t < W, then D; no warm-up for other
 * feedback or W = 0. */
Test(dgc, warmup_schedule)
{
    cp_coll_config_t c = dgc_config();
    c.fb.warmup_steps = 4;
    /* Geometric: step 2 of 4 is the geometric mean of 0.25 and D. */
    const double want[] = {0.25, 0.25 * pow(0.004, 0.25), sqrt(0.25 * 0.001),
                           0.25 * pow(0.004, 0.75), 0.001, 0.001};
    for (uint64_t t = 0; t < 6; t++)
        cr_assert_float_eq(cp_step_params(&c, t).density, want[t], 1e-15,
                           "step %llu", (unsigned long long)t);
    double prev = 1.0;
    c.fb.warmup_steps = 1000;
    for (uint64_t t = 0; t < 1000; t++) {
        double d = cp_step_params(&c, t).density;
        cr_assert_lt(d, prev);
        cr_assert_geq(d, 0.001);
        prev = d;
    }
    c.fb.warmup_steps = 0;
    cr_assert_eq(cp_step_params(&c, 0).density, 0.001);
    c.fb.warmup_steps = 10;
    c.feedback = &cp_feedback_ef;
    cr_assert_eq(cp_step_params(&c, 0).density, 0.001);
}

/* Small tensors go dense, whatever the algorithm setting; the clip norm is
 * split over the ranks. */
Test(dgc, small_tensors_dense_and_clip_split)
{
    cp_coll_config_t c = dgc_config();
    c.fb.dense_below = 1000;
    c.algo = CP_ALGO_SPARSE;
    c.fb.clip = 2.0;
    cr_assert_eq(cp_allreduce_choose(&c, &c.params, 5, 999, 4), CP_ALGO_DENSE);
    cr_assert_eq(cp_allreduce_choose(&c, &c.params, 5, 1000, 4), CP_ALGO_SPARSE);
    cr_assert_float_eq(cp_step_fb(&c, 4, 0).clip, 1.0, 1e-15);
    /* DGC keeps no server state, whichever algorithm runs. */
    size_t w, s;
    c.algo = CP_ALGO_AUTO;
    cp_tensor_floats(&c, 500, 4, 1, &w, &s);
    cr_assert_eq(w, 1000);
    cr_assert_eq(s, 0);
}

/* The choice between the sparse allgather, sparse_rs and dense
 * (collectives/allreduce.c, docs/scaling.md): topk at 1% of 25.6M floats
 * stays on the allgather up to 6 ranks (sparse_rs must halve its bytes,
 * latency counted), takes sparse_rs from 7, dense where k is half the
 * tensor; a forced sparse_rs stays; quant is two-phase. */
Test(dgc, sparse_rs_by_the_cost_model)
{
    cp_coll_config_t c = dgc_config();
    c.feedback = &cp_feedback_ef;
    c.params.density = 0.01;
    const size_t n = 25600000;
    const int allgather[] = {1, 2, 3, 4, 5, 6}, rs[] = {7, 8, 16, 64, 1024};
    for (size_t i = 0; i < sizeof(allgather) / sizeof(int); i++)
        cr_assert_eq(cp_allreduce_choose(&c, &c.params, 5, n, allgather[i]), CP_ALGO_SPARSE,
                     "%d ranks", allgather[i]);
    for (size_t i = 0; i < sizeof(rs) / sizeof(int); i++)
        cr_assert_eq(cp_allreduce_choose(&c, &c.params, 5, n, rs[i]), CP_ALGO_SPARSE_RS,
                     "%d ranks", rs[i]);
    /* At 8 ranks sparse_rs sends under a third of the allgather's bytes. */
    const double ag = 7.0 * (double)cp_slot_size(cp_topk_max_size(&c.params, n));
    cr_assert_lt(cp_sparse_rs_bytes(&c.params, n, 8), ag / 3);
    cr_assert_eq(cp_allreduce_wire_bytes(&c, &c.params, n, 8),
                 (size_t)cp_sparse_rs_bytes(&c.params, n, 8));
    c.params.density = 0.5;
    cr_assert_eq(cp_allreduce_choose(&c, &c.params, 5, n, 8), CP_ALGO_DENSE);
    c.params.density = 0.01;
    c.algo = CP_ALGO_SPARSE_RS;
    cr_assert_eq(cp_allreduce_choose(&c, &c.params, 5, n, 2), CP_ALGO_SPARSE_RS);
    c.algo = CP_ALGO_AUTO;
    c.codec = &cp_compressor_quant;
    cr_assert_eq(cp_allreduce_choose(&c, &c.params, 5, n, 8), CP_ALGO_TWOPHASE);
}
