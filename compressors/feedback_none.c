/* No feedback: Delta_i = C(g_i); what is not sent is lost. */
#include "compressors/feedback.h"
#include "util/hd.h"

int cp_any_nonfinite(const float *x, size_t n)
{
    uint32_t bad = 0;
    /* Branch-free so the loop vectorizes: OR of "exponent all ones". */
    for (size_t i = 0; i < n; i++)
        bad |= (uint32_t)cp_nonfinite(x[i]);
    return bad != 0;
}

static size_t none_state_floats(size_t n)
{
    (void)n;
    return 0;
}

static const float *none_prepare(const cp_fb_params_t *fp, const float *state,
                                 const float *g, float *work, float *aux,
                                 size_t n, int *nonfinite)
{
    (void)fp, (void)aux, (void)state;
    (void)work;
    *nonfinite = cp_any_nonfinite(g, n);
    return g;
}

static cp_status_t none_commit(const cp_fb_params_t *fp, float *state,
                               const float *v, const float *aux, float *tmp,
                               const cp_compressor_ops_t *codec,
                               const cp_params_t *p, const void *msg,
                               size_t len, size_t n)
{
    (void)fp, (void)aux, (void)tmp, (void)state, (void)v, (void)codec, (void)p, (void)msg, (void)len, (void)n;
    return CP_OK;
}

const cp_feedback_ops_t cp_feedback_none = {
    .name = "none",
    .doc = "no error feedback: what compression drops is lost",
    .flags = CP_FB_GPU | CP_FB_ZERO_AFTER_EXACT,
    .state_floats = none_state_floats,
    .server = &cp_feedback_none,
    .prepare = none_prepare,
    .commit = none_commit,
};
