/* Shared by the libFuzzer targets of tests/fuzz/ (docs/development.md,
 * "Fuzzing"): a reader that cuts the fuzzer's bytes into fields, the
 * contract check that aborts, and the seed writer.
 *
 * Seeds: a target run with CP_FUZZ_WRITE_SEEDS=<dir> writes its valid
 * seed inputs (made by the library's own encoders and savers) into <dir>
 * and exits instead of fuzzing; scripts/fuzz.sh --seeds does that for
 * every target into tests/fuzz/corpus/<target>/. */
#ifndef CP_FUZZ_COMMON_H
#define CP_FUZZ_COMMON_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/hd.h"

/* A contract violation: say which, then abort so libFuzzer keeps the
 * input (a trap, not an assert: NDEBUG cannot turn it off). */
#define FZ_CHECK(cond, ...)                                                  \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "fuzz contract violated at %s:%d: %s: ",         \
                    __FILE__, __LINE__, #cond);                              \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
            __builtin_trap();                                                \
        }                                                                    \
    } while (0)

/* Fields from the front of the input; past its end they read as zero. */
typedef struct {
    const uint8_t *p;
    size_t n;
} fz_reader_t;

static inline uint64_t fz_take(fz_reader_t *r, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) {
        uint64_t b = 0;
        if (r->n > 0) {
            b = *r->p++;
            r->n--;
        }
        v |= b << (8 * i);
    }
    return v;
}
static inline uint8_t fz_u8(fz_reader_t *r) { return (uint8_t)fz_take(r, 1); }
static inline uint16_t fz_u16(fz_reader_t *r) { return (uint16_t)fz_take(r, 2); }

/* An exactly-sized heap copy of the next len bytes (at most what is
 * left), so ASan sees a read one byte past its end. */
static inline unsigned char *fz_copy(fz_reader_t *r, size_t len)
{
    if (len > r->n)
        len = r->n;
    unsigned char *b = malloc(len ? len : 1);
    if (b == NULL)
        abort();
    if (len)
        memcpy(b, r->p, len);
    r->p += len;
    r->n -= len;
    return b;
}

static inline int fz_all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

/* A growable byte buffer for building seeds. */
typedef struct {
    unsigned char *b;
    size_t len, cap;
} fz_buf_t;

static inline void fz_put(fz_buf_t *s, const void *p, size_t len)
{
    if (s->len + len > s->cap) {
        s->cap = 2 * (s->len + len) + 64;
        s->b = realloc(s->b, s->cap);
        if (s->b == NULL)
            abort();
    }
    if (len)
        memcpy(s->b + s->len, p, len);
    s->len += len;
}
static inline void fz_put_u8(fz_buf_t *s, unsigned v)
{
    unsigned char c = (unsigned char)v;
    fz_put(s, &c, 1);
}
static inline void fz_put_u16(fz_buf_t *s, unsigned v)
{
    unsigned char c[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    fz_put(s, c, 2);
}

/* Writes s as <dir>/<name> and empties it. */
static inline void fz_seed_write(const char *dir, const char *name, fz_buf_t *s)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(s->b, 1, s->len, f) != s->len || fclose(f) != 0) {
        fprintf(stderr, "cannot write seed %s\n", path);
        exit(1);
    }
    s->len = 0;
}

/* Called from LLVMFuzzerInitialize: in seed mode, writes the seeds and
 * exits. */
static inline void fz_maybe_write_seeds(void (*write)(const char *dir))
{
    const char *dir = getenv("CP_FUZZ_WRITE_SEEDS");
    if (dir == NULL || *dir == '\0')
        return;
    write(dir);
    exit(0);
}

/* A checkpoint (optim/state_blob.h) from the rest of the input, after a
 * byte whose low bit asks for its checksum to be recomputed, so that the
 * fuzzer reaches the header and payload checks behind it. */
static inline unsigned char *fz_blob(fz_reader_t *r, size_t *len)
{
    const unsigned fix = fz_u8(r);
    *len = r->n;
    unsigned char *blob = fz_copy(r, *len);
    if ((fix & 1) && *len >= 8) {
        uint64_t f = cp_fnv1a(blob, *len - 8);
        memcpy(blob + *len - 8, &f, 8);
    }
    return blob;
}

/* Every load's contract, from what the object saves before and after:
 * 0 or -3; an accepted checkpoint saves back to its own bytes; a refused
 * one changes nothing. */
static inline void fz_check_load(int st, const unsigned char *blob, size_t len,
                                 const unsigned char *before, size_t l0,
                                 const unsigned char *after, size_t l1)
{
    FZ_CHECK(st == 0 || st == -3, "load returned %d", st);
    if (st == 0)
        FZ_CHECK(l1 == len && memcmp(after, blob, len) == 0,
                 "an accepted checkpoint saves back differently");
    else
        FZ_CHECK(l1 == l0 && memcmp(after, before, l0) == 0,
                 "a refused checkpoint changed the state");
}

/* Deterministic finite test values in [-1, 1] (a gradient, a y). */
static inline void fz_values(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
}

#endif
