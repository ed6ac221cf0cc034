#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "compressors/feedback.h"
#include "testutil.h"

static const cp_fb_params_t fp0 = {0.9f, 0.0};

static const cp_compressor_ops_t *codecs[] = {
    &cp_compressor_none, &cp_compressor_fp16, &cp_compressor_bf16,
    &cp_compressor_topk, &cp_compressor_sign, &cp_compressor_quant};

/* EF keeps exactly what was not sent: e_new + D(sent) == e_old + g, up to
 * one rounding of the subtraction e_new = v - d (|err| <= ulp(v)/2 <=
 * eps/2 |v|) since v = e_old + g is what was encoded. Repeated over steps
 * so e_old is non-trivial. */
Test(feedback, ef_keeps_what_was_not_sent)
{
    const size_t n = 3001;
    for (size_t c = 0; c < sizeof(codecs) / sizeof(*codecs); c++) {
        cp_params_t p = tu_params();
        float *e = calloc(n, sizeof(float)), *work = malloc(n * sizeof(float));
        float *d = malloc(n * sizeof(float)), *e_old = malloc(n * sizeof(float));
        for (int step = 0; step < 5; step++) {
            float *g = tu_gradient(n, 100 * c + step);
            int bad = 1;
            size_t len;
            memcpy(e_old, e, n * sizeof(float));
            const float *v = cp_feedback_ef.prepare(&fp0, e, g, work, NULL, n, &bad);
            cr_assert_eq(bad, 0);
            cr_assert_eq(memcmp(e, e_old, n * sizeof(float)), 0, "prepare changed state");
            unsigned char *m = tu_encode(codecs[c], &p, v, n, &len);
            cr_assert_eq(codecs[c]->decode(&p, m, len, 1.0f, NULL, d, n), CP_OK);
            cr_assert_eq(cp_feedback_ef.commit(&fp0, e, v, NULL, codecs[c], &p, m, len, n), CP_OK);
            for (size_t i = 0; i < n; i++) {
                float lhs = e[i] + d[i];
                float rhs = e_old[i] + g[i];
                cr_assert_eq(v[i], rhs); /* v is exactly e_old + g */
                double tol = FLT_EPSILON * (fabs(rhs) + fabs(d[i]) + fabs(e[i]));
                cr_assert_leq(fabs((double)lhs - rhs), tol,
                              "%s step %d i %zu: %g vs %g", codecs[c]->name,
                              step, i, lhs, rhs);
            }
            free(g), free(m);
        }
        free(e), free(work), free(d), free(e_old);
    }
}

/* With top-k the identity is exact: sent entries leave e at exactly 0,
 * unsent ones keep v exactly. */
Test(feedback, ef_topk_exact)
{
    const size_t n = 1000;
    cp_params_t p = tu_params();
    float *e = calloc(n, sizeof(float)), *work = malloc(n * sizeof(float));
    float *g = tu_gradient(n, 1), d[1000];
    int bad;
    size_t len;
    const float *v = cp_feedback_ef.prepare(&fp0, e, g, work, NULL, n, &bad);
    unsigned char *m = tu_encode(&cp_compressor_topk, &p, v, n, &len);
    cp_compressor_topk.decode(&p, m, len, 1.0f, NULL, d, n);
    cp_feedback_ef.commit(&fp0, e, v, NULL, &cp_compressor_topk, &p, m, len, n);
    size_t zeros = 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i] != 0.0f) {
            cr_assert_eq(e[i], 0.0f);
            zeros++;
        } else {
            cr_assert_eq(e[i], g[i]);
        }
    }
    cr_assert_eq(zeros, 10);
    free(e), free(work), free(g), free(m);
}

Test(feedback, nonfinite_detected_state_untouched)
{
    const cp_feedback_ops_t *fbs[] = {&cp_feedback_none, &cp_feedback_ef,
                                      &cp_feedback_dgc};
    float vals[] = {NAN, INFINITY, -INFINITY};
    for (int f = 0; f < 3; f++)
        for (int k = 0; k < 3; k++) {
            float e[128] = {0}, g[64], work[64], aux[64];
            int bad = 0;
            for (int i = 0; i < 128; i++)
                e[i] = 0.5f;
            for (int i = 0; i < 64; i++)
                g[i] = (float)i;
            g[37] = vals[k];
            fbs[f]->prepare(&fp0, e, g, work, aux, 64, &bad);
            cr_assert_eq(bad, 1);
            for (int i = 0; i < 128; i++)
                cr_assert_eq(e[i], 0.5f);
            g[37] = 1.0f;
            fbs[f]->prepare(&fp0, e, g, work, aux, 64, &bad);
            cr_assert_eq(bad, 0);
        }
}

Test(feedback, registry)
{
    cr_assert_eq(cp_feedback_find("ef"), &cp_feedback_ef);
    cr_assert_eq(cp_feedback_find("none"), &cp_feedback_none);
    cr_assert_null(cp_feedback_find("ef22"));
    cr_assert_eq(cp_feedback_ef.state_floats(10), 10);
    cr_assert_eq(cp_feedback_none.state_floats(10), 0);
    for (size_t c = 0; c < 6; c++)
        cr_assert_eq(cp_compressor_find(codecs[c]->name), codecs[c]);
    cr_assert_null(cp_compressor_find("zip"));
}
