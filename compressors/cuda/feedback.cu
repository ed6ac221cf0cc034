/* The GPU twins of the error-feedback variants (gpu_feedback.h): EF21,
 * EControl, EF21-SGDM and DGC's momentum correction, each kernel the loop
 * of its CPU file (compressors/feedback_*.c) with the per-element formulas
 * of compressors/feedback_math.h. A commit that needs the decoded message
 * decodes it into tmp first (cp_cuda_decode_slot, as the CPU's commit calls
 * codec->decode); every kernel that writes state returns at once when the
 * step was aborted or a message was malformed, so a bad step leaves the
 * state untouched (DESIGN.md, contract 4). */
#include "compressors/cuda/device.cuh"
#include "compressors/cuda/gpu_feedback.h"
#include "compressors/feedback_math.h"

namespace {

#define FOR_EACH(i, n)                                                       \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); \
         i += (size_t)gridDim.x * blockDim.x)

__device__ __forceinline__ bool stopped(const int *abort, const int *err)
{
    return (abort && *abort) || (err && *err);
}

/* Every variant's prepare is this loop (the CPU files' loops): f gives
 * element i's v from the state and g, and its aux (ignored where aux is
 * NULL). */
template <typename F>
__global__ void k_prepare(F f, const float *st, const float *g, float *v,
                          float *aux, size_t n, int *bad)
{
    int found = 0;
    FOR_EACH(i, n) {
        float a = 0.0f;
        const float x = f(st, g[i], i, &a);
        if (aux)
            aux[i] = a;
        v[i] = x;
        found |= cp_nonfinite(x);
    }
    if (found)
        atomicOr(bad, 1);
}

/* ... and every commit that takes the decoded message d this one. */
template <typename F>
__global__ void k_commit(F f, float *st, const float *aux, const float *d,
                         size_t n, const int *abort, const int *err)
{
    if (stopped(abort, err))
        return;
    FOR_EACH(i, n)
        f(st, aux, d, i);
}

/* EF21: state (h, H). */
struct ef21_v {
    static ef21_v of(const cp_fb_params_t *) { return {}; }
    __device__ float operator()(const float *st, float g, size_t i, float *) const
    {
        return cp_ef21_v(g, st[2 * i]);
    }
};
struct ef21_c {
    __device__ void operator()(float *st, const float *, const float *d, size_t i) const
    {
        st[2 * i] = cp_fb_add(st[2 * i], d[i]);
    }
};

/* EControl: state (e, h, H), aux = w. */
struct econtrol_v {
    float eta;
    static econtrol_v of(const cp_fb_params_t *fp) { return {fp->eta}; }
    __device__ float operator()(const float *st, float g, size_t i, float *w) const
    {
        *w = cp_econtrol_w(g, st[3 * i + 1]);
        return cp_econtrol_v(eta, st[3 * i], *w);
    }
};
struct econtrol_c {
    __device__ void operator()(float *st, const float *aux, const float *d, size_t i) const
    {
        st[3 * i] = cp_econtrol_e(st[3 * i], aux[i], d[i]);
        st[3 * i + 1] = cp_fb_add(st[3 * i + 1], d[i]);
    }
};

/* EF21-SGDM: state (v, h, H), aux = the new average. */
struct sgdm_v {
    int first;
    float keep, eta;
    static sgdm_v of(const cp_fb_params_t *fp)
    {
        return {fp->first, 1.0f - fp->sgdm_eta, fp->sgdm_eta};
    }
    __device__ float operator()(const float *st, float g, size_t i, float *avg) const
    {
        *avg = cp_sgdm_avg(first, keep, eta, st[3 * i], g);
        return cp_ef21_v(*avg, st[3 * i + 1]);
    }
};
struct sgdm_c {
    __device__ void operator()(float *st, const float *aux, const float *d, size_t i) const
    {
        st[3 * i] = aux[i];
        st[3 * i + 1] = cp_fb_add(st[3 * i + 1], d[i]);
    }
};

/* H (the last of stride floats) += out; out = scale * H. */
__global__ void k_estimator(float *st, int stride, float *out, size_t n,
                            float scale, const int *abort, const int *err)
{
    if (stopped(abort, err))
        return;
    FOR_EACH(i, n) {
        const float h = cp_fb_add(st[stride * i + stride - 1], out[i]);
        st[stride * i + stride - 1] = h;
        out[i] = scale == 1.0f ? h : h * scale;
    }
}

/* DGC: state (u, v), aux = u'. */
__global__ void k_dgc_scale(const double *sumsq, double clip, float *scale)
{
    *scale = cp_dgc_clip_scale(*sumsq, clip);
}

struct dgc_v {
    float m;
    const float *scale; /* NULL: no clipping */
    __device__ float operator()(const float *st, float g, size_t i, float *u) const
    {
        *u = cp_dgc_u(m, st[2 * i], scale ? *scale : 1.0f, g);
        return cp_dgc_v(st[2 * i + 1], *u);
    }
};

/* Everything kept: (u, v) <- (u', v); a dense step (dense != 0) delivered
 * all of v: (u', 0). */
__global__ void k_dgc_keep(float *st, const float *v, const float *aux,
                           size_t n, int dense, const unsigned char *slot,
                           size_t slot_size, const int *abort, int *err)
{
    if (stopped(abort, err))
        return;
    if (!dense) { /* the header first (k_dgc_mask relies on it): a bad
                     message writes nothing */
        const uint32_t w = ld_u32(slot + HDR), k = w & 0x7fffffffu;
        if (4 + ((w >> 31) ? 6ull : 8ull) * k > slot_size - HDR || k > n) {
            if (blockIdx.x == 0 && threadIdx.x == 0)
                atomicOr(err, 1);
            return;
        }
    }
    FOR_EACH(i, n) {
        st[2 * i] = aux[i];
        st[2 * i + 1] = dense ? 0.0f : v[i];
    }
}

/* Factor masking at the entries sent (topk's message, f32 or fp16 values,
 * compressors/topk.c): u <- 0, v <- v - sent. The message is this rank's
 * own, made by the encode; k_dgc_keep checked its header (a bad one set
 * err, and this returns), its indices are checked against n here. */
__global__ void k_dgc_mask(float *st, const float *v, const unsigned char *slot,
                           size_t n, const int *abort, const int *err)
{
    if (stopped(abort, err))
        return;
    const unsigned char *pl = slot + HDR;
    const uint32_t w = ld_u32(pl), k = w & 0x7fffffffu;
    const unsigned char *vals = pl + 4 + 4ull * k;
    FOR_EACH(j, k) {
        const uint32_t i = ld_u32(pl + 4 + 4 * j);
        if (i >= n)
            continue;
        const float sent = ld_topk_value(vals, j, (w >> 31) != 0);
        st[2 * i] = 0.0f;
        st[2 * i + 1] = v[i] - sent;
    }
}

size_t no_scratch(const cp_fb_params_t *fp, size_t n) { return 0; }

/* tmp = D(slot) (zero elsewhere); an abort leaves tmp as it was, and the
 * commit kernel after it returns at once. */
cp_status_t decode_into(const cp_compressor_ops_t *codec, const cp_params_t *p,
                        const unsigned char *slot, size_t slot_size, float *tmp,
                        size_t n, const int *abort, int *err, cudaStream_t s)
{
    return cp_cuda_decode_slot(codec, p, slot, slot_size, 1.0f, NULL, tmp, n,
                               abort, 0, err, s);
}

/* The table's prepare, commit and finish for the variants whose loops are
 * the functors above (V::of makes the prepare's from the parameters). */
template <typename V>
cp_status_t prepare_t(const cp_fb_params_t *fp, const float *st, const float *g,
                      float *v, float *aux, size_t n, void *scratch, int *bad,
                      cudaStream_t s)
{
    if (n)
        k_prepare<<<grid_for(n), THREADS, 0, s>>>(V::of(fp), st, g, v, aux, n, bad);
    return cp_cuda_last_error();
}

template <typename C>
cp_status_t commit_t(const cp_fb_params_t *fp, float *st, const float *v,
                     const float *aux, float *tmp, const cp_compressor_ops_t *codec,
                     const cp_params_t *p, const unsigned char *slot,
                     size_t slot_size, size_t n, const int *abort, int *err,
                     cudaStream_t s)
{
    CP_CHECK(decode_into(codec, p, slot, slot_size, tmp, n, abort, err, s));
    if (n)
        k_commit<<<grid_for(n), THREADS, 0, s>>>(C{}, st, aux, tmp, n, abort, err);
    return cp_cuda_last_error();
}

template <int STRIDE>
cp_status_t finish_t(float *st, float *out, size_t n, float scale,
                     const int *abort, const int *err, cudaStream_t s)
{
    if (n)
        k_estimator<<<grid_for(n), THREADS, 0, s>>>(st, STRIDE, out, n, scale, abort, err);
    return cp_cuda_last_error();
}

/* DGC's scratch: the clip scale (a float, 256 bytes), then the sum. */
size_t dgc_scratch(const cp_fb_params_t *fp, size_t n)
{
    return fp->clip > 0.0 ? 256 + cp_cuda_sumsq_scratch(n) : 0;
}

cp_status_t dgc_prepare(const cp_fb_params_t *fp, const float *st,
                        const float *g, float *v, float *aux, size_t n,
                        void *scratch, int *bad, cudaStream_t s)
{
    float *scale = NULL;
    if (n == 0)
        return CP_OK;
    if (fp->clip > 0.0) {
        scale = (float *)scratch;
        k_dgc_scale<<<1, 1, 0, s>>>(cp_cuda_sumsq(g, n, (char *)scratch + 256, s),
                                    fp->clip, scale);
    }
    k_prepare<<<grid_for(n), THREADS, 0, s>>>(dgc_v{fp->momentum, scale}, st, g, v,
                                              aux, n, bad);
    return cp_cuda_last_error();
}

cp_status_t dgc_commit(const cp_fb_params_t *fp, float *st, const float *v,
                       const float *aux, float *tmp,
                       const cp_compressor_ops_t *codec, const cp_params_t *p,
                       const unsigned char *slot, size_t slot_size, size_t n,
                       const int *abort, int *err, cudaStream_t s)
{
    const int dense = (codec->caps & CP_CODEC_IDENTITY) != 0;
    if (!dense && !(codec->caps & CP_CODEC_SPARSE))
        return CP_ERR_INVALID; /* masking needs to know what was sent */
    if (n == 0)
        return CP_OK;
    k_dgc_keep<<<grid_for(n), THREADS, 0, s>>>(st, v, aux, n, dense, slot, slot_size,
                                               abort, err);
    if (!dense) {
        const size_t maxk = slot_size >= HDR + 4 ? (slot_size - HDR - 4) / 6 : 0;
        k_dgc_mask<<<grid_for(maxk), THREADS, 0, s>>>(st, v, slot, n, abort, err);
    }
    return cp_cuda_last_error();
}

} // namespace

extern "C" const cp_gpu_feedback_t cp_gpu_fb_ef21 = {
    no_scratch, prepare_t<ef21_v>, commit_t<ef21_c>, finish_t<2>};
extern "C" const cp_gpu_feedback_t cp_gpu_fb_econtrol = {
    no_scratch, prepare_t<econtrol_v>, commit_t<econtrol_c>, finish_t<3>};
extern "C" const cp_gpu_feedback_t cp_gpu_fb_ef21_sgdm = {
    no_scratch, prepare_t<sgdm_v>, commit_t<sgdm_c>, finish_t<3>};
extern "C" const cp_gpu_feedback_t cp_gpu_fb_dgc = {dgc_scratch, dgc_prepare,
                                                    dgc_commit, NULL};
