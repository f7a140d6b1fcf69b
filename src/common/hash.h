/*
 * FNV-1a over a string: a stable, cheap fingerprint (a reason that changed, a directory's name),
 * not a defence against chosen input.
 */
#ifndef GPOOL_COMMON_HASH_H
#define GPOOL_COMMON_HASH_H

#include <stdint.h>

#define HASH_FNV_OFFSET 14695981039346656037ull

/* FNV-1a of s, starting from h (HASH_FNV_OFFSET, or a seed). */
static inline uint64_t hash_fnv1a(const char *s, uint64_t h)
{
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

#endif
