/* COMMPRESS_POLICY=auto under mpirun, with the shim preloaded
 * (plugin/policy.h, collectives/allreduce_plain.h):
 *  schedule  with COMMPRESS_POLICY_TEST_TIMES (timings that differ by
 *            rank), every rank runs the same calls plain, and exactly the
 *            calls a reference model of the documented rules says;
 *  conserve  every switch from compressed to plain sends what error
 *            feedback held back: after a plain call the results so far
 *            sum to the inputs so far (to rounding), for the codec and
 *            feedback of the environment; a plain call of a clean tensor
 *            is PMPI_Allreduce's sum bit for bit; every rank gets
 *            identical bits (POLICY_TEST_LAYOUT: the buffer is a fused
 *            one of three layers, commpress_register_layout);
 *  predict   with COMMPRESS_POLICY_TEST_TIMES, two sizes measured and a
 *            third between them: the model predicts the third from the
 *            agreed times, and it starts plain without a round when the
 *            agreed ratio is above 1.5 (measured otherwise); the same on
 *            every rank, as the reference says call by call;
 *  moving    address keying with buffers that differ by rank: the same
 *            calls plain everywhere, identical bits, no hang;
 *  real      measured timings with ranks that arrive late by different
 *            amounts: identical bits and identical plain calls on every
 *            rank, never a hang (ctest's timeout);
 *  long      the same over 3000 steps of three calls of one size class,
 *            with a pause every 700 steps: the same calls plain on every
 *            rank, call by call. */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commpress.h"
#include "common/check.h"
#include "common/splitmix.h"

static int rank, nranks;

static unsigned long long plain_calls(void)
{
    commpress_stats_t s;
    commpress_stats(&s);
    return s.calls_plain;
}

static uint64_t hash_bits(const float *x, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    const unsigned char *b = (const unsigned char *)x;
    for (size_t i = 0; i < n * sizeof(float); i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* Every rank holds the same value. */
static int same_everywhere(uint64_t v)
{
    uint64_t lo = v, hi = v;
    PMPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
    PMPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    return lo == v && hi == v;
}

static void fill(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((double)(cp_test_splitmix(&s) >> 11) / 9007199254740992.0 - 0.5);
}

/* The documented rules (plugin/policy.h), written again from the text:
 * the plain/compressed sequence of `calls` calls of one tensor whose
 * agreed ratio compressed/plain is r (fixed times), its first call new:
 * 8 calls compressed (the warm-up), then the first round, whose sides
 * come two calls at a time, the second timed; predicted: the model
 * decided plain at its first call. */
static void reference(double r, double rcall, size_t calls, unsigned char *plain,
                      int predicted)
{
    int in_round = 0, next_plain = 0, decided = predicted, mode_plain = predicted, second = 0;
    unsigned n0 = 0, n1 = 0;
    uint64_t interval = predicted ? 64 : 0, probe_at = predicted ? 64 : 8;
    for (size_t i = 0; i < calls; i++) {
        const int p = in_round ? next_plain : mode_plain;
        plain[i] = (unsigned char)p;
        const uint64_t done = i + 1;
        if (!in_round) {
            if (done >= probe_at) /* a round: the side not in use first */
                in_round = 1, n0 = n1 = 0, second = 0, next_plain = decided && !mode_plain;
            continue;
        }
        if (!second) { /* the side's first call: not timed */
            second = 1;
            continue;
        }
        second = 0;
        if (p)
            n1 += n1 < 4;
        else
            n0 += n0 < 4;
        next_plain = !p;
        if (n0 != n1)
            continue;
        const int one = (r < 1.0 / 3 && rcall < 1.0 / 3) || (r > 3.0 && rcall > 3.0);
        const int clear = one || (n0 >= 2 && (r < 2.0 / 3 || r > 1.5)) || n0 >= 4;
        if (!clear)
            continue;
        if (!decided)
            mode_plain = !(r < 0.95);
        else if (!mode_plain)
            mode_plain = r > 1.0;
        else
            mode_plain = !(r < 0.85);
        decided = 1, in_round = 0;
        interval = interval ? 2 * interval : 64;
        if ((r < 1.0 / 3 || r > 3.0) && interval < 1024)
            interval = 1024;
        if (interval > 16384)
            interval = 16384;
        probe_at = done + interval;
    }
}

/* Reads the fake times the environment gives every rank (call and
 * period alike): the agreed ratio of the periods is the max over ranks of
 * the compressed times over the max of the plain (slow = 1), of the calls
 * the min over the min (slow = 0). */
static double pick(int slow, double a, double b)
{
    return slow ? fmax(a, b) : fmin(a, b);
}

static double agreed_ratio(int slow)
{
    const char *s = getenv("COMMPRESS_POLICY_TEST_TIMES");
    double c = slow ? 0 : INFINITY, p = c, lc = 0, lp = 0;
    int i = 0;
    while (s && *s) {
        char *e;
        lc = strtod(s, &e);
        lp = strtod(e + 1, &e);
        if (i < nranks)
            c = pick(slow, c, lc), p = pick(slow, p, lp);
        i++;
        s = *e ? e + 1 : e;
    }
    for (; i < nranks; i++) /* later ranks take the last pair */
        c = pick(slow, c, lc), p = pick(slow, p, lp);
    return c / p;
}

static void schedule(void)
{
    const size_t n = 50000, calls = 700;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    unsigned char *got = malloc(calls), *want = malloc(calls);
    reference(agreed_ratio(1), agreed_ratio(0), calls, want, 0);
    size_t nplain = 0, mism = 0;
    for (size_t i = 0; i < calls; i++) {
        fill(x, n, 1000 * i + (uint64_t)rank);
        const unsigned long long before = plain_calls();
        MPI_Allreduce(x, y, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        got[i] = (unsigned char)(plain_calls() - before);
        nplain += got[i];
        if (got[i] != want[i] && mism++ < 5)
            CHECK(0, "call %zu ran %s, the rules say %s", i, got[i] ? "plain" : "compressed",
                  want[i] ? "plain" : "compressed");
        CHECK(same_everywhere(hash_bits(y, n)), "call %zu: ranks got different bits", i);
    }
    CHECK(mism == 0, "%zu of %zu calls not as the rules say", mism, calls);
    CHECK(same_everywhere(hash_bits((float *)got, calls / 4)) && same_everywhere(nplain),
          "ranks ran different calls plain");
    if (rank == 0)
        printf("schedule: agreed ratio %.3f, %zu of %zu calls plain\n", agreed_ratio(1), nplain,
               calls);
    free(x), free(y), free(got), free(want);
}

/* Tensors of 50000 and 200000 floats (classes 15 and 17) until both are
 * decided, then one of 100000 (class 16): with fixed times the model
 * (of the call times) predicts their agreed ratio rc for it (plain times
 * the same at every size: no bandwidth term; compressed likewise), so it
 * starts plain without a round iff rc > 1.5. */
static void predict(void)
{
    const size_t sizes[3] = {50000, 200000, 100000}, calls[3] = {40, 40, 600};
    const double r = agreed_ratio(1), rc = agreed_ratio(0);
    float *x = malloc(200000 * sizeof(float)), *y = malloc(200000 * sizeof(float));
    unsigned char *got = malloc(600), *want = malloc(600);
    size_t nplain = 0;
    for (int t = 0; t < 3; t++) {
        reference(r, rc, calls[t], want, t == 2 && rc > 1.5);
        size_t mism = 0;
        for (size_t i = 0; i < calls[t]; i++) {
            fill(x, sizes[t], 1000 * i + 10 * (uint64_t)t + (uint64_t)rank);
            const unsigned long long before = plain_calls();
            MPI_Allreduce(x, y, (int)sizes[t], MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            got[i] = (unsigned char)(plain_calls() - before);
            nplain += got[i];
            if (got[i] != want[i] && mism++ < 5)
                CHECK(0, "tensor %d call %zu ran %s, the rules say %s", t, i,
                      got[i] ? "plain" : "compressed", want[i] ? "plain" : "compressed");
            CHECK(same_everywhere(hash_bits(y, sizes[t])), "tensor %d call %zu: ranks got "
                  "different bits", t, i);
        }
        CHECK(mism == 0, "tensor %d: %zu of %zu calls not as the rules say", t, mism, calls[t]);
    }
    CHECK(same_everywhere(nplain), "ranks ran different calls plain");
    if (rank == 0)
        printf("predict: agreed ratios %.3f (periods), %.3f (calls), third tensor %s, %zu "
               "calls plain\n", r, rc, rc > 1.5 ? "predicted plain" : "measured", nplain);
    free(x), free(y), free(got), free(want);
}

/* Sum of results so far against the sum over ranks of inputs so far,
 * checked after every plain call that followed a compressed one. */
static void conserve(void)
{
    const size_t n = 20000, calls = 40;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float)),
          *ref = malloc(n * sizeof(float));
    double *in = calloc(n, sizeof(double)), *out = calloc(n, sizeof(double));
    int prev_plain = 0, flushes = 0, exact = 0, compressed = 0;
    const char *fb = getenv("COMMPRESS_FEEDBACK"), *cmp = getenv("COMMPRESS_COMPRESSOR");
    const int dgc = cmp && strcmp(cmp, "dgc") == 0;
    /* EF owes what it held back: the running sums must meet after a
     * flush. none and EF21: the flush call's own result is the exact sum.
     * EControl's identity step sends eta e and keeps (1 - eta) e, and the
     * momentum of DGC and EF21-SGDM changes what is summed: bits only. */
    const int ef = !dgc && (fb == NULL || strcmp(fb, "ef") == 0 || strcmp(fb, "auto") == 0);
    const int per_call = !dgc && !ef && (strcmp(fb, "none") == 0 || strcmp(fb, "ef21") == 0);
    const int memoryless = !dgc && (ef || strcmp(fb, "none") == 0);
    if (getenv("POLICY_TEST_LAYOUT")) { /* a fused buffer of three layers */
        const size_t off[4] = {0, 5000, 5001, n};
        CHECK(commpress_register_layout(x, n, 3, off) == 0, "register_layout");
    }
    for (size_t i = 0; i < calls; i++) {
        fill(x, n, 77 * i + (uint64_t)rank);
        PMPI_Allreduce(x, ref, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        const unsigned long long before = plain_calls();
        MPI_Allreduce(x, y, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        const int plain = plain_calls() != before;
        CHECK(same_everywhere(hash_bits(y, n)), "call %zu: ranks got different bits", i);
        double worst = 0, scale = 0, worst1 = 0, scale1 = 0;
        for (size_t j = 0; j < n; j++) {
            in[j] += ref[j]; /* the exact sum of this call's inputs */
            out[j] += y[j];
            worst = fmax(worst, fabs(in[j] - out[j]));
            scale = fmax(scale, fabs(in[j]));
            worst1 = fmax(worst1, fabs((double)y[j] - ref[j]));
            scale1 = fmax(scale1, fabs(ref[j]));
        }
        if (!ef)
            worst = worst1, scale = scale1;
        compressed += !plain;
        if (plain && !prev_plain && i > 0 && (ef || per_call)) {
            /* What feedback held back went out in this call: nothing is
             * owed. Rounding: one float sum per call and rank, and the
             * states' own rounding (2^-20 of the running magnitudes). */
            CHECK(worst <= 1e-5 * (scale + 1), "call %zu: after a switch to plain %.3g is "
                  "still missing (scale %.3g)", i, worst, scale);
            flushes++;
        }
        if (plain && prev_plain) {
            /* A clean tensor's plain call is MPI's sum itself (EF and none);
             * the others run their feedback with the identity codec. */
            if (memoryless) {
                CHECK(memcmp(y, ref, n * sizeof(float)) == 0,
                      "call %zu: a clean plain call differs from PMPI_Allreduce", i);
                exact++;
            }
        }
        prev_plain = plain;
    }
    CHECK((flushes >= 2 || !(ef || per_call)) && compressed >= 2, "%d switches to plain and %d compressed calls: "
          "the round should alternate", flushes, compressed);
    if (rank == 0)
        printf("conserve: %d switches to plain checked, %d plain calls equal to MPI's, %d "
               "compressed\n", flushes, exact, compressed);
    free(x), free(y), free(ref), free(in), free(out);
}

/* COMMPRESS_STATE_KEY=address with buffers that differ by rank: rank r
 * cycles through r + 1 buffers, so a rank makes a new tensor state at a
 * call where its peers do not. The calls the policy times and agrees on
 * must still be the same everywhere (else its agreement allreduce would
 * pair with a peer's next call). Every rank runs the same calls plain and
 * gets identical bits; ctest's timeout catches a hang. */
static void moving(void)
{
    const size_t n = 40000, calls = 600;
    float *buf[8], *y = malloc(n * sizeof(float));
    const int nb = rank % 8 + 1;
    for (int b = 0; b < nb; b++)
        buf[b] = malloc(n * sizeof(float));
    uint64_t h = 1469598103934665603ull;
    size_t nplain = 0;
    for (size_t i = 0; i < calls; i++) {
        float *x = buf[i % (size_t)nb];
        fill(x, n, 1000 * i + (uint64_t)rank);
        const unsigned long long before = plain_calls();
        MPI_Allreduce(x, y, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        const int plain = plain_calls() != before;
        nplain += (size_t)plain;
        h = (h ^ (uint64_t)plain) * 1099511628211ull;
        CHECK(same_everywhere(hash_bits(y, n)), "call %zu: ranks got different bits", i);
    }
    CHECK(same_everywhere(h), "ranks ran different calls plain");
    if (rank == 0)
        printf("moving: %zu of %zu calls plain\n", nplain, calls);
    for (int b = 0; b < nb; b++)
        free(buf[b]);
    free(y);
}

static void real(void)
{
    const size_t sizes[] = {30000, 70000, 300000, 1000000};
    const size_t calls = 400;
    float *x = malloc(1000000 * sizeof(float)), *y = malloc(1000000 * sizeof(float));
    uint64_t s = 99 + (uint64_t)rank;
    for (size_t i = 0; i < calls; i++) {
        const size_t n = sizes[i % 4];
        fill(x, n, i * 31 + (uint64_t)rank);
        /* Ranks arrive late by different, changing amounts (0-2 ms). */
        struct timespec d = {0, (long)(cp_test_splitmix(&s) % 2000000)};
        nanosleep(&d, NULL);
        MPI_Allreduce(x, y, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        CHECK(same_everywhere(hash_bits(y, n)), "call %zu: ranks got different bits", i);
    }
    const unsigned long long p = plain_calls();
    CHECK(same_everywhere(p), "ranks ran different numbers of calls plain");
    if (rank == 0)
        printf("real: %llu of %zu calls plain\n", p, calls);
    free(x), free(y);
}

/* Thousands of steps with measured timings, three calls of one size
 * class a step (the class's periods then span one call to the next of
 * another tensor), ranks late by changing amounts, and a 50 ms pause on
 * every rank every 700 steps (an evaluation): identical bits on every
 * call, and every rank runs the same calls plain, call by call, through
 * the probes of a long run (their distance doubles to 1024 and beyond). */
static void long_run(void)
{
    const size_t sizes[3] = {40000, 50000, 60000}, steps = 3000, calls = 3 * steps;
    float *x = malloc(60000 * sizeof(float)), *y = malloc(60000 * sizeof(float));
    unsigned char *got = malloc(calls);
    uint64_t s = 7 + (uint64_t)rank;
    size_t bad = 0;
    for (size_t i = 0; i < calls; i++) {
        const size_t n = sizes[i % 3];
        fill(x, n, i * 13 + (uint64_t)rank);
        if (i % (3 * 700) == 0 && i > 0) {
            struct timespec pause = {0, 50000000};
            nanosleep(&pause, NULL);
        }
        struct timespec d = {0, (long)(cp_test_splitmix(&s) % 300000)};
        nanosleep(&d, NULL);
        const unsigned long long before = plain_calls();
        MPI_Allreduce(x, y, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        got[i] = (unsigned char)(plain_calls() - before);
        if (i % 97 == 0 || i + 1 == calls)
            bad += !same_everywhere(hash_bits(y, n));
    }
    CHECK(bad == 0, "%zu sampled calls gave different bits on different ranks", bad);
    size_t nplain = 0;
    for (size_t i = 0; i < calls; i++)
        nplain += got[i];
    CHECK(same_everywhere(hash_bits((const float *)got, calls / 4)) && same_everywhere(nplain),
          "ranks ran different calls plain");
    if (rank == 0)
        printf("long: %zu of %zu calls plain, the same calls on every rank\n", nplain, calls);
    free(x), free(y), free(got);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    cp_test_rank = rank;
    const char *mode = argc > 1 ? argv[1] : "schedule";
    if (strcmp(mode, "schedule") == 0)
        schedule();
    else if (strcmp(mode, "conserve") == 0)
        conserve();
    else if (strcmp(mode, "real") == 0)
        real();
    else if (strcmp(mode, "moving") == 0)
        moving();
    else if (strcmp(mode, "predict") == 0)
        predict();
    else if (strcmp(mode, "long") == 0)
        long_run();
    else
        CHECK(0, "unknown mode %s", mode);
    int bad = nfail;
    MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (rank == 0)
        printf("%d passed, %d failed\n", npass, nfail);
    MPI_Finalize();
    return bad ? 1 : 0;
}
