/*
 * Sizes as people write them: "512", "20GiB", "1.5GiB", "300MB".  Binary
 * suffixes (KiB, MiB, GiB, TiB) are powers of 1024, decimal ones (kB, MB, GB,
 * TB) powers of 1000, and a bare number is bytes.
 */
#ifndef GPOOL_COMMON_UNITS_H
#define GPOOL_COMMON_UNITS_H

#include <stdint.h>

/* Returns 0, or -EINVAL for a malformed size and -ERANGE for one over 2^64 - 1. */
int units_parse_bytes(const char *s, uint64_t *bytes);

#endif
