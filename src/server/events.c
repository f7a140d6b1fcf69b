/*
 * Server-Sent Events from a ring of recent events, on suspended libmicrohttpd connections.
 */
#include "server/events.h"

#include <inttypes.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"

/* What one fill of a subscriber's buffer takes at most; the rest waits for the next call. */
#define FILL_MAX (64 * 1024)

struct event {
    uint64_t id;
    int64_t owner;
    char *text; /* "id: N\nevent: TYPE\ndata: JSON\n\n" */
};

struct subscriber {
    struct events *ev;
    struct MHD_Connection *conn;
    int64_t user_id;
    bool admin, waiting;
    uint64_t next; /* the id of the next event to consider */
    char *out;     /* formatted, not yet sent */
    size_t olen, ooff, ocap;
    int64_t keepalive_ms;
};

struct events {
    pthread_mutex_t mu;
    struct event ring[EVENTS_RING];
    /* Ids of the first event this hub made and of the latest (first - 1 while there is none). */
    uint64_t first, last;
    struct subscriber **waiting;
    int nwaiting, capwaiting, nsubs;
    bool closing;
};

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct events *events_new(int64_t now_ms)
{
    struct events *ev = xcalloc(1, sizeof(*ev));

    pthread_mutex_init(&ev->mu, NULL);
    ev->first = (uint64_t)now_ms * 1000 + 1;
    ev->last = ev->first - 1;
    return ev;
}

void events_free(struct events *ev)
{
    if (ev == NULL)
        return;
    for (int i = 0; i < EVENTS_RING; i++)
        free(ev->ring[i].text);
    free(ev->waiting);
    pthread_mutex_destroy(&ev->mu);
    free(ev);
}

/* Under ev->mu: every parked subscriber is resumed, or only those whose keepalive is due. */
static void wake(struct events *ev, bool all, int64_t now)
{
    int keep = 0;

    for (int i = 0; i < ev->nwaiting; i++) {
        struct subscriber *s = ev->waiting[i];

        if (all || now >= s->keepalive_ms) {
            s->waiting = false;
            MHD_resume_connection(s->conn);
        } else {
            ev->waiting[keep++] = s;
        }
    }
    ev->nwaiting = keep;
}

void events_publish(struct events *ev, const char *type, int64_t owner, json_t *data)
{
    char *json = json_dumps(data, JSON_COMPACT);
    struct event *e;

    json_decref(data);
    if (json == NULL)
        return;
    pthread_mutex_lock(&ev->mu);
    e = &ev->ring[++ev->last % EVENTS_RING];
    free(e->text);
    e->id = ev->last;
    e->owner = owner;
    if (asprintf(&e->text, "id: %" PRIu64 "\nevent: %s\ndata: %s\n\n", e->id, type, json) < 0)
        e->text = NULL;
    wake(ev, true, 0);
    pthread_mutex_unlock(&ev->mu);
    free(json);
}

static void out_add(struct subscriber *s, const char *text)
{
    size_t n = strlen(text);

    if (s->olen + n > s->ocap) {
        s->ocap = s->olen + n + 1024;
        s->out = xreallocarray(s->out, s->ocap, 1);
    }
    memcpy(s->out + s->olen, text, n);
    s->olen += n;
}

/* Under ev->mu: the events s has not seen and may see, or a keepalive when one is due. */
static void fill(struct subscriber *s, int64_t now)
{
    struct events *ev = s->ev;
    uint64_t oldest = ev->last >= ev->first + EVENTS_RING ? ev->last - EVENTS_RING + 1 : ev->first;

    s->olen = s->ooff = 0;
    if (s->next < oldest) {
        out_add(s, "event: resync\ndata: {}\n\n");
        s->next = oldest;
    }
    for (; s->next <= ev->last && s->olen < FILL_MAX; s->next++) {
        const struct event *e = &ev->ring[s->next % EVENTS_RING];

        if (e->text != NULL && (e->owner == 0 || s->admin || e->owner == s->user_id))
            out_add(s, e->text);
    }
    if (s->olen == 0 && now >= s->keepalive_ms)
        out_add(s, ": keepalive\n\n");
    if (s->olen > 0)
        s->keepalive_ms = now + EVENTS_KEEPALIVE_MS;
}

/* Parks s until the next event or its keepalive: its connection is suspended, no thread held. */
static void park(struct subscriber *s)
{
    struct events *ev = s->ev;

    if (ev->nwaiting == ev->capwaiting) {
        ev->capwaiting = ev->capwaiting ? 2 * ev->capwaiting : 16;
        ev->waiting = xreallocarray(ev->waiting, (size_t)ev->capwaiting, sizeof(*ev->waiting));
    }
    ev->waiting[ev->nwaiting++] = s;
    s->waiting = true;
    MHD_suspend_connection(s->conn);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct subscriber *s = cls;
    struct events *ev = s->ev;
    ssize_t n = 0;

    pthread_mutex_lock(&ev->mu);
    if (s->ooff == s->olen) {
        if (ev->closing) {
            pthread_mutex_unlock(&ev->mu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        fill(s, mono_ms());
    }
    if (s->ooff == s->olen) {
        park(s);
    } else {
        n = (ssize_t)(s->olen - s->ooff < max ? s->olen - s->ooff : max);
        memcpy(buf, s->out + s->ooff, (size_t)n);
        s->ooff += (size_t)n;
    }
    pthread_mutex_unlock(&ev->mu);
    return n;
}

static void stream_free(void *cls)
{
    struct subscriber *s = cls;
    struct events *ev = s->ev;

    pthread_mutex_lock(&ev->mu);
    for (int i = 0; i < ev->nwaiting; i++)
        if (ev->waiting[i] == s)
            ev->waiting[i--] = ev->waiting[--ev->nwaiting];
    ev->nsubs--;
    pthread_mutex_unlock(&ev->mu);
    free(s->out);
    free(s);
}

struct MHD_Response *events_subscribe(struct events *ev, struct MHD_Connection *c,
                                      int64_t user_id, bool admin, const char *last_id)
{
    struct subscriber *s = xcalloc(1, sizeof(*s));
    struct MHD_Response *r;
    char *end;

    *s = (struct subscriber){.ev = ev, .conn = c, .user_id = user_id, .admin = admin};
    out_add(s, "retry: 2000\n: connected\n\n");
    pthread_mutex_lock(&ev->mu);
    s->next = ev->last + 1;
    if (last_id != NULL) {
        uint64_t id = strtoull(last_id, &end, 10);

        /* An id this hub cannot have made (garbage, or from the future) starts a resync. */
        s->next = *last_id != '\0' && *end == '\0' && id <= ev->last ? id + 1 : 0;
    }
    s->keepalive_ms = mono_ms() + EVENTS_KEEPALIVE_MS;
    if (ev->closing) {
        pthread_mutex_unlock(&ev->mu);
        free(s->out);
        free(s);
        return NULL;
    }
    ev->nsubs++;
    pthread_mutex_unlock(&ev->mu);
    r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, s,
                                          stream_free);
    if (r == NULL) {
        stream_free(s);
        return NULL;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    return r;
}

void events_tick(struct events *ev)
{
    pthread_mutex_lock(&ev->mu);
    wake(ev, false, mono_ms());
    pthread_mutex_unlock(&ev->mu);
}

void events_close(struct events *ev)
{
    pthread_mutex_lock(&ev->mu);
    ev->closing = true;
    wake(ev, true, 0);
    pthread_mutex_unlock(&ev->mu);
}

int events_subscribers(struct events *ev)
{
    int n;

    pthread_mutex_lock(&ev->mu);
    n = ev->nsubs;
    pthread_mutex_unlock(&ev->mu);
    return n;
}
