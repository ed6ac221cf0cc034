/* Compression operators: one table per codec, in its own file, that says
 * everything about it: its name, its parameters (configuration rows,
 * util/param.h), what it can do (caps), the feedback it fixes if any, its
 * GPU twin if any, and its functions. compressors/registry.c lists them:
 * adding a codec is its file and one line there (docs/design.md,
 * "Extending").
 *
 * Contract of every codec (DESIGN.md, "Contracts"):
 *  - encode(x[0..n)) writes at most max_size(n) bytes into a caller buffer;
 *    it never allocates on the hot path (scratch comes from the caller's
 *    workspace, sized by scratch_size(n)).
 *  - decode(in, len, alpha, y, out, n) computes out = y + alpha * D(in),
 *    elementwise over n; y may alias out (decode-and-accumulate) or be NULL
 *    (y = 0). One primitive serves the receiver (accumulate), error feedback
 *    (e = v - D(sent)) and a fresh decode.
 *  - decode treats its input as untrusted: every length, count and index is
 *    checked against len and n, and a bad message returns CP_ERR_MALFORMED
 *    without writing outside out[0..n).
 * Inputs must be finite; the collectives check that before encoding. */
#ifndef CP_COMPRESSOR_H
#define CP_COMPRESSOR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/param.h"
#include "util/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CP_ROUND_NEAREST = 0,
    CP_ROUND_STOCHASTIC = 1,
} cp_rounding_t;

typedef enum {
    CP_TOPK_AUTO = 0,    /* sampled threshold from topk_sample_min elements */
    CP_TOPK_EXACT = 1,   /* radix select: exactly the k largest magnitudes */
    CP_TOPK_SAMPLED = 2, /* DGC's sampled threshold */
} cp_topk_select_t;

typedef struct {
    double density;              /* topk: fraction of entries kept */
    cp_topk_select_t topk_select;
    size_t topk_sample_min;      /* auto: sampled from this many elements */
    int bits;                    /* quant: 1..8 */
    size_t bucket;               /* quant: elements per bucket */
    cp_rounding_t rounding;      /* quant */
    int topk_fp16;               /* topk: values travel as fp16 */
    uint64_t seed;               /* randomness for this call (sampling,
                                    stochastic rounding); set per call,
                                    different on every rank */
    uint64_t shared_seed;        /* set per call, the same on every rank
                                    (randk's indices) */
} cp_params_t;

/* A validated sparse message: k little-endian u32 indices (strictly
 * increasing, all < n) and k finite values, f32 or fp16. */
typedef struct {
    const unsigned char *idx, *vals;
    size_t k;
    int fp16;
} cp_topk_view_t;

typedef size_t (*cp_max_size_func_t)(const cp_params_t *p, size_t n);
typedef size_t (*cp_scratch_size_func_t)(const cp_params_t *p, size_t n);
typedef cp_status_t (*cp_encode_func_t)(const cp_params_t *p, const float *x,
                                        size_t n, void *out, size_t cap,
                                        size_t *len_p, void *scratch);
typedef cp_status_t (*cp_decode_func_t)(const cp_params_t *p, const void *in,
                                        size_t len, float alpha,
                                        const float *y, float *out, size_t n);

/* L-GreCo (collectives/lgreco.h): the codec's candidate settings around
 * the configured one, `base`; writes at most `max` into out and returns
 * how many, with *v0 the index of base among them. NULL: base only. */
typedef size_t (*cp_adapt_func_t)(const cp_params_t *base, cp_params_t *out,
                                  size_t max, size_t *v0);
/* L-GreCo's errors of np settings of this codec at once (optional; the
 * settings its adapt gave): err[j] = ||D_j(C_j(x)) - x||_2 of settings
 * p[j], computed in fewer passes than an encode and decode each (top-k:
 * one selection for every density). scratch: UP64(4 n) bytes plus
 * max_size of the largest setting. */
typedef cp_status_t (*cp_adapt_errors_func_t)(const cp_params_t *p, size_t np,
                                              const float *x, size_t n,
                                              double *err, void *scratch);

/* Error feedback (ef) fused with encode (optional): encodes v = e + g
 * into out exactly as encode would, and writes the new error
 * e' = v - D(C(v)) into resid with the bits ef's commit would give (decode
 * with alpha -1 on top of v), in one pass over e and g. *nonfinite: v
 * holds Inf or NaN; then the call stops with CP_ERR_RANGE and out and
 * resid hold nothing of use (so resid must not be e). */
typedef cp_status_t (*cp_encode_ef_func_t)(const cp_params_t *p, const float *e,
                                           const float *g, size_t n, void *out,
                                           size_t cap, size_t *len_p, void *scratch,
                                           float *resid, int *nonfinite);

/* The entries of a CP_CODEC_SPARSE codec's message (validated). */
typedef cp_status_t (*cp_entries_func_t)(const void *in, size_t len, size_t n,
                                         cp_topk_view_t *e);

/* What a codec can do; the collectives and the configuration read these
 * instead of asking which codec it is. */
enum {
    CP_CODEC_IDENTITY = 1u << 0, /* sends the values as they are:
                                    COMMPRESS_COMPRESSOR=none passes calls
                                    through; the dense algorithm's codec */
    CP_CODEC_SPARSE = 1u << 1,   /* (index, value) entries: the sparse
                                    allgather; entries() lists them, and
                                    decode is cp_sparse_decode (out = y,
                                    then out[i] += alpha * value) */
    CP_CODEC_BIASED = 1u << 2,   /* biased: error feedback (ef) by default */
};

struct cp_feedback_ops;
typedef struct cp_gpu_codec cp_gpu_codec_t; /* compressors/cuda/gpu_codec.h */
/* Declares a codec's GPU twin, defined in its compressors/cuda/<name>.cu
 * file: a weak reference, NULL in a build without CUDA (hidden: resolved
 * when the library is linked, never by another library). */
#define CP_GPU_TWIN(sym)                                                     \
    extern const cp_gpu_codec_t sym __attribute__((weak, visibility("hidden")))

typedef struct cp_compressor_ops {
    const char *name;
    const char *doc;                 /* one line (commpress-info) */
    unsigned caps;                   /* CP_CODEC_* */
    const cp_param_t *params;        /* its rows, offsets into cp_params_t */
    size_t nparams;
    const struct cp_feedback_ops *feedback; /* the feedback it fixes (DGC);
                                               NULL: COMMPRESS_FEEDBACK's */
    const cp_gpu_codec_t *gpu;       /* its GPU twin; NULL: MPI path only */
    cp_max_size_func_t max_size;
    cp_scratch_size_func_t scratch_size; /* bytes of scratch encode needs */
    cp_encode_func_t encode;
    cp_decode_func_t decode;
    cp_encode_ef_func_t encode_ef;   /* ef fused with encode; NULL: none */
    cp_entries_func_t entries;       /* CP_CODEC_SPARSE codecs */
    cp_adapt_func_t adapt;           /* L-GreCo's candidates; NULL: one */
    cp_adapt_errors_func_t adapt_errors; /* their errors at once; NULL:
                                            encode and decode each */
} cp_compressor_ops_t;

/* The identity codec: the dense algorithm sends with it. */
extern const cp_compressor_ops_t cp_compressor_none;

/* The registry (compressors/registry.c). */
size_t cp_compressor_count(void);
const cp_compressor_ops_t *cp_compressor_at(size_t i);
/* Lookup by name; NULL if unknown. Its index with cp_compressor_index
 * (-1 if unknown). */
const cp_compressor_ops_t *cp_compressor_find(const char *name);
int cp_compressor_index(const char *name);
#define CP_MAX_CODECS 16

/* The sparse wire format shared by sparse codecs (compressors/topk.c):
 * [u32 k][k u32 indices][k values]; bit 31 of k marks fp16 values. */
size_t cp_topk_k(double density, size_t n);
cp_status_t cp_topk_entries(const void *in, size_t len, size_t n,
                            cp_topk_view_t *e);
float cp_topk_value(const cp_topk_view_t *e, size_t j);
size_t cp_sparse_max_size(size_t k, int fp16);
/* out holds k strictly increasing u32 indices from byte 4 and k f32 values
 * after them: writes the header and the message's length. */
void cp_sparse_finish(void *out, size_t k, size_t *len_p);
/* out = y + alpha * D(in) for a sparse message, validated first. */
cp_status_t cp_sparse_decode(const void *in, size_t len, float alpha,
                             const float *y, float *out, size_t n);

/* L-GreCo's candidates of the density codecs: d0 x {1/4, 1/2, 1, 2, 4}
 * within (0, 1] (compressors/topk.c). */
size_t cp_adapt_density(const cp_params_t *base, cp_params_t *out, size_t max,
                        size_t *v0);

/* Shared helpers for codecs. */
size_t cp_scratch_none(const cp_params_t *p, size_t n);
/* out[i] = y[i] + alpha * 0, i.e. the part of decode that copies y (or zero)
 * into out before a sparse codec scatters into it. */
void cp_decode_base(const float *y, float *out, size_t n);

/* Little-endian load/store of wire fields, alignment-free. */
static inline void cp_put_u32(void *p, uint32_t v) { memcpy(p, &v, 4); }
static inline uint32_t cp_get_u32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline void cp_put_u64(void *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint64_t cp_get_u64(const void *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static inline void cp_put_f32(void *p, float v) { memcpy(p, &v, 4); }
static inline float cp_get_f32(const void *p)
{
    float v;
    memcpy(&v, p, 4);
    return v;
}

#ifdef __cplusplus
}
#endif

#endif
