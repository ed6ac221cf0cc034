#include <string.h>

#include "collectives/slot.h"
#include "util/fault.h"
#include "util/hd.h"

size_t cp_slot_size(size_t payload_max)
{
    return (CP_SLOT_HDR + payload_max + 7) & ~(size_t)7;
}

static uint64_t mix64(uint64_t h, uint64_t v)
{
    return ((uint64_t)cp_hash32(h, v) << 32) | cp_hash32(h + 1, v);
}

uint64_t cp_slot_check_word(uint64_t ident, size_t count, uint64_t steps,
                            uint64_t hist)
{
    return mix64(mix64(mix64(ident, count), steps), hist);
}


/* The header after the payload (len bytes, or none when flagged). */
static cp_status_t slot_seal(unsigned char *slot, size_t slot_size, uint32_t flags,
                             const cp_slot_meta_t *meta, cp_status_t st, size_t len)
{
    if (st != CP_OK)
        flags |= CP_SLOT_FAILED;
    if (flags)
        len = 0;
    cp_put_u32(slot, flags);
    cp_put_u32(slot + 4, (uint32_t)len);
    cp_put_u64(slot + 8, meta->check);
    cp_put_u64(slot + 16, meta->evidence);
    memset(slot + CP_SLOT_HDR + len, 0, slot_size - CP_SLOT_HDR - len);
    return st;
}

cp_status_t cp_slot_encode(const cp_compressor_ops_t *codec,
                           const cp_params_t *p, const float *x, size_t m,
                           const cp_slot_meta_t *meta, unsigned char *slot,
                           size_t slot_size, void *scratch)
{
    cp_status_t st = CP_OK;
    size_t len = 0;
    if (meta->flags == 0 && cp_fault(CP_FAULT_ENCODE))
        st = CP_ERR_UNSUPPORTED;
    else if (meta->flags == 0)
        st = codec->encode(p, x, m, slot + CP_SLOT_HDR,
                           slot_size - CP_SLOT_HDR, &len, scratch);
    return slot_seal(slot, slot_size, meta->flags, meta, st, len);
}

cp_status_t cp_slot_encode_ef(const cp_compressor_ops_t *codec,
                              const cp_params_t *p, const float *e, const float *g,
                              size_t m, cp_slot_meta_t *meta, unsigned char *slot,
                              size_t slot_size, void *scratch, float *resid)
{
    cp_status_t st = CP_OK;
    size_t len = 0;
    int nonfinite = 0;
    if (meta->flags == 0 && cp_fault(CP_FAULT_ENCODE))
        st = CP_ERR_UNSUPPORTED;
    else if (meta->flags == 0)
        st = codec->encode_ef(p, e, g, m, slot + CP_SLOT_HDR, slot_size - CP_SLOT_HDR,
                              &len, scratch, resid, &nonfinite);
    if (nonfinite) {
        meta->flags |= CP_SLOT_NONFINITE;
        st = CP_OK;
    }
    return slot_seal(slot, slot_size, meta->flags, meta, st, len);
}

cp_status_t cp_slot_decode(const cp_compressor_ops_t *codec,
                           const cp_params_t *p, const unsigned char *slot,
                           size_t slot_size, float alpha, const float *y,
                           float *out, size_t m)
{
    size_t len = cp_get_u32(slot + 4);
    if (len > slot_size - CP_SLOT_HDR)
        return CP_ERR_MALFORMED;
    return codec->decode(p, slot + CP_SLOT_HDR, len, alpha, y, out, m);
}

size_t cp_slot_payload_len(const unsigned char *slot)
{
    return cp_get_u32(slot + 4);
}

void cp_slot_corrupt(unsigned char *slot)
{
    cp_put_u32(slot + 4, UINT32_MAX);
}

void cp_slots_scan(const unsigned char *slots, int n, size_t slot_size,
                   uint64_t check, size_t ev_period, cp_slots_view_t *v)
{
    int support = 0;
    memset(v, 0, sizeof(*v));
    for (int r = 0; r < n; r++) {
        const unsigned char *s = slots + (size_t)r * slot_size;
        uint64_t ev = cp_get_u64(s + 16);
        v->flags |= cp_get_u32(s);
        v->disagree |= cp_get_u64(s + 8) != check;
        support |= ev_period && ev == ev_period;
        if (ev_period && ev >= 2 * (uint64_t)ev_period && ev % ev_period == 0 &&
            (v->evidence == 0 || ev < v->evidence))
            v->evidence = ev;
    }
    /* A rank whose buffer came back after exactly one step confirms it
     * (stable buffers); then longer returns elsewhere are buffers that
     * alternate, not a longer step. */
    if (support)
        v->evidence = 0;
}
