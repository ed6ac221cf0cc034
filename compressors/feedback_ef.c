/* Classic error feedback (Seide et al.; Karimireddy et al.):
 * Delta_i = C(e_i + g_i);  e_i <- e_i + g_i - Delta_i.
 * State: e (n floats). */
#include "compressors/codec_math.h"
#include "compressors/feedback.h"
#include "util/hd.h"
#include "util/simd.h"

static size_t ef_state_floats(size_t n) { return n; }

CP_CLONES static const float *ef_prepare(const cp_fb_params_t *fp, const float *e,
                               const float *g, float *work, float *aux,
                               size_t n, int *nonfinite)
{
    (void)fp, (void)aux;
    *nonfinite = cp_ef_add(e, g, work, n) != 0;
    return work;
}

/* e_new = v - D(sent): decode with alpha = -1 on top of v, straight into e.
 * The values subtracted are exactly those the receivers add. */
static cp_status_t ef_commit(const cp_fb_params_t *fp, float *e,
                             const float *v, const float *aux, float *tmp,
                             const cp_compressor_ops_t *codec,
                             const cp_params_t *p, const void *msg, size_t len,
                             size_t n)
{
    (void)fp, (void)aux, (void)tmp;
    return codec->decode(p, msg, len, -1.0f, v, e, n);
}

const cp_feedback_ops_t cp_feedback_ef = {
    .name = "ef",
    .doc = "error feedback: e <- e + g - C(e + g), sent later",
    .flags = CP_FB_GPU | CP_FB_ZERO_AFTER_EXACT,
    .state_floats = ef_state_floats,
    .server = &cp_feedback_ef,
    .prepare = ef_prepare,
    .commit = ef_commit,
};
