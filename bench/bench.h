/* What the benchmark programs share: the clock, the median of timings,
 * the input and the link rate's syntax (the codec settings are
 * bench/spec.h's). */
#ifndef CP_BENCH_H
#define CP_BENCH_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compressors/compressor.h"

/* Seconds on the monotonic clock. */
static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A link rate as tc writes it ("1gbit", "10gbit", "100mbit", "500kbit")
 * or plain bits per second; 0 on anything else. */
static inline double bench_parse_rate(const char *s)
{
    char *e;
    double v = strtod(s, &e);
    if (e == s || !(v > 0))
        return 0;
    if (!strcmp(e, "") || !strcmp(e, "bit"))
        return v;
    if (!strcmp(e, "kbit"))
        return v * 1e3;
    if (!strcmp(e, "mbit"))
        return v * 1e6;
    if (!strcmp(e, "gbit"))
        return v * 1e9;
    return 0;
}

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
