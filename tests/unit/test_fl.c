/* Federated learning (optim/fl.c): client and server updates against a
 * transcription of ALGORITHMS.md "SCAFCOM and SCALLION", exact; message
 * and state validation; save/load; convergence on heterogeneous
 * quadratics where FedAvg with top-k stalls. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "include/commpress_fl.h"
#include "testutil.h"
#include "util/hd.h"
#include "tests/common/codecs.h"

/* Client i's loss a_i/2 ||y - t_i||^2: gradient a_i (y - t_i). */
typedef struct {
    const float *t;
    float a;
    int calls, fail_at;
} quad_ctx_t;

static int quad_grad(void *user, const float *y, float *g, size_t d)
{
    quad_ctx_t *q = user;
    if (++q->calls == q->fail_at)
        return 1;
    for (size_t j = 0; j < d; j++)
        g[j] = q->a * (y[j] - q->t[j]);
    return 0;
}

static commpress_fl_config_t cfg(const char *algo, const char *comp, size_t d)
{
    commpress_fl_config_t c;
    commpress_fl_config_default(&c);
    c.algorithm = algo;
    c.compressor = comp;
    c.dim = d;
    c.num_clients = 8;
    c.local_steps = 3;
    c.density = 0.1;
    c.stochastic = 1;
    c.bits = 3;
    c.bucket = 64;
    c.lr_global = 1.5;
    return c;
}

static void *save_client(commpress_fl_client_t *cl, size_t *len)
{
    commpress_fl_client_save(cl, NULL, 0, len);
    void *b = malloc(*len);
    cr_assert_eq(commpress_fl_client_save(cl, b, *len, len), 0);
    return b;
}

static void *save_server(commpress_fl_server_t *s, size_t *len)
{
    commpress_fl_server_save(s, NULL, 0, len);
    void *b = malloc(*len);
    cr_assert_eq(commpress_fl_server_save(s, b, *len, len), 0);
    return b;
}

static int codec_is(const char *comp, const char *name) { return strcmp(comp, name) == 0; }

/* Two rounds of two clients, every quantity recomputed by the formulas. */
static void transcription(const char *algo, const char *comp)
{
    const size_t d = 300;
    const int K = 3, nc = 2;
    commpress_fl_config_t c = cfg(algo, comp, d);
    const int scafcom = !strcmp(algo, "scafcom"), scallion = !strcmp(algo, "scallion");
    const float lr = (float)c.lr_local, inv = (float)(1.0 / (c.lr_local * K));
    const float beta = (float)c.beta, alpha = (float)c.alpha;
    commpress_fl_client_t *cl[2];
    commpress_fl_server_t *s;
    float *x0 = tu_gradient(d, 1), *t[2], *ci[2], *vi[2];
    float *x = malloc(d * 4), *cg = calloc(d, 4), *y = malloc(d * 4), *sum = malloc(d * 4);
    float *dec = malloc(d * 4), *u = malloc(d * 4);
    size_t cap = commpress_fl_message_max(&c);
    unsigned char *msg[2] = {malloc(cap), malloc(cap)};
    size_t len[2];
    unsigned char *sent[2][2] = {{calloc(d, 1), calloc(d, 1)}, {calloc(d, 1), calloc(d, 1)}};

    cr_assert_eq(commpress_fl_server_create(&c, x0, &s), 0);
    memcpy(x, x0, d * 4);
    for (int i = 0; i < nc; i++) {
        cr_assert_eq(commpress_fl_client_create(&c, (uint32_t)(3 + i), &cl[i]), 0);
        t[i] = tu_gradient(d, 10 + (uint64_t)i);
        ci[i] = calloc(d, 4), vi[i] = calloc(d, 4);
    }
    for (uint64_t r = 0; r < 2; r++) {
        for (int i = 0; i < nc; i++) {
            quad_ctx_t q = {t[i], 1.0f + (float)i, 0, 0};
            cr_assert_eq(commpress_fl_client_round(cl[i], commpress_fl_server_model(s),
                                                   commpress_fl_server_control(s), r,
                                                   quad_grad, &q, msg[i], cap, &len[i]),
                         0);
            cr_assert_eq(q.calls, K);
            /* The transcription: K local steps, then the variant's rule. */
            memcpy(y, x, d * 4);
            for (int k = 0; k < K; k++)
                for (size_t j = 0; j < d; j++) {
                    float g = q.a * (y[j] - t[i][j]);
                    y[j] -= scafcom || scallion ? lr * ((g - ci[i][j]) + cg[j]) : lr * g;
                }
            for (size_t j = 0; j < d; j++) {
                float di = (x[j] - y[j]) * inv;
                if (scafcom) {
                    vi[i][j] = (1.0f - beta) * vi[i][j] + beta * ((di + ci[i][j]) - cg[j]);
                    u[j] = vi[i][j] - ci[i][j];
                } else {
                    u[j] = scallion ? di - cg[j] : di;
                }
            }
            /* The payload is the codec's encoding of u: re-encode u with
             * the same parameters and seed is not possible from here (the
             * seed is internal), so decode it and check the codec's own
             * bound against u, then use the decoded values as delta. */
            const cp_compressor_ops_t *codec = cp_compressor_find(comp);
            cp_params_t p = {.density = c.density, .bits = c.bits, .bucket = c.bucket};
            cr_assert_eq(codec->decode(&p, msg[i] + 40, len[i] - 40, 1.0f, NULL, dec, d), 0);
            size_t kept = 0;
            const int sparse = (codec->caps & CP_CODEC_SPARSE) != 0;
            for (size_t j = 0; j < d; j++) {
                if (sparse) {
                    cr_assert(dec[j] == 0.0f || dec[j] == u[j], "%s sends u exactly", comp);
                    kept += dec[j] != 0.0f;
                    sent[r][i][j] = dec[j] != 0.0f;
                } else {
                    cr_assert_lt(fabsf(dec[j] - u[j]), 0.5f, "quant near u");
                }
            }
            if (sparse)
                cr_assert_eq(kept, 30);
            for (size_t j = 0; j < d; j++) {
                if (scafcom)
                    ci[i][j] = ci[i][j] + dec[j];
                else if (scallion)
                    ci[i][j] = ci[i][j] + alpha * dec[j];
                sum[j] = i == 0 ? 0.0f + dec[j] : sum[j] + dec[j];
            }
            size_t bl;
            float *st = save_client(cl[i], &bl);
            cr_assert_eq(memcmp(st + 8, ci[i], d * 4), 0, "%s r %llu: c_i", algo,
                         (unsigned long long)r);
            if (scafcom)
                cr_assert_eq(memcmp(st + 8 + d, vi[i], d * 4), 0, "v_i");
            free(st);
        }
        const void *mp[2] = {msg[0], msg[1]};
        cr_assert_eq(commpress_fl_server_aggregate(s, mp, len, 2), 0);
        const float gamma = (float)(c.lr_global * c.lr_local * K);
        const float a = scallion ? alpha : 1.0f, an = a / (float)c.num_clients;
        for (size_t j = 0; j < d; j++) {
            x[j] -= gamma * (cg[j] + sum[j] * (1.0f / 2));
            if (scafcom || scallion)
                cg[j] += an * sum[j];
        }
        cr_assert_eq(memcmp(commpress_fl_server_model(s), x, d * 4), 0, "%s r %llu: x",
                     algo, (unsigned long long)r);
        cr_assert_eq(memcmp(commpress_fl_server_control(s), cg, d * 4), 0, "c");
        cr_assert_eq(commpress_fl_server_round(s), r + 1);
    }
    /* randk: the clients of a round send the same indices (the round's
     * shared seed), other ones the next round. */
    if (codec_is(comp, "randk")) {
        cr_assert_eq(memcmp(sent[0][0], sent[0][1], d), 0, "round 0: indices differ");
        cr_assert_eq(memcmp(sent[1][0], sent[1][1], d), 0, "round 1: indices differ");
        cr_assert_neq(memcmp(sent[0][0], sent[1][0], d), 0, "rounds 0 and 1: same indices");
    }
    for (int i = 0; i < nc; i++) {
        commpress_fl_client_destroy(cl[i]);
        free(t[i]), free(ci[i]), free(vi[i]), free(msg[i]);
        free(sent[0][i]), free(sent[1][i]);
    }
    commpress_fl_server_destroy(s);
    free(x0), free(x), free(cg), free(y), free(sum), free(dec), free(u);
}

Test(fl, scafcom_matches_the_formulas) { transcription("scafcom", "topk"); }
Test(fl, scallion_matches_the_formulas) { transcription("scallion", "quant"); }
Test(fl, fedavg_matches_the_formulas) { transcription("fedavg", "topk"); }
Test(fl, scafcom_randk_matches_the_formulas) { transcription("scafcom", "randk"); }

/* Every bad message is rejected and the server does not change; a client
 * that is not sampled keeps its state; a failing gradient changes nothing. */
Test(fl, bad_messages_and_untouched_state)
{
    const size_t d = 200;
    commpress_fl_config_t c = cfg("scafcom", "topk", d);
    commpress_fl_server_t *s;
    commpress_fl_client_t *a, *b;
    float *x0 = tu_gradient(d, 2), *t = tu_gradient(d, 3);
    size_t cap = commpress_fl_message_max(&c), la, lb, l0, l1, lc0, lc1;
    unsigned char *ma = malloc(cap), *mb = malloc(cap), *bad = malloc(cap + 8);
    quad_ctx_t q = {t, 1.0f, 0, 0};

    commpress_fl_server_create(&c, x0, &s);
    commpress_fl_client_create(&c, 1, &a);
    commpress_fl_client_create(&c, 2, &b);
    void *b0 = save_client(b, &lc0);
    cr_assert_eq(commpress_fl_client_round(a, x0, commpress_fl_server_control(s), 0,
                                           quad_grad, &q, ma, cap, &la), 0);
    void *b1 = save_client(b, &lc1);
    cr_assert(lc0 == lc1 && memcmp(b0, b1, lc0) == 0, "unsampled client changed");
    q.calls = 0;
    cr_assert_eq(commpress_fl_client_round(b, x0, commpress_fl_server_control(s), 0,
                                           quad_grad, &q, mb, cap, &lb), 0);
    void *s0 = save_server(s, &l0);

    struct { const char *what; size_t off; unsigned char val; size_t len; } cases[] = {
        {"bad magic", 0, 0x00, 0},    {"bad version", 4, 9, 0},
        {"other algorithm", 12, 2, 0}, {"other round", 16, 5, 0},
        {"other dim", 24, 7, 0},      {"payload length", 32, 3, 0},
        {"topk k too large", 40, 0xff, 0}, {"truncated", 0, 0, 1},
        {"client id >= N", 8, 200, 0},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(*cases); k++) {
        size_t lbad = la;
        memcpy(bad, ma, la);
        if (cases[k].len)
            lbad = la - 5;
        else
            bad[cases[k].off] = cases[k].val;
        const void *mp[2] = {mb, bad};
        size_t lens[2] = {lb, lbad};
        cr_assert_eq(commpress_fl_server_aggregate(s, mp, lens, 2), -3, "%s accepted",
                     cases[k].what);
        void *s1 = save_server(s, &l1);
        cr_assert(memcmp(s0, s1, l0) == 0, "%s changed the server", cases[k].what);
        free(s1);
    }
    const void *dup[2] = {ma, ma};
    size_t dl[2] = {la, la};
    cr_assert_eq(commpress_fl_server_aggregate(s, dup, dl, 2), -3, "duplicate client accepted");
    const void *ok[2] = {ma, mb};
    size_t ol[2] = {la, lb};
    cr_assert_eq(commpress_fl_server_aggregate(s, ok, ol, 2), 0);
    cr_assert_eq(commpress_fl_server_aggregate(s, ok, ol, 2), -3, "stale round accepted");

    /* A failing gradient, and a small buffer: the client is unchanged. */
    void *a0 = save_client(a, &lc0);
    quad_ctx_t qf = {t, 1.0f, 0, 2};
    cr_assert_eq(commpress_fl_client_round(a, x0, commpress_fl_server_control(s), 1,
                                           quad_grad, &qf, ma, cap, &la), -1);
    q.calls = 0;
    cr_assert_lt(commpress_fl_client_round(a, x0, commpress_fl_server_control(s), 1,
                                           quad_grad, &q, ma, 60, &la), 0);
    void *a1 = save_client(a, &lc1);
    cr_assert(memcmp(a0, a1, lc0) == 0, "a failed round changed the client");

    /* Save/load round trips; corrupt or foreign state is refused. */
    commpress_fl_client_t *a2;
    commpress_fl_client_create(&c, 1, &a2);
    cr_assert_eq(commpress_fl_client_load(a2, a1, lc1), 0);
    void *a3 = save_client(a2, &lc0);
    cr_assert(memcmp(a1, a3, lc1) == 0);
    ((unsigned char *)a3)[50] ^= 1;
    cr_assert_eq(commpress_fl_client_load(a2, a3, lc1), -3, "corrupt state accepted");
    cr_assert_eq(commpress_fl_client_load(b, a1, lc1), -3, "another client's state accepted");
    cr_assert_eq(commpress_fl_client_load(a2, a1, lc1 - 1), -3, "truncated state accepted");
    void *sv = save_server(s, &l1);
    commpress_fl_server_t *s2;
    commpress_fl_server_create(&c, t, &s2);
    cr_assert_eq(commpress_fl_server_load(s2, sv, l1), 0);
    cr_assert_eq(commpress_fl_server_round(s2), 1);
    cr_assert_eq(memcmp(commpress_fl_server_model(s2), commpress_fl_server_model(s), d * 4), 0);

    commpress_fl_client_destroy(a), commpress_fl_client_destroy(b);
    commpress_fl_client_destroy(a2);
    commpress_fl_server_destroy(s), commpress_fl_server_destroy(s2);
    free(x0), free(t), free(ma), free(mb), free(bad), free(b0), free(b1), free(s0);
    free(a0), free(a1), free(a3), free(sv);
}

/* ---- Poisoned rounds: refused whole, the client named. ---- */

static int algo_code(const char *algo)
{
    return !strcmp(algo, "scafcom") ? 1 : !strcmp(algo, "scallion") ? 2 : 0;
}

/* A message by hand: fl.c's 40-byte header, then the payload. */
static size_t fl_message(unsigned char *m, uint32_t id, const char *algo, uint64_t round,
                         size_t d, const void *payload, size_t plen)
{
    uint32_t h[4] = {0x4d465043u, 1, id, (uint32_t)algo_code(algo)};
    uint64_t w[3] = {round, d, plen};
    memcpy(m, h, 16);
    memcpy(m + 16, w, 24);
    memcpy(m + 40, payload, plen);
    return 40 + plen;
}

/* A top-k payload of one entry (index, f32 value). */
static size_t topk_one(unsigned char *m, uint32_t id, const char *algo, size_t d,
                       uint32_t idx, float v)
{
    unsigned char pl[12];
    uint32_t k = 1;
    memcpy(pl, &k, 4), memcpy(pl + 4, &idx, 4), memcpy(pl + 8, &v, 4);
    return fl_message(m, id, algo, 0, d, pl, 12);
}

typedef struct {
    float *x, *c;
    uint64_t round;
    unsigned long long bytes, dense;
} snap_t;

static snap_t snap(const commpress_fl_server_t *s, size_t d)
{
    snap_t t = {malloc(d * 4), malloc(d * 4), commpress_fl_server_round(s), 0, 0};
    memcpy(t.x, commpress_fl_server_model(s), d * 4);
    memcpy(t.c, commpress_fl_server_control(s), d * 4);
    commpress_fl_server_uplink(s, &t.bytes, &t.dense);
    return t;
}

/* s is exactly as snapped (bit for bit), and the snap is freed. */
static void assert_unchanged(const commpress_fl_server_t *s, snap_t t, size_t d,
                             const char *what)
{
    unsigned long long b, bd;
    commpress_fl_server_uplink(s, &b, &bd);
    cr_assert_eq(memcmp(commpress_fl_server_model(s), t.x, d * 4), 0, "%s: model", what);
    cr_assert_eq(memcmp(commpress_fl_server_control(s), t.c, d * 4), 0, "%s: control", what);
    cr_assert_eq(commpress_fl_server_round(s), t.round, "%s: round", what);
    cr_assert(b == t.bytes && bd == t.dense, "%s: uplink counters", what);
    free(t.x), free(t.c);
}

enum { BAD_INF, BAD_SUM, BAD_UPDATE };

/* Round 0 of clients 1..3 (real messages), plus bad ones from clients 5
 * (and 6); refused whole with the expected code, reason and client; then
 * the round without the bad messages succeeds and equals a reference
 * server that only ever saw the good ones. */
static void poisoned(const char *algo, const char *comp, int kind)
{
    const size_t d = 64;
    commpress_fl_config_t c = cfg(algo, comp, d);
    /* gamma = lr_global lr_local K = 30: a top-k FLT_MAX / 4 overflows x. */
    c.lr_global = 100.0;
    commpress_fl_server_t *s, *ref;
    commpress_fl_client_t *cl;
    float *x0 = tu_gradient(d, 4), *t = tu_gradient(d, 5);
    size_t cap = commpress_fl_message_max(&c) + 64, lens[5];
    unsigned char *m[5];
    char what[96];
    snprintf(what, sizeof(what), "%s/%s kind %d", algo, comp, kind);

    for (int i = 0; i < 5; i++)
        m[i] = malloc(cap);
    cr_assert_eq(commpress_fl_server_create(&c, x0, &s), 0);
    cr_assert_eq(commpress_fl_server_create(&c, x0, &ref), 0);
    for (int i = 0; i < 3; i++) {
        quad_ctx_t q = {t, 1.0f + (float)i, 0, 0};
        cr_assert_eq(commpress_fl_client_create(&c, (uint32_t)(1 + i), &cl), 0);
        cr_assert_eq(commpress_fl_client_round(cl, commpress_fl_server_model(s),
                                               commpress_fl_server_control(s), 0, quad_grad,
                                               &q, m[i], cap, &lens[i]), 0);
        commpress_fl_client_destroy(cl);
    }
    size_t nbad = 1;
    const char *reason = NULL;
    uint32_t named = 5;
    if (kind == BAD_INF) {
        /* A real message of client 5 whose payload is edited to decode to
         * Inf: each codec's decode accepts this. */
        quad_ctx_t q = {t, 1.0f, 0, 0};
        commpress_fl_client_create(&c, 5, &cl);
        commpress_fl_client_round(cl, commpress_fl_server_model(s),
                                  commpress_fl_server_control(s), 0, quad_grad, &q, m[3],
                                  cap, &lens[3]);
        commpress_fl_client_destroy(cl);
        unsigned char *pl = m[3] + 40;
        if (codec_is(comp, "none")) {
            float inf = INFINITY;
            memcpy(pl + 4 * 7, &inf, 4);
        } else if (codec_is(comp, "fp16")) {
            /* Finite halves (65504), the largest scale: 65504 * 2^127. */
            uint32_t e = 127;
            uint16_t h = 0x7bff;
            memcpy(pl, &e, 4), memcpy(pl + 4 + 2 * 3, &h, 2);
        } else if (codec_is(comp, "bf16")) {
            uint16_t h = 0x7f80; /* bf16 Inf */
            memcpy(pl + 4 + 2 * 3, &h, 2);
        } else if (codec_is(comp, "quant")) {
            /* min + unit q with min = unit = 3e38: finite fields, Inf. */
            float big = 3e38f;
            memcpy(pl, &big, 4), memcpy(pl + 4, &big, 4);
            memset(pl + 8 * ((d + c.bucket - 1) / c.bucket), 0xff, (d * (size_t)c.bits + 7) / 8);
        } else {
            cr_assert_fail("no Inf craft for %s", comp);
        }
        reason = "client 5: its message decodes to a non-finite value";
    } else if (kind == BAD_SUM) {
        /* Two finite top-k messages whose sum overflows: the second is named. */
        lens[3] = topk_one(m[3], 5, algo, d, 9, 3e38f);
        lens[4] = topk_one(m[4], 6, algo, d, 9, 3e38f);
        nbad = 2, named = 6;
        reason = "client 6: the round's sum overflows when its message is added";
    } else {
        lens[3] = topk_one(m[3], 5, algo, d, 9, FLT_MAX);
        reason = "the round's update would make the model non-finite (largest message: "
                 "client 5)";
    }
    /* The bad messages first, in the middle: the order does not matter. */
    const void *all[5] = {m[0], m[3], m[1], nbad == 2 ? m[4] : m[2], nbad == 2 ? m[2] : NULL};
    size_t all_l[5] = {lens[0], lens[3], lens[1], nbad == 2 ? lens[4] : lens[2], lens[2]};
    snap_t before = snap(s, d);
    cr_assert_eq(commpress_fl_server_aggregate(s, all, all_l, 3 + nbad), -9, "%s: rc", what);
    cr_assert_eq(commpress_fl_server_refused(s), (int64_t)named, "%s: client", what);
    cr_assert_str_eq(commpress_fl_server_error(s), reason, "%s", what);
    assert_unchanged(s, before, d, what);

    /* The recommended policy: drop the named message, aggregate again. */
    const void *good[3] = {m[0], m[1], m[2]};
    cr_assert_eq(commpress_fl_server_aggregate(s, good, lens, 3), 0, "%s: %s", what,
                 commpress_fl_server_error(s));
    cr_assert_str_eq(commpress_fl_server_error(s), "");
    cr_assert_eq(commpress_fl_server_refused(s), -1);
    cr_assert_eq(commpress_fl_server_aggregate(ref, good, lens, 3), 0);
    snap_t want = snap(ref, d);
    cr_assert_eq(want.round, 1);
    assert_unchanged(s, want, d, what);
    const float *x = commpress_fl_server_model(s), *cc = commpress_fl_server_control(s);
    for (size_t j = 0; j < d; j++)
        cr_assert(isfinite(x[j]) && isfinite(cc[j]), "%s: non-finite state", what);

    for (int i = 0; i < 5; i++)
        free(m[i]);
    commpress_fl_server_destroy(s), commpress_fl_server_destroy(ref);
    free(x0), free(t);
}

static const char *const fl_algos[] = {"fedavg", "scafcom", "scallion"};

Test(fl, message_decoding_to_inf_is_refused)
{
    static const char *const comps[] = {"none", "fp16", "bf16", "quant"};
    for (int a = 0; a < 3; a++)
        for (int k = 0; k < 4; k++)
            poisoned(fl_algos[a], comps[k], BAD_INF);
}

Test(fl, overflowing_sum_is_refused)
{
    for (int a = 0; a < 3; a++)
        poisoned(fl_algos[a], "topk", BAD_SUM);
}

Test(fl, overflowing_update_is_refused)
{
    for (int a = 0; a < 3; a++)
        poisoned(fl_algos[a], "topk", BAD_UPDATE);
}

/* Malformed messages name their client too (or -1 when there is none). */
Test(fl, malformed_message_names_its_client)
{
    const size_t d = 16;
    commpress_fl_config_t c = cfg("scafcom", "topk", d);
    commpress_fl_server_t *s;
    float *x0 = tu_gradient(d, 6);
    unsigned char a[64], b[64];
    commpress_fl_server_create(&c, x0, &s);
    size_t la = topk_one(a, 3, "scafcom", d, 1, 1.0f), lb = topk_one(b, 4, "scafcom", d, 2, 1.0f);
    b[16] = 9; /* round 9 */
    const void *mp[2] = {a, b};
    size_t l[2] = {la, lb};
    cr_assert_eq(commpress_fl_server_aggregate(s, mp, l, 2), -3);
    cr_assert_eq(commpress_fl_server_refused(s), 4);
    cr_assert_str_eq(commpress_fl_server_error(s),
                     "client 4: message of round 9, the server is at round 0");
    b[16] = 0;
    b[0] ^= 1; /* magic */
    cr_assert_eq(commpress_fl_server_aggregate(s, mp, l, 2), -3);
    cr_assert_eq(commpress_fl_server_refused(s), -1);
    cr_assert_str_eq(commpress_fl_server_error(s),
                     "message 1: not a commpress FL message (magic)");
    b[0] ^= 1;
    cr_assert_eq(commpress_fl_server_aggregate(s, mp, l, 2), 0);
    cr_assert_str_eq(commpress_fl_server_error(s), "");
    /* A non-finite initial model is refused. */
    commpress_fl_server_t *s2 = (void *)1;
    x0[3] = NAN;
    cr_assert_eq(commpress_fl_server_create(&c, x0, &s2), -1);
    cr_assert_null(s2);
    commpress_fl_server_destroy(s);
    free(x0);
}

/* Sets float i of a checkpoint's arrays (after the magic and three
 * header words) and recomputes the checksum: a crafted, well-sealed blob. */
static void poke(void *blob, size_t len, size_t i, float v)
{
    memcpy((unsigned char *)blob + 32 + 4 * i, &v, 4);
    uint64_t f = cp_fnv1a(blob, len - 8);
    memcpy((unsigned char *)blob + len - 8, &f, 8);
}

Test(fl, non_finite_checkpoints_are_refused)
{
    const size_t d = 32;
    for (int a = 0; a < 3; a++) {
        commpress_fl_config_t c = cfg(fl_algos[a], "topk", d);
        commpress_fl_server_t *s;
        commpress_fl_client_t *cl;
        float *x0 = tu_gradient(d, 7), *t = tu_gradient(d, 8);
        size_t cap = commpress_fl_message_max(&c), len, ls, lc, l2;
        unsigned char *m = malloc(cap);
        quad_ctx_t q = {t, 1.0f, 0, 0};
        commpress_fl_server_create(&c, x0, &s);
        commpress_fl_client_create(&c, 2, &cl);
        commpress_fl_client_round(cl, x0, commpress_fl_server_control(s), 0, quad_grad, &q,
                                  m, cap, &len);
        const void *mp[1] = {m};
        cr_assert_eq(commpress_fl_server_aggregate(s, mp, &len, 1), 0);
        float *sv = save_server(s, &ls), *cv = save_client(cl, &lc);
        /* Server: NaN in x, Inf in c. */
        float bad[2][2] = {{5, NAN}, {(float)d + 7, -INFINITY}};
        for (int k = 0; k < 2; k++) {
            float *blob = malloc(ls);
            memcpy(blob, sv, ls);
            poke(blob, ls, (size_t)bad[k][0], bad[k][1]);
            cr_assert_eq(commpress_fl_server_load(s, blob, ls), -3, "%s: server %d",
                         fl_algos[a], k);
            cr_assert_str_eq(commpress_fl_server_error(s),
                             "checkpoint: a non-finite model or control variate");
            float *now = save_server(s, &l2);
            cr_assert_eq(memcmp(now, sv, ls), 0, "refused load changed the server");
            free(blob), free(now);
        }
        /* Client: NaN in c_i (and in v_i for scafcom). */
        const size_t nfl = (lc - 40) / 4;
        for (size_t i = 0; i < nfl; i += d) {
            float *blob = malloc(lc);
            memcpy(blob, cv, lc);
            poke(blob, lc, i + 3, NAN);
            cr_assert_eq(commpress_fl_client_load(cl, blob, lc), -3, "%s: client float %zu",
                         fl_algos[a], i + 3);
            float *now = save_client(cl, &l2);
            cr_assert_eq(memcmp(now, cv, lc), 0, "refused load changed the client");
            free(blob), free(now);
        }
        cr_assert_eq(commpress_fl_server_load(s, sv, ls), 0);
        cr_assert_eq(commpress_fl_client_load(cl, cv, lc), 0);
        commpress_fl_server_destroy(s), commpress_fl_client_destroy(cl);
        free(x0), free(t), free(m), free(sv), free(cv);
    }
}

Test(fl, invalid_configuration)
{
    commpress_fl_config_t c = cfg("scafcom", "topk", 10);
    commpress_fl_client_t *cl = (void *)1;
    c.algorithm = "fedprox";
    cr_assert_eq(commpress_fl_client_create(&c, 0, &cl), -1);
    cr_assert_null(cl);
    c = cfg("scafcom", "zip", 10);
    cr_assert_eq(commpress_fl_client_create(&c, 0, &cl), -1);
    c = cfg("scafcom", "dgc", 10); /* its momentum is a collective's state */
    cr_assert_eq(commpress_fl_client_create(&c, 0, &cl), -1);
    c = cfg("scafcom", "topk", 10);
    c.beta = 0;
    cr_assert_eq(commpress_fl_client_create(&c, 0, &cl), -1);
    c = cfg("scallion", "quant", 0);
    cr_assert_eq(commpress_fl_client_create(&c, 0, &cl), -1);
    cr_assert_eq(commpress_fl_message_max(&c), 0);
}

/* Heterogeneous quadratics (different optima and curvatures), N = 20,
 * S = 5 per round, K = 5: the optimum of the mean loss is
 * sum a_i t_i / sum a_i. SCAFCOM (top-k 10%) gets close; FedAvg with top-k
 * and no feedback stays far (its compressed steps lose most of each
 * update, and client drift biases it). Margins from the measured run. */
static double fl_distance(const char *algo, const char *comp, int rounds)
{
    const size_t d = 100, N = 20, S = 5;
    commpress_fl_config_t c = cfg(algo, comp, d);
    c.num_clients = N;
    c.local_steps = 5;
    c.lr_global = 1.0;
    c.beta = 0.2;
    float *t[20], a[20], *x0 = calloc(d, 4), *opt = calloc(d, 4);
    commpress_fl_client_t *cl[20];
    commpress_fl_server_t *s;
    size_t cap = commpress_fl_message_max(&c), lens[5];
    unsigned char *msg[5];
    double asum = 0;
    uint64_t rs = 77;

    for (size_t i = 0; i < N; i++) {
        t[i] = tu_gradient(d, 500 + i);
        for (size_t j = 0; j < d; j++)
            t[i][j] *= 1000.0f; /* optima ~ N(0, 1) */
        a[i] = 0.5f + (float)(i % 4);
        asum += a[i];
        commpress_fl_client_create(&c, (uint32_t)i, &cl[i]);
    }
    for (size_t j = 0; j < d; j++) {
        double acc = 0;
        for (size_t i = 0; i < N; i++)
            acc += a[i] * t[i][j];
        opt[j] = (float)(acc / asum);
    }
    for (size_t k = 0; k < S; k++)
        msg[k] = malloc(cap);
    commpress_fl_server_create(&c, x0, &s);
    for (int r = 0; r < rounds; r++) {
        size_t pick[5];
        for (size_t k = 0; k < S; k++) { /* S distinct clients */
            int fresh;
            do {
                pick[k] = tu_next(&rs) % N;
                fresh = 1;
                for (size_t m = 0; m < k; m++)
                    fresh &= pick[m] != pick[k];
            } while (!fresh);
            quad_ctx_t q = {t[pick[k]], a[pick[k]], 0, 0};
            cr_assert_eq(commpress_fl_client_round(cl[pick[k]], commpress_fl_server_model(s),
                                                   commpress_fl_server_control(s),
                                                   commpress_fl_server_round(s), quad_grad,
                                                   &q, msg[k], cap, &lens[k]), 0);
        }
        cr_assert_eq(commpress_fl_server_aggregate(s, (const void *const *)msg, lens, S), 0);
    }
    double dist = 0, norm = 0;
    const float *x = commpress_fl_server_model(s);
    for (size_t j = 0; j < d; j++)
        dist += (x[j] - opt[j]) * (double)(x[j] - opt[j]), norm += opt[j] * (double)opt[j];
    for (size_t i = 0; i < N; i++)
        commpress_fl_client_destroy(cl[i]), free(t[i]);
    for (size_t k = 0; k < S; k++)
        free(msg[k]);
    commpress_fl_server_destroy(s);
    free(x0), free(opt);
    return sqrt(dist / norm);
}

Test(fl, scafcom_converges_where_compressed_fedavg_does_not)
{
    double scafcom = fl_distance("scafcom", "topk", 300);
    double scaffold = fl_distance("scafcom", "none", 300);
    double fedavg = fl_distance("fedavg", "topk", 300);
    cr_log_info("relative distance to the optimum after 300 rounds: SCAFCOM %.3g, "
                "SCAFFOLD %.3g, FedAvg top-k %.3g", scafcom, scaffold, fedavg);
    printf("relative distance after 300 rounds: SCAFCOM %.3g, SCAFFOLD (scafcom, "
           "none) %.3g, FedAvg+topk %.3g\n", scafcom, scaffold, fedavg);
    cr_assert_lt(scaffold, 0.005);
    cr_assert_lt(scafcom, 0.05);
    cr_assert_gt(fedavg, 4 * scafcom);
}
