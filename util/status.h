/* Status codes: 0 is success, errors are negative. One X-macro list makes
 * both the enum and the string table, so they cannot drift apart. */
#ifndef CP_STATUS_H
#define CP_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

#define CP_STATUS_MAP(X)                                                    \
    X(CP_OK, 0, "success")                                                  \
    X(CP_ERR_INVALID, -1, "invalid argument")                               \
    X(CP_ERR_NOMEM, -2, "out of memory")                                    \
    X(CP_ERR_MALFORMED, -3, "malformed compressed message")                 \
    X(CP_ERR_NOSPACE, -4, "output buffer too small")                        \
    X(CP_ERR_TRANSPORT, -5, "transport (MPI/NCCL) call failed")             \
    X(CP_ERR_UNSUPPORTED, -6, "unsupported operation")                      \
    X(CP_ERR_CONFIG, -7, "invalid configuration")                           \
    X(CP_ERR_MISMATCH, -8, "configuration differs across ranks")           \
    X(CP_ERR_NONFINITE, -9, "non-finite values on some rank: step skipped") \
    X(CP_ERR_RANGE, -10, "values beyond what the codec can represent")    \
    X(CP_ERR_RANKS, -11, "the ranks disagree: another rank failed, or holds another step")

typedef enum {
#define CP_STATUS_ENUM(name, value, text) name = value,
    CP_STATUS_MAP(CP_STATUS_ENUM)
#undef CP_STATUS_ENUM
} cp_status_t;

const char *cp_status_string(cp_status_t status);

/* Propagate an error, leaving a trail at TRACE level (file:line), the way
 * NCCLCHECK gives a poor man's backtrace. */
#define CP_CHECK(call)                                                      \
    do {                                                                    \
        cp_status_t cp_check_st_ = (call);                                  \
        if (cp_check_st_ != CP_OK) {                                        \
            cp_log_trace_error(__FILE__, __LINE__, cp_check_st_);           \
            return cp_check_st_;                                            \
        }                                                                   \
    } while (0)

#define CP_CHECK_GOTO(call, st, label)                                      \
    do {                                                                    \
        (st) = (call);                                                      \
        if ((st) != CP_OK) {                                                \
            cp_log_trace_error(__FILE__, __LINE__, (st));                   \
            goto label;                                                     \
        }                                                                   \
    } while (0)

void cp_log_trace_error(const char *file, int line, cp_status_t st);

#ifdef __cplusplus
}
#endif

#endif
