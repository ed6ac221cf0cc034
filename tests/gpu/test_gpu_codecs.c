/* GPU codecs against their CPU twins, on a GPU (exit 77, "skipped", when
 * there is none):
 *  - encodings equal byte for byte (sign: the scale may differ in its last
 *    bit, the sum of squares being added in another order; the bits equal);
 *  - decodes of the same message equal bit for bit, for y = NULL, y = out
 *    and error feedback (alpha = -1, y = v);
 *  - fp16/bf16 messages out of the format's range travel scaled alike;
 *  - non-finite input sets the flag; an aborted decode leaves a state alone
 *    or writes NaN into a result; a malformed message sets the error flag
 *    and writes nothing;
 *  - top-k with fp16 values and with the sampled threshold (every case of
 *    it: the candidates as they are, the selection among them, the exact
 *    fallback; messages shorter than k) as the CPU's, byte for byte;
 *  - the feedback twins (EF21, EControl, EF21-SGDM, DGC with clipping)
 *    against their CPU variants over several steps: prepare's v and aux,
 *    the committed state and the estimators' result bit for bit; an
 *    aborted step leaves the state alone. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "collectives/allreduce.h"
#include "compressors/codec_math.h"
#include "compressors/cuda/cp_cuda.h"
#include "compressors/cuda/gpu_feedback.h"
#include "compressors/feedback.h"
#include "common/check.h"
#include "tests/common/codecs.h"

static cudaStream_t S;
static int g_ties; /* coarse values: many equal magnitudes (top-k ties) */
static int g_spiky; /* one large element in 61: a sample misjudges k */
static float g_big; /* nonzero: the middle element (the casts' scale) */

static float *gradient(size_t n, uint64_t seed)
{
    float *x = cp_test_gradient(n, seed, g_ties, 1);
    for (size_t i = 0; g_spiky && i < n; i += 61)
        x[i] *= 1e4f;
    if (g_big != 0.0f && n > 0)
        x[n / 2] = g_big;
    return x;
}

static void *dev(const void *h, size_t bytes)
{
    void *d;
    CU(cudaMalloc(&d, bytes ? bytes : 4));
    if (h)
        CU(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    return d;
}

static void host(void *h, const void *d, size_t bytes)
{
    CU(cudaStreamSynchronize(S));
    CU(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost));
}

static int same_bits(const float *a, const float *b, size_t n, size_t *first)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], 4) != 0) {
            *first = i;
            return 0;
        }
    return 1;
}

static void one_case(const cp_compressor_ops_t *c, cp_params_t p, size_t n,
                     const char *what)
{
    float *x = gradient(n, n * 131 + (uint64_t)p.bits), *y = gradient(n, 5);
    const size_t len = c->max_size(&p, n), slot = cp_slot_size(len);
    cp_params_t pc = p;
    pc.seed = cp_seed_mix(p.seed, 0, 1, 3, 0, n); /* as the GPU computes it */
    unsigned char *cmsg = malloc(len + 8), *gslot = malloc(slot);
    void *cscratch = malloc(c->scratch_size(&pc, n) + 1);
    size_t clen = 0, first = 0;
    CHECK(c->encode(&pc, x, n, cmsg, len, &clen, cscratch) == CP_OK, "cpu encode");

    float *dx = dev(x, n * 4), *dy = dev(y, n * 4), *dout = dev(NULL, n * 4);
    unsigned char *dslot = dev(NULL, slot);
    int *dflags = dev(NULL, 64);
    uint64_t *dsteps = dev(NULL, 8);
    void *dscratch = dev(NULL, cp_cuda_encode_scratch(c, &p, n) + 1);
    CU(cudaMemset(dflags, 0, 64));
    CU(cudaMemset(dsteps, 0, 8));
    CHECK(cp_cuda_encode_slot(c, &p, dx, n, dflags, dsteps, 0, 1, 3, n, dslot,
                              slot, dscratch, S) == CP_OK, "gpu encode");
    host(gslot, dslot, slot);
    uint32_t flags, glen;
    memcpy(&flags, gslot, 4);
    memcpy(&glen, gslot + 4, 4);
    CHECK(flags == 0 && glen == clen, "%s n=%zu: header %u %u vs len %zu", what, n,
          flags, glen, clen);
    if (c == &cp_compressor_sign && n > 0) {
        float cs, gs;
        memcpy(&cs, cmsg, 4);
        memcpy(&gs, gslot + CP_SLOT_HDR, 4);
        CHECK(fabsf(cs - gs) <= 1.5f * (nextafterf(cs, INFINITY) - cs),
              "%s n=%zu: scale %a vs %a", what, n, cs, gs);
        CHECK(memcmp(cmsg + 4, gslot + CP_SLOT_HDR + 4, clen - 4) == 0, "%s n=%zu: sign bits differ", what, n);
    } else {
        CHECK(memcmp(cmsg, gslot + CP_SLOT_HDR, clen) == 0, "%s n=%zu: encodings differ", what, n);
    }

    /* Decode the CPU's message on both sides: result, accumulate, commit. */
    memcpy(gslot + CP_SLOT_HDR, cmsg, clen);
    uint32_t l32 = (uint32_t)clen;
    memset(gslot, 0, 4);
    memcpy(gslot + 4, &l32, 4);
    CU(cudaMemcpy(dslot, gslot, slot, cudaMemcpyHostToDevice));
    float *cout = malloc(n * 4 + 4), *gout = malloc(n * 4 + 4);
    struct { float alpha; int y; } modes[] = {{1.0f, 0}, {0.25f, 1}, {-1.0f, 2}};
    for (int m = 0; m < 3; m++) {
        memcpy(cout, y, n * 4);
        CU(cudaMemcpy(dout, y, n * 4, cudaMemcpyHostToDevice));
        /* y: none / y == out (accumulate) / y = x, out separate (commit) */
        const float *cy = modes[m].y == 0 ? NULL : modes[m].y == 1 ? cout : x;
        const float *gy = modes[m].y == 0 ? NULL : modes[m].y == 1 ? dout : dx;
        CHECK(c->decode(&pc, cmsg, clen, modes[m].alpha, cy, cout, n) == CP_OK, "cpu decode");
        CHECK(cp_cuda_decode_slot(c, &p, dslot, slot, modes[m].alpha, gy, dout, n,
                                  NULL, 0, dflags + 4, S) == CP_OK, "gpu decode");
        host(gout, dout, n * 4);
        CHECK(same_bits(cout, gout, n, &first), "%s n=%zu mode %d: element %zu: %a vs %a",
              what, n, m, first, cout[first], gout[first]);
    }
    int hflags[16];
    host(hflags, dflags, 64);
    CHECK(hflags[4] == 0, "%s: error flag set on a good message", what);
    free(x), free(y), free(cmsg), free(gslot), free(cscratch), free(cout), free(gout);
    cudaFree(dx), cudaFree(dy), cudaFree(dout), cudaFree(dslot), cudaFree(dflags);
    cudaFree(dsteps), cudaFree(dscratch);
}

static cp_params_t params(void)
{
    cp_params_t p = {.density = 0.01, .topk_select = CP_TOPK_EXACT,
                     .topk_sample_min = 1 << 18, .bits = 4, .bucket = 512,
                     .rounding = CP_ROUND_NEAREST, .seed = 42};
    return p;
}

/* A feedback variant's twin against its CPU file over four steps of one
 * tensor (the state evolves), each step: prepare (v, aux, the non-finite
 * flag), the encode of v, commit from that message, and an estimator's
 * finish of the message's decode (a 1-rank sum). Step 2 holds a NaN: the
 * flag is set, the commit and finish are skipped on both sides (the GPU by
 * its abort flag), and the state must stay what it was. */
static void fb_case(const cp_feedback_ops_t *fb, const cp_compressor_ops_t *c,
                    cp_params_t p, cp_fb_params_t fp, size_t n, const char *what)
{
    const cp_gpu_feedback_t *gfb = fb->gpu;
    const size_t sf = fb->state_floats(n), len = c->max_size(&p, n),
                 slot = cp_slot_size(len);
    float *st = calloc(sf + 1, 4), *gst = malloc(sf * 4 + 4), *work = malloc(n * 4 + 4),
          *aux = malloc(n * 4 + 4), *tmp = malloc(n * 4 + 4), *out = malloc(n * 4 + 4),
          *gv = malloc(n * 4 + 4), *gaux = malloc(n * 4 + 4), *gout = malloc(n * 4 + 4);
    unsigned char *msg = malloc(len + 8);
    void *cscratch = malloc(c->scratch_size(&p, n) + 1);
    float *dst = dev(st, sf * 4 + 4), *dg = dev(NULL, n * 4), *dv = dev(NULL, n * 4),
          *daux = dev(NULL, n * 4), *dtmp = dev(NULL, n * 4), *dout = dev(NULL, n * 4);
    unsigned char *dslot = dev(NULL, slot);
    int *dflags = dev(NULL, 64), hf[16];
    uint64_t *dsteps = dev(NULL, 8);
    void *dfs = dev(NULL, gfb->scratch(&fp, n) + 256);
    void *dcs = dev(NULL, cp_cuda_encode_scratch(c, &p, n) + 1);
    size_t first = 0, clen = 0;
    uint64_t clean = 0; /* the device's step counter: seeds of sampled top-k */
    CU(cudaMemset(dsteps, 0, 8));
    for (int t = 0; t < 4; t++) {
        float *g = gradient(n, 900 + 7 * n + t);
        if (t == 2 && n > 1)
            g[n / 2] = NAN;
        fp.first = t == 0;
        int bad = 0;
        const float *v = fb->prepare(&fp, st, g, work, aux, n, &bad);
        CU(cudaMemcpy(dg, g, n * 4, cudaMemcpyHostToDevice));
        CU(cudaMemset(dflags, 0, 64));
        CHECK(gfb->prepare(&fp, dst, dg, dv, daux, n, dfs, dflags, S) == CP_OK, "prepare");
        host(gv, dv, n * 4);
        host(hf, dflags, 64);
        CHECK(hf[0] == bad, "%s n=%zu step %d: non-finite flag %d vs %d", what, n, t, hf[0], bad);
        CHECK(same_bits(v, gv, n, &first), "%s n=%zu step %d: v[%zu] %a vs %a", what, n,
              t, first, v[first], gv[first]);
        if (fb->uses_aux) {
            host(gaux, daux, n * 4);
            CHECK(same_bits(aux, gaux, n, &first), "%s n=%zu step %d: aux[%zu]", what, n,
                  t, first);
        }
        if (!bad) {
            cp_params_t pc = p;
            pc.seed = cp_seed_mix(p.seed, 0, 0, 0, clean++, n);
            CHECK(c->encode(&pc, v, n, msg, len, &clen, cscratch) == CP_OK, "cpu encode");
            CHECK(fb->commit(&fp, st, v, aux, tmp, c, &pc, msg, clen, n) == CP_OK, "commit");
            if (fb->finish) {
                CHECK(c->decode(&pc, msg, clen, 1.0f, NULL, out, n) == CP_OK, "decode");
                fb->finish(st, out, n);
            }
        }
        /* The GPU's message is its own encode of its own v (equal bits). */
        CHECK(cp_cuda_encode_slot(c, &p, dv, n, dflags, dsteps, 0, 0, 0, n, dslot, slot,
                                  dcs, S) == CP_OK, "gpu encode");
        cp_cuda_slots_flag(dslot, 1, slot, dflags + 3, S); /* any: the abort */
        CHECK(gfb->commit(&fp, dst, dv, daux, dtmp, c, &p, dslot, slot, n, dflags + 3,
                          dflags + 4, S) == CP_OK, "gpu commit");
        if (gfb->finish) {
            CHECK(cp_cuda_decode_slot(c, &p, dslot, slot, 1.0f, NULL, dout, n, dflags + 3,
                                      1, dflags + 4, S) == CP_OK, "gpu decode");
            CHECK(gfb->finish(dst, dout, n, 1.0f, dflags + 3, dflags + 4, S) == CP_OK, "finish");
            host(gout, dout, n * 4);
            if (!bad)
                CHECK(same_bits(out, gout, n, &first), "%s n=%zu step %d: result[%zu] %a vs %a",
                      what, n, t, first, out[first], gout[first]);
            else
                CHECK(n < 2 || isnan(gout[0]), "%s: aborted result not NaN", what);
        }
        cp_cuda_step(dsteps, dflags + 3, dflags + 4, S);
        host(gst, dst, sf * 4);
        host(hf, dflags, 64);
        CHECK(hf[4] == 0, "%s n=%zu step %d: error flag", what, n, t);
        CHECK(same_bits(st, gst, sf, &first), "%s n=%zu step %d: state[%zu] %a vs %a", what,
              n, t, first, st[first], gst[first]);
        free(g);
    }
    free(st), free(gst), free(work), free(aux), free(tmp), free(out), free(gv);
    free(gaux), free(gout), free(msg), free(cscratch);
    cudaFree(dst), cudaFree(dg), cudaFree(dv), cudaFree(daux), cudaFree(dtmp);
    cudaFree(dout), cudaFree(dslot), cudaFree(dflags), cudaFree(dsteps);
    cudaFree(dfs), cudaFree(dcs);
}

static void fb_cases(size_t n)
{
    cp_fb_params_t fp = {.momentum = 0.9f, .eta = 0.01f, .sgdm_eta = 0.1f};
    const cp_compressor_ops_t *codecs[] = {&cp_compressor_topk, &cp_compressor_quant,
                                           &cp_compressor_sign, &cp_compressor_none};
    const char *fbs[] = {"ef21", "econtrol", "ef21-sgdm"};
    char what[96];
    for (int i = 0; i < 3; i++)
        for (int c = 0; c < 4; c++) {
            snprintf(what, sizeof(what), "%s/%s", fbs[i], codecs[c]->name);
            fb_case(cp_feedback_find(fbs[i]), codecs[c], params(), fp, n, what);
        }
    /* DGC: top-k (f32 and fp16 values, exact and sampled), the dense
     * step (none), clipping off and on (0.5 / sqrt(1): most steps clip). */
    for (int v = 0; v < 4; v++) {
        cp_params_t p = params();
        p.topk_fp16 = v & 1;
        p.topk_select = v & 2 ? CP_TOPK_SAMPLED : CP_TOPK_EXACT;
        for (int clip = 0; clip < 2; clip++) {
            fp.clip = clip ? 0.5 : 0.0;
            snprintf(what, sizeof(what), "dgc/topk%s%s clip %g", p.topk_fp16 ? " fp16" : "",
                     v & 2 ? " sampled" : "", fp.clip);
            fb_case(&cp_feedback_dgc, &cp_compressor_topk, p, fp, n, what);
        }
    }
    fp.clip = 0.5;
    fb_case(&cp_feedback_dgc, &cp_compressor_none, params(), fp, n, "dgc/dense clip");
}

static void flags_and_malformed(void)
{
    const size_t n = 1000;
    float *x = gradient(n, 9), out[1000], keep[1000];
    cp_params_t p = params();
    const cp_compressor_ops_t *c = &cp_compressor_quant;
    const size_t slot = cp_slot_size(c->max_size(&p, n));
    x[17] = NAN;
    float *dx = dev(x, n * 4), *dv = dev(NULL, n * 4), *de = dev(NULL, n * 4);
    int *df = dev(NULL, 64);
    uint64_t *dsteps = dev(NULL, 8);
    unsigned char *dslot = dev(NULL, slot);
    CU(cudaMemset(df, 0, 64));
    CU(cudaMemset(dsteps, 0, 8));
    for (size_t i = 0; i < n; i++)
        keep[i] = (float)i;
    CU(cudaMemcpy(de, keep, n * 4, cudaMemcpyHostToDevice));
    cp_cuda_prepare(NULL, dx, CP_DT_F32, dv, n, df, S);
    cp_cuda_encode_slot(c, &p, dv, n, df, dsteps, 0, 1, 0, n, dslot, slot, NULL, S);
    cp_cuda_slots_flag(dslot, 1, slot, df + 1, S);
    /* A commit under the abort flag leaves the state; a result is NaN. */
    cp_cuda_decode_slot(c, &p, dslot, slot, -1.0f, dv, de, n, df + 1, 0, df + 4, S);
    host(out, de, n * 4);
    CHECK(memcmp(out, keep, n * 4) == 0, "aborted commit changed the state");
    cp_cuda_decode_slot(c, &p, dslot, slot, 1.0f, NULL, de, n, df + 1, 1, df + 4, S);
    host(out, de, n * 4);
    size_t nans = 0;
    for (size_t i = 0; i < n; i++)
        nans += isnan(out[i]);
    CHECK(nans == n, "aborted result: %zu of %zu NaN", nans, n);
    cp_cuda_step(dsteps, df + 1, df + 4, S);
    int hf[16];
    uint64_t steps;
    host(hf, df, 64);
    host(&steps, dsteps, 8);
    CHECK(hf[0] == 1 && hf[1] == 1 && hf[4] == 0 && steps == 0,
          "flags %d %d err %d steps %llu", hf[0], hf[1], hf[4], (unsigned long long)steps);

    /* Top-k message with a repeated index: error flag, nothing written. */
    const cp_compressor_ops_t *t = &cp_compressor_topk;
    unsigned char m[CP_SLOT_HDR + 4 + 24] = {0};
    uint32_t hdr[2] = {0, 28}, k = 3, idx[3] = {1, 5, 5};
    float val[3] = {1, 2, 3};
    memcpy(m, hdr, 8), memcpy(m + CP_SLOT_HDR, &k, 4);
    memcpy(m + CP_SLOT_HDR + 4, idx, 12), memcpy(m + CP_SLOT_HDR + 16, val, 12);
    unsigned char *dm = dev(m, sizeof(m));
    CU(cudaMemset(df, 0, 64));
    CU(cudaMemcpy(de, keep, n * 4, cudaMemcpyHostToDevice));
    cp_cuda_decode_slot(t, &p, dm, sizeof(m), 1.0f, de, de, 10, NULL, 0, df + 4, S);
    host(out, de, n * 4);
    host(hf, df, 64);
    CHECK(hf[4] == 1, "malformed top-k not flagged");
    CHECK(memcmp(out, keep, n * 4) == 0, "malformed top-k wrote");
    /* fp16 input to prepare: exact widening. */
    uint16_t h[1000];
    for (size_t i = 0; i < n; i++)
        h[i] = cp_f32_to_f16(isnan(x[i]) ? 0.0f : x[i]);
    void *dh = dev(h, sizeof(h));
    CU(cudaMemset(df, 0, 64));
    cp_cuda_prepare(NULL, dh, CP_DT_F16, dv, n, df, S);
    host(out, dv, n * 4);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += out[i] != cp_f16_to_f32(h[i]);
    CHECK(bad == 0, "fp16 prepare: %zu differ", bad);
    free(x);
    cudaFree(dx), cudaFree(dv), cudaFree(de), cudaFree(df), cudaFree(dsteps);
    cudaFree(dslot), cudaFree(dm), cudaFree(dh);
}

int main(void)
{
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("skipped: no CUDA device\n");
        return 77;
    }
    CU(cudaStreamCreate(&S));
    size_t sizes[] = {1, 7, 1000, 65537, (1u << 20) + 3};
    const cp_compressor_ops_t *plain[] = {&cp_compressor_none, &cp_compressor_fp16,
                                          &cp_compressor_bf16, &cp_compressor_sign};
    for (size_t s = 0; s < 5; s++) {
        for (int c = 0; c < 4; c++)
            one_case(plain[c], params(), sizes[s], plain[c]->name);
        for (int bits = 1; bits <= 8; bits++)
            for (int r = 0; r < 2; r++) {
                cp_params_t p = params();
                char what[64];
                p.bits = bits;
                p.rounding = r ? CP_ROUND_STOCHASTIC : CP_ROUND_NEAREST;
                p.bucket = bits % 2 ? 100 : 512;
                snprintf(what, sizeof(what), "quant b%d %s", bits, r ? "stoch" : "near");
                one_case(&cp_compressor_quant, p, sizes[s], what);
            }
        double dens[] = {0.001, 0.01, 0.3, 1.0};
        for (int d = 0; d < 4; d++) {
            cp_params_t p = params();
            char what[64];
            p.density = dens[d];
            snprintf(what, sizeof(what), "topk %g", dens[d]);
            one_case(&cp_compressor_topk, p, sizes[s], what);
        }
    }
    g_ties = 1;
    for (size_t s = 0; s < 5; s++) {
        cp_params_t p = params();
        p.density = 0.05;
        one_case(&cp_compressor_topk, p, sizes[s], "topk ties");
        one_case(&cp_compressor_quant, params(), sizes[s], "quant ties");
    }
    g_ties = 0;
    /* Beyond the 16-bit range (a server's sum): scaled, not clipped. */
    const float bigs[] = {80000.0f, -3e30f, FLT_MAX};
    for (int b = 0; b < 3; b++)
        for (size_t s = 0; s < 5; s++) {
            g_big = bigs[b];
            one_case(&cp_compressor_fp16, params(), sizes[s], "fp16 scaled");
            one_case(&cp_compressor_bf16, params(), sizes[s], "bf16 scaled");
        }
    g_big = 0.0f;
    /* Top-k with fp16 values; the sampled threshold on plain, tied and
     * spiky data (its three cases), at the densities DGC runs. */
    for (size_t s = 0; s < 5; s++)
        for (int d = 0; d < 3; d++)
            for (int v = 0; v < 6; v++) {
                const double dens[] = {0.001, 0.01, 0.05};
                cp_params_t p = params();
                char what[96];
                p.density = dens[d];
                p.topk_fp16 = v & 1;
                p.topk_select = v >= 2 ? CP_TOPK_SAMPLED : CP_TOPK_EXACT;
                g_ties = v >= 4;
                g_spiky = v == 3 || v == 2 ? (int)(s % 2) : 0;
                snprintf(what, sizeof(what), "topk %g%s%s%s%s", dens[d],
                         p.topk_fp16 ? " fp16" : "", v >= 2 ? " sampled" : "",
                         g_ties ? " ties" : "", g_spiky ? " spiky" : "");
                one_case(&cp_compressor_topk, p, sizes[s], what);
            }
    g_ties = g_spiky = 0;
    for (size_t s = 0; s < 5; s++)
        fb_cases(sizes[s]);
    flags_and_malformed();
    printf("%d passed, %d failed\n", npass, nfail);
    return nfail ? 1 : 0;
}
