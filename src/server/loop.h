/*
 * The scheduler loop: a thread that runs the scheduling cycle of src/sched on a snapshot of the
 * store soon after each change and at least once a second, applies its actions and keeps each
 * waiting job's reason.
 */
#ifndef GPOOL_SERVER_LOOP_H
#define GPOOL_SERVER_LOOP_H

#include "server/store.h"

struct loop;

/* Starts the loop; notify(arg) is called after a pass that changed assignments.  A node whose
 * agent is silent for node_timeout_s seconds is gone and its jobs are queued again. */
int loop_start(struct store *s, int node_timeout_s, void (*notify)(void *), void *arg,
               struct loop **out);
/* Something changed: run a cycle soon. */
void loop_poke(struct loop *l);
void loop_stop(struct loop *l);

#endif
