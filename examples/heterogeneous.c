/* Error feedback under heterogeneity: distributed least squares whose ranks
 * hold different data (each rank's own optimum is far from the global one),
 * trained by gradient descent with a top-k compressed allreduce through the
 * explicit API, once per feedback variant (docs/feedback.md):
 *
 *   f(x) = 1/n sum_r 1/(2m) ||A_r x - b_r||^2,  b_r = A_r x*_r,
 *   x*_r = x0 + zeta u_r  (u_r differs per rank),
 *   x <- x - lr * allreduce(grad_r) / n.
 *
 * Prints and writes (--json) the optimality gap f(x) - f* against steps
 * for: uncompressed, top-k without feedback, EF, EF21, EControl and
 * EF21-SGDM (--sgdm-eta, its moving-average weight). f* is
 * computed exactly (normal equations, Cholesky in double).
 *
 *   mpirun -np 4 build/heterogeneous [--dim 1000] [--rows 500] [--steps 6000]
 *       [--density 0.01] [--lr 0.05] [--eta 0.1] [--sgdm-eta 0.1] [--zeta 1] [--batch 0]
 *       [--every 50] [--json out.json]
 *
 * --batch B > 0 uses B random rows per step (stochastic gradients). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "commpress.h"

static int rank, nranks;
static size_t d = 1000, m = 500, batch = 0;
static int steps = 6000, every = 50;
static double density = 0.01, lr = 0.05, eta = 0.1, sgdm_eta = 0.1, zeta = 1.0;

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double normal(uint64_t *s)
{
    double u1 = ((double)(mix(s) >> 11) + 0.5) / 9007199254740992.0;
    double u2 = (double)(mix(s) >> 11) / 9007199254740992.0;
    return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}

static float *A, *b; /* this rank's m x d rows and targets */

static void make_data(void)
{
    uint64_t s0 = 12345, s = 1000 + (uint64_t)rank * 7777;
    double *x0 = malloc(d * sizeof(double)), *xr = malloc(d * sizeof(double));
    for (size_t j = 0; j < d; j++)
        x0[j] = normal(&s0);
    for (size_t j = 0; j < d; j++)
        xr[j] = x0[j] + zeta * normal(&s); /* this rank's own optimum */
    A = malloc(m * d * sizeof(float));
    b = malloc(m * sizeof(float));
    for (size_t i = 0; i < m; i++) {
        double acc = 0;
        for (size_t j = 0; j < d; j++) {
            A[i * d + j] = (float)normal(&s);
            acc += A[i * d + j] * xr[j];
        }
        b[i] = (float)acc;
    }
    free(x0), free(xr);
}

/* Local loss 1/(2m) ||A x - b||^2 (double) and gradient over `rows`. */
static double local(const float *x, float *g, const size_t *rows, size_t nr)
{
    double loss = 0;
    if (g)
        memset(g, 0, d * sizeof(float));
    for (size_t k = 0; k < nr; k++) {
        size_t i = rows ? rows[k] : k;
        const float *a = A + i * d;
        double r = -b[i];
        for (size_t j = 0; j < d; j++)
            r += (double)a[j] * x[j];
        loss += 0.5 * r * r;
        if (g)
            for (size_t j = 0; j < d; j++)
                g[j] += (float)(r / (double)nr) * a[j];
    }
    return loss / (double)nr;
}

static double global_loss(const float *x)
{
    double l = local(x, NULL, NULL, m);
    MPI_Allreduce(MPI_IN_PLACE, &l, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return l / nranks;
}

/* f* from the normal equations sum A^T A x = sum A^T b (Cholesky). */
static double optimum(void)
{
    double *M = calloc(d * d, sizeof(double)), *v = calloc(d, sizeof(double));
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < d; j++) {
            double aj = A[i * d + j];
            v[j] += aj * b[i];
            for (size_t k = 0; k <= j; k++)
                M[j * d + k] += aj * A[i * d + k];
        }
    MPI_Allreduce(MPI_IN_PLACE, M, (int)(d * d), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, v, (int)d, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    for (size_t j = 0; j < d; j++) { /* lower Cholesky in place */
        for (size_t k = 0; k < j; k++)
            M[j * d + j] -= M[j * d + k] * M[j * d + k];
        M[j * d + j] = sqrt(M[j * d + j]);
        for (size_t i = j + 1; i < d; i++) {
            for (size_t k = 0; k < j; k++)
                M[i * d + j] -= M[i * d + k] * M[j * d + k];
            M[i * d + j] /= M[j * d + j];
        }
    }
    for (size_t i = 0; i < d; i++) { /* L y = v, then L^T x = y */
        for (size_t k = 0; k < i; k++)
            v[i] -= M[i * d + k] * v[k];
        v[i] /= M[i * d + i];
    }
    for (size_t i = d; i-- > 0;) {
        for (size_t k = i + 1; k < d; k++)
            v[i] -= M[k * d + i] * v[k];
        v[i] /= M[i * d + i];
    }
    float *xs = malloc(d * sizeof(float));
    for (size_t j = 0; j < d; j++)
        xs[j] = (float)v[j];
    double f = global_loss(xs);
    free(M), free(v), free(xs);
    return f;
}

typedef struct {
    const char *label, *compressor, *feedback;
} method_t;

static void run(const method_t *me, double fstar, FILE *json, int first)
{
    commpress_config_t cfg;
    commpress_ctx_t *ctx;
    float *x = calloc(d, sizeof(float)), *g = malloc(d * sizeof(float));
    size_t *rows = malloc((batch ? batch : 1) * sizeof(size_t));
    uint64_t s = 99 + (uint64_t)rank;
    commpress_stats_t st;

    commpress_config_default(&cfg);
    cfg.compressor = me->compressor;
    cfg.feedback = me->feedback;
    cfg.density = density;
    cfg.topk_select = "exact";
    cfg.econtrol_eta = eta;
    cfg.ef21_sgdm_eta = sgdm_eta;
    if (commpress_create(&cfg, MPI_COMM_WORLD, &ctx) != 0) {
        if (rank == 0)
            fprintf(stderr, "heterogeneous: cannot create %s\n", me->label);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (rank == 0)
        fprintf(json, "%s\"%s\": [", first ? "" : ",\n", me->label);
    double gap = 0;
    for (int t = 0; t <= steps; t++) {
        if (t % every == 0 || t == steps) {
            gap = global_loss(x) - fstar;
            if (rank == 0)
                fprintf(json, "%s[%d, %.9g]", t ? ", " : "", t, gap);
        }
        if (t == steps || !isfinite(gap))
            break;
        if (batch)
            for (size_t k = 0; k < batch; k++)
                rows[k] = mix(&s) % m;
        local(x, g, batch ? rows : NULL, batch ? batch : m);
        commpress_allreduce(ctx, NULL, g, d, 1);
        for (size_t j = 0; j < d; j++)
            x[j] -= (float)(lr / nranks) * g[j];
    }
    commpress_ctx_stats(ctx, &st);
    if (rank == 0) {
        fprintf(json, "]");
        printf("%-22s gap after %d steps: %.3e  (bytes sent per rank %.3g MB, ratio %.1fx)\n",
               me->label, steps, gap, (double)st.bytes_sent / 1e6, st.ratio);
    }
    commpress_destroy(ctx);
    free(x), free(g), free(rows);
}

int main(int argc, char **argv)
{
    const char *jpath = NULL;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--dim")) d = (size_t)atol(v);
        else if (!strcmp(k, "--rows")) m = (size_t)atol(v);
        else if (!strcmp(k, "--steps")) steps = atoi(v);
        else if (!strcmp(k, "--density")) density = atof(v);
        else if (!strcmp(k, "--lr")) lr = atof(v);
        else if (!strcmp(k, "--eta")) eta = atof(v);
        else if (!strcmp(k, "--sgdm-eta")) sgdm_eta = atof(v);
        else if (!strcmp(k, "--zeta")) zeta = atof(v);
        else if (!strcmp(k, "--batch")) batch = (size_t)atol(v);
        else if (!strcmp(k, "--every")) every = atoi(v);
        else if (!strcmp(k, "--json")) jpath = v;
        else {
            if (rank == 0)
                fprintf(stderr, "heterogeneous: unknown option %s\n", k);
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
    }
    make_data();
    double fstar = optimum();
    float *zero = calloc(d, sizeof(float));
    double f0 = global_loss(zero);
    free(zero);
    static const method_t methods[] = {
        {"uncompressed", "none", NULL},
        {"topk, no feedback", "topk", "none"},
        {"topk + EF", "topk", "ef"},
        {"topk + EF21", "topk", "ef21"},
        {"topk + EControl", "topk", "econtrol"},
        {"topk + EF21-SGDM", "topk", "ef21-sgdm"},
    };
    FILE *json = rank == 0 ? fopen(jpath ? jpath : "/dev/null", "w") : NULL;
    if (rank == 0) {
        if (json == NULL) {
            fprintf(stderr, "heterogeneous: cannot write %s\n", jpath);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        printf("least squares, %d ranks, dim %zu, %zu rows per rank, zeta %g, "
               "density %g, lr %g, eta %g, sgdm eta %g, batch %zu; f* = %.6g, "
               "f(0) - f* = %.6g\n",
               nranks, d, m, zeta, density, lr, eta, sgdm_eta, batch, fstar, f0 - fstar);
        fprintf(json, "{\"ranks\": %d, \"dim\": %zu, \"rows\": %zu, \"zeta\": %g, "
                      "\"density\": %g, \"lr\": %g, \"eta\": %g, \"sgdm_eta\": %g, "
                      "\"batch\": %zu, \"steps\": %d, \"fstar\": %.12g, \"gap\": {\n",
                nranks, d, m, zeta, density, lr, eta, sgdm_eta, batch, steps, fstar);
    }
    for (size_t i = 0; i < sizeof(methods) / sizeof(*methods); i++)
        run(&methods[i], fstar, json, i == 0);
    if (rank == 0) {
        fprintf(json, "}}\n");
        fclose(json);
    }
    free(A), free(b);
    MPI_Finalize();
    return 0;
}
