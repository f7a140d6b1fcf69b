/*
 * `gpool sim replay`: a pod trace replayed as jobs arriving and leaving, through the whole
 * scheduling cycle, with each GPU job's use of its GPUs drawn from a real usage trace.  Time moves
 * in ticks of a minute (the usage trace's resolution); the cycle runs whenever something changed.
 *
 * The fixed rules (docs/sim.md): arrival = creation_time, divided by the load; run time =
 * deletion_time - scheduled_time; pods never scheduled in the trace are skipped and counted; a
 * job needs its whole run time, swapped-out time is no progress, a stopped job starts again from
 * zero.  A job progresses at full speed unless the GPU it shares is oversubscribed; then
 * borrowers slow first.
 */
#ifndef GPOOL_SIM_REPLAY_H
#define GPOOL_SIM_REPLAY_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "sched/model.h"
#include "sim/trace.h"

enum replay_policy {
    REPLAY_STATIC, /* whole GPUs, arrival order, no preemption: Kubernetes + device plugin */
    REPLAY_SLURM,  /* whole GPUs, priority order with backfill, preemption by requeue */
    REPLAY_KAI,    /* quotas, fair share, fractions, reclaim; no lending, no swapping */
    REPLAY_GPOOL,  /* all of it: fractions, quotas, swapping, thin provisioning */
    REPLAY_POLICY_COUNT,
};

const char *replay_policy_name(enum replay_policy p);
int replay_policy_parse(const char *name, enum replay_policy *out);

struct replay_opts {
    enum replay_policy policy;
    double load;           /* inter-arrival times are divided by it */
    uint64_t seed;         /* draws each job's usage series */
    int64_t tick;          /* seconds per step */
    int64_t idle_window;   /* seconds idle before a job lends its GPUs */
    int64_t min_runtime;   /* seconds a job runs before it may be displaced */
    double link_gbps;      /* host link, GB/s: what a swap costs */
    uint64_t gpu_mem_default; /* bytes of GPU memory for models the table does not know */
    double node_fraction;     /* replay on this share of the nodes (seeded; each model kept) */
};

void replay_opts_default(struct replay_opts *o);

struct replay_project_def {
    char *name;
    double deserved_share; /* of the cluster's GPUs, 0..1 */
    double limit_share;    /* -1: none */
    int weight;
};

struct replay_projects {
    struct replay_project_def *p;
    int n;
};

/* The default: four projects deserving 40/30/20/10% of the GPUs, equal weights. */
void replay_projects_default(struct replay_projects *out);
void replay_projects_fini(struct replay_projects *p);

struct replay_point {
    double hours;     /* since the first arrival */
    double allocated; /* GPUs */
    double used;      /* GPUs busy */
};

struct replay_result {
    enum replay_policy policy;
    double load;
    int jobs, skipped;
    int never_started; /* jobs that fit nowhere, ever */
    double gpus;       /* of the cluster replayed on */
    double window_hours; /* first arrival to last */
    double allocated_ratio, used_ratio, goodput;
    /* The same from the first percentile of arrivals on: the few pods that arrive long before
     * the rest would otherwise make every ratio mostly empty time. */
    double busy_hours, allocated_ratio_busy, used_ratio_busy, goodput_busy;
    double delay_mean, delay_p95;           /* seconds */
    double completion_mean, completion_p95; /* seconds */
    double jain;
    int preemptions, swaps, moves;
    double work_lost_gpu_hours;
    double owner_slowdown;
    int owners; /* jobs that lent capacity */
    double seconds;
    struct replay_point *curve;
    int ncurve;
};

/* Replays pods on a copy of nodes.  0, or -1 with a message in err. */
int replay_run(const struct trace_nodes *nodes, const struct trace_pods *pods,
               const struct trace_usage *usage, const struct replay_projects *projects,
               const struct replay_opts *o, struct replay_result *out, char *err, size_t errlen);
void replay_result_fini(struct replay_result *r);

/* Reports (replay_report.c): a run is saturated when its allocated_ratio is 0.95 or more. */
void replay_table(FILE *f, const struct replay_result *r, int n, const char *title);
json_t *replay_json(const struct replay_result *r);
int replay_csv(const char *path, const struct replay_result *r, int n);
int replay_svg(const char *path, const struct replay_result *r, int n, const char *title,
               double capacity_gpus);

#endif
