/* Per-element arithmetic shared by the CPU code and the CUDA kernels:
 * CP_HD marks functions that compile for both host and device, so the CPU
 * unit tests cover exactly the math the GPU runs. */
#ifndef CP_HD_H
#define CP_HD_H

#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define CP_HD __host__ __device__ __forceinline__
#else
#define CP_HD static inline __attribute__((always_inline))
#endif

CP_HD uint32_t cp_f32_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof(u));
    return u;
}

CP_HD float cp_bits_f32(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof(x));
    return x;
}

/* True for Inf and NaN: the exponent field is all ones. */
CP_HD int cp_nonfinite(float x)
{
    return (cp_f32_bits(x) & 0x7f800000u) == 0x7f800000u;
}

/* fp32 -> IEEE binary16, round to nearest even. Finite values beyond the
 * binary16 range saturate to +-65504 rather than becoming Inf: a finite
 * gradient must not turn into an Inf that makes loss scalers skip steps.
 * Inf and NaN keep their class. */
CP_HD uint16_t cp_f32_to_f16(float x)
{
    uint32_t u = cp_f32_bits(x);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;

    if (a >= 0x7f800000u) /* Inf or NaN */
        return (uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0u));
    if (a >= 0x477ff000u) /* rounds to >= 65520: saturate */
        return (uint16_t)(sign | 0x7bffu);
    if (a < 0x38800000u) { /* subnormal or zero in binary16 */
        /* Adding 0.5 shifts the value so the FPU does the rounding. */
        float f = cp_bits_f32(a) + 0.5f;
        return (uint16_t)(sign | (cp_f32_bits(f) - 0x3f000000u));
    }
    /* Normal: rebias exponent (127 -> 15) and round the 13 dropped bits to
     * nearest even. */
    uint32_t mant_odd = (a >> 13) & 1u;
    a += ((uint32_t)(15 - 127) << 23) + 0xfffu + mant_odd;
    return (uint16_t)(sign | (a >> 13));
}

/* fp32 -> binary16 rounding toward zero, for |x| <= 65504 (the scaled
 * casts, compressors/cast.c: the result never exceeds |x|). */
CP_HD uint16_t cp_f32_to_f16_rtz(float x)
{
    uint32_t u = cp_f32_bits(x);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;

    if (a >= 0x477fe000u) /* 65504 and beyond */
        return (uint16_t)(sign | 0x7bffu);
    if (a < 0x38800000u) /* subnormal or zero: multiples of 2^-24, truncated */
        return (uint16_t)(sign | (uint32_t)(cp_bits_f32(a) * 16777216.0f));
    return (uint16_t)(sign | ((a >> 13) - ((uint32_t)(127 - 15) << 10)));
}

/* The largest finite values of the 16-bit formats, as fp32. */
#define CP_F16_MAX 65504.0f
#define CP_BF16_MAX 3.38953139e38f

/* The casts' scale (compressors/cast.c): 0 when amax <= max (or not
 * finite: such a vector is never sent), else the exponent e >= 1 of the
 * smallest power of two with amax * 2^-e <= max. */
CP_HD int cp_cast_exponent(float amax, float max)
{
    int e = 1;
    if (!(amax > max) || cp_nonfinite(amax))
        return 0;
    /* Halving is exact for normal values; a few steps from a start that
     * is at most one too small. */
    uint32_t ea = (cp_f32_bits(amax) >> 23) & 0xffu, em = (cp_f32_bits(max) >> 23) & 0xffu;
    if (ea > em + 1)
        e = (int)(ea - em) - 1;
    while (amax * cp_bits_f32((uint32_t)(127 - e) << 23) > max)
        e++;
    return e;
}

/* 2^e as fp32, for 0 <= e <= 127. */
CP_HD float cp_pow2f(int e)
{
    return cp_bits_f32((uint32_t)(127 + e) << 23);
}

CP_HD float cp_f16_to_f32(uint16_t h)
{
    uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
    uint32_t exp = ((uint32_t)h >> 10) & 0x1fu;
    uint32_t mant = (uint32_t)h & 0x3ffu;

    if (exp == 0x1fu)
        return cp_bits_f32(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) { /* zero or subnormal: mant * 2^-24, exact in fp32 */
        float v = (float)mant * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return cp_bits_f32(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

/* fp32 -> bfloat16, round to nearest even; finite values that would round
 * to Inf saturate to the largest finite bfloat16; NaN stays NaN. */
CP_HD uint16_t cp_f32_to_bf16(float x)
{
    uint32_t u = cp_f32_bits(x);
    uint32_t a = u & 0x7fffffffu;

    if (a > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    if (a == 0x7f800000u)
        return (uint16_t)(u >> 16);
    if (a >= 0x7f7f8000u)
        return (uint16_t)(((u >> 16) & 0x8000u) | 0x7f7fu);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

CP_HD float cp_bf16_to_f32(uint16_t h)
{
    return cp_bits_f32((uint32_t)h << 16);
}

/* fp32 -> bfloat16 rounding toward zero (finite x): the scaled casts. */
CP_HD uint16_t cp_f32_to_bf16_rtz(float x)
{
    return (uint16_t)(cp_f32_bits(x) >> 16);
}

/* The conversions for a result stored in the caller's 16-bit buffer
 * (ncclAllReduce of fp16/bf16): round to nearest even, and a value beyond
 * the format's range becomes Inf, as the plain 16-bit sum would; never a
 * silent clip. */
CP_HD uint16_t cp_f32_to_f16_ovf(float x)
{
    uint32_t a = cp_f32_bits(x) & 0x7fffffffu;
    if (a >= 0x477ff000u && a <= 0x7f800000u) /* rounds to >= 65520, or Inf */
        return (uint16_t)(((cp_f32_bits(x) >> 16) & 0x8000u) | 0x7c00u);
    return cp_f32_to_f16(x);
}

CP_HD uint16_t cp_f32_to_bf16_ovf(float x)
{
    uint32_t u = cp_f32_bits(x), a = u & 0x7fffffffu;
    if (a >= 0x7f7f8000u && a <= 0x7f800000u)
        return (uint16_t)(((u >> 16) & 0x8000u) | 0x7f80u);
    return cp_f32_to_bf16(x);
}

/* FNV-1a over bytes: configuration hashes compared across ranks. */
CP_HD uint64_t cp_fnv1a(const void *p, size_t n)
{
    const unsigned char *b = (const unsigned char *)p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* Counter-based random numbers (a 32-bit integer hash of seed and index):
 * element i's random value does not depend on any other element, so CPU and
 * GPU, or any split of the work, draw the same numbers. */
CP_HD uint32_t cp_hash32(uint64_t seed, uint64_t i)
{
    uint64_t z = seed + i * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

/* Uniform in [0, 1) with 24 random bits: exactly representable in fp32. */
CP_HD float cp_uniform01(uint64_t seed, uint64_t i)
{
    return (float)(cp_hash32(seed, i) >> 8) * (1.0f / 16777216.0f);
}

#endif
