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
/* A warning that can repeat (once per call, say) is rate-limited per call
 * site: its first 5 occurrences are printed, then only the 2^k-th ones,
 * each followed by how many there were so far. Thread-safe. */
int cp_log_rl(unsigned *counter, unsigned *k);
#define cp_warn_rl(...)                                                     \
    do {                                                                    \
        static unsigned cp_rl_count_;                                       \
        unsigned cp_rl_k_;                                                  \
        if (cp_log_rl(&cp_rl_count_, &cp_rl_k_)) {                          \
            cp_log_printf(CP_LOG_WARN, __VA_ARGS__);                        \
            if (cp_rl_k_ >= 5)                                              \
                cp_log_printf(CP_LOG_WARN,                                  \
                              "(the warning above, %u times so far; only "  \
                              "its 2^k-th repeats are printed)",            \
                              cp_rl_k_);                                    \
        }                                                                   \
    } while (0)
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
