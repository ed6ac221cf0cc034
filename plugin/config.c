/* The configuration table: the plugin's own rows here, then (in
 * documentation order) the collective's and every codec's and feedback
 * variant's rows from collectives/coll_config.c. Everything about a
 * variable is in its row (util/param.h). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/config.h"
#include "plugin/policy.h"
#include "util/fault.h"
#include "util/hd.h"
#include "util/log.h"

static const char *const key_choices[] = {"auto", "address", "order", NULL};
static const char *const debug_choices[] = {"NONE", "WARN", "INFO", "TRACE",
                                            NULL};
static const char *const a2a_choices[] = {"none", "lsh", "fp16", "bf16", NULL};
static const char *const policy_choices[] = {"auto", "always", NULL};
static const char *const hier_choices[] = {"auto", "flat", "node", "striped", NULL};

static int fault_spec_ok(const char *s) { return cp_fault_check(s) == CP_OK ? 0 : -1; }
static int times_spec_ok(const char *s) { return cp_policy_check_times(s); }

#define OFF(m) offsetof(cp_config_t, m)
static const cp_param_t plugin_rows[] = {
    {.name = "COMMPRESS_MIN_BYTES", .dflt = "65536", .type = CP_PT_SIZE,
     .offset = OFF(min_bytes), .lo = 0, .hi = 1e18, .must_match = 1,
     .doc = "Messages smaller than this many bytes pass through uncompressed."},
    {.name = "COMMPRESS_MIN_RANKS", .dflt = "2", .type = CP_PT_SIZE,
     .offset = OFF(min_ranks), .lo = 1, .hi = 1e6, .must_match = 1,
     .doc = "Communicators with fewer ranks pass through. 1 runs the "
            "compressed path even alone (for tests and single-GPU checks)."},
    {.name = "COMMPRESS_STATE_KEY", .dflt = "auto", .type = CP_PT_ENUM,
     .offset = OFF(state_key), .choices = key_choices, .must_match = 1,
     .doc = "How a call finds its tensor's state. auto: its place in the "
            "step commpress detects from the repeating sequence of calls "
            "(any buffers). address: the buffer (buffers stable for the "
            "whole job). order: its position in a step of "
            "COMMPRESS_STEP_CALLS calls."},
    {.name = "COMMPRESS_STEP_CALLS", .dflt = "0", .type = CP_PT_SIZE,
     .offset = OFF(step_calls), .lo = 0, .hi = 1e9, .must_match = 1,
     .doc = "Compressed calls per training step; required (> 0) when "
            "COMMPRESS_STATE_KEY=order."},
    {.name = "COMMPRESS_MAX_TENSORS", .dflt = "4096", .type = CP_PT_SIZE,
     .offset = OFF(max_tensors), .lo = 1, .hi = 1e6, .must_match = 1,
     .doc = "Most tensor states kept per communicator; beyond it the least "
            "recently used is dropped (with a warning). Each costs about "
            "300 bytes of tables per communicator, allocated at its first "
            "compressed call, hence the ceiling."},
    {.name = "COMMPRESS_MAX_STATE_BYTES", .dflt = "0", .type = CP_PT_SIZE,
     .offset = OFF(max_state_bytes), .lo = 0, .hi = 1e18,
     .doc = "Bound on the error-feedback state and workspace memory of one "
            "process, in bytes, host (MPI) and device (NCCL) each; beyond it "
            "the least recently used tensors lose their state (the ranks "
            "agree which). 0: a quarter of the node's memory divided by the "
            "ranks on the node, and a quarter of the GPU's memory."},
    {.name = "COMMPRESS_DEBUG", .dflt = "WARN", .type = CP_PT_ENUM,
     .offset = OFF(debug), .choices = debug_choices,
     .doc = "Log level: NONE, WARN, INFO (configuration and a summary at "
            "MPI_Finalize), TRACE."},
    {.name = "COMMPRESS_STATS_FILE", .dflt = "", .type = CP_PT_STRING,
     .offset = OFF(stats_file), .hi = sizeof(((cp_config_t *)0)->stats_file),
     .accepted = "a path",
     .doc = "If set, each rank writes its statistics as JSON to this path at "
            "MPI_Finalize; %r becomes the rank (without %r, several ranks "
            "append .<rank>: one file each). An existing symbolic link is "
            "not followed."},
    {.name = "COMMPRESS_STATS_EVERY", .dflt = "0", .type = CP_PT_SIZE,
     .offset = OFF(stats_every), .lo = 0, .hi = 1e12,
     .doc = "If > 0, each rank appends one JSON line of its statistics so "
            "far to COMMPRESS_STATS_FILE's path every this many allreduces "
            "commpress handles (compressed, or plain by the policy), and a "
            "last one with \"final\": true at MPI_Finalize: the file is then "
            "JSON Lines, to watch a job's savings while it runs "
            "(examples/plot_stats.py). 0: one JSON object at MPI_Finalize."},
    {.name = "COMMPRESS_ALLTOALL", .dflt = "none", .type = CP_PT_ENUM,
     .offset = OFF(alltoall), .choices = a2a_choices, .must_match = 1,
     .doc = "MPI_Alltoall and MPI_Alltoallv of MPI_FLOAT (docs/moe.md). none: "
            "passed through. lsh: each destination's rows of "
            "COMMPRESS_A2A_ROW floats clustered (LSH-MoE) and sent as "
            "centroids with a bucket per row; the receiver rebuilds every row "
            "from its centroid (lossy, no compensation: the explicit API "
            "compensates). fp16, bf16: the values cast."},
    {.name = "COMMPRESS_A2A_ROW", .dflt = "0", .type = CP_PT_SIZE,
     .offset = OFF(a2a_row), .lo = 0, .hi = 1 << 20, .must_match = 1,
     .doc = "Floats per token row (the hidden size) for COMMPRESS_ALLTOALL=lsh; "
            "required there. A block whose count is not a multiple goes exact."},
    {.name = "COMMPRESS_A2A_HASHES", .dflt = "6", .type = CP_PT_SIZE,
     .offset = OFF(a2a_hashes), .lo = 1, .hi = 32, .must_match = 1,
     .doc = "COMMPRESS_ALLTOALL=lsh: hash functions (more: finer buckets)."},
    {.name = "COMMPRESS_A2A_MAX_FRACTION", .dflt = "0.5", .type = CP_PT_DOUBLE,
     .offset = OFF(a2a_max_fraction), .lo = 1e-9, .hi = 1, .must_match = 1,
     .doc = "COMMPRESS_ALLTOALL=lsh: a block whose buckets exceed this "
            "fraction of its rows goes exact instead."},
    {.name = "COMMPRESS_POLICY", .dflt = "auto", .type = CP_PT_ENUM,
     .offset = OFF(policy), .choices = policy_choices, .must_match = 1,
     .doc = "Whether an MPI_Allreduce that commpress could compress is "
            "compressed (docs/policy.md). auto: per communicator and size "
            "class, only when timed calls show it faster than the plain "
            "call on every rank's agreed timings, re-checked now and then; "
            "a plain call still sends what error feedback held back. "
            "always: every such call (the explicit API always compresses)."},
    {.name = "COMMPRESS_POLICY_TEST_TIMES", .dflt = "", .type = CP_PT_STRING,
     .offset = OFF(policy_times), .hi = sizeof(((cp_config_t *)0)->policy_times),
     .accepted = "c:p[,c:p...] (microseconds per rank)", .check = times_spec_ok,
     .doc = "Testing only: COMMPRESS_POLICY=auto takes these times of a "
            "compressed and a plain call, per rank (later ranks the last "
            "pair), instead of measuring them (plugin/policy.h)."},
    {.name = "COMMPRESS_HIERARCHY", .dflt = "auto", .type = CP_PT_ENUM,
     .offset = OFF(hierarchy), .choices = hier_choices, .must_match = 1,
     .doc = "MPI_Allreduce on ranks that share nodes (docs/scaling.md). node: "
            "an exact sum within each node (MPI_Reduce to its first rank), "
            "the compressed allreduce among one rank per node (where the "
            "error feedback lives), a broadcast within the node. striped: "
            "where nodes are of equal size, the node's sum scattered in "
            "chunks, chunk j compressed among the j-th ranks of every node "
            "(each keeping its chunk's feedback), gathered within the node; "
            "else as node. flat: every rank in the compressed allreduce. "
            "auto: node where the communicator spans more than one node and "
            "some node holds more than one rank."},
    {.name = "COMMPRESS_HIERARCHY_TEST_NODE", .dflt = "0", .type = CP_PT_SIZE,
     .offset = OFF(hier_test_node), .lo = 0, .hi = 1e6, .must_match = 1,
     .doc = "Testing only: COMMPRESS_HIERARCHY takes world ranks r and s to "
            "share a node iff r / N == s / N, instead of asking MPI "
            "(MPI_COMM_TYPE_SHARED). 0: MPI's nodes."},
    {.name = "COMMPRESS_FAULT", .dflt = "", .type = CP_PT_STRING,
     .offset = OFF(fault), .hi = sizeof(((cp_config_t *)0)->fault),
     .accepted = "kind@rank:call[,...]", .check = fault_spec_ok,
     .doc = "Testing only: make a failure happen on one rank, kind@rank:call "
            "(kinds alloc, wsalloc, encode, corrupt1, corrupt, diverge; "
            "util/fault.h), to check that every rank takes the same path."},
};
#define NPLUGIN (sizeof(plugin_rows) / sizeof(*plugin_rows))
#define MAX_ROWS (CP_COLL_MAX_ROWS + NPLUGIN)

/* Every row with its place in cfg: the collective's, then the plugin's. */
static size_t all_rows(const cp_config_t *cfg, cp_row_t *rows)
{
    cp_config_t *c = (cp_config_t *)cfg; /* rows are read through it only */
    size_t n = cp_coll_settings_rows(&c->coll, rows, CP_COLL_MAX_ROWS);
    for (size_t i = 0; i < NPLUGIN; i++)
        rows[n++] = (cp_row_t){.row = &plugin_rows[i], .base = c};
    return n;
}

void cp_config_defaults(cp_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cp_coll_settings_defaults(&cfg->coll);
    for (size_t i = 0; i < NPLUGIN; i++)
        if (cp_param_parse(&plugin_rows[i], plugin_rows[i].dflt, cfg) != 0)
            abort(); /* a bad default is a bug in this table */
}

cp_status_t cp_config_parse_env(cp_config_t *cfg, char *err, size_t errlen)
{
    cp_row_t rows[MAX_ROWS];
    cp_coll_config_t coll;
    char acc[256];

    cp_config_defaults(cfg);
    size_t n = all_rows(cfg, rows);
    for (size_t i = 0; i < n; i++) {
        const char *v = getenv(rows[i].row->name);
        if (v == NULL || cp_param_parse(rows[i].row, v, rows[i].base) == 0)
            continue;
        cp_param_accepted(rows[i].row, acc, sizeof(acc));
        snprintf(err, errlen, "%s='%s' is invalid; accepted: %s",
                 rows[i].row->name, v, acc);
        return CP_ERR_CONFIG;
    }
    if (cp_coll_build(&cfg->coll, &coll, err, errlen) != CP_OK)
        return CP_ERR_CONFIG;
    if (coll.adapt.on && cfg->state_key == CP_KEY_ADDRESS) {
        snprintf(err, errlen,
                 "COMMPRESS_STATE_KEY='address' is invalid with "
                 "COMMPRESS_ADAPT=lgreco; accepted: auto | order (plans "
                 "are made per step)");
        return CP_ERR_CONFIG;
    }
    if (cfg->alltoall == CP_A2A_LSH && cfg->a2a_row == 0) {
        snprintf(err, errlen,
                 "COMMPRESS_A2A_ROW='0' is invalid with COMMPRESS_ALLTOALL=lsh; "
                 "accepted: the floats per token row, 1..1048576");
        return CP_ERR_CONFIG;
    }
    if (cfg->stats_every > 0 && cfg->stats_file[0] == '\0') {
        snprintf(err, errlen,
                 "COMMPRESS_STATS_EVERY='%zu' is invalid without "
                 "COMMPRESS_STATS_FILE; accepted: 0 (off), or set "
                 "COMMPRESS_STATS_FILE to the path the lines go to",
                 cfg->stats_every);
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

void cp_config_format(const cp_config_t *cfg, const char *name, char *buf,
                      size_t len)
{
    cp_row_t rows[MAX_ROWS];
    char v[1100];
    size_t n = all_rows(cfg, rows);
    for (size_t i = 0; i < n; i++)
        if (strcmp(rows[i].row->name, name) == 0) {
            cp_param_format(rows[i].row, rows[i].base, v, sizeof(v));
            snprintf(buf, len, "%s=%s", name, v);
            return;
        }
    snprintf(buf, len, "%s", name);
}

size_t cp_config_hashes(const cp_config_t *cfg, uint64_t *h, const char **names)
{
    cp_row_t rows[MAX_ROWS];
    char v[1100];
    size_t nf = 0, n = all_rows(cfg, rows);
    for (size_t i = 0; i < n && nf < CP_CONFIG_MAX_FIELDS; i++) {
        if (rows[i].dup || !rows[i].row->must_match)
            continue;
        cp_param_format(rows[i].row, rows[i].base, v, sizeof(v));
        h[nf] = cp_fnv1a(v, strlen(v)); /* of the canonical value */
        names[nf] = rows[i].row->name;
        nf++;
    }
    return nf;
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

/* Markdown: '|' in a table cell is escaped. */
static void md_escape(const char *in, char *out, size_t len)
{
    size_t o = 0;
    for (const char *c = in; *c && o + 2 < len; c++) {
        if (*c == '|')
            out[o++] = '\\';
        out[o++] = *c;
    }
    out[o] = '\0';
}

void cp_config_print(const cp_config_t *cfg, FILE *f, int md)
{
    cp_row_t rows[MAX_ROWS];
    char v[1100], acc[256], esc[300];
    size_t n = all_rows(cfg, rows);
    if (md)
        fprintf(f, "| Variable | Default | Accepted | Meaning |\n"
                   "|---|---|---|---|\n");
    for (size_t i = 0; i < n; i++) {
        const cp_param_t *r = rows[i].row;
        if (rows[i].dup)
            continue;
        cp_param_accepted(r, acc, sizeof(acc));
        if (md) {
            md_escape(acc, esc, sizeof(esc));
            fprintf(f, "| `%s` | `%s` | %s | %s |\n", r->name,
                    r->dflt[0] ? r->dflt : "(unset)", esc, r->doc);
        } else {
            cp_param_format(r, rows[i].base, v, sizeof(v));
            fprintf(f, "%s=%s\n    %s\n    accepted: %s; default: %s\n",
                    r->name, v, r->doc, acc, r->dflt[0] ? r->dflt : "(unset)");
        }
    }
}

/* Whether a row is a codec's or a feedback variant's own. */
static int owned_row(const cp_param_t *r)
{
    for (size_t i = 0; i < cp_compressor_count(); i++) {
        const cp_compressor_ops_t *c = cp_compressor_at(i);
        if (r >= c->params && r < c->params + c->nparams)
            return 1;
    }
    for (size_t i = 0; i < cp_feedback_count(); i++) {
        const cp_feedback_ops_t *v = cp_feedback_at(i);
        if (r >= v->params && r < v->params + v->nparams)
            return 1;
    }
    return 0;
}

static void print_value(const cp_param_t *r, const void *base, FILE *f)
{
    char v[1100];
    cp_param_format(r, base, v, sizeof(v));
    fprintf(f, "  %s=%s%s\n", r->name, v,
            cp_param_is_default(r, base) ? "" : "   (set)");
}

void cp_config_print_active(const cp_config_t *cfg, FILE *f)
{
    cp_row_t rows[MAX_ROWS];
    cp_coll_config_t coll;
    cp_coll_settings_t *s = (cp_coll_settings_t *)&cfg->coll; /* read only */
    size_t n = cp_coll_settings_rows(s, rows, CP_COLL_MAX_ROWS);

    cp_coll_build(s, &coll, NULL, 0);
    fprintf(f, "compressor %s, feedback %s%s\n", coll.codec->name,
            coll.feedback->name, s->feedback == 0 ? " (auto)" : "");
    for (size_t i = 0; i < n; i++)
        if (!rows[i].dup && !owned_row(rows[i].row))
            print_value(rows[i].row, rows[i].base, f);
    for (size_t i = 0; i < coll.codec->nparams; i++)
        print_value(&coll.codec->params[i], &s->codec[s->compressor], f);
    for (size_t i = 0; i < coll.feedback->nparams; i++)
        print_value(&coll.feedback->params[i],
                    &s->fb[cp_feedback_index(coll.feedback->name)], f);
    for (size_t i = 0; i < NPLUGIN; i++)
        print_value(&plugin_rows[i], cfg, f);
}

void cp_config_warn_unknown(void)
{
    extern char **environ;
    cp_config_t d;
    cp_row_t rows[MAX_ROWS];
    cp_config_defaults(&d);
    size_t n = all_rows(&d, rows);
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, "COMMPRESS_", 10) != 0)
            continue;
        size_t len = strcspn(*e, "=");
        int known = 0;
        for (size_t i = 0; i < n && !known; i++)
            known = strlen(rows[i].row->name) == len &&
                    strncmp(rows[i].row->name, *e, len) == 0;
        if (!known)
            cp_warn("unknown variable %.*s ignored (see docs/configuration.md)",
                    (int)len, *e);
    }
}

size_t cp_config_state_limit(const cp_config_t *cfg, size_t memory,
                             int sharers)
{
    if (cfg->max_state_bytes)
        return cfg->max_state_bytes;
    size_t b = memory / 4 / (size_t)(sharers > 0 ? sharers : 1);
    return b ? b : 1;
}

const char *cp_config_compressor_name(const cp_config_t *cfg)
{
    return cp_compressor_at((size_t)cfg->coll.compressor)->name;
}

void cp_config_to_coll(const cp_config_t *cfg, cp_coll_config_t *coll)
{
    cp_coll_build(&cfg->coll, coll, NULL, 0);
}
