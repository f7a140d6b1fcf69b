/*
 * The HTTP/JSON API of `gpool server` (docs/api.md).
 */
#ifndef GPOOL_SERVER_API_H
#define GPOOL_SERVER_API_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "server/idle.h"
#include "server/jobspec.h"
#include "server/logs.h"
#include "server/store.h"

struct events;
struct loop;
struct metrics;

struct request;

struct api {
    struct store *store;
    struct loop *loop;
    struct MHD_Daemon *daemon;
    /* Submissions waiting for the next group commit. */
    pthread_mutex_t qmu;
    pthread_cond_t qcond;
    struct request **q;
    int qn, qcap;
    bool qstop;
    pthread_t committer;
    /* Agents waiting (long-poll) for their node's assignments to change: the generation counts
     * changes; node_gen ({"NODE": generation}) and all_gen say when each node's last changed. */
    uint64_t generation, all_gen;
    json_t *node_gen;
    int64_t next_wake_ms; /* when the committer next answers the long-polls whose wait is over */
    struct request **waiters;
    int nwaiters, capwaiters;
    /* The event stream, job logs, and how long an agent may be silent. */
    struct events *events;
    struct logs logs;
    int64_t node_timeout_ms;
    /* The counters behind /metrics, and whether /metrics needs no token. */
    struct metrics *metrics;
    bool metrics_public;
    /* While another server leads the store, every API request is answered 503 (standby). */
    bool standby;
    /* Which running jobs are idle, from the heartbeats; the caller may set its threshold and
     * window after api_init. */
    struct idle idle;
    /* TLS: the certificate (chain) and its key, PEM; NULL: plain HTTP. */
    const char *tls_cert, *tls_key;
};

/* Prepares what api_assignments_changed and the event stream need; call before the loop starts.
 * The caller sets store, logs and node_timeout_ms. */
void api_init(struct api *a);
/* Listens on ADDRESS:PORT (IPv4), with TLS when tls_cert is set, and serves from a thread of its
 * own.  0 or -errno. */
int api_start(struct api *a, const char *listen, char *err, size_t errlen);
/* Assignments changed on the nodes named in `nodes` ("n1 n2"), or on any node (NULL): the
 * agents of those nodes that wait for theirs are answered. */
void api_assignments_changed(void *a, const char *nodes);
/* A job's state, or a node, changed elsewhere (the scheduler loop): subscribers hear of it. */
void api_job_changed(void *a, int64_t id);
void api_node_changed(void *a, const char *name);
/* A pass of the scheduler loop took `seconds` (a loop hook). */
void api_cycle_done(void *a, double seconds);
/* Whether the API answers as a standby; set before the server leads, cleared once it does (and
 * once its scheduler loop has started). */
bool api_standing_by(struct api *a);
void api_set_standby(struct api *a, bool standby);
/* Prints every endpoint, "METHOD /path/{param}" a line. */
void api_routes_print(FILE *f);
/* Stops serving: what is queued is answered, event streams end. */
void api_stop(struct api *a);
/* Frees what api_init made; after api_stop and after the loop has stopped. */
void api_fini(struct api *a);

/* Refuses a user whose Unix account is unknown, or root for a workload-running role. */
int api_user_check(const struct store_user *u, struct api_error *e);

#endif
