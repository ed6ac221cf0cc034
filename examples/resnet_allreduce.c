/* The main job: allreduce a ResNet-50-sized gradient (25.6M floats) plain
 * and with every commpress compressor, and print time, bytes sent per rank,
 * compression ratio and error against the exact sum.
 *
 *   mpirun -np 4 build/resnet_allreduce [--count N] [--iters N]
 *
 * Plain is MPI_Allreduce (Open MPI's own algorithm); the compressed runs use
 * the explicit API (include/commpress.h), each with its own error-feedback
 * state. On one machine the links are memory-fast, so time saved needs a
 * slow network (see bench/ and docs/): this job shows the bytes. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commpress.h"

static int rank, nranks;

static void fill(float *x, size_t n)
{
    uint64_t s = 12345 + (uint64_t)rank * 7919;
    for (size_t i = 0; i < n; i += 2) {
        /* Box-Muller pairs from a splitmix stream; 1% heavy-tailed. */
        s += 0x9e3779b97f4a7c15ull;
        uint64_t z = s;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        double u1 = ((double)(z >> 40) + 0.5) / 16777216.0;
        double u2 = (double)(z & 0xffffff) / 16777216.0;
        double r = sqrt(-2 * log(u1)) * ((z >> 33) % 100 == 0 ? 30e-3 : 1e-3);
        x[i] = (float)(r * cos(6.283185307179586 * u2));
        if (i + 1 < n)
            x[i + 1] = (float)(r * sin(6.283185307179586 * u2));
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof(double), cmp_double);
    return t[n / 2];
}

static double relerr(const float *r, const float *exact, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)r[i] - exact[i];
        num += d * d;
        den += (double)exact[i] * exact[i];
    }
    return sqrt(num / den);
}

int main(int argc, char **argv)
{
    size_t count = 25557032; /* ResNet-50's parameters */
    int iters = 3;
    struct { const char *label, *comp; double density; int bits; } runs[] = {
        {"fp16", "fp16", 0, 4},           {"bf16", "bf16", 0, 4},
        {"quant 8 bits", "quant", 0, 8},  {"quant 4 bits", "quant", 0, 4},
        {"quant 2 bits", "quant", 0, 2},  {"sign (1 bit)", "sign", 0, 4},
        {"topk 1%", "topk", 0.01, 4},     {"topk 0.1%", "topk", 0.001, 4},
    };

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--count") == 0)
            count = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--iters") == 0)
            iters = atoi(argv[i + 1]);
    }
    if (iters < 1 || iters > 1000 || count < 1 || count > 1u << 30) {
        if (rank == 0)
            fprintf(stderr, "usage: resnet_allreduce [--count 1..2^30] [--iters 1..1000]\n");
        MPI_Finalize();
        return 2;
    }
    float *grad = malloc(count * 4), *exact = malloc(count * 4), *out = malloc(count * 4);
    double *t = malloc((size_t)iters * sizeof(double));
    fill(grad, count);

    /* Plain: Open MPI's allreduce. A ring sends 2 (n-1)/n of the tensor. */
    MPI_Allreduce(grad, exact, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    for (int it = 0; it < iters; it++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        MPI_Allreduce(grad, out, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        t[it] = MPI_Wtime() - t0;
    }
    double plain_t = median(t, iters);
    double plain_bytes = 2.0 * (nranks - 1) / nranks * 4.0 * (double)count;
    if (rank == 0) {
        printf("commpress demo: allreduce of %zu floats (%.1f MB, ResNet-50's gradient) on %d ranks, median of %d\n\n",
               count, count * 4 / 1e6, nranks, iters);
        printf("%-14s %10s %9s %14s %8s %10s %12s\n", "compressor", "time [s]", "vs plain",
               "sent/rank [MB]", "ratio", "rel. error", "compute [s]");
        printf("%-14s %10.3f %8.2fx %14.1f %7.1fx %10s %12s\n", "plain MPI", plain_t, 1.0,
               plain_bytes / 1e6, 1.0, "0", "-");
    }

    for (size_t r = 0; r < sizeof(runs) / sizeof(*runs); r++) {
        commpress_config_t cfg;
        commpress_ctx_t *ctx;
        commpress_stats_t st;
        double err = 0;
        commpress_config_default(&cfg);
        cfg.compressor = runs[r].comp;
        if (runs[r].density > 0)
            cfg.density = runs[r].density;
        cfg.bits = runs[r].bits;
        int rc = commpress_create(&cfg, MPI_COMM_WORLD, &ctx);
        if (rc != COMMPRESS_OK) {
            if (rank == 0)
                fprintf(stderr, "commpress_create(%s): %s\n", runs[r].label, commpress_strerror(rc));
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        /* Warm-up (allocates the state and workspace; not timed): its
         * error is that of one step, before any feedback. */
        if (commpress_allreduce(ctx, grad, out, count, 1) != COMMPRESS_OK)
            MPI_Abort(MPI_COMM_WORLD, 1);
        err = relerr(out, exact, count);
        commpress_stats_t warm;
        commpress_ctx_stats(ctx, &warm);
        for (int it = 0; it < iters; it++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            rc = commpress_allreduce(ctx, grad, out, count, 1);
            t[it] = MPI_Wtime() - t0;
            if (rc != COMMPRESS_OK)
                MPI_Abort(MPI_COMM_WORLD, 1);
        }
        commpress_ctx_stats(ctx, &st);
        st.bytes_sent -= warm.bytes_sent;
        st.compress_seconds -= warm.compress_seconds;
        if (rank == 0)
            printf("%-14s %10.3f %8.2fx %14.2f %7.1fx %10.3g %12.3f\n", runs[r].label,
                   median(t, iters), plain_t / median(t, iters),
                   (double)st.bytes_sent / iters / 1e6, st.ratio, err,
                   st.compress_seconds / iters);
        commpress_destroy(ctx);
    }
    if (rank == 0)
        printf("\nratio: bytes a ring allreduce sends / bytes sent. compute: rank 0's time in encode, decode and\n"
               "error feedback per call. rel. error: ||r - exact|| / ||exact||\n"
               "after one step; error feedback (on for quant, sign, topk) carries the rest into later steps.\n"
               "On a 1 Gbit/s link plain needs %.2f s for these bytes: that is where the ratios turn into time.\n",
               plain_bytes * 8 / 1e9);
    free(grad), free(exact), free(out), free(t);
    MPI_Finalize();
    return 0;
}
