/* libFuzzer target: commpress_fl_server_load (include/commpress_fl.h), a
 * federated server's checkpoint (optim/state_blob.h).
 *
 * Input: [configuration, fuzz_fl.h][fix] then the checkpoint; fix bit 0
 * rewrites the FNV-1a checksum over the fuzzed bytes first (see
 * fuzz_fl_client_load.c).
 *
 * Checked: 0 or -3; a rejected checkpoint changes nothing; an accepted one
 * saves back to the same bytes and is usable: an honest client's round
 * from its model and control variate, at its round, is aggregated
 * (fz_fl_aggregate: 0, -3 or -9; then finite). */
#include "optim/state_blob.h"
#include "tests/fuzz/fuzz_fl.h"

static unsigned char *save(const commpress_fl_server_t *s, size_t *len)
{
    FZ_CHECK(commpress_fl_server_save(s, NULL, 0, len) == 0, "save size");
    unsigned char *b = malloc(*len);
    FZ_CHECK(commpress_fl_server_save(s, b, *len, len) == 0, "save");
    return b;
}

static void use(commpress_fl_server_t *s, const commpress_fl_config_t *c)
{
    const size_t cap = commpress_fl_message_max(c);
    unsigned char *msg = malloc(cap);
    commpress_fl_client_t *cl = NULL;
    size_t len = 0;
    FZ_CHECK(commpress_fl_client_create(c, 1, &cl) == 0, "client");
    int st = fz_fl_round(cl, 1, commpress_fl_server_model(s),
                         commpress_fl_server_control(s),
                         commpress_fl_server_round(s), msg, cap, &len);
    FZ_CHECK(st == 0 || st == -1 || st == -10, "round returned %d", st);
    if (st == 0) {
        const void *m = msg;
        fz_fl_aggregate(s, c, &m, &len, 1);
    }
    commpress_fl_client_destroy(cl);
    free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_reader_t r = {data, size};
    commpress_fl_config_t c;
    commpress_fl_server_t *s = NULL;
    size_t l0, l1;

    if (size < FZ_FL_CFG_BYTES + 1)
        return 0;
    fz_fl_config(&r, &c);
    size_t len;
    unsigned char *blob = fz_blob(&r, &len);
    float *x0 = malloc(4 * c.dim);
    fz_values(x0, c.dim, 5);
    FZ_CHECK(commpress_fl_server_create(&c, x0, &s) == 0, "create");
    unsigned char *before = save(s, &l0);
    int st = commpress_fl_server_load(s, blob, len);
    unsigned char *after = save(s, &l1);
    fz_check_load(st, blob, len, before, l0, after, l1);
    if (st == 0)
        use(s, &c);
    commpress_fl_server_destroy(s);
    free(blob), free(before), free(after), free(x0);
    return 0;
}

/* Seeds: for every algorithm and codec, a server's checkpoint after one
 * or two rounds of two clients. */
static void write_seeds(const char *dir)
{
    fz_buf_t b = {0};
    char name[128];
    unsigned v = 0;
    for (unsigned a = 0; a < 3; a++) {
        for (unsigned k = 0; fz_fl_codec(k) != fz_fl_codec(0) || k == 0; k++, v++) {
            const size_t dim = 3 + 5 * (v % 4);
            fz_fl_put_config(&b, a, k, dim, (v % 8) << 2 | (v & 1));
            fz_put_u8(&b, 0);
            fz_reader_t r = {b.b, b.len};
            commpress_fl_config_t c;
            fz_fl_config(&r, &c);
            const size_t cap = commpress_fl_message_max(&c);
            unsigned char *msgs[2] = {malloc(cap), malloc(cap)};
            size_t lens[2];
            float *x0 = malloc(4 * dim);
            commpress_fl_server_t *s = NULL;
            commpress_fl_client_t *cl[2] = {NULL, NULL};
            fz_values(x0, dim, 5);
            if (commpress_fl_server_create(&c, x0, &s) != 0 ||
                commpress_fl_client_create(&c, 0, &cl[0]) != 0 ||
                commpress_fl_client_create(&c, 2, &cl[1]) != 0)
                abort();
            for (unsigned t = 0; t <= v % 2; t++) {
                for (int i = 0; i < 2; i++)
                    if (fz_fl_round(cl[i], (uint32_t)(2 * i),
                                    commpress_fl_server_model(s),
                                    commpress_fl_server_control(s), t, msgs[i],
                                    cap, &lens[i]) != 0)
                        abort();
                if (commpress_fl_server_aggregate(s, (const void *const *)msgs,
                                                  lens, 2) != 0)
                    abort();
            }
            size_t len;
            unsigned char *blob = save(s, &len);
            fz_put(&b, blob, len);
            snprintf(name, sizeof(name), "%s-%s", c.algorithm, c.compressor);
            fz_seed_write(dir, name, &b);
            commpress_fl_server_destroy(s);
            commpress_fl_client_destroy(cl[0]), commpress_fl_client_destroy(cl[1]);
            free(msgs[0]), free(msgs[1]), free(x0), free(blob);
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
