/* Per-element arithmetic of the error-feedback variants, shared by their CPU
 * files (compressors/feedback_*.c) and their GPU twins
 * (compressors/cuda/feedback.cu) through CP_HD, so both compute the same
 * bits (the CUDA code is compiled with -fmad=false: no contraction). One
 * function per formula of ALGORITHMS.md, "Error feedback" and "DGC". */
#ifndef CP_FEEDBACK_MATH_H
#define CP_FEEDBACK_MATH_H

#include <math.h>

#include "util/hd.h"

/* EF21: v = g - h. */
CP_HD float cp_ef21_v(float g, float h) { return g - h; }

/* EControl: w = g - h (returned), v = eta e + w (in *v). */
CP_HD float cp_econtrol_w(float g, float h) { return g - h; }
CP_HD float cp_econtrol_v(float eta, float e, float w) { return eta * e + w; }
/* EControl's commit, d the decoded message: e <- (e + w) - d. */
CP_HD float cp_econtrol_e(float e, float w, float d) { return (e + w) - d; }

/* EF21-SGDM: the moving average v = (1 - eta) v + eta g (g on the first
 * step), then d = v - h is sent. keep = 1 - eta, computed once. */
CP_HD float cp_sgdm_avg(int first, float keep, float eta, float vprev, float g)
{
    return first ? g : keep * vprev + eta * g;
}

/* The estimators' h <- h + d and H <- H + sum. */
CP_HD float cp_fb_add(float h, float d) { return h + d; }

/* DGC's momentum correction: u <- m u + s g (s the clip scale), and the
 * accumulated v <- v + u. */
CP_HD float cp_dgc_u(float m, float u, float s, float g) { return m * u + s * g; }
CP_HD float cp_dgc_v(float v, float u) { return v + u; }

/* DGC's clip scale from the tensor's sum of squares (in the fixed order of
 * codec_math.h): 1 when clipping is off, the norm is within clip, or not
 * finite (the non-finite check then catches the step). */
CP_HD float cp_dgc_clip_scale(double sumsq, double clip)
{
    if (clip <= 0.0)
        return 1.0f;
    const double norm = sqrt(sumsq);
    return norm > clip && norm - norm == 0.0 ? (float)(clip / norm) : 1.0f;
}

#endif
