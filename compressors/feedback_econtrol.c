/* EControl (Gao, Islamov, Stich, 2024; ALGORITHMS.md, "Error feedback"),
 * feedback strength eta, in the SUM form, per rank i and tensor:
 *   w = g_i - h_i;  Delta_i = C(eta e_i + w);
 *   e_i <- (e_i + w) - Delta_i;  h_i <- h_i + Delta_i;
 *   H <- H + sum_i Delta_i;  result: H  (= n hbar)
 * A tensor's first step goes uncompressed (dense_first: the collectives
 * send it with the identity codec), so h_i = g_i and H = sum g exactly.
 * eta = 0 with a compressed first step is EF21; h = 0 and eta = 1 is EF.
 * State: (e, h, H) interleaved per element; prepare leaves w in aux. */
#include <stddef.h>

#include "compressors/feedback.h"
#include "compressors/feedback_math.h"

static size_t econtrol_state_floats(size_t n) { return 3 * n; }

static const float *econtrol_prepare(const cp_fb_params_t *fp, const float *st,
                                     const float *g, float *work, float *aux,
                                     size_t n, int *nonfinite)
{
    const float eta = fp->eta;
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        float w = cp_econtrol_w(g[i], st[3 * i + 1]);
        float v = cp_econtrol_v(eta, st[3 * i], w);
        aux[i] = w;
        work[i] = v;
        bad |= (uint32_t)cp_nonfinite(v);
    }
    *nonfinite = bad != 0;
    return work;
}

static cp_status_t econtrol_commit(const cp_fb_params_t *fp, float *st,
                                   const float *v, const float *aux,
                                   float *tmp,
                                   const cp_compressor_ops_t *codec,
                                   const cp_params_t *p, const void *msg,
                                   size_t len, size_t n)
{
    (void)fp, (void)v;
    CP_CHECK(codec->decode(p, msg, len, 1.0f, NULL, tmp, n));
    for (size_t i = 0; i < n; i++) {
        st[3 * i] = cp_econtrol_e(st[3 * i], aux[i], tmp[i]);
        st[3 * i + 1] = cp_fb_add(st[3 * i + 1], tmp[i]);
    }
    return CP_OK;
}

static const cp_param_t econtrol_params[] = {
    {.name = "COMMPRESS_ECONTROL_ETA", .dflt = "0.01", .type = CP_PT_FLOAT,
     .offset = offsetof(cp_fb_params_t, eta), .lo = 0, .hi = 1, .must_match = 1,
     .doc = "econtrol: feedback strength eta of the error term."},
};

CP_GPU_FB_TWIN(cp_gpu_fb_econtrol);

const cp_feedback_ops_t cp_feedback_econtrol = {
    .gpu = &cp_gpu_fb_econtrol,
    .name = "econtrol",
    .doc = "EControl: EF21 with a controlled error term; first step dense",
    .params = econtrol_params,
    .nparams = sizeof(econtrol_params) / sizeof(*econtrol_params),
    .state_floats = econtrol_state_floats,
    .uses_aux = 1,
    .uses_tmp = 1,
    .dense_first = 1,
    .server = &cp_feedback_ef,
    .prepare = econtrol_prepare,
    .commit = econtrol_commit,
    .finish = cp_feedback_finish_estimator3,
};
