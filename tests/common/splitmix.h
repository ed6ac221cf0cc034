/* The tests' generator: splitmix64, one 64-bit state, the same sequence on
 * every machine (unit, MPI and Python-free tests share it). */
#ifndef CP_TEST_SPLITMIX_H
#define CP_TEST_SPLITMIX_H

#include <stdint.h>

static inline uint64_t cp_test_splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#endif
