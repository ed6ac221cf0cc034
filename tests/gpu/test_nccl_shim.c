/* The NCCL shim on one GPU: a 1-rank communicator runs the whole
 * compress -> communicate -> decompress path (COMMPRESS_MIN_RANKS=1). Run
 * with LD_PRELOAD=libcommpress.so and COMMPRESS_COMPRESSOR set; the result
 * of every step must equal, bit for bit, a CPU replica of the same pipeline
 * built from the CPU codecs (same configuration, same seeds), over several
 * steps so that the error-feedback states must evolve identically. For
 * the settings the GPU path gained with issue 19 (the feedback twins: dgc,
 * ef21, econtrol, ef21-sgdm; top-k's fp16 values) the replica is the CPU
 * path itself: cp_allreduce on a 1-rank in-process transport. Also:
 * in place, fp16/bf16 inputs, ncclAvg, a non-finite step, pass-through,
 * capture in a CUDA graph after warm-up, and release on ncclCommDestroy.
 * Exit 77 ("skipped") without a GPU. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "collectives/allreduce.h"
#include "compressors/codec_math.h"
#include "include/commpress.h"
#include "plugin/config.h"
#include "common/check.h"

static cudaStream_t S;
static ncclComm_t comm;
static cp_coll_config_t coll;
static void (*stats_fn)(commpress_stats_t *);
static ncclResult_t (*real_allreduce)(const void *, void *, size_t,
                                      ncclDataType_t, ncclRedOp_t, ncclComm_t,
                                      cudaStream_t);

static commpress_stats_t stats(void)
{
    commpress_stats_t s;
    stats_fn(&s);
    return s;
}

static float *gradient(size_t n, uint64_t seed)
{
    return cp_test_gradient(n, seed, 0, 0);
}

/* A transport of one rank, in process: what the CPU path needs of it. */
static cp_status_t self_copy(void *ctx, const void *send, void *recv, size_t bytes)
{
    (void)ctx;
    memmove(recv, send, bytes);
    return CP_OK;
}

static cp_status_t self_sum(void *ctx, const float *send, float *recv, size_t count)
{
    (void)ctx;
    if (send)
        memmove(recv, send, count * 4);
    return CP_OK;
}

static cp_status_t self_u64(void *ctx, uint64_t *v, size_t n)
{
    (void)ctx, (void)v, (void)n;
    return CP_OK;
}

static const cp_transport_ops_t self_ops = {
    .name = "self", .alltoall = self_copy, .allgather = self_copy,
    .allreduce_sum_f32 = self_sum, .allreduce_max_u64 = self_u64,
    .allreduce_sum_u64 = self_u64};
static const cp_transport_t self_tp = {.ops = &self_ops, .rank = 0, .size = 1};

/* Whether this run's setting is checked against the CPU path itself. */
static int via_cpu_path(void)
{
    return coll.feedback->gpu != NULL || coll.params.topk_fp16;
}

/* The CPU replica of the GPU pipeline for one rank. */
typedef struct {
    size_t n;
    float *ew, *es;
    uint64_t steps;
    cp_tensor_t *t; /* via_cpu_path() */
    cp_workspace_t *ws;
} ref_t;

static ref_t ref_new(size_t n)
{
    ref_t r = {.n = n, .ew = calloc(n + 1, 4), .es = calloc(n + 1, 4)};
    if (via_cpu_path()) {
        r.ws = calloc(1, sizeof(*r.ws));
        cp_workspace_init(r.ws);
        if (cp_tensor_create(&coll, n, 1, 0, &r.t) != CP_OK)
            abort();
    }
    return r;
}

/* out = the CPU path's result for input g (alpha: 1, or ncclAvg's 1/1). */
static void cpu_step(ref_t *r, const float *g, float *out)
{
    cp_coll_result_t res;
    const cp_allreduce_args_t a = {.send = g, .recv = out, .count = r->n,
                                   .tensor = r->t, .cfg = &coll, .ws = r->ws,
                                   .tp = &self_tp, .ident = 1, .call = r->steps};
    if (cp_allreduce(&a, &res) != CP_OK)
        abort();
    r->steps++;
}

static void encode(const cp_compressor_ops_t *c, cp_params_t *p, const float *v,
                   size_t n, unsigned char *msg, size_t *len)
{
    void *scratch = malloc(c->scratch_size(p, n) + 1);
    if (c->encode(p, v, n, msg, c->max_size(p, n), len, scratch) != CP_OK)
        abort();
    free(scratch);
}

static void ref_step(ref_t *r, const float *g, float *out, float alpha)
{
    const size_t n = r->n;
    if (r->t) {
        cpu_step(r, g, out);
        return;
    }
    const int ef = coll.feedback != &cp_feedback_none;
    cp_algo_t algo = cp_allreduce_choose(&coll, &coll.params, 0, n, 1);
    const cp_compressor_ops_t *c =
        algo == CP_ALGO_DENSE ? &cp_compressor_none : coll.codec;
    cp_params_t p = coll.params;
    float *v = malloc(n * 4 + 4), *sum = malloc(n * 4 + 4), *vs = malloc(n * 4 + 4);
    unsigned char *m1 = malloc(c->max_size(&p, n) + 8), *m2 = malloc(c->max_size(&p, n) + 8);
    size_t l1, l2;
    for (size_t i = 0; i < n; i++)
        v[i] = ef ? r->ew[i] + g[i] : g[i];
    if (algo == CP_ALGO_SPARSE) {
        p.seed = cp_seed_mix(coll.seed, 0, 0, 0, r->steps, n);
        encode(c, &p, v, n, m1, &l1);
        c->decode(&p, m1, l1, alpha, NULL, out, n);
        if (ef)
            c->decode(&p, m1, l1, -1.0f, v, r->ew, n);
    } else {
        p.seed = cp_seed_mix(coll.seed, 0, 1, 0, r->steps, n);
        encode(c, &p, v, n, m1, &l1);
        c->decode(&p, m1, l1, 1.0f, NULL, sum, n);
        for (size_t i = 0; i < n; i++)
            vs[i] = ef ? sum[i] + r->es[i] : sum[i];
        p.seed = cp_seed_mix(coll.seed, 0, 2, 0, r->steps, n);
        encode(c, &p, vs, n, m2, &l2);
        c->decode(&p, m2, l2, alpha, NULL, out, n);
        if (ef) {
            c->decode(&p, m1, l1, -1.0f, v, r->ew, n);
            c->decode(&p, m2, l2, -1.0f, vs, r->es, n);
        }
    }
    r->steps++;
    free(v), free(sum), free(vs), free(m1), free(m2);
}

static int same(const void *a, const void *b, size_t bytes, size_t esize,
                size_t *first)
{
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < bytes; i += esize)
        if (memcmp(x + i, y + i, esize)) {
            *first = i / esize;
            return 0;
        }
    return 1;
}

/* Four steps of one fp32 tensor, out of place or in place, continuing the
 * reference r: calls of one count in a row are one tensor whatever their
 * buffers (docs/design.md, "Tensor identity"). big puts a value beyond
 * fp16's range in every step (the casts then travel scaled). */
static void steps_f32(ref_t *rp, size_t n, int in_place, ncclRedOp_t op, int big)
{
    ref_t r = *rp;
    float *dsend, *drecv, *out = malloc(n * 4), *want = malloc(n * 4);
    CU(cudaMalloc((void **)&dsend, n * 4));
    drecv = dsend;
    if (!in_place)
        CU(cudaMalloc((void **)&drecv, n * 4));
    for (int t = 0; t < 4; t++) {
        float *g = gradient(n, 100 * n + t + 10 * in_place);
        if (big)
            g[n / 2] = 1e6f;
        commpress_stats_t b = stats();
        CU(cudaMemcpyAsync(dsend, g, n * 4, cudaMemcpyHostToDevice, S));
        CHECK(ncclAllReduce(dsend, drecv, n, ncclFloat32, op, comm, S) == ncclSuccess, "rc");
        CU(cudaMemcpyAsync(out, drecv, n * 4, cudaMemcpyDeviceToHost, S));
        CU(cudaStreamSynchronize(S));
        CHECK(stats().calls_compressed == b.calls_compressed + 1, "n=%zu not compressed", n);
        ref_step(&r, g, want, 1.0f);
        size_t first = 0;
        CHECK(same(out, want, n * 4, 4, &first), "n=%zu%s step %d element %zu: %a vs cpu %a",
              n, in_place ? " in place" : "", t, first, out[first], want[first]);
        free(g);
    }
    *rp = r;
    free(out), free(want);
    cudaFree(dsend);
    if (!in_place)
        cudaFree(drecv);
}

/* fp16/bf16 input: widened exactly, the fp32 pipeline, rounded back. */
static void steps_16(size_t n, ncclDataType_t dt)
{
    int bf = dt != ncclFloat16;
    ref_t r = ref_new(n);
    uint16_t *h = malloc(n * 2), *out = malloc(n * 2), *want = malloc(n * 2);
    float *g32 = malloc(n * 4), *o32 = malloc(n * 4);
    void *d;
    CU(cudaMalloc(&d, n * 2));
    for (int t = 0; t < 3; t++) {
        float *g = gradient(n, 7 * n + t);
        for (size_t i = 0; i < n; i++) {
            h[i] = bf ? cp_f32_to_bf16(g[i]) : cp_f32_to_f16(g[i]);
            g32[i] = bf ? cp_bf16_to_f32(h[i]) : cp_f16_to_f32(h[i]);
        }
        CU(cudaMemcpy(d, h, n * 2, cudaMemcpyHostToDevice));
        CHECK(ncclAllReduce(d, d, n, dt, ncclSum, comm, S) == ncclSuccess, "rc");
        CU(cudaStreamSynchronize(S));
        CU(cudaMemcpy(out, d, n * 2, cudaMemcpyDeviceToHost));
        ref_step(&r, g32, o32, 1.0f);
        for (size_t i = 0; i < n; i++)
            want[i] = bf ? cp_f32_to_bf16(o32[i]) : cp_f32_to_f16(o32[i]);
        size_t first = 0;
        CHECK(same(out, want, n * 2, 2, &first), "%s n=%zu step %d element %zu",
              bf ? "bf16" : "fp16", n, t, first);
        free(g);
    }
    free(h), free(out), free(want), free(g32), free(o32), free(r.ew), free(r.es);
}

/* A step with a NaN: NaN everywhere in the result, and the steps after it
 * equal a run without it. */
static void nonfinite(size_t n)
{
    ref_t r = ref_new(n);
    float *d, *out = malloc(n * 4), *want = malloc(n * 4);
    CU(cudaMalloc((void **)&d, n * 4));
    for (int t = 0; t < 4; t++) {
        float *g = gradient(n, 55 + t);
        if (t == 1)
            g[n / 2] = NAN;
        CU(cudaMemcpy(d, g, n * 4, cudaMemcpyHostToDevice));
        CHECK(ncclAllReduce(d, d, n, ncclFloat32, ncclSum, comm, S) == ncclSuccess, "rc");
        CU(cudaStreamSynchronize(S));
        CU(cudaMemcpy(out, d, n * 4, cudaMemcpyDeviceToHost));
        if (t == 1) {
            size_t nans = 0;
            for (size_t i = 0; i < n; i++)
                nans += isnan(out[i]);
            CHECK(nans == n, "bad step: %zu of %zu NaN", nans, n);
        } else {
            ref_step(&r, g, want, 1.0f);
            size_t first = 0;
            CHECK(same(out, want, n * 4, 4, &first), "after NaN step %d element %zu", t, first);
        }
        free(g);
    }
    free(out), free(want), free(r.ew), free(r.es);
}

static void passthrough(void)
{
    const size_t n = 100000;
    int *hi = malloc(n * 4), *o1 = malloc(n * 4), *o2 = malloc(n * 4);
    void *d1, *d2, *src;
    for (size_t i = 0; i < n; i++)
        hi[i] = (int)(i * 2654435761u);
    CU(cudaMalloc(&src, n * 4));
    CU(cudaMalloc(&d1, n * 4));
    CU(cudaMalloc(&d2, n * 4));
    CU(cudaMemcpy(src, hi, n * 4, cudaMemcpyHostToDevice));
    struct { ncclDataType_t dt; ncclRedOp_t op; const char *what; int group; } cases[] = {
        {ncclInt32, ncclSum, "int32", 0}, {ncclFloat32, ncclMax, "max", 0},
        {ncclFloat32, ncclProd, "prod", 0}, {ncclFloat32, ncclSum, "in a group", 1}};
    for (int c = 0; c < 4; c++) {
        commpress_stats_t b = stats();
        if (cases[c].group)
            ncclGroupStart();
        ncclAllReduce(src, d1, n, cases[c].dt, cases[c].op, comm, S);
        if (cases[c].group)
            ncclGroupEnd();
        commpress_stats_t a = stats();
        real_allreduce(src, d2, n, cases[c].dt, cases[c].op, comm, S);
        CU(cudaStreamSynchronize(S));
        CU(cudaMemcpy(o1, d1, n * 4, cudaMemcpyDeviceToHost));
        CU(cudaMemcpy(o2, d2, n * 4, cudaMemcpyDeviceToHost));
        CHECK(memcmp(o1, o2, n * 4) == 0, "%s: differs from NCCL", cases[c].what);
        CHECK(a.calls_compressed == b.calls_compressed &&
              a.calls_passthrough == b.calls_passthrough + 1, "%s: not passed through", cases[c].what);
    }
    /* PreMulSum: a user-created op passes through. */
    ncclRedOp_t pm;
    float scalar = 2.0f;
    if (ncclRedOpCreatePreMulSum(&pm, &scalar, ncclFloat32, ncclScalarHostImmediate, comm) == ncclSuccess) {
        commpress_stats_t b = stats();
        ncclAllReduce(src, d1, n, ncclFloat32, pm, comm, S);
        CU(cudaStreamSynchronize(S));
        CHECK(stats().calls_passthrough == b.calls_passthrough + 1, "PreMulSum not passed through");
        ncclRedOpDestroy(pm, comm);
    }
    free(hi), free(o1), free(o2);
}

/* After a warm-up step the call is capturable in a CUDA graph (no host
 * synchronization, no allocation), and a replay is the next step. */
static void graph(size_t n)
{
    ref_t r = ref_new(n);
    float *d, *out = malloc(n * 4), *want = malloc(n * 4), *g = gradient(n, 77);
    CU(cudaMalloc((void **)&d, n * 4));
    CU(cudaMemcpy(d, g, n * 4, cudaMemcpyHostToDevice));
    ncclAllReduce(d, d, n, ncclFloat32, ncclSum, comm, S); /* warm-up */
    ref_step(&r, g, want, 1.0f);
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CU(cudaStreamBeginCapture(S, cudaStreamCaptureModeThreadLocal));
    ncclResult_t rc = ncclAllReduce(d, d, n, ncclFloat32, ncclSum, comm, S);
    cudaError_t ce = cudaStreamEndCapture(S, &graph);
    CHECK(rc == ncclSuccess && ce == cudaSuccess, "capture: nccl %d cuda %d", rc, ce);
    if (ce != cudaSuccess)
        return;
    CU(cudaGraphInstantiate(&exec, graph, 0));
    for (int t = 0; t < 3; t++) {
        CU(cudaMemcpyAsync(d, g, n * 4, cudaMemcpyHostToDevice, S));
        CU(cudaGraphLaunch(exec, S));
        CU(cudaStreamSynchronize(S));
        CU(cudaMemcpy(out, d, n * 4, cudaMemcpyDeviceToHost));
        ref_step(&r, g, want, 1.0f);
        size_t first = 0;
        CHECK(same(out, want, n * 4, 4, &first), "graph replay %d element %zu", t, first);
    }
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    free(out), free(want), free(g), free(r.ew), free(r.es);
}

int main(void)
{
    int ndev = 0;
    char err[512];
    cp_config_t cfg;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("skipped: no CUDA device\n");
        return 77;
    }
    stats_fn = (void (*)(commpress_stats_t *))dlsym(RTLD_DEFAULT, "commpress_stats");
    real_allreduce = dlsym(RTLD_DEFAULT, "pncclAllReduce");
    if (stats_fn == NULL || real_allreduce == NULL) {
        fprintf(stderr, "libcommpress.so is not preloaded, or NCCL lacks pnccl*\n");
        return 1;
    }
    if (cp_config_parse_env(&cfg, err, sizeof(err)) != CP_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    cp_config_to_coll(&cfg, &coll);
    CU(cudaSetDevice(0));
    CU(cudaStreamCreate(&S));
    ncclUniqueId id;
    ncclGetUniqueId(&id);
    if (ncclCommInitRank(&comm, 1, id, 0) != ncclSuccess) {
        fprintf(stderr, "ncclCommInitRank failed\n");
        return 1;
    }
    size_t counts[] = {1, 7, 1000, (1u << 20) + 3};
    for (int c = 0; c < 4; c++) { /* one tensor, its buffers freed and new */
        ref_t r = ref_new(counts[c]);
        steps_f32(&r, counts[c], 0, ncclSum, 0);
        steps_f32(&r, counts[c], 1, ncclSum, 0);
        free(r.ew), free(r.es);
    }
    ref_t r = ref_new(4099);
    steps_f32(&r, 4099, 0, ncclAvg, 0); /* n = 1: the average is the sum */
    steps_f32(&r, 4099, 1, ncclAvg, 1);
    free(r.ew), free(r.es);
    steps_16(4099, ncclFloat16);
    steps_16(4099, ncclBfloat16);
    nonfinite(65536);
    passthrough();
    graph(100003);
    commpress_stats_t s = stats();
    CHECK(s.state_bytes > 0, "no state reported");
    ncclCommDestroy(comm);
    CHECK(stats().state_bytes == 0, "state not released: %llu", stats().state_bytes);
    printf("%d passed, %d failed\n", npass, nfail);
    return nfail ? 1 : 0;
}
