/*
 * The HTTP/JSON API of `gpool server` (docs/api.md).
 */
#ifndef GPOOL_SERVER_API_H
#define GPOOL_SERVER_API_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/jobspec.h"
#include "server/store.h"

struct loop;

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
    /* Agents waiting (long-poll) for their node's assignments to change. */
    uint64_t generation;
    struct request **waiters;
    int nwaiters, capwaiters;
};

/* Prepares what api_assignments_changed needs; call before the loop starts. */
void api_init(struct api *a);
/* Listens on ADDRESS:PORT (IPv4) and serves from a thread of its own.  0 or -errno. */
int api_start(struct api *a, const char *listen, char *err, size_t errlen);
/* The scheduler changed assignments: agents waiting for theirs are answered. */
void api_assignments_changed(void *a);
void api_stop(struct api *a);

/* Refuses a user whose Unix account is unknown, or root for a workload-running role. */
int api_user_check(const struct store_user *u, struct api_error *e);

#endif
