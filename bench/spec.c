#include "bench/spec.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* The row a key names for this codec: the codec's own row ending in
 * _KEY, else COMMPRESS_KEY. */
static void row_name(const cp_compressor_ops_t *c, const char *key, char *out,
                     size_t len)
{
    char up[64];
    size_t n = 0;
    for (; key[n] && n + 1 < sizeof(up); n++)
        up[n] = (char)toupper((unsigned char)key[n]);
    up[n] = '\0';
    for (size_t i = 0; i < c->nparams; i++) {
        const char *name = c->params[i].name;
        size_t m = strlen(name);
        if (m > n && name[m - n - 1] == '_' && strcmp(name + m - n, up) == 0) {
            snprintf(out, len, "%s", name);
            return;
        }
    }
    snprintf(out, len, "COMMPRESS_%s", up);
}

/* Whether the row is another codec's (a setting that would do nothing). */
static int other_codecs(const cp_compressor_ops_t *c, const char *var)
{
    for (size_t i = 0; i < c->nparams; i++)
        if (strcmp(c->params[i].name, var) == 0)
            return 0;
    for (size_t k = 0; k < cp_compressor_count(); k++) {
        const cp_compressor_ops_t *o = cp_compressor_at(k);
        for (size_t i = 0; i < o->nparams; i++)
            if (strcmp(o->params[i].name, var) == 0)
                return 1;
    }
    return 0;
}

int bench_spec_parse(const char *text, bench_spec_t *b, char *err, size_t len)
{
    char buf[128], *save = NULL;
    memset(b, 0, sizeof(*b));
    snprintf(b->text, sizeof(b->text), "%s", text);
    snprintf(buf, sizeof(buf), "%s", text);
    cp_coll_settings_defaults(&b->s);
    char *name = strtok_r(buf, ":", &save), *rest = strtok_r(NULL, "", &save);
    b->codec = name ? cp_compressor_find(name) : NULL;
    if (b->codec == NULL) {
        snprintf(err, len, "unknown compressor in '%s' (commpress-info lists them)",
                 text);
        return -1;
    }
    if (cp_coll_settings_set(&b->s, "COMMPRESS_COMPRESSOR", name, err, len) != CP_OK)
        return -1;
    for (char *kv = rest ? strtok_r(rest, ",", &save) : NULL; kv;
         kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '='), var[96];
        if (eq == NULL) {
            snprintf(err, len, "expected key=value in '%s'", text);
            return -1;
        }
        *eq = '\0';
        row_name(b->codec, kv, var, sizeof(var));
        if (other_codecs(b->codec, var)) {
            snprintf(err, len, "'%s' (%s) is not a setting of %s in '%s'", kv,
                     var, b->codec->name, text);
            return -1;
        }
        cp_status_t st = cp_coll_settings_set(&b->s, var, eq + 1, err, len);
        if (st == CP_ERR_INVALID)
            snprintf(err, len, "unknown setting '%s' in '%s'", kv, text);
        if (st != CP_OK)
            return -1;
        size_t used = strlen(b->vars);
        snprintf(b->vars + used, sizeof(b->vars) - used, "%s%s=%s",
                 used ? " " : "", var, eq + 1);
    }
    return 0;
}

const cp_params_t *bench_spec_params(const bench_spec_t *b)
{
    return &b->s.codec[cp_compressor_index(b->codec->name)];
}

size_t bench_kernel_specs(bench_spec_t *out, size_t max)
{
    static const char *const more[] = {"quant:bits=8", "quant:bits=2",
                                       "topk:density=0.001"};
    char err[256];
    size_t n = 0;
    for (size_t i = 0; i < cp_compressor_count() && n < max; i++) {
        const cp_compressor_ops_t *c = cp_compressor_at(i);
        if (!(c->caps & CP_CODEC_IDENTITY) &&
            bench_spec_parse(c->name, &out[n], err, sizeof(err)) == 0)
            n++;
    }
    for (size_t i = 0; i < sizeof(more) / sizeof(*more) && n < max; i++)
        if (bench_spec_parse(more[i], &out[n], err, sizeof(err)) == 0)
            n++;
    return n;
}
