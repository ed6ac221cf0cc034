/* Saved optimizer and federated state: one sealed format for all of optim/.
 *   [8-byte magic][nh x u64 header words][float arrays][u64 FNV-1a of all
 *   before it]
 * in host byte order (a checkpoint moves between runs, not architectures).
 * The caller checks the header words against its own configuration. */
#ifndef CP_STATE_BLOB_H
#define CP_STATE_BLOB_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/hd.h"
#include "util/status.h"

static inline size_t cp_blob_size(size_t nh, size_t floats)
{
    return 8 + 8 * nh + 4 * floats + 8;
}

/* Writes magic, the header words and the n arrays, then the checksum. */
static inline void cp_blob_write(void *buf, const char *magic,
                                 const uint64_t *h, size_t nh,
                                 const float *const *arrays,
                                 const size_t *lens, int n)
{
    unsigned char *p = buf;
    memcpy(p, magic, 8), p += 8;
    memcpy(p, h, 8 * nh), p += 8 * nh;
    for (int i = 0; i < n; i++)
        memcpy(p, arrays[i], 4 * lens[i]), p += 4 * lens[i];
    uint64_t f = cp_fnv1a(buf, (size_t)(p - (unsigned char *)buf));
    memcpy(p, &f, 8);
}

/* Checks magic, length and checksum, copies the header words to h and
 * points *data at the arrays. Writes nothing else. */
static inline cp_status_t cp_blob_check(const void *buf, size_t len,
                                        const char *magic, size_t nh,
                                        size_t floats, uint64_t *h,
                                        const unsigned char **data)
{
    const unsigned char *b = buf;
    uint64_t f;
    if (b == NULL || len != cp_blob_size(nh, floats) || memcmp(b, magic, 8) != 0)
        return CP_ERR_MALFORMED;
    memcpy(&f, b + len - 8, 8);
    if (f != cp_fnv1a(b, len - 8))
        return CP_ERR_MALFORMED;
    memcpy(h, b + 8, 8 * nh);
    *data = b + 8 + 8 * nh;
    return CP_OK;
}

#endif
