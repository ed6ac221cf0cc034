/* COMMPRESS_POLICY=auto: whether a call is compressed or plain, per
 * communicator and size class, from timings every rank agrees on
 * (docs/policy.md).
 *
 * A size class is floor(log2(count)) of the call's floats; calls of one
 * class on one communicator come in the same order on every rank (MPI's
 * collectives are ordered), so a class's call index is the same
 * everywhere, and so is everything below that depends only on it and on
 * agreed values.
 *
 * A class's first 8 calls run compressed, untimed (a warm-up: a
 * program's first steps, and MPI's first large calls, are slow). Then
 * each class goes through rounds of pairs: two calls compressed, the
 * next two plain (collectives/allreduce_plain.h); the second of each two
 * is timed (the first absorbs what the other side left behind: a rank
 * still decoding makes its peers wait in the next call), twice on every
 * rank: the call itself (entry to return), and its period, from its entry
 * to the entry of the class's next call (with one call of the class a
 * step, the step: the call and the compute after it, which a compressed
 * call slows where ranks share cores). At the next call's entry the
 * sample is complete; after each pair the ranks agree in one allreduce on
 * the medians so far: of the call times the smallest over ranks (the
 * rank that came to the call last waited least), of the periods the
 * largest (the job runs at its slowest rank's pace); each median leaves
 * out its side's slowest sample where that is more than twice the median
 * of the others (a pause for an evaluation or a checkpoint lengthens one
 * period by seconds). The round ends when the
 * ratio of the periods r = compressed / plain is clear: after one pair,
 * r < 1/3 or r > 3 with the ratio of the call times beyond the same bound
 * (a pause lengthens a period, not a call); < 2/3 or > 3/2 after two; any
 * after four pairs. Then:
 *  - the first round compresses iff r < 0.95 (compressing must pay);
 *  - later rounds (probes) switch to plain iff r > 1, back to compressed
 *    iff r < 0.85 (hysteresis);
 * and the next probe comes 64 calls of the class later (1024 when r was
 * below 1/3 or above 3: a probe then costs more than it can find), the
 * distance doubling after each probe up to 16384. Calls whose tensor is new
 * (its first call allocates and agrees) are not timed.
 *
 * The model (alpha-beta): the agreed medians of the call times of the
 * classes measured so far fit plain(n) = alpha + beta B(n), B the ring
 * allreduce's bytes per rank, and compressed(n) = alpha_c + gamma n + beta W(n), W the
 * compressed call's wire bytes (agreed: the largest over ranks) and
 * gamma the codec's seconds per float. A class met for the first time
 * once two classes have been measured (each round times both sides), and
 * no larger than
 * the largest of them, is predicted first: predicted compressed more than
 * 1.5 times plain, it starts plain without a round (its first probe
 * measures); otherwise its round measures as above. The model's inputs
 * are agreed values, so its predictions are equal on every rank.
 *
 * COMMPRESS_POLICY_TEST_TIMES (testing only) replaces the measured
 * seconds (call and period alike) by fixed ones per rank, so that a test
 * can make the ranks' timings disagree and check that their decisions do
 * not. */
#ifndef CP_POLICY_H
#define CP_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "collectives/transport.h"
#include "util/status.h"

#define CP_POLICY_CLASSES 64
#define CP_POLICY_PAIRS 4

typedef enum {
    CP_POL_ROUND = 0, /* no decision yet: the first round measures */
    CP_POL_COMPRESS,
    CP_POL_PLAIN,
} cp_pol_mode_t;

typedef struct {
    uint64_t calls;      /* calls of this class so far */
    /* The last agreed round, the model's input (0: none yet). */
    double seen_c, seen_p;  /* agreed medians of the call times, seconds */
    double seen_n;          /* floats of that round's calls */
    double seen_w;          /* wire bytes per float of its compressed calls */
    double pred_c, pred_p;  /* the model's prediction at the first call
                               (0: none) */
    double per_c, per_p;    /* the last agreed round's period medians */
    uint64_t ncomp;         /* calls of this class that ran compressed */
    uint8_t mode;        /* cp_pol_mode_t: the decision, kept during probes */
    uint8_t in_round;
    uint8_t next_plain;  /* the round's next calls are plain */
    uint8_t second;      /* the next call is its side's second (timed) */
    uint32_t n[2];       /* samples this round: [0] compressed, [1] plain */
    double t[2][CP_POLICY_PAIRS];   /* call seconds */
    double per[2][CP_POLICY_PAIRS]; /* period seconds */
    /* The last timed call, its period still open (pend < 0: none). */
    int8_t pend;
    double pend_start, pend_call;
    uint64_t wire;       /* this round's compressed calls' wire bytes */
    uint64_t probe_at;   /* call index of the next probe */
    uint64_t interval;
} cp_pol_class_t;

typedef struct {
    int on;
    int rank;
    int size;            /* ranks of the communicator */
    double fake[2];      /* COMMPRESS_POLICY_TEST_TIMES: this rank's
                            seconds (compressed, plain); < 0: measured */
    cp_pol_class_t cls[CP_POLICY_CLASSES];
} cp_policy_t;

/* Off until cp_policy_init. spec: COMMPRESS_POLICY_TEST_TIMES ("" for
 * none), checked by cp_policy_check_times. */
void cp_policy_init(cp_policy_t *p, int rank, int size, const char *spec);
/* Whether a test-times specification is well formed:
 * "c:p[,c:p...]", microseconds of a compressed and a plain call for rank
 * 0, 1, ... (later ranks take the last pair). */
int cp_policy_check_times(const char *spec);

/* At the entry (time `now`) of a call of `count` floats: completes the
 * class's previous timed sample (its period ends now), which may end a
 * pair: then an allreduce over tp, at the same call on every rank. Sets
 * *plain to whether this call runs plain (1) or compressed (0), the same
 * on every rank; always 0 when off. At a class's first call it applies
 * the model's prediction (above). */
cp_status_t cp_policy_begin(cp_policy_t *p, size_t count, double now,
                            const cp_transport_t *tp, int *plain);
/* After that call, which ran as begin said, entered at `start`, took
 * `seconds` and put `wire` bytes on the wire from this rank (fresh: its
 * tensor was new, not timed). */
void cp_policy_end(cp_policy_t *p, size_t count, int plain, double start,
                   double seconds, size_t wire, int fresh);

/* The time compressing saved against plain, as the policy estimates it:
 * for each class a round measured, its compressed calls times the plain
 * period less the compressed one, of its last round (negative where
 * compressing cost time: a class's rounds, or a class that runs plain
 * after measuring). *calls: the compressed calls counted. */
double cp_policy_saved(const cp_policy_t *p, uint64_t *calls);

/* The model fitted from the classes measured so far (above); 0 when it
 * has fewer than two classes on either side. For tests and the INFO
 * lines. */
typedef struct {
    double alpha, beta;      /* plain: seconds, seconds per byte */
    double alpha_c, gamma;   /* compressed: seconds, seconds per float */
} cp_pol_model_t;
int cp_policy_model(const cp_policy_t *p, cp_pol_model_t *m);
/* The model's times for a call of `count` floats (its wire bytes per
 * float taken from the nearest measured class). */
void cp_policy_predict(const cp_policy_t *p, const cp_pol_model_t *m,
                       size_t count, double *compressed, double *plain);

#endif
