/* SCAFCOM and SCALLION (Huang, Li, Li; ICLR 2024; ALGORITHMS.md) and FedAvg,
 * with any commpress codec on the uplink. Per client i of N, K local steps
 * of lr eta_l from the global model x with global control variate c:
 *   y <- x; K times: y <- y - eta_l (g_i(y) - c_i + c)
 *   d_i = (x - y) / (eta_l K)
 *   SCAFCOM:  v_i <- (1 - beta) v_i + beta (d_i + c_i - c);
 *             delta = C(v_i - c_i);  c_i <- c_i + delta
 *   SCALLION: delta = C(d_i - c);    c_i <- c_i + alpha delta
 *   FedAvg:   delta = C(d_i)         (no control variates: c_i = c = 0)
 * Server, over the S messages of a round (gamma = eta_g eta_l K):
 *   x <- x - gamma (c + (1/S) sum delta);  c <- c + (alpha/N) sum delta
 * (alpha = 1 for SCAFCOM, c stays 0 for FedAvg).
 * delta above is what the receiver decodes, D(C(.)), on both sides.
 *
 * Message: [u32 magic][u32 version][u32 client][u32 algorithm]
 *          [u64 round][u64 dim][u64 payload bytes] + codec payload. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compressors/codec_math.h"
#include "compressors/compressor.h"
#include "compressors/feedback.h"
#include "collectives/coll_config.h"
#include "include/commpress_fl.h"
#include "optim/state_blob.h"
#include "util/hd.h"

enum { FL_FEDAVG = 0, FL_SCAFCOM = 1, FL_SCALLION = 2 };
#define FL_MAGIC 0x4d465043u /* the bytes "CPFM", little-endian */
#define FL_VERSION 1u
#define FL_HDR 40

typedef struct {
    int algo;
    const cp_compressor_ops_t *codec;
    cp_params_t p;
    commpress_fl_config_t c;
} fl_setup_t;

struct commpress_fl_client {
    fl_setup_t s;
    uint32_t id;
    float *ci, *vi;           /* state */
    float *y, *g, *u, *dec;   /* round scratch */
    void *scratch;
};

struct commpress_fl_server {
    fl_setup_t s;
    float *x, *c, *sum;
    float *tmp;     /* one message decoded alone (diagnosis of a refusal) */
    uint64_t round;
    unsigned long long bytes, bytes_dense;
    uint32_t *seen; /* client ids of the round being aggregated */
    int64_t refused;  /* the client named by the last refusal, or -1 */
    char error[192];  /* why the last aggregate/load failed; "" on success */
};

void commpress_fl_config_default(commpress_fl_config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->algorithm = "scafcom";
    c->compressor = "topk";
    c->density = 0.01;
    c->bits = 4;
    c->bucket = 512;
    c->num_clients = 100;
    c->local_steps = 10;
    c->lr_local = 0.1;
    c->lr_global = 1.0;
    c->beta = 0.2;
    c->alpha = 0.1;
}

/* The codec through the collectives' one builder (the same rows, the same
 * validation as the environment and the API). Top-k selects exactly: a
 * client's message must not depend on a sample. */
static cp_status_t codec_setup(const commpress_fl_config_t *c, fl_setup_t *s)
{
    cp_coll_settings_t set;
    cp_coll_config_t coll;
    cp_status_t st = CP_OK;
#define SET(...) cp_coll_settings_setf(&set, &st, __VA_ARGS__)
    cp_coll_settings_defaults(&set);
    SET("COMMPRESS_COMPRESSOR", "%s", c->compressor);
    SET("COMMPRESS_DENSITY", "%.17g", c->density);
    SET("COMMPRESS_RANDK_DENSITY", "%.17g", c->density);
    SET("COMMPRESS_BITS", "%d", c->bits);
    SET("COMMPRESS_BUCKET", "%zu", c->bucket);
    SET("COMMPRESS_ROUNDING", "%s", c->stochastic ? "stochastic" : "nearest");
    SET("COMMPRESS_TOPK_VALUES", "%s", c->topk_fp16 ? "fp16" : "f32");
    SET("COMMPRESS_TOPK_SELECT", "%s", "exact");
#undef SET
    if (st != CP_OK || cp_coll_build(&set, &coll, NULL, 0) != CP_OK ||
        coll.codec->feedback != NULL) /* a codec that fixes its feedback */
        return CP_ERR_INVALID;
    s->codec = coll.codec;
    s->p = coll.params;
    return CP_OK;
}

static cp_status_t setup(const commpress_fl_config_t *c, fl_setup_t *s)
{
    static const char *const algos[] = {"fedavg", "scafcom", "scallion"};
    if (c == NULL || c->algorithm == NULL || c->compressor == NULL)
        return CP_ERR_INVALID;
    memset(s, 0, sizeof(*s));
    s->algo = -1;
    for (int i = 0; i < 3; i++)
        if (strcmp(c->algorithm, algos[i]) == 0)
            s->algo = i;
    if (s->algo < 0 || c->dim == 0 || c->dim > UINT32_MAX ||
        c->num_clients == 0 || c->local_steps < 1 || !(c->lr_local > 0) ||
        !(c->lr_global > 0) || !isfinite(c->lr_local) ||
        !isfinite(c->lr_global) || !(c->beta > 0 && c->beta <= 1) ||
        !(c->alpha > 0 && c->alpha <= 1) || codec_setup(c, s) != CP_OK)
        return CP_ERR_INVALID;
    s->c = *c;
    return CP_OK;
}

size_t commpress_fl_message_max(const commpress_fl_config_t *c)
{
    fl_setup_t s;
    if (setup(c, &s) != CP_OK)
        return 0;
    return FL_HDR + s.codec->max_size(&s.p, c->dim);
}

/* Checkpoints: optim/state_blob.h with three header words (dim,
 * algorithm, and the client id or the server round). The checksum proves
 * integrity, not origin: a crafted checkpoint with Inf/NaN is refused too. */
static int blob_nonfinite(const unsigned char *p, size_t n)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad |= (uint32_t)cp_nonfinite(cp_get_f32(p + 4 * i));
    return bad != 0;
}

/* ---- client ---- */

static size_t client_floats(const commpress_fl_client_t *cl)
{
    return cl->s.c.dim * (cl->s.algo == FL_SCAFCOM ? 2 : 1);
}

void commpress_fl_client_destroy(commpress_fl_client_t *cl)
{
    if (cl == NULL)
        return;
    free(cl->ci), free(cl->vi), free(cl->y), free(cl->g), free(cl->u);
    free(cl->dec), free(cl->scratch);
    free(cl);
}

int commpress_fl_client_create(const commpress_fl_config_t *c, uint32_t id,
                               commpress_fl_client_t **cl_p)
{
    commpress_fl_client_t *cl;
    if (cl_p == NULL)
        return CP_ERR_INVALID;
    *cl_p = NULL;
    cl = calloc(1, sizeof(*cl));
    if (cl == NULL)
        return CP_ERR_NOMEM;
    cp_status_t st = setup(c, &cl->s);
    if (st != CP_OK) {
        free(cl);
        return st;
    }
    const size_t d = c->dim;
    cl->id = id;
    cl->ci = calloc(d, 4);
    cl->vi = calloc(d, 4);
    cl->y = malloc(d * 4);
    cl->g = malloc(d * 4);
    cl->u = malloc(d * 4);
    cl->dec = malloc(d * 4);
    cl->scratch = malloc(cl->s.codec->scratch_size(&cl->s.p, d) + 1);
    if (!cl->ci || !cl->vi || !cl->y || !cl->g || !cl->u || !cl->dec ||
        !cl->scratch) {
        commpress_fl_client_destroy(cl);
        return CP_ERR_NOMEM;
    }
    *cl_p = cl;
    return CP_OK;
}

int commpress_fl_client_round(commpress_fl_client_t *cl, const float *x,
                              const float *c, uint64_t round,
                              commpress_fl_grad_t grad, void *user, void *msg,
                              size_t cap, size_t *len)
{
    if (cl == NULL || x == NULL || c == NULL || grad == NULL || msg == NULL ||
        len == NULL)
        return CP_ERR_INVALID;
    const size_t d = cl->s.c.dim;
    const int algo = cl->s.algo, K = cl->s.c.local_steps;
    const float lr = (float)cl->s.c.lr_local;
    const float inv = (float)(1.0 / (cl->s.c.lr_local * K));
    const float beta = (float)cl->s.c.beta, alpha = (float)cl->s.c.alpha;
    const float *cg = algo == FL_FEDAVG ? NULL : c; /* FedAvg: c = c_i = 0 */
    float *y = cl->y, *g = cl->g, *u = cl->u;
    size_t plen;

    if (cap < FL_HDR)
        return CP_ERR_NOSPACE;
    memcpy(y, x, d * 4);
    for (int k = 0; k < K; k++) {
        if (grad(user, y, g, d) != 0)
            return CP_ERR_INVALID;
        if (cg)
            for (size_t j = 0; j < d; j++)
                y[j] -= lr * ((g[j] - cl->ci[j]) + cg[j]);
        else
            for (size_t j = 0; j < d; j++)
                y[j] -= lr * g[j];
    }
    /* u: the vector to compress. SCAFCOM's new v_i goes to y (no longer
     * needed) and is committed only on success. */
    for (size_t j = 0; j < d; j++) {
        float di = (x[j] - y[j]) * inv;
        if (algo == FL_SCAFCOM) {
            y[j] = (1.0f - beta) * cl->vi[j] + beta * ((di + cl->ci[j]) - c[j]);
            u[j] = y[j] - cl->ci[j];
        } else if (algo == FL_SCALLION)
            u[j] = di - c[j];
        else
            u[j] = di;
    }
    if (cp_any_nonfinite(u, d))
        return CP_ERR_INVALID;
    cp_params_t p = cl->s.p;
    p.seed = cp_seed_mix(cl->s.c.seed, (int)cl->id, 7, 0, round, d);
    /* The same for every client of a round (randk's indices). */
    p.shared_seed = cp_seed_mix(cl->s.c.seed, -1, 7, 0, round, d);
    unsigned char *m = msg;
    CP_CHECK(cl->s.codec->encode(&p, u, d, m + FL_HDR, cap - FL_HDR, &plen,
                                 cl->scratch));
    CP_CHECK(cl->s.codec->decode(&p, m + FL_HDR, plen, 1.0f, NULL, cl->dec, d));
    /* The new c_i must be finite before anything is committed: a sum that
     * overflows (a huge u) leaves the client as it was. */
    if (algo != FL_FEDAVG) {
        const float a = algo == FL_SCAFCOM ? 1.0f : alpha;
        uint32_t bad = 0;
        for (size_t j = 0; j < d; j++)
            bad |= (uint32_t)cp_nonfinite(cl->ci[j] + a * cl->dec[j]);
        if (bad)
            return CP_ERR_INVALID;
    }
    /* Commit: the client keeps what the server will decode. */
    for (size_t j = 0; j < d; j++) {
        if (algo == FL_SCAFCOM) {
            cl->vi[j] = y[j];
            cl->ci[j] = cl->ci[j] + cl->dec[j];
        } else if (algo == FL_SCALLION) {
            cl->ci[j] = cl->ci[j] + alpha * cl->dec[j];
        }
    }
    cp_put_u32(m, FL_MAGIC);
    cp_put_u32(m + 4, FL_VERSION);
    cp_put_u32(m + 8, cl->id);
    cp_put_u32(m + 12, (uint32_t)algo);
    uint64_t w[3] = {round, d, plen};
    memcpy(m + 16, w, 24);
    *len = FL_HDR + plen;
    return CP_OK;
}

int commpress_fl_client_save(const commpress_fl_client_t *cl, void *buf,
                             size_t cap, size_t *len)
{
    if (cl == NULL || len == NULL)
        return CP_ERR_INVALID;
    *len = cp_blob_size(3, client_floats(cl));
    if (buf == NULL)
        return CP_OK;
    if (cap < *len)
        return CP_ERR_NOSPACE;
    uint64_t h[3] = {cl->s.c.dim, (uint64_t)cl->s.algo, cl->id};
    const float *arr[2] = {cl->ci, cl->vi};
    size_t lens[2] = {cl->s.c.dim, cl->s.c.dim};
    cp_blob_write(buf, "CPFLCLNT", h, 3, arr, lens, cl->s.algo == FL_SCAFCOM ? 2 : 1);
    return CP_OK;
}

int commpress_fl_client_load(commpress_fl_client_t *cl, const void *buf,
                             size_t len)
{
    uint64_t h[3];
    const unsigned char *p;
    if (cl == NULL)
        return CP_ERR_INVALID;
    CP_CHECK(cp_blob_check(buf, len, "CPFLCLNT", 3, client_floats(cl), h, &p));
    if (h[0] != cl->s.c.dim || h[1] != (uint64_t)cl->s.algo || h[2] != cl->id ||
        blob_nonfinite(p, client_floats(cl)))
        return CP_ERR_MALFORMED;
    memcpy(cl->ci, p, 4 * cl->s.c.dim);
    if (cl->s.algo == FL_SCAFCOM)
        memcpy(cl->vi, p + 4 * cl->s.c.dim, 4 * cl->s.c.dim);
    return CP_OK;
}

/* ---- server ---- */

void commpress_fl_server_destroy(commpress_fl_server_t *s)
{
    if (s == NULL)
        return;
    free(s->x), free(s->c), free(s->sum), free(s->tmp), free(s->seen);
    free(s);
}

int commpress_fl_server_create(const commpress_fl_config_t *c, const float *x0,
                               commpress_fl_server_t **s_p)
{
    commpress_fl_server_t *s;
    if (s_p == NULL || x0 == NULL)
        return CP_ERR_INVALID;
    *s_p = NULL;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return CP_ERR_NOMEM;
    cp_status_t st = setup(c, &s->s);
    if (st == CP_OK && cp_any_nonfinite(x0, c->dim))
        st = CP_ERR_INVALID; /* every round would be refused */
    if (st != CP_OK) {
        free(s);
        return st;
    }
    s->x = malloc(c->dim * 4);
    s->c = calloc(c->dim, 4);
    s->sum = malloc(c->dim * 4);
    s->tmp = malloc(c->dim * 4);
    s->refused = -1;
    if (s->x == NULL || s->c == NULL || s->sum == NULL || s->tmp == NULL) {
        commpress_fl_server_destroy(s);
        return CP_ERR_NOMEM;
    }
    memcpy(s->x, x0, c->dim * 4);
    *s_p = s;
    return CP_OK;
}

const float *commpress_fl_server_model(const commpress_fl_server_t *s)
{
    return s ? s->x : NULL;
}

const float *commpress_fl_server_control(const commpress_fl_server_t *s)
{
    return s ? s->c : NULL;
}

uint64_t commpress_fl_server_round(const commpress_fl_server_t *s)
{
    return s ? s->round : 0;
}

const char *commpress_fl_server_error(const commpress_fl_server_t *s)
{
    return s ? s->error : "no server";
}

int64_t commpress_fl_server_refused(const commpress_fl_server_t *s)
{
    return s ? s->refused : -1;
}

/* Records why the call failed (one line, the client it names or -1) and
 * returns st. */
static int refuse(commpress_fl_server_t *s, cp_status_t st, int64_t client,
                  const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof(s->error), fmt, ap);
    va_end(ap);
    s->refused = client;
    return st;
}

/* Header of one message (the i-th of the call); the payload's own bounds
 * are the codec's. The client is the id the header claims. */
static int check_header(commpress_fl_server_t *s, size_t i,
                        const unsigned char *m, size_t len, uint32_t *id)
{
    uint64_t w[3];
    if (m == NULL || len < FL_HDR)
        return refuse(s, CP_ERR_MALFORMED, -1,
                      "message %zu: shorter than the %d-byte header", i, FL_HDR);
    if (cp_get_u32(m) != FL_MAGIC)
        return refuse(s, CP_ERR_MALFORMED, -1,
                      "message %zu: not a commpress FL message (magic)", i);
    *id = cp_get_u32(m + 8);
    memcpy(w, m + 16, 24);
    if (cp_get_u32(m + 4) != FL_VERSION)
        return refuse(s, CP_ERR_MALFORMED, *id, "client %" PRIu32
                      ": message version %" PRIu32 ", expected %u", *id,
                      cp_get_u32(m + 4), FL_VERSION);
    if (cp_get_u32(m + 12) != (uint32_t)s->s.algo)
        return refuse(s, CP_ERR_MALFORMED, *id,
                      "client %" PRIu32 ": message of another algorithm", *id);
    if (w[0] != s->round)
        return refuse(s, CP_ERR_MALFORMED, *id, "client %" PRIu32
                      ": message of round %" PRIu64 ", the server is at round %"
                      PRIu64, *id, w[0], s->round);
    if (w[1] != s->s.c.dim)
        return refuse(s, CP_ERR_MALFORMED, *id, "client %" PRIu32
                      ": message of dimension %" PRIu64 ", the model has %zu",
                      *id, w[1], s->s.c.dim);
    if (w[2] != len - FL_HDR)
        return refuse(s, CP_ERR_MALFORMED, *id, "client %" PRIu32
                      ": payload of %" PRIu64 " bytes in a %zu-byte message",
                      *id, w[2], len);
    if (*id >= s->s.c.num_clients)
        return refuse(s, CP_ERR_MALFORMED, *id, "client %" PRIu32
                      ": id beyond num_clients (%zu)", *id, s->s.c.num_clients);
    return CP_OK;
}

static cp_status_t decode_one(commpress_fl_server_t *s, size_t i,
                              const void *const *msgs, const size_t *lens,
                              const float *y, float *out)
{
    cp_params_t p = s->s.p;
    const size_t d = s->s.c.dim;
    p.seed = cp_seed_mix(s->s.c.seed, (int)s->seen[i], 7, 0, s->round, d);
    return s->s.codec->decode(&p, (const unsigned char *)msgs[i] + FL_HDR,
                              lens[i] - FL_HDR, 1.0f, y, out, d);
}

/* The round's update, one element; the same expression checks and commits
 * (the build has -ffp-contract=off: recomputing gives the same bits). */
static inline float x_next(float x, float c, float sum, float gamma, float invs)
{
    return x - gamma * (c + sum * invs);
}

static inline float c_next(float c, float sum, float an)
{
    return c + an * sum;
}

/* The slow path of a refused round (every message has passed its header
 * and decode checks, and some committed value would be non-finite): which
 * client to name. First a message that decodes to Inf/NaN on its own,
 * then the message whose addition makes the sum overflow (in the order
 * given), else the update itself overflows: the client of the largest
 * message (largest |value|) is named. */
static int diagnose(commpress_fl_server_t *s, const void *const *msgs,
                    const size_t *lens, size_t count)
{
    const size_t d = s->s.c.dim;
    size_t largest = 0;
    float amax = -1.0f;
    for (size_t i = 0; i < count; i++) {
        if (decode_one(s, i, msgs, lens, NULL, s->tmp) != CP_OK)
            break; /* cannot happen: it decoded a moment ago */
        if (cp_any_nonfinite(s->tmp, d))
            return refuse(s, CP_ERR_NONFINITE, s->seen[i], "client %" PRIu32
                          ": its message decodes to a non-finite value",
                          s->seen[i]);
        float m = 0.0f;
        for (size_t j = 0; j < d; j++)
            m = fmaxf(m, fabsf(s->tmp[j]));
        if (m > amax)
            amax = m, largest = i;
    }
    for (size_t i = 0; i < count; i++) {
        if (decode_one(s, i, msgs, lens, i == 0 ? NULL : s->sum, s->sum) != CP_OK)
            break;
        if (cp_any_nonfinite(s->sum, d))
            return refuse(s, CP_ERR_NONFINITE, s->seen[i], "client %" PRIu32
                          ": the round's sum overflows when its message is "
                          "added", s->seen[i]);
    }
    return refuse(s, CP_ERR_NONFINITE, s->seen[largest],
                  "the round's update would make the model non-finite (largest "
                  "message: client %" PRIu32 ")", s->seen[largest]);
}

int commpress_fl_server_aggregate(commpress_fl_server_t *s,
                                  const void *const *msgs, const size_t *lens,
                                  size_t count)
{
    if (s == NULL)
        return CP_ERR_INVALID;
    s->error[0] = '\0';
    s->refused = -1;
    if (msgs == NULL || lens == NULL || count == 0)
        return refuse(s, CP_ERR_INVALID, -1, "no messages");
    const size_t d = s->s.c.dim;
    uint32_t *seen = realloc(s->seen, count * sizeof(uint32_t));
    if (seen == NULL)
        return refuse(s, CP_ERR_NOMEM, -1, "out of memory");
    s->seen = seen;
    /* Decode everything into the sum first: state changes only after
     * every message has passed. */
    for (size_t i = 0; i < count; i++) {
        const unsigned char *m = msgs[i];
        int st = check_header(s, i, m, lens[i], &seen[i]);
        if (st != CP_OK)
            return st;
        for (size_t k = 0; k < i; k++)
            if (seen[k] == seen[i]) /* one message per client */
                return refuse(s, CP_ERR_MALFORMED, seen[i], "client %" PRIu32
                              ": a second message in the round", seen[i]);
        if (decode_one(s, i, msgs, lens, i == 0 ? NULL : s->sum, s->sum) != CP_OK)
            return refuse(s, CP_ERR_MALFORMED, seen[i], "client %" PRIu32
                          ": its %s payload is malformed", seen[i],
                          s->s.codec->name);
    }
    const float gamma = (float)(s->s.c.lr_global * s->s.c.lr_local *
                                s->s.c.local_steps);
    const float invs = 1.0f / (float)count;
    const float a = s->s.algo == FL_SCALLION ? (float)s->s.c.alpha : 1.0f;
    const float an = a / (float)s->s.c.num_clients;
    const int fedavg = s->s.algo == FL_FEDAVG; /* c stays 0 */
    /* Every value to be committed is checked first, in one branch-free
     * pass. x and c are finite (create, load and every round keep them so),
     * so a finite new x means c + sum / S and the sum are finite; and the
     * new c is then finite too: the client ids are distinct and below N,
     * so S <= N and 0 < an <= invs, and c + an sum lies between c and
     * c + invs sum (rounding is monotonic). */
    uint32_t bad = 0;
    for (size_t j = 0; j < d; j++)
        bad |= (uint32_t)cp_nonfinite(x_next(s->x[j], s->c[j], s->sum[j], gamma, invs));
    if (bad)
        return diagnose(s, msgs, lens, count);
    for (size_t j = 0; j < d; j++) {
        s->x[j] = x_next(s->x[j], s->c[j], s->sum[j], gamma, invs);
        if (!fedavg)
            s->c[j] = c_next(s->c[j], s->sum[j], an);
    }
    for (size_t i = 0; i < count; i++)
        s->bytes += lens[i];
    s->bytes_dense += (unsigned long long)count * 4 * d;
    s->round++;
    return CP_OK;
}

int commpress_fl_server_save(const commpress_fl_server_t *s, void *buf,
                             size_t cap, size_t *len)
{
    if (s == NULL || len == NULL)
        return CP_ERR_INVALID;
    *len = cp_blob_size(3, 2 * s->s.c.dim);
    if (buf == NULL)
        return CP_OK;
    if (cap < *len)
        return CP_ERR_NOSPACE;
    uint64_t h[3] = {s->s.c.dim, (uint64_t)s->s.algo, s->round};
    const float *arr[2] = {s->x, s->c};
    size_t lens[2] = {s->s.c.dim, s->s.c.dim};
    cp_blob_write(buf, "CPFLSRVR", h, 3, arr, lens, 2);
    return CP_OK;
}

int commpress_fl_server_load(commpress_fl_server_t *s, const void *buf,
                             size_t len)
{
    uint64_t h[3];
    const unsigned char *p;
    if (s == NULL)
        return CP_ERR_INVALID;
    s->error[0] = '\0';
    s->refused = -1;
    if (cp_blob_check(buf, len, "CPFLSRVR", 3, 2 * s->s.c.dim, h, &p) != CP_OK)
        return refuse(s, CP_ERR_MALFORMED, -1,
                      "checkpoint: truncated, corrupt or not a server's");
    if (h[0] != s->s.c.dim || h[1] != (uint64_t)s->s.algo)
        return refuse(s, CP_ERR_MALFORMED, -1,
                      "checkpoint: of another dimension or algorithm");
    if (blob_nonfinite(p, 2 * s->s.c.dim))
        return refuse(s, CP_ERR_MALFORMED, -1,
                      "checkpoint: a non-finite model or control variate");
    memcpy(s->x, p, 4 * s->s.c.dim);
    memcpy(s->c, p + 4 * s->s.c.dim, 4 * s->s.c.dim);
    s->round = h[2];
    return CP_OK;
}

void commpress_fl_server_uplink(const commpress_fl_server_t *s,
                                unsigned long long *bytes,
                                unsigned long long *bytes_dense)
{
    *bytes = s ? s->bytes : 0;
    *bytes_dense = s ? s->bytes_dense : 0;
}
