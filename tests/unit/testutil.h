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

/* encode_ef (COMMPRESS_FUSE) against ef's three steps: the message of
 * encode(e + g) and the error of ef's commit (decode with alpha -1 on top
 * of e + g), bit for bit; then, with g[bad] = poison (and e[bad] =
 * e_bad), that the non-finite or overflowing e + g is reported. */
static inline void tu_check_encode_ef(const cp_compressor_ops_t *c, const cp_params_t *p,
                                      float *e, float *g, size_t n, size_t bad,
                                      float poison, float e_bad)
{
    float *v = malloc(n * 4), *want = malloc(n * 4), *got = malloc(n * 4);
    const size_t cap = c->max_size(p, n);
    unsigned char *m1 = malloc(cap), *m2 = malloc(cap);
    void *scratch = malloc(c->scratch_size(p, n) + 1);
    size_t l1, l2;
    for (size_t i = 0; i < n; i++)
        v[i] = e[i] + g[i];
    cr_assert_eq(c->encode(p, v, n, m1, cap, &l1, scratch), CP_OK);
    cr_assert_eq(c->decode(p, m1, l1, -1.0f, v, want, n), CP_OK);
    int nf = 1;
    cr_assert_eq(c->encode_ef(p, e, g, n, m2, cap, &l2, scratch, got, &nf), CP_OK);
    cr_assert_eq(nf, 0);
    cr_assert_eq(l1, l2);
    cr_assert(memcmp(m1, m2, l1) == 0, "%s n %zu bits %d bucket %zu: messages differ",
              c->name, n, p->bits, p->bucket);
    cr_assert(memcmp(want, got, n * 4) == 0, "%s n %zu bits %d bucket %zu: errors differ",
              c->name, n, p->bits, p->bucket);
    g[bad] = poison, e[bad] = e_bad;
    cr_assert_eq(c->encode_ef(p, e, g, n, m2, cap, &l2, scratch, got, &nf), CP_ERR_RANGE);
    cr_assert_eq(nf, 1);
    free(v), free(want), free(got), free(m1), free(m2), free(scratch);
}

#endif
