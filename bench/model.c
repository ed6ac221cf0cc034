/* commpress-model: what commpress would do, and how long it would take, at
 * a scale one machine cannot try (docs/scaling.md, "A model to 1024
 * ranks").
 *
 *   build/commpress-model [--ranks 2,4,8 | --sweep 1024] [--per-node 1]
 *       [--rate 1gbit] [--latency 50e-6] [--count 25600000]
 *       [--compressor SPEC]... [--shared-cores 0] [--efficiency 1]
 *       [--json FILE]
 *
 * For each rank count P and setting: each algorithm's bytes per rank and
 * predicted time, and the algorithm and hierarchy commpress would choose
 * (cp_allreduce_choose, the shim's COMMPRESS_HIERARCHY=auto rule). The
 * time is alpha-beta plus compute:
 *   rounds x latency + (bytes through a node's link) / (efficiency x rate)
 *   + contention x compute,
 * the compute from the codecs' costs per float measured on this machine
 * at start (one core: encode, decode, memcpy, a sum), the contention
 * max(1, ranks / shared-cores) where ranks share cores (the emulated
 * cluster: every rank on this VM's cores; 0: a core per rank). With
 * --per-node m > 1, flat algorithms put m ranks' bytes through each
 * node's link, and node-aware ones add the node's reduce and broadcast
 * (shared memory) and run the algorithm among P / m leaders. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "bench/spec.h"
#include "collectives/allreduce.h"
#include "collectives/coll_config.h"
#include "compressors/codec_math.h"

#define MAX_SPECS 16
#define MAX_RANKS 64

static void die(const char *msg, const char *arg)
{
    fprintf(stderr, "commpress-model: %s%s\n", msg, arg ? arg : "");
    exit(2);
}

/* Seconds per float (per entry for the sparse decode) on this machine. */
typedef struct {
    double enc, dec, entry; /* the codec's encode, decode, per sent entry */
} costs_t;
static double c_mem, c_add;  /* memcpy and y += x, seconds per float */

static double best_of(double t[3]) { return fmin(t[0], fmin(t[1], t[2])); }

static void calibrate_machine(size_t n)
{
    float *x = malloc(n * 4), *y = malloc(n * 4);
    bench_fill(x, n, 1);
    memcpy(y, x, n * 4);
    double t[3];
    for (int i = 0; i < 3; i++) {
        double t0 = bench_now();
        memcpy(y, x, n * 4);
        t[i] = bench_now() - t0;
    }
    c_mem = best_of(t) / (double)n;
    for (int i = 0; i < 3; i++) {
        double t0 = bench_now();
        for (size_t j = 0; j < n; j++)
            y[j] += x[j];
        t[i] = bench_now() - t0;
    }
    c_add = best_of(t) / (double)n + (y[n / 2] == 12345.0f ? 1e-30 : 0);
    free(x), free(y);
}

static costs_t calibrate(const bench_spec_t *b, size_t n)
{
    const cp_compressor_ops_t *c = b->codec;
    const cp_params_t *p = bench_spec_params(b);
    costs_t k = {0};
    float *x = malloc(n * 4), *y = calloc(n, 4);
    const size_t cap = c->max_size(p, n);
    void *msg = malloc(cap + 64), *scratch = malloc(c->scratch_size(p, n) + 64);
    size_t len = 0;
    bench_fill(x, n, 2);
    double te[3], td[3];
    for (int i = 0; i < 3; i++) {
        double t0 = bench_now();
        if (c->encode(p, x, n, msg, cap, &len, scratch) != CP_OK)
            die("could not encode with ", b->text);
        te[i] = bench_now() - t0;
        t0 = bench_now();
        c->decode(p, msg, len, 1.0f, y, y, n);
        td[i] = bench_now() - t0;
    }
    k.enc = best_of(te) / (double)n;
    k.dec = best_of(td) / (double)n;
    if (c->caps & CP_CODEC_SPARSE) {
        /* out = y + D(msg) is a pass over y and k entries: the entries'
         * share is what the pass over y does not explain */
        const double k_n = (double)cp_topk_k(p->density, n);
        k.entry = fmax(best_of(td) - (double)n * c_mem, 0) / k_n;
        k.dec = 0;
    }
    free(x), free(y), free(msg), free(scratch);
    return k;
}

static unsigned log2up(double v)
{
    unsigned r = 0;
    while ((double)(1u << r) < v)
        r++;
    return r;
}

typedef struct {
    const char *name;
    double bytes, time;
} algo_time_t;

/* One algorithm among L ranks, `share` of them on each node's link. */
static algo_time_t predict(cp_algo_t algo, const cp_coll_config_t *cfg, const costs_t *k,
                           double n, int L, int share, double rate, double lat, double eff,
                           double contention)
{
    cp_params_t p = cfg->params;
    const double kk = (double)cp_topk_k(p.density, (size_t)n);
    algo_time_t a = {0};
    double rounds = 0, compute = 0;
    switch (algo) {
    case CP_ALGO_SPARSE:
        a.name = "sparse";
        a.bytes = (double)(L - 1) * (double)cp_slot_size(cfg->codec->max_size(&p, (size_t)n));
        rounds = L - 1;
        /* ef's prepare (a sum) and commit (a copy), the encode, the
         * result's first pass, then every rank's entries */
        compute = n * (k->enc + c_add + 2 * c_mem) + L * kk * k->entry;
        break;
    case CP_ALGO_SPARSE_RS:
        a.name = "sparse_rs";
        a.bytes = cp_sparse_rs_bytes(&p, (size_t)n, L);
        rounds = 3.0 * (L - 1) + 6.0 * log2up(L);
        /* as the allgather's, then about k entries: packed, merged (a
         * heap of the L senders), six passes over the candidates (four
         * histograms, the counts, the selection), matched at commit */
        compute = n * (k->enc + c_add + 2 * c_mem) + (10 + log2up(L)) * kk * k->entry;
        break;
    case CP_ALGO_TWOPHASE: {
        a.name = "twophase";
        size_t off, len;
        cp_chunk_range((size_t)n, L, 0, &off, &len);
        a.bytes = 2.0 * (L - 1) * (double)cp_slot_size(cfg->codec->max_size(&p, len));
        rounds = 2.0 * (L - 1);
        /* the worker's encode (fused with ef), the server's decodes and
         * encode of its chunk, every chunk's decode */
        compute = n * (k->enc * (1 + 1.0 / L) + 2 * k->dec + c_add);
        break;
    }
    default: /* MPI_Allreduce's ring: its sums */
        a.name = "ring";
        a.bytes = (double)cp_ring_bytes(L, 4 * n);
        rounds = 2.0 * (L - 1);
        compute = (L > 1 ? 2.0 * (L - 1) / L : 0) * n * c_add;
        break;
    }
    a.time = rounds * lat + share * a.bytes * 8 / (eff * rate) + contention * compute;
    return a;
}

int main(int argc, char **argv)
{
    int ranks[MAX_RANKS], nranks = 0, per = 1, shared = 0;
    double rate = 1e9, lat = 50e-6, eff = 1.0;
    size_t count = 25600000;
    const char *json = NULL;
    bench_spec_t specs[MAX_SPECS];
    int nspec = 0;
    char err[512];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            die("missing value after ", a);
        if (!strcmp(a, "--ranks")) {
            for (char *s = (char *)v; *s && nranks < MAX_RANKS;) {
                ranks[nranks++] = (int)strtol(s, &s, 10);
                if (*s == ',')
                    s++;
            }
        } else if (!strcmp(a, "--sweep")) { /* from two nodes on (--per-node first) */
            for (int r = 2 * per; r <= atoi(v) && nranks < MAX_RANKS; r *= 2)
                ranks[nranks++] = r;
        } else if (!strcmp(a, "--per-node")) per = atoi(v);
        else if (!strcmp(a, "--rate")) rate = bench_parse_rate(v);
        else if (!strcmp(a, "--latency")) lat = atof(v);
        else if (!strcmp(a, "--count")) count = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--shared-cores")) shared = atoi(v);
        else if (!strcmp(a, "--efficiency")) eff = atof(v);
        else if (!strcmp(a, "--json")) json = v;
        else if (!strcmp(a, "--compressor")) {
            if (nspec == MAX_SPECS)
                die("too many --compressor", NULL);
            if (bench_spec_parse(v, &specs[nspec], err, sizeof(err)) != 0)
                die("--compressor: ", err);
            nspec++;
        } else
            die("unknown option ", a);
        i++;
    }
    if (!(rate > 0) || per < 1 || !(eff > 0 && eff <= 1) || lat < 0 || count < 1)
        die("need --rate like 1gbit, --per-node >= 1, 0 < --efficiency <= 1, --latency >= 0",
            NULL);
    if (nranks == 0)
        ranks[nranks++] = 8;
    if (nspec == 0) {
        bench_spec_parse("quant:bits=4", &specs[nspec++], err, sizeof(err));
        bench_spec_parse("topk:density=0.01", &specs[nspec++], err, sizeof(err));
    }
    /* at the call's size: a smaller one fits caches a real call does not */
    const size_t ncal = count < ((size_t)1 << 25) ? count : (size_t)1 << 25;
    calibrate_machine(ncal);
    FILE *jf = json ? fopen(json, "w") : NULL;
    if (json && !jf)
        die("cannot write ", json);
    if (jf)
        fprintf(jf, "{\"rate_bits\": %g, \"latency_s\": %g, \"count\": %zu, \"per_node\": %d, "
                    "\"shared_cores\": %d, \"efficiency\": %g, \"c_mem\": %g, \"c_add\": %g, "
                    "\"rows\": [", rate, lat, count, per, shared, eff, c_mem, c_add);
    printf("%-20s %6s %6s %-10s %13s %10s %10s  %s\n", "setting", "ranks", "nodes", "algorithm",
           "bytes/rank", "time[s]", "x ring", "chosen");
    int rows = 0;
    const double n = (double)count;
    for (int s = 0; s < nspec; s++) {
        cp_coll_config_t cfg;
        if (cp_coll_build(&specs[s].s, &cfg, err, sizeof(err)) != CP_OK)
            die("--compressor: ", err);
        const costs_t k = calibrate(&specs[s], ncal);
        for (int r = 0; r < nranks; r++) {
            const int P = ranks[r], nodes = (P + per - 1) / per;
            const double cont = shared > 0 && P > shared ? (double)P / shared : 1.0;
            const algo_time_t ring = predict(CP_ALGO_PLAIN, &cfg, &k, n, P, per, rate, lat,
                                             eff, cont);
            /* the choice: node-aware under auto iff nodes > 1 and per > 1 */
            const int hier = nodes > 1 && per > 1;
            const int L = hier ? nodes : P;
            const cp_algo_t chosen = cp_allreduce_choose(&cfg, &cfg.params, 5, count, L);
            const double intra = hier ? cont * n * (4 * c_mem + c_add) * log2up(per) : 0;
            cp_algo_t cands[3] = {CP_ALGO_TWOPHASE, CP_ALGO_TWOPHASE, CP_ALGO_TWOPHASE};
            int nc = 1;
            if (cfg.codec->caps & CP_CODEC_SPARSE)
                cands[0] = CP_ALGO_SPARSE, cands[1] = CP_ALGO_SPARSE_RS, nc = 2;
            for (int h = 0; h < 1 + (per > 1); h++) {
                for (int c = 0; c < nc; c++) {
                    const int Lh = h ? nodes : P;
                    algo_time_t a = predict(cands[c], &cfg, &k, n, Lh, h ? 1 : per, rate, lat,
                                            eff, cont);
                    if (h)
                        a.time += intra;
                    const int is_choice = cands[c] == chosen && h == hier;
                    char label[32];
                    snprintf(label, sizeof(label), "%s%s", h ? "node+" : "", a.name);
                    printf("%-20s %6d %6d %-10s %13.0f %10.4f %9.2fx  %s\n", specs[s].text, P,
                           nodes, label, a.bytes, a.time, ring.time / a.time,
                           is_choice ? "<- chosen" : "");
                    if (jf)
                        fprintf(jf, "%s\n {\"setting\": \"%s\", \"ranks\": %d, \"nodes\": %d, "
                                    "\"algorithm\": \"%s\", \"node_aware\": %s, \"bytes\": %.0f, "
                                    "\"time_s\": %.6g, \"ring_time_s\": %.6g, \"chosen\": %s}",
                                rows++ ? "," : "", specs[s].text, P, nodes, a.name,
                                h ? "true" : "false", a.bytes, a.time, ring.time,
                                is_choice ? "true" : "false");
                }
            }
            printf("%-20s %6d %6d %-10s %13.0f %10.4f %9.2fx\n", specs[s].text, P, nodes, "ring",
                   ring.bytes, ring.time, 1.0);
        }
    }
    if (jf) {
        fprintf(jf, "\n]}\n");
        fclose(jf);
    }
    return 0;
}
