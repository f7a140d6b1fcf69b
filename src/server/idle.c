/*
 * Idle detection (idle.h): the last time each job's processes were busy on a GPU, from the
 * heartbeats' per-job measures, kept in memory.  A job seen busy is busy until the window has
 * passed without it being seen busy again; before the server has seen a whole window of it
 * (it started, or the server did, less than a window ago) it is not called idle.
 */
#include <stdio.h>

#include "server/idle.h"

/* Entries of jobs not busy for this long are dropped (ended jobs' entries go this way). */
#define FORGET_MS (7LL * 24 * 3600 * 1000)
#define PRUNE_EVERY_MS (60 * 1000)

void idle_init(struct idle *d, double busy_pct, int64_t window_ms, int64_t now_ms)
{
    pthread_mutex_init(&d->mu, NULL);
    d->busy_pct = busy_pct;
    d->window_ms = window_ms;
    d->start_ms = now_ms;
    d->pruned_ms = now_ms;
    d->last_busy = json_object();
}

void idle_fini(struct idle *d)
{
    json_decref(d->last_busy);
    pthread_mutex_destroy(&d->mu);
}

void idle_heartbeat(struct idle *d, json_t *gpus, int64_t now_ms)
{
    size_t i, k;
    json_t *g, *e;
    const char *key;
    void *tmp;
    char id[32];

    pthread_mutex_lock(&d->mu);
    json_array_foreach(gpus, i, g) json_array_foreach(json_object_get(g, "jobs"), k, e)
    {
        json_t *busy = json_object_get(e, "utilization_pct");

        /* Not measured (an NVML without per-process use): busy, not idle for want of news. */
        if (busy != NULL && json_number_value(busy) < d->busy_pct)
            continue;
        snprintf(id, sizeof(id), "%lld", (long long)json_integer_value(json_object_get(e, "id")));
        json_object_set_new(d->last_busy, id, json_integer(now_ms));
    }
    if (now_ms - d->pruned_ms > PRUNE_EVERY_MS) {
        json_object_foreach_safe(d->last_busy, tmp, key,
                                 e) if (now_ms - json_integer_value(e) > FORGET_MS)
            json_object_del(d->last_busy, key);
        d->pruned_ms = now_ms;
    }
    pthread_mutex_unlock(&d->mu);
}

int64_t idle_since(struct idle *d, int64_t id, int64_t started_ms, int64_t heard_ms)
{
    int64_t last = started_ms > d->start_ms ? started_ms : d->start_ms, busy;
    char key[32];

    if (heard_ms <= 0 || started_ms <= 0)
        return 0;
    snprintf(key, sizeof(key), "%lld", (long long)id);
    pthread_mutex_lock(&d->mu);
    busy = json_integer_value(json_object_get(d->last_busy, key));
    pthread_mutex_unlock(&d->mu);
    if (busy > last)
        last = busy;
    return heard_ms - last >= d->window_ms ? last : 0;
}
