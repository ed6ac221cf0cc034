/* A benchmark setting, "name[:key=value,...]": a codec of the registry and
 * values for its configuration rows. key is a row's name without
 * COMMPRESS_, or its last words when the codec's own row ends in them
 * (case-insensitive): "topk:density=0.001,select=exact",
 * "quant:bits=2,rounding=stochastic", "randk:density=0.05",
 * "sign:feedback=none". Values are validated as the environment's are. */
#ifndef CP_BENCH_SPEC_H
#define CP_BENCH_SPEC_H

#include <stddef.h>

#include "collectives/coll_config.h"

typedef struct {
    char text[128];
    const cp_compressor_ops_t *codec;
    cp_coll_settings_t s;
    char vars[512]; /* the rows set, "NAME=value ..." (commpress_config_t's
                       settings) */
} bench_spec_t;

/* 0, or -1 with the one-line reason in err. */
int bench_spec_parse(const char *text, bench_spec_t *b, char *err, size_t len);

/* The codec's parameters under these settings. */
const cp_params_t *bench_spec_params(const bench_spec_t *b);

/* The kernels' list: every codec of the registry but the identity at its
 * defaults, then a few other widths and densities. Returns how many (at
 * most max). */
size_t bench_kernel_specs(bench_spec_t *out, size_t max);

#endif
