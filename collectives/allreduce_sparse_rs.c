/* The scalable sparse allreduce (sparse_rs), after Ok-Topk (Li and
 * Hoefler, PPoPP 2022), for the sparse codecs (topk, dgc, randk):
 *
 *  1. each rank selects its local entries as the sparse allgather does
 *     (the codec's encode of its error-corrected vector v);
 *  2. a sparse reduce-scatter: the index space is cut into one region per
 *     rank (bounds balanced from the last step's global selection, which
 *     every rank holds), and each rank sends the entries in region j to
 *     rank j (one alltoall of counts with the slot headers, one alltoallv
 *     of (u32 index, f32 value) pairs);
 *  3. each region's owner sums what it received, in rank order, from 0.0f;
 *  4. the global top-k of those sums by magnitude, ties broken by the
 *     smaller index: a radix select over the magnitudes' bits, one
 *     allreduce of a 256-bin histogram per byte (4), then one allgather of
 *     each rank's count above and at the threshold;
 *  5. an allgatherv of the selected pairs: every rank writes the same
 *     sparse result.
 *
 * The result is the global top-k of the sum of the ranks' sent entries,
 * not the sum of every rank's top-k (the sparse allgather's): an index
 * that some rank sent and the global selection dropped is returned to
 * that rank's error feedback, whose commit sees only the entries
 * delivered (sent and selected). So the result is exactly the sum of what
 * the commits removed, and error feedback keeps exactly what was not
 * delivered. A rank sends about k (P-1)/P pairs in step 2 and receives k
 * (P-1)/P in step 5: O(k) per rank, where the allgather sends (P-1) k.
 *
 * Every rank reads every rank's slot header (step 2's alltoall carries
 * it to every peer), so a non-finite vector, a failed encode or a
 * disagreement sends all to the exact allreduce together, before anything
 * is written or committed; so does a region sum that overflows (its count
 * joins the first histogram). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "collectives/allreduce_sparse_rs.h"
#include "compressors/codec_math.h"
#include "util/fault.h"
#include "util/log.h"

#define RADIX_BINS 256

int cp_allreduce_sparse_rs_can(const cp_transport_t *tp)
{
    return tp->ops->alltoallv && tp->ops->allgatherv && tp->ops->allreduce_sum_u64;
}

void cp_sparse_rs_bounds(const cp_tensor_t *t, size_t count, int size, size_t *bounds)
{
    if (t && t->rs_bounds && t->rs_parts == (size_t)size + 1 && t->count == count) {
        memcpy(bounds, t->rs_bounds, ((size_t)size + 1) * sizeof(size_t));
        return;
    }
    for (int j = 0; j < size; j++) {
        size_t off, len;
        cp_chunk_range(count, size, j, &off, &len);
        bounds[j] = off;
    }
    bounds[size] = count;
}

/* The next call's regions: each holds as many of this step's selected
 * indices (sel, sorted, s of them) as the others, to within one. */
static cp_status_t rebalance(cp_tensor_t *t, int size, const uint32_t *sel, size_t s)
{
    const size_t parts = (size_t)size + 1;
    if (t->rs_bounds == NULL || t->rs_parts != parts) {
        free(t->rs_bounds);
        t->rs_parts = 0;
        t->rs_bounds = malloc(parts * sizeof(size_t));
        if (t->rs_bounds == NULL)
            return CP_ERR_NOMEM;
    }
    t->rs_parts = parts;
    t->rs_bounds[0] = 0;
    for (int j = 1; j < size; j++)
        t->rs_bounds[j] = s >= (size_t)size ? sel[2 * ((size_t)j * s / (size_t)size)]
                                            : (size_t)j * t->count / (size_t)size;
    t->rs_bounds[size] = t->count;
    return CP_OK;
}

/* Entries a message of the codec can hold at most (6 bytes each at least:
 * a u32 index and an fp16 value). */
static size_t entries_cap(const cp_compressor_ops_t *codec, const cp_params_t *p, size_t count)
{
    return codec->max_size(p, count) / 6 + 1;
}

/* Per-rank arrays: counts and displacements (4 x size_t), the region
 * bounds, the merge's positions (size_t) and heap (int), the blocks sent
 * and received, the histogram, each rank's (above, ties) and this
 * rank's. */
static size_t meta_bytes(int size)
{
    const size_t n = (size_t)size;
    return (6 * n + 1) * sizeof(size_t) + n * sizeof(int) + 2 * n * CP_RS_BLOCK +
           (RADIX_BINS + 1) * 8 + 2 * n * 8 + 16 + 8;
}

void cp_allreduce_sparse_rs_plan(const cp_allreduce_args_t *a, const cp_params_t *p,
                                 size_t need[CP_WS_SLOTS])
{
    const cp_compressor_ops_t *codec = a->cfg->codec;
    const int n = a->tp->size;
    const size_t kcap = entries_cap(codec, p, a->count);
    need[CP_WS_V] = a->count * sizeof(float);
    need[CP_WS_SEND1] = cp_slot_size(codec->max_size(p, a->count));
    need[CP_WS_SCRATCH] = codec->scratch_size(p, a->count);
    need[CP_WS_PAIRS] = 8 + 8 * kcap;               /* sent pairs, then the commit's message */
    need[CP_WS_RECV2] = 8 * (size_t)cp_topk_k(p->density, a->count) + 8; /* the selection */
    need[CP_WS_META] = meta_bytes(n);
}


static float pair_value(const uint32_t *pair)
{
    float x;
    memcpy(&x, pair + 1, 4);
    return x;
}

/* Whether sender a's head comes before sender b's: the smaller index, then
 * the lower rank (so equal indices are summed in rank order). */
static int before(const uint32_t *got, const size_t *pos, int a, int b)
{
    const uint32_t ia = got[2 * pos[a]], ib = got[2 * pos[b]];
    return ia < ib || (ia == ib && a < b);
}

static void sift_down(int *heap, int len, int i, const uint32_t *got, const size_t *pos)
{
    for (;;) {
        int m = i, l = 2 * i + 1, r = l + 1;
        if (l < len && before(got, pos, heap[l], heap[m]))
            m = l;
        if (r < len && before(got, pos, heap[r], heap[m]))
            m = r;
        if (m == i)
            return;
        const int t = heap[i];
        heap[i] = heap[m], heap[m] = t;
        i = m;
    }
}

/* Step 3: the senders' lists (rcnt[r] / 8 pairs at got + rdsp[r] / 4, each
 * strictly increasing within [lo, hi), which it checks) merged into cand,
 * equal indices summed in rank order from 0.0f: a heap of the lists'
 * heads, O(entries log ranks). Returns the candidates, or -1 (malformed). */
static long merge_sums(const uint32_t *got, const size_t *rcnt, const size_t *rdsp, int n,
                       size_t lo, size_t hi, size_t *pos, int *heap, uint32_t *cand)
{
    int len = 0;
    for (int r = 0; r < n; r++) {
        pos[r] = rdsp[r] / 8;
        const size_t c = rcnt[r] / 8;
        for (size_t e = 0; e < c; e++) { /* validated before use */
            const uint32_t i = got[2 * (pos[r] + e)];
            if (i < lo || i >= hi || (e > 0 && i <= got[2 * (pos[r] + e - 1)]))
                return -1;
        }
        if (c > 0)
            heap[len++] = r;
    }
    for (int i = len / 2 - 1; i >= 0; i--)
        sift_down(heap, len, i, got, pos);
    long nc = 0;
    while (len > 0) {
        const int r = heap[0];
        const uint32_t i = got[2 * pos[r]];
        const float x = pair_value(&got[2 * pos[r]]);
        if (nc > 0 && cand[2 * (nc - 1)] == i) {
            float s = pair_value(&cand[2 * (nc - 1)]) + x;
            memcpy(&cand[2 * (nc - 1) + 1], &s, 4);
        } else {
            const float s = 0.0f + x;
            cand[2 * nc] = i;
            memcpy(&cand[2 * nc + 1], &s, 4);
            nc++;
        }
        pos[r]++;
        if (pos[r] == (rdsp[r] + rcnt[r]) / 8)
            heap[0] = heap[--len];
        sift_down(heap, len, 0, got, pos);
    }
    return nc;
}

/* Step 4 on this rank's candidates (nc sums): the threshold key T
 * (magnitude bits) and how many keys equal to T the world takes
 * (*ties_take); *all: fewer candidates than k, take every one.
 * *nonfinite: some sum is Inf/NaN. */
static cp_status_t select_threshold(const cp_transport_t *tp, const uint32_t *cand, size_t nc,
                                    size_t k, uint64_t *hist, uint32_t *t_p,
                                    uint64_t *ties_take, int *all, int *nonfinite)
{
    uint32_t prefix = 0;
    uint64_t need = k;
    *all = 0, *nonfinite = 0;
    for (int pass = 0; pass < 4; pass++) {
        const int shift = 24 - 8 * pass;
        const uint32_t hi_mask = pass ? ~0u << (shift + 8) : 0;
        memset(hist, 0, (RADIX_BINS + 1) * 8);
        for (size_t i = 0; i < nc; i++) {
            const float x = pair_value(&cand[2 * i]);
            if (pass == 0 && !isfinite(x)) {
                hist[RADIX_BINS]++;
                continue;
            }
            const uint32_t key = cp_mag_bits(x);
            if ((key & hi_mask) == prefix)
                hist[(key >> shift) & 0xff]++;
        }
        CP_CHECK(tp->ops->allreduce_sum_u64(tp->ctx, hist, pass == 0 ? RADIX_BINS + 1
                                                                    : RADIX_BINS));
        if (pass == 0 && hist[RADIX_BINS]) {
            *nonfinite = 1;
            return CP_OK;
        }
        if (pass == 0) {
            uint64_t total = 0;
            for (int d = 0; d < RADIX_BINS; d++)
                total += hist[d];
            if (total <= k) {
                *all = 1;
                return CP_OK;
            }
        }
        uint64_t above = 0;
        int d = RADIX_BINS - 1;
        for (; d > 0 && above + hist[d] < need; d--)
            above += hist[d];
        need -= above;
        prefix |= (uint32_t)d << shift;
    }
    *t_p = prefix;
    *ties_take = need;
    return CP_OK;
}

cp_status_t cp_allreduce_sparse_rs(const cp_allreduce_args_t *a, const cp_params_t *step_p,
                                   cp_coll_result_t *res)
{
    const cp_coll_config_t *cfg = a->cfg;
    const cp_compressor_ops_t *codec = cfg->codec;
    const cp_transport_t *tp = a->tp;
    const int n = tp->size, me = tp->rank;
    const size_t N = a->count;
    const float *g = a->send ? a->send : a->recv;
    const cp_feedback_ops_t *fb = cfg->feedback;
    const cp_fb_params_t fp = cp_step_fb(cfg, n, a->tensor->steps);
    cp_params_t p = *step_p;
    size_t need[CP_WS_SLOTS] = {0};
    unsigned char *send, *meta;
    uint32_t *pairs, *got, *sel;
    float *aux, *tmp;
    void *work, *scratch;
    int bad;
    double t0 = cp_now();

    if (!cp_allreduce_sparse_rs_can(tp))
        return CP_ERR_UNSUPPORTED;
    cp_allreduce_sparse_rs_plan(a, &p, need);
    CP_CHECK(cp_workspace_get(a->ws, CP_WS_V, need[CP_WS_V], &work));
    CP_CHECK(cp_workspace_get(a->ws, CP_WS_SEND1, need[CP_WS_SEND1], (void **)&send));
    CP_CHECK(cp_workspace_get(a->ws, CP_WS_SCRATCH, need[CP_WS_SCRATCH], &scratch));
    CP_CHECK(cp_workspace_get(a->ws, CP_WS_PAIRS, need[CP_WS_PAIRS], (void **)&pairs));
    CP_CHECK(cp_workspace_get(a->ws, CP_WS_RECV2, need[CP_WS_RECV2], (void **)&sel));
    CP_CHECK(cp_workspace_get(a->ws, CP_WS_META, need[CP_WS_META], (void **)&meta));
    CP_CHECK(cp_feedback_buffers(fb, a->ws, N, &aux, &tmp));
    size_t *scnt = (size_t *)meta, *sdsp = scnt + n, *rcnt = sdsp + n, *rdsp = rcnt + n;
    size_t *b = rdsp + n, *pos = b + n + 1;
    int *heap = (int *)(pos + n);
    unsigned char *bsend = (unsigned char *)(pos + n) + 8 * ((size_t)n / 2 + 1), *brecv = bsend + (size_t)n * CP_RS_BLOCK;
    uint64_t *hist = (uint64_t *)(brecv + (size_t)n * CP_RS_BLOCK), *counts = hist + RADIX_BINS + 1;
    cp_sparse_rs_bounds(a->tensor, N, n, b);
    res->fused = 0;

    /* 1. The local selection, in the codec's own message. */
    cp_call_seeds(a, 0, 0, &p);
    const float *v = fb->prepare(&fp, a->tensor->worker, g, work, aux, N, &bad);
    if (!bad)
        cp_tensor_accumulate(a->tensor, v);
    const cp_slot_meta_t smeta = {.flags = bad ? CP_SLOT_NONFINITE : 0,
                                  .check = cp_call_check(a),
                                  .evidence = a->evidence};
    cp_status_t est = cp_slot_encode(codec, &p, v, N, &smeta, send, need[CP_WS_SEND1], scratch);
    cp_topk_view_t mine = {0};
    if (est == CP_OK && cp_get_u32(send) == 0 &&
        codec->entries(cp_slot_payload(send), cp_slot_payload_len(send), N, &mine) != CP_OK) {
        est = CP_ERR_MALFORMED;
        cp_put_u32(send, CP_SLOT_FAILED);
    }
    if (est != CP_OK)
        cp_warn_rl("could not encode %zu floats (%s): every rank sends this call exact", N,
                   cp_status_string(est));
    if (cp_get_u32(send) != 0)
        mine.k = 0;

    /* 2. Pairs by region, and the counts with this rank's header. */
    size_t j = 0;
    for (int r = 0; r < n; r++) {
        sdsp[r] = 8 * j;
        while (j < mine.k && cp_get_u32(mine.idx + 4 * j) < b[r + 1]) {
            float x = cp_topk_value(&mine, j);
            pairs[2 * j] = cp_get_u32(mine.idx + 4 * j);
            memcpy(&pairs[2 * j + 1], &x, 4);
            j++;
        }
        scnt[r] = 8 * j - sdsp[r];
        unsigned char *blk = bsend + (size_t)r * CP_RS_BLOCK;
        memcpy(blk, send, CP_SLOT_HDR);
        cp_put_u32(blk + 4, 0); /* no payload in the block */
        cp_put_u64(blk + CP_SLOT_HDR, scnt[r] / 8);
    }
    res->compress_seconds += cp_now() - t0;
    CP_CHECK(tp->ops->alltoall(tp->ctx, bsend, brecv, CP_RS_BLOCK));
    res->bytes_sent = (size_t)(n - 1) * CP_RS_BLOCK;
    cp_slots_view_t view;
    cp_slots_scan(brecv, n, CP_RS_BLOCK, smeta.check, a->ev_period, &view);
    res->evidence = view.evidence;
    cp_fallback_t why = cp_slots_fallback(&view);
    if (why != CP_FALLBACK_NONE)
        return cp_allreduce_exact(a, res, why);
    const size_t region = b[me + 1] - b[me];
    size_t total = 0;
    for (int r = 0; r < n; r++) {
        const uint64_t c = cp_get_u64(brecv + (size_t)r * CP_RS_BLOCK + CP_SLOT_HDR);
        if (c > region || c > need[CP_WS_PAIRS] / 8)
            return CP_ERR_MALFORMED; /* more entries than the region or a message holds */
        rdsp[r] = 8 * total;
        rcnt[r] = 8 * c;
        total += c;
    }
    /* The receive buffer's size depends on the data: the ranks agree that
     * every one of them has it before anyone sends. */
    uint64_t fail = cp_workspace_get(a->ws, CP_WS_GOT, 16 * total + 8, (void **)&got) != CP_OK;
    CP_CHECK(tp->ops->allreduce_max_u64(tp->ctx, &fail, 1));
    if (fail)
        return cp_allreduce_exact(a, res, CP_FALLBACK_FAILED);
    CP_CHECK(tp->ops->alltoallv(tp->ctx, pairs, scnt, sdsp, got, rcnt, rdsp));
    res->bytes_sent += 8 * j - scnt[me];

    /* 3. The region's sums, in rank order (the candidates after the
     * received pairs in the same buffer). */
    t0 = cp_now();
    uint32_t *cand = got + 2 * total;
    const long ncl = merge_sums(got, rcnt, rdsp, n, b[me], b[me + 1], pos, heap, cand);
    if (ncl < 0)
        return CP_ERR_MALFORMED;
    const size_t nc = (size_t)ncl;
    res->compress_seconds += cp_now() - t0;

    /* 4. The global top-k of the sums. */
    const size_t K = cp_topk_k(p.density, N);
    uint32_t T = 0;
    uint64_t ties_take = 0;
    int all, nonfinite;
    CP_CHECK(select_threshold(tp, cand, nc, K, hist, &T, &ties_take, &all, &nonfinite));
    res->bytes_sent += 4 * cp_ring_bytes(n, RADIX_BINS * 8.0);
    if (nonfinite) /* a sum overflowed: every rank knows from the histogram */
        return cp_allreduce_exact(a, res, CP_FALLBACK_NONFINITE);
    uint64_t above = 0, ties = 0;
    for (size_t i = 0; i < nc; i++) {
        const uint32_t key = cp_mag_bits(pair_value(&cand[2 * i]));
        above += all || key > T;
        ties += !all && key == T;
    }
    uint64_t *own = counts + 2 * (size_t)n;
    own[0] = above, own[1] = ties;
    CP_CHECK(tp->ops->allgather(tp->ctx, own, counts, 16));
    res->bytes_sent += (size_t)(n - 1) * 16;
    /* Each rank's share: all above T, and the ties from the smallest
     * index on (regions are in rank order, so ties before rank r's are
     * the lower ranks'). */
    size_t S = 0, take_me = 0;
    uint64_t ties_before = 0;
    for (int r = 0; r < n; r++) {
        const uint64_t ab = counts[2 * r], ti = counts[2 * r + 1];
        const uint64_t left = ties_take > ties_before ? ties_take - ties_before : 0;
        const uint64_t mine_ties = ti < left ? ti : left;
        ties_before += ti;
        rcnt[r] = 8 * (ab + mine_ties);
        rdsp[r] = 8 * S;
        S += ab + mine_ties;
        if (r == me)
            take_me = mine_ties;
    }
    /* At most k (all: the candidates, which the first histogram counted
     * at most k): sel, sized for k, holds them. */
    if (S > K)
        return CP_ERR_MALFORMED; /* counts no rank could have sent */
    /* This rank's selection, in index order, into its place in sel. */
    uint32_t *out = sel + rdsp[me] / 4;
    size_t o = 0;
    for (size_t i = 0; i < nc; i++) {
        const uint32_t key = cp_mag_bits(pair_value(&cand[2 * i]));
        const int take = all || key > T || (key == T && take_me > 0);
        if (!take)
            continue;
        if (!all && key == T)
            take_me--;
        out[2 * o] = cand[2 * i];
        out[2 * o + 1] = cand[2 * i + 1];
        o++;
    }
    if (8 * o != rcnt[me])
        return CP_ERR_MALFORMED;

    /* 5. Every rank gets every selection. */
    CP_CHECK(tp->ops->allgatherv(tp->ctx, NULL, rcnt[me], sel, rcnt, rdsp));
    res->bytes_sent += 8 * (S - o);

    /* The result, then the commit of what was delivered (validated first:
     * a malformed selection leaves the state untouched). */
    t0 = cp_now();
    for (size_t e = 0; e < S; e++)
        if (sel[2 * e] >= N || (e > 0 && sel[2 * e] <= sel[2 * e - 2]))
            return CP_ERR_MALFORMED;
    unsigned char *msg = (unsigned char *)pairs; /* the sent pairs are dead */
    size_t kd = 0, s = 0;
    for (size_t e = 0; e < mine.k; e++) {
        const uint32_t i = cp_get_u32(mine.idx + 4 * e);
        while (s < S && sel[2 * s] < i)
            s++;
        if (s < S && sel[2 * s] == i)
            cp_put_u32(msg + 4 + 4 * kd++, i);
    }
    for (size_t e = 0, d = 0; e < mine.k && d < kd; e++)
        if (cp_get_u32(mine.idx + 4 * e) == cp_get_u32(msg + 4 + 4 * d)) {
            const float x = cp_topk_value(&mine, e);
            memcpy(msg + 4 + 4 * kd + 4 * d, &x, 4);
            d++;
        }
    size_t mlen;
    cp_sparse_finish(msg, kd, &mlen);
    memset(a->recv, 0, N * sizeof(float));
    for (size_t e = 0; e < S; e++)
        memcpy(&a->recv[sel[2 * e]], &sel[2 * e + 1], 4);
    CP_CHECK(fb->commit(&fp, a->tensor->worker, v, aux, tmp, codec, &p, msg, mlen, N));
    CP_CHECK(rebalance(a->tensor, n, sel, S));
    res->compress_seconds += cp_now() - t0;
    return CP_OK;
}
