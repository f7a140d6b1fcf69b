/*
 * What the pool looked like over the last hours, for the dashboard's overview: the scheduler
 * loop adds a sample of each node pool every HISTORY_INTERVAL_MS, and the API reads them back.
 * Samples are kept in memory, HISTORY_SAMPLES per pool (six hours); a restart starts afresh.
 */
#ifndef GPOOL_SERVER_HISTORY_H
#define GPOOL_SERVER_HISTORY_H

#include <jansson.h>
#include <stdint.h>

#define HISTORY_INTERVAL_MS 10000
#define HISTORY_SAMPLES 2160
#define HISTORY_POOLS 64

/* One pool at one moment, in milli-GPUs. */
struct history_sample {
    int64_t t_ms;
    int64_t gpus, allocated, used, borrowed, swapped;
};

struct history;

struct history *history_new(void);
void history_free(struct history *h);
/* Adds a sample of a pool; a pool past the first HISTORY_POOLS is not kept. */
void history_add(struct history *h, const char *pool, const struct history_sample *s);
/*
 * The samples taken at since_ms or later: {"interval_s", "columns": ["t_ms", "gpus", ...],
 * "pools": [{"name", "samples": [[t_ms, gpus, ...], ...]}]}, figures in GPUs.
 */
json_t *history_json(struct history *h, int64_t since_ms);

#endif
