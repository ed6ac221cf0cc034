/* The test programs' harness: CHECK counts and reports, CU stops on a CUDA
 * error; main prints "N passed, M failed" from npass and nfail. A program
 * with ranks sets cp_test_rank so failures name the rank. */
#ifndef CP_TEST_CHECK_H
#define CP_TEST_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int npass, nfail, cp_test_rank = -1;

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (cond) {                                                         \
            npass++;                                                        \
        } else {                                                            \
            nfail++;                                                        \
            if (cp_test_rank >= 0)                                          \
                fprintf(stderr, "rank %d ", cp_test_rank);                  \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);            \
            fprintf(stderr, __VA_ARGS__);                                   \
            fprintf(stderr, "\n");                                          \
        }                                                                   \
    } while (0)

#ifdef CUDART_VERSION
#define CU(call)                                                            \
    do {                                                                    \
        cudaError_t e_ = (call);                                            \
        if (e_ != cudaSuccess) {                                            \
            fprintf(stderr, "%s:%d %s\n", __FILE__, __LINE__,               \
                    cudaGetErrorString(e_));                                \
            exit(1);                                                        \
        }                                                                   \
    } while (0)
#endif

#ifdef CP_HD_H
/* Normal values times 1e-3 from a counter-based hash: the same on every
 * machine; with ties, rounded to multiples of 1/400 (many equal values). */
static inline float *cp_test_gradient(size_t n, uint64_t seed, int ties,
                                      int heavy_tail)
{
    float *x = malloc((n ? n : 1) * 4);
    for (size_t i = 0; i < n; i++) {
        double u1 = (cp_hash32(seed, 2 * i) + 0.5) / 4294967296.0;
        double u2 = cp_hash32(seed, 2 * i + 1) / 4294967296.0;
        double z = sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
        if (heavy_tail && cp_hash32(seed + 7, i) % 100 == 0)
            z *= 30;
        x[i] = (float)(z * 1e-3);
        if (ties)
            x[i] = roundf(x[i] * 400.0f) / 400.0f;
    }
    return x;
}
#endif

#endif
