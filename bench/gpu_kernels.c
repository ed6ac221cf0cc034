/* GPU kernel throughput: encode and decode-accumulate of every GPU codec over
 * N floats, timed with CUDA events (median of iterations), next to a
 * device-to-device copy of the same 4N bytes in the same run.
 *
 *   commpress-gpu-bench [--count N] [--iters I] [--json FILE]
 *
 * Throughput is GB/s of fp32 input; "x copy" is the ratio to the copy. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "collectives/allreduce.h"
#include "bench/bench.h"
#include "bench/spec.h"
#include "compressors/cuda/cp_cuda.h"

typedef void (*op_fn)(void *ctx, cudaStream_t s);

static float time_ms(op_fn f, void *ctx, int iters, cudaStream_t s)
{
    cudaEvent_t a, b;
    double *t = malloc(iters * sizeof(double)), m;
    float ms;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    f(ctx, s); /* warm-up */
    for (int i = 0; i < iters; i++) {
        cudaEventRecord(a, s);
        f(ctx, s);
        cudaEventRecord(b, s);
        cudaEventSynchronize(b);
        cudaEventElapsedTime(&ms, a, b);
        t[i] = ms;
    }
    m = bench_median(t, iters);
    free(t);
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return m;
}

typedef struct {
    const cp_compressor_ops_t *c;
    cp_params_t p;
    size_t n, slot;
    float *x, *y, *copy;
    unsigned char *dslot;
    void *scratch;
    int *flags;
    uint64_t *steps;
} ctx_t;

static void do_copy(void *v, cudaStream_t s)
{
    ctx_t *c = v;
    cudaMemcpyAsync(c->copy, c->x, c->n * 4, cudaMemcpyDeviceToDevice, s);
}

static void do_encode(void *v, cudaStream_t s)
{
    ctx_t *c = v;
    cp_cuda_encode_slot(c->c, &c->p, c->x, c->n, c->flags, c->steps, 0, 1, 0,
                        c->n, c->dslot, c->slot, c->scratch, s);
}

static void do_decode(void *v, cudaStream_t s)
{
    ctx_t *c = v;
    cp_cuda_decode_slot(c->c, &c->p, c->dslot, c->slot, 1.0f, c->y, c->y, c->n,
                        NULL, 0, c->flags + 4, s);
}

int main(int argc, char **argv)
{
    size_t n = (size_t)1 << 26;
    int iters = 20, ndev = 0;
    const char *json = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--count"))
            n = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--iters"))
            iters = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--json"))
            json = argv[i + 1];
    }
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("skipped: no CUDA device\n");
        return 77;
    }
    struct cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    cudaStream_t s;
    cudaStreamCreate(&s);
    float *hx = malloc(n * 4);
    uint64_t st = 1;
    for (size_t i = 0; i < n; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        double u1 = ((st >> 40) + 0.5) / 16777216.0, u2 = ((st >> 16) & 0xffffff) / 16777216.0;
        hx[i] = (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2) * 1e-3);
    }
    ctx_t c = {.n = n};
    cudaMalloc((void **)&c.x, n * 4);
    cudaMalloc((void **)&c.y, n * 4);
    cudaMalloc((void **)&c.copy, n * 4);
    cudaMalloc((void **)&c.flags, 64);
    cudaMalloc((void **)&c.steps, 8);
    cudaMemset(c.flags, 0, 64);
    cudaMemset(c.steps, 0, 8);
    cudaMemset(c.y, 0, n * 4);
    cudaMemcpy(c.x, hx, n * 4, cudaMemcpyHostToDevice);
    float copy_ms = time_ms(do_copy, &c, iters, s);
    double copy_gbs = n * 4 / (copy_ms * 1e6);
    printf("device: %s; %zu floats (%.0f MB); median of %d\n", prop.name, n, n * 4 / 1e6, iters);
    printf("%-18s %12s %9s %14s %9s\n", "codec", "encode GB/s", "x copy", "decode GB/s", "x copy");
    printf("%-18s %12.1f %8.2fx %14s %9s\n", "d2d copy", copy_gbs, 1.0, "-", "-");
    FILE *jf = json ? fopen(json, "w") : NULL;
    if (jf)
        fprintf(jf, "[{\"codec\": \"copy\", \"count\": %zu, \"gbs\": %.3f, \"device\": \"%s\"}", n, copy_gbs, prop.name);
    static bench_spec_t cases[32];
    size_t ncases = bench_kernel_specs(cases, 32);
    for (size_t k = 0; k < ncases; k++) {
        c.c = cases[k].codec;
        if (c.c->gpu == NULL)
            continue; /* MPI path only */
        c.p = *bench_spec_params(&cases[k]);
        c.slot = cp_slot_size(c.c->max_size(&c.p, n));
        cudaMalloc((void **)&c.dslot, c.slot);
        cudaMalloc(&c.scratch, cp_cuda_encode_scratch(c.c, &c.p, n) + 1);
        float e = time_ms(do_encode, &c, iters, s), d = time_ms(do_decode, &c, iters, s);
        double eg = n * 4 / (e * 1e6), dg = n * 4 / (d * 1e6);
        printf("%-18s %12.1f %8.2fx %14.1f %8.2fx\n", cases[k].text, eg, eg / copy_gbs, dg, dg / copy_gbs);
        if (jf)
            fprintf(jf, ",\n {\"codec\": \"%s\", \"count\": %zu, \"encode_gbs\": %.3f, \"encode_vs_copy\": %.4f, "
                        "\"decode_gbs\": %.3f, \"decode_vs_copy\": %.4f}",
                    cases[k].text, n, eg, eg / copy_gbs, dg, dg / copy_gbs);
        cudaFree(c.dslot);
        cudaFree(c.scratch);
    }
    if (jf) {
        fprintf(jf, "]\n");
        fclose(jf);
    }
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) {
        fprintf(stderr, "CUDA error: %s\n", cudaGetErrorString(err));
        return 1;
    }
    return 0;
}
