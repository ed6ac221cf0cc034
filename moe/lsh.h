/* Cross-polytope locality-sensitive hashing of rows (LSH-MoE, Nie et al.,
 * NeurIPS 2024; ALGORITHMS.md): L hash functions, each a pseudo-random
 * rotation of the row followed by the nearest signed axis,
 *   h_l(x) = 2 i + (y_i < 0),  i = argmax_i |y_i|,  y = H S3 H S2 H S1 x,
 * where x is zero-padded to D = the next power of two >= d, H is the
 * normalized Walsh-Hadamard transform and S1..S3 are diagonals of random
 * signs drawn from (seed, l) (Andoni et al. 2015): L x 3 x D log2 D
 * operations per row instead of a dense rotation's L d^2. Rows whose L
 * codes are all equal share a bucket. Everything is a function of the
 * inputs and the seed: the same on every rank and every run. */
#ifndef CP_LSH_H
#define CP_LSH_H

#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

#define CP_LSH_MAX_HASHES 32
#define CP_LSH_MAX_DIM (1u << 20)

typedef struct {
    size_t d, D;        /* row length, and its padded power of two */
    size_t L;           /* hash functions */
    uint64_t seed;
    float *signs;       /* L x 3 x D of +-1 */
} cp_lsh_t;

/* 1 <= d <= CP_LSH_MAX_DIM, 1 <= L <= CP_LSH_MAX_HASHES. */
cp_status_t cp_lsh_init(cp_lsh_t *h, size_t d, size_t L, uint64_t seed);
void cp_lsh_fini(cp_lsh_t *h);
/* Floats of scratch cp_lsh_hash needs. */
static inline size_t cp_lsh_scratch(const cp_lsh_t *h) { return h->D; }
/* The L codes of one row (each in [0, 2 D)). */
void cp_lsh_hash(const cp_lsh_t *h, const float *row, uint32_t *codes,
                 float *scratch);

/* The clustering of n rows of d floats (row r at rows + r * stride):
 * bucket[r] = the bucket of row r, buckets numbered in the order their
 * first row comes; returns the number of buckets. Needs
 * cp_lsh_cluster_scratch(h, n) bytes; CP_ERR_INVALID for bad sizes. */
size_t cp_lsh_cluster_scratch(const cp_lsh_t *h, size_t n);
cp_status_t cp_lsh_cluster(const cp_lsh_t *h, const float *rows, size_t n,
                           size_t stride, uint32_t *bucket, size_t *nbuckets,
                           void *scratch);
/* centroids[j] = the mean of bucket j's rows (summed in row order, so the
 * same bits everywhere); count[j] = its rows. */
void cp_lsh_centroids(const float *rows, size_t n, size_t d, size_t stride,
                      const uint32_t *bucket, size_t nbuckets,
                      float *centroids, uint32_t *count);

#endif
