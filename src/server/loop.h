/*
 * The scheduler loop: a thread that runs the scheduling cycle of src/sched on a snapshot of the
 * store soon after each change and at least once a second, applies its actions and keeps each
 * waiting job's reason, and stops jobs that ran past their walltime.  It tells the API what it
 * changed, and counts what each GPU holds the same way for those who ask (loop_allocations).
 */
#ifndef GPOOL_SERVER_LOOP_H
#define GPOOL_SERVER_LOOP_H

#include "sched/model.h"
#include "server/idle.h"
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

/* How the loop schedules (gpool server's options; docs/scheduler.md, "Policy"). */
struct loop_cfg {
    int node_timeout_s; /* a node silent this long is gone; its jobs are queued again */
    int min_runtime_s;  /* a job runs this long before it may be preempted or swapped out */
    bool lend;          /* thin provisioning: jobs may borrow GPUs whose jobs idle */
    bool swap;          /* a displaced job is swapped out when it can be, not stopped */
    /* Of each priority class (bit 1 << class): its own minimum runtime, its idle jobs keep their
     * GPUs (lend no more), its jobs never borrow. */
    int64_t class_min_runtime_s[SCHED_PRIORITIES];
    unsigned class_min_set, class_no_lend, class_no_borrow;
    struct idle *idle; /* which running jobs idle (the API's); NULL: none does */
};

/* The policy's defaults: lend and swap on; inference jobs neither lend nor borrow, interactive
 * ones lend but do not borrow. */
void loop_cfg_defaults(struct loop_cfg *cfg);

/* Starts the loop with cfg (copied). */
int loop_start(struct store *s, const struct loop_cfg *cfg, const struct loop_hooks *hooks,
               struct loop **out);
/* Each project's fair share at the last pass, GPU milli: {"P": milli}; a new reference. */
json_t *loop_fair_shares(struct loop *l);
/* Something changed: run a cycle soon. */
void loop_poke(struct loop *l);
void loop_stop(struct loop *l);

/*
 * What each GPU of each node holds, as the loop counts it: {"NODE": [{"allocated_milli",
 * "memory_allocated_bytes", "borrowed_milli", "swapped_milli", "jobs": [{"id", "user_id",
 * "milli", "swapped", "borrowed", "project"}]}, ...]}, GPUs in index order; "milli" is the job's
 * share of that GPU.  Borrowers and jobs the scheduler swapped out hold no allocation: they are
 * counted in borrowed_milli and swapped_milli.
 */
json_t *loop_allocations(struct store *s);

/* Each project's fair share and allocation at the last cycle: {"NAME": {"fair_share_milli",
 * "allocated_milli"}}, empty when no job was pending or running. */
json_t *loop_shares(struct loop *l);
/* The pools over time since since_ms (history_json). */
json_t *loop_history(struct loop *l, int64_t since_ms);

#endif
