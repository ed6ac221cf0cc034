/* libFuzzer target: the federated server's message parsing,
 * commpress_fl_server_aggregate (include/commpress_fl.h) with 1..3
 * messages cut from the input, for every algorithm and every codec a
 * federated configuration takes.
 *
 * Input: [configuration, fuzz_fl.h][count] then count - 1 times
 * [u16 length][message] and the last message (the rest). The server is
 * fresh (round 0, model fz_values), so honest messages carry round 0.
 *
 * Checked (fz_fl_aggregate): 0, or -3 changing nothing; after an accepted
 * aggregate a finite model and control variate (the guarantee being added
 * to optim/fl.c; CP_FUZZ_FL_FINITE=0 skips it), the same messages
 * rejected as a replay, and save / load / save giving the same bytes. */
#include "tests/fuzz/fuzz_fl.h"

#define MAX_MSGS 3

static void after_accept(commpress_fl_server_t *s, const commpress_fl_config_t *c,
                         const void *const *msgs, const size_t *lens, size_t count)
{
    size_t len = 0, len2 = 0;
    FZ_CHECK(commpress_fl_server_aggregate(s, msgs, lens, count) == -3,
             "a replayed round was accepted");
    FZ_CHECK(commpress_fl_server_save(s, NULL, 0, &len) == 0, "save size");
    unsigned char *a = malloc(len), *b = malloc(len);
    FZ_CHECK(commpress_fl_server_save(s, a, len, &len) == 0, "save");
    commpress_fl_server_t *t = NULL;
    FZ_CHECK(commpress_fl_server_create(c, commpress_fl_server_model(s), &t) == 0,
             "create");
    FZ_CHECK(commpress_fl_server_load(t, a, len) == 0, "its own save rejected");
    FZ_CHECK(commpress_fl_server_save(t, b, len, &len2) == 0 && len2 == len &&
                 memcmp(a, b, len) == 0,
             "save after load differs");
    commpress_fl_server_destroy(t);
    free(a), free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_reader_t r = {data, size};
    commpress_fl_config_t c;
    commpress_fl_server_t *s = NULL;
    unsigned char *msgs[MAX_MSGS];
    size_t lens[MAX_MSGS];

    if (size < FZ_FL_CFG_BYTES + 1)
        return 0;
    fz_fl_config(&r, &c);
    const size_t count = 1 + fz_u8(&r) % MAX_MSGS;
    for (size_t i = 0; i < count; i++) {
        lens[i] = i + 1 < count ? fz_u16(&r) % (r.n + 1) : r.n;
        if (lens[i] > r.n)
            lens[i] = r.n;
        msgs[i] = fz_copy(&r, lens[i]);
    }
    float *x0 = malloc(4 * c.dim);
    fz_values(x0, c.dim, 5);
    FZ_CHECK(commpress_fl_server_create(&c, x0, &s) == 0, "create %s/%s",
             c.algorithm, c.compressor);
    if (fz_fl_aggregate(s, &c, (const void *const *)msgs, lens, count) == 0)
        after_accept(s, &c, (const void *const *)msgs, lens, count);
    commpress_fl_server_destroy(s);
    for (size_t i = 0; i < count; i++)
        free(msgs[i]);
    free(x0);
    return 0;
}

/* Seeds: for every algorithm and codec, the round-0 messages of 1..3
 * honest clients. */
static void write_seeds(const char *dir)
{
    fz_buf_t b = {0};
    char name[128];
    unsigned v = 0;
    for (unsigned a = 0; a < 3; a++) {
        for (unsigned k = 0; fz_fl_codec(k) != fz_fl_codec(0) || k == 0; k++, v++) {
            const size_t dim = 4 + 7 * (v % 4), count = 1 + v % MAX_MSGS;
            const unsigned opts = (v & 3) | ((v % 4) << 2) | (((v + 3) % 8) << 4) |
                                  ((v & 4) << 5);
            fz_fl_put_config(&b, a, k, dim, opts);
            fz_put_u8(&b, (unsigned)(count - 1));
            fz_reader_t r = {b.b, b.len};
            commpress_fl_config_t c;
            fz_fl_config(&r, &c);
            const size_t cap = commpress_fl_message_max(&c);
            unsigned char *msg = malloc(cap);
            float *x = malloc(4 * dim), *cv = calloc(dim, 4);
            fz_values(x, dim, 5); /* the target's server model */
            for (uint32_t id = 0; id < count; id++) {
                commpress_fl_client_t *cl = NULL;
                size_t len = 0;
                if (commpress_fl_client_create(&c, id, &cl) != 0 ||
                    fz_fl_round(cl, id, x, cv, 0, msg, cap, &len) != 0)
                    abort();
                if (id + 1 < count)
                    fz_put_u16(&b, (unsigned)len);
                fz_put(&b, msg, len);
                commpress_fl_client_destroy(cl);
            }
            snprintf(name, sizeof(name), "%s-%s-%zu", c.algorithm, c.compressor, count);
            fz_seed_write(dir, name, &b);
            free(msg), free(x), free(cv);
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
