/* COMMPRESS_ALLREDUCE_ALGO=sparse_rs under mpirun, with the shim preloaded
 * (collectives/allreduce_sparse_rs.c), against a reference written from
 * the documented rules: every rank generates every rank's gradient, runs
 * the topk codec on each rank's error-corrected vector v_r = e_r + g_r
 * (the local selection, as the shim does), sums the sent entries per
 * index in rank order from 0.0f, keeps the k largest sums by magnitude
 * (ties: the smaller index; all of them when fewer), and returns to each
 * rank's error everything it sent that was not kept. The shim's result
 * must equal the reference bit for bit, every step, on every rank; its
 * error feedback is checked through the later steps, which depend on it.
 *
 *   test_sparse_rs PATTERN N STEPS
 *
 * PATTERN: random (uniform values); ties (small integers: many equal
 * magnitudes, so the tie rule decides); moving (the nonzeros in a window
 * of N/8 that jumps every step: the regions, balanced from the last step,
 * are then as uneven as they get, most of them receiving nothing);
 * overflow (step 3 puts 3e38 at one index on every rank: the sum
 * overflows, and every rank gets MPI's exact sum with the state
 * untouched); nan (step 2 puts a NaN on the last rank: the same). With
 * N < ranks some regions are empty. The codec's settings come from the
 * environment (COMMPRESS_DENSITY, COMMPRESS_TOPK_VALUES); the selection
 * is exact (COMMPRESS_TOPK_SELECT=exact). */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collectives/coll.h"
#include "common/check.h"
#include "common/mpi_check.h"
#include "common/splitmix.h"
#include "compressors/compressor.h"
#include "compressors/topk.h"

static int rank, nranks;

typedef enum { P_RANDOM, P_TIES, P_MOVING, P_OVERFLOW, P_NAN } pattern_t;

/* Rank r's gradient of step s. */
static void gradient(pattern_t pat, float *g, size_t n, int s, int r)
{
    uint64_t st = 0x9e3779b97f4a7c15ull * (uint64_t)(s + 1) + 1000003ull * (uint64_t)(r + 1);
    const size_t w = n / 8 ? n / 8 : 1, w0 = (size_t)s * 5 % 8 * (n / 8);
    for (size_t i = 0; i < n; i++) {
        const uint64_t u = cp_test_splitmix(&st);
        const double x = (double)(u >> 11) / 9007199254740992.0 - 0.5;
        switch (pat) {
        case P_TIES:
            g[i] = (float)((int)(u % 7) - 3);
            break;
        case P_MOVING:
            g[i] = i >= w0 && i < w0 + w ? (float)x : 0.0f;
            break;
        default:
            g[i] = (float)x;
        }
    }
    if (pat == P_OVERFLOW && s == 3)
        g[n / 2] = 3e38f;
    if (pat == P_NAN && s == 2 && r == nranks - 1)
        g[n - 1] = NAN;
}

typedef struct {
    uint32_t idx;
    float val;
} entry_t;

/* |x|'s bits: they order like the magnitudes of finite floats. */
static uint32_t mag(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u & 0x7fffffffu;
}

static int by_magnitude(const void *pa, const void *pb)
{
    const entry_t *a = pa, *b = pb;
    const uint32_t ma = mag(a->val), mb = mag(b->val);
    if (ma != mb)
        return ma > mb ? -1 : 1;
    return a->idx < b->idx ? -1 : 1;
}

static int by_index(const void *pa, const void *pb)
{
    const entry_t *a = pa, *b = pb;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* One step of the reference: e[r] (n floats each) are the ranks' errors,
 * g[r] their gradients; writes the result into out and updates e. Returns
 * 0 when the step is non-finite (out untouched: the caller puts MPI's sum
 * there), 1 otherwise. */
static int reference(const cp_params_t *p, float **e, float **g, size_t n, float *out,
                     void *scratch, size_t cap)
{
    const cp_compressor_ops_t *topk = cp_compressor_find("topk");
    float *sum = calloc(n, sizeof(float));
    unsigned char *sent = calloc(n, 1);
    float **v = malloc((size_t)nranks * sizeof(float *));
    cp_topk_view_t *views = malloc((size_t)nranks * sizeof(cp_topk_view_t));
    unsigned char **msgs = calloc((size_t)nranks, sizeof(unsigned char *));
    int finite = 1;
    for (int r = 0; r < nranks; r++) {
        v[r] = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) {
            v[r][i] = e[r][i] + g[r][i];
            finite &= isfinite(v[r][i]) != 0;
        }
    }
    for (int r = 0; r < nranks && finite; r++) {
        size_t len = 0;
        msgs[r] = malloc(cap);
        CHECK(topk->encode(p, v[r], n, msgs[r], cap, &len, scratch) == CP_OK, "encode");
        CHECK(cp_topk_entries(msgs[r], len, n, &views[r]) == CP_OK, "entries");
        for (size_t j = 0; j < views[r].k; j++) {
            const uint32_t i = cp_get_u32(views[r].idx + 4 * j);
            sum[i] += cp_topk_value(&views[r], j);
            sent[i] = 1;
        }
    }
    entry_t *cand = malloc(n * sizeof(entry_t));
    size_t nc = 0;
    for (size_t i = 0; i < n && finite; i++)
        if (sent[i]) {
            finite &= isfinite(sum[i]) != 0;
            cand[nc++] = (entry_t){(uint32_t)i, sum[i]};
        }
    if (finite) {
        const size_t k = cp_topk_k(p->density, n);
        qsort(cand, nc, sizeof(entry_t), by_magnitude);
        if (nc > k)
            nc = k;
        qsort(cand, nc, sizeof(entry_t), by_index);
        memset(out, 0, n * sizeof(float));
        memset(sent, 0, n);
        for (size_t c = 0; c < nc; c++) {
            out[cand[c].idx] = cand[c].val;
            sent[cand[c].idx] = 1; /* now: kept */
        }
        for (int r = 0; r < nranks; r++) {
            memcpy(e[r], v[r], n * sizeof(float));
            for (size_t j = 0; j < views[r].k; j++) {
                const uint32_t i = cp_get_u32(views[r].idx + 4 * j);
                if (sent[i])
                    e[r][i] = v[r][i] + -1.0f * cp_topk_value(&views[r], j);
            }
        }
    }
    for (int r = 0; r < nranks; r++)
        free(v[r]), free(msgs[r]);
    free(cand), free(sum), free(sent), free(v), free(views), free(msgs);
    return finite;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    cp_test_rank = rank;
    if (argc < 4) {
        fprintf(stderr, "usage: test_sparse_rs random|ties|moving|overflow|nan N STEPS\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    const char *names[] = {"random", "ties", "moving", "overflow", "nan"};
    pattern_t pat = P_RANDOM;
    for (int i = 0; i < 5; i++)
        if (strcmp(argv[1], names[i]) == 0)
            pat = (pattern_t)i;
    const size_t n = strtoull(argv[2], NULL, 10);
    const int steps = atoi(argv[3]);
    const char *d = getenv("COMMPRESS_DENSITY"), *vals = getenv("COMMPRESS_TOPK_VALUES");
    cp_params_t p = {0};
    p.density = d ? atof(d) : 0.01;
    p.topk_select = CP_TOPK_EXACT;
    p.topk_fp16 = vals && strcmp(vals, "fp16") == 0;
    const size_t cap = cp_topk_max_size(&p, n);
    void *scratch = malloc(cp_topk_scratch_size(&p, n) + 64);
    float **e = malloc((size_t)nranks * sizeof(float *)), **g = malloc((size_t)nranks * sizeof(float *));
    for (int r = 0; r < nranks; r++) {
        e[r] = calloc(n, sizeof(float));
        g[r] = malloc(n * sizeof(float));
    }
    float *buf = malloc(n * sizeof(float)), *want = malloc(n * sizeof(float));
    int exact_steps = 0;
    for (int s = 0; s < steps; s++) {
        for (int r = 0; r < nranks; r++)
            gradient(pat, g[r], n, s, r);
        memcpy(buf, g[rank], n * sizeof(float));
        MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (!reference(&p, e, g, n, want, scratch, cap)) {
            /* Non-finite: MPI's own sum, the errors unchanged. */
            PMPI_Allreduce(g[rank], want, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            exact_steps++;
        }
        size_t bad = 0, first = 0;
        for (size_t i = 0; i < n; i++)
            if (memcmp(&buf[i], &want[i], 4) != 0 && bad++ == 0)
                first = i;
        CHECK(bad == 0, "%s n=%zu step %d: %zu of %zu floats differ from the reference "
              "(first at %zu: %.9g, want %.9g)", names[pat], n, s, bad, n, first,
              (double)buf[first], (double)want[first]);
        CHECK(cp_test_identical(buf, n * sizeof(float), MPI_COMM_WORLD), "step %d: ranks got different bits", s);
    }
    if (pat == P_OVERFLOW || pat == P_NAN)
        CHECK(exact_steps == 1, "%d non-finite steps, want 1", exact_steps);
    if (rank == 0)
        printf("sparse_rs %s n=%zu density %g%s, %d ranks, %d steps (%d exact): %d passed, "
               "%d failed\n", names[pat], n, p.density, p.topk_fp16 ? " fp16" : "", nranks,
               steps, exact_steps, npass, nfail);
    for (int r = 0; r < nranks; r++)
        free(e[r]), free(g[r]);
    free(e), free(g), free(buf), free(want), free(scratch);
    int failed = nfail > 0;
    PMPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return failed;
}
