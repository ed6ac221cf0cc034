/* CP_CLONES marks the CPU codecs' hot loops: GCC compiles the function
 * twice, for the x86-64 baseline and for AVX2, and the dynamic loader picks
 * one per machine (target_clones, an ifunc). The same binary runs on any
 * x86-64 and uses 256-bit vectors where there are some, with no -march.
 *
 * Both clones compute the same bits, so ranks on different CPUs stay
 * identical: the loops are elementwise or keep a fixed lane order written
 * in the source, AVX2 brings no FMA, and the build passes
 * -ffp-contract=off in any case (CMakeLists.txt). Helpers called from a
 * clone are compiled into it only when inlined: mark them CP_INLINE. */
#ifndef CP_SIMD_H
#define CP_SIMD_H

#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__CUDACC__) && !defined(CP_NO_CLONES)
#define CP_CLONES __attribute__((target_clones("avx2", "default")))
#define CP_SIMD_CLONES 1
#else
#define CP_CLONES
#define CP_SIMD_CLONES 0
#endif

#define CP_INLINE static inline __attribute__((always_inline))

/* Eight floats / int32 as one value (GCC vector types): one AVX2 register,
 * two SSE2 ones. Comparisons give a cp_v8i of 0 / -1 per lane; casts
 * between the two reinterpret the bits. Loads and stores go through
 * memcpy (no alignment assumed). For loops the auto-vectorizer leaves
 * alone: float min/max reductions, early exits. */
typedef float cp_v8f __attribute__((vector_size(32)));
typedef int32_t cp_v8i __attribute__((vector_size(32)));

/* Lanewise m ? a : b (C has no vector ?:; a macro because a function
 * returning a vector warns about the ABI in the baseline clone). */
#define CP_V8_SELECT(m, a, b) \
    ((cp_v8f)(((cp_v8i)(a) & (m)) | ((cp_v8i)(b) & ~(m))))

/* Asks for the cache lines of [p, p + bytes) ahead of use. The codecs that
 * work block by block (sign's 2048 elements, quant's buckets) make two
 * passes over a block in cache; the hardware prefetcher sees a pause
 * between blocks, so the next block is requested during the current one
 * (sign encode measured 12 -> 14 GB/s with it). */
CP_INLINE void cp_prefetch(const void *p, size_t bytes)
{
    for (size_t o = 0; o < bytes; o += 64)
        __builtin_prefetch((const char *)p + o);
}

/* The next block: min(left, block) floats at next (nothing when left = 0,
 * after the last block). */
CP_INLINE void cp_prefetch_next(const float *next, size_t left, size_t block)
{
    cp_prefetch(next, (left < block ? left : block) * sizeof(float));
}

#endif
