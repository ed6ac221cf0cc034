#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collectives/coll_config.h"
#include "util/hd.h"

/* ---- the collective's own rows ---- */

static const char *compressor_choice(int i)
{
    const cp_compressor_ops_t *c = i >= 0 ? cp_compressor_at((size_t)i) : NULL;
    return c ? c->name : NULL;
}

/* "auto", then every variant a user may pick (not DGC's, which only the
 * dgc codec fixes). */
const cp_feedback_ops_t *cp_coll_feedback_choice(int i)
{
    for (size_t k = 0, seen = 0; k < cp_feedback_count(); k++) {
        const cp_feedback_ops_t *f = cp_feedback_at(k);
        if (f->flags & CP_FB_FIXED)
            continue;
        if ((int)++seen == i)
            return f;
    }
    return NULL;
}

static const char *feedback_choice(int i)
{
    if (i == 0)
        return "auto";
    const cp_feedback_ops_t *f = i > 0 ? cp_coll_feedback_choice(i) : NULL;
    return f ? f->name : NULL;
}

/* In cp_algo_t's order. */
static const char *const algo_choices[] = {"auto", "sparse", "twophase",
                                           "dense", "sparse_rs", NULL};
static const char *const adapt_choices[] = {"none", "lgreco", NULL};
static const char *const pipeline_choices[] = {"off", "on", NULL};

#define OFF(m) offsetof(cp_coll_settings_t, m)
static const cp_param_t coll_rows[] = {
    {.name = "COMMPRESS_COMPRESSOR", .dflt = "none", .type = CP_PT_ENUM,
     .offset = OFF(compressor), .choice = compressor_choice, .must_match = 1,
     .doc = "Compressor for MPI_FLOAT/MPI_SUM allreduce. none: exact "
            "pass-through. commpress-info lists what each one is."},
    {.name = "COMMPRESS_FEEDBACK", .dflt = "auto", .type = CP_PT_ENUM,
     .offset = OFF(feedback), .choice = feedback_choice, .must_match = 1,
     .doc = "Error feedback. auto: the compressor's default, which "
            "commpress-info shows (ef for the biased ones, none for the "
            "casts); dgc keeps its own and accepts only auto. ef21, "
            "econtrol and ef21-sgdm return the aggregated estimator; "
            "ef21-sgdm is the one for stochastic gradients "
            "(docs/feedback.md)."},
    {.name = "COMMPRESS_ALLREDUCE_ALGO", .dflt = "auto", .type = CP_PT_ENUM,
     .offset = OFF(algo), .choices = algo_choices, .must_match = 1,
     .doc = "Force an algorithm: sparse (allgather of every rank's "
            "entries), sparse_rs (sparse compressors: sparse reduce-scatter, "
            "the global top-k of the sum, allgatherv; MPI path only), "
            "twophase, dense (deterministic uncompressed). auto: for the "
            "sparse compressors the cheapest of sparse, sparse_rs and dense "
            "by a cost model of ranks, k and n (docs/scaling.md), twophase "
            "otherwise."},
    {.name = "COMMPRESS_PIPELINE", .dflt = "on", .type = CP_PT_ENUM,
     .offset = OFF(pipeline), .choices = pipeline_choices, .must_match = 1,
     .doc = "Two-phase allreduce over MPI: on sends each chunk as soon as it "
            "is encoded and sums each arriving message while later ones are "
            "on the wire (point-to-point on a duplicate of the "
            "communicator); off runs encode, MPI_Alltoall, sum, "
            "MPI_Allgather and decode one after the other. The same bits "
            "either way (docs/policy.md)."},
    {.name = "COMMPRESS_FUSE", .dflt = "on", .type = CP_PT_ENUM,
     .offset = OFF(fuse), .choices = pipeline_choices,
     .doc = "Feedback ef fused with the codec: on, the two-phase "
            "allreduce adds the feedback, encodes and forms the new error "
            "in one pass over the tensor (quant; sign in two), and the "
            "sparse allgather (topk, randk) updates only the k entries it "
            "sent, both into a second error buffer per tensor (4 bytes a "
            "float more); off runs ef's prepare, the encode and ef's "
            "commit. The same bits either way (docs/policy.md)."},
    {.name = "COMMPRESS_SEED", .dflt = "0", .type = CP_PT_U64,
     .offset = OFF(seed), .must_match = 1,
     .doc = "Seed of the randomness (top-k sampling, stochastic rounding, "
            "randk's indices)."},
    {.name = "COMMPRESS_ADAPT", .dflt = "none", .type = CP_PT_ENUM,
     .offset = OFF(adapt.on), .choices = adapt_choices, .must_match = 1,
     .doc = "Layer-adaptive settings. lgreco: every COMMPRESS_ADAPT_EVERY "
            "steps, choose each tensor's setting among the compressor's "
            "candidates (quant bits 2-8, top-k densities x 1/4..4, fp16, "
            "none) for the fewest bytes at no more total error than the "
            "configured setting (docs/lgreco.md; MPI path only)."},
    {.name = "COMMPRESS_ADAPT_EVERY", .dflt = "500", .type = CP_PT_SIZE,
     .offset = OFF(adapt.every), .lo = 1, .hi = 1e9, .must_match = 1,
     .doc = "COMMPRESS_ADAPT: steps between plans."},
    {.name = "COMMPRESS_ADAPT_WINDOW", .dflt = "10", .type = CP_PT_SIZE,
     .offset = OFF(adapt.window), .lo = 1, .hi = 1e9, .must_match = 1,
     .doc = "COMMPRESS_ADAPT: steps of statistics before each plan (at most "
            "COMMPRESS_ADAPT_EVERY)."},
    {.name = "COMMPRESS_ADAPT_ALPHA", .dflt = "1", .type = CP_PT_DOUBLE,
     .offset = OFF(adapt.alpha), .lo = 0, .hi = 100, .open = CP_OPEN_LO,
     .must_match = 1,
     .doc = "COMMPRESS_ADAPT: total error allowed, relative to the "
            "configured setting's on every tensor."},
};
/* Indices into coll_rows, in its order. */
enum { ROW_COMPRESSOR, ROW_FEEDBACK, ROW_ALGO, ROW_PIPELINE, ROW_FUSE, ROW_SEED, ROW_ADAPT,
       ROW_ADAPT_EVERY, ROW_ADAPT_WINDOW, ROW_ADAPT_ALPHA, ROW_COUNT };
_Static_assert(sizeof(coll_rows) / sizeof(coll_rows[0]) == ROW_COUNT,
               "coll_rows and its ROW_ indices disagree");

static void add(cp_row_t *rows, size_t *n, size_t max, const cp_param_t *r,
                void *base)
{
    if (*n >= max)
        return;
    int dup = 0;
    for (size_t k = 0; k < *n; k++)
        dup |= strcmp(rows[k].row->name, r->name) == 0;
    rows[(*n)++] = (cp_row_t){.row = r, .base = base, .dup = dup};
}

size_t cp_coll_settings_rows(cp_coll_settings_t *s, cp_row_t *rows, size_t max)
{
    size_t n = 0;
    add(rows, &n, max, &coll_rows[ROW_COMPRESSOR], s);
    for (size_t c = 0; c < cp_compressor_count(); c++) {
        const cp_compressor_ops_t *op = cp_compressor_at(c);
        for (size_t k = 0; k < op->nparams; k++)
            add(rows, &n, max, &op->params[k], &s->codec[c]);
    }
    add(rows, &n, max, &coll_rows[ROW_FEEDBACK], s);
    for (size_t f = 0; f < cp_feedback_count(); f++) {
        const cp_feedback_ops_t *op = cp_feedback_at(f);
        for (size_t k = 0; k < op->nparams; k++)
            add(rows, &n, max, &op->params[k], &s->fb[f]);
    }
    add(rows, &n, max, &coll_rows[ROW_ALGO], s);
    add(rows, &n, max, &coll_rows[ROW_PIPELINE], s);
    add(rows, &n, max, &coll_rows[ROW_FUSE], s);
    add(rows, &n, max, &coll_rows[ROW_SEED], s);
    for (int r = ROW_ADAPT; r <= ROW_ADAPT_ALPHA; r++)
        add(rows, &n, max, &coll_rows[r], s);
    return n;
}

void cp_coll_settings_defaults(cp_coll_settings_t *s)
{
    cp_row_t rows[CP_COLL_MAX_ROWS];
    memset(s, 0, sizeof(*s));
    size_t n = cp_coll_settings_rows(s, rows, CP_COLL_MAX_ROWS);
    for (size_t i = 0; i < n; i++)
        if (cp_param_parse(rows[i].row, rows[i].row->dflt, rows[i].base) != 0)
            abort(); /* a bad default is a bug in its row */
}

cp_status_t cp_coll_settings_set(cp_coll_settings_t *s, const char *name,
                                 const char *value, char *err, size_t len)
{
    cp_row_t rows[CP_COLL_MAX_ROWS];
    size_t n = cp_coll_settings_rows(s, rows, CP_COLL_MAX_ROWS);
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rows[i].row->name, name) != 0)
            continue;
        found = 1;
        if (cp_param_parse(rows[i].row, value, rows[i].base) != 0) {
            char acc[256];
            cp_param_accepted(rows[i].row, acc, sizeof(acc));
            if (err && len)
                snprintf(err, len, "%s='%s' is invalid; accepted: %s", name,
                         value, acc);
            return CP_ERR_CONFIG;
        }
    }
    return found ? CP_OK : CP_ERR_INVALID;
}

void cp_coll_settings_setf(cp_coll_settings_t *s, cp_status_t *st,
                           const char *name, const char *fmt, ...)
{
    char v[64];
    va_list ap;
    if (*st != CP_OK)
        return;
    va_start(ap, fmt);
    vsnprintf(v, sizeof(v), fmt, ap);
    va_end(ap);
    *st = cp_coll_settings_set(s, name, v, NULL, 0);
}

cp_status_t cp_coll_settings_apply(cp_coll_settings_t *s, const char *list,
                                   char *err, size_t len)
{
    const char *p = list;
    while (p && *p) {
        char item[256], *eq;
        size_t n = strcspn(p, " ,\t\n");
        if (n == 0) {
            p++;
            continue;
        }
        if (n >= sizeof(item)) {
            if (err && len)
                snprintf(err, len, "setting too long: '%.40s...'", p);
            return CP_ERR_CONFIG;
        }
        memcpy(item, p, n);
        item[n] = '\0';
        p += n;
        eq = strchr(item, '=');
        if (eq == NULL) {
            if (err && len)
                snprintf(err, len, "'%s' is not NAME=value", item);
            return CP_ERR_CONFIG;
        }
        *eq = '\0';
        cp_status_t st = cp_coll_settings_set(s, item, eq + 1, err, len);
        if (st == CP_ERR_INVALID && err && len)
            snprintf(err, len, "%s is not a collective setting (commpress-info "
                     "lists them)", item);
        if (st != CP_OK)
            return CP_ERR_CONFIG;
    }
    return CP_OK;
}

const cp_param_t *cp_coll_row(const char *name)
{
    static cp_coll_settings_t scratch; /* only the rows are read */
    cp_row_t rows[CP_COLL_MAX_ROWS];
    size_t n = cp_coll_settings_rows(&scratch, rows, CP_COLL_MAX_ROWS);
    for (size_t i = 0; i < n; i++)
        if (strcmp(rows[i].row->name, name) == 0)
            return rows[i].row;
    return NULL;
}

uint64_t cp_coll_settings_hash(cp_coll_settings_t *s)
{
    cp_row_t rows[CP_COLL_MAX_ROWS];
    char v[1100];
    uint64_t h = 0xcbf29ce484222325ull;
    size_t n = cp_coll_settings_rows(s, rows, CP_COLL_MAX_ROWS);
    for (size_t i = 0; i < n; i++) {
        if (rows[i].dup || !rows[i].row->must_match)
            continue;
        cp_param_format(rows[i].row, rows[i].base, v, sizeof(v));
        h = (h ^ cp_fnv1a(rows[i].row->name, strlen(rows[i].row->name))) *
            0x100000001b3ull;
        h = (h ^ cp_fnv1a(v, strlen(v))) * 0x100000001b3ull;
    }
    return h;
}

/* ---- the builder ---- */

const cp_feedback_ops_t *cp_coll_auto_feedback(const cp_compressor_ops_t *codec)
{
    if (codec->feedback)
        return codec->feedback;
    return codec->caps & CP_CODEC_BIASED ? &cp_feedback_ef : &cp_feedback_none;
}

cp_status_t cp_coll_build(const cp_coll_settings_t *s, cp_coll_config_t *out,
                          char *err, size_t len)
{
    const cp_compressor_ops_t *codec = cp_compressor_at((size_t)s->compressor);
    const cp_feedback_ops_t *fb;

    memset(out, 0, sizeof(*out));
    if (codec == NULL)
        return CP_ERR_CONFIG;
    if (codec->feedback && s->feedback != 0) {
        if (err && len)
            snprintf(err, len,
                     "COMMPRESS_FEEDBACK='%s' is invalid with "
                     "COMMPRESS_COMPRESSOR=%s; accepted: auto (%s keeps its "
                     "own error feedback)",
                     feedback_choice(s->feedback), codec->name, codec->name);
        return CP_ERR_CONFIG;
    }
    if (codec->feedback || s->feedback == 0)
        fb = cp_coll_auto_feedback(codec);
    else
        fb = cp_coll_feedback_choice(s->feedback);
    if (fb == NULL)
        return CP_ERR_CONFIG;
    out->codec = codec;
    out->params = s->codec[s->compressor];
    out->feedback = fb;
    out->fb = s->fb[cp_feedback_index(fb->name)];
    out->algo = (cp_algo_t)s->algo;
    if (out->algo == CP_ALGO_SPARSE_RS && !(codec->caps & CP_CODEC_SPARSE)) {
        if (err && len)
            snprintf(err, len,
                     "COMMPRESS_ALLREDUCE_ALGO='sparse_rs' is invalid with "
                     "COMMPRESS_COMPRESSOR=%s; accepted: auto | sparse | twophase | "
                     "dense (sparse_rs needs a sparse compressor: topk, dgc, randk)",
                     codec->name);
        return CP_ERR_CONFIG;
    }
    out->pipeline = s->pipeline;
    out->fuse = s->fuse;
    out->seed = s->seed;
    if (s->adapt.on && s->adapt.window > s->adapt.every) {
        if (err && len)
            snprintf(err, len,
                     "COMMPRESS_ADAPT_WINDOW='%zu' is invalid with "
                     "COMMPRESS_ADAPT_EVERY=%zu; accepted: an integer in "
                     "[1, %zu]", s->adapt.window, s->adapt.every,
                     s->adapt.every);
        return CP_ERR_CONFIG;
    }
    out->adapt = s->adapt;
    return CP_OK;
}

const char *cp_coll_gpu_refusal(cp_coll_settings_t *s, char *buf, size_t len)
{
    cp_coll_config_t c;
    char acc[256] = "", v[256];
    size_t o = 0;

    if (cp_coll_build(s, &c, NULL, 0) != CP_OK)
        return NULL; /* refused already, with its own message */
    if (c.codec->gpu == NULL) {
        for (size_t i = 0; i < cp_compressor_count() && o < sizeof(acc); i++)
            if (cp_compressor_at(i)->gpu)
                o += (size_t)snprintf(acc + o, sizeof(acc) - o, "%s%s",
                                      o ? " | " : "", cp_compressor_at(i)->name);
        snprintf(buf, len, "COMMPRESS_COMPRESSOR='%s' is invalid with NCCL "
                 "(MPI path only); accepted: %s", c.codec->name, acc);
        return buf;
    }
    if (!cp_feedback_on_gpu(c.feedback)) {
        for (size_t i = 0; i < cp_feedback_count() && o < sizeof(acc); i++)
            if (cp_feedback_on_gpu(cp_feedback_at(i)) && !(cp_feedback_at(i)->flags & CP_FB_FIXED))
                o += (size_t)snprintf(acc + o, sizeof(acc) - o, " | %s",
                                      cp_feedback_at(i)->name);
        snprintf(buf, len, "COMMPRESS_FEEDBACK='%s' is invalid with NCCL "
                 "(MPI path only); accepted: auto%s", c.feedback->name, acc);
        return buf;
    }
    if (c.algo == CP_ALGO_SPARSE_RS) {
        snprintf(buf, len, "COMMPRESS_ALLREDUCE_ALGO='sparse_rs' is invalid with NCCL "
                 "(MPI path only); accepted: auto | sparse | twophase | dense");
        return buf;
    }
    if (c.adapt.on) {
        snprintf(buf, len, "COMMPRESS_ADAPT='lgreco' is invalid with NCCL "
                 "(MPI path only); accepted: none");
        return buf;
    }
    for (size_t k = 0; k < c.codec->nparams; k++) {
        const cp_param_t *r = &c.codec->params[k];
        if (r->cpu_only && !cp_param_is_default(r, &s->codec[s->compressor])) {
            cp_param_format(r, &s->codec[s->compressor], v, sizeof(v));
            snprintf(buf, len, "%s='%s' is invalid with NCCL (MPI path only); "
                     "accepted: %s", r->name, v, r->dflt);
            return buf;
        }
    }
    return NULL;
}
