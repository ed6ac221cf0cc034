#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "plugin/stats.h"
#include "util/log.h"

static pthread_mutex_t cp_stats_lock = PTHREAD_MUTEX_INITIALIZER;
static commpress_stats_t cp_stats;

void cp_stats_accumulate(commpress_stats_t *s, const cp_coll_result_t *res)
{
    s->calls_compressed++;
    s->calls_nonfinite += res->nonfinite != 0;
    s->calls_fallback += res->fallback != CP_FALLBACK_NONE && !res->nonfinite;
    s->bytes_uncompressed += res->bytes_dense;
    s->bytes_sent += cp_coll_wire_bytes(res);
    s->compress_seconds += res->compress_seconds;
    if (res->algo == CP_ALGO_SPARSE && res->fallback == CP_FALLBACK_NONE) {
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

void cp_stats_add_compressed(const cp_coll_result_t *res)
{
    pthread_mutex_lock(&cp_stats_lock);
    cp_stats_accumulate(&cp_stats, res);
    pthread_mutex_unlock(&cp_stats_lock);
}

void cp_stats_add_passthrough(size_t bytes_dense)
{
    pthread_mutex_lock(&cp_stats_lock);
    cp_stats.calls_passthrough++;
    cp_stats.bytes_passthrough += bytes_dense;
    pthread_mutex_unlock(&cp_stats_lock);
}

static size_t cp_state_parts[2];

void cp_stats_set_state_bytes_part(int part, size_t bytes)
{
    pthread_mutex_lock(&cp_stats_lock);
    cp_state_parts[part] = bytes;
    bytes = cp_state_parts[0] + cp_state_parts[1];
    cp_stats.state_bytes = bytes;
    if (bytes > cp_stats.state_bytes_peak)
        cp_stats.state_bytes_peak = bytes;
    pthread_mutex_unlock(&cp_stats_lock);
}

void cp_stats_get(commpress_stats_t *out)
{
    pthread_mutex_lock(&cp_stats_lock);
    *out = cp_stats;
    cp_stats_set_ratio(out);
    pthread_mutex_unlock(&cp_stats_lock);
}

int cp_stats_write_json(const char *tmpl, int rank)
{
    char path[1200];
    size_t o = 0;
    commpress_stats_t s;
    FILE *f;

    for (const char *c = tmpl; *c && o + 16 < sizeof(path); c++) {
        if (c[0] == '%' && c[1] == 'r') {
            o += (size_t)snprintf(path + o, sizeof(path) - o, "%d", rank);
            c++;
        } else {
            path[o++] = *c;
        }
    }
    path[o] = '\0';
    cp_stats_get(&s);
    f = fopen(path, "w");
    if (f == NULL) {
        cp_warn("cannot write COMMPRESS_STATS_FILE %s", path);
        return -1;
    }
    fprintf(f,
            "{\"rank\": %d, \"calls_compressed\": %llu, "
            "\"calls_passthrough\": %llu, \"calls_nonfinite\": %llu, "
            "\"bytes_uncompressed\": %llu, \"bytes_sent\": %llu, "
            "\"bytes_passthrough\": %llu, \"ratio\": %.6g, "
            "\"compress_seconds\": %.6f, \"state_bytes\": %llu, "
            "\"state_bytes_peak\": %llu, \"calls_sparse\": %llu, "
            "\"bytes_uncompressed_sparse\": %llu, \"bytes_sent_sparse\": %llu, "
            "\"calls_fallback\": %llu}\n",
            rank, (unsigned long long)s.calls_compressed,
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
            (unsigned long long)s.calls_fallback);
    return fclose(f) == 0 ? 0 : -1;
}

void cp_stats_print_summary(int rank, const char *compressor)
{
    commpress_stats_t s;
    cp_stats_get(&s);
    cp_info("summary rank %d: compressor %s, %llu calls compressed "
            "(%llu non-finite and %llu after a failure, sent exact), %llu "
            "passed through; "
            "%.3f MB a plain allreduce would send, %.3f MB sent, ratio %.2fx; "
            "%.3f s compressing; state %.1f MB",
            rank, compressor, (unsigned long long)s.calls_compressed,
            (unsigned long long)s.calls_nonfinite,
            (unsigned long long)s.calls_fallback,
            (unsigned long long)s.calls_passthrough,
            (double)s.bytes_uncompressed / 1e6, (double)s.bytes_sent / 1e6,
            s.ratio, s.compress_seconds, (double)s.state_bytes_peak / 1e6);
}
