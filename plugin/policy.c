/* COMMPRESS_POLICY=auto (plugin/policy.h, docs/policy.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collectives/coll.h"
#include "plugin/policy.h"
#include "util/log.h"

#define WARMUP 8           /* calls of a class before its first round */
#define FIRST_INTERVAL 64
#define CLEAR_INTERVAL 1024 /* after a ratio beyond 3 either way */
#define MAX_INTERVAL 16384
#define BACK 0.85 /* a plain class's probe compresses again below this r */
#define PREDICT_PLAIN 1.5 /* predicted compressed / plain above: no round */

static unsigned class_of(size_t count)
{
    unsigned c = 0;
    while (count >>= 1)
        c++;
    return c < CP_POLICY_CLASSES ? c : CP_POLICY_CLASSES - 1;
}

/* Parses "c:p[,c:p...]" (microseconds, > 0); with rank >= 0 stores that
 * rank's pair (the last one for ranks beyond the list) in out. */
static int parse_times(const char *s, int rank, double out[2])
{
    int i = 0;
    double c = -1, p = -1;
    while (*s) {
        char *e;
        const double a = strtod(s, &e);
        if (e == s || *e != ':' || !(a > 0 && a < 1e12))
            return -1;
        s = e + 1;
        const double b = strtod(s, &e);
        if (e == s || (*e != ',' && *e != '\0') || !(b > 0 && b < 1e12))
            return -1;
        s = *e ? e + 1 : e;
        if (i <= rank || rank < 0)
            c = a, p = b;
        i++;
        if (*e == ',' && *s == '\0')
            return -1;
    }
    if (i == 0)
        return -1;
    if (out)
        out[0] = c * 1e-6, out[1] = p * 1e-6;
    return 0;
}

int cp_policy_check_times(const char *spec)
{
    return spec[0] == '\0' || parse_times(spec, -1, NULL) == 0 ? 0 : -1;
}

void cp_policy_init(cp_policy_t *p, int rank, int size, const char *spec)
{
    memset(p, 0, sizeof(*p));
    p->on = 1;
    p->rank = rank;
    p->size = size;
    p->fake[0] = p->fake[1] = -1;
    if (spec && spec[0])
        parse_times(spec, rank, p->fake);
    for (unsigned i = 0; i < CP_POLICY_CLASSES; i++) {
        p->cls[i].probe_at = WARMUP; /* the first round, after the warm-up */
        p->cls[i].pend = -1;
    }
}

/* Weighted least squares of y = a + b x, weights 1 / t^2 (relative
 * errors, so that small and large classes count alike), a, b >= 0. */
static void fit(const double *x, const double *y, const double *t, unsigned k,
                double *a, double *b)
{
    double s = 0, sx = 0, sxx = 0, sy = 0, sxy = 0;
    for (unsigned i = 0; i < k; i++) {
        const double w = t[i] > 0 ? 1 / (t[i] * t[i]) : 1;
        s += w, sx += w * x[i], sxx += w * x[i] * x[i];
        sy += w * y[i], sxy += w * x[i] * y[i];
    }
    const double det = s * sxx - sx * sx;
    *a = 0, *b = 0;
    if (det > 1e-9 * s * sxx) {
        *b = (s * sxy - sx * sy) / det;
        *a = (sy - *b * sx) / s;
    }
    if (!(det > 1e-9 * s * sxx) || *a < 0)
        *a = 0, *b = sxx > 0 ? sxy / sxx : 0;
    if (*b < 0)
        *b = 0, *a = s > 0 ? sy / s : 0;
    if (*a < 0)
        *a = 0;
}

static double ring(const cp_policy_t *p, double n)
{
    return (double)cp_ring_bytes(p->size, 4 * n);
}

double cp_policy_saved(const cp_policy_t *p, uint64_t *calls)
{
    double saved = 0;
    *calls = 0;
    for (unsigned i = 0; p->on && i < CP_POLICY_CLASSES; i++) {
        const cp_pol_class_t *c = &p->cls[i];
        if (c->per_p > 0) {
            saved += (double)c->ncomp * (c->per_p - c->per_c);
            *calls += c->ncomp;
        }
    }
    return saved;
}

int cp_policy_model(const cp_policy_t *p, cp_pol_model_t *m)
{
    double bx[CP_POLICY_CLASSES], nx[CP_POLICY_CLASSES], tp[CP_POLICY_CLASSES],
        tc[CP_POLICY_CLASSES], rc[CP_POLICY_CLASSES], w[CP_POLICY_CLASSES];
    unsigned k = 0;
    memset(m, 0, sizeof(*m));
    for (unsigned i = 0; i < CP_POLICY_CLASSES; i++) {
        const cp_pol_class_t *c = &p->cls[i];
        if (c->seen_n > 0) {
            nx[k] = c->seen_n, bx[k] = ring(p, c->seen_n), w[k] = c->seen_w * c->seen_n;
            tp[k] = c->seen_p, tc[k] = c->seen_c;
            k++;
        }
    }
    if (k < 2)
        return 0;
    fit(bx, tp, tp, k, &m->alpha, &m->beta);
    /* What the compressed calls spent besides moving their bytes. */
    for (unsigned i = 0; i < k; i++)
        rc[i] = tc[i] - m->beta * w[i];
    fit(nx, rc, tc, k, &m->alpha_c, &m->gamma);
    return 1;
}

void cp_policy_predict(const cp_policy_t *p, const cp_pol_model_t *m,
                       size_t count, double *compressed, double *plain)
{
    const unsigned k = class_of(count);
    double w = 0;
    for (unsigned i = 0; i < CP_POLICY_CLASSES; i++) /* the nearest below, */
        if (p->cls[i].seen_n > 0 && (i <= k || w == 0))
            w = p->cls[i].seen_w;                  /* else the smallest above */
    *plain = m->alpha + m->beta * ring(p, (double)count);
    *compressed = m->alpha_c + m->gamma * (double)count + m->beta * w * (double)count;
}

static double median_of(const double *s, uint32_t k)
{
    return k % 2 ? s[k / 2] : 0.5 * (s[k / 2 - 1] + s[k / 2]);
}

/* The median of k samples, less the largest where it is more than twice
 * the median of the others: a pause (an evaluation, a checkpoint)
 * lengthens one period by seconds, and one such outlier a side must not
 * decide; ordinary noise is kept (dropping the largest sample always
 * biased the noisier side, compressed on shared memory, low). */
static double typical(const double *v, uint32_t k)
{
    double s[CP_POLICY_PAIRS];
    memcpy(s, v, k * sizeof(double));
    for (uint32_t i = 1; i < k; i++) /* insertion sort of at most 4 */
        for (uint32_t j = i; j > 0 && s[j] < s[j - 1]; j--) {
            const double x = s[j];
            s[j] = s[j - 1], s[j - 1] = x;
        }
    if (k >= 2 && s[k - 1] > 2 * median_of(s, k - 1))
        k--;
    return median_of(s, k);
}

/* In one allreduce: the smallest over ranks of the two call medians
 * (the max of the complements of their bits: non-negative doubles order
 * like their bits), the largest of the two period medians and of the
 * wire bytes. */
static cp_status_t agree(const cp_transport_t *tp, double v[4], uint64_t *wire)
{
    uint64_t u[5];
    for (size_t i = 0; i < 4; i++) {
        memcpy(&u[i], &v[i], sizeof(double));
        if (i < 2)
            u[i] = ~u[i];
    }
    u[4] = *wire;
    CP_CHECK(tp->ops->allreduce_max_u64(tp->ctx, u, 5));
    for (size_t i = 0; i < 4; i++) {
        if (i < 2)
            u[i] = ~u[i];
        memcpy(&v[i], &u[i], sizeof(double));
    }
    *wire = u[4];
    return CP_OK;
}

static double ratio(double c, double p)
{
    return p > 0 ? c / p : (c > 0 ? 1e9 : 1.0);
}

/* A pair of class k is complete: the ranks agree on the medians so far,
 * and a clear ratio of the periods decides. */
static cp_status_t pair_done(cp_policy_t *p, unsigned k, size_t count,
                             const cp_transport_t *tp)
{
    cp_pol_class_t *c = &p->cls[k];
    const uint32_t pairs = c->n[0];
    /* m: call times (compressed, plain), then periods (compressed, plain) */
    double m[4] = {typical(c->t[0], pairs), typical(c->t[1], pairs),
                   typical(c->per[0], pairs), typical(c->per[1], pairs)};
    uint64_t w = c->wire;
    CP_CHECK(agree(tp, m, &w));
    const double r = ratio(m[2], m[3]), rcall = ratio(m[0], m[1]);
    const int far = r < 1.0 / 3 || r > 3.0;
    /* One pair decides only where the calls say the same as the periods
     * (a pause lengthens a period, not a call); two where the rest of the
     * samples, less the largest, are clear. */
    const int one = (r < 1.0 / 3 && rcall < 1.0 / 3) || (r > 3.0 && rcall > 3.0);
    const int clear = one || (pairs >= 2 && (r < 2.0 / 3 || r > 1.5)) || pairs >= CP_POLICY_PAIRS;
    if (!clear)
        return CP_OK;
    /* The model's input: this round's call times, agreed. */
    c->seen_c = m[0], c->seen_p = m[1], c->seen_n = (double)count;
    c->per_c = m[2], c->per_p = m[3];
    c->seen_w = (double)w / (double)count;
    uint8_t mode;
    const int first = c->mode == CP_POL_ROUND;
    if (first)
        mode = r < 0.95 ? CP_POL_COMPRESS : CP_POL_PLAIN;
    else if (c->mode == CP_POL_COMPRESS)
        mode = r > 1.0 ? CP_POL_PLAIN : CP_POL_COMPRESS;
    else
        mode = r < BACK ? CP_POL_COMPRESS : CP_POL_PLAIN;
    const int changed = !first && mode != c->mode;
    c->mode = mode;
    c->in_round = 0;
    c->interval = c->interval ? 2 * c->interval : FIRST_INTERVAL;
    if (far && c->interval < CLEAR_INTERVAL)
        c->interval = CLEAR_INTERVAL; /* a probe costs more than it can find */
    if (c->interval > MAX_INTERVAL)
        c->interval = MAX_INTERVAL;
    c->probe_at = c->calls + c->interval;
    char pred[96] = "";
    if (c->pred_p > 0)
        snprintf(pred, sizeof(pred), "predicted compressed %.3f ms, plain %.3f ms; ",
                 1e3 * c->pred_c, 1e3 * c->pred_p);
    if (p->rank == 0 && (first || changed))
        cp_info("policy: calls of 2^%u..2^%u floats: %smeasured compressed %.3f ms, "
                "plain %.3f ms a call, periods %.3f ms and %.3f ms (medians of %u: "
                "the fastest rank's calls, the slowest rank's periods): %s%s", k, k + 1,
                pred, 1e3 * m[0], 1e3 * m[1], 1e3 * m[2], 1e3 * m[3], pairs,
                mode == CP_POL_COMPRESS ? "compressed" : "plain",
                changed ? " (switched)" : "");
    else if (p->rank == 0)
        cp_trace("policy: calls of 2^%u..2^%u floats: compressed %.3f ms, plain %.3f ms, "
                 "periods %.3f ms and %.3f ms: %s kept", k, k + 1, 1e3 * m[0],
                 1e3 * m[1], 1e3 * m[2], 1e3 * m[3],
                 mode == CP_POL_COMPRESS ? "compressed" : "plain");
    return CP_OK;
}

/* The class's first call: the model's prediction, from agreed values
 * only. It skips the round where it is clearly against compressing,
 * within the sizes measured. */
static void predict_first(cp_policy_t *p, unsigned k, size_t count)
{
    cp_pol_class_t *c = &p->cls[k];
    cp_pol_model_t m;
    unsigned top = 0;
    for (unsigned i = 0; i < CP_POLICY_CLASSES; i++)
        if (p->cls[i].seen_n > 0)
            top = i;
    if (!cp_policy_model(p, &m))
        return;
    cp_policy_predict(p, &m, count, &c->pred_c, &c->pred_p);
    if (k <= top && c->pred_c > PREDICT_PLAIN * c->pred_p) {
        c->mode = CP_POL_PLAIN;
        c->in_round = 0;
        c->interval = FIRST_INTERVAL;
        c->probe_at = FIRST_INTERVAL;
        if (p->rank == 0)
            cp_info("policy: calls of 2^%u..2^%u floats: predicted compressed %.3f ms, "
                    "plain %.3f ms: plain (measured at the first probe, %d calls later)",
                    k, k + 1, 1e3 * c->pred_c, 1e3 * c->pred_p, FIRST_INTERVAL);
    }
}

cp_status_t cp_policy_begin(cp_policy_t *p, size_t count, double now,
                            const cp_transport_t *tp, int *plain)
{
    *plain = 0;
    if (!p->on)
        return CP_OK;
    const unsigned k = class_of(count);
    cp_pol_class_t *c = &p->cls[k];
    if (c->pend >= 0) { /* the previous timed call's period ends here */
        const int side = c->pend;
        const double per = now - c->pend_start;
        c->pend = -1;
        if (c->n[side] < CP_POLICY_PAIRS) {
            const uint32_t i = c->n[side]++;
            c->t[side][i] = p->fake[side] >= 0 ? p->fake[side] : c->pend_call;
            c->per[side][i] = p->fake[side] >= 0 ? p->fake[side] : (per > 0 ? per : 0);
        }
        c->next_plain = !side;
        if (c->n[0] == c->n[1])
            CP_CHECK(pair_done(p, k, count, tp));
    }
    if (c->calls == 0) /* the class's first call (its only one at 0) */
        predict_first(p, k, count);
    *plain = c->in_round ? c->next_plain : c->mode == CP_POL_PLAIN;
    return CP_OK;
}

void cp_policy_end(cp_policy_t *p, size_t count, int plain, double start,
                   double seconds, size_t wire, int fresh)
{
    if (!p->on)
        return;
    cp_pol_class_t *c = &p->cls[class_of(count)];
    c->calls++;
    c->ncomp += !plain;
    if (!c->in_round) {
        if (c->calls >= c->probe_at) { /* a probe: the other side first */
            c->in_round = 1;
            c->n[0] = c->n[1] = 0;
            c->wire = 0;
            c->second = 0;
            c->next_plain = c->mode == CP_POL_COMPRESS;
        }
        return;
    }
    if (fresh) /* not timed; the same side again */
        return;
    if (!c->second) { /* a side's first call: not timed, the same side again */
        c->second = 1;
        return;
    }
    c->second = 0;
    c->pend = (int8_t)(plain != 0);
    c->pend_start = start;
    c->pend_call = seconds > 0 ? seconds : 0;
    if (!plain)
        c->wire = wire;
}
