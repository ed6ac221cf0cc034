/* What the benchmark programs share: the median of timings and the input
 * (the codec settings are bench/spec.h's). */
#ifndef CP_BENCH_H
#define CP_BENCH_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "compressors/compressor.h"

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of t[0..n) (sorts t). */
static inline double bench_median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof(double), bench_cmp_double);
    return t[n / 2];
}

/* Gradient-like input: normal values times 1e-3, 1 in 128 of them 30x
 * larger (a heavy tail); `stream` (e.g. the rank) picks the sequence. */
static inline void bench_fill(float *x, size_t n, uint64_t stream)
{
    uint64_t s = 0x9e3779b97f4a7c15ull * (stream + 1);
    for (size_t i = 0; i < n; i += 2) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        double u1 = ((double)(s >> 40) + 0.5) / 16777216.0;
        double u2 = (double)(s & 0xffffff) / 16777216.0;
        double r = sqrt(-2 * log(u1)) * (((s >> 24) & 127) == 0 ? 30e-3 : 1e-3);
        x[i] = (float)(r * cos(6.283185307179586 * u2));
        if (i + 1 < n)
            x[i + 1] = (float)(r * sin(6.283185307179586 * u2));
    }
}

#endif
