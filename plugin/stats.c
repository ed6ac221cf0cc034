#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugin/stats.h"
#include "util/log.h"

static pthread_mutex_t cp_stats_lock = PTHREAD_MUTEX_INITIALIZER;
static commpress_stats_t cp_stats;

void cp_stats_accumulate(commpress_stats_t *s, const cp_coll_result_t *res)
{
    if (res->algo == CP_ALGO_PLAIN) {
        s->calls_plain++;
        s->calls_nonfinite += res->nonfinite != 0;
        s->bytes_uncompressed += res->bytes_dense;
        s->bytes_sent += res->bytes_sent;
        s->bytes_sent_uniform += res->bytes_sent;
        s->compress_seconds += res->compress_seconds;
        return;
    }
    s->calls_compressed++;
    s->calls_pipelined += res->pipelined != 0;
    s->calls_fused += res->fused != 0;
    s->calls_nonfinite += res->nonfinite != 0;
    s->calls_fallback += res->fallback != CP_FALLBACK_NONE && !res->nonfinite;
    s->bytes_uncompressed += res->bytes_dense;
    s->bytes_sent += cp_coll_wire_bytes(res);
    s->bytes_sent_uniform += res->bytes_uniform && !res->fallback
                                 ? res->bytes_uniform
                                 : cp_coll_wire_bytes(res);
    s->compress_seconds += res->compress_seconds;
    if ((res->algo == CP_ALGO_SPARSE || res->algo == CP_ALGO_SPARSE_RS) &&
        res->fallback == CP_FALLBACK_NONE) {
        s->calls_sparse++;
        s->bytes_uncompressed_sparse += res->bytes_dense;
        s->bytes_sent_sparse += res->bytes_sent;
    }
}

void cp_stats_set_ratio(commpress_stats_t *s)
{
    s->ratio = s->bytes_sent ? (double)s->bytes_uncompressed / (double)s->bytes_sent
                             : 0.0;
}

unsigned long long cp_stats_add_compressed(const cp_coll_result_t *res)
{
    pthread_mutex_lock(&cp_stats_lock);
    cp_stats_accumulate(&cp_stats, res);
    const unsigned long long n = cp_stats.calls_compressed + cp_stats.calls_plain;
    pthread_mutex_unlock(&cp_stats_lock);
    return n;
}

void cp_stats_add_passthrough(size_t bytes_dense)
{
    pthread_mutex_lock(&cp_stats_lock);
    cp_stats.calls_passthrough++;
    cp_stats.bytes_passthrough += bytes_dense;
    pthread_mutex_unlock(&cp_stats_lock);
}

static size_t cp_state_parts[CP_STATS_PARTS];

void cp_stats_state_charge(int part, size_t *charged, size_t bytes)
{
    pthread_mutex_lock(&cp_stats_lock);
    cp_state_parts[part] += bytes - *charged; /* modulo 2^64: exact */
    *charged = bytes;
    size_t total = 0;
    for (int i = 0; i < CP_STATS_PARTS; i++)
        total += cp_state_parts[i];
    cp_stats.state_bytes = total;
    if (total > cp_stats.state_bytes_peak)
        cp_stats.state_bytes_peak = total;
    pthread_mutex_unlock(&cp_stats_lock);
}

void cp_stats_add_dropped(size_t n)
{
    if (n == 0)
        return;
    pthread_mutex_lock(&cp_stats_lock);
    cp_stats.states_dropped += n;
    pthread_mutex_unlock(&cp_stats_lock);
}

static char *cp_last_plan; /* JSON array, rank 0's last L-GreCo plan */

void cp_stats_set_plan(const char *json)
{
    char *c = strdup(json);
    if (c == NULL)
        return;
    pthread_mutex_lock(&cp_stats_lock);
    free(cp_last_plan);
    cp_last_plan = c;
    pthread_mutex_unlock(&cp_stats_lock);
}

void cp_stats_add_plan(void)
{
    pthread_mutex_lock(&cp_stats_lock);
    cp_stats.adapt_plans++;
    pthread_mutex_unlock(&cp_stats_lock);
}

void cp_stats_add_a2a(size_t bytes_uncompressed, size_t bytes_sent)
{
    pthread_mutex_lock(&cp_stats_lock);
    cp_stats.a2a_calls_compressed++;
    cp_stats.a2a_bytes_uncompressed += bytes_uncompressed;
    cp_stats.a2a_bytes_sent += bytes_sent;
    pthread_mutex_unlock(&cp_stats_lock);
}

size_t cp_stats_state_with(int part, size_t charged, size_t bytes)
{
    pthread_mutex_lock(&cp_stats_lock);
    size_t b = cp_state_parts[part] - charged + bytes;
    pthread_mutex_unlock(&cp_stats_lock);
    return b;
}

void cp_stats_get(commpress_stats_t *out)
{
    pthread_mutex_lock(&cp_stats_lock);
    *out = cp_stats;
    cp_stats_set_ratio(out);
    pthread_mutex_unlock(&cp_stats_lock);
}

void cp_stats_path(const char *tmpl, int rank, int nranks, char *path,
                   size_t len)
{
    size_t o = 0;
    int has_rank = 0;
    for (const char *c = tmpl; *c && o + 16 < len; c++) {
        if (c[0] == '%' && c[1] == 'r') {
            o += (size_t)snprintf(path + o, len - o, "%d", rank);
            has_rank = 1;
            c++;
        } else {
            path[o++] = *c;
        }
    }
    /* Several ranks, one name: one file each, not a race for one file. */
    if (!has_rank && nranks > 1 && o + 16 < len)
        o += (size_t)snprintf(path + o, len - o, ".%d", rank);
    path[o] = '\0';
}

static double cp_stats_t0; /* the first line's clock (lines mode) */
static int cp_stats_lines; /* lines written: the first truncates the file */

int cp_stats_write_json(const char *tmpl, int rank, int nranks, int mode)
{
    char path[1200], extra[128] = "";
    commpress_stats_t s;
    FILE *f = NULL;
    int fd;

    cp_stats_path(tmpl, rank, nranks, path, sizeof(path));
    cp_stats_get(&s);
    pthread_mutex_lock(&cp_stats_lock);
    char *plan = cp_last_plan ? strdup(cp_last_plan) : NULL;
    int flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC;
    if (mode != CP_STATS_OBJECT) { /* JSON Lines: appended after the first */
        const double now = cp_now();
        if (cp_stats_lines++ == 0)
            cp_stats_t0 = now;
        else
            flags |= O_APPEND;
        snprintf(extra, sizeof(extra), "\"line\": %d, \"seconds\": %.3f, \"final\": %s, ",
                 cp_stats_lines, now - cp_stats_t0, mode == CP_STATS_FINAL ? "true" : "false");
    }
    pthread_mutex_unlock(&cp_stats_lock);
    if (!(flags & O_APPEND))
        flags |= O_TRUNC;
    /* A symbolic link planted at the path is not followed. */
    fd = open(path, flags, 0644);
    if (fd >= 0 && (f = fdopen(fd, "w")) == NULL)
        close(fd);
    if (f == NULL) {
        cp_warn("cannot write COMMPRESS_STATS_FILE %s: %s", path,
                strerror(errno));
        free(plan);
        return -1;
    }
    int w = fprintf(f,
            "{%s\"rank\": %d, \"calls_compressed\": %llu, "
            "\"calls_passthrough\": %llu, \"calls_nonfinite\": %llu, "
            "\"bytes_uncompressed\": %llu, \"bytes_sent\": %llu, "
            "\"bytes_passthrough\": %llu, \"ratio\": %.6g, "
            "\"compress_seconds\": %.6f, \"state_bytes\": %llu, "
            "\"state_bytes_peak\": %llu, \"calls_sparse\": %llu, "
            "\"bytes_uncompressed_sparse\": %llu, \"bytes_sent_sparse\": %llu, "
            "\"calls_fallback\": %llu, \"states_dropped\": %llu, "
            "\"adapt_plans\": %llu, \"bytes_sent_uniform\": %llu, "
            "\"a2a_calls_compressed\": %llu, \"a2a_bytes_uncompressed\": %llu, "
            "\"a2a_bytes_sent\": %llu, \"calls_plain\": %llu, "
            "\"calls_pipelined\": %llu, \"calls_fused\": %llu, "
            "\"adapt_last_plan\": %s}\n",
            extra, rank, (unsigned long long)s.calls_compressed,
            (unsigned long long)s.calls_passthrough,
            (unsigned long long)s.calls_nonfinite,
            (unsigned long long)s.bytes_uncompressed,
            (unsigned long long)s.bytes_sent,
            (unsigned long long)s.bytes_passthrough, s.ratio,
            s.compress_seconds, (unsigned long long)s.state_bytes,
            (unsigned long long)s.state_bytes_peak,
            (unsigned long long)s.calls_sparse,
            (unsigned long long)s.bytes_uncompressed_sparse,
            (unsigned long long)s.bytes_sent_sparse,
            (unsigned long long)s.calls_fallback,
            (unsigned long long)s.states_dropped,
            (unsigned long long)s.adapt_plans,
            (unsigned long long)s.bytes_sent_uniform,
            (unsigned long long)s.a2a_calls_compressed,
            (unsigned long long)s.a2a_bytes_uncompressed,
            (unsigned long long)s.a2a_bytes_sent,
            (unsigned long long)s.calls_plain,
            (unsigned long long)s.calls_pipelined,
            (unsigned long long)s.calls_fused, plan ? plan : "[]");
    free(plan);
    int err = w < 0 || ferror(f) ? errno : 0;
    if (fclose(f) != 0 && err == 0)
        err = errno ? errno : EIO;
    if (w < 0 && err == 0)
        err = EIO;
    if (err) {
        cp_warn("cannot write COMMPRESS_STATS_FILE %s: %s", path,
                strerror(err));
        return -1;
    }
    return 0;
}

void cp_stats_print_summary(int rank, const char *compressor)
{
    commpress_stats_t s;
    cp_stats_get(&s);
    cp_info("summary rank %d: compressor %s, %llu calls compressed "
            "(%llu non-finite and %llu after a failure, sent exact), %llu "
            "plain by the policy, %llu passed through; "
            "%.3f MB a plain allreduce would send, %.3f MB sent, ratio %.2fx; "
            "%.3f s compressing; state %.1f MB",
            rank, compressor, (unsigned long long)s.calls_compressed,
            (unsigned long long)s.calls_nonfinite,
            (unsigned long long)s.calls_fallback,
            (unsigned long long)s.calls_plain,
            (unsigned long long)s.calls_passthrough,
            (double)s.bytes_uncompressed / 1e6, (double)s.bytes_sent / 1e6,
            s.ratio, s.compress_seconds, (double)s.state_bytes_peak / 1e6);
    if (s.a2a_calls_compressed)
        cp_info("summary rank %d: %llu all-to-alls compressed: %.3f MB of "
                "blocks to other ranks sent as %.3f MB (%.2fx)",
                rank, (unsigned long long)s.a2a_calls_compressed,
                (double)s.a2a_bytes_uncompressed / 1e6,
                (double)s.a2a_bytes_sent / 1e6,
                s.a2a_bytes_sent ? (double)s.a2a_bytes_uncompressed /
                                       (double)s.a2a_bytes_sent : 0.0);
}
