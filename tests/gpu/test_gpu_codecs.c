/* GPU codecs against their CPU twins, on a GPU (exit 77, "skipped", when
 * there is none):
 *  - encodings equal byte for byte (sign: the scale may differ in its last
 *    bit, the sum of squares being added in another order; the bits equal);
 *  - decodes of the same message equal bit for bit, for y = NULL, y = out
 *    and error feedback (alpha = -1, y = v);
 *  - fp16/bf16 messages out of the format's range travel scaled alike;
 *  - non-finite input sets the flag; an aborted decode leaves a state alone
 *    or writes NaN into a result; a malformed message sets the error flag
 *    and writes nothing. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "collectives/allreduce.h"
#include "compressors/codec_math.h"
#include "compressors/cuda/cp_cuda.h"
#include "common/check.h"
#include "tests/common/codecs.h"

static cudaStream_t S;
static int g_ties; /* coarse values: many equal magnitudes (top-k ties) */
static float g_big; /* nonzero: the middle element (the casts' scale) */

static float *gradient(size_t n, uint64_t seed)
{
    float *x = cp_test_gradient(n, seed, g_ties, 1);
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
    flags_and_malformed();
    printf("%d passed, %d failed\n", npass, nfail);
    return nfail ? 1 : 0;
}
