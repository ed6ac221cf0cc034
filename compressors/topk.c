/* Top-k sparsification: keep k = ceil(density * n) entries of largest
 * magnitude, send (index, value) pairs.
 * Wire: [u32 k][k x u32 index, strictly increasing][k x f32 value]; with
 * topk_fp16 the values travel as fp16 (saturating, ALGORITHMS.md allows
 * it) and bit 31 of the first word says so: [u32 k | 1<<31][idx][k x f16].
 *
 * Selection works on the magnitude's bit pattern (|x| as uint32 orders like
 * |x|), so the k-th largest is found by radix select: three histogram passes
 * over 11, 10 and 10 bits, no scratch, no sort. DGC's sampled threshold
 * (ALGORITHMS.md) replaces the three passes by a sample for large tensors and
 * collects candidates in one pass; when the sample misjudges badly it falls
 * back to the exact path, so the result is always a "top set": every kept
 * magnitude >= every dropped one, at most k entries. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "compressors/compressor.h"
#include "compressors/codec_math.h"
#include "compressors/topk.h"
#include "util/simd.h"

#define TOPK_HDR 4
#define TOPK_FP16 0x80000000u

static const char *const select_choices[] = {"auto", "exact", "sampled", NULL};
static const char *const values_choices[] = {"f32", "fp16", NULL};

/* Shared with dgc (compressors/dgc.c), which sends what topk sends. */
const cp_param_t cp_topk_params[CP_TOPK_NPARAMS] = {
    {.name = "COMMPRESS_DENSITY", .dflt = "0.01", .type = CP_PT_DOUBLE,
     .offset = offsetof(cp_params_t, density), .lo = 0, .hi = 1,
     .open = CP_OPEN_LO, .must_match = 1,
     .doc = "topk, dgc: fraction of entries sent, k = ceil(density * count)."},
    {.name = "COMMPRESS_TOPK_SELECT", .dflt = "auto", .type = CP_PT_ENUM,
     .offset = offsetof(cp_params_t, topk_select), .choices = select_choices,
     .must_match = 1,
     .doc = "topk selection: exact (radix select), sampled (DGC threshold), "
            "or auto (sampled from COMMPRESS_TOPK_SAMPLE_MIN elements)."},
    {.name = "COMMPRESS_TOPK_SAMPLE_MIN", .dflt = "262144", .type = CP_PT_SIZE,
     .offset = offsetof(cp_params_t, topk_sample_min), .lo = 1, .hi = 1e18,
     .must_match = 1,
     .doc = "topk auto: tensors of at least this many elements use the "
            "sampled threshold."},
    {.name = "COMMPRESS_TOPK_VALUES", .dflt = "f32", .type = CP_PT_ENUM,
     .offset = offsetof(cp_params_t, topk_fp16), .choices = values_choices,
     .must_match = 1,
     .doc = "topk, dgc: value format on the wire. fp16 sends 6 bytes per "
            "entry instead of 8 (saturating; error feedback keeps the "
            "rounding)."},
};

size_t cp_topk_k(double density, size_t n)
{
    double k = ceil(density * (double)n);
    if (k < 1.0)
        k = 1.0;
    return k >= (double)n ? n : (size_t)k;
}

size_t cp_sparse_max_size(size_t k, int fp16)
{
    return TOPK_HDR + (fp16 ? 6 : 8) * k;
}

size_t cp_topk_max_size(const cp_params_t *p, size_t n)
{
    return cp_sparse_max_size(n ? cp_topk_k(p->density, n) : 0, p->topk_fp16);
}

static size_t topk_sample_count(const cp_params_t *p, size_t n)
{
    double s = fmax(ceil(0.01 * (double)n), ceil(2.0 / p->density));
    return s >= (double)n ? n : (size_t)s;
}

size_t cp_topk_scratch_size(const cp_params_t *p, size_t n)
{
    /* Sample magnitudes, then up to 2k candidates (index + value); with
     * fp16 values, the k f32 values before they are narrowed. */
    size_t k = n ? cp_topk_k(p->density, n) : 0;
    return topk_sample_count(p, n) * sizeof(float) + 2 * k * 8 +
           (p->topk_fp16 ? k * sizeof(float) : 0);
}

static inline uint32_t mag(float x) { return cp_mag_bits(x); }

/* Finds T, the k-th largest magnitude (as bits) among v[0..len), and how many
 * entries equal to T belong to the top k (the rest are strictly greater).
 * Requires 1 <= k <= len. */
static void radix_select(const float *v, size_t len, size_t k, uint32_t *t_p,
                         size_t *ties_p)
{
    static const unsigned shift[3] = {20, 10, 0};
    static const uint32_t width[3] = {2048, 1024, 1024};
    size_t hist[2048];
    uint32_t prefix = 0, pmask = 0;

    for (int level = 0; level < 3; level++) {
        memset(hist, 0, width[level] * sizeof(size_t));
        for (size_t i = 0; i < len; i++) {
            uint32_t m = mag(v[i]);
            if ((m & pmask) == prefix)
                hist[(m >> shift[level]) & (width[level] - 1)]++;
        }
        uint32_t d = width[level];
        while (d-- > 0) {
            if (hist[d] >= k)
                break;
            k -= hist[d];
        }
        prefix |= d << shift[level];
        pmask |= (width[level] - 1) << shift[level];
    }
    *t_p = prefix;
    *ties_p = k;
}

/* Writes the entries with magnitude > t, and the first `ties` equal to t, in
 * index order. Returns how many were written. */
static size_t emit(const float *x, const uint32_t *idx, size_t len, uint32_t t,
                   size_t ties, uint32_t *oi, float *ov)
{
    size_t c = 0;
    for (size_t i = 0; i < len; i++) {
        uint32_t m = mag(x[i]);
        if (m > t || (m == t && ties > 0)) {
            ties -= (m == t);
            oi[c] = idx ? idx[i] : (uint32_t)i;
            ov[c] = x[i];
            c++;
        }
    }
    return c;
}

static size_t select_exact(const float *x, size_t n, size_t k, uint32_t *oi,
                           float *ov)
{
    uint32_t t;
    size_t ties;
    radix_select(x, n, k, &t, &ties);
    return emit(x, NULL, n, t, ties, oi, ov);
}

/* Counts every |x| >= thr and stores the first `cap` of them, in index
 * order. Few pass at DGC's densities: sixteen floats are compared as two
 * cp_v8f and looked at one by one only when one of
 * them passes. NaN passes no comparison, in either loop. */
CP_INLINE size_t scan_scalar(const float *x, size_t lo, size_t hi, float thr,
                             size_t cap, uint32_t *ci, float *cv, size_t c)
{
    for (size_t j = lo; j < hi; j++)
        if (fabsf(x[j]) >= thr) {
            if (c < cap) {
                ci[c] = (uint32_t)j;
                cv[c] = x[j];
            }
            c++;
        }
    return c;
}

CP_INLINE size_t scan_threshold(const float *x, size_t n, float thr,
                                size_t cap, uint32_t *ci, float *cv)
{
    const cp_v8i abs_mask = {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff,
                             0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff};
    cp_v8f t = {thr, thr, thr, thr, thr, thr, thr, thr};
    size_t c = 0, i = 0;
    for (; i + 16 <= n; i += 16) {
        cp_v8f x0, x1;
        uint64_t w[4];
        memcpy(&x0, x + i, sizeof(x0));
        memcpy(&x1, x + i + 8, sizeof(x1));
        cp_v8i hit = ((cp_v8f)((cp_v8i)x0 & abs_mask) >= t) |
                     ((cp_v8f)((cp_v8i)x1 & abs_mask) >= t);
        memcpy(w, &hit, sizeof(w));
        if (!(w[0] | w[1] | w[2] | w[3]))
            continue;
        c = scan_scalar(x, i, i + 16, thr, cap, ci, cv, c);
    }
    return scan_scalar(x, i, n, thr, cap, ci, cv, c);
}

/* DGC's sampled threshold. Returns the number of entries written. */
CP_INLINE size_t select_sampled(const cp_params_t *p, const float *x, size_t n,
                             size_t k, uint32_t *oi, float *ov, void *scratch)
{
    const size_t s = topk_sample_count(p, n);
    const size_t stride = n / s;
    float *sample = scratch;
    const size_t cap = 2 * k;
    uint32_t *ci = (uint32_t *)(sample + s);
    float *cv = (float *)(ci + cap);
    size_t ns = 0, ties, c = 0;
    uint32_t t;

    for (size_t i = (size_t)(p->seed % stride); i < n && ns < s; i += stride)
        sample[ns++] = x[i];
    radix_select(sample, ns, cp_topk_k(p->density, ns), &t, &ties);
    float thr = cp_bits_f32(t);

    for (int round = 0; round < 10; round++) {
        c = scan_threshold(x, n, thr, cap, ci, cv);
        if (c * 5 >= k * 4 || thr == 0.0f)
            break;
        thr *= 0.8f; /* too few: lower the threshold and retry */
        if (thr < 1e-38f)
            thr = 0.0f;
    }
    if (c > cap)
        return select_exact(x, n, k, oi, ov);
    if (c <= k) {
        memcpy(oi, ci, c * sizeof(uint32_t));
        memcpy(ov, cv, c * sizeof(float));
        return c;
    }
    /* k < c <= 2k: the candidates hold every |x| >= thr, so their top k is
     * the global top k. */
    radix_select(cv, c, k, &t, &ties);
    return emit(cv, ci, c, t, ties, oi, ov);
}

CP_CLONES cp_status_t cp_topk_encode(const cp_params_t *p, const float *x,
                                     size_t n, void *out, size_t cap,
                                     size_t *len_p, void *scratch)
{
    size_t k, c;
    int sampled;

    if (cap < cp_topk_max_size(p, n))
        return CP_ERR_NOSPACE;
    if (n > UINT32_MAX)
        return CP_ERR_UNSUPPORTED;
    if (n == 0) {
        cp_put_u32(out, 0);
        *len_p = TOPK_HDR;
        return CP_OK;
    }
    k = cp_topk_k(p->density, n);
    /* Values go after the index block of a k-entry message (fp16: to the
     * end of scratch, narrowed into the message below); a message with
     * c < k entries is compacted below. */
    uint32_t *oi = (uint32_t *)((unsigned char *)out + TOPK_HDR);
    float *ov = p->topk_fp16 ? (float *)((unsigned char *)scratch +
                                         cp_topk_scratch_size(p, n)) - k
                             : (float *)(oi + k);
    sampled = p->topk_select == CP_TOPK_SAMPLED ||
              (p->topk_select == CP_TOPK_AUTO && n >= p->topk_sample_min);
    if (k == n) {
        for (size_t i = 0; i < n; i++) {
            oi[i] = (uint32_t)i;
            ov[i] = x[i];
        }
        c = n;
    } else if (sampled) {
        c = select_sampled(p, x, n, k, oi, ov, scratch);
    } else {
        c = select_exact(x, n, k, oi, ov);
    }
    if (p->topk_fp16) {
        unsigned char *hv = (unsigned char *)(oi + c);
        for (size_t j = 0; j < c; j++) {
            uint16_t h = cp_f32_to_f16(ov[j]);
            memcpy(hv + 2 * j, &h, 2);
        }
    } else if (c < k) {
        memmove(oi + c, ov, c * sizeof(float));
    }
    cp_put_u32(out, (uint32_t)c | (p->topk_fp16 ? TOPK_FP16 : 0));
    *len_p = cp_sparse_max_size(c, p->topk_fp16);
    return CP_OK;
}

void cp_sparse_finish(void *out, size_t k, size_t *len_p)
{
    cp_put_u32(out, (uint32_t)k);
    *len_p = cp_sparse_max_size(k, 0);
}

cp_status_t cp_topk_entries(const void *in, size_t len, size_t n,
                            cp_topk_view_t *e)
{
    const unsigned char *b = in;
    size_t k;

    if (len < TOPK_HDR)
        return CP_ERR_MALFORMED;
    e->fp16 = (cp_get_u32(b) & TOPK_FP16) != 0;
    k = cp_get_u32(b) & ~TOPK_FP16;
    if (k > n || len != TOPK_HDR + (e->fp16 ? 6 : 8) * k)
        return CP_ERR_MALFORMED;
    const unsigned char *ib = b + TOPK_HDR;
    for (size_t j = 0; j < k; j++) {
        uint32_t i = cp_get_u32(ib + 4 * j);
        if (i >= n || (j > 0 && i <= cp_get_u32(ib + 4 * (j - 1))))
            return CP_ERR_MALFORMED;
    }
    e->idx = ib;
    e->vals = ib + 4 * k;
    e->k = k;
    for (size_t j = 0; j < k; j++)
        if (cp_nonfinite(cp_topk_value(e, j)))
            return CP_ERR_MALFORMED;
    return CP_OK;
}

cp_status_t cp_sparse_decode(const void *in, size_t len, float alpha,
                             const float *y, float *out, size_t n)
{
    cp_topk_view_t e;

    /* Validate everything before writing anything. */
    CP_CHECK(cp_topk_entries(in, len, n, &e));
    cp_decode_base(y, out, n);
    for (size_t j = 0; j < e.k; j++)
        out[cp_get_u32(e.idx + 4 * j)] += alpha * cp_topk_value(&e, j);
    return CP_OK;
}

cp_status_t cp_topk_decode(const cp_params_t *p, const void *in, size_t len,
                           float alpha, const float *y, float *out, size_t n)
{
    (void)p;
    return cp_sparse_decode(in, len, alpha, y, out, n);
}

CP_GPU_TWIN(cp_gpu_topk);

const cp_compressor_ops_t cp_compressor_topk = {
    .name = "topk",
    .doc = "top-k sparsification: the k largest magnitudes, as (index, "
           "value) pairs",
    .caps = CP_CODEC_SPARSE | CP_CODEC_BIASED,
    .params = cp_topk_params,
    .nparams = CP_TOPK_NPARAMS,
    .gpu = &cp_gpu_topk,
    .max_size = cp_topk_max_size,
    .scratch_size = cp_topk_scratch_size,
    .encode = cp_topk_encode,
    .decode = cp_topk_decode,
    .entries = cp_topk_entries,
    .adapt = cp_adapt_density,
    .adapt_errors = cp_topk_adapt_errors,
};

size_t cp_adapt_density(const cp_params_t *base, cp_params_t *out, size_t max,
                        size_t *v0)
{
    static const double factor[] = {0.25, 0.5, 1.0, 2.0, 4.0};
    size_t n = 0;
    for (size_t i = 0; i < sizeof(factor) / sizeof(*factor) && n < max; i++) {
        const double d = base->density * factor[i];
        if (d > 1.0)
            break;
        if (factor[i] == 1.0)
            *v0 = n;
        out[n] = *base;
        out[n++].density = d;
    }
    return n;
}

float cp_topk_value(const cp_topk_view_t *e, size_t j)
{
    if (e->fp16) {
        uint16_t h;
        memcpy(&h, e->vals + 2 * j, 2);
        return cp_f16_to_f32(h);
    }
    return cp_get_f32(e->vals + 4 * j);
}

/* What keeping x as sent saves of the squared error: x^2 with f32 values,
 * x^2 - (x - fp16(x))^2 with fp16 ones (a function of |x| alone). */
static double kept_gain(float x, int fp16)
{
    const double v = x;
    if (!fp16)
        return v * v;
    const double d = v - (double)cp_f16_to_f32(cp_f32_to_f16(x));
    return v * v - d * d;
}

/* The exact top-k's error for every density: one radix select of the
 * largest k over x, then one per smaller k over those k only. The error
 * of density d is sqrt(||x||^2 - the gains of its k kept entries); ties
 * at the threshold count as many times as the selection keeps them. */
cp_status_t cp_topk_adapt_errors(const cp_params_t *p, size_t np,
                                 const float *x, size_t n, double *err,
                                 void *scratch)
{
    size_t kmax = 0;
    for (size_t j = 0; j < np; j++) {
        const size_t k = cp_topk_k(p[j].density, n);
        kmax = k > kmax ? k : kmax;
    }
    /* scratch: UP64(4 n) bytes, then at least 8 kmax (max_size). */
    uint32_t *idx = (uint32_t *)((char *)scratch + ((n * sizeof(float) + 63) & ~(size_t)63));
    float *top = (float *)(idx + kmax);
    double total = 0;
    for (size_t i = 0; i < n; i++)
        total += (double)x[i] * x[i];
    const size_t m = select_exact(x, n, kmax, idx, top);
    for (size_t j = 0; j < np; j++) {
        const size_t k = cp_topk_k(p[j].density, n);
        uint32_t t;
        size_t ties;
        double gain = 0;
        radix_select(top, m, k < m ? k : m, &t, &ties);
        for (size_t i = 0; i < m; i++) {
            const uint32_t b = mag(top[i]);
            if (b > t || (b == t && ties > 0)) {
                ties -= b == t;
                gain += kept_gain(top[i], p[j].topk_fp16);
            }
        }
        err[j] = sqrt(total - gain > 0 ? total - gain : 0);
    }
    return CP_OK;
}
