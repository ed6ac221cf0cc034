#include <stdlib.h>
#include <string.h>

#include "plugin/step_detect.h"

enum { SD_LEARN, SD_LOCKED, SD_RELEARN };
enum { PEND_NONE, PEND_UPGRADE };

cp_status_t cp_stepdet_init(cp_stepdet_t *d, size_t max_period)
{
    memset(d, 0, sizeof(*d));
    d->maxp = max_period < 1 ? 1 : max_period;
    d->W = 2 * d->maxp;
    cp_u64map_init(&d->occ);
    cp_u64map_init(&d->top);
    d->rsig = malloc(d->W * sizeof(uint64_t));
    d->rid = malloc(d->W * sizeof(uint64_t));
    d->tsig = malloc(d->maxp * sizeof(uint64_t));
    d->tid = malloc(d->maxp * sizeof(uint64_t));
    d->osig = malloc(d->maxp * sizeof(uint64_t));
    d->oid = malloc(d->maxp * sizeof(uint64_t));
    d->ren = malloc(d->maxp * sizeof(*d->ren));
    d->order = malloc(d->maxp * sizeof(size_t));
    if (!d->rsig || !d->rid || !d->tsig || !d->tid || !d->osig || !d->oid ||
        !d->ren || !d->order || cp_u64map_reserve(&d->occ, d->W) != CP_OK ||
        cp_u64map_reserve(&d->top, d->maxp) != CP_OK) {
        cp_stepdet_fini(d);
        return CP_ERR_NOMEM;
    }
    return CP_OK;
}

void cp_stepdet_fini(cp_stepdet_t *d)
{
    free(d->rsig), free(d->rid), free(d->tsig), free(d->tid);
    free(d->osig), free(d->oid), free(d->ren), free(d->order);
    cp_u64map_fini(&d->occ);
    cp_u64map_fini(&d->top);
    memset(d, 0, sizeof(*d));
}

size_t cp_stepdet_bytes(const cp_stepdet_t *d)
{
    return 2 * d->W * sizeof(uint64_t) +
           d->maxp * (4 * sizeof(uint64_t) + sizeof(*d->ren) + sizeof(size_t)) +
           (d->occ.cap + d->top.cap) * 2 * sizeof(uint64_t);
}

size_t cp_stepdet_period(const cp_stepdet_t *d)
{
    return d->mode == SD_LOCKED && !d->pending ? d->P : 0;
}

/* ---- the period tracker ---- */

/* Entries a and b are equal: by signature while learning, by (signature,
 * id) while relearning (the ids then name tensors, so a pattern of equal
 * sizes inside a step is not mistaken for the step). */
static int same(const cp_stepdet_t *d, uint64_t a, uint64_t b)
{
    a %= d->W, b %= d->W;
    return d->rsig[a] == d->rsig[b] &&
           (d->mode != SD_RELEARN || d->rid[a] == d->rid[b]);
}

/* How many of the last entries equal the ones p before them (at most cap,
 * within the history since base and the ring). */
static size_t run_of(const cp_stepdet_t *d, uint64_t last, size_t p,
                     size_t cap)
{
    size_t r = 0;
    while (r < cap && last - r >= d->base + p && r + p < d->W &&
           same(d, last - r, last - r - p))
        r++;
    return r;
}

/* After call n-1 was stored. The candidate period is the p whose run of
 * matches back from the newest entry is longest (on a tie the longer p: a
 * step that ends and restarts with equal sizes, "... A | A ...", is not a
 * step of one call). It is kept while it matches. It is confirmed once its
 * run covers two periods, half of the history since base, and twice the
 * number of different signatures learning has seen: equal sizes in a row
 * inside a step, or a stretch that repeats for a while, must not pass for
 * the step. */
static int track(cp_stepdet_t *d)
{
    const uint64_t last = d->n - 1, len = d->n - d->base;
    if (d->cand && len > d->cand && same(d, last, last - d->cand)) {
        d->run++;
    } else {
        size_t budget = 8 * d->maxp; /* bounds the work with no step */
        d->cand = d->run = 0;
        for (size_t p = 1; p < len && p <= d->maxp && budget > 0; p++) {
            budget--;
            if (!same(d, last, last - p))
                continue;
            size_t r = run_of(d, last, p, budget);
            budget -= r < budget ? r : budget;
            if (r >= d->run) {
                d->cand = p;
                d->run = r;
            }
        }
    }
    const size_t kinds = d->mode == SD_LEARN ? d->occ.used : 0;
    return d->cand && d->run >= d->cand && 2 * (uint64_t)d->run >= len &&
           d->run >= 2 * kinds;
}

static void track_reset(cp_stepdet_t *d, uint64_t base)
{
    d->base = base;
    d->cand = d->run = 0;
}

/* ---- transitions ---- */

static void learn_restart(cp_stepdet_t *d)
{
    d->mode = SD_LEARN;
    cp_u64map_clear(&d->occ);
    track_reset(d, d->n);
}

/* First unused id per signature of the template in (sig, id). */
static void top_of(cp_stepdet_t *d, const uint64_t *sig, const uint64_t *id,
                   size_t p)
{
    cp_u64map_clear(&d->top);
    for (size_t i = 0; i < p; i++)
        if (cp_u64map_get(&d->top, sig[i], 0) <= id[i])
            cp_u64map_put(&d->top, sig[i], id[i] + 1);
}

/* Learning found period p: the last p calls (this one included) are the
 * step. Ids become occurrences within it; the state each of those calls
 * used carries over. */
static void apply_lock(cp_stepdet_t *d, cp_sd_action_t *act)
{
    const size_t p = d->cand;
    cp_u64map_clear(&d->top);
    for (size_t k = 0; k < p; k++) {
        uint64_t c = (d->n - p + k) % d->W, sig = d->rsig[c];
        uint64_t id = cp_u64map_get(&d->top, sig, 0);
        cp_u64map_put(&d->top, sig, id + 1);
        d->tsig[k] = sig;
        d->tid[k] = id;
        d->ren[k] = (cp_sd_rename_t){.sig = sig, .old_id = d->rid[c], .new_id = id};
    }
    d->P = p;
    act->events |= CP_SD_LOCKED;
    act->remap = 1;
    act->renames = d->ren;
    act->nrenames = p;
}

static __thread const cp_stepdet_t *cmp_d; /* qsort has no context */
static int cmp_entry(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    const uint64_t *s = cmp_d->tsig, *i = cmp_d->tid;
    if (s[x] != s[y])
        return s[x] < s[y] ? -1 : 1;
    if (i[x] != i[y])
        return i[x] < i[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Relearning found period p: the last p (sig, id) are the step, every
 * name kept; a name used twice in it (an alignment that skipped ahead)
 * stays with its first use, later uses get new ids. */
static void apply_relock(cp_stepdet_t *d, cp_sd_action_t *act)
{
    const size_t p = d->cand;
    size_t nren = 0;
    for (size_t k = 0; k < p; k++) {
        uint64_t c = (d->n - p + k) % d->W;
        d->tsig[k] = d->rsig[c];
        d->tid[k] = d->rid[c];
        d->order[k] = k;
    }
    top_of(d, d->tsig, d->tid, p);
    cmp_d = d;
    qsort(d->order, p, sizeof(size_t), cmp_entry);
    for (size_t k = 0; k < p; k++) {
        size_t e = d->order[k];
        if (k > 0 && d->tsig[d->order[k - 1]] == d->tsig[e] &&
            d->tid[d->order[k - 1]] == d->tid[e]) {
            uint64_t id = cp_u64map_get(&d->top, d->tsig[e], 0);
            cp_u64map_put(&d->top, d->tsig[e], id + 1);
            d->tid[e] = id;
            continue;
        }
        d->ren[nren++] = (cp_sd_rename_t){.sig = d->tsig[e],
                                          .old_id = d->tid[e],
                                          .new_id = d->tid[e]};
    }
    d->P = p;
    act->events |= CP_SD_RELOCKED;
    act->remap = 1;
    act->renames = d->ren;
    act->nrenames = nren;
}

/* Evidence showed the step is D = m P: the template, from the current
 * position, m times; the first copy keeps its names, the others are new. */
static void apply_upgrade(cp_stepdet_t *d, cp_sd_action_t *act)
{
    const size_t D = d->pend_p, P = d->P;
    top_of(d, d->tsig, d->tid, P);
    memcpy(d->osig, d->tsig, P * sizeof(uint64_t));
    memcpy(d->oid, d->tid, P * sizeof(uint64_t));
    for (size_t k = 0; k < D; k++) {
        size_t e = (d->pos + k) % P;
        d->tsig[k] = d->osig[e];
        if (k < P) {
            d->tid[k] = d->oid[e];
        } else {
            uint64_t id = cp_u64map_get(&d->top, d->osig[e], 0);
            cp_u64map_put(&d->top, d->osig[e], id + 1);
            d->tid[k] = id;
        }
    }
    d->P = D;
    act->events |= CP_SD_UPGRADED;
}

/* Every transition ends locked, the next call at the template's start. */
static void locked(cp_stepdet_t *d, cp_sd_action_t *act, size_t old_period)
{
    d->mode = SD_LOCKED;
    d->pos = 0;
    d->ev_val = 0;
    d->ev_run = 0;
    d->pending = PEND_NONE;
    act->old_period = old_period;
}

/* A call that does not match the step: keep the old template to align to. */
static void start_relearn(cp_stepdet_t *d, cp_sd_action_t *act)
{
    memcpy(d->osig, d->tsig, d->P * sizeof(uint64_t));
    memcpy(d->oid, d->tid, d->P * sizeof(uint64_t));
    d->oP = d->P;
    d->j = d->pos;
    top_of(d, d->osig, d->oid, d->oP);
    cp_u64map_clear(&d->occ);
    d->mode = SD_RELEARN;
    d->streak = 0;
    d->has_first_new = 0;
    /* The tracker keeps a few old steps (named by the template, as the
     * aligned calls are): a part of the new step that repeats for a while
     * must outlast them before it passes for the step. */
    uint64_t keep = 4 * (uint64_t)d->P < d->W / 2 ? 4 * (uint64_t)d->P : d->W / 2;
    track_reset(d, d->n - d->base > keep ? d->n - keep : d->base);
    act->events |= CP_SD_CHANGED;
    act->old_period = d->P;
}

static void wrap(cp_stepdet_t *d)
{
    cp_u64map_clear(&d->occ);
    d->has_first_new = 0;
}

/* The name of a call while relearning: the next old entry of its
 * signature, or a new id. New ids count from the last wrap, so a tensor
 * added to every step gets the same id each time. A wrap is the old step
 * ending, or (when the new tensors are all there is, a replaced sequence)
 * the first new signature coming back. */
static uint64_t align(cp_stepdet_t *d, uint64_t sig)
{
    for (size_t k = 0; k < d->oP; k++) {
        size_t i = (d->j + k) % d->oP;
        if (d->osig[i] != sig)
            continue;
        d->streak = 0;
        if (i < d->j) /* wrapped: a new step began */
            wrap(d);
        d->j = i + 1;
        if (d->j == d->oP) {
            d->j = 0;
            wrap(d);
        }
        return d->oid[i];
    }
    if (d->has_first_new && d->first_new == sig)
        wrap(d);
    if (!d->has_first_new) {
        d->first_new = sig;
        d->has_first_new = 1;
    }
    uint64_t k = cp_u64map_get(&d->occ, sig, 0);
    cp_u64map_put(&d->occ, sig, k + 1);
    d->streak++;
    return cp_u64map_get(&d->top, sig, 0) + k;
}

/* More new tensors in a row than the old step had calls: the old step is
 * gone (a rebuilt sequence), there is nothing to align to. Learn from the
 * start of that run, numbering on from every id in use, so no new tensor
 * takes an old one's state. */
static void give_up_alignment(cp_stepdet_t *d)
{
    const uint64_t first = d->n + 1 - d->streak;
    cp_u64map_clear(&d->occ);
    for (size_t i = 0; i < d->oP; i++)
        if (cp_u64map_get(&d->occ, d->osig[i], 0) <= d->oid[i])
            cp_u64map_put(&d->occ, d->osig[i], d->oid[i] + 1);
    for (uint64_t c = first; c <= d->n; c++) {
        uint64_t sig = d->rsig[c % d->W], id = d->rid[c % d->W];
        if (cp_u64map_get(&d->occ, sig, 0) <= id)
            cp_u64map_put(&d->occ, sig, id + 1);
    }
    d->mode = SD_LEARN;
    d->streak = 0;
    track_reset(d, first);
}

/* Learning: the id of the call one candidate period back, while a
 * candidate holds (so a tensor keeps its state from its first step on);
 * else the next occurrence of the signature. */
static uint64_t learn_id(cp_stepdet_t *d, uint64_t sig)
{
    uint64_t occ = cp_u64map_get(&d->occ, sig, 0);
    cp_u64map_put(&d->occ, sig, occ + 1);
    return d->cand ? d->rid[(d->n - 1 - d->cand) % d->W] : occ;
}

uint64_t cp_stepdet_next(cp_stepdet_t *d, uint64_t sig, cp_sd_action_t *act)
{
    const size_t was = cp_stepdet_period(d);
    uint64_t id;
    memset(act, 0, sizeof(*act));
    if (d->pending) {
        apply_upgrade(d, act);
        locked(d, act, was);
    }
    if (d->mode == SD_LOCKED) {
        if (d->tsig[d->pos] == sig) {
            id = d->tid[d->pos];
            d->pos = (d->pos + 1) % d->P;
            d->rsig[d->n % d->W] = sig;
            d->rid[d->n % d->W] = id;
            d->n++;
            act->period = d->P;
            return id;
        }
        start_relearn(d, act);
    }
    /* Bounded names: a sequence with no step starts learning over. */
    if ((d->mode == SD_LEARN && d->n - d->base >= d->W) ||
        d->occ.used >= d->W) {
        learn_restart(d);
        act->events |= CP_SD_WINDOW;
    } else if (d->mode == SD_RELEARN && d->n - d->base >= d->W / 2) {
        track_reset(d, d->n - d->W / 4); /* relearning: slide the window */
    }
    const uint64_t at = d->n % d->W;
    d->rsig[at] = sig;
    if (d->mode == SD_RELEARN) {
        d->rid[at] = align(d, sig);
        if (d->streak > d->oP)
            give_up_alignment(d);
    }
    d->n++;
    const int confirmed = track(d);
    if (d->mode == SD_LEARN)
        d->rid[at] = learn_id(d, sig);
    if (confirmed) {
        const size_t old = d->mode == SD_RELEARN ? d->oP : 0;
        if (d->mode == SD_LEARN)
            apply_lock(d, act);
        else
            apply_relock(d, act);
        locked(d, act, old);
        act->period = d->P;
        return d->tid[d->P - 1];
    }
    act->period = 0;
    return d->rid[at];
}

void cp_stepdet_evidence(cp_stepdet_t *d, uint64_t dist)
{
    const size_t P = cp_stepdet_period(d);
    if (P == 0 || dist < 2 * (uint64_t)P || dist % P != 0 || dist > d->maxp) {
        d->ev_run = 0;
        return;
    }
    if (dist != d->ev_val) {
        d->ev_val = dist;
        d->ev_run = 0;
    }
    if (++d->ev_run >= P) {
        d->pending = PEND_UPGRADE;
        d->pend_p = (size_t)dist;
    }
}
