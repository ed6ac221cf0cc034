/* EF21-SGDM (Fatkhullin, Tyurin, Richtarik, 2023, "Momentum provably
 * improves error feedback!"): EF21 on a moving average of the gradient,
 * the variant proven to converge with stochastic gradients, where EF21
 * itself may diverge (docs/feedback.md). In the SUM form, per rank i and
 * tensor, with momentum weight eta:
 *   v_i <- (1 - eta) v_i + eta g_i;   Delta_i = C(v_i - h_i);
 *   h_i <- h_i + Delta_i;  H <- H + sum_i Delta_i;  result: H  (= n hbar)
 * A tensor's first step goes uncompressed (dense_first) with v_i = g_i, so
 * h_i = g_i and H = sum g exactly. The average lives here: the
 * application's optimizer runs without momentum, as with DGC.
 * State: (v, h, H) interleaved per element; prepare leaves v in aux. */
#include <stddef.h>

#include "compressors/feedback.h"
#include "compressors/feedback_math.h"

static size_t sgdm_state_floats(size_t n) { return 3 * n; }

static const float *sgdm_prepare(const cp_fb_params_t *fp, const float *st,
                                 const float *g, float *work, float *aux,
                                 size_t n, int *nonfinite)
{
    const float eta = fp->sgdm_eta, keep = 1.0f - fp->sgdm_eta;
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        float v = cp_sgdm_avg(fp->first, keep, eta, st[3 * i], g[i]);
        float d = cp_ef21_v(v, st[3 * i + 1]);
        aux[i] = v;
        work[i] = d;
        bad |= (uint32_t)cp_nonfinite(d);
    }
    *nonfinite = bad != 0;
    return work;
}

static cp_status_t sgdm_commit(const cp_fb_params_t *fp, float *st,
                               const float *v, const float *aux, float *tmp,
                               const cp_compressor_ops_t *codec,
                               const cp_params_t *p, const void *msg,
                               size_t len, size_t n)
{
    (void)fp, (void)v;
    CP_CHECK(codec->decode(p, msg, len, 1.0f, NULL, tmp, n));
    for (size_t i = 0; i < n; i++) {
        st[3 * i] = aux[i];
        st[3 * i + 1] = cp_fb_add(st[3 * i + 1], tmp[i]);
    }
    return CP_OK;
}

static const cp_param_t sgdm_params[] = {
    {.name = "COMMPRESS_EF21_SGDM_ETA", .dflt = "0.1", .type = CP_PT_FLOAT,
     .offset = offsetof(cp_fb_params_t, sgdm_eta), .lo = 0, .hi = 1,
     .open = CP_OPEN_LO, .must_match = 1,
     .doc = "ef21-sgdm: weight eta of the moving average v <- (1 - eta) v + "
            "eta g. The application's optimizer must then run WITHOUT "
            "momentum."},
};

CP_GPU_FB_TWIN(cp_gpu_fb_ef21_sgdm);

const cp_feedback_ops_t cp_feedback_ef21_sgdm = {
    .gpu = &cp_gpu_fb_ef21_sgdm,
    .name = "ef21-sgdm",
    .doc = "EF21-SGDM: EF21 on a moving average, for stochastic gradients; "
           "first step dense",
    .params = sgdm_params,
    .nparams = sizeof(sgdm_params) / sizeof(*sgdm_params),
    .state_floats = sgdm_state_floats,
    .uses_aux = 1,
    .uses_tmp = 1,
    .dense_first = 1,
    .server = &cp_feedback_ef,
    .prepare = sgdm_prepare,
    .commit = sgdm_commit,
    .finish = cp_feedback_finish_estimator3,
};
