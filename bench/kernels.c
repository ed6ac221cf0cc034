/* commpress-bench --kernels: encode and decode-accumulate throughput of
 * every codec on one core (GB/s of fp32 input), next to a memcpy of the
 * same bytes in the same run (buffers touched first; medians). The input
 * is gradient-like: uniform data makes DGC's sampled threshold misjudge
 * and fall back to exact selection (measured: 12x slower at 1M elements). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "bench/spec.h"

typedef struct {
    const cp_compressor_ops_t *c;
    cp_params_t p;
    const float *x;
    float *y;
    void *msg, *scratch;
    size_t n, cap, len;
} kctx_t;

static void k_memcpy(kctx_t *k) { memcpy(k->y, k->x, k->n * 4); }
static void k_encode(kctx_t *k)
{
    k->c->encode(&k->p, k->x, k->n, k->msg, k->cap, &k->len, k->scratch);
}
static void k_decode(kctx_t *k)
{
    k->c->decode(&k->p, k->msg, k->len, 1.0f, k->y, k->y, k->n);
}

static double median_time(void (*f)(kctx_t *), kctx_t *k, int iters)
{
    double *t = malloc((size_t)iters * sizeof(double)), m;
    f(k);
    for (int i = 0; i < iters; i++) {
        double t0 = bench_now();
        f(k);
        t[i] = bench_now() - t0;
    }
    m = bench_median(t, iters);
    free(t);
    return m;
}

int bench_kernels(int argc, char **argv)
{
    size_t n = 1 << 24;
    int iters = 9;
    const char *json = NULL;
    for (int i = 1; i + 1 < argc; i++) {
        if (!strcmp(argv[i], "--count")) n = strtoull(argv[i + 1], NULL, 10);
        if (!strcmp(argv[i], "--iters")) iters = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--json")) json = argv[i + 1];
    }
    if (n < 1 || iters < 1) {
        fprintf(stderr, "commpress-bench --kernels: need --count >= 1, --iters >= 1\n");
        return 2;
    }
    float *x = malloc(n * 4), *y = malloc(n * 4);
    bench_fill(x, n, 0); /* gradient-like, as the sweep's */
    memset(y, 0, n * 4);
    kctx_t k = {.x = x, .y = y, .n = n};
    double tm = median_time(k_memcpy, &k, iters), copy = n * 4 / tm / 1e9;
    FILE *jf = json ? fopen(json, "w") : NULL;
    printf("one core, %zu floats (%.0f MB), median of %d\n", n, n * 4 / 1e6, iters);
    printf("%-20s %12s %8s %12s %8s\n", "codec", "encode GB/s", "x copy", "decode GB/s", "x copy");
    printf("%-20s %12.2f %7.2fx %12s %8s\n", "memcpy", copy, 1.0, "-", "-");
    if (jf)
        fprintf(jf, "[{\"codec\": \"memcpy\", \"count\": %zu, \"gbs\": %.4f}", n, copy);
    static bench_spec_t cases[32];
    size_t ncases = bench_kernel_specs(cases, 32);
    for (size_t c = 0; c < ncases; c++) {
        k.c = cases[c].codec;
        k.p = *bench_spec_params(&cases[c]); /* the defaults, as a job's */
        k.p.seed = k.p.shared_seed = 1;
        k.cap = k.c->max_size(&k.p, n);
        k.msg = malloc(k.cap);
        k.scratch = malloc(k.c->scratch_size(&k.p, n) + 1);
        double te = median_time(k_encode, &k, iters), td = median_time(k_decode, &k, iters);
        double eg = n * 4 / te / 1e9, dg = n * 4 / td / 1e9;
        printf("%-20s %12.2f %7.2fx %12.2f %7.2fx\n", cases[c].text, eg, eg / copy, dg, dg / copy);
        if (jf)
            fprintf(jf, ",\n {\"codec\": \"%s\", \"count\": %zu, \"encode_gbs\": %.4f, "
                        "\"encode_vs_memcpy\": %.4f, \"decode_gbs\": %.4f, \"decode_vs_memcpy\": %.4f}",
                    cases[c].text, n, eg, eg / copy, dg, dg / copy);
        free(k.msg);
        free(k.scratch);
    }
    if (jf) {
        fprintf(jf, "]\n");
        fclose(jf);
    }
    free(x), free(y);
    return 0;
}
