/* libFuzzer target: every codec of the registry (compressors/registry.c),
 * so a codec added there is fuzzed from its first day.
 *
 * Input: [codec][mode][bits][bucket u16][n u16][flags] then the message.
 *   codec  index into the registry (modulo its size)
 *   mode   bits 0-1: y = NULL, a separate y, or y aliasing out;
 *          bits 2-3: alpha = 1, -1, 0.5, 0;
 *          bit 4: round trip instead of decode (the rest of the input read
 *          as floats, non-finite ones made 0, encoded, then decoded)
 *   bits   quant: 1 + bits % 8;  bucket: 1 + bucket;  n: n % 4097
 *   flags  bit 0 topk_fp16, bit 1 stochastic rounding, bits 2-3 density
 *
 * What is checked (compressors/compressor.h, docs/design.md "Wire
 * formats"):
 *  - decode returns CP_OK or CP_ERR_MALFORMED and touches no byte outside
 *    in[0..len) and out[0..n) (exactly-sized heap buffers under ASan);
 *  - a rejected message writes nothing ("checked ... before writing");
 *  - sparse codecs: decode agrees with entries(); their values and sign's
 *    scale are validated finite, so with |y| <= 1 and |alpha| <= 1 an
 *    accepted message decodes to finite values (the other codecs carry
 *    raw floats or 16-bit codes and promise no such thing);
 *  - round trip: encode of finite values succeeds (quant may refuse a range
 *    beyond FLT_MAX with CP_ERR_RANGE) within max_size, its message
 *    decodes, to finite values ("a finite gradient must not turn into a
 *    non-finite result"), equal to the input for none, entry by entry for
 *    f32 sparse. */
#include "compressors/compressor.h"
#include "tests/fuzz/fuzz_common.h"

static const double densities[4] = {0.01, 0.1, 0.5, 1.0};

typedef struct {
    const cp_compressor_ops_t *codec;
    cp_params_t p;
    size_t n;
    unsigned mode;
} setup_t;

static void read_setup(fz_reader_t *r, setup_t *s)
{
    const size_t count = cp_compressor_count();
    s->codec = cp_compressor_at(fz_u8(r) % count);
    s->mode = fz_u8(r);
    memset(&s->p, 0, sizeof(s->p));
    s->p.bits = 1 + fz_u8(r) % 8;
    s->p.bucket = 1 + (size_t)fz_u16(r);
    s->n = fz_u16(r) % 4097;
    unsigned flags = fz_u8(r);
    s->p.topk_fp16 = flags & 1;
    s->p.rounding = (flags >> 1) & 1 ? CP_ROUND_STOCHASTIC : CP_ROUND_NEAREST;
    s->p.density = densities[(flags >> 2) & 3];
    s->p.topk_select = CP_TOPK_EXACT;
    s->p.topk_sample_min = 1 << 18;
    s->p.seed = 42;
    s->p.shared_seed = 7;
}

/* Its decoded values are finite whenever it accepts a message (for
 * |y| <= 1, |alpha| <= 1): the codecs whose decoder validates them. */
static int decode_is_finite(const cp_compressor_ops_t *c)
{
    return (c->caps & CP_CODEC_SPARSE) || strcmp(c->name, "sign") == 0;
}

static void fuzz_decode(const setup_t *s, fz_reader_t *r)
{
    static const float alphas[4] = {1.0f, -1.0f, 0.5f, 0.0f};
    const cp_compressor_ops_t *c = s->codec;
    const size_t n = s->n, len = r->n;
    const float alpha = alphas[(s->mode >> 2) & 3];
    const int ymode = s->mode & 3;
    unsigned char *in = fz_copy(r, len);
    float *out = malloc(n ? 4 * n : 1), *before = malloc(n ? 4 * n : 1);
    float *y = NULL;

    fz_values(before, n, n);
    if (ymode == 1) {
        y = malloc(n ? 4 * n : 1);
        fz_values(y, n, n + 1);
        fz_values(out, n, n + 2);
        memcpy(before, out, 4 * n);
    } else if (ymode >= 2) {
        memcpy(out, before, 4 * n);
        y = out; /* decode-and-accumulate */
    } else {
        memcpy(out, before, 4 * n);
    }
    cp_status_t st = c->decode(&s->p, in, len, alpha, y, out, n);
    FZ_CHECK(st == CP_OK || st == CP_ERR_MALFORMED, "codec %s status %d",
             c->name, (int)st);
    if (st != CP_OK)
        FZ_CHECK(memcmp(out, before, 4 * n) == 0,
                 "codec %s wrote into out before rejecting", c->name);
    if (c->caps & CP_CODEC_SPARSE) {
        cp_topk_view_t e;
        FZ_CHECK(c->entries(in, len, n, &e) == st,
                 "codec %s: entries and decode disagree", c->name);
    }
    if (st == CP_OK && decode_is_finite(c))
        FZ_CHECK(fz_all_finite(out, n), "codec %s decoded a non-finite value",
                 c->name);
    free(in), free(out), free(before);
    if (ymode == 1)
        free(y);
}

static void fuzz_round_trip(const setup_t *s, fz_reader_t *r)
{
    const cp_compressor_ops_t *c = s->codec;
    const size_t n = s->n;
    float *x = calloc(n ? n : 1, 4), *out = malloc(n ? 4 * n : 1);
    for (size_t i = 0; i < n && r->n >= 4; i++) {
        memcpy(&x[i], r->p, 4);
        r->p += 4, r->n -= 4;
        if (!isfinite(x[i]))
            x[i] = 0.0f;
    }
    const size_t cap = c->max_size(&s->p, n), ss = c->scratch_size(&s->p, n);
    unsigned char *msg = malloc(cap ? cap : 1), *scratch = malloc(ss ? ss : 1);
    size_t len = 0;
    cp_status_t st = c->encode(&s->p, x, n, msg, cap, &len, scratch);
    FZ_CHECK(st == CP_OK || (st == CP_ERR_RANGE && strcmp(c->name, "quant") == 0),
             "codec %s: encode of finite values gave %d", c->name, (int)st);
    if (st == CP_OK) {
        FZ_CHECK(len <= cap, "codec %s: %zu > max_size %zu", c->name, len, cap);
        unsigned char *in = malloc(len ? len : 1); /* exactly len bytes */
        memcpy(in, msg, len);
        st = c->decode(&s->p, in, len, 1.0f, NULL, out, n);
        FZ_CHECK(st == CP_OK, "codec %s rejects its own message (%d)", c->name,
                 (int)st);
        FZ_CHECK(fz_all_finite(out, n),
                 "codec %s: finite input decodes to a non-finite value", c->name);
        if (c->caps & CP_CODEC_IDENTITY) /* 0 + alpha x: -0 comes back +0 */
            for (size_t i = 0; i < n; i++)
                FZ_CHECK(out[i] == x[i], "codec %s: entry %zu changed", c->name, i);
        if ((c->caps & CP_CODEC_SPARSE) && !s->p.topk_fp16)
            for (size_t i = 0; i < n; i++)
                FZ_CHECK(out[i] == 0.0f || out[i] == x[i],
                         "codec %s: entry %zu changed", c->name, i);
        free(in);
    }
    free(x), free(out), free(msg), free(scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_reader_t r = {data, size};
    setup_t s;
    if (size < 8)
        return 0;
    read_setup(&r, &s);
    if (s.mode & 0x10)
        fuzz_round_trip(&s, &r);
    else
        fuzz_decode(&s, &r);
    return 0;
}

/* Seeds: for every codec, a valid message of a few sizes and settings
 * (decode mode), and a round-trip input. */
static void write_seeds(const char *dir)
{
    static const size_t ns[3] = {1, 13, 300};
    fz_buf_t b = {0};
    char name[128];
    for (size_t ci = 0; ci < cp_compressor_count(); ci++) {
        for (int v = 0; v < 3; v++) {
            const size_t n = ns[v];
            const unsigned mode = (unsigned)v; /* y NULL, separate, aliased */
            const unsigned bits = 1 + 3 * (unsigned)v, bucket = v == 2 ? 64 : 7;
            const unsigned flags = (unsigned)(v & 1) | (unsigned)(v << 2);
            fz_put_u8(&b, (unsigned)ci), fz_put_u8(&b, mode);
            fz_put_u8(&b, bits - 1), fz_put_u16(&b, bucket - 1);
            fz_put_u16(&b, (unsigned)n), fz_put_u8(&b, flags);
            fz_reader_t r = {b.b, b.len};
            setup_t s;
            read_setup(&r, &s);
            float *x = malloc(4 * n);
            fz_values(x, n, 100 + v);
            const size_t cap = s.codec->max_size(&s.p, n);
            unsigned char *msg = malloc(cap ? cap : 1);
            void *scratch = malloc(s.codec->scratch_size(&s.p, n) + 1);
            size_t len = 0;
            if (s.codec->encode(&s.p, x, n, msg, cap, &len, scratch) != CP_OK)
                abort();
            fz_put(&b, msg, len);
            snprintf(name, sizeof(name), "%s-decode-%zu", s.codec->name, n);
            fz_seed_write(dir, name, &b);
            /* The same values, as a round trip. */
            fz_put_u8(&b, (unsigned)ci), fz_put_u8(&b, mode | 0x10);
            fz_put_u8(&b, bits - 1), fz_put_u16(&b, bucket - 1);
            fz_put_u16(&b, (unsigned)n), fz_put_u8(&b, flags);
            fz_put(&b, x, 4 * n);
            snprintf(name, sizeof(name), "%s-roundtrip-%zu", s.codec->name, n);
            fz_seed_write(dir, name, &b);
            free(x), free(msg), free(scratch);
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
