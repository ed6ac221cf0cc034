/* Cross-polytope locality-sensitive hashing of rows (LSH-MoE, Nie et al.,
 * NeurIPS 2024; ALGORITHMS.md). A row x of d floats, zero-padded to D = the
 * next power of two >= d, is rotated by the pseudo-random rotation
 *   y = H S3 H S2 H S1 x
 * (H the normalized Walsh-Hadamard transform, S1..S3 diagonals of random
 * signs; Andoni et al. 2015, 3 D log2 D operations instead of a dense
 * rotation's d^2). Hash function l is a cross-polytope hash of one block of
 * B consecutive coordinates of y: with i the first index of the largest
 * |y_j| in the block,
 *   h_l(x) = 2 i + (y_i < 0),  i in [0, B).
 * The blocks of one rotation project x onto orthogonal random subspaces of
 * dimension B, so one rotation gives D / B hash functions (the dimension
 * reduction of FALCONN's cross-polytope family): B = D / P with P the
 * next power of two >= L, but at least min(D, 16); a further rotation, with
 * its own signs, starts when one runs out of blocks. For d = 1024 and L = 6
 * that is one rotation (B = 128) instead of six: L hash functions cost about
 * 3 D log2 D per row, not L times that. Rows whose L codes are all equal
 * share a bucket. Everything is a function of the inputs and the seed: the
 * same on every rank and every run. */
#ifndef CP_LSH_H
#define CP_LSH_H

#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

#define CP_LSH_MAX_HASHES 32
#define CP_LSH_MAX_DIM (1u << 20)
#define CP_LSH_MIN_BLOCK 16

typedef struct {
    size_t d, D;        /* row length, and its padded power of two */
    size_t L;           /* hash functions */
    size_t B;           /* coordinates per hash function (a power of two) */
    size_t rotations;   /* ceil(L / (D / B)) */
    uint64_t seed;
    float *signs;       /* rotations x 3 x D of +-1 / sqrt(D) (the normalization folded in) */
} cp_lsh_t;

/* 1 <= d <= CP_LSH_MAX_DIM, 1 <= L <= CP_LSH_MAX_HASHES. */
cp_status_t cp_lsh_init(cp_lsh_t *h, size_t d, size_t L, uint64_t seed);
void cp_lsh_fini(cp_lsh_t *h);
/* Floats of scratch cp_lsh_hash needs. */
static inline size_t cp_lsh_scratch(const cp_lsh_t *h) { return h->D; }
/* The L codes of one row (each in [0, 2 B)). */
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
