/* Logging in NCCL's shape: COMMPRESS_DEBUG=WARN|INFO|TRACE, each line
 * prefixed with host:pid:rank so interleaved output of many ranks can be
 * sorted out. Levels are a process-wide setting made once at startup. */
#ifndef CP_LOG_H
#define CP_LOG_H

#include "util/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CP_LOG_NONE = 0,
    CP_LOG_WARN = 1,
    CP_LOG_INFO = 2,
    CP_LOG_TRACE = 3,
} cp_log_level_t;

void cp_log_set_level(cp_log_level_t level);
cp_log_level_t cp_log_get_level(void);
void cp_log_set_rank(int rank);
void cp_log_printf(cp_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define cp_warn(...) cp_log_printf(CP_LOG_WARN, __VA_ARGS__)
#define cp_info(...)                                                        \
    do {                                                                    \
        if (cp_log_get_level() >= CP_LOG_INFO)                              \
            cp_log_printf(CP_LOG_INFO, __VA_ARGS__);                        \
    } while (0)
#define cp_trace(...)                                                       \
    do {                                                                    \
        if (cp_log_get_level() >= CP_LOG_TRACE)                             \
            cp_log_printf(CP_LOG_TRACE, __VA_ARGS__);                       \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif
