/*
 * Idle detection from the agents' telemetry: a running job whose processes kept every GPU it
 * has below a busy threshold for a whole window is idle, since the last time it was busy.  This
 * is what thin provisioning and swapping read (docs/server.md, "Idle jobs").
 */
#ifndef GPOOL_SERVER_IDLE_H
#define GPOOL_SERVER_IDLE_H

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>

#define IDLE_BUSY_PCT_DEFAULT 5.0
#define IDLE_WINDOW_S_DEFAULT 300

struct idle {
    pthread_mutex_t mu;
    double busy_pct;   /* a job at or above this on a GPU is busy */
    int64_t window_ms; /* idle after this long without being busy */
    int64_t start_ms;  /* what the server saw begins here */
    int64_t pruned_ms; /* when entries of long-quiet jobs were last dropped */
    json_t *last_busy; /* {"JOB ID": when it was last seen busy (ms)} */
};

void idle_init(struct idle *d, double busy_pct, int64_t window_ms, int64_t now_ms);
void idle_fini(struct idle *d);
/* A heartbeat's telemetry (the agent's "gpus", each with its "jobs"), seen at now_ms. */
void idle_heartbeat(struct idle *d, json_t *gpus, int64_t now_ms);
/*
 * Since when the job `id`, running since started_ms, has been idle, or 0 (busy, or not known).
 * heard_ms: the oldest of its nodes' last heartbeats that measured each job's processes (0: some
 * node of it does not measure per job): what is known of it goes up to then.
 */
int64_t idle_since(struct idle *d, int64_t id, int64_t started_ms, int64_t heard_ms);

#endif
