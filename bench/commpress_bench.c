/* commpress-bench: compressed allreduce against MPI's own, in the spirit of
 * nccl-tests and the OSU benchmarks.
 *
 *   mpirun -np N build/commpress-bench [--min-count C] [--max-count C]
 *       [--factor F] [--compressor SPEC]... [--warmup W] [--iters I]
 *       [--rate R] [--json FILE]
 *   build/commpress-bench --kernels [--count C] [--iters I] [--json FILE]
 *
 * SPEC is a compressor with optional settings (bench/spec.h):
 * "topk:density=0.001", "quant:bits=4,rounding=stochastic",
 * "randk:density=0.05", "sign", "none" (plain PMPI_Allreduce), "shim"
 * (MPI_Allreduce through the shim, preloaded or linked, configured by the
 * COMMPRESS_* environment as in a real job: COMMPRESS_HIERARCHY; no
 * exchange column). Without
 * --compressor: every codec of the registry at its defaults. Per size and setting: median time (the slowest rank's, per
 * iteration), PMPI_Allreduce's median on the same data in the same run,
 * speedup, algorithm bandwidth, bytes sent per rank, ratio, relative error
 * against an exact (double) reduction of the same inputs, and whether every
 * rank got identical bits. --rate R (the link rate, as tc writes it:
 * 1gbit, 10gbit, 100mbit, or bits per second) adds each setting's
 * physical limit, the bytes one rank sends at that rate (every link full
 * duplex, one per rank: the time the wire alone needs), and the fraction
 * of it reached: limit / time. Every row also times the exchange alone
 * (xchg: the same bytes through the algorithm's MPI collectives, no
 * encoding; of_xchg = xchg / time), the floor this network sets. */
#include <dlfcn.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "bench/spec.h"
#include "commpress.h"

#define MAX_SPECS 32

static int rank, nranks;

typedef struct {
    bench_spec_t b;
    commpress_config_t cfg;
    int plain; /* the identity codec: PMPI_Allreduce itself */
    int shim;  /* "shim": MPI_Allreduce, through the preloaded shim */
} spec_t;

static void die(const char *msg, const char *arg)
{
    if (rank == 0)
        fprintf(stderr, "commpress-bench: %s%s\n", msg, arg ? arg : "");
    MPI_Finalize();
    exit(2);
}

/* The setting, checked, as the API's configuration: the codec by name and
 * its rows as the config's settings string. */
static void parse_spec(const char *text, spec_t *s)
{
    char err[512];
    if (strcmp(text, "shim") == 0) { /* the shim's settings: COMMPRESS_* */
        memset(s, 0, sizeof(*s));
        snprintf(s->b.text, sizeof(s->b.text), "shim:%s", getenv("COMMPRESS_COMPRESSOR")
                                                               ? getenv("COMMPRESS_COMPRESSOR")
                                                               : "none");
        s->shim = 1;
        return;
    }
    if (bench_spec_parse(text, &s->b, err, sizeof(err)) != 0)
        die("--compressor: ", err);
    commpress_config_default(&s->cfg);
    s->cfg.compressor = s->b.codec->name;
    s->cfg.settings = s->b.vars;
    s->plain = (s->b.codec->caps & CP_CODEC_IDENTITY) != 0;
}

/* The preloaded shim's statistics (the bench links the core, not the
 * shim: its MPI_Allreduce is the shim's only when preloaded). */
static void shim_stats(commpress_stats_t *st)
{
    void (*get)(commpress_stats_t *) =
        (void (*)(commpress_stats_t *))dlsym(RTLD_DEFAULT, "commpress_stats");
    if (get == NULL)
        die("--compressor shim: preload the shim (LD_PRELOAD=build/libcommpress.so)", NULL);
    get(st);
}

static int identical(const float *r, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull, v[2];
    const unsigned char *b = (const unsigned char *)r;
    for (size_t i = 0; i < 4 * n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    v[0] = h, v[1] = ~h;
    PMPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    return v[0] == h && v[1] == ~h;
}

static double relerr(const float *r, const double *exact, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += (r[i] - exact[i]) * (r[i] - exact[i]);
        den += exact[i] * exact[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* One timed call: the slowest rank's time. */
static double timed(int plain, commpress_ctx_t *ctx, const float *x, float *r,
                    size_t n)
{
    PMPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    if (plain == 2)
        MPI_Allreduce(x, r, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    else if (plain)
        PMPI_Allreduce(x, r, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    else if (commpress_allreduce(ctx, x, r, n, 1) != COMMPRESS_OK)
        die("commpress_allreduce failed", NULL);
    double t = MPI_Wtime() - t0;
    PMPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return t;
}

/* The exchange alone: the collectives a compressed call's algorithm runs,
 * on the same bytes, with no encoding or decoding (slowest rank's time):
 * two-phase, an MPI_Alltoall then an MPI_Allgather of `slot` bytes per
 * rank; sparse, one MPI_Allgather. A compressed call cannot beat it on
 * this network, so time / exchange shows what compute adds. */
static double timed_exchange(int sparse, size_t slot, unsigned char *a,
                             unsigned char *b)
{
    PMPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    if (!sparse)
        PMPI_Alltoall(a, (int)slot, MPI_BYTE, b, (int)slot, MPI_BYTE, MPI_COMM_WORLD);
    PMPI_Allgather(a, (int)slot, MPI_BYTE, b, (int)slot, MPI_BYTE, MPI_COMM_WORLD);
    double t = MPI_Wtime() - t0;
    PMPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return t;
}

int bench_kernels(int argc, char **argv); /* bench/kernels.c */

int main(int argc, char **argv)
{
    size_t min_count = 1 << 10, max_count = 1 << 24;
    double factor = 4;
    int warmup = 2, iters = 10, nspec = 0;
    double rate = 0; /* link bits per second; 0: no limit columns */
    const char *json = NULL;
    spec_t specs[MAX_SPECS];

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--kernels")) {
            int rc = rank == 0 ? bench_kernels(argc, argv) : 0;
            MPI_Finalize();
            return rc;
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            die("missing value after ", a);
        if (!strcmp(a, "--min-count")) min_count = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--max-count")) max_count = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--factor")) factor = atof(v);
        else if (!strcmp(a, "--warmup")) warmup = atoi(v);
        else if (!strcmp(a, "--iters")) iters = atoi(v);
        else if (!strcmp(a, "--json")) json = v;
        else if (!strcmp(a, "--rate")) {
            if (!(rate = bench_parse_rate(v)))
                die("--rate: accepted 1gbit, 10gbit, 100mbit or bits per second, not ", v);
        }
        else if (!strcmp(a, "--compressor")) {
            if (nspec == MAX_SPECS)
                die("too many --compressor", NULL);
            parse_spec(v, &specs[nspec++]);
        } else
            die("unknown option ", a);
        i++;
    }
    if (min_count < 1 || max_count < min_count || max_count > (1u << 30) ||
        !(factor > 1) || iters < 1 || warmup < 0)
        die("invalid sweep: need 1 <= --min-count <= --max-count <= 2^30, --factor > 1, --iters >= 1", NULL);
    if (nspec == 0) {
        for (size_t i = 0; i < cp_compressor_count() && nspec < MAX_SPECS; i++)
            parse_spec(cp_compressor_at(i)->name, &specs[nspec++]);
    }
    FILE *jf = NULL;
    if (rank == 0 && json && !(jf = fopen(json, "w")))
        die("cannot write ", json);
    if (jf)
        fprintf(jf, "[");
    if (rank == 0)
        printf("%-26s %11s %5s %11s %11s %8s %9s %13s %9s %10s %5s %11s %7s%s\n",
               "compressor", "count", "ranks", "time[s]", "mpi[s]", "speedup", "algbw",
               "bytes_sent", "ratio", "relerr", "ident", "xchg[s]", "of_xchg",
               rate > 0 ? "    limit[s] of_limit" : "");
    float *x = malloc(max_count * 4), *r = malloc(max_count * 4);
    double *exact = malloc(max_count * 8), *t = malloc((size_t)iters * 8),
           *tb = malloc((size_t)iters * 8);
    int rows = 0;
    for (size_t n = min_count; n <= max_count;) {
        bench_fill(x, n, (uint64_t)rank);
        for (size_t i = 0; i < n; i++)
            exact[i] = x[i];
        PMPI_Allreduce(MPI_IN_PLACE, exact, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        for (int w = 0; w < warmup; w++)
            timed(1, NULL, x, r, n);
        for (int it = 0; it < iters; it++)
            tb[it] = timed(1, NULL, x, r, n);
        double base = bench_median(tb, iters);
        for (int sp = 0; sp < nspec; sp++) {
            spec_t *s = &specs[sp];
            commpress_ctx_t *ctx = NULL;
            commpress_stats_t st0 = {0}, st1 = {0};
            const int how = s->shim ? 2 : s->plain;
            if (!s->plain && !s->shim &&
                commpress_create(&s->cfg, MPI_COMM_WORLD, &ctx) != COMMPRESS_OK)
                die("invalid settings in --compressor ", s->b.text);
            /* First call on fresh state: its error is one step's. */
            timed(how, ctx, x, r, n);
            double err = relerr(r, exact, n);
            int same = identical(r, n);
            for (int w = 1; w < warmup; w++)
                timed(how, ctx, x, r, n);
            if (ctx)
                commpress_ctx_stats(ctx, &st0);
            else if (s->shim)
                shim_stats(&st0);
            for (int it = 0; it < iters; it++)
                t[it] = timed(how, ctx, x, r, n);
            same = same && identical(r, n);
            double tm = bench_median(t, iters);
            double bytes_plain = 2.0 * (nranks - 1) / nranks * 4.0 * (double)n, sent, ratio;
            double xchg = 0; /* plain: MPI's own call is the exchange */
            if (ctx) {
                commpress_ctx_stats(ctx, &st1);
                sent = (double)(st1.bytes_sent - st0.bytes_sent) / iters;
                ratio = sent > 0 ? bytes_plain / sent : 0;
                commpress_destroy(ctx);
                /* The bytes per peer of this setting's algorithm: slots
                 * are sized alike on every rank, but sparse_rs's bytes
                 * depend on the data, so the largest rank's (agreed). */
                const int sparse = st1.calls_sparse > st0.calls_sparse;
                double most = sent;
                PMPI_Allreduce(MPI_IN_PLACE, &most, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
                const size_t slot = nranks > 1
                    ? (size_t)(most / ((sparse ? 1 : 2) * (nranks - 1)) + 0.5) : 0;
                unsigned char *a = calloc(slot * nranks + 1, 1),
                              *b = malloc(slot * nranks + 1);
                if (!a || !b)
                    die("out of memory for the exchange buffers", NULL);
                for (int it = 0; it < iters; it++)
                    t[it] = timed_exchange(sparse, slot, a, b);
                xchg = bench_median(t, iters);
                free(a), free(b);
            } else if (s->shim) {
                /* The process's bytes: with COMMPRESS_HIERARCHY=node only
                 * the nodes' first ranks send, so the largest rank's. */
                shim_stats(&st1);
                sent = (double)(st1.bytes_sent - st0.bytes_sent) / iters;
                PMPI_Allreduce(MPI_IN_PLACE, &sent, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
                ratio = sent > 0 ? bytes_plain / sent : 0;
            } else {
                sent = bytes_plain;
                ratio = 1.0;
            }
            if (!ctx && !s->shim)
                xchg = tm;
            const double limit = rate > 0 ? 8.0 * sent / rate : 0;
            if (rank == 0) {
                printf("%-26s %11zu %5d %11.6f %11.6f %7.2fx %8.3f %13.0f %8.2fx %10.3g %5s "
                       "%11.6f %6.1f%%",
                       s->b.text, n, nranks, tm, base, base / tm, 4.0 * n / tm / 1e9, sent, ratio,
                       err, same ? "yes" : "NO", xchg, 100.0 * xchg / tm);
                if (rate > 0)
                    printf(" %11.6f %7.1f%%", limit, 100.0 * limit / tm);
                printf("\n");
                if (jf)
                    fprintf(jf,
                            "%s\n {\"compressor\": \"%s\", \"count\": %zu, \"ranks\": %d, "
                            "\"time_s\": %.9g, \"baseline_time_s\": %.9g, \"speedup\": %.9g, "
                            "\"algbw_gbs\": %.6f, \"bytes_sent\": %.0f, \"ratio\": %.6f, "
                            "\"relerr\": %.6g, \"identical\": %s, \"rate_bits\": %.6g, "
                            "\"limit_s\": %.9g, \"fraction_of_limit\": %.9g, "
                            "\"exchange_s\": %.9g}",
                            rows ? "," : "", s->b.text, n, nranks, tm, base, base / tm,
                            4.0 * n / tm / 1e9, sent, ratio, err, same ? "true" : "false",
                            rate, limit, rate > 0 ? limit / tm : 0.0, xchg);
            }
            rows++;
        }
        size_t next = (size_t)((double)n * factor);
        if (n == max_count)
            break;
        n = next > max_count || next <= n ? max_count : next;
    }
    if (jf) {
        fprintf(jf, "\n]\n");
        fclose(jf);
    }
    free(x), free(r), free(exact), free(t), free(tb);
    MPI_Finalize();
    return 0;
}
