/*
 * What the server exposes at /metrics, in Prometheus's text format (docs/server.md, Metrics):
 * per project, per GPU and per job state, read from the store and the scheduler loop at each
 * scrape; and two histograms the server keeps as it goes, the scheduler's pass time and the API's
 * request time.
 */
#ifndef GPOOL_SERVER_METRICS_H
#define GPOOL_SERVER_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct loop;
struct metrics;
struct store;

/* What a scrape reads besides the counters. */
struct metrics_view {
    struct store *store;
    struct loop *loop;
    int64_t now_ms, node_timeout_ms;
};

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* One API request answered: its method, its route's template, its status and how long it took. */
void metrics_request(struct metrics *m, const char *method, const char *route, int status,
                     double seconds);
/* One pass of the scheduler loop took `seconds`. */
void metrics_cycle(struct metrics *m, double seconds);

/* The whole exposition, NUL-terminated, malloc'd (the caller frees it); NULL without memory. */
char *metrics_render(struct metrics *m, const struct metrics_view *v, size_t *len);

/* s with the text format's label escapes (backslash, double quote, newline) into out. */
void metrics_escape(const char *s, char *out, size_t outlen);

#endif
