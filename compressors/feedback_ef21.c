/* EF21 (Richtarik et al., 2021; ALGORITHMS.md, "Error feedback"), in the
 * SUM form the collectives return, per rank i and tensor:
 *   Delta_i = C(g_i - h_i);  h_i <- h_i + Delta_i;
 *   H <- H + sum_i Delta_i;  result: H
 * H = n hbar is the aggregated estimator: it changes only by the decoded
 * sum, which is bit-identical on every rank, so every rank keeps the same H.
 * State: (h, H) interleaved per element. */
#include "compressors/feedback.h"
#include "compressors/feedback_math.h"

static size_t ef21_state_floats(size_t n) { return 2 * n; }

static const float *ef21_prepare(const cp_fb_params_t *fp, const float *st,
                                 const float *g, float *work, float *aux,
                                 size_t n, int *nonfinite)
{
    uint32_t bad = 0;
    (void)fp, (void)aux;
    for (size_t i = 0; i < n; i++) {
        float v = cp_ef21_v(g[i], st[2 * i]);
        work[i] = v;
        bad |= (uint32_t)cp_nonfinite(v);
    }
    *nonfinite = bad != 0;
    return work;
}

static cp_status_t ef21_commit(const cp_fb_params_t *fp, float *st,
                               const float *v, const float *aux, float *tmp,
                               const cp_compressor_ops_t *codec,
                               const cp_params_t *p, const void *msg,
                               size_t len, size_t n)
{
    (void)fp, (void)v, (void)aux;
    CP_CHECK(codec->decode(p, msg, len, 1.0f, NULL, tmp, n));
    for (size_t i = 0; i < n; i++)
        st[2 * i] = cp_fb_add(st[2 * i], tmp[i]);
    return CP_OK;
}

/* Shared with EControl, whose H is the third float of an element. */
void cp_feedback_finish_estimator(float *st, size_t stride, float *out,
                                  size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float h = cp_fb_add(st[stride * i + stride - 1], out[i]);
        st[stride * i + stride - 1] = h;
        out[i] = h;
    }
}

void cp_feedback_finish_estimator3(float *st, float *out, size_t n)
{
    cp_feedback_finish_estimator(st, 3, out, n);
}

static void ef21_finish(float *st, float *out, size_t n)
{
    cp_feedback_finish_estimator(st, 2, out, n);
}

CP_GPU_FB_TWIN(cp_gpu_fb_ef21);

const cp_feedback_ops_t cp_feedback_ef21 = {
    .gpu = &cp_gpu_fb_ef21,
    .name = "ef21",
    .doc = "EF21: returns the estimator H; for full or large-batch "
           "gradients (docs/feedback.md)",
    .state_floats = ef21_state_floats,
    .uses_tmp = 1,
    .server = &cp_feedback_ef,
    .prepare = ef21_prepare,
    .commit = ef21_commit,
    .finish = ef21_finish,
};
