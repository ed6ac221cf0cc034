/* What every GPU codec file shares: launch geometry, alignment-free wire
 * loads and stores, and the checks a decode kernel starts with. Included by
 * the .cu files of compressors/cuda/ only. */
#ifndef CP_DEVICE_CUH
#define CP_DEVICE_CUH

#include <stddef.h>
#include <stdint.h>

#include "compressors/codec_math.h"
#include "compressors/cuda/cp_cuda.h"
#include "compressors/cuda/gpu_codec.h"

#define THREADS 256
#define HDR CP_CUDA_SLOT_HDR

static inline unsigned grid_for(size_t n)
{
    size_t b = (n + THREADS - 1) / THREADS;
    if (b < 1)
        b = 1;
    return b > (1u << 20) ? (1u << 20) : (unsigned)b;
}

static inline size_t align256(size_t x) { return (x + 255) & ~(size_t)255; }

static __device__ __forceinline__ uint32_t ld_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static __device__ __forceinline__ void st_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static __device__ __forceinline__ float ld_f32(const unsigned char *p)
{
    return __uint_as_float(ld_u32(p));
}

/* Value j of a top-k message's value block (compressors/topk.c): f32, or
 * fp16 when the message's first word has bit 31 set. */
static __device__ __forceinline__ float ld_topk_value(const unsigned char *vals,
                                                      size_t j, int fp16)
{
    return fp16 ? cp_f16_to_f32((uint16_t)(vals[2 * j] | (vals[2 * j + 1] << 8)))
                : ld_f32(vals + 4 * j);
}

/* The block of `block` elements (out of `total`) that this warp owns:
 * false when there is none (the whole warp returns together). */
static __device__ __forceinline__ bool warp_block(size_t total, size_t block,
                                                  size_t *b, size_t *lo,
                                                  size_t *m, int *lane)
{
    *b = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32;
    *lane = threadIdx.x & 31;
    if (*b >= (total + block - 1) / block)
        return false;
    *lo = *b * block;
    *m = total - *lo < block ? total - *lo : block;
    return true;
}

/* Whether a decode must not run: the flags of earlier kernels, or a header
 * length other than the expected one (seen alike by every thread). */
static __device__ __forceinline__ bool unusable(const unsigned char *slot,
                                                uint32_t expect,
                                                const int *abort, int *err)
{
    /* An aborted step's slots carry no payload (length 0): not malformed. */
    if ((abort && *abort) || *err)
        return true;
    if (ld_u32(slot + 4) != expect) {
        if (blockIdx.x == 0 && threadIdx.x == 0)
            atomicOr(err, 1);
        return true;
    }
    return false;
}

#endif
