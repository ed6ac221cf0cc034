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

/* c ? a : b without a branch (c is 0 or 1), for loops that must
 * vectorize. */
CP_HD uint32_t cp_select_u32(int c, uint32_t a, uint32_t b)
{
    const uint32_t m = 0u - (uint32_t)c;
    return (a & m) | (b & ~m);
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
    const uint32_t u = cp_f32_bits(x);
    const uint32_t sign = (u >> 16) & 0x8000u;
    const uint32_t a = u & 0x7fffffffu;
    /* Every case is computed in integers and one selected by masks, so
     * that loops over arrays vectorize (compressors/cast.c). Unselected
     * cases may wrap. */
    /* Normal: rebias exponent (127 -> 15) and round the 13 dropped bits to
     * nearest even. */
    const uint32_t normal =
        (a + ((uint32_t)(15 - 127) << 23) + 0xfffu + ((a >> 13) & 1u)) >> 13;
    /* Subnormal or zero in binary16: |x| * 2^24 rounded to nearest even,
     * from the significand shifted right by 126 - exponent (31 where that
     * is out of range: anything shifted by 25 or more rounds to 0). */
    const uint32_t e = a >> 23;
    const uint32_t sh = e >= 95u && e <= 126u ? 126u - e : 31u;
    const uint32_t m = (a & 0x7fffffu) | (e ? 0x800000u : 0u);
    const uint32_t q = m >> sh, rem = m & ((1u << sh) - 1u),
                   half = (1u << sh) >> 1;
    const uint32_t small = q + (rem > half || (rem == half && (q & 1u)));
    /* Inf and NaN keep their class; finite values that round to >= 65520
     * saturate to 65504. */
    const uint32_t special = cp_select_u32(a > 0x7f800000u, 0x7e00u,
                                           cp_select_u32(a == 0x7f800000u, 0x7c00u, 0x7bffu));
    const uint32_t r = cp_select_u32(a >= 0x477ff000u, special,
                                     cp_select_u32(a < 0x38800000u, small, normal));
    return (uint16_t)(sign | r);
}

/* fp32 -> binary16 rounding toward zero, for |x| <= 65504 (the scaled
 * casts, compressors/cast.c: the result never exceeds |x|). */
CP_HD uint16_t cp_f32_to_f16_rtz(float x)
{
    const uint32_t u = cp_f32_bits(x);
    const uint32_t sign = (u >> 16) & 0x8000u;
    const uint32_t a = u & 0x7fffffffu;
    /* In integers, like cp_f32_to_f16. Subnormal or zero: multiples of
     * 2^-24, truncated. */
    const uint32_t e = a >> 23;
    const uint32_t sh = e >= 95u && e <= 126u ? 126u - e : 31u;
    const uint32_t small = ((a & 0x7fffffu) | (e ? 0x800000u : 0u)) >> sh;
    const uint32_t normal = (a >> 13) - ((uint32_t)(127 - 15) << 10);
    const uint32_t r = cp_select_u32(a >= 0x477fe000u, 0x7bffu, /* 65504 and beyond */
                                     cp_select_u32(a < 0x38800000u, small, normal));
    return (uint16_t)(sign | r);
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
    const uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
    const uint32_t exp = ((uint32_t)h >> 10) & 0x1fu;
    const uint32_t mant = (uint32_t)h & 0x3ffu;
    /* Selected by masks like cp_f32_to_f16. Zero or subnormal: mant *
     * 2^-24, exact in fp32 (and >= 0, so the sign is one bit to set). */
    const uint32_t small = cp_f32_bits((float)(int32_t)mant * 5.9604644775390625e-8f);
    const uint32_t r = cp_select_u32(exp == 0x1fu, 0x7f800000u | (mant << 13),
                                     cp_select_u32(exp == 0, small,
                                                   ((exp + 127 - 15) << 23) | (mant << 13)));
    return cp_bits_f32(sign | r);
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
