/* What the NCCL path refuses at init, through the one generic check
 * (cp_coll_gpu_refusal): a codec with no GPU twin, a feedback variant
 * with neither a twin nor CP_FB_GPU (none today), a cpu_only row away from
 * its default (none today), the MPI-only settings. Linked with the
 * GPU objects (the codecs' twins resolve); needs no GPU to run. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "collectives/coll_config.h"

static const char *refusal(const char *const *set, char *buf, size_t len)
{
    cp_coll_settings_t s;
    char err[256];
    cp_coll_settings_defaults(&s);
    for (; *set; set += 2)
        cr_assert_eq(cp_coll_settings_set(&s, set[0], set[1], err, sizeof(err)),
                     CP_OK, "%s=%s", set[0], set[1]);
    return cp_coll_gpu_refusal(&s, buf, len);
}

#define REFUSAL(...) refusal((const char *const[]){__VA_ARGS__, NULL}, buf, sizeof(buf))

Test(gpu_refusal, twins_resolve)
{
    static const char *const gpu[] = {"none", "fp16", "bf16", "topk", "sign", "quant", "dgc"};
    for (size_t i = 0; i < sizeof(gpu) / sizeof(*gpu); i++)
        cr_assert_not_null(cp_compressor_find(gpu[i])->gpu, "%s", gpu[i]);
    cr_assert_null(cp_compressor_find("randk")->gpu);
    /* dgc sends topk's messages: the same twin. */
    cr_assert_eq(cp_compressor_find("dgc")->gpu, cp_compressor_find("topk")->gpu);
    /* Every feedback variant runs on the GPU: none and ef by hand, the
     * others through their twins (compressors/cuda/feedback.cu). */
    static const char *const twins[] = {"ef21", "econtrol", "ef21-sgdm", "dgc"};
    for (size_t i = 0; i < sizeof(twins) / sizeof(*twins); i++)
        cr_assert_not_null(cp_feedback_find(twins[i])->gpu, "%s", twins[i]);
    cr_assert_null(cp_feedback_find("none")->gpu);
    cr_assert_null(cp_feedback_find("ef")->gpu);
    for (size_t i = 0; i < cp_feedback_count(); i++)
        cr_assert(cp_feedback_on_gpu(cp_feedback_at(i)), "%s", cp_feedback_at(i)->name);
}

Test(gpu_refusal, what_runs)
{
    char buf[512];
    static const char *const codecs[] = {"none", "fp16", "bf16", "topk", "sign", "quant"};
    static const char *const fbs[] = {"auto", "none", "ef", "ef21", "econtrol", "ef21-sgdm"};
    for (size_t i = 0; i < 6; i++)
        for (size_t j = 0; j < 6; j++)
            cr_assert_null(REFUSAL("COMMPRESS_COMPRESSOR", codecs[i],
                                   "COMMPRESS_FEEDBACK", fbs[j]),
                           "%s/%s: %s", codecs[i], fbs[j], buf);
    cr_assert_null(REFUSAL("COMMPRESS_COMPRESSOR", "dgc", "COMMPRESS_DGC_CLIP", "1",
                           "COMMPRESS_DGC_WARMUP_STEPS", "4"), "%s", buf);
    for (size_t i = 0; i < 2; i++)
        cr_assert_null(REFUSAL("COMMPRESS_COMPRESSOR", i ? "dgc" : "topk",
                               "COMMPRESS_TOPK_VALUES", "fp16",
                               "COMMPRESS_TOPK_SELECT", "sampled"), "%s", buf);
}

Test(gpu_refusal, what_is_refused_with_one_line)
{
    char buf[512];
    cr_assert_str_eq(REFUSAL("COMMPRESS_COMPRESSOR", "randk"),
                     "COMMPRESS_COMPRESSOR='randk' is invalid with NCCL (MPI path "
                     "only); accepted: none | fp16 | bf16 | topk | sign | quant | dgc");
    cr_assert_str_eq(REFUSAL("COMMPRESS_COMPRESSOR", "quant", "COMMPRESS_ADAPT", "lgreco"),
                     "COMMPRESS_ADAPT='lgreco' is invalid with NCCL (MPI path "
                     "only); accepted: none");
    cr_assert_str_eq(REFUSAL("COMMPRESS_COMPRESSOR", "topk", "COMMPRESS_ALLREDUCE_ALGO",
                             "sparse_rs"),
                     "COMMPRESS_ALLREDUCE_ALGO='sparse_rs' is invalid with NCCL (MPI "
                     "path only); accepted: auto | sparse | twophase | dense");
}
