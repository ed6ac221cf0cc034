/* Per-element arithmetic of the codecs, shared by the CPU code and the CUDA
 * kernels (CP_HD): the CPU unit tests cover the same math the GPU runs,
 * and GPU output can be compared with CPU output bit for bit. The CUDA
 * code is compiled with -fmad=false so no multiply-add is contracted. */
#ifndef CP_CODEC_MATH_H
#define CP_CODEC_MATH_H

#include "util/hd.h"

/* Quantization level: floor((x - min) / unit + r) clamped to [0, qmax].
 * Clamping first makes the value non-negative, where truncation is floor,
 * so the CPU loop vectorizes without a floorf call; a NaN fails the first
 * comparison and becomes level 0. qmax <= 255, so the signed conversion
 * (which vectorizes) is exact. */
CP_HD uint32_t cp_quant_level(float x, float min, float inv_unit, float r,
                              float qmax)
{
    float t = (x - min) * inv_unit + r;
    t = t > 0.0f ? t : 0.0f;
    t = t < qmax ? t : qmax;
    return (uint32_t)(int32_t)t;
}

CP_HD float cp_quant_value(uint32_t q, float min, float unit)
{
    return min + (float)q * unit;
}

/* Error feedback's add (ef's prepare, and the fused encodes a block at a
 * time): v = e + g over m floats; nonzero when any v is Inf or NaN. */
CP_HD uint32_t cp_ef_add(const float *e, const float *g, float *v, size_t m)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < m; i++) {
        const float s = e[i] + g[i];
        v[i] = s;
        bad |= (uint32_t)cp_nonfinite(s);
    }
    return bad;
}

/* |x| as bits: orders like |x| for finite x (top-k selection). */
CP_HD uint32_t cp_mag_bits(float x) { return cp_f32_bits(x) & 0x7fffffffu; }

/* The seed of one encode: a function of the configured seed, the rank, the
 * phase and chunk of the algorithm, the tensor's completed steps and its
 * count. The GPU computes it from a step counter kept on the device. */
CP_HD uint64_t cp_seed_mix(uint64_t base, int rank, int phase, int chunk,
                           uint64_t steps, uint64_t count)
{
    uint64_t s = base ^ ((uint64_t)rank << 40) ^ ((uint64_t)phase << 56) ^
                 ((uint64_t)(uint32_t)chunk << 20);
    return ((uint64_t)cp_hash32(s, steps) << 32) | cp_hash32(s + 1, count);
}

/* The sign codec's sum of squares has one fixed order, so the CPU and the
 * GPU get the same scale bit for bit: blocks of CP_SUMSQ_BLOCK elements; in
 * a block, lane l (of 32) adds elements k * 32 + l in sequence, in double;
 * the lanes then fold as lane[l] += lane[l + w] for w = 16, 8, 4, 2, 1 (a
 * warp's shfl_down tree). The block sums reduce level by level by the same
 * rule until one value remains. */
#define CP_SUMSQ_BLOCK 2048
#define CP_SUMSQ_LANES 32

#ifndef __CUDACC__
/* That sum of x[0..n)'s squares on the CPU (compressors/sign.c), without
 * scratch: DGC's clip norm. 0 for n = 0. */
double cp_sumsq_fixed(const float *x, size_t n);
#endif

#endif
