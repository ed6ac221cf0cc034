#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "compressors/feedback.h"
#include "testutil.h"
#include "tests/common/codecs.h"

static const cp_fb_params_t fp0 = {.momentum = 0.9f, .eta = 0.1f};

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
    for (size_t c = 0; c < sizeof(codecs) / sizeof(*codecs) + 1; c++) {
        /* The extra round: topk with fp16 values. */
        const int f16 = c == sizeof(codecs) / sizeof(*codecs);
        const cp_compressor_ops_t *codec = f16 ? &cp_compressor_topk : codecs[c];
        cp_params_t p = tu_params();
        p.topk_fp16 = f16;
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
            unsigned char *m = tu_encode(codec, &p, v, n, &len);
            cr_assert_eq(codec->decode(&p, m, len, 1.0f, NULL, d, n), CP_OK);
            cr_assert_eq(cp_feedback_ef.commit(&fp0, e, v, NULL, NULL, codec, &p, m, len, n), CP_OK);
            for (size_t i = 0; i < n; i++) {
                float lhs = e[i] + d[i];
                float rhs = e_old[i] + g[i];
                cr_assert_eq(v[i], rhs); /* v is exactly e_old + g */
                double tol = FLT_EPSILON * (fabs(rhs) + fabs(d[i]) + fabs(e[i]));
                cr_assert_leq(fabs((double)lhs - rhs), tol,
                              "%s step %d i %zu: %g vs %g", codec->name,
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
    cp_feedback_ef.commit(&fp0, e, v, NULL, NULL, &cp_compressor_topk, &p, m, len, n);
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
                                      &cp_feedback_dgc, &cp_feedback_ef21,
                                      &cp_feedback_econtrol};
    float vals[] = {NAN, INFINITY, -INFINITY};
    for (int f = 0; f < 5; f++)
        for (int k = 0; k < 3; k++) {
            float e[192] = {0}, g[64], work[64], aux[64];
            int bad = 0;
            for (int i = 0; i < 192; i++)
                e[i] = 0.5f;
            for (int i = 0; i < 64; i++)
                g[i] = (float)i;
            g[37] = vals[k];
            fbs[f]->prepare(&fp0, e, g, work, aux, 64, &bad);
            cr_assert_eq(bad, 1);
            for (int i = 0; i < 192; i++)
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

/* EF21 and EControl, several steps of one rank, against a direct
 * transcription of ALGORITHMS.md in SUM form (exact):
 *   EF21:     Delta = C(g - h); h += Delta; H += S; result H
 *   EControl: w = g - h; Delta = C(eta e + w); e = (e + w) - Delta;
 *             h += Delta; H += S; result H
 * S, the decoded sum over ranks, is this rank's Delta plus the other
 * ranks' (a fixed vector here). Codecs: quant (dense, lossy) and topk. */
static void estimator_steps(const cp_feedback_ops_t *fb, float eta,
                            const cp_compressor_ops_t *codec)
{
    const size_t n = 777, sf = fb->state_floats(1);
    const int ec = fb == &cp_feedback_econtrol;
    cp_params_t p = tu_params();
    cp_fb_params_t fp = {.eta = eta};
    float *st = calloc(sf * n, 4), *work = malloc(n * 4), *aux = malloc(n * 4);
    float *tmp = malloc(n * 4), *d = malloc(n * 4), *out = malloc(n * 4);
    float *e = calloc(n, 4), *h = calloc(n, 4), *H = calloc(n, 4);
    float *others = tu_gradient(n, 999);

    for (int t = 0; t < 5; t++) {
        float *g = tu_gradient(n, 50 + (uint64_t)t);
        int bad = 1;
        size_t len;
        const float *v = fb->prepare(&fp, st, g, work, aux, n, &bad);
        cr_assert_eq(bad, 0);
        for (size_t i = 0; i < n; i++) {
            float w = g[i] - h[i];
            cr_assert_eq(v[i], ec ? eta * e[i] + w : w, "%s step %d i %zu", fb->name, t, i);
        }
        unsigned char *m = tu_encode(codec, &p, v, n, &len);
        cr_assert_eq(codec->decode(&p, m, len, 1.0f, NULL, d, n), CP_OK);
        cr_assert_eq(fb->commit(&fp, st, v, aux, tmp, codec, &p, m, len, n), CP_OK);
        for (size_t i = 0; i < n; i++) {
            if (ec)
                e[i] = (e[i] + (g[i] - h[i])) - d[i];
            h[i] = h[i] + d[i];
            out[i] = d[i] + others[i];
            H[i] = H[i] + out[i];
        }
        fb->finish(st, out, n);
        for (size_t i = 0; i < n; i++) {
            cr_assert_eq(out[i], H[i], "%s step %d: result is not H", fb->name, t);
            cr_assert_eq(st[sf * i + sf - 1], H[i]);
            cr_assert_eq(st[sf * i + sf - 2], h[i], "%s step %d: h", fb->name, t);
            if (ec)
                cr_assert_eq(st[sf * i], e[i], "econtrol step %d: e", t);
        }
        free(g), free(m);
    }
    free(st), free(work), free(aux), free(tmp), free(d), free(out);
    free(e), free(h), free(H), free(others);
}

Test(feedback, ef21_matches_the_formulas)
{
    estimator_steps(&cp_feedback_ef21, 0.0f, &cp_compressor_quant);
    estimator_steps(&cp_feedback_ef21, 0.0f, &cp_compressor_topk);
}

Test(feedback, econtrol_matches_the_formulas)
{
    estimator_steps(&cp_feedback_econtrol, 0.3f, &cp_compressor_quant);
    estimator_steps(&cp_feedback_econtrol, 0.05f, &cp_compressor_topk);
}

/* EControl with eta = 0 and a compressed first step is EF21: the same
 * messages, h and H, bit for bit. */
Test(feedback, econtrol_eta0_is_ef21)
{
    const size_t n = 1000;
    cp_params_t p = tu_params();
    cp_fb_params_t fp = {.eta = 0.0f};
    float *s21 = calloc(2 * n, 4), *sec = calloc(3 * n, 4);
    float *w1 = malloc(n * 4), *w2 = malloc(n * 4), *aux = malloc(n * 4);
    float *tmp = malloc(n * 4), *o1 = malloc(n * 4), *o2 = malloc(n * 4);
    for (int t = 0; t < 6; t++) {
        float *g = tu_gradient(n, 300 + (uint64_t)t);
        int bad;
        size_t l1, l2;
        const float *v1 = cp_feedback_ef21.prepare(&fp, s21, g, w1, NULL, n, &bad);
        const float *v2 = cp_feedback_econtrol.prepare(&fp, sec, g, w2, aux, n, &bad);
        unsigned char *m1 = tu_encode(&cp_compressor_topk, &p, v1, n, &l1);
        unsigned char *m2 = tu_encode(&cp_compressor_topk, &p, v2, n, &l2);
        cr_assert(l1 == l2 && memcmp(m1, m2, l1) == 0, "step %d: messages differ", t);
        cp_feedback_ef21.commit(&fp, s21, v1, NULL, tmp, &cp_compressor_topk, &p, m1, l1, n);
        cp_feedback_econtrol.commit(&fp, sec, v2, aux, tmp, &cp_compressor_topk, &p, m2, l2, n);
        cp_compressor_topk.decode(&p, m1, l1, 1.0f, NULL, o1, n);
        memcpy(o2, o1, n * 4);
        cp_feedback_ef21.finish(s21, o1, n);
        cp_feedback_econtrol.finish(sec, o2, n);
        cr_assert_eq(memcmp(o1, o2, n * 4), 0);
        for (size_t i = 0; i < n; i++) {
            cr_assert_eq(s21[2 * i], sec[3 * i + 1]);
            cr_assert_eq(s21[2 * i + 1], sec[3 * i + 2]);
        }
        free(g), free(m1), free(m2);
    }
    free(s21), free(sec), free(w1), free(w2), free(aux), free(tmp), free(o1), free(o2);
}

/* EControl with h = 0 and eta = 1 is EF for a step: the same vector to
 * compress and the same error afterwards. */
Test(feedback, econtrol_h0_eta1_is_ef)
{
    const size_t n = 500;
    cp_params_t p = tu_params();
    cp_fb_params_t fp = {.eta = 1.0f};
    float *sec = calloc(3 * n, 4), *e = malloc(n * 4), *w1 = malloc(n * 4);
    float *w2 = malloc(n * 4), *aux = malloc(n * 4), *tmp = malloc(n * 4);
    float *err = tu_gradient(n, 5), *g = tu_gradient(n, 6);
    int bad;
    size_t len;
    for (size_t i = 0; i < n; i++)
        sec[3 * i] = e[i] = err[i];
    const float *v1 = cp_feedback_ef.prepare(&fp, e, g, w1, NULL, n, &bad);
    const float *v2 = cp_feedback_econtrol.prepare(&fp, sec, g, w2, aux, n, &bad);
    cr_assert_eq(memcmp(v1, v2, n * 4), 0);
    unsigned char *m = tu_encode(&cp_compressor_quant, &p, v1, n, &len);
    cp_feedback_ef.commit(&fp, e, v1, NULL, NULL, &cp_compressor_quant, &p, m, len, n);
    cp_feedback_econtrol.commit(&fp, sec, v2, aux, tmp, &cp_compressor_quant, &p, m, len, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(sec[3 * i], e[i], "i %zu", i);
    free(sec), free(e), free(w1), free(w2), free(aux), free(tmp), free(err), free(g), free(m);
}

/* EF21-SGDM, step by step against its formulas (SUM form, exact):
 *   v = (1 - eta) v + eta g (v = g on the first step); Delta = C(v - h);
 *   h += Delta; H += S; result H.
 * With eta = 1 it is EF21 (v = g): the same messages and h, bit for bit. */
static void sgdm_steps(float eta, const cp_compressor_ops_t *codec)
{
    const size_t n = 777;
    cp_params_t p = tu_params();
    cp_fb_params_t fp = {.sgdm_eta = eta};
    float *st = calloc(3 * n, 4), *work = malloc(n * 4), *aux = malloc(n * 4);
    float *tmp = malloc(n * 4), *d = malloc(n * 4), *out = malloc(n * 4);
    float *v = calloc(n, 4), *h = calloc(n, 4), *H = calloc(n, 4);
    float *s21 = calloc(2 * n, 4), *w21 = malloc(n * 4);
    float *others = tu_gradient(n, 998);

    for (int t = 0; t < 6; t++) {
        float *g = tu_gradient(n, 70 + (uint64_t)t);
        int bad = 1;
        size_t len, len21;
        fp.first = t == 0;
        const float *x = cp_feedback_ef21_sgdm.prepare(&fp, st, g, work, aux, n, &bad);
        cr_assert_eq(bad, 0);
        for (size_t i = 0; i < n; i++) {
            v[i] = t == 0 ? g[i] : (1.0f - eta) * v[i] + eta * g[i];
            cr_assert_eq(x[i], v[i] - h[i], "step %d i %zu", t, i);
        }
        unsigned char *m = tu_encode(codec, &p, x, n, &len);
        cr_assert_eq(codec->decode(&p, m, len, 1.0f, NULL, d, n), CP_OK);
        cr_assert_eq(cp_feedback_ef21_sgdm.commit(&fp, st, x, aux, tmp, codec, &p, m, len, n), CP_OK);
        for (size_t i = 0; i < n; i++) {
            h[i] = h[i] + d[i];
            out[i] = d[i] + others[i];
            H[i] = H[i] + out[i];
        }
        cp_feedback_ef21_sgdm.finish(st, out, n);
        for (size_t i = 0; i < n; i++) {
            cr_assert_eq(out[i], H[i], "step %d: result is not H", t);
            cr_assert_eq(st[3 * i], v[i], "step %d: v", t);
            cr_assert_eq(st[3 * i + 1], h[i], "step %d: h", t);
        }
        if (eta == 1.0f) {
            const float *x21 = cp_feedback_ef21.prepare(&fp, s21, g, w21, NULL, n, &bad);
            unsigned char *m21 = tu_encode(codec, &p, x21, n, &len21);
            cr_assert(len21 == len && memcmp(m, m21, len) == 0, "eta 1: not EF21");
            cp_feedback_ef21.commit(&fp, s21, x21, NULL, tmp, codec, &p, m21, len21, n);
            for (size_t i = 0; i < n; i++)
                cr_assert_eq(s21[2 * i], st[3 * i + 1]);
            free(m21);
        }
        free(g), free(m);
    }
    free(st), free(work), free(aux), free(tmp), free(d), free(out);
    free(v), free(h), free(H), free(s21), free(w21), free(others);
}

Test(feedback, ef21_sgdm_matches_the_formulas)
{
    sgdm_steps(0.1f, &cp_compressor_quant);
    sgdm_steps(0.25f, &cp_compressor_topk);
    sgdm_steps(1.0f, &cp_compressor_topk);
}
