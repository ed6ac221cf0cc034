/* What the NCCL path refuses at init, through the one generic check
 * (cp_coll_gpu_refusal): a codec with no GPU twin, a feedback variant not
 * marked CP_FB_GPU, a cpu_only row away from its default. Linked with the
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
    static const char *const gpu[] = {"none", "fp16", "bf16", "topk", "sign", "quant"};
    for (size_t i = 0; i < sizeof(gpu) / sizeof(*gpu); i++)
        cr_assert_not_null(cp_compressor_find(gpu[i])->gpu, "%s", gpu[i]);
    cr_assert_null(cp_compressor_find("randk")->gpu);
    cr_assert_null(cp_compressor_find("dgc")->gpu);
}

Test(gpu_refusal, what_runs)
{
    char buf[512];
    static const char *const codecs[] = {"none", "fp16", "bf16", "topk", "sign", "quant"};
    static const char *const fbs[] = {"auto", "none", "ef"};
    for (size_t i = 0; i < 6; i++)
        for (size_t j = 0; j < 3; j++)
            cr_assert_null(REFUSAL("COMMPRESS_COMPRESSOR", codecs[i],
                                   "COMMPRESS_FEEDBACK", fbs[j]),
                           "%s/%s: %s", codecs[i], fbs[j], buf);
    /* cpu_only rows at their defaults, other rows anywhere. */
    cr_assert_null(REFUSAL("COMMPRESS_COMPRESSOR", "topk", "COMMPRESS_TOPK_VALUES", "f32",
                           "COMMPRESS_DENSITY", "0.2"));
}

Test(gpu_refusal, what_is_refused_with_one_line)
{
    char buf[512];
    cr_assert_str_eq(REFUSAL("COMMPRESS_COMPRESSOR", "randk"),
                     "COMMPRESS_COMPRESSOR='randk' is invalid with NCCL (MPI path "
                     "only); accepted: none | fp16 | bf16 | topk | sign | quant");
    cr_assert_str_eq(REFUSAL("COMMPRESS_COMPRESSOR", "dgc"),
                     "COMMPRESS_COMPRESSOR='dgc' is invalid with NCCL (MPI path "
                     "only); accepted: none | fp16 | bf16 | topk | sign | quant");
    static const char *const fbs[] = {"ef21", "econtrol", "ef21-sgdm"};
    for (size_t j = 0; j < 3; j++) {
        char want[256];
        snprintf(want, sizeof(want), "COMMPRESS_FEEDBACK='%s' is invalid with NCCL "
                 "(MPI path only); accepted: auto | none | ef", fbs[j]);
        cr_assert_str_eq(REFUSAL("COMMPRESS_COMPRESSOR", "quant", "COMMPRESS_FEEDBACK", fbs[j]),
                         want);
    }
    cr_assert_str_eq(REFUSAL("COMMPRESS_COMPRESSOR", "topk", "COMMPRESS_TOPK_VALUES", "fp16"),
                     "COMMPRESS_TOPK_VALUES='fp16' is invalid with NCCL (MPI path "
                     "only); accepted: f32");
    cr_assert_str_eq(REFUSAL("COMMPRESS_COMPRESSOR", "quant", "COMMPRESS_ADAPT", "lgreco"),
                     "COMMPRESS_ADAPT='lgreco' is invalid with NCCL (MPI path "
                     "only); accepted: none");
    /* A cpu_only row of another codec does not matter. */
    cr_assert_null(REFUSAL("COMMPRESS_COMPRESSOR", "sign", "COMMPRESS_TOPK_VALUES", "fp16"));
}
