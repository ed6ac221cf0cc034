/* DGC (Lin et al., ICLR 2018) as a compressor choice: top-k's messages with
 * DGC's feedback fixed (compressors/feedback_dgc.c: momentum correction,
 * clipping, factor masking, warm-up; docs/dgc.md). COMMPRESS_FEEDBACK must
 * stay auto with it. */
#include "compressors/feedback.h"
#include "compressors/topk.h"

CP_GPU_TWIN(cp_gpu_topk); /* the same messages as topk */

const cp_compressor_ops_t cp_compressor_dgc = {
    .name = "dgc",
    .doc = "DGC: top-k with momentum correction, clipping, factor masking "
           "and warm-up; the optimizer runs without momentum (docs/dgc.md)",
    .caps = CP_CODEC_SPARSE | CP_CODEC_BIASED,
    .params = cp_topk_params,
    .nparams = CP_TOPK_NPARAMS,
    .feedback = &cp_feedback_dgc,
    .gpu = &cp_gpu_topk,
    .max_size = cp_topk_max_size,
    .scratch_size = cp_topk_scratch_size,
    .encode = cp_topk_encode,
    .decode = cp_topk_decode,
    .entries = cp_topk_entries,
    .adapt = cp_adapt_density,
    .adapt_errors = cp_topk_adapt_errors,
};
