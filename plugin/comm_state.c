#include <stdlib.h>
#include <string.h>

#include "collectives/allreduce_plain.h"
#include "plugin/comm_state.h"
#include "plugin/stats.h"
#include "util/fault.h"
#include "util/hd.h"
#include "util/log.h"

static void tensor_free(void *t) { cp_tensor_destroy(t); }

cp_status_t cp_comm_state_create(MPI_Comm comm, const cp_coll_config_t *cfg,
                                 size_t max_entries, int detect,
                                 cp_comm_state_t **s_p)
{
    cp_comm_state_t *s = calloc(1, sizeof(*s));
    cp_status_t st;

    if (s == NULL)
        return CP_ERR_NOMEM;
    s->comm = comm;
    s->p2p = MPI_COMM_NULL;
    s->node = s->lead = MPI_COMM_NULL;
    cp_workspace_init(&s->ws);
    cp_adapt_init(&s->adapt, cfg);
    CP_CHECK_GOTO(cp_tensor_table_init(&s->tensors, max_entries, tensor_free),
                  st, err);
    if (detect) {
        /* The longest step the detector finds: as many calls as tensors. */
        CP_CHECK_GOTO(cp_stepdet_init(&s->det, max_entries), st, err_table);
        CP_CHECK_GOTO(cp_addrseen_init(&s->seen, s->det.W), st, err_det);
        s->detect = 1;
    }
    if (comm != MPI_COMM_NULL) /* else the caller sets s->tp */
        CP_CHECK_GOTO(cp_transport_mpi_init(&s->tp, &s->comm), st, err_det);
    *s_p = s;
    return CP_OK;
err_det:
    cp_addrseen_fini(&s->seen);
    cp_stepdet_fini(&s->det);
err_table:
    cp_tensor_table_fini(&s->tensors);
err:
    free(s);
    return st;
}

void cp_comm_state_destroy(cp_comm_state_t *s)
{
    if (s == NULL)
        return;
    if (s->charge)
        cp_stats_state_charge(CP_STATS_PART_MPI, &s->charged, 0);
    cp_tensor_table_fini(&s->tensors);
    cp_workspace_free(&s->ws);
    cp_adapt_fini(&s->adapt);
    cp_stepdet_fini(&s->det);
    cp_addrseen_fini(&s->seen);
    if (s->p2p != MPI_COMM_NULL)
        PMPI_Comm_free(&s->p2p);
    if (s->lead != MPI_COMM_NULL)
        PMPI_Comm_free(&s->lead);
    if (s->node != MPI_COMM_NULL)
        PMPI_Comm_free(&s->node);
    free(s);
}

size_t cp_comm_state_bytes(const cp_comm_state_t *s)
{
    return s->tensors.bytes + cp_workspace_bytes(&s->ws) +
           (s->detect ? cp_stepdet_bytes(&s->det) + cp_addrseen_bytes(&s->seen)
                      : 0);
}

void cp_comm_state_account(cp_comm_state_t *s)
{
    size_t b = cp_comm_state_bytes(s);
    if (s->charge && b != s->charged)
        cp_stats_state_charge(CP_STATS_PART_MPI, &s->charged, b);
}

/* Rate-limited warnings of one communicator (coll/han's habit). */
static int may_warn(cp_comm_state_t *s)
{
    return s->warned++ < 5;
}

/* The detector's events, on the communicator's rank 0 (every rank sees
 * the same), and its remap applied to the table. */
static void apply_action(cp_comm_state_t *s, const cp_sd_action_t *act,
                         uint64_t call)
{
    size_t before = s->tensors.nused, kept = before;
    const int say = s->tp.rank == 0;
    if (act->remap)
        kept = cp_tensor_table_remap(&s->tensors, act->renames, act->nrenames);
    if (!say)
        return;
    if (act->events & CP_SD_LOCKED)
        cp_info("step found: %zu compressed calls per step on this "
                "communicator", act->period);
    if (act->events & CP_SD_CHANGED)
        cp_info("the calls changed at call %llu (step was %zu calls): "
                "relearning the step, tensors that did not change keep "
                "their state", (unsigned long long)call, act->old_period);
    if (act->events & CP_SD_RELOCKED)
        cp_info("step found again: %zu calls (was %zu); %zu tensor states "
                "kept, %zu dropped", act->period, act->old_period, kept,
                before - kept);
    if (act->events & CP_SD_UPGRADED)
        cp_info("buffers repeat every %zu calls: the step is %zu calls (was "
                "%zu)", act->period, act->period, act->old_period);
    if ((act->events & CP_SD_WINDOW) && may_warn(s))
        cp_info("no repeating step in the last %zu calls: error feedback "
                "follows the call order within such windows; for stable "
                "buffers set COMMPRESS_STATE_KEY=address, or "
                "COMMPRESS_STATE_KEY=order with COMMPRESS_STEP_CALLS",
                s->det.W);
}

static uint64_t mix(uint64_t a, uint64_t b)
{
    return ((uint64_t)cp_hash32(a, b) << 32) | cp_hash32(a + 1, b);
}

/* The call's tensor name (id) and its rank-independent part (ident, in the
 * slot check word); evidence for the detector. */
static uint64_t name_call(cp_comm_state_t *s, const cp_name_t *name,
                          uintptr_t addr, size_t count, uint64_t call,
                          uint64_t *ident, cp_allreduce_args_t *a)
{
    const uint64_t sig = cp_stepdet_sig(count, 0);
    cp_sd_action_t act;
    uint64_t id;
    switch (name->naming) {
    case CP_NAME_ADDRESS:
        *ident = sig; /* addresses differ across ranks; the round agrees */
        return addr;
    case CP_NAME_ORDER:
        id = call % name->step_calls;
        s->period = name->step_calls;
        break;
    case CP_NAME_EXPLICIT:
        id = name->id;
        /* A step: one call per tensor the caller named so far (the ids
         * are the same on every rank, so is the count), once a first step
         * has ended (an id comes again), so that steps count from a
         * step's first call. */
        if (!s->stepped && cp_tensor_table_contains(&s->tensors, id, count, 0))
            s->stepped = 1;
        s->period = s->stepped ? s->tensors.nused : 0;
        break;
    default:
        id = cp_stepdet_next(&s->det, sig, &act);
        apply_action(s, &act, call);
        s->period = act.period;
        a->evidence = cp_addrseen_note(&s->seen, addr, sig, call, s->det.maxp);
        a->ev_period = act.period;
        break;
    }
    *ident = mix(sig, id);
    return id;
}

/* The floats of a new tensor's state; with COMMPRESS_ADAPT, sized for
 * every candidate it may run with (a plan may move top-k from the sparse
 * allgather, which keeps no server state, to the two-phase algorithm). */
static void tensor_floats(const cp_comm_state_t *s, const cp_coll_config_t *cfg,
                          size_t count, size_t *worker, size_t *server)
{
    size_t w, sv;
    cp_tensor_floats(cfg, count, s->tp.size, s->tp.rank, worker, server);
    for (size_t v = 0; v < s->adapt.ncand; v++) {
        cp_tensor_floats(&s->adapt.cands[v].cfg, count, s->tp.size, s->tp.rank,
                         &w, &sv);
        *worker = w > *worker ? w : *worker;
        *server = sv > *server ? sv : *server;
    }
}

/* COMMPRESS_MAX_STATE_BYTES, before a new tensor's state is made: how
 * many of the least recently used states this rank must drop so that the
 * process's state, the new tensor's and the workspace's growth stay within
 * the bound. They are dropped now, before allocating; the ranks then agree
 * on the largest count (cp_allreduce_ready) and each drops up to it
 * (evict_agreed): tables that agree lose the same states. */
static size_t evict_local(cp_comm_state_t *s, const cp_coll_config_t *cfg,
                          size_t count, const size_t need[CP_WS_SLOTS])
{
    size_t w, sv;
    if (s->limit == 0)
        return 0;
    tensor_floats(s, cfg, count, &w, &sv);
    const size_t total = cp_stats_state_with(CP_STATS_PART_MPI, s->charged,
                                             cp_comm_state_bytes(s));
    const size_t want = total + (w + sv) * sizeof(float) +
                        cp_workspace_growth(&s->ws, need);
    int over;
    size_t n = cp_tensor_table_fit(&s->tensors, want, s->limit, NULL, &over);
    cp_stats_add_dropped(n);
    if (over)
        cp_warn_rl("COMMPRESS_MAX_STATE_BYTES=%zu is below what a tensor of "
                "%zu floats needs with this process's other states and "
                "workspaces: its state is made anyway (raise the bound)",
                s->limit, count);
    return n;
}

static void evict_agreed(cp_comm_state_t *s, size_t local, uint64_t agreed,
                         const void *keep)
{
    if (agreed <= local)
        return;
    size_t before = s->tensors.nused;
    cp_tensor_table_evict_lru(&s->tensors, (size_t)(agreed - local), keep);
    cp_stats_add_dropped(before - s->tensors.nused);
}

/* Nobody runs the call compressed: every rank runs the exact allreduce.
 * The rank that failed says so (the highest one, when several did). */
static cp_status_t all_exact(cp_comm_state_t *s, cp_allreduce_args_t *a,
                             int fail_rank, cp_coll_result_t *res)
{
    memset(res, 0, sizeof(*res));
    res->bytes_dense = cp_ring_bytes(s->tp.size, 4.0 * (double)a->count);
    if (fail_rank == s->tp.rank)
        cp_warn_rl("out of memory for the compression state or workspace of "
                "%zu floats: every rank sends this call exact", a->count);
    return cp_allreduce_exact(a, res, CP_FALLBACK_FAILED);
}

/* One call of a->tensor (a whole call, or a fused buffer's segment) once
 * its state and workspace are ready on every rank. */
static cp_status_t run_tensor(cp_comm_state_t *s, const cp_coll_config_t *cfg,
                              const cp_allreduce_args_t *a,
                              cp_coll_result_t *res)
{
    if (a->plain)
        return cp_allreduce_plain(a, res);
    if (cp_fault(CP_FAULT_DIVERGE))
        a->tensor->hist ^= 1; /* tests: the slot check words must catch it */
    cp_adapt_collect(&s->adapt, a->tensor, s->tp.rank);
    CP_CHECK(cp_allreduce(a, res));
    if (s->adapt.ncand) { /* what the configured setting would have sent */
        const cp_params_t p = cp_step_params(cfg, a->tensor->steps);
        res->bytes_uniform = cp_allreduce_wire_bytes(cfg, &p, a->count, s->tp.size);
    }
    if (res->fallback == CP_FALLBACK_DISAGREE && s->tp.rank == 0 && may_warn(s))
        cp_warn("ranks disagreed on the state of a tensor of %zu floats: "
                "sent exact, its state reset on every rank", a->count);
    return CP_OK;
}

/* Segment k of a fused call a. */
static cp_allreduce_args_t segment_args(const cp_comm_state_t *s,
                                        const cp_coll_config_t *cfg,
                                        const cp_allreduce_args_t *a,
                                        const cp_tensor_t *t, size_t k)
{
    cp_allreduce_args_t b = *a;
    const size_t off = t->seg_off[k];
    b.send = a->send ? a->send + off : NULL;
    b.recv = a->recv + off;
    b.count = t->seg_off[k + 1] - off;
    b.tensor = t->seg[k];
    b.ident = mix(a->ident, k + 1); /* the segment's name in the check word */
    b.cfg = cp_adapt_config(&s->adapt, cfg, b.tensor);
    return b;
}

/* A fused buffer's call: its segments one after the other, each a tensor
 * of its own with its own exchange (so each decodes alone), the same on
 * every rank. The result adds theirs up: each segment's wire bytes, and
 * a fallback only when every segment fell back. */
static cp_status_t run_fused(cp_comm_state_t *s, const cp_coll_config_t *cfg,
                             const cp_allreduce_args_t *a,
                             cp_coll_result_t *res)
{
    const cp_tensor_t *t = a->tensor;
    size_t need[CP_WS_SLOTS], sent = 0, wire = 0, uniform = 0, nfall = 0, clean = 0;
    memset(res, 0, sizeof(*res));
    for (size_t k = 0; a->plain && k < t->nseg; k++)
        clean += t->seg[k]->clean;
    if (a->plain && clean == t->nseg) /* every state zero: one plain sum */
        return cp_allreduce_plain_sum(a, res);
    for (size_t k = 0; k < t->nseg; k++) {
        cp_allreduce_args_t b = segment_args(s, cfg, a, t, k);
        cp_coll_result_t r;
        int ok, fail_rank;
        cp_allreduce_plan(&b, need);
        CP_CHECK(cp_allreduce_ready(&b, need, 0, 0, NULL, 0, &ok, &fail_rank));
        if (ok)
            CP_CHECK(run_tensor(s, cfg, &b, &r));
        else
            CP_CHECK(all_exact(s, &b, fail_rank, &r));
        sent += r.bytes_sent;
        wire += cp_coll_wire_bytes(&r);
        uniform += r.bytes_uniform && !r.fallback ? r.bytes_uniform
                                                  : cp_coll_wire_bytes(&r);
        res->bytes_dense += r.bytes_dense;
        res->compress_seconds += r.compress_seconds;
        res->nonfinite |= r.nonfinite;
        nfall += r.fallback != CP_FALLBACK_NONE;
        if (k == 0) {
            res->algo = r.algo, res->fallback = r.fallback;
            res->evidence = r.evidence;
        } else if (r.algo != res->algo) {
            res->algo = CP_ALGO_AUTO; /* segments ran different algorithms */
        }
    }
    if (nfall < t->nseg)
        res->fallback = CP_FALLBACK_NONE;
    res->bytes_sent = res->fallback ? sent : wire;
    res->bytes_uniform = s->adapt.ncand ? uniform : 0;
    return CP_OK;
}

/* The second round of a new tensor's first call, reached by every rank
 * when some rank found a layout for it: the first round's max of each
 * rank's layout hash and of its complement say whether they all found the
 * same one. If so, every rank makes the fused tensor and its segments;
 * if not, the tensor is one layer everywhere, and the ranks that found a
 * layout (and so made nothing yet) make the whole tensor. Then the ranks
 * agree on those allocations. */
static cp_status_t agree_layout(cp_comm_state_t *s, const cp_coll_config_t *cfg,
                                cp_allreduce_args_t *a, const cp_layout_t *lay,
                                uint64_t hmax, uint64_t nhmax,
                                cp_tensor_t **created, int *ok, int *fail_rank)
{
    size_t need[CP_WS_SLOTS] = {0}, seg_need[CP_WS_SLOTS], w, sv;
    int fail = 0;
    if (hmax == ~nhmax) { /* every rank found this layout */
        cp_tensor_t *t = NULL;
        fail = lay == NULL || cp_fault(CP_FAULT_ALLOC) ||
               cp_tensor_new_fused(a->count, lay->nlayers, lay->off, lay->hash,
                                   &t) != CP_OK;
        for (size_t k = 0; !fail && k < t->nseg; k++) {
            const size_t len = t->seg_off[k + 1] - t->seg_off[k];
            tensor_floats(s, cfg, len, &w, &sv);
            fail = cp_tensor_new(len, w, sv, &t->seg[k]) != CP_OK;
            cp_allreduce_args_t b = segment_args(s, cfg, a, t, k);
            b.tensor = NULL; /* a new segment's plan */
            cp_allreduce_plan(&b, seg_need);
            for (int i = 0; i < CP_WS_SLOTS; i++)
                need[i] = seg_need[i] > need[i] ? seg_need[i] : need[i];
        }
        if (fail) {
            cp_tensor_destroy(t);
            t = NULL;
        }
        *created = t;
    } else {
        if (*created == NULL) {
            tensor_floats(s, cfg, a->count, &w, &sv);
            fail = cp_fault(CP_FAULT_ALLOC) ||
                   cp_tensor_new(a->count, w, sv, created) != CP_OK;
        }
        a->tensor = NULL;
        cp_allreduce_plan(a, need);
        if (s->tp.rank == 0 && may_warn(s))
            cp_warn("the ranks registered different layouts (or some none) "
                    "for a buffer of %zu floats: it is one layer on every "
                    "rank", a->count);
    }
    a->tensor = *created;
    return cp_allreduce_ready(a, need, 1, fail, NULL, 0, ok, fail_rank);
}

/* The step detector learns of the agreed evidence once per call. */
static cp_status_t called(cp_comm_state_t *s, const cp_name_t *name,
                          cp_status_t st, const cp_coll_result_t *res)
{
    /* A plain call carries no evidence (no slot headers): it leaves the
     * detector's run of evidence as it was, on every rank alike. */
    if (st == CP_OK && name->naming == CP_NAME_AUTO && res->algo != CP_ALGO_PLAIN)
        cp_stepdet_evidence(&s->det, res->evidence);
    return st;
}

static cp_status_t state_allreduce(cp_comm_state_t *s,
                                   const cp_coll_config_t *cfg,
                                   const cp_name_t *name, const float *send,
                                   float *recv, size_t count, int plain,
                                   int *is_new, cp_coll_result_t *res)
{
    const uint64_t call = s->calls++;
    const int address = name->naming == CP_NAME_ADDRESS;
    cp_allreduce_args_t a = {.send = send, .recv = recv, .count = count,
                             .cfg = cfg, .ws = &s->ws, .tp = &s->tp,
                             .call = call, .plain = plain};
    cp_tensor_t *created = NULL;
    cp_layout_t *lay = NULL;
    size_t need[CP_WS_SLOTS], fresh[CP_WS_SLOTS], evicted = 0;
    uint64_t words[7] = {0}, steps = 0, hist = 0;
    int local_fail = 0, ok, fail_rank;

    uint64_t id = name_call(s, name, (uintptr_t)(send ? send : recv), count,
                            call, &a.ident, &a);
    /* A plan due at this call applies on every rank before it runs. */
    CP_CHECK(cp_adapt_tick(&s->adapt, cfg, &s->tensors, &s->tp, s->period));
    a.tensor = cp_tensor_table_find(&s->tensors, id, count, 0);
    if (a.tensor && a.tensor->nseg)
        return called(s, name, run_fused(s, cfg, &a, res), res);
    a.cfg = cp_adapt_config(&s->adapt, cfg, a.tensor);
    const int missing = a.tensor == NULL;
    /* A new tensor's layout is agreed at its first call, which every rank
     * makes together (tables agree): two more words of the same round. */
    const int layouts = missing && !address && name->layouts;
    const size_t nw = address ? 4 : 0; /* words[nw]: states to drop */
    /* Address keying: whether some rank made a new state here rides in
     * words[nw + 1] (tables need not agree, but COMMPRESS_POLICY's timing
     * must skip the same calls on every rank). */
    const size_t nwords = nw + (layouts ? 3 : address ? 2 : 1);
    if (missing) {
        if (layouts && cp_layout_registry_copy(name->layouts, name->keys,
                                               name->nkeys, count, &lay) != CP_OK)
            local_fail = 1;
        cp_allreduce_plan(&a, need); /* a fresh tensor's */
        words[nw] = evicted = evict_local(s, cfg, count, need);
        /* A rank that found a layout makes its segments in the second
         * round, once it knows that every rank found the same. */
        size_t w, sv;
        tensor_floats(s, cfg, count, &w, &sv);
        if (lay == NULL && (cp_fault(CP_FAULT_ALLOC) ||
                            cp_tensor_new(count, w, sv, &created) != CP_OK))
            local_fail = 1;
        a.tensor = created;
        if (layouts)
            words[nw + 1] = lay ? lay->hash : 0, words[nw + 2] = ~words[nw + 1];
        else if (address)
            words[nw + 1] = 1;
    }
    cp_allreduce_plan(&a, need); /* the same on every rank: a fresh plan */
    if (address && a.tensor) {
        /* The round may reset the state to step 0: room for both plans. */
        cp_tensor_t *t = a.tensor;
        a.tensor = NULL;
        cp_allreduce_plan(&a, fresh);
        a.tensor = t;
        for (int i = 0; i < CP_WS_SLOTS; i++)
            need[i] = fresh[i] > need[i] ? fresh[i] : need[i];
        steps = t->steps, hist = t->hist;
        words[0] = steps, words[1] = ~steps, words[2] = hist, words[3] = ~hist;
    }
    cp_status_t st = cp_allreduce_ready(&a, need, address || missing, local_fail,
                                        words, nwords, &ok, &fail_rank);
    if (st == CP_OK)
        evict_agreed(s, evicted, words[nw], a.tensor);
    if (st == CP_OK && ok && layouts && words[nw + 1] != 0)
        st = agree_layout(s, cfg, &a, lay, words[nw + 1], words[nw + 2],
                          &created, &ok, &fail_rank);
    free(lay);
    if (st != CP_OK || !ok) {
        cp_tensor_destroy(created);
        if (st != CP_OK)
            return st;
        if (s->detect)
            cp_stepdet_evidence(&s->det, 0);
        a.tensor = NULL;
        return all_exact(s, &a, fail_rank, res);
    }
    if (address && (words[0] != steps || words[1] != ~steps ||
                    words[2] != hist || words[3] != ~hist)) {
        /* Keyed by address, this rank's buffer holds another tensor than
         * a peer's (fresh buffers, a reused scratch): start over together. */
        cp_tensor_reset(a.tensor);
        if (s->tp.rank == 0 && may_warn(s))
            cp_info("COMMPRESS_STATE_KEY=address: ranks hold different "
                    "states for a tensor of %zu floats (buffers that move): "
                    "reset on every rank", count);
    }
    if (created)
        cp_tensor_table_insert(&s->tensors, id, count, 0, created,
                               cp_tensor_bytes(created));
    /* Tables agree except under address keying, whose round said it. */
    *is_new = address ? words[nw + 1] != 0 : created != NULL;
    if (a.tensor->nseg)
        return called(s, name, run_fused(s, cfg, &a, res), res);
    return called(s, name, run_tensor(s, cfg, &a, res), res);
}

cp_status_t cp_comm_state_allreduce(cp_comm_state_t *s,
                                    const cp_coll_config_t *cfg,
                                    const cp_name_t *name, const float *send,
                                    float *recv, size_t count,
                                    cp_coll_result_t *res)
{
    if (!s->policy.on) /* the API's contexts, COMMPRESS_POLICY=always */
        return state_allreduce(s, cfg, name, send, recv, count, 0, &(int){0}, res);
    int plain, fresh = 0;
    const double t0 = cp_now();
    CP_CHECK(cp_policy_begin(&s->policy, count, t0, &s->tp, &plain));
    CP_CHECK(state_allreduce(s, cfg, name, send, recv, count, plain, &fresh, res));
    cp_policy_end(&s->policy, count, plain, t0, cp_now() - t0, res->bytes_sent, fresh);
    return CP_OK;
}
