/* The configuration table (UCX's ucs_config_field_t in spirit): name,
 * default as a string, doc, parser and offset. Everything about a variable
 * is in its row. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/config.h"
#include "util/fault.h"
#include "util/hd.h"
#include "util/log.h"

typedef enum { F_ENUM, F_DOUBLE, F_SIZE, F_INT, F_U64, F_STRING } cp_ftype_t;

typedef struct {
    const char *name;
    const char *dflt;
    cp_ftype_t type;
    size_t offset;
    const char *const *choices; /* F_ENUM: NULL-terminated */
    double lo, hi;              /* numeric range, inclusive unless noted */
    int open;                   /* OPEN_LO: lo excluded; OPEN_HI: hi */
    int must_match;             /* part of the cross-rank hash */
    const char *doc;
} cp_field_t;

static const char *const compressor_choices[] = {
    "none", "fp16", "bf16", "topk", "sign", "quant", "dgc", NULL};
enum { CP_COMPRESSOR_DGC = 6 };
static const char *const rounding_choices[] = {"nearest", "stochastic", NULL};
static const char *const feedback_choices[] = {"auto", "none", "ef", "ef21",
                                               "econtrol", "ef21-sgdm", NULL};
static const char *const select_choices[] = {"auto", "exact", "sampled", NULL};
static const char *const values_choices[] = {"f32", "fp16", NULL};
static const char *const algo_choices[] = {"auto", "sparse", "twophase",
                                           "dense", NULL};
static const char *const key_choices[] = {"auto", "address", "order", NULL};
static const char *const debug_choices[] = {"NONE", "WARN", "INFO", "TRACE",
                                            NULL};

#define OFF(m) offsetof(cp_config_t, m)
enum { OPEN_LO = 1, OPEN_HI = 2 };
static const cp_field_t cp_fields[] = {
    {"COMMPRESS_COMPRESSOR", "none", F_ENUM, OFF(compressor),
     compressor_choices, 0, 0, 0, 1,
     "Compressor for MPI_FLOAT/MPI_SUM allreduce. none: exact pass-through."},
    {"COMMPRESS_DENSITY", "0.01", F_DOUBLE, OFF(density), NULL, 0, 1, OPEN_LO, 1,
     "topk: fraction of entries sent, k = ceil(density * count)."},
    {"COMMPRESS_BITS", "4", F_INT, OFF(bits), NULL, 1, 8, 0, 1,
     "quant: bits per element."},
    {"COMMPRESS_BUCKET", "512", F_SIZE, OFF(bucket), NULL, 1, 1 << 24, 0, 1,
     "quant: elements per bucket (one min and unit per bucket)."},
    {"COMMPRESS_ROUNDING", "nearest", F_ENUM, OFF(rounding), rounding_choices,
     0, 0, 0, 1, "quant: nearest, or stochastic (unbiased)."},
    {"COMMPRESS_FEEDBACK", "auto", F_ENUM, OFF(feedback), feedback_choices, 0,
     0, 0, 1,
     "Error feedback. auto: ef for topk, sign, quant; none for fp16, bf16; "
     "dgc keeps its own (momentum correction) and accepts only auto. ef21, "
     "econtrol and ef21-sgdm return the aggregated estimator; ef21-sgdm "
     "(EF21 on a moving average) is the one for stochastic gradients "
     "(docs/feedback.md; MPI path only)."},
    {"COMMPRESS_ECONTROL_ETA", "0.01", F_DOUBLE, OFF(econtrol_eta), NULL, 0, 1,
     0, 1, "econtrol: feedback strength eta of the error term."},
    {"COMMPRESS_EF21_SGDM_ETA", "0.1", F_DOUBLE, OFF(ef21_sgdm_eta), NULL, 0, 1,
     OPEN_LO, 1,
     "ef21-sgdm: weight eta of the moving average v <- (1 - eta) v + eta g. "
     "The application's optimizer must then run WITHOUT momentum."},
    {"COMMPRESS_DGC_MOMENTUM", "0.9", F_DOUBLE, OFF(dgc_momentum), NULL, 0, 1,
     OPEN_HI, 1,
     "dgc: momentum m of the momentum correction u <- m u + g. The "
     "application's optimizer must then run WITHOUT momentum."},
    {"COMMPRESS_DGC_CLIP", "0", F_DOUBLE, OFF(dgc_clip), NULL, 0, 1e30, 0, 1,
     "dgc: local gradient clipping norm c; each rank scales a tensor's "
     "gradient to norm <= c / sqrt(ranks). 0: off."},
    {"COMMPRESS_DGC_WARMUP_STEPS", "0", F_SIZE, OFF(dgc_warmup_steps), NULL, 0,
     1e12, 0, 1,
     "dgc: steps (per tensor) over which the density falls exponentially "
     "from 0.25 to COMMPRESS_DENSITY. 0: no warm-up."},
    {"COMMPRESS_DGC_DENSE_BELOW", "16384", F_SIZE, OFF(dgc_dense_below), NULL,
     0, 1e18, 0, 1,
     "dgc: tensors of fewer elements are sent dense (still with DGC's "
     "momentum). Biases and norms are small; the shim sees only sizes."},
    {"COMMPRESS_TOPK_SELECT", "auto", F_ENUM, OFF(topk_select),
     select_choices, 0, 0, 0, 1,
     "topk selection: exact (radix select), sampled (DGC threshold), or auto "
     "(sampled from COMMPRESS_TOPK_SAMPLE_MIN elements)."},
    {"COMMPRESS_TOPK_VALUES", "f32", F_ENUM, OFF(topk_values), values_choices,
     0, 0, 0, 1,
     "topk, dgc: value format on the wire. fp16 sends 6 bytes per entry "
     "instead of 8 (saturating; error feedback keeps the rounding). MPI "
     "path only."},
    {"COMMPRESS_TOPK_SAMPLE_MIN", "262144", F_SIZE, OFF(topk_sample_min), NULL,
     1, 1e18, 0, 1, "topk auto: tensors of at least this many elements use "
                    "the sampled threshold."},
    {"COMMPRESS_ALLREDUCE_ALGO", "auto", F_ENUM, OFF(algo), algo_choices, 0, 0,
     0, 1,
     "Force an algorithm: sparse (allgather), twophase, dense (deterministic "
     "uncompressed). auto: sparse for topk unless dense is cheaper, "
     "twophase otherwise."},
    {"COMMPRESS_MIN_BYTES", "65536", F_SIZE, OFF(min_bytes), NULL, 0, 1e18, 0,
     1, "Messages smaller than this many bytes pass through uncompressed."},
    {"COMMPRESS_MIN_RANKS", "2", F_SIZE, OFF(min_ranks), NULL, 1, 1e6, 0, 1,
     "Communicators with fewer ranks pass through. 1 runs the compressed "
     "path even alone (for tests and single-GPU checks)."},
    {"COMMPRESS_STATE_KEY", "auto", F_ENUM, OFF(state_key), key_choices, 0,
     0, 0, 1,
     "How a call finds its tensor's state. auto: its place in the step "
     "commpress detects from the repeating sequence of calls (any "
     "buffers). address: the buffer (buffers stable for the whole job). "
     "order: its position in a step of COMMPRESS_STEP_CALLS calls."},
    {"COMMPRESS_STEP_CALLS", "0", F_SIZE, OFF(step_calls), NULL, 0, 1e9, 0, 1,
     "Compressed calls per training step; required (> 0) when "
     "COMMPRESS_STATE_KEY=order."},
    {"COMMPRESS_MAX_TENSORS", "4096", F_SIZE, OFF(max_tensors), NULL, 1, 1e7,
     0, 1, "Most tensor states kept per communicator; beyond it the least "
           "recently used is dropped (with a warning)."},
    {"COMMPRESS_SEED", "0", F_U64, OFF(seed), NULL, 0, 0, 0, 1,
     "Seed of the randomness (top-k sampling, stochastic rounding)."},
    {"COMMPRESS_DEBUG", "WARN", F_ENUM, OFF(debug), debug_choices, 0, 0, 0, 0,
     "Log level: NONE, WARN, INFO (configuration and a summary at "
     "MPI_Finalize), TRACE."},
    {"COMMPRESS_STATS_FILE", "", F_STRING, OFF(stats_file), NULL, 0,
     sizeof(((cp_config_t *)0)->stats_file), 0, 0,
     "If set, each rank writes its statistics as JSON to this path at "
     "MPI_Finalize; %r becomes the rank."},
    {"COMMPRESS_FAULT", "", F_STRING, OFF(fault), NULL, 0,
     sizeof(((cp_config_t *)0)->fault), 0, 0,
     "Testing only: make a failure happen on one rank, kind@rank:call "
     "(kinds alloc, wsalloc, encode, corrupt1, corrupt, diverge; "
     "util/fault.h), to "
     "check that every rank takes the same path."},
};
#define NFIELDS (sizeof(cp_fields) / sizeof(*cp_fields))

static void choices_text(const cp_field_t *f, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; f->choices[i] && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? " | " : "",
                                f->choices[i]);
}

static void accepted_text(const cp_field_t *f, char *buf, size_t len)
{
    switch (f->type) {
    case F_ENUM:
        choices_text(f, buf, len);
        break;
    case F_DOUBLE:
        snprintf(buf, len, "a number in %c%g, %g%c",
                 f->open & OPEN_LO ? '(' : '[', f->lo, f->hi,
                 f->open & OPEN_HI ? ')' : ']');
        break;
    case F_INT:
    case F_SIZE:
        snprintf(buf, len, "an integer in [%.0f, %.0f]", f->lo, f->hi);
        break;
    case F_U64:
        snprintf(buf, len, "an unsigned 64-bit integer");
        break;
    case F_STRING:
        snprintf(buf, len, f->offset == OFF(fault)
                               ? "kind@rank:call[,...]"
                               : "a path");
        break;
    }
}

static int parse_field(const cp_field_t *f, const char *s, cp_config_t *cfg)
{
    char *dst = (char *)cfg + f->offset, *end;
    double d;

    switch (f->type) {
    case F_ENUM:
        for (int i = 0; f->choices[i]; i++)
            if (strcasecmp(s, f->choices[i]) == 0) {
                *(int *)dst = i;
                return 0;
            }
        return -1;
    case F_DOUBLE:
        errno = 0;
        d = strtod(s, &end);
        if (errno || end == s || *end || !isfinite(d) || d > f->hi ||
            d < f->lo || ((f->open & OPEN_LO) && d == f->lo) ||
            ((f->open & OPEN_HI) && d == f->hi))
            return -1;
        *(double *)dst = d;
        return 0;
    case F_INT:
    case F_SIZE:
    case F_U64: {
        errno = 0;
        if (*s == '-' || *s == '\0')
            return -1;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || *end)
            return -1;
        if (f->type != F_U64 && ((double)v < f->lo || (double)v > f->hi))
            return -1;
        if (f->type == F_INT)
            *(int *)dst = (int)v;
        else if (f->type == F_SIZE)
            *(size_t *)dst = (size_t)v;
        else
            *(uint64_t *)dst = (uint64_t)v;
        return 0;
    }
    case F_STRING: /* hi: the field's size */
        if (strlen(s) >= (size_t)f->hi)
            return -1;
        strcpy(dst, s);
        return f->offset == OFF(fault) && cp_fault_check(s) != CP_OK ? -1 : 0;
    }
    return -1;
}

void cp_config_defaults(cp_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NFIELDS; i++)
        if (parse_field(&cp_fields[i], cp_fields[i].dflt, cfg) != 0)
            abort(); /* a bad default is a bug in this table */
}

cp_status_t cp_config_parse_env(cp_config_t *cfg, char *err, size_t errlen)
{
    char acc[256];
    cp_config_defaults(cfg);
    for (size_t i = 0; i < NFIELDS; i++) {
        const cp_field_t *f = &cp_fields[i];
        const char *v = getenv(f->name);
        if (v == NULL)
            continue;
        if (parse_field(f, v, cfg) != 0) {
            accepted_text(f, acc, sizeof(acc));
            snprintf(err, errlen, "%s='%s' is invalid; accepted: %s", f->name,
                     v, acc);
            return CP_ERR_CONFIG;
        }
    }
    if (cfg->compressor == CP_COMPRESSOR_DGC && cfg->feedback != 0) {
        snprintf(err, errlen,
                 "COMMPRESS_FEEDBACK='%s' is invalid with "
                 "COMMPRESS_COMPRESSOR=dgc; accepted: auto (DGC's momentum "
                 "correction is its error feedback)",
                 feedback_choices[cfg->feedback]);
        return CP_ERR_CONFIG;
    }
    if (cfg->state_key == CP_KEY_ORDER && cfg->step_calls == 0) {
        snprintf(err, errlen,
                 "COMMPRESS_STEP_CALLS='%zu' is invalid with "
                 "COMMPRESS_STATE_KEY=order; accepted: an integer >= 1 (the "
                 "number of compressed calls per step)",
                 cfg->step_calls);
        return CP_ERR_CONFIG;
    }
    return CP_OK;
}

static void format_value(const cp_config_t *cfg, const cp_field_t *f,
                         char *buf, size_t len)
{
    const char *src = (const char *)cfg + f->offset;
    switch (f->type) {
    case F_ENUM:
        snprintf(buf, len, "%s", f->choices[*(const int *)src]);
        break;
    case F_DOUBLE:
        snprintf(buf, len, "%.17g", *(const double *)src);
        break;
    case F_INT:
        snprintf(buf, len, "%d", *(const int *)src);
        break;
    case F_SIZE:
        snprintf(buf, len, "%zu", *(const size_t *)src);
        break;
    case F_U64:
        snprintf(buf, len, "%llu", (unsigned long long)*(const uint64_t *)src);
        break;
    case F_STRING:
        snprintf(buf, len, "%s", src);
        break;
    }
}

void cp_config_format(const cp_config_t *cfg, const char *name, char *buf,
                      size_t len)
{
    char v[1100];
    for (size_t i = 0; i < NFIELDS; i++)
        if (strcmp(cp_fields[i].name, name) == 0) {
            format_value(cfg, &cp_fields[i], v, sizeof(v));
            snprintf(buf, len, "%s=%s", name, v);
            return;
        }
    snprintf(buf, len, "%s", name);
}

size_t cp_config_hashes(const cp_config_t *cfg, uint64_t *h,
                        const char **names)
{
    char v[1100];
    size_t n = 0;
    for (size_t i = 0; i < NFIELDS; i++) {
        if (!cp_fields[i].must_match)
            continue;
        format_value(cfg, &cp_fields[i], v, sizeof(v));
        h[n] = cp_fnv1a(v, strlen(v)); /* of the canonical value */
        names[n] = cp_fields[i].name;
        n++;
    }
    return n;
}

size_t cp_config_mismatches(const cp_config_t *cfg, const uint64_t *h,
                            const char **names, size_t nf,
                            const uint64_t *max_h, const uint64_t *max_not_h,
                            char *line, size_t len)
{
    char one[1200];
    size_t o = 0, count = 0;
    line[0] = '\0';
    for (size_t i = 0; i < nf; i++) {
        if (max_h[i] == h[i] && max_not_h[i] == ~h[i])
            continue;
        count++;
        cp_config_format(cfg, names[i], one, sizeof(one));
        if (o < len)
            o += (size_t)snprintf(line + o, len - o, "%s%s (rank 0 has %s)",
                                  o ? ", " : "", names[i], one);
    }
    return count;
}

void cp_config_print(const cp_config_t *cfg, FILE *f, int md)
{
    char v[1100], acc[256];
    if (md)
        fprintf(f, "| Variable | Default | Accepted | Meaning |\n"
                   "|---|---|---|---|\n");
    for (size_t i = 0; i < NFIELDS; i++) {
        const cp_field_t *fl = &cp_fields[i];
        accepted_text(fl, acc, sizeof(acc));
        if (md) {
            char esc[300];
            size_t o = 0;
            for (const char *c = acc; *c && o + 2 < sizeof(esc); c++) {
                if (*c == '|')
                    esc[o++] = '\\';
                esc[o++] = *c;
            }
            esc[o] = '\0';
            memcpy(acc, esc, o + 1);
            fprintf(f, "| `%s` | `%s` | %s | %s |\n", fl->name,
                    fl->dflt[0] ? fl->dflt : "(unset)", acc, fl->doc);
        } else {
            format_value(cfg, fl, v, sizeof(v));
            fprintf(f, "%s=%s\n    %s\n    accepted: %s; default: %s\n",
                    fl->name, v, fl->doc, acc, fl->dflt[0] ? fl->dflt : "(unset)");
        }
    }
}

void cp_config_warn_unknown(void)
{
    extern char **environ;
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, "COMMPRESS_", 10) != 0)
            continue;
        size_t len = strcspn(*e, "=");
        int known = 0;
        for (size_t i = 0; i < NFIELDS && !known; i++)
            known = strlen(cp_fields[i].name) == len &&
                    strncmp(cp_fields[i].name, *e, len) == 0;
        if (!known)
            cp_warn("unknown variable %.*s ignored (see docs/configuration.md)",
                    (int)len, *e);
    }
}

const char *cp_config_compressor_name(const cp_config_t *cfg)
{
    return compressor_choices[cfg->compressor];
}

void cp_config_to_coll(const cp_config_t *cfg, cp_coll_config_t *coll)
{
    const char *name = cp_config_compressor_name(cfg);
    const int dgc = cfg->compressor == CP_COMPRESSOR_DGC;
    memset(coll, 0, sizeof(*coll));
    coll->codec = cp_compressor_find(dgc ? "topk" : name);
    coll->params.density = cfg->density;
    coll->params.topk_select = (cp_topk_select_t)cfg->topk_select;
    coll->params.topk_sample_min = cfg->topk_sample_min;
    coll->params.topk_fp16 = cfg->topk_values == 1;
    coll->params.bits = cfg->bits;
    coll->params.bucket = cfg->bucket;
    coll->params.rounding = (cp_rounding_t)cfg->rounding;
    if (dgc)
        coll->feedback = &cp_feedback_dgc;
    else if (cfg->feedback == 0) /* auto */
        coll->feedback = (coll->codec == &cp_compressor_topk ||
                          coll->codec == &cp_compressor_sign ||
                          coll->codec == &cp_compressor_quant)
                             ? &cp_feedback_ef
                             : &cp_feedback_none;
    else
        coll->feedback = cp_feedback_find(feedback_choices[cfg->feedback]);
    coll->algo = (cp_algo_t)cfg->algo;
    coll->seed = cfg->seed;
    coll->fb.momentum = (float)cfg->dgc_momentum;
    coll->fb.clip = cfg->dgc_clip;
    coll->fb.eta = (float)cfg->econtrol_eta;
    coll->fb.sgdm_eta = (float)cfg->ef21_sgdm_eta;
    coll->warmup_steps = cfg->dgc_warmup_steps;
    coll->dense_below = cfg->dgc_dense_below;
}
