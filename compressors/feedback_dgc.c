/* DGC's momentum correction, local clipping and momentum factor masking
 * (Lin et al., ICLR 2018; ALGORITHMS.md, "DGC"), per rank and tensor:
 *   g <- g * min(1, clip / ||g||)            (clip = c / sqrt(n); 0 = off)
 *   u <- m u + g;  v <- v + u;               (momentum correction)
 *   send C(v);                               (top-k of |v|)
 *   u[sent] <- 0;  v[sent] <- 0              (factor masking)
 * The receivers apply the summed update with plain SGD: the momentum lives
 * here, the application's optimizer must run without it.
 *
 * A dense send (the identity codec: small tensors and steps where sparse
 * would cost more) delivers all of v. Then v <- 0 and u is kept: that is
 * momentum SGD exactly, and masking u would throw the momentum away with
 * nothing stale to guard against.
 *
 * State: (u, v) interleaved per element, 2 n floats, so a chunk [off, off+m)
 * starts at 2 off. prepare leaves u' in aux for commit. */
#include <math.h>
#include <stddef.h>

#include "compressors/feedback.h"
#include "compressors/codec_math.h"
#include "compressors/feedback_math.h"

static size_t dgc_state_floats(size_t n) { return 2 * n; }

/* Scale that brings ||g|| down to clip (cp_dgc_clip_scale), the sum of
 * squares in the fixed order the GPU twin uses too. */
static float dgc_clip_scale(const float *g, size_t n, double clip)
{
    return clip > 0.0 ? cp_dgc_clip_scale(cp_sumsq_fixed(g, n), clip) : 1.0f;
}

static const float *dgc_prepare(const cp_fb_params_t *fp, const float *st,
                                const float *g, float *work, float *aux,
                                size_t n, int *nonfinite)
{
    const float m = fp->momentum, s = dgc_clip_scale(g, n, fp->clip);
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        float u = cp_dgc_u(m, st[2 * i], s, g[i]);
        float v = cp_dgc_v(st[2 * i + 1], u);
        aux[i] = u;
        work[i] = v;
        bad |= (uint32_t)cp_nonfinite(v);
    }
    *nonfinite = bad != 0;
    return work;
}

static cp_status_t dgc_commit(const cp_fb_params_t *fp, float *st,
                              const float *v, const float *aux, float *tmp,
                              const cp_compressor_ops_t *codec,
                              const cp_params_t *p, const void *msg,
                              size_t len, size_t n)
{
    cp_topk_view_t e;
    (void)fp, (void)p, (void)tmp;

    if (codec->caps & CP_CODEC_IDENTITY) { /* everything went: v delivered */
        for (size_t i = 0; i < n; i++) {
            st[2 * i] = aux[i];
            st[2 * i + 1] = 0.0f;
        }
        return CP_OK;
    }
    if (codec->entries == NULL)
        return CP_ERR_INVALID; /* masking needs to know what was sent */
    CP_CHECK(codec->entries(msg, len, n, &e));
    for (size_t i = 0; i < n; i++) {
        st[2 * i] = aux[i];
        st[2 * i + 1] = v[i];
    }
    /* Sent: u <- 0, v <- v - sent, which is 0 unless the values travelled
     * as fp16 (then v keeps the rounding, as error feedback would). */
    for (size_t j = 0; j < e.k; j++) {
        size_t i = cp_get_u32(e.idx + 4 * j);
        st[2 * i] = 0.0f;
        st[2 * i + 1] = v[i] - cp_topk_value(&e, j);
    }
    return CP_OK;
}

static const cp_param_t dgc_params[] = {
    {.name = "COMMPRESS_DGC_MOMENTUM", .dflt = "0.9", .type = CP_PT_FLOAT,
     .offset = offsetof(cp_fb_params_t, momentum), .lo = 0, .hi = 1,
     .open = CP_OPEN_HI, .must_match = 1,
     .doc = "dgc: momentum m of the momentum correction u <- m u + g. The "
            "application's optimizer must then run WITHOUT momentum."},
    {.name = "COMMPRESS_DGC_CLIP", .dflt = "0", .type = CP_PT_DOUBLE,
     .offset = offsetof(cp_fb_params_t, clip), .lo = 0, .hi = 1e30,
     .must_match = 1,
     .doc = "dgc: local gradient clipping norm c; each rank scales a "
            "tensor's gradient to norm <= c / sqrt(ranks). 0: off."},
    {.name = "COMMPRESS_DGC_WARMUP_STEPS", .dflt = "0", .type = CP_PT_SIZE,
     .offset = offsetof(cp_fb_params_t, warmup_steps), .lo = 0, .hi = 1e12,
     .must_match = 1,
     .doc = "dgc: steps (per tensor) over which the density falls "
            "exponentially from 0.25 to COMMPRESS_DENSITY. 0: no warm-up."},
    {.name = "COMMPRESS_DGC_DENSE_BELOW", .dflt = "16384", .type = CP_PT_SIZE,
     .offset = offsetof(cp_fb_params_t, dense_below), .lo = 0, .hi = 1e18,
     .must_match = 1,
     .doc = "dgc: tensors of fewer elements are sent dense (still with DGC's "
            "momentum). Biases and norms are small; the shim sees only "
            "sizes."},
};

CP_GPU_FB_TWIN(cp_gpu_fb_dgc);

const cp_feedback_ops_t cp_feedback_dgc = {
    .gpu = &cp_gpu_fb_dgc,
    .name = "dgc",
    .doc = "DGC's momentum correction, clipping, masking and warm-up (the "
           "dgc compressor's own)",
    .flags = CP_FB_FIXED | CP_FB_WARMUP,
    .params = dgc_params,
    .nparams = sizeof(dgc_params) / sizeof(*dgc_params),
    .state_floats = dgc_state_floats,
    .uses_aux = 1,
    .server = &cp_feedback_none,
    .prepare = dgc_prepare,
    .commit = dgc_commit,
};
