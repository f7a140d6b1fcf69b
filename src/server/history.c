/*
 * The pool's recent past, as rings of samples: one ring per node pool, a mutex around them all
 * (the loop writes once every few seconds, the API reads when a dashboard asks).
 */
#include "server/history.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

struct ring {
    char name[129];
    struct history_sample s[HISTORY_SAMPLES];
    int head, n; /* the oldest sample, and how many there are */
};

struct history {
    pthread_mutex_t mu;
    struct ring *pools[HISTORY_POOLS];
    int npools;
};

struct history *history_new(void)
{
    struct history *h = xcalloc(1, sizeof(*h));

    pthread_mutex_init(&h->mu, NULL);
    return h;
}

void history_free(struct history *h)
{
    if (h == NULL)
        return;
    for (int i = 0; i < h->npools; i++)
        free(h->pools[i]);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

static struct ring *ring_of(struct history *h, const char *pool)
{
    struct ring *r;

    for (int i = 0; i < h->npools; i++)
        if (strcmp(h->pools[i]->name, pool) == 0)
            return h->pools[i];
    if (h->npools == HISTORY_POOLS)
        return NULL;
    r = xcalloc(1, sizeof(*r));
    strncpy(r->name, pool, sizeof(r->name) - 1);
    h->pools[h->npools++] = r;
    return r;
}

void history_add(struct history *h, const char *pool, const struct history_sample *s)
{
    struct ring *r;

    pthread_mutex_lock(&h->mu);
    if ((r = ring_of(h, pool)) != NULL) {
        if (r->n < HISTORY_SAMPLES) {
            r->s[(r->head + r->n++) % HISTORY_SAMPLES] = *s;
        } else {
            r->s[r->head] = *s;
            r->head = (r->head + 1) % HISTORY_SAMPLES;
        }
    }
    pthread_mutex_unlock(&h->mu);
}

static json_t *gpus(int64_t milli)
{
    return json_real((double)milli / 1000);
}

static json_t *ring_json(const struct ring *r, int64_t since_ms)
{
    json_t *samples = json_array();

    for (int i = 0; i < r->n; i++) {
        const struct history_sample *s = &r->s[(r->head + i) % HISTORY_SAMPLES];

        if (s->t_ms < since_ms)
            continue;
        json_array_append_new(samples, json_pack("[I, o, o, o, o, o]", (json_int_t)s->t_ms,
                                                 gpus(s->gpus), gpus(s->allocated), gpus(s->used),
                                                 gpus(s->borrowed), gpus(s->swapped)));
    }
    return json_pack("{s:s, s:o}", "name", r->name, "samples", samples);
}

json_t *history_json(struct history *h, int64_t since_ms)
{
    json_t *pools = json_array();

    pthread_mutex_lock(&h->mu);
    for (int i = 0; i < h->npools; i++)
        json_array_append_new(pools, ring_json(h->pools[i], since_ms));
    pthread_mutex_unlock(&h->mu);
    return json_pack("{s:i, s:[s, s, s, s, s, s], s:o}", "interval_s", HISTORY_INTERVAL_MS / 1000,
                     "columns", "t_ms", "gpus", "allocated", "used", "borrowed", "swapped", "pools",
                     pools);
}
