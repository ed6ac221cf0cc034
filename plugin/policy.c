/* COMMPRESS_POLICY=auto (plugin/policy.h, docs/policy.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/policy.h"
#include "util/log.h"

#define FIRST_INTERVAL 256
#define MAX_INTERVAL 16384

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

void cp_policy_init(cp_policy_t *p, int rank, const char *spec)
{
    memset(p, 0, sizeof(*p));
    p->on = 1;
    p->rank = rank;
    p->fake[0] = p->fake[1] = -1;
    if (spec && spec[0])
        parse_times(spec, rank, p->fake);
    for (unsigned i = 0; i < CP_POLICY_CLASSES; i++)
        p->cls[i].in_round = 1; /* the first round starts at the first call */
}

int cp_policy_plain(const cp_policy_t *p, size_t count)
{
    if (!p->on)
        return 0;
    const cp_pol_class_t *c = &p->cls[class_of(count)];
    return c->in_round ? c->next_plain : c->mode == CP_POL_PLAIN;
}

static double median(const double *v, uint32_t k)
{
    double s[CP_POLICY_PAIRS];
    memcpy(s, v, k * sizeof(double));
    for (uint32_t i = 1; i < k; i++) /* insertion sort of at most 4 */
        for (uint32_t j = i; j > 0 && s[j] < s[j - 1]; j--) {
            const double x = s[j];
            s[j] = s[j - 1], s[j - 1] = x;
        }
    return k % 2 ? s[k / 2] : 0.5 * (s[k / 2 - 1] + s[k / 2]);
}

/* The smallest over ranks of non-negative doubles: the max-allreduce of
 * the complements of their bits (non-negative doubles order like their
 * bits). */
static cp_status_t agree_min(const cp_transport_t *tp, double *v, size_t n)
{
    uint64_t u[2];
    for (size_t i = 0; i < n; i++) {
        memcpy(&u[i], &v[i], sizeof(double));
        u[i] = ~u[i];
    }
    CP_CHECK(tp->ops->allreduce_max_u64(tp->ctx, u, n));
    for (size_t i = 0; i < n; i++) {
        u[i] = ~u[i];
        memcpy(&v[i], &u[i], sizeof(double));
    }
    return CP_OK;
}

cp_status_t cp_policy_done(cp_policy_t *p, size_t count, int plain,
                           double seconds, int fresh, const cp_transport_t *tp)
{
    if (!p->on)
        return CP_OK;
    const unsigned k = class_of(count);
    cp_pol_class_t *c = &p->cls[k];
    c->calls++;
    if (!c->in_round) {
        if (c->calls >= c->probe_at) { /* a probe: the other side first */
            c->in_round = 1;
            c->n[0] = c->n[1] = 0;
            c->next_plain = c->mode == CP_POL_COMPRESS;
        }
        return CP_OK;
    }
    if (fresh) /* not timed; the same side again */
        return CP_OK;
    const int side = plain != 0;
    if (c->n[side] < CP_POLICY_PAIRS)
        c->t[side][c->n[side]++] = p->fake[side] >= 0 ? p->fake[side]
                                                      : (seconds > 0 ? seconds : 0);
    c->next_plain = !plain;
    if (c->n[0] != c->n[1])
        return CP_OK;
    /* A pair is complete: the ranks agree on the medians so far. */
    const uint32_t pairs = c->n[0];
    double m[2] = {median(c->t[0], pairs), median(c->t[1], pairs)};
    CP_CHECK(agree_min(tp, m, 2));
    const double r = m[1] > 0 ? m[0] / m[1] : (m[0] > 0 ? 1e9 : 1.0);
    const int clear = (r < 1.0 / 3 || r > 3.0) || (pairs >= 2 && (r < 2.0 / 3 || r > 1.5)) ||
                      pairs >= CP_POLICY_PAIRS;
    if (!clear)
        return CP_OK;
    uint8_t mode;
    const int first = c->mode == CP_POL_ROUND;
    if (first)
        mode = r < 0.95 ? CP_POL_COMPRESS : CP_POL_PLAIN;
    else if (c->mode == CP_POL_COMPRESS)
        mode = r > 1.0 ? CP_POL_PLAIN : CP_POL_COMPRESS;
    else
        mode = r < 0.9 ? CP_POL_COMPRESS : CP_POL_PLAIN;
    const int changed = !first && mode != c->mode;
    c->mode = mode;
    c->in_round = 0;
    c->interval = c->interval ? 2 * c->interval : FIRST_INTERVAL;
    if (c->interval > MAX_INTERVAL)
        c->interval = MAX_INTERVAL;
    c->probe_at = c->calls + c->interval;
    if (p->rank == 0 && (first || changed))
        cp_info("policy: calls of 2^%u..2^%u floats: compressed %.3f ms, plain %.3f ms "
                "(the fastest rank's median of %u): %s%s", k, k + 1, 1e3 * m[0],
                1e3 * m[1], pairs, mode == CP_POL_COMPRESS ? "compressed" : "plain",
                changed ? " (switched)" : "");
    else if (p->rank == 0)
        cp_trace("policy: calls of 2^%u..2^%u floats: compressed %.3f ms, plain %.3f ms: "
                 "%s kept", k, k + 1, 1e3 * m[0], 1e3 * m[1],
                 mode == CP_POL_COMPRESS ? "compressed" : "plain");
    return CP_OK;
}
