/* Shared by the federated targets (fuzz_fl_*.c): a configuration read
 * from the input's first bytes, a client gradient, honest client
 * messages, and the aggregate checks. */
#ifndef CP_FUZZ_FL_H
#define CP_FUZZ_FL_H

#include "compressors/compressor.h"
#include "include/commpress_fl.h"
#include "tests/fuzz/fuzz_common.h"

#define FZ_FL_CLIENTS 4
#define FZ_FL_CFG_BYTES 4

static const char *const fz_fl_algos[3] = {"fedavg", "scafcom", "scallion"};

/* The codecs a federated configuration takes: those of the registry that
 * do not fix their own feedback (dgc's momentum is a collective's). */
static inline const cp_compressor_ops_t *fz_fl_codec(unsigned i)
{
    size_t m = 0;
    for (size_t k = 0; k < cp_compressor_count(); k++)
        m += cp_compressor_at(k)->feedback == NULL;
    i %= (unsigned)m;
    for (size_t k = 0; k < cp_compressor_count(); k++)
        if (cp_compressor_at(k)->feedback == NULL && i-- == 0)
            return cp_compressor_at(k);
    abort();
}

/* [algorithm][codec][dim][options]: dim 1 + dim % 48; options bit 0
 * topk_fp16, bit 1 stochastic, bits 2-3 density, bits 4-6 quant bits - 1,
 * bit 7 bucket 7 instead of 512. */
static inline void fz_fl_config(fz_reader_t *r, commpress_fl_config_t *c)
{
    static const double densities[4] = {0.1, 0.3, 1.0, 0.01};
    commpress_fl_config_default(c);
    c->algorithm = fz_fl_algos[fz_u8(r) % 3];
    c->compressor = fz_fl_codec(fz_u8(r))->name;
    c->dim = 1 + fz_u8(r) % 48;
    unsigned o = fz_u8(r);
    c->topk_fp16 = o & 1;
    c->stochastic = (o >> 1) & 1;
    c->density = densities[(o >> 2) & 3];
    c->bits = 1 + (int)((o >> 4) & 7);
    c->bucket = (o & 0x80) ? 7 : 512;
    c->num_clients = FZ_FL_CLIENTS;
    c->local_steps = 2;
    c->lr_local = 0.1;
    c->lr_global = 1.0;
    c->beta = 0.5;
    c->alpha = 0.5;
    c->seed = 1;
}

/* The configuration bytes of fz_fl_config. */
static inline void fz_fl_put_config(fz_buf_t *b, unsigned algo, unsigned codec,
                                    size_t dim, unsigned opts)
{
    fz_put_u8(b, algo), fz_put_u8(b, codec);
    fz_put_u8(b, (unsigned)(dim - 1)), fz_put_u8(b, opts);
}

/* Client `user`'s gradient of 0.5 |y - t|^2, t a fixed target per client. */
static inline int fz_fl_grad(void *user, const float *y, float *g, size_t d)
{
    fz_values(g, d, 1000 + (uintptr_t)user);
    for (size_t j = 0; j < d; j++)
        g[j] = y[j] - g[j];
    return 0;
}

static inline int fz_fl_round(commpress_fl_client_t *cl, uint32_t id,
                              const float *x, const float *c, uint64_t round,
                              void *msg, size_t cap, size_t *len)
{
    return commpress_fl_client_round(cl, x, c, round, fz_fl_grad,
                                     (void *)(uintptr_t)id, msg, cap, len);
}

/* The guarantee being added to optim/fl.c: an accepted aggregate leaves a
 * finite model and control variate. CP_FUZZ_FL_FINITE=0 skips the check
 * (to explore past it while it does not hold). */
static inline int fz_fl_check_finite(void)
{
    const char *e = getenv("CP_FUZZ_FL_FINITE");
    return e == NULL || strcmp(e, "0") != 0;
}

/* Aggregates and checks what commpress_fl.h promises: 0, or a rejection
 * (-3; -9 should non-finite sums get their own code) that changes
 * nothing; after an accepted one, a finite model and control variate. */
static inline int fz_fl_aggregate(commpress_fl_server_t *s,
                                  const commpress_fl_config_t *c,
                                  const void *const *msgs, const size_t *lens,
                                  size_t count)
{
    const size_t d = c->dim;
    float *x = malloc(4 * d), *cv = malloc(4 * d);
    memcpy(x, commpress_fl_server_model(s), 4 * d);
    memcpy(cv, commpress_fl_server_control(s), 4 * d);
    const uint64_t round = commpress_fl_server_round(s);
    int st = commpress_fl_server_aggregate(s, msgs, lens, count);
    FZ_CHECK(st == 0 || st == -3 || st == -9, "aggregate returned %d", st);
    if (st != 0) {
        FZ_CHECK(memcmp(x, commpress_fl_server_model(s), 4 * d) == 0 &&
                     memcmp(cv, commpress_fl_server_control(s), 4 * d) == 0 &&
                     round == commpress_fl_server_round(s),
                 "a rejected aggregate changed the server");
    } else {
        FZ_CHECK(commpress_fl_server_round(s) == round + 1, "round");
        if (fz_fl_check_finite())
            FZ_CHECK(fz_all_finite(commpress_fl_server_model(s), d) &&
                         fz_all_finite(commpress_fl_server_control(s), d),
                     "%s/%s: accepted aggregate left a non-finite model or "
                     "control variate", c->algorithm, c->compressor);
    }
    free(x), free(cv);
    return st;
}

#endif
