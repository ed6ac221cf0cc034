/* The codec tables the tests call directly (their definitions are in
 * compressors/<name>.c; the library itself reaches them only through the
 * registry). */
#ifndef CP_TEST_CODECS_H
#define CP_TEST_CODECS_H

#include "compressors/compressor.h"
#include "compressors/feedback.h"

extern const cp_compressor_ops_t cp_compressor_fp16, cp_compressor_bf16,
    cp_compressor_topk, cp_compressor_sign, cp_compressor_quant,
    cp_compressor_dgc, cp_compressor_randk;
extern const cp_feedback_ops_t cp_feedback_ef21, cp_feedback_econtrol,
    cp_feedback_ef21_sgdm;

#endif
