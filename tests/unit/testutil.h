/* Deterministic inputs for unit tests: normal values with a heavy-tailed
 * mix (a few large outliers), as real gradients have. */
#ifndef CP_TESTUTIL_H
#define CP_TESTUTIL_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "compressors/compressor.h"
#include "tests/common/splitmix.h"

static inline uint64_t tu_next(uint64_t *s) { return cp_test_splitmix(s); }

static inline double tu_unif(uint64_t *s)
{
    return ((double)(tu_next(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static inline float *tu_gradient(size_t n, uint64_t seed)
{
    float *x = malloc((n ? n : 1) * sizeof(float));
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        double z = sqrt(-2.0 * log(tu_unif(&s))) * cos(6.283185307179586 * tu_unif(&s));
        if (tu_unif(&s) < 0.01)
            z *= 30.0; /* heavy tail */
        x[i] = (float)(z * 1e-3);
    }
    return x;
}

static inline cp_params_t tu_params(void)
{
    cp_params_t p = {.density = 0.01, .topk_select = CP_TOPK_EXACT,
                     .topk_sample_min = 1 << 18, .bits = 4, .bucket = 512,
                     .rounding = CP_ROUND_NEAREST, .seed = 42};
    return p;
}

/* Encodes x with codec into a fresh buffer of max_size; returns the buffer. */
static inline unsigned char *tu_encode(const cp_compressor_ops_t *c,
                                       const cp_params_t *p, const float *x,
                                       size_t n, size_t *len)
{
    size_t cap = c->max_size(p, n);
    unsigned char *buf = malloc(cap + 1);
    void *scratch = malloc(c->scratch_size(p, n) + 1);
    cp_status_t st = c->encode(p, x, n, buf, cap, len, scratch);
    free(scratch);
    if (st != CP_OK) {
        free(buf);
        return NULL;
    }
    return buf;
}

#endif
