/* libFuzzer target: commpress_fl_client_load (include/commpress_fl.h), a
 * federated client's checkpoint (optim/state_blob.h).
 *
 * Input: [configuration, fuzz_fl.h][id][fix] then the checkpoint. With
 * fix bit 0 the target first writes the FNV-1a checksum of the fuzzed
 * bytes into their last 8 (as a saver would), so that the fuzzer gets
 * past the checksum to the header and the payload.
 *
 * Checked: 0 or -3; a rejected checkpoint changes nothing (the client
 * saves the same bytes as before); an accepted one saves back to the same
 * bytes and is usable: a round from it runs (0, or a refusal: -1 for
 * non-finite values, -10 a quant range) and its message is taken by a
 * fresh server (fz_fl_aggregate: 0, -3 or -9). */
#include "optim/state_blob.h"
#include "tests/fuzz/fuzz_fl.h"

static unsigned char *save(const commpress_fl_client_t *cl, size_t *len)
{
    FZ_CHECK(commpress_fl_client_save(cl, NULL, 0, len) == 0, "save size");
    unsigned char *b = malloc(*len);
    FZ_CHECK(commpress_fl_client_save(cl, b, *len, len) == 0, "save");
    return b;
}

static void use(commpress_fl_client_t *cl, const commpress_fl_config_t *c,
                uint32_t id)
{
    const size_t d = c->dim, cap = commpress_fl_message_max(c);
    float *x = malloc(4 * d), *cv = malloc(4 * d);
    unsigned char *msg = malloc(cap);
    size_t len = 0;
    fz_values(x, d, 5), fz_values(cv, d, 6);
    int st = fz_fl_round(cl, id, x, cv, 0, msg, cap, &len);
    FZ_CHECK(st == 0 || st == -1 || st == -10, "round returned %d", st);
    if (st == 0) {
        commpress_fl_server_t *s = NULL;
        const void *m = msg;
        FZ_CHECK(commpress_fl_server_create(c, x, &s) == 0, "server");
        fz_fl_aggregate(s, c, &m, &len, 1);
        commpress_fl_server_destroy(s);
    }
    free(x), free(cv), free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_reader_t r = {data, size};
    commpress_fl_config_t c;
    commpress_fl_client_t *cl = NULL;
    size_t l0, l1;

    if (size < FZ_FL_CFG_BYTES + 2)
        return 0;
    fz_fl_config(&r, &c);
    const uint32_t id = fz_u8(&r) % FZ_FL_CLIENTS;
    size_t len;
    unsigned char *blob = fz_blob(&r, &len);
    FZ_CHECK(commpress_fl_client_create(&c, id, &cl) == 0, "create");
    unsigned char *before = save(cl, &l0);
    int st = commpress_fl_client_load(cl, blob, len);
    unsigned char *after = save(cl, &l1);
    fz_check_load(st, blob, len, before, l0, after, l1);
    if (st == 0)
        use(cl, &c, id);
    commpress_fl_client_destroy(cl);
    free(blob), free(before), free(after);
    return 0;
}

/* Seeds: for every algorithm and codec, a client's checkpoint after one or
 * two rounds (fix 0: the checksum is the saver's). */
static void write_seeds(const char *dir)
{
    fz_buf_t b = {0};
    char name[128];
    unsigned v = 0;
    for (unsigned a = 0; a < 3; a++) {
        for (unsigned k = 0; fz_fl_codec(k) != fz_fl_codec(0) || k == 0; k++, v++) {
            const size_t dim = 3 + 5 * (v % 4);
            const uint32_t id = v % FZ_FL_CLIENTS;
            fz_fl_put_config(&b, a, k, dim, (v % 8) << 2 | (v & 1));
            fz_put_u8(&b, id), fz_put_u8(&b, 0);
            fz_reader_t r = {b.b, b.len};
            commpress_fl_config_t c;
            fz_fl_config(&r, &c);
            commpress_fl_client_t *cl = NULL;
            const size_t cap = commpress_fl_message_max(&c);
            unsigned char *msg = malloc(cap);
            float *x = malloc(4 * dim), *cv = malloc(4 * dim);
            size_t len;
            fz_values(x, dim, 5), fz_values(cv, dim, 6);
            if (commpress_fl_client_create(&c, id, &cl) != 0)
                abort();
            for (unsigned t = 0; t <= v % 2; t++)
                if (fz_fl_round(cl, id, x, cv, t, msg, cap, &len) != 0)
                    abort();
            unsigned char *blob = save(cl, &len);
            fz_put(&b, blob, len);
            snprintf(name, sizeof(name), "%s-%s", c.algorithm, c.compressor);
            fz_seed_write(dir, name, &b);
            commpress_fl_client_destroy(cl);
            free(msg), free(x), free(cv), free(blob);
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
