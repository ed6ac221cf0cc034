#include <string.h>

#include "compressors/compressor.h"

/* Adding a codec: its file, which defines cp_compressor_<name> and
 * describes it (compressors/compressor.h), and one line here. The order is
 * the order of COMMPRESS_COMPRESSOR's choices and of the documentation. */
#define CP_CODECS(X)                                                         \
    X(none)                                                                  \
    X(fp16)                                                                  \
    X(bf16)                                                                  \
    X(topk)                                                                  \
    X(sign)                                                                  \
    X(quant)                                                                 \
    X(dgc)                                                                   \
    X(randk)

#define CP_DECLARE(name) extern const cp_compressor_ops_t cp_compressor_##name;
#define CP_ENTRY(name) &cp_compressor_##name,
CP_CODECS(CP_DECLARE)
static const cp_compressor_ops_t *const cp_compressors[] = {CP_CODECS(CP_ENTRY)};
#define NCODECS (sizeof(cp_compressors) / sizeof(*cp_compressors))
_Static_assert(NCODECS <= CP_MAX_CODECS, "raise CP_MAX_CODECS");

size_t cp_compressor_count(void) { return NCODECS; }

const cp_compressor_ops_t *cp_compressor_at(size_t i)
{
    return i < NCODECS ? cp_compressors[i] : NULL;
}

int cp_compressor_index(const char *name)
{
    for (size_t i = 0; i < NCODECS; i++)
        if (strcmp(cp_compressors[i]->name, name) == 0)
            return (int)i;
    return -1;
}

const cp_compressor_ops_t *cp_compressor_find(const char *name)
{
    int i = cp_compressor_index(name);
    return i < 0 ? NULL : cp_compressors[i];
}

size_t cp_scratch_none(const cp_params_t *p, size_t n)
{
    (void)p;
    (void)n;
    return 0;
}

void cp_decode_base(const float *y, float *out, size_t n)
{
    if (y == NULL)
        memset(out, 0, n * sizeof(float));
    else if (y != out)
        memcpy(out, y, n * sizeof(float));
}
