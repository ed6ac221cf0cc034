/* The slot: the fixed-size envelope every compressed message travels in
 * (docs/design.md, "Wire formats"):
 *   [u32 flags][u32 payload length][u64 check][u64 evidence][payload]
 *   [zero padding to 8 bytes]
 * Its size is a function of the payload's largest size only, so equal on
 * every rank. check names the tensor and its state (equal on every rank
 * that agrees); evidence is the sender's step evidence. */
#ifndef CP_SLOT_H
#define CP_SLOT_H

#include <stddef.h>
#include <stdint.h>

#include "compressors/compressor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CP_SLOT_HDR 24
#define CP_SLOT_NONFINITE 1u /* the sender's vector held Inf/NaN */
#define CP_SLOT_FAILED 2u    /* the sender could not encode or decode */

size_t cp_slot_size(size_t payload_max);

/* What a rank says about its call in every slot it sends. */
typedef struct {
    uint32_t flags;
    uint64_t check;
    uint64_t evidence;
} cp_slot_meta_t;

/* The check word of a tensor's call: its name, count, steps, history. */
uint64_t cp_slot_check_word(uint64_t ident, size_t count, uint64_t steps,
                            uint64_t hist);

/* Encodes x into a slot (header + payload + zero padding). With a flag in
 * meta, only the header is sent. An encoding failure is sent as
 * CP_SLOT_FAILED (and returned, for the log): the message still goes out,
 * so no peer waits for it. */
cp_status_t cp_slot_encode(const cp_compressor_ops_t *codec,
                           const cp_params_t *p, const float *x, size_t m,
                           const cp_slot_meta_t *meta, unsigned char *slot,
                           size_t slot_size, void *scratch);
/* cp_slot_encode of v = e + g with error feedback fused (the codec's
 * encode_ef), the new error written into resid. A v holding Inf or NaN
 * is found on the way: then the slot is sent as CP_SLOT_NONFINITE and
 * meta->flags keeps the flag, so that the caller's later slots carry it
 * too (their encoding is skipped). */
cp_status_t cp_slot_encode_ef(const cp_compressor_ops_t *codec,
                              const cp_params_t *p, const float *e, const float *g,
                              size_t m, cp_slot_meta_t *meta, unsigned char *slot,
                              size_t slot_size, void *scratch, float *resid);
/* out = y + alpha * D(slot payload), the payload length bounds-checked. */
cp_status_t cp_slot_decode(const cp_compressor_ops_t *codec,
                           const cp_params_t *p, const unsigned char *slot,
                           size_t slot_size, float alpha, const float *y,
                           float *out, size_t m);
/* The payload and its length, for feedback commits. */
static inline const unsigned char *cp_slot_payload(const unsigned char *slot)
{
    return slot + CP_SLOT_HDR;
}
size_t cp_slot_payload_len(const unsigned char *slot);
/* Tests: makes the slot's payload length impossible (a corrupt message). */
void cp_slot_corrupt(unsigned char *slot);

/* What n received slots say together: their flags, whether every check
 * word equals `check`, and the step evidence: the smallest one that is a
 * multiple >= 2 of ev_period, unless some rank's equals ev_period (0 if
 * none, or if ev_period is 0; plugin/step_detect.h). */
typedef struct {
    uint32_t flags;
    int disagree;
    uint64_t evidence;
} cp_slots_view_t;
void cp_slots_scan(const unsigned char *slots, int n, size_t slot_size,
                   uint64_t check, size_t ev_period, cp_slots_view_t *v);

#ifdef __cplusplus
}
#endif

#endif
