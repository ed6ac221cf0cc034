/* topk's functions and rows, for codecs that send what topk sends (dgc). */
#ifndef CP_TOPK_H
#define CP_TOPK_H

#include "compressors/compressor.h"

#define CP_TOPK_NPARAMS 4
extern const cp_param_t cp_topk_params[CP_TOPK_NPARAMS];
extern const cp_compressor_ops_t cp_compressor_topk;

size_t cp_topk_max_size(const cp_params_t *p, size_t n);
size_t cp_topk_scratch_size(const cp_params_t *p, size_t n);
cp_status_t cp_topk_encode(const cp_params_t *p, const float *x, size_t n,
                           void *out, size_t cap, size_t *len_p,
                           void *scratch);
cp_status_t cp_topk_adapt_errors(const cp_params_t *p, size_t np,
                                 const float *x, size_t n, double *err,
                                 void *scratch);
cp_status_t cp_topk_decode(const cp_params_t *p, const void *in, size_t len,
                           float alpha, const float *y, float *out, size_t n);

#endif
