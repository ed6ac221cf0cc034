/* The step detector (plugin/step_detect.h) against programs: a step is a
 * list of logical tensors (each with a count), run for some steps. A
 * simulated tensor table applies the detector's remaps; every call looks
 * up its state, which remembers the logical tensor that used it last.
 * "State follows the tensor" means: from some step on, every call finds
 * the state its own tensor used the step before; a fresh state or another
 * tensor's state is a failure. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/step_detect.h"

#define MAXSTATE 20000

typedef struct {
    uint64_t sig, id, new_id;
    int owner, used, keep;
} sim_state_t;

static sim_state_t tab[MAXSTATE];
static int ntab;
static unsigned events;

static int find(uint64_t sig, uint64_t id)
{
    for (int i = 0; i < ntab; i++)
        if (tab[i].used && tab[i].sig == sig && tab[i].id == id)
            return i;
    return -1;
}

static void remap(const cp_sd_action_t *a)
{
    for (int i = 0; i < ntab; i++)
        tab[i].keep = 0;
    for (size_t r = 0; r < a->nrenames; r++) {
        int e = find(a->renames[r].sig, a->renames[r].old_id);
        if (e >= 0 && !tab[e].keep)
            tab[e].keep = 1, tab[e].new_id = a->renames[r].new_id;
    }
    for (int i = 0; i < ntab; i++) {
        if (tab[i].used && !tab[i].keep)
            tab[i].used = 0;
        else if (tab[i].used)
            tab[i].id = tab[i].new_id;
    }
}

/* One call of logical tensor `t` with `count`: the previous owner of the
 * state it gets (-1: a fresh state). */
static int call(cp_stepdet_t *d, int t, size_t count, uint64_t evidence)
{
    cp_sd_action_t a;
    uint64_t sig = cp_stepdet_sig(count, 0);
    uint64_t id = cp_stepdet_next(d, sig, &a);
    events |= a.events;
    if (a.remap)
        remap(&a);
    int e = find(sig, id), prev = -1;
    if (e < 0) {
        cr_assert_lt(ntab, MAXSTATE);
        e = ntab++;
        tab[e] = (sim_state_t){.sig = sig, .id = id, .used = 1, .owner = -1};
    }
    prev = tab[e].owner;
    tab[e].owner = t;
    cp_stepdet_evidence(d, evidence);
    return prev;
}

static void reset(cp_stepdet_t *d, size_t maxp)
{
    ntab = 0;
    events = 0;
    cr_assert_eq(cp_stepdet_init(d, maxp), CP_OK);
}

/* Runs `steps` steps of the tensors (counts[i] for tensor base + i);
 * counts every call from step `from` on whose state was not its own. */
static int run(cp_stepdet_t *d, const size_t *counts, int ntensors, int base,
               int steps, int from, uint64_t evidence)
{
    int bad = 0;
    for (int s = 0; s < steps; s++)
        for (int i = 0; i < ntensors; i++) {
            int prev = call(d, base + i, counts[i], evidence);
            if (s >= from && prev != base + i)
                bad++;
        }
    return bad;
}

Test(step_detect, one_tensor_keeps_its_state_from_the_second_step)
{
    cp_stepdet_t d;
    const size_t c[] = {1000};
    reset(&d, 64);
    cr_assert_eq(run(&d, c, 1, 0, 10, 1, 0), 0);
    cr_assert(events & CP_SD_LOCKED);
    cr_assert_eq(cp_stepdet_period(&d), 1);
    cr_assert_eq(ntab, 1);
    cp_stepdet_fini(&d);
}

Test(step_detect, distinct_sizes_lossless_from_the_second_step)
{
    cp_stepdet_t d;
    const size_t c[] = {1000, 2000, 3000, 4000, 5000};
    reset(&d, 64);
    cr_assert_eq(run(&d, c, 5, 0, 8, 1, 0), 0);
    cr_assert_eq(cp_stepdet_period(&d), 5);
    cp_stepdet_fini(&d);
}

/* Equal sizes inside the step that look periodic at first (A B A C ...):
 * in the first step the second A looks like the first one a short step
 * later and shares its state; the step is found at the end of the second,
 * where the second A gets a state of its own, new in the third step. From
 * the fourth on, every call finds its own state. */
Test(step_detect, repeated_size_inside_the_step)
{
    cp_stepdet_t d;
    const size_t c[] = {1000, 2000, 1000, 3000, 2000, 1000};
    reset(&d, 64);
    cr_assert_gt(run(&d, c, 6, 0, 3, 2, 0), 0);
    cr_assert_eq(run(&d, c, 6, 0, 10, 0, 0), 0);
    cr_assert_eq(cp_stepdet_period(&d), 6);
    cp_stepdet_fini(&d);
}

/* Four tensors of one size: the sizes alone say "one tensor". Agreed
 * evidence that each buffer comes back every 4 calls (stable buffers on
 * some rank) gives each its own state. */
Test(step_detect, equal_sizes_need_buffer_evidence)
{
    cp_stepdet_t d;
    const size_t c[] = {1000, 1000, 1000, 1000};
    reset(&d, 64);
    cr_assert_gt(run(&d, c, 4, 0, 6, 2, 0), 0); /* merged without evidence */
    cp_stepdet_fini(&d);
    reset(&d, 64);
    cr_assert_eq(run(&d, c, 4, 0, 12, 4, 4), 0);
    cr_assert(events & CP_SD_UPGRADED);
    cr_assert_eq(cp_stepdet_period(&d), 4);
    cp_stepdet_fini(&d);
}

/* Evidence that is not a multiple >= 2 of the step changes nothing. */
Test(step_detect, stray_evidence_ignored)
{
    cp_stepdet_t d;
    const size_t c[] = {1000, 2000, 3000};
    reset(&d, 64);
    cr_assert_eq(run(&d, c, 3, 0, 20, 1, 4), 0);
    cr_assert_eq(run(&d, c, 3, 0, 20, 0, 3), 0);
    cr_assert_eq(cp_stepdet_period(&d), 3);
    cr_assert(!(events & CP_SD_UPGRADED));
    cp_stepdet_fini(&d);
}

/* A tensor appears in the middle of the step: the others never lose their
 * state, the new one keeps its own from its second step. */
Test(step_detect, tensor_added_mid_step)
{
    cp_stepdet_t d;
    const size_t before[] = {1000, 2000, 3000, 2000};
    reset(&d, 64);
    run(&d, before, 4, 0, 3, 0, 0);
    cr_assert_eq(run(&d, before, 4, 0, 3, 0, 0), 0);
    int bad = 0;
    const int t[] = {0, 1, 9, 2, 3};
    const size_t c[] = {1000, 2000, 7000, 3000, 2000};
    for (int s = 0; s < 8; s++)
        for (int i = 0; i < 5; i++) {
            int prev = call(&d, t[i], c[i], 0);
            if (prev != t[i] && !(t[i] == 9 && s == 0))
                bad++;
        }
    cr_assert_eq(bad, 0);
    cr_assert(events & CP_SD_CHANGED);
    cr_assert(events & CP_SD_RELOCKED);
    cr_assert_eq(cp_stepdet_period(&d), 5);
    cp_stepdet_fini(&d);
}

Test(step_detect, tensor_added_at_the_end_and_one_removed)
{
    cp_stepdet_t d;
    const size_t c0[] = {1000, 2000, 3000, 4000};
    reset(&d, 64);
    run(&d, c0, 4, 0, 4, 1, 0);
    /* Tensor 1 goes, tensor 5 comes after the last. */
    const int t[] = {0, 2, 3, 5};
    const size_t c[] = {1000, 3000, 4000, 6000};
    int bad = 0;
    for (int s = 0; s < 8; s++)
        for (int i = 0; i < 4; i++) {
            int prev = call(&d, t[i], c[i], 0);
            if (prev != t[i] && !(t[i] == 5 && s == 0))
                bad++;
        }
    cr_assert_eq(bad, 0);
    cr_assert_eq(cp_stepdet_period(&d), 4);
    cp_stepdet_fini(&d);
}

/* An extra call between two steps (an evaluation): nobody loses state;
 * the extra call's state is dropped once the step is found again (after
 * a few steps: the new step must outlast a few old ones). */
Test(step_detect, one_off_call_between_steps)
{
    cp_stepdet_t d;
    const size_t c[] = {1000, 2000, 3000};
    reset(&d, 64);
    cr_assert_eq(run(&d, c, 3, 0, 4, 1, 0), 0);
    cr_assert_eq(call(&d, 7, 5000, 0), -1);
    cr_assert_eq(run(&d, c, 3, 0, 8, 0, 0), 0);
    cr_assert(events & CP_SD_RELOCKED);
    cr_assert_eq(cp_stepdet_period(&d), 3);
    cr_assert_eq(find(cp_stepdet_sig(5000, 0), 0), -1);
    cp_stepdet_fini(&d);
}

/* PyTorch DDP rebuilds its buckets after the first step: a different
 * sequence, found again within two steps. */
Test(step_detect, whole_step_replaced)
{
    cp_stepdet_t d;
    const size_t c0[] = {1000, 2000}, c1[] = {1500, 2500, 3500};
    reset(&d, 64);
    run(&d, c0, 2, 0, 1, 1, 0);
    cr_assert_eq(run(&d, c1, 3, 10, 10, 1, 0), 0);
    cr_assert_eq(cp_stepdet_period(&d), 3);
    cp_stepdet_fini(&d);
}

Test(step_detect, preamble_before_the_steps)
{
    cp_stepdet_t d;
    const size_t c[] = {1000, 2000};
    reset(&d, 64);
    call(&d, 9, 777, 0);
    cr_assert_eq(run(&d, c, 2, 0, 10, 2, 0), 0);
    cr_assert_eq(cp_stepdet_period(&d), 2);
    cp_stepdet_fini(&d);
}

/* No step at all: names stay bounded and the detector keeps working. */
Test(step_detect, aperiodic_sequence_stays_bounded)
{
    cp_stepdet_t d;
    uint64_t s = 12345, maxid = 0;
    reset(&d, 16);
    for (int i = 0; i < 2000; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        cp_sd_action_t a;
        uint64_t id = cp_stepdet_next(&d, cp_stepdet_sig(1000 + (s >> 60), 0), &a);
        events |= a.events;
        maxid = id > maxid ? id : maxid;
        cp_stepdet_evidence(&d, 0);
    }
    cr_assert(events & CP_SD_WINDOW);
    cr_assert_lt(maxid, 2 * 16);
    cp_stepdet_fini(&d);
}

/* Longer than the longest step the detector looks for: never found. */
Test(step_detect, step_longer_than_max_period)
{
    cp_stepdet_t d;
    size_t c[40];
    for (int i = 0; i < 40; i++)
        c[i] = 1000 + (size_t)i;
    reset(&d, 16);
    run(&d, c, 40, 0, 5, 0, 0);
    cr_assert_eq(cp_stepdet_period(&d), 0);
    cp_stepdet_fini(&d);
}

/* Tensors of one size in a row inside a longer step (identical layers
 * between others): the run of equal sizes never passes for the step. */
Test(step_detect, equal_sizes_in_a_row_inside_the_step)
{
    cp_stepdet_t d;
    const size_t c[] = {1000, 2000, 3000, 3000, 3000, 3000, 3000, 4000};
    reset(&d, 64);
    run(&d, c, 8, 0, 3, 0, 0);
    events = 0;
    cr_assert_eq(run(&d, c, 8, 0, 10, 0, 0), 0);
    cr_assert_eq(cp_stepdet_period(&d), 8);
    cr_assert_eq(events, 0); /* locked all along: no relearning */
    cp_stepdet_fini(&d);
}

/* After the step was found, a wholly different sequence (one tensor
 * followed by another, a rebuilt set of buckets): there is nothing to
 * align to, the new tensors keep their states from their second call. */
Test(step_detect, locked_step_replaced)
{
    cp_stepdet_t d;
    const size_t a[] = {1000}, b[] = {40000};
    reset(&d, 64);
    cr_assert_eq(run(&d, a, 1, 0, 4, 1, 0), 0);
    cr_assert_eq(call(&d, 1, 40000, 0), -1);
    cr_assert_eq(run(&d, b, 1, 1, 8, 0, 0), 0);
    cr_assert_eq(cp_stepdet_period(&d), 1);
    cp_stepdet_fini(&d);
    const size_t c0[] = {1000, 2000, 3000}, c1[] = {5000, 6000};
    reset(&d, 64);
    cr_assert_eq(run(&d, c0, 3, 0, 6, 1, 0), 0);
    run(&d, c1, 2, 10, 1, 0, 0);
    cr_assert_eq(run(&d, c1, 2, 10, 8, 0, 0), 0);
    cr_assert_eq(cp_stepdet_period(&d), 2);
    cp_stepdet_fini(&d);
}

/* The table side of a remap (plugin/tensor_table.c): renames may swap
 * names or take a dropped state's name; every other state is freed. */
#include "plugin/tensor_table.h"

static int freed[8];
static void count_free(void *t) { freed[(int)(intptr_t)t]++; }

Test(step_detect, table_remap_renames_and_frees)
{
    cp_tensor_table_t t;
    const uint64_t sig = cp_stepdet_sig(100, 0);
    memset(freed, 0, sizeof(freed));
    cr_assert_eq(cp_tensor_table_init(&t, 8, count_free), CP_OK);
    for (int i = 1; i <= 5; i++)
        cp_tensor_table_insert(&t, (uint64_t)i, 100, 0, (void *)(intptr_t)i, 10);
    /* 1 <-> 2 swap, 3 takes 4's name, 4 and 5 dropped. */
    const cp_sd_rename_t ren[] = {{sig, 1, 2}, {sig, 2, 1}, {sig, 3, 4},
                                  {sig, 9, 7} /* absent: ignored */};
    cr_assert_eq(cp_tensor_table_remap(&t, ren, 4), 3);
    cr_assert_eq(cp_tensor_table_find(&t, 2, 100, 0), (void *)(intptr_t)1);
    cr_assert_eq(cp_tensor_table_find(&t, 1, 100, 0), (void *)(intptr_t)2);
    cr_assert_eq(cp_tensor_table_find(&t, 4, 100, 0), (void *)(intptr_t)3);
    cr_assert_null(cp_tensor_table_find(&t, 3, 100, 0));
    cr_assert_null(cp_tensor_table_find(&t, 5, 100, 0));
    cr_assert(freed[4] == 1 && freed[5] == 1 && !freed[1] && !freed[2] && !freed[3]);
    cr_assert_eq(t.bytes, 30);
    cr_assert_eq(t.nused, 3);
    cp_tensor_table_insert(&t, 5, 100, 0, (void *)(intptr_t)5, 10);
    cr_assert_eq(cp_tensor_table_find(&t, 5, 100, 0), (void *)(intptr_t)5);
    cp_tensor_table_fini(&t);
    cr_assert(freed[1] == 1 && freed[2] == 1 && freed[3] == 1 && freed[5] == 2);
}

/* COMMPRESS_MAX_STATE_BYTES's table side: the fewest least recently used
 * states that bring the bytes within the bound, the kept one aside, in
 * use order (a find counts as a use); all of them, flagged, when even
 * that is not enough. */
Test(step_detect, table_fit_drops_least_recently_used)
{
    cp_tensor_table_t t;
    int over;
    memset(freed, 0, sizeof(freed));
    cr_assert_eq(cp_tensor_table_init(&t, 8, count_free), CP_OK);
    for (int i = 1; i <= 6; i++) /* states 1..6 of 10, 20, ..., 60 bytes */
        cp_tensor_table_insert(&t, (uint64_t)i, 100, 0, (void *)(intptr_t)i,
                               (size_t)i * 10);
    cp_tensor_table_find(&t, 1, 100, 0); /* use order now 2 3 4 5 6 1 */
    cr_assert_eq(t.bytes, 210);
    /* Within the bound: nothing. */
    cr_assert_eq(cp_tensor_table_fit(&t, 210, 210, NULL, &over), 0);
    cr_assert_eq(over, 0);
    /* 45 bytes too many: 2 (20) and 3 (30) go, 1 stays (used last). */
    cr_assert_eq(cp_tensor_table_fit(&t, 255, 210, NULL, &over), 2);
    cr_assert(freed[2] == 1 && freed[3] == 1 && !freed[1] && !freed[4], "wrong states dropped");
    cr_assert_eq(over, 0);
    cr_assert_eq(t.bytes, 160);
    /* Keep 4 (the oldest): 5 goes instead. */
    cr_assert_eq(cp_tensor_table_fit(&t, 170, 160, (void *)(intptr_t)4, &over), 1);
    cr_assert(freed[5] == 1 && !freed[4]);
    /* More than everything but the kept one frees: all of them, over. */
    cr_assert_eq(cp_tensor_table_fit(&t, 1000, 50, (void *)(intptr_t)6, &over), 2);
    cr_assert(over && freed[1] == 1 && freed[4] == 1 && !freed[6]);
    cr_assert_eq(t.nused, 1);
    cr_assert_eq(t.bytes, 60);
    /* evict_lru with nothing left but the kept one: nothing. */
    cr_assert_eq(cp_tensor_table_evict_lru(&t, 3, (void *)(intptr_t)6), 0);
    cp_tensor_table_fini(&t);
    cr_assert_eq(freed[6], 1);
}
