/*
 * The scheduler loop: a thread that runs the scheduling cycle of src/sched on a snapshot of the
 * store soon after each change and at least once a second, applies its actions and keeps each
 * waiting job's reason, and stops jobs that ran past their walltime.  It tells the API what it
 * changed, and counts what each GPU holds the same way for those who ask (loop_allocations).
 */
#ifndef GPOOL_SERVER_LOOP_H
#define GPOOL_SERVER_LOOP_H

#include "server/store.h"

struct loop;

/* What the loop tells the rest of the server; any may be NULL. */
struct loop_hooks {
    /* After a pass that changed assignments: the nodes whose changed ("n1 n2 ..."). */
    void (*assignments_changed)(void *arg, const char *nodes);
    void (*job_changed)(void *arg, int64_t id); /* placed, stopped, or queued again */
    void (*node_changed)(void *arg, const char *name); /* went silent, or came back */
    void *arg;
    void (*cycle_done)(void *arg, double seconds); /* how long a pass took */
};

/* Starts the loop.  A node whose agent is silent for node_timeout_s seconds is gone and its jobs
 * are queued again; a job that ran less than min_runtime_s is never preempted. */
int loop_start(struct store *s, int node_timeout_s, int min_runtime_s,
               const struct loop_hooks *hooks, struct loop **out);
/* Each project's fair share at the last pass, GPU milli: {"P": milli}; a new reference. */
json_t *loop_fair_shares(struct loop *l);
/* Something changed: run a cycle soon. */
void loop_poke(struct loop *l);
void loop_stop(struct loop *l);

/*
 * What each GPU of each node holds, as the loop counts it: {"NODE": [{"allocated_milli",
 * "memory_allocated_bytes", "jobs": [{"id", "user_id", "milli", "swapped", "project"}]}, ...]}, GPUs in
 * index order; "milli" is the job's share of that GPU.
 */
json_t *loop_allocations(struct store *s);

/* Each project's fair share and allocation at the last cycle: {"NAME": {"fair_share_milli",
 * "allocated_milli"}}, empty when no job was pending or running. */
json_t *loop_shares(struct loop *l);
/* The pools over time since since_ms (history_json). */
json_t *loop_history(struct loop *l, int64_t since_ms);

#endif
