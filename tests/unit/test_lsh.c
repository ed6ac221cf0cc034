/* Cross-polytope LSH (moe/lsh.c): the fast pseudo-rotation's codes equal a
 * plain dense implementation's; hashing is deterministic in the seed;
 * near rows share buckets and random rows do not; buckets are numbered in
 * the order their first row comes and centroids are their means. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "moe/lsh.h"
#include "testutil.h"

/* The reference: rotation r = H S3 H S2 H S1 as a dense D x D matrix in
 * double (H the normalized Hadamard matrix, H[i][j] = (-1)^popcount(i & j)
 * / sqrt(D), S the signs of rotation r = l / (D / B)), y = R x, and hash l
 * is block k = l mod (D / B) of y: code = 2 argmax |y_{kB+i}| + (y < 0).
 * Returns the gap between the block's two largest |y| relative to the
 * largest. */
static double reference_code(const cp_lsh_t *h, size_t l, const float *x,
                             uint32_t *code)
{
    const size_t D = h->D, per = D / h->B, r = l / per, k0 = (l % per) * h->B;
    double *v = calloc(D, sizeof(double)), *w = malloc(D * sizeof(double));
    for (size_t i = 0; i < h->d; i++)
        v[i] = x[i];
    for (int k = 0; k < 3; k++) {
        const float *sg = h->signs + (r * 3 + (size_t)k) * D;
        for (size_t i = 0; i < D; i++)
            v[i] *= sg[i] < 0 ? -1.0 : 1.0;
        for (size_t i = 0; i < D; i++) {
            double s = 0;
            for (size_t j = 0; j < D; j++)
                s += (__builtin_popcountll(i & j) & 1 ? -v[j] : v[j]);
            w[i] = s / sqrt((double)D);
        }
        memcpy(v, w, D * sizeof(double));
    }
    size_t best = 0;
    double m1 = 0, m2 = 0;
    for (size_t i = 0; i < h->B; i++) {
        const double a = fabs(v[k0 + i]);
        if (a > m1)
            m2 = m1, m1 = a, best = i;
        else if (a > m2)
            m2 = a;
    }
    *code = (uint32_t)(2 * best + (v[k0 + best] < 0));
    free(v), free(w);
    return (m1 - m2) / m1;
}

/* Block sizes and rotations: one rotation serves D / B hash functions. */
Test(lsh, blocks_of_one_rotation)
{
    const size_t cases[][4] = {/* d, L, B, rotations */
                               {1024, 6, 128, 1}, {1024, 2, 512, 1}, {1024, 8, 128, 1},
                               {1024, 32, 32, 1}, {100, 6, 16, 1},   {40, 6, 16, 2},
                               {7, 6, 8, 6},      {1, 3, 1, 3},      {64, 1, 64, 1}};
    for (size_t t = 0; t < sizeof(cases) / sizeof(cases[0]); t++) {
        cp_lsh_t h;
        cr_assert_eq(cp_lsh_init(&h, cases[t][0], cases[t][1], 1), CP_OK);
        cr_assert_eq(h.B, cases[t][2], "d %zu L %zu: B %zu", cases[t][0], cases[t][1], h.B);
        cr_assert_eq(h.rotations, cases[t][3], "d %zu L %zu: %zu rotations", cases[t][0],
                     cases[t][1], h.rotations);
        cp_lsh_fini(&h);
    }
}

Test(lsh, fast_rotation_equals_dense_reference)
{
    const size_t dims[] = {100, 256, 7, 40};
    size_t compared = 0, skipped = 0;
    for (size_t t = 0; t < 4; t++) {
        cp_lsh_t h;
        cr_assert_eq(cp_lsh_init(&h, dims[t], 6, 77 + t), CP_OK);
        float *rows = tu_gradient(40 * dims[t], 9 + t), *y = malloc(h.D * 4);
        for (size_t r = 0; r < 40; r++) {
            uint32_t codes[6], ref;
            cp_lsh_hash(&h, rows + r * dims[t], codes, y);
            for (size_t l = 0; l < 6; l++) {
                cr_assert_lt(codes[l], 2 * h.B);
                /* A near tie between the two largest magnitudes may fall
                 * either way in float: compared only beyond 1e-4. */
                if (reference_code(&h, l, rows + r * dims[t], &ref) < 1e-4) {
                    skipped++;
                    continue;
                }
                compared++;
                cr_assert_eq(codes[l], ref, "d %zu row %zu hash %zu: %u vs %u",
                             dims[t], r, l, codes[l], ref);
            }
        }
        free(rows), free(y);
        cp_lsh_fini(&h);
    }
    cr_assert_gt(compared, 850, "%zu compared, %zu skipped", compared, skipped);
}

Test(lsh, deterministic_in_the_seed)
{
    cp_lsh_t a, b, c;
    cr_assert_eq(cp_lsh_init(&a, 64, 4, 5), CP_OK);
    cr_assert_eq(cp_lsh_init(&b, 64, 4, 5), CP_OK);
    cr_assert_eq(cp_lsh_init(&c, 64, 4, 6), CP_OK);
    float *x = tu_gradient(64 * 50, 3), y[64];
    size_t differ = 0;
    for (size_t r = 0; r < 50; r++) {
        uint32_t ca[4], cb[4], cc[4];
        cp_lsh_hash(&a, x + r * 64, ca, y);
        cp_lsh_hash(&b, x + r * 64, cb, y);
        cp_lsh_hash(&c, x + r * 64, cc, y);
        cr_assert_arr_eq(ca, cb, sizeof(ca));
        differ += memcmp(ca, cc, sizeof(ca)) != 0;
    }
    cr_assert_gt(differ, 40, "another seed gave the same codes for %zu of 50 rows",
                 50 - differ);
    free(x);
    cp_lsh_fini(&a), cp_lsh_fini(&b), cp_lsh_fini(&c);
    cr_assert_eq(cp_lsh_init(&a, 0, 4, 1), CP_ERR_INVALID);
    cr_assert_eq(cp_lsh_init(&a, 8, 0, 1), CP_ERR_INVALID);
    cr_assert_eq(cp_lsh_init(&a, 8, CP_LSH_MAX_HASHES + 1, 1), CP_ERR_INVALID);
}

static float *normal_rows(size_t n, uint64_t seed)
{
    float *x = malloc(n * sizeof(float));
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(sqrt(-2.0 * log(tu_unif(&s))) * cos(6.283185307179586 * tu_unif(&s)));
    return x;
}

/* 4 groups of 50 rows, each a base row plus noise of 1e-5 of its
 * elements, then 100 random rows: each group falls (almost) into one
 * bucket (a tie between the largest rotated magnitudes closer than the
 * noise would split one, which these seeds do not have), the random rows
 * into (almost) as many buckets as rows. Buckets are numbered by first
 * appearance, and centroids are the means. */
Test(lsh, clusters_near_rows_and_means)
{
    const size_t d = 128, G = 4, per = 50, nr = 100, n = G * per + nr;
    cp_lsh_t h;
    cr_assert_eq(cp_lsh_init(&h, d, 6, 11), CP_OK);
    float *base = normal_rows(G * d, 21), *noise = normal_rows(n * d, 22),
          *rows = malloc(n * d * 4);
    for (size_t g = 0; g < G; g++)
        for (size_t k = 0; k < per; k++)
            for (size_t i = 0; i < d; i++)
                rows[(g * per + k) * d + i] = base[g * d + i] + 1e-5f * noise[(g * per + k) * d + i];
    memcpy(rows + G * per * d, noise + G * per * d, nr * d * 4);
    uint32_t *bucket = malloc(n * 4);
    size_t nb;
    void *scratch = malloc(cp_lsh_cluster_scratch(&h, n));
    cr_assert_eq(cp_lsh_cluster(&h, rows, n, d, bucket, &nb, scratch), CP_OK);
    for (size_t g = 0; g < G; g++) {
        size_t same = 0;
        for (size_t k = 0; k < per; k++)
            same += bucket[g * per + k] == bucket[g * per];
        cr_assert_geq(same, 45, "group %zu: %zu of %zu rows in its first row's bucket", g,
                      same, per);
    }
    size_t maxb = 0;
    for (size_t r = 0; r < n; r++) {
        cr_assert_leq(bucket[r], maxb, "row %zu: bucket %u before %zu", r, bucket[r], maxb);
        maxb = bucket[r] + 1 > maxb ? bucket[r] + 1 : maxb;
    }
    cr_assert_eq(maxb, nb);
    cr_assert_geq(nb, G + 95, "%zu buckets for 4 groups and 100 random rows", nb);
    float *cen = malloc(nb * d * 4);
    uint32_t *count = malloc(nb * 4);
    cp_lsh_centroids(rows, n, d, d, bucket, nb, cen, count);
    size_t total = 0;
    for (size_t j = 0; j < nb; j++) {
        total += count[j];
        for (size_t i = 0; i < d; i += 17) {
            double s = 0;
            for (size_t r = 0; r < n; r++)
                if (bucket[r] == j)
                    s += rows[r * d + i];
            cr_assert_float_eq(cen[j * d + i], s / count[j], 1e-5 * (fabs(s) + 1e-3),
                               "bucket %zu elem %zu", j, i);
        }
    }
    cr_assert_eq(total, n);
    free(base), free(noise), free(rows), free(bucket), free(scratch), free(cen),
        free(count);
    cp_lsh_fini(&h);
}
