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

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__CUDACC__) && !defined(CP_NO_CLONES)
#define CP_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CP_CLONES
#endif

#define CP_INLINE static inline __attribute__((always_inline))

#endif
