/* COMMPRESS_HIERARCHY=node|striped|auto under mpirun, with the shim preloaded and nodes
 * emulated by COMMPRESS_HIERARCHY_TEST_NODE=K (world ranks r and s share
 * a node iff r / K == s / K): every call on MPI_COMM_WORLD must give, bit
 * for bit and on every rank, what the test builds by hand from the same
 * pieces on its own split of COMM_WORLD. With COMMPRESS_HIERARCHY=striped
 * and nodes of equal size (K divides the ranks): MPI_Reduce_scatter within the node (rank j gets
 * chunk j, cp_chunk_range's split), MPI_Allreduce of chunk j (compressed
 * by the shim, flat: its nodes hold one rank each) among the j-th ranks
 * of every node, MPI_Allgatherv within the node. Otherwise: MPI_Reduce to
 * each node's first rank, MPI_Allreduce among those, MPI_Bcast. The two
 * paths keep separate error feedback and see the same calls, so their
 * bits stay equal over all steps only if the shim's node-aware path
 * reduces, compresses and gathers exactly so, and keeps its feedback
 * where it says (each rank for its chunk; the node's first rank).
 *
 *   test_hierarchy N STEPS [stable]
 *
 * Calls alternate in place and out of place, unless `stable` (always out
 * of place): the node-aware path's leaders always call in place on the
 * receive buffer, but a flat communicator's step detector reads the
 * alternation as a step of two calls (two tensors), so the flat cases
 * (one rank a node) compare with the reference's stable calls.
 *
 * Also: every rank gets identical bits, and with one rank per node or a
 * single node the result is still right (the leaders' communicator passes
 * through when it has one rank). */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "common/mpi_check.h"
#include "common/splitmix.h"

static int rank, nranks;

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    cp_test_rank = rank;
    const char *k_env = getenv("COMMPRESS_HIERARCHY_TEST_NODE");
    if (argc < 3 || !k_env || atoi(k_env) < 1) {
        fprintf(stderr, "usage: COMMPRESS_HIERARCHY_TEST_NODE=K test_hierarchy N STEPS\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    const int k = atoi(k_env);
    const size_t n = strtoull(argv[1], NULL, 10);
    const int steps = atoi(argv[2]);
    const int stable = argc > 3 && strcmp(argv[3], "stable") == 0;
    MPI_Comm node, lead = MPI_COMM_NULL;
    int nrank, m;
    MPI_Comm_split(MPI_COMM_WORLD, rank / k, rank, &node);
    MPI_Comm_rank(node, &nrank);
    MPI_Comm_size(node, &m);
    const char *mode = getenv("COMMPRESS_HIERARCHY");
    const int striped = mode && strcmp(mode, "striped") == 0 && k > 1 && nranks % k == 0;
    MPI_Comm_split(MPI_COMM_WORLD, striped ? nrank : nrank == 0 ? 0 : MPI_UNDEFINED, rank, &lead);
    int *cnt = malloc(2 * (size_t)m * sizeof(int)), *dsp = cnt + m;
    for (int j = 0, off = 0; j < m; j++) { /* cp_chunk_range's split */
        cnt[j] = (int)(n / (size_t)m) + ((size_t)j < n % (size_t)m);
        dsp[j] = off;
        off += cnt[j];
    }
    float *x = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float)),
          *want = malloc(n * sizeof(float));
    for (int s = 0; s < steps; s++) {
        uint64_t st = 7919u * (uint64_t)(s + 1) + 104729u * (uint64_t)(rank + 1);
        for (size_t i = 0; i < n; i++)
            x[i] = (float)((double)(cp_test_splitmix(&st) >> 11) / 9007199254740992.0 - 0.5);
        /* in place on odd steps, out of place on even ones */
        if (s % 2 && !stable) {
            memcpy(got, x, n * sizeof(float));
            MPI_Allreduce(MPI_IN_PLACE, got, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        } else {
            MPI_Allreduce(x, got, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        }
        if (striped) {
            float *mine = want + dsp[nrank];
            PMPI_Reduce_scatter(x, mine, cnt, MPI_FLOAT, MPI_SUM, node);
            MPI_Allreduce(MPI_IN_PLACE, mine, cnt[nrank], MPI_FLOAT, MPI_SUM, lead);
            PMPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, want, cnt, dsp, MPI_FLOAT, node);
        } else {
            PMPI_Reduce(x, want, (int)n, MPI_FLOAT, MPI_SUM, 0, node);
            if (lead != MPI_COMM_NULL)
                MPI_Allreduce(MPI_IN_PLACE, want, (int)n, MPI_FLOAT, MPI_SUM, lead);
            PMPI_Bcast(want, (int)n, MPI_FLOAT, 0, node);
        }
        size_t bad = 0, first = 0;
        for (size_t i = 0; i < n; i++)
            if (memcmp(&got[i], &want[i], 4) != 0 && bad++ == 0)
                first = i;
        CHECK(bad == 0, "step %d: %zu of %zu floats differ from reduce + leaders' allreduce + "
              "bcast (first at %zu: %.9g, want %.9g)", s, bad, n, first, (double)got[first],
              (double)want[first]);
        CHECK(cp_test_identical(got, n * sizeof(float), MPI_COMM_WORLD), "step %d: ranks got different bits", s);
    }
    if (rank == 0)
        printf("hierarchy (%s): %d ranks, nodes of %d, %zu floats, %d steps: %d passed, %d "
               "failed\n", striped ? "striped" : k > 1 ? "leaders" : "flat", nranks, k, n, steps,
               npass, nfail);
    free(x), free(got), free(want), free(cnt);
    if (lead != MPI_COMM_NULL)
        MPI_Comm_free(&lead);
    MPI_Comm_free(&node);
    int failed = nfail > 0;
    PMPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return failed;
}
