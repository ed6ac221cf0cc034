/* The settings of a collective and the one builder that turns them into
 * the configuration it runs with, used alike by the environment
 * (plugin/config.c), the public API (plugin/api.c) and the federated
 * configuration (optim/fl.c): one validation, one hash.
 *
 * Every setting is a configuration row (util/param.h): the collective's own
 * (COMMPRESS_COMPRESSOR, _FEEDBACK, _ALLREDUCE_ALGO, _SEED) and the rows each
 * codec and feedback variant declares in its file. Each codec has its own
 * parameter block and each variant its own (two codecs may both read
 * COMMPRESS_DENSITY; randk reads its own COMMPRESS_RANDK_DENSITY), so a new
 * codec adds rows without touching this file. */
#ifndef CP_COLL_CONFIG_H
#define CP_COLL_CONFIG_H

#include "collectives/coll.h"
#include "util/param.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int compressor;  /* index in the codec registry */
    int feedback;    /* 0: auto; i > 0: the i-th choice of COMMPRESS_FEEDBACK */
    int algo;        /* cp_algo_t */
    int pipeline;    /* COMMPRESS_PIPELINE: 0 off, 1 on */
    int fuse;        /* COMMPRESS_FUSE: 0 off, 1 on */
    uint64_t seed;
    cp_adapt_t adapt;                   /* COMMPRESS_ADAPT* (L-GreCo) */
    cp_params_t codec[CP_MAX_CODECS];   /* one block per codec */
    cp_fb_params_t fb[CP_MAX_FEEDBACKS]; /* one block per variant */
} cp_coll_settings_t;

/* A row and the place it is stored; dup: another row of the same name came
 * first (a row two codecs share), so it is not printed or hashed again. */
typedef struct {
    const cp_param_t *row;
    void *base;
    int dup;
} cp_row_t;
#define CP_COLL_MAX_ROWS 64

void cp_coll_settings_defaults(cp_coll_settings_t *s);
/* Every row with its place in s, in documentation order; returns how many. */
size_t cp_coll_settings_rows(cp_coll_settings_t *s, cp_row_t *rows, size_t max);
/* Sets variable `name` (all its places) from text as the environment
 * would: CP_ERR_CONFIG with the one-line message ("NAME='v' is invalid;
 * accepted: ...") when the text is not accepted, CP_ERR_INVALID when no
 * row has that name. */
cp_status_t cp_coll_settings_set(cp_coll_settings_t *s, const char *name,
                                 const char *value, char *err, size_t len);
/* cp_coll_settings_set with a printf-formatted value, unless *st already
 * holds a failure: a struct's fields are set in a row and checked once. */
void cp_coll_settings_setf(cp_coll_settings_t *s, cp_status_t *st,
                           const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Applies "NAME=value" items separated by spaces or commas, in order,
 * each as cp_coll_settings_set; CP_ERR_CONFIG with the one-line message
 * on the first one not accepted (or not a collective row). */
cp_status_t cp_coll_settings_apply(cp_coll_settings_t *s, const char *list,
                                   char *err, size_t len);
/* The first row named `name`, NULL if none. */
const cp_param_t *cp_coll_row(const char *name);
/* One hash of every row that must match across ranks. */
uint64_t cp_coll_settings_hash(cp_coll_settings_t *s);

/* The one builder: what the settings configure, or CP_ERR_CONFIG with the
 * one-line message for a combination that is not allowed. */
cp_status_t cp_coll_build(const cp_coll_settings_t *s, cp_coll_config_t *out,
                          char *err, size_t len);
/* COMMPRESS_FEEDBACK=auto: the codec's own (DGC's), else ef for a biased
 * codec, none for the others. */
const cp_feedback_ops_t *cp_coll_auto_feedback(const cp_compressor_ops_t *codec);
/* What the GPU path cannot run in the settings, as the one-line message
 * naming the variable, or NULL: a codec or variant with no GPU twin, a
 * row marked cpu_only away from its default. */
const char *cp_coll_gpu_refusal(cp_coll_settings_t *s, char *buf, size_t len);

/* The codec's and the variant's name of a settings value. */
const cp_feedback_ops_t *cp_coll_feedback_choice(int i);

#ifdef __cplusplus
}
#endif

#endif
