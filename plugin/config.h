/* Runtime configuration: environment variables COMMPRESS_*. Every one is a
 * configuration row (util/param.h): the plugin's own here, the collective's
 * and every codec's and feedback variant's in their files
 * (collectives/coll_config.h). One table drives parsing, validation, the
 * cross-rank hash, `commpress-info` and docs/configuration.md. */
#ifndef CP_CONFIG_H
#define CP_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "collectives/coll_config.h"

typedef enum { CP_KEY_AUTO = 0, CP_KEY_ADDRESS = 1, CP_KEY_ORDER = 2 } cp_state_key_t;

typedef struct {
    cp_coll_settings_t coll; /* compressor, feedback, their parameters */
    size_t min_bytes;
    size_t min_ranks;
    int state_key;           /* cp_state_key_t */
    size_t step_calls;
    size_t max_tensors;
    size_t max_state_bytes;  /* 0: auto (cp_config_state_limit) */
    int debug;               /* cp_log_level_t */
    char stats_file[1024];
    size_t stats_every;      /* JSON lines every this many calls; 0: off */
    char fault[256];         /* testing: util/fault.h */
    int alltoall;            /* cp_a2a_mode_t: MPI_Alltoall(v) (docs/moe.md) */
    size_t a2a_row;          /* floats per token row; 0: unset */
    size_t a2a_hashes;
    double a2a_max_fraction;
    int policy;              /* cp_policy_mode_t (docs/policy.md) */
    char policy_times[256];  /* testing: plugin/policy.h */
    int hierarchy;           /* cp_hier_mode_t (docs/scaling.md) */
    size_t hier_test_node;   /* testing: ranks per emulated node (0: MPI's) */
} cp_config_t;

typedef enum {
    CP_HIER_AUTO = 0,
    CP_HIER_FLAT = 1,
    CP_HIER_NODE = 2,
    CP_HIER_STRIPE = 3,
} cp_hier_mode_t;

typedef enum { CP_POLICY_AUTO = 0, CP_POLICY_ALWAYS = 1 } cp_policy_mode_t;

typedef enum { CP_A2A_NONE = 0, CP_A2A_LSH, CP_A2A_FP16, CP_A2A_BF16 } cp_a2a_mode_t;

#define CP_CONFIG_MAX_FIELDS 64

/* Parses the environment. On error returns CP_ERR_CONFIG with the one-line
 * message in err ("COMMPRESS_X='v' is invalid; accepted ..."). */
cp_status_t cp_config_parse_env(cp_config_t *cfg, char *err, size_t errlen);
void cp_config_defaults(cp_config_t *cfg);
/* COMMPRESS_MAX_STATE_BYTES resolved: the value, or for 0 (auto) a
 * quarter of `memory` shared by `sharers` processes (a node's memory and
 * its ranks; a GPU's memory and 1). */
size_t cp_config_state_limit(const cp_config_t *cfg, size_t memory,
                             int sharers);
/* Per-variable hashes of the values that must agree across ranks; returns
 * the number of variables. names[i] is the variable of hash i. */
size_t cp_config_hashes(const cp_config_t *cfg, uint64_t *h, const char **names);
/* After a max-allreduce of the hashes h (giving max_h) and of ~h (giving
 * max_not_h): the number of variables that differ across ranks, listed in
 * line as "VAR (rank 0 has VAR=value), ..." (this rank's values). */
size_t cp_config_mismatches(const cp_config_t *cfg, const uint64_t *h,
                            const char **names, size_t nf,
                            const uint64_t *max_h, const uint64_t *max_not_h,
                            char *line, size_t len);

/* "VAR=value" of variable `name`, for error messages. */
void cp_config_format(const cp_config_t *cfg, const char *name, char *buf,
                      size_t len);
/* Prints every variable, its value and its doc; markdown when md != 0. */
void cp_config_print(const cp_config_t *cfg, FILE *f, int md);
/* The configuration in effect: the codec and variant it runs, then the
 * value of every variable that applies to them (those away from their
 * default marked), one per line. */
void cp_config_print_active(const cp_config_t *cfg, FILE *f);
/* Warns about COMMPRESS_* variables no row knows. */
void cp_config_warn_unknown(void);

/* The collective configuration the settings imply (valid: parsed). */
void cp_config_to_coll(const cp_config_t *cfg, cp_coll_config_t *coll);
const char *cp_config_compressor_name(const cp_config_t *cfg);

#endif
