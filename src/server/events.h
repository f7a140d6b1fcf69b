/*
 * The server's event stream: job state changes and node changes, as Server-Sent Events
 * (GET /api/v1/events).  Events go into a ring of the latest EVENTS_RING; each subscriber is an
 * HTTP response whose content callback sends what it may see and, when there is nothing to send,
 * suspends its connection until the next event or keepalive: no thread per subscriber.  Event ids
 * grow across server restarts, so a client that reconnects with Last-Event-ID gets what it missed,
 * or a `resync` event when that is no longer in the ring.
 */
#ifndef GPOOL_SERVER_EVENTS_H
#define GPOOL_SERVER_EVENTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define EVENTS_RING 4096
#define EVENTS_KEEPALIVE_MS 15000

struct events;
struct MHD_Connection;
struct MHD_Response;

/* A hub whose event ids start above now_ms * 1000 (above those of an earlier run). */
struct events *events_new(int64_t now_ms);
/* Frees the hub; after events_close and after the HTTP daemon has stopped. */
void events_free(struct events *ev);

/*
 * Publishes an event of `type` ("job", "node") with `data` (taken).  owner > 0: only that user
 * and admins see it; 0: every subscriber does.
 */
void events_publish(struct events *ev, const char *type, int64_t owner, json_t *data);

/*
 * A response that streams events to the user of connection c: those after last_id (the
 * Last-Event-ID header; NULL for the events from now on).  NULL when the hub is closing.
 */
struct MHD_Response *events_subscribe(struct events *ev, struct MHD_Connection *c,
                                      int64_t user_id, bool admin, const char *last_id);

/* Sends keepalives that are due; call about once a second. */
void events_tick(struct events *ev);
/* Ends every stream (they answer the end at once); call before the HTTP daemon stops. */
void events_close(struct events *ev);
/* How many streams are open. */
int events_subscribers(struct events *ev);

#endif
