/* Random-k sparsification (a standard baseline: GRACE, BytePS): k =
 * ceil(density * n) entries, a uniformly random k-subset drawn from a seed
 * that is the same on every rank for a call (cp_params_t.shared_seed), so
 * all ranks send the same indices and their sum stays k-sparse.
 *
 * Floyd's algorithm draws the subset in k steps (for j = n-k .. n-1: take
 * t uniform in [0, j], or j itself if t is taken already), marking a bitmap
 * of n bits in scratch; a scan of the bitmap lists the indices in
 * increasing order. The numbers are integers only (64 counter-based random
 * bits a step), so every machine draws the same subset. Wire: topk's
 * sparse format, so topk's decoder, validation and feedback (DGC's masking
 * too) serve it unchanged. Biased (it drops n - k entries): error feedback
 * by default.
 *
 * This file and one line in compressors/registry.c are all there is to
 * it: the proof that adding a codec is one file (docs/design.md,
 * "Extending"). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "compressors/compressor.h"
#include "util/hd.h"

static const cp_param_t randk_params[] = {
    {.name = "COMMPRESS_RANDK_DENSITY", .dflt = "0.01", .type = CP_PT_DOUBLE,
     .offset = offsetof(cp_params_t, density), .lo = 0, .hi = 1,
     .open = CP_OPEN_LO, .must_match = 1,
     .doc = "randk: fraction of entries sent, chosen at random (the same "
            "on every rank), k = ceil(density * count)."},
};

static size_t randk_max_size(const cp_params_t *p, size_t n)
{
    return cp_sparse_max_size(n ? cp_topk_k(p->density, n) : 0, 0);
}

static size_t randk_scratch_size(const cp_params_t *p, size_t n)
{
    (void)p;
    return (n + 63) / 64 * sizeof(uint64_t);
}

/* Uniform in [0, m), from 64 random bits (bias below m / 2^64). */
static uint64_t draw(uint64_t seed, uint64_t j, uint64_t m)
{
    uint64_t r = ((uint64_t)cp_hash32(seed, 2 * j) << 32) |
                 cp_hash32(seed, 2 * j + 1);
    return (uint64_t)(((unsigned __int128)r * m) >> 64);
}

static cp_status_t randk_encode(const cp_params_t *p, const float *x, size_t n,
                                void *out, size_t cap, size_t *len_p,
                                void *scratch)
{
    const size_t k = n ? cp_topk_k(p->density, n) : 0;
    const size_t words = (n + 63) / 64;
    uint64_t *taken = scratch;
    unsigned char *idx = (unsigned char *)out + 4;
    float *val = (float *)(idx + 4 * k);
    size_t m = 0;

    if (cap < randk_max_size(p, n))
        return CP_ERR_NOSPACE;
    if (n > UINT32_MAX)
        return CP_ERR_UNSUPPORTED;
    memset(taken, 0, words * sizeof(uint64_t));
    for (size_t j = n - k; j < n; j++) {
        uint64_t t = draw(p->shared_seed, j, (uint64_t)j + 1);
        if (taken[t / 64] >> (t % 64) & 1)
            t = j; /* j is new: every t drawn so far is below it */
        taken[t / 64] |= 1ull << (t % 64);
    }
    for (size_t w = 0; w < words; w++)
        for (uint64_t b = taken[w]; b; b &= b - 1) {
            size_t i = 64 * w + (size_t)__builtin_ctzll(b);
            cp_put_u32(idx + 4 * m, (uint32_t)i);
            cp_put_f32(val + m, x[i]);
            m++;
        }
    cp_sparse_finish(out, m, len_p);
    return CP_OK;
}

static cp_status_t randk_decode(const cp_params_t *p, const void *in,
                                size_t len, float alpha, const float *y,
                                float *out, size_t n)
{
    (void)p;
    return cp_sparse_decode(in, len, alpha, y, out, n);
}

const cp_compressor_ops_t cp_compressor_randk = {
    .name = "randk",
    .doc = "random-k sparsification: k entries at random, the same on "
           "every rank",
    .caps = CP_CODEC_SPARSE | CP_CODEC_BIASED,
    .params = randk_params,
    .nparams = sizeof(randk_params) / sizeof(*randk_params),
    .max_size = randk_max_size,
    .scratch_size = randk_scratch_size,
    .encode = randk_encode,
    .decode = randk_decode,
    .entries = cp_topk_entries,
    .adapt = cp_adapt_density,
};
