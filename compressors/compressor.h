/* Compression operators: one table of function pointers per codec.
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
                                    stochastic rounding); set per call */
} cp_params_t;

typedef size_t (*cp_max_size_func_t)(const cp_params_t *p, size_t n);
typedef size_t (*cp_scratch_size_func_t)(const cp_params_t *p, size_t n);
typedef cp_status_t (*cp_encode_func_t)(const cp_params_t *p, const float *x,
                                        size_t n, void *out, size_t cap,
                                        size_t *len_p, void *scratch);
typedef cp_status_t (*cp_decode_func_t)(const cp_params_t *p, const void *in,
                                        size_t len, float alpha,
                                        const float *y, float *out, size_t n);

typedef struct {
    const char *name;
    cp_max_size_func_t max_size;
    cp_scratch_size_func_t scratch_size; /* bytes of scratch encode needs */
    cp_encode_func_t encode;
    cp_decode_func_t decode;
} cp_compressor_ops_t;

extern const cp_compressor_ops_t cp_compressor_none;
extern const cp_compressor_ops_t cp_compressor_fp16;
extern const cp_compressor_ops_t cp_compressor_bf16;
extern const cp_compressor_ops_t cp_compressor_topk;
extern const cp_compressor_ops_t cp_compressor_sign;
extern const cp_compressor_ops_t cp_compressor_quant;

/* k = ceil(density * n), at least 1, at most n. */
size_t cp_topk_k(double density, size_t n);

/* A validated top-k message: k little-endian u32 indices (strictly
 * increasing, all < n) and k finite values, f32 or fp16. */
typedef struct {
    const unsigned char *idx, *vals;
    size_t k;
    int fp16;
} cp_topk_view_t;
cp_status_t cp_topk_entries(const void *in, size_t len, size_t n,
                            cp_topk_view_t *e);
float cp_topk_value(const cp_topk_view_t *e, size_t j);

/* Lookup by name in the registry; NULL if unknown. */
const cp_compressor_ops_t *cp_compressor_find(const char *name);
/* "none|fp16|..." for error messages and docs. */
const char *cp_compressor_names(void);

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
