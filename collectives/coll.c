/* Helpers every collective file shares (collectives/coll.h). */
#include <math.h>
#include <time.h>

#include "collectives/coll.h"
#include "compressors/codec_math.h"

double cp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

size_t cp_ring_bytes(int n, double bytes)
{
    return n > 1 ? (size_t)(2.0 * (n - 1) / n * bytes) : 0;
}

/* Balanced split: the first count % size chunks get one extra element. */
void cp_chunk_range(size_t count, int size, int j, size_t *off, size_t *len)
{
    size_t base = count / (size_t)size, rem = count % (size_t)size;
    size_t uj = (size_t)j;
    *off = uj * base + (uj < rem ? uj : rem);
    *len = base + (uj < rem ? 1 : 0);
}

uint64_t cp_call_seed(const cp_allreduce_args_t *a, int phase, int chunk)
{
    return cp_seed_mix(a->cfg->seed, a->tp->rank, phase, chunk,
                       a->tensor->steps, a->count);
}

void cp_call_seeds(const cp_allreduce_args_t *a, int phase, int chunk,
                   cp_params_t *p)
{
    p->seed = cp_call_seed(a, phase, chunk);
    /* No rank in it: the same on every rank (a rank of -1, never real). */
    p->shared_seed = cp_seed_mix(a->cfg->seed, -1, phase, chunk,
                                 a->tensor->steps, a->count);
}

/* DGC's warm-up: with a CP_FB_WARMUP variant the density starts
 * dense-ish (0.25) and falls exponentially to the configured one over
 * fb.warmup_steps. */
cp_params_t cp_step_params(const cp_coll_config_t *cfg, uint64_t steps)
{
    cp_params_t p = cfg->params;
    const double d0 = 0.25, w = (double)cfg->fb.warmup_steps;
    if ((cfg->feedback->flags & CP_FB_WARMUP) &&
        steps < cfg->fb.warmup_steps && p.density < d0)
        p.density = d0 * pow(p.density / d0, (double)steps / w);
    return p;
}

cp_fb_params_t cp_step_fb(const cp_coll_config_t *cfg, int size, uint64_t steps)
{
    cp_fb_params_t fp = cfg->fb;
    fp.first = steps == 0;
    fp.clip = cfg->fb.clip / sqrt((double)size);
    return fp;
}

uint64_t cp_call_check(const cp_allreduce_args_t *a)
{
    /* The tensor's L-GreCo setting too: a rank that applied a plan
     * differently is seen as a disagreement, never decoded. */
    return cp_slot_check_word(a->ident ^ ((uint64_t)(uint32_t)(a->tensor->setting + 1) << 40),
                              a->count, a->tensor->steps,
                              a->tensor->hist);
}

cp_fallback_t cp_slots_fallback(const cp_slots_view_t *v)
{
    if (v->flags & CP_SLOT_NONFINITE)
        return CP_FALLBACK_NONFINITE;
    if (v->flags & CP_SLOT_FAILED)
        return CP_FALLBACK_FAILED;
    return v->disagree ? CP_FALLBACK_DISAGREE : CP_FALLBACK_NONE;
}

cp_status_t cp_allreduce_exact(const cp_allreduce_args_t *a,
                               cp_coll_result_t *res, cp_fallback_t why)
{
    res->fallback = why;
    res->nonfinite = why == CP_FALLBACK_NONFINITE;
    return a->tp->ops->allreduce_sum_f32(a->tp->ctx, a->send, a->recv,
                                         a->count);
}

int cp_ef_fused(const cp_allreduce_args_t *a, int codec_can)
{
    return codec_can && a->cfg->fuse && a->cfg->feedback == &cp_feedback_ef &&
           a->tensor->err2 == NULL && cp_tensor_spare(a->tensor) == CP_OK;
}

cp_status_t cp_feedback_buffers(const cp_feedback_ops_t *fb, cp_workspace_t *ws,
                                size_t count, float **aux, float **tmp)
{
    *aux = *tmp = NULL;
    if (fb->uses_aux)
        CP_CHECK(cp_workspace_get(ws, CP_WS_AUX, count * sizeof(float),
                                  (void **)aux));
    if (fb->uses_tmp)
        CP_CHECK(cp_workspace_get(ws, CP_WS_TMP, count * sizeof(float),
                                  (void **)tmp));
    return CP_OK;
}
