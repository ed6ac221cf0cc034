#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Set at startup, read by every thread: atomics, relaxed. */
static _Atomic int cp_log_level = CP_LOG_WARN;
static _Atomic int cp_log_rank = -1;

void cp_log_set_level(cp_log_level_t level) { cp_log_level = (int)level; }
cp_log_level_t cp_log_get_level(void) { return (cp_log_level_t)cp_log_level; }
void cp_log_set_rank(int rank) { cp_log_rank = rank; }

int cp_log_rl(unsigned *counter, unsigned *k)
{
    *k = __atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
    return *k <= 5 || (*k & (*k - 1)) == 0;
}

void cp_log_printf(cp_log_level_t level, const char *fmt, ...)
{
    static const char *names[] = {"NONE", "WARN", "INFO", "TRACE"};
    char host[64] = "?";
    char line[1024];
    va_list ap;
    int off;

    if ((int)level > cp_log_level)
        return;
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    off = snprintf(line, sizeof(line), "%s:%d:%d commpress %s ", host,
                   (int)getpid(), (int)cp_log_rank, names[level]);
    va_start(ap, fmt);
    vsnprintf(line + off, sizeof(line) - (size_t)off, fmt, ap);
    va_end(ap);
    /* One write per line keeps lines from different ranks whole. */
    fprintf(stderr, "%s\n", line);
}

void cp_log_trace_error(const char *file, int line, cp_status_t st)
{
    cp_trace("%s:%d -> %d (%s)", file, line, (int)st, cp_status_string(st));
}
