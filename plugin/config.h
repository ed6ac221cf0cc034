/* Runtime configuration: environment variables COMMPRESS_*, described by one
 * table (plugin/config.c) that drives parsing, validation, the cross-rank
 * hash, `commpress-info` and docs/configuration.md. */
#ifndef CP_CONFIG_H
#define CP_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "collectives/allreduce.h"

typedef enum { CP_KEY_AUTO = 0, CP_KEY_ADDRESS = 1, CP_KEY_ORDER = 2 } cp_state_key_t;

typedef struct {
    int compressor;          /* index into the compressor choices */
    double density;
    int bits;
    size_t bucket;
    int rounding;            /* cp_rounding_t */
    int feedback;            /* 0 auto, 1 none, 2 ef, 3 ef21, 4 econtrol */
    double econtrol_eta;
    double ef21_sgdm_eta;
    double dgc_momentum;
    double dgc_clip;         /* 0: off */
    size_t dgc_warmup_steps;
    size_t dgc_dense_below;
    int topk_select;         /* cp_topk_select_t */
    size_t topk_sample_min;
    int topk_values;         /* 0 f32, 1 fp16 */
    int algo;                /* cp_algo_t */
    size_t min_bytes;
    size_t min_ranks;
    int state_key;           /* cp_state_key_t */
    size_t step_calls;
    size_t max_tensors;
    uint64_t seed;
    int debug;               /* cp_log_level_t */
    char stats_file[1024];
    char fault[256];         /* testing: util/fault.h */
} cp_config_t;

#define CP_CONFIG_MAX_FIELDS 32

/* Parses the environment. On error returns CP_ERR_CONFIG with the one-line
 * message in err ("COMMPRESS_X='v' is invalid: accepted ..."). */
cp_status_t cp_config_parse_env(cp_config_t *cfg, char *err, size_t errlen);
void cp_config_defaults(cp_config_t *cfg);
/* Per-field hashes of the values that must agree across ranks; returns the
 * number of fields. names[i] is the variable of hash i. */
size_t cp_config_hashes(const cp_config_t *cfg, uint64_t *h,
                        const char **names);
/* After a max-allreduce of the hashes h (giving max_h) and of ~h (giving
 * max_not_h): the number of variables that differ across ranks, listed in
 * line as "VAR (rank 0 has VAR=value), ..." (this rank's values). */
size_t cp_config_mismatches(const cp_config_t *cfg, const uint64_t *h,
                            const char **names, size_t nf,
                            const uint64_t *max_h, const uint64_t *max_not_h,
                            char *line, size_t len);

/* "VAR=value" of field named `name`, for error messages. */
void cp_config_format(const cp_config_t *cfg, const char *name, char *buf,
                      size_t len);
/* Prints every variable, its value and its doc; markdown when md != 0. */
void cp_config_print(const cp_config_t *cfg, FILE *f, int md);
/* Warns about COMMPRESS_* variables the table does not know. */
void cp_config_warn_unknown(void);

/* The collective configuration the settings imply. */
void cp_config_to_coll(const cp_config_t *cfg, cp_coll_config_t *coll);
const char *cp_config_compressor_name(const cp_config_t *cfg);

#endif
