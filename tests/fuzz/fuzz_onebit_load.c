/* libFuzzer target: commpress_onebit_adam_load (include/commpress.h), a
 * 1-bit Adam checkpoint (optim/state_blob.h). Loading is collective: the
 * optimizer lives on MPI_COMM_SELF, MPI initialized once (a singleton
 * MPI_Init, no mpirun needed with Open MPI).
 *
 * Input: [count][freeze][fix] then the checkpoint. count = 1 + count % 40;
 * freeze_step = 0, 1, 3 or 100000; fix bit 0 rewrites the FNV-1a checksum
 * over the fuzzed bytes first (see fuzz_fl_client_load.c).
 *
 * Checked: 0 or -3 (one rank: never -11); a rejected checkpoint changes
 * nothing (the optimizer saves the same bytes as before); an accepted one
 * saves back to the same bytes and is usable: a step with a finite
 * gradient returns 0 or -9 (skipped, non-finite), with the step count
 * advanced by one exactly when it returns 0, and saves again. */
#include <mpi.h>
#include <sanitizer/lsan_interface.h>

#include "include/commpress.h"
#include "optim/state_blob.h"
#include "tests/fuzz/fuzz_common.h"

static const uint64_t freezes[4] = {0, 1, 3, 100000};

static commpress_onebit_adam_t *create(fz_reader_t *r, size_t *count)
{
    commpress_onebit_adam_config_t cfg;
    commpress_onebit_adam_t *o = NULL;
    commpress_onebit_adam_config_default(&cfg);
    *count = 1 + fz_u8(r) % 40;
    cfg.freeze_step = freezes[fz_u8(r) % 4];
    cfg.weight_decay = 0.01;
    FZ_CHECK(commpress_onebit_adam_create(&cfg, MPI_COMM_SELF, *count, &o) == 0,
             "create");
    return o;
}

static unsigned char *save(const commpress_onebit_adam_t *o, size_t *len)
{
    FZ_CHECK(commpress_onebit_adam_save(o, NULL, 0, len) == 0, "save size");
    unsigned char *b = malloc(*len);
    FZ_CHECK(commpress_onebit_adam_save(o, b, *len, len) == 0, "save");
    return b;
}

/* Parameters and gradient of step t. */
static int step(commpress_onebit_adam_t *o, size_t count, uint64_t t)
{
    float *x = malloc(4 * count), *g = malloc(4 * count);
    fz_values(x, count, 2 * t), fz_values(g, count, 2 * t + 1);
    int st = commpress_onebit_adam_step(o, x, g, count);
    free(x), free(g);
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_reader_t r = {data, size};
    size_t count, l0, l1;

    if (size < 3)
        return 0;
    commpress_onebit_adam_t *o = create(&r, &count);
    size_t len;
    unsigned char *blob = fz_blob(&r, &len);
    unsigned char *before = save(o, &l0);
    int st = commpress_onebit_adam_load(o, blob, len);
    unsigned char *after = save(o, &l1);
    fz_check_load(st, blob, len, before, l0, after, l1);
    if (st == 0) {
        const uint64_t t = commpress_onebit_adam_steps(o);
        int s2 = step(o, count, t);
        FZ_CHECK(s2 == 0 || s2 == -9, "step returned %d", s2);
        FZ_CHECK(commpress_onebit_adam_steps(o) == t + (s2 == 0), "steps");
        free(save(o, &l1));
    }
    commpress_onebit_adam_destroy(o);
    free(blob), free(before), free(after);
    return 0;
}

/* Seeds: checkpoints after 0, 2 and 5 steps (warm-up, at and past the
 * freeze) for a few counts. */
static void write_seeds(const char *dir)
{
    static const unsigned counts[3] = {1, 7, 33}, steps[3] = {0, 2, 5};
    fz_buf_t b = {0};
    char name[128];
    for (unsigned f = 0; f < 4; f++)
        for (unsigned v = 0; v < 3; v++) {
            fz_put_u8(&b, counts[v] - 1), fz_put_u8(&b, f), fz_put_u8(&b, 0);
            fz_reader_t r = {b.b, b.len};
            size_t count, len;
            commpress_onebit_adam_t *o = create(&r, &count);
            for (unsigned t = 0; t < steps[v]; t++)
                if (step(o, count, t) != 0)
                    abort();
            unsigned char *blob = save(o, &len);
            fz_put(&b, blob, len);
            snprintf(name, sizeof(name), "count%u-freeze%llu-steps%u", counts[v],
                     (unsigned long long)freezes[f], steps[v]);
            fz_seed_write(dir, name, &b);
            commpress_onebit_adam_destroy(o);
            free(blob);
        }
    free(b.b);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    /* Open MPI keeps what MPI_Init allocates until exit, and MPI_Finalize
     * unloads its components before LeakSanitizer could name them: the
     * allocations of MPI_Init are not leak-checked, and MPI is never
     * finalized. What each input allocates (MPI_Comm_dup included) still
     * is. */
    __lsan_disable();
    int ok = MPI_Init(NULL, NULL) == MPI_SUCCESS;
    __lsan_enable();
    if (!ok) {
        fprintf(stderr, "fuzz_onebit_load: MPI_Init failed\n");
        exit(1);
    }
    fz_maybe_write_seeds(write_seeds);
    return 0;
}
