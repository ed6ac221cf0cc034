/* libFuzzer target: the slot envelope (collectives/slot.h): its decode,
 * payload length and the scan of n received slots, over every codec of
 * the registry.
 *
 * Input: [codec][bits][bucket u16][n u16][flags][slots][ev_period u16]
 *        [check u64] then the slots' bytes (zero-filled to 1 + slots % 4
 *        slots of cp_slot_size(max_size(n)) bytes each).
 *   flags bit 0 topk_fp16, bits 2-3 density; bit 4: slot 0 is first
 *   encoded by cp_slot_encode from the input's floats (an honest sender)
 *   and must then decode.
 *
 * Checked: cp_slot_decode returns CP_OK or CP_ERR_MALFORMED, CP_ERR_MALFORMED
 * whenever the payload length exceeds the slot, never touching bytes
 * outside the slots or out; cp_slots_scan against its definition (OR of
 * the flags, any differing check word, the smallest evidence that is a
 * multiple >= 2 of ev_period unless one equals ev_period). */
#include "collectives/slot.h"
#include "tests/fuzz/fuzz_common.h"

static const double densities[4] = {0.01, 0.1, 0.5, 1.0};

typedef struct {
    const cp_compressor_ops_t *codec;
    cp_params_t p;
    size_t n, nslots, slot_size, ev_period;
    unsigned flags;
    uint64_t check;
} setup_t;

static void read_setup(fz_reader_t *r, setup_t *s)
{
    s->codec = cp_compressor_at(fz_u8(r) % cp_compressor_count());
    memset(&s->p, 0, sizeof(s->p));
    s->p.bits = 1 + fz_u8(r) % 8;
    s->p.bucket = 1 + (size_t)fz_u16(r);
    s->n = fz_u16(r) % 1025;
    s->flags = fz_u8(r);
    s->p.topk_fp16 = s->flags & 1;
    s->p.density = densities[(s->flags >> 2) & 3];
    s->p.topk_select = CP_TOPK_EXACT;
    s->p.topk_sample_min = 1 << 18;
    s->nslots = 1 + fz_u8(r) % 4;
    s->ev_period = fz_u16(r) % 8;
    s->check = fz_take(r, 8);
    s->slot_size = cp_slot_size(s->codec->max_size(&s->p, s->n));
}

static void check_scan(const setup_t *s, const unsigned char *slots)
{
    cp_slots_view_t v;
    uint32_t flags = 0;
    int disagree = 0, support = 0;
    uint64_t best = 0;
    cp_slots_scan(slots, (int)s->nslots, s->slot_size, s->check, s->ev_period, &v);
    for (size_t i = 0; i < s->nslots; i++) {
        const unsigned char *sl = slots + i * s->slot_size;
        const uint64_t ev = cp_get_u64(sl + 16);
        flags |= cp_get_u32(sl);
        disagree |= cp_get_u64(sl + 8) != s->check;
        if (s->ev_period == 0)
            continue;
        support |= ev == s->ev_period;
        if (ev >= 2 * (uint64_t)s->ev_period && ev % s->ev_period == 0 &&
            (best == 0 || ev < best))
            best = ev;
    }
    FZ_CHECK(v.flags == flags, "flags %u, expected %u", v.flags, flags);
    FZ_CHECK(v.disagree == disagree, "disagree %d", v.disagree);
    FZ_CHECK(v.evidence == (support ? 0 : best), "evidence %llu",
             (unsigned long long)v.evidence);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_reader_t r = {data, size};
    setup_t s;
    if (size < 18)
        return 0;
    read_setup(&r, &s);
    const size_t n = s.n, total = s.nslots * s.slot_size;
    unsigned char *slots = calloc(total, 1);
    float *out = malloc(n ? 4 * n : 1);
    const size_t have = r.n < total ? r.n : total;
    memcpy(slots, r.p, have);
    if (s.flags & 0x10) { /* slot 0 from an honest sender */
        float *x = calloc(n ? n : 1, 4);
        for (size_t i = 0; i < n && 4 * i + 4 <= have; i++) {
            memcpy(&x[i], r.p + 4 * i, 4);
            if (!isfinite(x[i]))
                x[i] = 0.0f;
        }
        const size_t ss = s.codec->scratch_size(&s.p, n);
        void *scratch = malloc(ss ? ss : 1);
        cp_slot_meta_t meta = {.flags = 0, .check = s.check, .evidence = 2};
        cp_status_t st = cp_slot_encode(s.codec, &s.p, x, n, &meta, slots,
                                        s.slot_size, scratch);
        const uint32_t f = cp_get_u32(slots);
        FZ_CHECK(st == CP_OK ? f == 0 : f == CP_SLOT_FAILED, "flags %u", f);
        if (st == CP_OK)
            FZ_CHECK(cp_slot_decode(s.codec, &s.p, slots, s.slot_size, 1.0f,
                                    NULL, out, n) == CP_OK,
                     "codec %s: an encoded slot does not decode", s.codec->name);
        free(x), free(scratch);
    }
    check_scan(&s, slots);
    for (size_t i = 0; i < s.nslots; i++) {
        const unsigned char *sl = slots + i * s.slot_size;
        cp_status_t st = cp_slot_decode(s.codec, &s.p, sl, s.slot_size, 1.0f,
                                        NULL, out, n);
        FZ_CHECK(st == CP_OK || st == CP_ERR_MALFORMED, "status %d", (int)st);
        if (cp_slot_payload_len(sl) > s.slot_size - CP_SLOT_HDR)
            FZ_CHECK(st == CP_ERR_MALFORMED, "payload beyond the slot accepted");
    }
    free(slots), free(out);
    return 0;
}

/* Seeds: every codec, 1..3 slots encoded by cp_slot_encode (one of them
 * flagged), with and without step evidence. */
static void write_seeds(const char *dir)
{
    fz_buf_t b = {0};
    char name[128];
    for (size_t ci = 0; ci < cp_compressor_count(); ci++) {
        for (int v = 0; v < 2; v++) {
            const size_t n = v ? 100 : 5;
            const unsigned nslots = v ? 3 : 1;
            fz_put_u8(&b, (unsigned)ci), fz_put_u8(&b, 3);
            fz_put_u16(&b, 15), fz_put_u16(&b, (unsigned)n);
            fz_put_u8(&b, (unsigned)(v << 2)), fz_put_u8(&b, nslots - 1);
            fz_put_u16(&b, (unsigned)(2 * v));
            const uint64_t check = 0x1234567890abcdefull;
            fz_put(&b, &check, 8);
            fz_reader_t r = {b.b, b.len};
            setup_t s;
            read_setup(&r, &s);
            unsigned char *slots = calloc(nslots, s.slot_size);
            float *x = malloc(4 * n);
            void *scratch = malloc(s.codec->scratch_size(&s.p, n) + 1);
            for (unsigned k = 0; k < nslots; k++) {
                cp_slot_meta_t meta = {.flags = k == 2 ? CP_SLOT_NONFINITE : 0,
                                       .check = check, .evidence = 4 + 2 * k};
                fz_values(x, n, k);
                cp_slot_encode(s.codec, &s.p, x, n, &meta,
                               slots + k * s.slot_size, s.slot_size, scratch);
            }
            fz_put(&b, slots, nslots * s.slot_size);
            snprintf(name, sizeof(name), "%s-%u-slots", s.codec->name, nslots);
            fz_seed_write(dir, name, &b);
            free(slots), free(x), free(scratch);
        }
    }
    free(b.b);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fz_maybe_write_seeds(write_seeds);
    return 0;
}
