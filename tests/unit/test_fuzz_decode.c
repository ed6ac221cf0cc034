/* Random and mutated messages: decode must return OK or MALFORMED and never
 * touch memory outside out[0..n) (run under ASan in the sanitizer build).
 * Every codec of the registry, so a new one is fuzzed from its first day. */
#include <criterion/criterion.h>
#include <string.h>

#include "compressors/compressor.h"
#include "testutil.h"

Test(fuzz, decode_never_reads_or_writes_out_of_bounds)
{
    uint64_t s = 1;
    cr_assert_geq(cp_compressor_count(), 8);
    for (size_t c = 0; c < cp_compressor_count(); c++) {
        const cp_compressor_ops_t *codec = cp_compressor_at(c);
        cp_params_t p = tu_params();
        p.bits = 3;
        p.bucket = 7;
        for (int it = 0; it < 3000; it++) {
            p.topk_fp16 = (it / 4) % 2; /* the sparse codecs' two formats */
            p.shared_seed = (uint64_t)it;
            size_t n = tu_next(&s) % 300;
            float *x = tu_gradient(n, it);
            size_t len = 0;
            unsigned char *m = tu_encode(codec, &p, x, n, &len);
            cr_assert_not_null(m);
            /* Mutate: flip bytes, or cut/extend the length. */
            size_t flen = len;
            unsigned char *f = malloc(len + 16);
            memcpy(f, m, len);
            switch (it % 4) {
            case 0: if (len) f[tu_next(&s) % len] ^= (unsigned char)(1 + tu_next(&s) % 255); break;
            case 1: flen = len ? tu_next(&s) % len : 0; break;
            case 2: flen = len + 1 + tu_next(&s) % 8; memset(f + len, 0xff, 16); break;
            default: for (size_t i = 0; i < len; i++) f[i] = (unsigned char)tu_next(&s); break;
            }
            /* Exactly-sized heap buffers so ASan sees any overrun. */
            unsigned char *in = malloc(flen ? flen : 1);
            memcpy(in, f, flen);
            float *out = malloc((n ? n : 1) * sizeof(float));
            cp_status_t st = codec->decode(&p, in, flen, 1.0f, NULL, out, n);
            cr_assert(st == CP_OK || st == CP_ERR_MALFORMED, "codec %s st %d", codec->name, st);
            if (flen != len)
                cr_assert_eq(st, CP_ERR_MALFORMED);
            free(in), free(out), free(f), free(m), free(x);
        }
    }
}
