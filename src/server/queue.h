/*
 * The live jobs as the scheduler loop keeps them between passes.  A job's spec does not change
 * after it is submitted, so it is parsed once, when the loop first sees the job, and kept until
 * the job ends; each pass reads from the store only what changes (state, bindings, start), with
 * a light read, and the specs of the jobs it has not seen yet.  The store stays the truth: a
 * server that restarts or takes over starts with an empty queue and fills it from the store.
 * One thread uses a queue.
 */
#ifndef GPOOL_SERVER_QUEUE_H
#define GPOOL_SERVER_QUEUE_H

#include "server/jobspec.h"
#include "server/store.h"

struct queue;

struct queue *queue_new(void);
void queue_free(struct queue *q);

/*
 * Calls fn for each job in one of `states` (a mask of 1 << state), in id order: light rows up to
 * the first job the queue does not know, full rows from there on (the new jobs' specs parsed and
 * kept).  Jobs not found are forgotten.  0, or a negative errno from the store.
 */
int queue_read(struct queue *q, struct store *st, unsigned states,
               int (*fn)(const struct store_job *, void *), void *arg);

/* The job's checked spec: kept by the queue, or parsed from j->spec (and kept when q is not
 * NULL).  0, or -1 when the job has no spec the queue knows or it does not parse. */
int queue_spec(struct queue *q, const struct store_job *j, struct jobspec *out);

/* How many jobs the queue keeps. */
int queue_size(const struct queue *q);

#endif
