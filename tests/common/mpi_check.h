/* MPI helpers of the test programs, after common/check.h: identical bits
 * across ranks, and the closing tally. They call PMPI_* so that a
 * preloaded shim never sees the tests' own bookkeeping. */
#ifndef CP_TEST_MPI_CHECK_H
#define CP_TEST_MPI_CHECK_H

#include <stdint.h>
#include <stdio.h>

#include <mpi.h>

static inline uint64_t cp_test_hash(const void *p, size_t bytes)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < bytes; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* True on every rank iff all ranks of comm hold the same bits. */
static inline int cp_test_identical(const void *p, size_t bytes, MPI_Comm comm)
{
    uint64_t h = cp_test_hash(p, bytes), v[2] = {h, ~h};
    PMPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_UINT64_T, MPI_MAX, comm);
    return v[0] == h && v[1] == ~h;
}

/* Sums the checks over the world, prints "N passed, M failed" on rank 0
 * and finalizes MPI; returns the exit status. */
static inline int cp_test_finish(void)
{
    int rank, v[2] = {npass, nfail};
    PMPI_Comm_rank(MPI_COMM_WORLD, &rank);
    PMPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        printf("%d passed, %d failed\n", v[0], v[1]);
    MPI_Finalize();
    return v[1] ? 1 : 0;
}

#endif
