/*
 * Parsing of human-written sizes, shared by the command line, job files and
 * the simulated GPUs' configuration.
 */
#include "common/units.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *suffix;
    double scale;
} units[] = {
    {"", 1},           {"B", 1},           {"KiB", 1024.0},
    {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0},
    {"kB", 1e3},       {"KB", 1e3},        {"MB", 1e6},
    {"GB", 1e9},       {"TB", 1e12},
};

int units_parse_bytes(const char *s, uint64_t *bytes)
{
    char *end;
    double v;

    if (s == NULL || *s == '\0' || *s == '-' || *s == '+' || *s == ' ')
        return -EINVAL;
    errno = 0;
    v = strtod(s, &end);
    if (end == s || errno != 0 || !isfinite(v) || v < 0)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].suffix) != 0)
            continue;
        v *= units[i].scale;
        if (v >= 18446744073709551616.0)
            return -ERANGE;
        if (units[i].scale == 1 && v != (double)(uint64_t)v)
            return -EINVAL; /* a fraction of a byte */
        *bytes = (uint64_t)v;
        return 0;
    }
    return -EINVAL;
}
