/* commpress-moe-bench: LSH-MoE's all-to-all against MPI's (docs/moe.md).
 *
 *   mpirun -np N build/commpress-moe-bench [--tokens T] [--hidden D]
 *       [--hashes L,L,...] [--clusters K] [--noise S] [--iters I] [--json FILE]
 *   build/commpress-moe-bench --hashing [--tokens T] [--hidden D] ...
 *
 * Tokens: each rank holds T rows of D floats, T/N for each rank, drawn as
 * K cluster centres per destination plus normal noise of S per element
 * (synthetic: how well real tokens cluster decides the ratio). Per number
 * of hashes L, the median (over I iterations, the slowest rank's) of:
 *   plain     PMPI_Alltoall of the rows, then back (dispatch and combine);
 *   lsh       commpress_moe_dispatch + commpress_moe_combine (an identity
 *             expert), hashing and clustering included;
 * their ratio, the rows sent per token row, and the bytes. --hashing
 * times hashing and clustering alone on rank 0, as rows per second next to
 * memcpy of the same rows. Prints a table; --json writes the rows. */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "commpress.h"
#include "commpress_moe.h"
#include "moe/lsh.h"

static int rank, nranks;

static float normal(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    const double u1 = ((double)(*s >> 40) + 0.5) / 16777216.0,
                 u2 = (double)(*s & 0xffffff) / 16777216.0;
    return (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
}

static void tokens(float *x, size_t T, size_t D, size_t K, float noise)
{
    const size_t per = T / (size_t)nranks;
    float *c = malloc(K * D * sizeof(float));
    uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)(rank + 1);
    for (int p = 0; p < nranks; p++) {
        for (size_t i = 0; i < K * D; i++)
            c[i] = normal(&s);
        for (size_t r = 0; r < per; r++)
            for (size_t i = 0; i < D; i++)
                x[((size_t)p * per + r) * D + i] = c[(r % K) * D + i] + noise * normal(&s);
    }
    free(c);
}

static double slowest(double t)
{
    MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return t;
}

static int hashing(size_t T, size_t D, const int *hs, int nh, size_t K, float noise, int iters)
{
    float *x = malloc(T * D * sizeof(float)), *y = malloc(T * D * sizeof(float));
    double *t = malloc((size_t)iters * sizeof(double));
    nranks = 1;
    tokens(x, T, D, K, noise);
    for (int it = 0; it < iters; it++) {
        const double t0 = MPI_Wtime();
        memcpy(y, x, T * D * sizeof(float));
        t[it] = MPI_Wtime() - t0;
    }
    const double mc = bench_median(t, iters);
    printf("%-8s %8s %8s %14s %14s %10s %8s\n", "hashes", "rows", "hidden", "rows/s",
           "memcpy rows/s", "vs memcpy", "buckets");
    for (int h = 0; h < nh; h++) {
        cp_lsh_t lsh;
        uint32_t *b = malloc(T * sizeof(uint32_t));
        size_t nb = 0;
        if (cp_lsh_init(&lsh, D, (size_t)hs[h], 1) != CP_OK)
            return 1;
        void *scratch = malloc(cp_lsh_cluster_scratch(&lsh, T));
        for (int it = 0; it < iters; it++) {
            const double t0 = MPI_Wtime();
            cp_lsh_cluster(&lsh, x, T, D, b, &nb, scratch);
            t[it] = MPI_Wtime() - t0;
        }
        const double m = bench_median(t, iters);
        printf("%-8d %8zu %8zu %14.0f %14.0f %9.4fx %8zu\n", hs[h], T, D, T / m, T / mc, mc / m,
               nb);
        free(scratch), free(b);
        cp_lsh_fini(&lsh);
    }
    free(x), free(y), free(t);
    return 0;
}

int main(int argc, char **argv)
{
    size_t T = 4096, D = 1024, K = 0;
    float noise = 0.05f;
    int iters = 5, hs[8] = {2, 4, 6, 8}, nh = 4, hash_only = 0;
    const char *json = NULL;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--hashing")) { hash_only = 1; continue; }
        if (!strcmp(a, "--tokens")) T = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--hidden")) D = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--clusters")) K = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--noise")) noise = (float)atof(v);
        else if (!strcmp(a, "--iters")) iters = atoi(v);
        else if (!strcmp(a, "--json")) json = v;
        else if (!strcmp(a, "--hashes")) {
            nh = 0;
            for (char *p = (char *)v; *p && nh < 8; p++) {
                hs[nh++] = (int)strtol(p, &p, 10);
                if (*p != ',')
                    break;
            }
        } else {
            if (rank == 0)
                fprintf(stderr, "commpress-moe-bench: unknown option %s\n", a);
            MPI_Finalize();
            return 2;
        }
        i++;
    }
    if (T < (size_t)nranks || D == 0 || iters < 1 || nh < 1) {
        if (rank == 0)
            fprintf(stderr, "commpress-moe-bench: need --tokens >= ranks, --hidden >= 1, "
                            "--iters >= 1\n");
        MPI_Finalize();
        return 2;
    }
    if (K == 0)
        K = (T / (size_t)nranks) / 16 ? (T / (size_t)nranks) / 16 : 1; /* 16 rows a centre */
    if (hash_only) {
        int rc = rank == 0 ? hashing(T, D, hs, nh, K, noise, iters) : 0;
        MPI_Finalize();
        return rc;
    }
    const size_t per = T / (size_t)nranks;
    T = per * (size_t)nranks;
    float *x = malloc(T * D * sizeof(float)), *y = malloc(T * D * sizeof(float)),
          *z = malloc(T * D * sizeof(float));
    double *t = malloc((size_t)iters * sizeof(double));
    size_t *counts = malloc((size_t)nranks * sizeof(size_t));
    for (int p = 0; p < nranks; p++)
        counts[p] = per;
    tokens(x, T, D, K, noise);
    FILE *jf = rank == 0 && json ? fopen(json, "w") : NULL;
    /* Plain: rows out and back. */
    for (int it = -1; it < iters; it++) {
        MPI_Barrier(MPI_COMM_WORLD);
        const double t0 = MPI_Wtime();
        PMPI_Alltoall(x, (int)(per * D), MPI_FLOAT, y, (int)(per * D), MPI_FLOAT, MPI_COMM_WORLD);
        PMPI_Alltoall(y, (int)(per * D), MPI_FLOAT, z, (int)(per * D), MPI_FLOAT, MPI_COMM_WORLD);
        const double dt = slowest(MPI_Wtime() - t0);
        if (it >= 0)
            t[it] = dt;
    }
    const double plain = bench_median(t, iters);
    if (rank == 0) {
        printf("%d ranks, %zu tokens of %zu floats per rank, %zu centres per destination, "
               "noise %g\n", nranks, T, D, K, noise);
        printf("%-10s %12s %10s %12s %14s %14s\n", "hashes", "time[s]", "speedup",
               "rows sent", "bytes sent", "bytes plain");
        printf("%-10s %12.6f %9.2fx %11.1f%% %14.0f %14.0f\n", "plain", plain, 1.0, 100.0,
               2.0 * (nranks - 1) * per * D * 4.0, 2.0 * (nranks - 1) * per * D * 4.0);
    }
    if (jf)
        fprintf(jf, "[\n {\"mode\": \"plain\", \"ranks\": %d, \"tokens\": %zu, \"hidden\": %zu, "
                    "\"time_s\": %.9g}", nranks, T, D, plain);
    for (int h = 0; h < nh; h++) {
        commpress_moe_config_t c;
        commpress_moe_t *m = NULL;
        commpress_moe_config_default(&c);
        c.hidden = D, c.hashes = hs[h], c.max_fraction = 1.0;
        if (commpress_moe_create(&c, MPI_COMM_WORLD, &m) != 0) {
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        commpress_moe_stats_t s0, s1;
        for (int it = -1; it < iters; it++) {
            if (it == 0)
                commpress_moe_stats(m, &s0);
            MPI_Barrier(MPI_COMM_WORLD);
            const double t0 = MPI_Wtime();
            commpress_moe_handle_t *hd = NULL;
            if (commpress_moe_dispatch(m, x, counts, &hd) != 0)
                MPI_Abort(MPI_COMM_WORLD, 1);
            const float *in = commpress_moe_expert_rows(hd, NULL, NULL);
            if (commpress_moe_combine(hd, in, z) != 0)
                MPI_Abort(MPI_COMM_WORLD, 1);
            commpress_moe_release(hd);
            const double dt = slowest(MPI_Wtime() - t0);
            if (it >= 0)
                t[it] = dt;
        }
        commpress_moe_stats(m, &s1);
        const double tm = bench_median(t, iters);
        const double rows = (double)(s1.rows_sent - s0.rows_sent) / (double)(s1.rows - s0.rows);
        const double sent = (double)(s1.bytes_sent - s0.bytes_sent) / iters,
                     raw = (double)(s1.bytes_raw - s0.bytes_raw) / iters;
        if (rank == 0)
            printf("lsh %-6d %12.6f %9.2fx %11.1f%% %14.0f %14.0f\n", hs[h], tm, plain / tm,
                   100 * rows, sent, raw);
        if (jf)
            fprintf(jf, ",\n {\"mode\": \"lsh\", \"hashes\": %d, \"time_s\": %.9g, "
                        "\"speedup\": %.6g, \"rows_sent_fraction\": %.6g, \"bytes_sent\": %.0f, "
                        "\"bytes_plain\": %.0f}", hs[h], tm, plain / tm, rows, sent, raw);
        commpress_moe_destroy(m);
    }
    if (jf) {
        fprintf(jf, "\n]\n");
        fclose(jf);
    }
    free(x), free(y), free(z), free(t), free(counts);
    MPI_Finalize();
    return 0;
}
