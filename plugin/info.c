/* commpress-info: what this build of commpress is and does, as ucx_info is
 * to UCX.
 *
 *   commpress-info              version, build capabilities, every codec and
 *                               feedback variant with its parameters
 *   commpress-info -c           the configuration this environment gives
 *                               (COMMPRESS_*), or the one-line error a job
 *                               would stop with (exit status 1)
 *   commpress-info --markdown   the table of docs/configuration.md
 *   commpress-info --codecs     the codec names, one per line (scripts)
 *
 * Everything comes from the registries and the configuration rows: a codec
 * added in its own file shows here with no change to this one. */
#include <stdio.h>
#include <string.h>

#include "collectives/coll_config.h"
#include "plugin/config.h"
#include "util/simd.h"

#ifndef CP_VERSION
#define CP_VERSION "unknown"
#endif

/* text, wrapped at 78 columns, each line indented by `ind` spaces. */
static void wrap(const char *text, int ind)
{
    const char *p = text;
    while (*p) {
        int width = 78 - ind, len = (int)strlen(p);
        if (len > width) {
            len = width;
            while (len > 0 && p[len] != ' ')
                len--;
            if (len == 0)
                len = width;
        }
        printf("%*s%.*s\n", ind, "", len, p);
        p += len;
        while (*p == ' ')
            p++;
    }
}

static void print_rows(const cp_param_t *rows, size_t n)
{
    char acc[256], line[512];
    for (size_t i = 0; i < n; i++) {
        cp_param_accepted(&rows[i], acc, sizeof(acc));
        printf("      %s (default %s; %s)%s\n", rows[i].name,
               rows[i].dflt[0] ? rows[i].dflt : "unset", acc,
               rows[i].cpu_only ? " [MPI path only away from the default]"
                                : "");
        snprintf(line, sizeof(line), "%s", rows[i].doc);
        wrap(line, 10);
    }
}

static void build_caps(void)
{
    printf("build:\n");
#ifdef CP_HAVE_CUDA
    printf("  CUDA/NCCL path      yes (ncclAllReduce intercepted; GPU codecs "
           "marked [gpu])\n");
#else
    printf("  CUDA/NCCL path      no (configured without CUDA/NCCL)\n");
#endif
#ifdef CP_HAVE_MPI_ALLREDUCE_C
    printf("  MPI_Allreduce_c     yes (MPI 4 large-count calls intercepted)\n");
#else
    printf("  MPI_Allreduce_c     no (this MPI has none)\n");
#endif
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    __builtin_cpu_init();
    printf("  AVX2 clones         %s (this CPU runs the %s one)\n",
           CP_SIMD_CLONES ? "yes" : "no",
           CP_SIMD_CLONES && __builtin_cpu_supports("avx2") ? "AVX2"
                                                            : "baseline");
#else
    printf("  AVX2 clones         no (not an x86-64 GCC build)\n");
#endif
}

#ifdef CP_HAVE_CUDA
static const int gpu_build = 1;
#else
static const int gpu_build = 0;
#endif

static void list(void)
{
    printf("commpress %s\n", CP_VERSION);
    build_caps();
    printf("\ncodecs (COMMPRESS_COMPRESSOR):\n");
    for (size_t i = 0; i < cp_compressor_count(); i++) {
        const cp_compressor_ops_t *c = cp_compressor_at(i);
        printf("  %-8s %s algorithm, feedback %s%s%s\n", c->name,
               c->caps & CP_CODEC_IDENTITY ? "pass-through"
               : c->caps & CP_CODEC_SPARSE ? "sparse allgather"
                                           : "two-phase",
               cp_coll_auto_feedback(c)->name,
               c->feedback ? " (its own, fixed)" : " by default",
               c->gpu ? " [gpu]" : "");
        wrap(c->doc, 6);
        print_rows(c->params, c->nparams);
    }
    printf("\nfeedback variants (COMMPRESS_FEEDBACK):\n");
    for (size_t i = 0; i < cp_feedback_count(); i++) {
        const cp_feedback_ops_t *v = cp_feedback_at(i);
        printf("  %s%s%s\n", v->name,
               v->flags & CP_FB_FIXED ? " (a codec's own, not a choice)" : "",
               gpu_build && cp_feedback_on_gpu(v) ? " [gpu]" : "");
        wrap(v->doc, 6);
        print_rows(v->params, v->nparams);
    }
    printf("\nall variables: commpress-info --markdown; "
           "the current environment: commpress-info -c\n");
}

int main(int argc, char **argv)
{
    cp_config_t cfg;
    char err[512];
    const char *opt = argc > 1 ? argv[1] : "";

    if (argc > 2 || (argc == 2 && strcmp(opt, "-c") && strcmp(opt, "--markdown") &&
                     strcmp(opt, "--codecs"))) {
        fprintf(stderr, "usage: commpress-info [-c | --markdown | --codecs]\n");
        return 2;
    }
    if (!strcmp(opt, "--markdown")) {
        cp_config_defaults(&cfg);
        cp_config_print(&cfg, stdout, 1);
    } else if (!strcmp(opt, "--codecs")) {
        for (size_t i = 0; i < cp_compressor_count(); i++)
            printf("%s\n", cp_compressor_at(i)->name);
    } else if (!strcmp(opt, "-c")) {
        if (cp_config_parse_env(&cfg, err, sizeof(err)) != CP_OK) {
            fprintf(stderr, "commpress: error: %s\n", err);
            return 1;
        }
        cp_config_print_active(&cfg, stdout);
#ifdef CP_HAVE_CUDA
        const char *no = cp_coll_gpu_refusal(&cfg.coll, err, sizeof(err));
        printf("NCCL path: %s\n", no ? no : "runs this configuration");
#endif
    } else {
        list();
    }
    return 0;
}
