/* Threads (MPI_THREAD_MULTIPLE) with the shim preloaded: T threads, each
 * with its own communicator, create a communicator, allreduce through it
 * (compressed: tensors of several sizes, some new every round so states
 * are made and dropped under COMMPRESS_MAX_STATE_BYTES), check the result
 * and free it, over and over, while another thread reads the statistics.
 * Run under ThreadSanitizer by scripts/check-memory.sh (and without it by
 * the test command): no data race, no state used after another thread
 * released it, every result bit-identical on every rank and within the
 * codec's error of the exact sum. Usage: test_threads [ROUNDS].
 * Ends with "N passed, M failed" on rank 0. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <mpi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "include/commpress.h"
#include "common/check.h"
#include "common/mpi_check.h"

enum { T = 4, CALLS = 6 };
static int rank, nranks, rounds = 12;
static volatile int done;

typedef struct {
    int id;
    MPI_Comm base; /* this thread's own: its collectives never interleave */
    int fails;
} worker_t;

/* Rank r's value at element i of call c: small integers, so the exact sum
 * is known and a compressed sum is close to it. */
static float value(int id, int c, int r, size_t i)
{
    return (float)((int)((i * 7 + (size_t)c * 13 + (size_t)id * 5 + (size_t)r) % 17) - 8);
}

static void *work(void *arg)
{
    worker_t *w = arg;
    float *x = malloc(40000 * sizeof(float)), *e = malloc(40000 * sizeof(float));
    for (int k = 0; k < rounds; k++) {
        MPI_Comm comm;
        MPI_Comm_dup(w->base, &comm);
        for (int c = 0; c < CALLS; c++) {
            /* Sizes repeat within a round; one is new every round. */
            size_t n = c == CALLS - 1 ? 20000 + (size_t)k * 100 + (size_t)w->id
                                      : 10000 + (size_t)(c % 3) * 5000;
            double err = 0, norm = 0;
            for (size_t i = 0; i < n; i++) {
                x[i] = value(w->id, c, rank, i);
                e[i] = 0;
                for (int r = 0; r < nranks; r++)
                    e[i] += value(w->id, c, r, i);
            }
            MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_FLOAT, MPI_SUM, comm);
            for (size_t i = 0; i < n; i++) {
                err += (x[i] - e[i]) * (double)(x[i] - e[i]);
                norm += (double)e[i] * e[i];
            }
            /* Codec error bound of the configured codec (quant, 4 bits, EF:
             * the first call of a tensor carries at most 1/15 of each
             * bucket's range per element per rank; well below 1). */
            if (!(err <= 0.25 * norm) || !cp_test_identical(x, n * 4, comm))
                w->fails++;
        }
        MPI_Comm_free(&comm);
    }
    free(x), free(e);
    return NULL;
}

/* The preloaded library's statistics, as an application finds them. */
static void (*stats_fn)(commpress_stats_t *);

static void *reader(void *arg)
{
    (void)arg;
    commpress_stats_t s;
    while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE))
        stats_fn(&s);
    return NULL;
}

int main(int argc, char **argv)
{
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    cp_test_rank = rank;
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    if (argc > 1)
        rounds = atoi(argv[1]);
    stats_fn = (void (*)(commpress_stats_t *))dlsym(RTLD_DEFAULT, "commpress_stats");
    if (stats_fn == NULL) {
        fprintf(stderr, "libcommpress.so is not preloaded\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    CHECK(provided == MPI_THREAD_MULTIPLE, "MPI_THREAD_MULTIPLE not provided (%d)",
          provided);
    if (provided != MPI_THREAD_MULTIPLE)
        return cp_test_finish();
    worker_t w[T];
    pthread_t th[T], rd;
    for (int t = 0; t < T; t++) {
        w[t] = (worker_t){.id = t};
        MPI_Comm_dup(MPI_COMM_WORLD, &w[t].base);
    }
    pthread_create(&rd, NULL, reader, NULL);
    for (int t = 0; t < T; t++)
        pthread_create(&th[t], NULL, work, &w[t]);
    for (int t = 0; t < T; t++)
        pthread_join(th[t], NULL);
    __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
    pthread_join(rd, NULL);
    for (int t = 0; t < T; t++) {
        CHECK(w[t].fails == 0, "thread %d: %d results wrong or different across ranks",
              t, w[t].fails);
        MPI_Comm_free(&w[t].base);
    }
    commpress_stats_t s;
    stats_fn(&s);
    CHECK(s.calls_compressed == (unsigned long long)T * rounds * CALLS,
          "%llu calls compressed, expected %d", s.calls_compressed, T * rounds * CALLS);
    CHECK(s.calls_fallback == 0, "%llu calls sent exact", s.calls_fallback);
    const char *bound = getenv("COMMPRESS_MAX_STATE_BYTES");
    if (bound && atoll(bound) > 0) /* set below the states' need */
        CHECK(s.states_dropped > 0, "no state dropped");
    if (rank == 0)
        printf("threads: %d threads x %d rounds x %d calls, state peak %.2f MB, "
               "%llu states dropped\n", T, rounds, CALLS, s.state_bytes_peak / 1e6,
               s.states_dropped);
    return cp_test_finish();
}
