/* COMMPRESS_POLICY's alpha-beta model (plugin/policy.h) on one rank,
 * through the policy's own state machine: calls timed by a known model
 * must give that model back, its predictions, and the decision it drives
 * at a class's first call (plain without a round where compressing is
 * predicted clearly slower, within the sizes measured; a measured round
 * otherwise). */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "collectives/coll.h"
#include "plugin/policy.h"

/* One rank: the agreement is the identity. */
static cp_status_t max_u64(void *ctx, uint64_t *v, size_t n)
{
    (void)ctx, (void)v, (void)n;
    return CP_OK;
}
static const cp_transport_ops_t ops = {.name = "one", .allreduce_max_u64 = max_u64};
static const cp_transport_t tp_one = {.ops = &ops, .rank = 0, .size = 4};

/* The model the fake network follows: 4 ranks, so the ring's bytes per
 * rank are 2 (3/4) 4 n. */
static const double ALPHA = 40e-6, BETA = 1e-9;   /* s, s/byte: 1 GB/s */
static const double ALPHA_C = 90e-6, GAMMA = 3e-10; /* s, s/float */
static const double WIRE = 0.5;                   /* bytes per float (quant 4) */

static double t_plain(size_t n) { return ALPHA + BETA * (double)cp_ring_bytes(4, 4.0 * n); }
static double t_comp(size_t n, double wire) { return ALPHA_C + GAMMA * n + BETA * wire * n; }

/* The simulated clock: calls back to back, so a period is its call's time
 * plus `after` (compute between calls). */
static double now;

/* One call of n floats as the policy says; plain calls take plain_factor
 * times the model's time, compressed ones send `wire` bytes a float and
 * are followed by extra_after seconds of compute. Returns whether plain. */
static int call(cp_policy_t *p, size_t n, double wire, double plain_factor,
                double extra_after, int fresh)
{
    int plain = -1;
    cr_assert_eq(cp_policy_begin(p, n, now, &tp_one, &plain), CP_OK);
    const double t = plain ? plain_factor * t_plain(n) : t_comp(n, wire);
    cp_policy_end(p, n, plain, now, t, plain ? cp_ring_bytes(4, 4.0 * n) : (size_t)(wire * n),
                  fresh);
    now += t + (plain ? 0 : extra_after) + 1e-3; /* 1 ms of compute a step */
    return plain;
}

/* Runs calls of n (a power of two) floats until the class is decided. The
 * first call is a new tensor's (not timed); a decision is made at the
 * entry of the call after a pair. */
static void settle(cp_policy_t *p, size_t n, double wire, double plain_factor)
{
    const unsigned k = (unsigned)__builtin_ctzll(n);
    for (int i = 0; i < 40 && p->cls[k].mode == CP_POL_ROUND; i++)
        call(p, n, wire, plain_factor, 0, i == 0);
    cr_assert(!p->cls[k].in_round, "the class of %zu floats is not decided", n);
}

static void close_to(double got, double want, double rel)
{
    cr_assert(fabs(got - want) <= rel * fabs(want), "%.9g is not %.9g (within %g)", got,
              want, rel);
}

Test(policy_model, recovers_the_model_from_two_classes)
{
    cp_policy_t p;
    cp_policy_init(&p, 0, 4, "");
    settle(&p, 1u << 14, WIRE, 1);
    cp_pol_model_t m;
    cr_assert_eq(cp_policy_model(&p, &m), 0, "one class is no model");
    settle(&p, 1u << 22, WIRE, 1);
    cr_assert_eq(cp_policy_model(&p, &m), 1);
    close_to(m.alpha, ALPHA, 1e-6);
    close_to(m.beta, BETA, 1e-6);
    close_to(m.alpha_c, ALPHA_C, 1e-6);
    close_to(m.gamma, GAMMA, 1e-6);
    double c, pl;
    cp_policy_predict(&p, &m, 300000, &c, &pl);
    close_to(c, t_comp(300000, WIRE), 1e-6);
    close_to(pl, t_plain(300000), 1e-6);
}

/* Where compressing is clearly slower, a new class within the sizes
 * measured is predicted and starts plain without a round; one above them
 * is measured. */
Test(policy_model, a_class_predicted_slower_starts_plain)
{
    cp_policy_t p;
    cp_policy_init(&p, 0, 4, "");
    /* Plain calls at a tenth of the model's time, compressed ones sending
     * 64 bytes per float: compressing is far slower. */
    settle(&p, 1u << 12, 64.0, 0.1);
    settle(&p, 1u << 20, 64.0, 0.1);
    const size_t mid = 1u << 16, big = 1u << 23;
    cp_pol_model_t m;
    cr_assert_eq(cp_policy_model(&p, &m), 1);
    double c, pl;
    cp_policy_predict(&p, &m, mid, &c, &pl);
    cr_assert_gt(c, 1.5 * pl, "the fake times predict compressing slower");
    cr_assert_eq(call(&p, mid, 64.0, 0.1, 0, 1), 1);
    cr_assert_eq(p.cls[16].in_round, 0, "no round: decided by the prediction");
    cr_assert_eq(p.cls[16].mode, CP_POL_PLAIN);
    /* It stays plain until its first probe, 64 calls later, measures. */
    for (int i = 1; i < 64; i++)
        cr_assert_eq(call(&p, mid, 64.0, 0.1, 0, 0), 1, "call %d", i);
    cr_assert_eq(call(&p, mid, 64.0, 0.1, 0, 0), 0, "the probe starts with a compressed call");
    /* Above the sizes measured the model does not decide: a round. */
    cr_assert_eq(call(&p, big, 64.0, 0.1, 0, 1), 0);
    cr_assert_eq(p.cls[23].mode, CP_POL_ROUND, "not decided: its warm-up, then a round");
    cr_assert_gt(p.cls[23].pred_p, 0, "the prediction is kept for the INFO line");
}

/* Where compressing is predicted faster, the round still measures. */
Test(policy_model, a_class_predicted_faster_is_measured)
{
    cp_policy_t p;
    cp_policy_init(&p, 0, 4, "");
    settle(&p, 1u << 12, WIRE, 1);
    settle(&p, 1u << 20, WIRE, 1);
    cr_assert_eq(call(&p, 1u << 16, WIRE, 1, 0, 1), 0);
    cr_assert_eq(p.cls[16].mode, CP_POL_ROUND, "not decided: its warm-up, then a round");
    cr_assert_lt(p.cls[16].pred_c, p.cls[16].pred_p);
}

/* Where ranks share cores, a compressed call can be faster while the step
 * is slower: its encoding takes the CPU the other ranks compute with. The
 * period (call to next call) sees it; the call time alone does not. */
Test(policy_model, the_period_decides_not_the_call)
{
    cp_policy_t p;
    cp_policy_init(&p, 0, 4, "");
    const size_t n = 1u << 20;
    /* compressed 0.92 ms a call against plain 6.33 ms, but each
     * compressed call costs 10 ms of compute after it */
    settle(&p, n, WIRE, 1);
    cr_assert_eq(p.cls[20].mode, CP_POL_COMPRESS, "without the extra compute: compressed");
    cp_policy_init(&p, 0, 4, "");
    for (int i = 0; i < 40 && p.cls[20].mode == CP_POL_ROUND; i++)
        call(&p, n, WIRE, 1, 10e-3, i == 0);
    cr_assert_eq(p.cls[20].mode, CP_POL_PLAIN, "the steps with compressed calls are slower");
    cr_assert_lt(p.cls[20].seen_c, p.cls[20].seen_p, "though each call was faster");
}

/* A compressed call can leave work behind that the next call pays for (a
 * rank still decoding makes its peers wait in the next collective). A
 * round that alternated one call of each side would charge it to the
 * plain side; the timed second call of each side's two sees each side's
 * steady state: here compressed 2 ms a call plus 10 ms left for the next
 * against plain 8 ms, so plain. */
Test(policy_model, what_a_call_leaves_behind_is_its_own)
{
    cp_policy_t p;
    cp_policy_init(&p, 0, 4, "");
    const size_t n = 1u << 20;
    double leak = 0;
    for (int i = 0; i < 40 && p.cls[20].mode == CP_POL_ROUND; i++) {
        int plain = -1;
        cr_assert_eq(cp_policy_begin(&p, n, now, &tp_one, &plain), CP_OK);
        const double t = (plain ? 8e-3 : 2e-3) + leak;
        leak = plain ? 0 : 10e-3;
        cp_policy_end(&p, n, plain, now, t, 1000, i == 0);
        now += t + 1e-3;
    }
    cr_assert_eq(p.cls[20].mode, CP_POL_PLAIN, "compressed steps take 12 ms, plain 8 ms");
}

/* Fixed times: a compressed call takes tc, a plain one tp, and 1 ms of
 * compute follows each; with pause_side >= 0 the first timed sample of
 * that side (0 compressed, 1 plain) is followed by a 5 s pause (an
 * evaluation, a checkpoint) within its period. Runs until the class of
 * n is decided (or, when it already is, through its next probe). */
static void fixed(cp_policy_t *p, size_t n, double tc, double tp, int pause_side)
{
    const unsigned k = (unsigned)__builtin_ctzll(n);
    cp_pol_class_t *c = &p->cls[k];
    const int probe = c->mode != CP_POL_ROUND;
    int paused = pause_side < 0, entered = 0;
    for (int i = 0; i < 5000; i++) {
        int plain = -1;
        cr_assert_eq(cp_policy_begin(p, n, now, &tp_one, &plain), CP_OK);
        if (probe && entered && !c->in_round)
            return; /* the probe has decided, at this call's entry */
        if (!probe && c->mode != CP_POL_ROUND && !c->in_round)
            return;
        const double t = plain ? tp : tc;
        cp_policy_end(p, n, plain, now, t, 1000, i == 0 && !probe);
        entered |= c->in_round;
        now += t + 1e-3;
        if (!paused && c->pend == pause_side)
            now += 5.0, paused = 1;
    }
    cr_assert(0, "the class of %zu floats is not decided", n);
}

/* A pause inside one period makes one sample seconds long. One pair
 * decides only where the call times agree with the periods, and from two
 * pairs on each side's slowest sample is left out: the pause decides
 * nothing, in the first round or in a probe, on either side. */
Test(policy_model, a_pause_decides_nothing)
{
    cp_policy_t p;
    const size_t n = 1u << 20;
    cp_policy_init(&p, 0, 4, "");
    fixed(&p, n, 1e-3, 6e-3, -1);
    cr_assert_eq(p.cls[20].mode, CP_POL_COMPRESS);
    cr_assert_eq(p.cls[20].n[0], 1, "a clear ratio, calls and periods alike: one pair");

    cp_policy_init(&p, 0, 4, "");
    fixed(&p, n, 1e-3, 6e-3, 0);
    cr_assert_eq(p.cls[20].mode, CP_POL_COMPRESS, "a pause after a compressed call");
    cr_assert_eq(p.cls[20].n[0], 2, "the pause's pair did not decide alone");
    fixed(&p, n, 1e-3, 6e-3, 0);
    cr_assert_eq(p.cls[20].mode, CP_POL_COMPRESS, "a pause in the probe");
    fixed(&p, n, 1e-3, 6e-3, 1);
    cr_assert_eq(p.cls[20].mode, CP_POL_COMPRESS, "a pause on the plain side");

    cp_policy_init(&p, 0, 4, "");
    fixed(&p, n, 6e-3, 1e-3, 1);
    cr_assert_eq(p.cls[20].mode, CP_POL_PLAIN, "a pause after a plain call");
    fixed(&p, n, 6e-3, 1e-3, 1);
    cr_assert_eq(p.cls[20].mode, CP_POL_PLAIN, "a pause in the probe");
}

/* A plain class compresses again only where a probe measures its
 * periods below 0.85 of plain's; between 0.85 and 1 nothing changes
 * either way (two nearly equal settings do not flap). */
Test(policy_model, a_plain_class_needs_a_clear_win_to_compress_again)
{
    cp_policy_t p;
    const size_t n = 1u << 20;
    cp_policy_init(&p, 0, 4, "");
    fixed(&p, n, 9e-3, 9e-3, -1); /* r = 1: four pairs, plain */
    cr_assert_eq(p.cls[20].mode, CP_POL_PLAIN);
    fixed(&p, n, 7.7e-3, 9e-3, -1); /* periods 8.7 ms against 10 ms: 0.87 */
    cr_assert_eq(p.cls[20].mode, CP_POL_PLAIN, "0.87 is no clear win");
    fixed(&p, n, 6.5e-3, 9e-3, -1); /* 0.75 */
    cr_assert_eq(p.cls[20].mode, CP_POL_COMPRESS, "0.75 is");
    fixed(&p, n, 9.5e-3, 9e-3, -1); /* 1.05 */
    cr_assert_eq(p.cls[20].mode, CP_POL_PLAIN, "compressed and slower: plain");
}
