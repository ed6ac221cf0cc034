#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "moe/lsh.h"
#include "util/hd.h"
#include "util/simd.h"

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

cp_status_t cp_lsh_init(cp_lsh_t *h, size_t d, size_t L, uint64_t seed)
{
    memset(h, 0, sizeof(*h));
    if (d == 0 || d > CP_LSH_MAX_DIM || L == 0 || L > CP_LSH_MAX_HASHES)
        return CP_ERR_INVALID;
    size_t D = 1, P = 1;
    while (D < d)
        D *= 2;
    while (P < L)
        P *= 2;
    size_t B = D / P;
    if (B < CP_LSH_MIN_BLOCK)
        B = D < CP_LSH_MIN_BLOCK ? D : CP_LSH_MIN_BLOCK;
    const size_t R = (L + D / B - 1) / (D / B);
    h->signs = malloc(R * 3 * D * sizeof(float));
    if (h->signs == NULL)
        return CP_ERR_NOMEM;
    h->d = d, h->D = D, h->L = L, h->B = B, h->rotations = R, h->seed = seed;
    const float v = (float)(1.0 / sqrt((double)D));
    for (size_t r = 0; r < R; r++) {
        uint64_t s = seed ^ (0x4c5348ull << 40) ^ (uint64_t)r * 0x2545f4914f6cdd1dull;
        for (size_t i = 0; i < 3 * D; i += 64) {
            const uint64_t w = splitmix(&s);
            for (size_t b = 0; b < 64 && i + b < 3 * D; b++)
                h->signs[r * 3 * D + i + b] = (w >> b) & 1 ? -v : v;
        }
    }
    return CP_OK;
}

void cp_lsh_fini(cp_lsh_t *h)
{
    free(h->signs);
    memset(h, 0, sizeof(*h));
}

/* In-place (unnormalized) Walsh-Hadamard transform of D floats, D a power
 * of two: the first two spans as radix-4 butterflies on groups of four,
 * then butterflies of growing span over contiguous runs the compiler
 * vectorizes. The normalization is in the signs. */
CP_INLINE void fwht(float *y, size_t D)
{
    size_t h = 1;
    if (D >= 4) {
        for (size_t i = 0; i < D; i += 4) {
            const float a = y[i] + y[i + 1], b = y[i] - y[i + 1];
            const float c = y[i + 2] + y[i + 3], e = y[i + 2] - y[i + 3];
            y[i] = a + c, y[i + 1] = b + e, y[i + 2] = a - c, y[i + 3] = b - e;
        }
        h = 4;
    }
    for (; h < D; h *= 2)
        for (size_t i = 0; i < D; i += 2 * h) {
            float *restrict u = y + i, *restrict w = y + i + h;
            for (size_t j = 0; j < h; j++) {
                const float a = u[j], b = w[j];
                u[j] = a + b;
                w[j] = a - b;
            }
        }
}

CP_CLONES void cp_lsh_hash(const cp_lsh_t *h, const float *row, uint32_t *codes,
                           float *y)
{
    const size_t D = h->D, B = h->B, per = D / B;
    for (size_t r = 0, l = 0; r < h->rotations; r++) {
        const float *sg = h->signs + r * 3 * D;
        for (size_t i = 0; i < h->d; i++)
            y[i] = row[i] * sg[i];
        for (size_t i = h->d; i < D; i++)
            y[i] = 0.0f;
        fwht(y, D);
        for (int k = 1; k < 3; k++) {
            const float *s = sg + (size_t)k * D;
            for (size_t i = 0; i < D; i++)
                y[i] *= s[i];
            fwht(y, D);
        }
        for (size_t k = 0; k < per && l < h->L; k++, l++) {
            const float *v = y + k * B;
            size_t best = 0;
            float m = fabsf(v[0]);
            for (size_t i = 1; i < B; i++)
                if (fabsf(v[i]) > m) /* the first of equal magnitudes */
                    m = fabsf(v[i]), best = i;
            codes[l] = (uint32_t)(2 * best + (v[best] < 0.0f));
        }
    }
}

size_t cp_lsh_cluster_scratch(const cp_lsh_t *h, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    return h->D * sizeof(float) + n * h->L * sizeof(uint32_t) +
           cap * sizeof(uint32_t);
}

cp_status_t cp_lsh_cluster(const cp_lsh_t *h, const float *rows, size_t n,
                           size_t stride, uint32_t *bucket, size_t *nbuckets,
                           void *scratch)
{
    if (stride < h->d || n > UINT32_MAX - 1)
        return CP_ERR_INVALID;
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    float *y = scratch;
    uint32_t *codes = (uint32_t *)(y + h->D);
    uint32_t *table = codes + n * h->L; /* open addressing: a bucket's first row + 1 */
    memset(table, 0, cap * sizeof(uint32_t));
    size_t nb = 0;
    for (size_t r = 0; r < n; r++) {
        uint32_t *c = codes + r * h->L;
        cp_lsh_hash(h, rows + r * stride, c, y);
        uint64_t k = cp_fnv1a(c, h->L * sizeof(uint32_t));
        for (size_t slot = k & (cap - 1);; slot = (slot + 1) & (cap - 1)) {
            if (table[slot] == 0) { /* a new bucket, numbered in order */
                table[slot] = (uint32_t)r + 1;
                bucket[r] = (uint32_t)nb++;
                break;
            }
            const size_t q = table[slot] - 1;
            if (memcmp(codes + q * h->L, c, h->L * sizeof(uint32_t)) == 0) {
                bucket[r] = bucket[q];
                break;
            }
        }
    }
    *nbuckets = nb;
    return CP_OK;
}

void cp_lsh_centroids(const float *rows, size_t n, size_t d, size_t stride,
                      const uint32_t *bucket, size_t nbuckets,
                      float *centroids, uint32_t *count)
{
    memset(centroids, 0, nbuckets * d * sizeof(float));
    memset(count, 0, nbuckets * sizeof(uint32_t));
    for (size_t r = 0; r < n; r++) {
        float *c = centroids + (size_t)bucket[r] * d;
        const float *x = rows + r * stride;
        for (size_t i = 0; i < d; i++)
            c[i] += x[i];
        count[bucket[r]]++;
    }
    for (size_t j = 0; j < nbuckets; j++)
        for (size_t i = 0; i < d; i++)
            centroids[j * d + i] /= (float)count[j];
}
