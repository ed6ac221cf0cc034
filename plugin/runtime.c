#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/runtime.h"
#include "util/fault.h"
#include "util/log.h"

static pthread_mutex_t cp_rt_lock = PTHREAD_MUTEX_INITIALIZER;
static int cp_rt_loaded;
static cp_status_t cp_rt_status;
static char cp_rt_err[512];
static cp_config_t cp_rt_cfg;
static cp_coll_config_t cp_rt_coll;

cp_status_t cp_runtime_load(char *err, size_t errlen)
{
    pthread_mutex_lock(&cp_rt_lock);
    if (!cp_rt_loaded) {
        cp_rt_status = cp_config_parse_env(&cp_rt_cfg, cp_rt_err,
                                           sizeof(cp_rt_err));
        if (cp_rt_status == CP_OK) {
            cp_log_set_level((cp_log_level_t)cp_rt_cfg.debug);
            cp_config_to_coll(&cp_rt_cfg, &cp_rt_coll);
            cp_fault_configure(cp_rt_cfg.fault);
        }
        cp_rt_loaded = 1;
    }
    if (err && errlen)
        snprintf(err, errlen, "%s", cp_rt_err);
    pthread_mutex_unlock(&cp_rt_lock);
    return cp_rt_status;
}

void cp_runtime_load_or_exit(void)
{
    char err[512];
    if (cp_runtime_load(err, sizeof(err)) != CP_OK) {
        fprintf(stderr, "commpress: error: %s\n", err);
        fflush(stderr);
        exit(1);
    }
}

const cp_config_t *cp_runtime_config(void) { return &cp_rt_cfg; }
const cp_coll_config_t *cp_runtime_coll(void) { return &cp_rt_coll; }
