/*
 * The fill experiment of the FGD paper (ATC'23): pods arrive one at a time on an empty cluster,
 * never leave, and are placed by one policy; after each pod the allocated share of the cluster's
 * GPUs is recorded against the GPU demand that has arrived so far.
 */
#ifndef GPOOL_SIM_FILL_H
#define GPOOL_SIM_FILL_H

#include <stddef.h>
#include <stdint.h>

#include "sched/place.h"
#include "sim/trace.h"

/*
 * The policies of an experiment: every placement policy of src/sched, then offline-ffd, which
 * knows each point's arrived pods in advance and packs them largest first (see fill.c).
 */
#define FILL_OFFLINE_FFD SCHED_POLICY_COUNT
#define FILL_POLICY_COUNT (SCHED_POLICY_COUNT + 1)

const char *fill_policy_name(int policy);
/* 0, or -EINVAL for an unknown name. */
int fill_policy_parse(const char *name, int *out);

/* Arrived demand is recorded in 1% buckets of the cluster's GPU capacity, 0..130%. */
#define FILL_BUCKETS 131

struct fill_curve {
    double alloc_pct[FILL_BUCKETS]; /* allocated GPU milli / capacity, % */
    double frag_pct[FILL_BUCKETS];  /* fragmented GPU milli / capacity, % */
};

struct fill_result {
    uint64_t seed;
    int64_t pods_arrived;
    int64_t pods_failed;
    struct fill_curve curve;
};

/* What every seed of one experiment shares, prepared once. */
struct fill_setup {
    const struct trace_nodes *nodes;
    const struct trace_pods *pods;
    int *by_name;                 /* pod indices sorted by name */
    struct sched_typical typical; /* the typical pods of the original list */
    int64_t capacity_milli;       /* GPU capacity of the cluster */
    double inflate;               /* arrived demand target, times capacity */
};

/*
 * Prepare an experiment. Returns 0, or -1 with a message in `err` when it cannot run: a cluster
 * without GPUs, or a pod list that asks for none.
 */
int fill_setup_init(struct fill_setup *s, const struct trace_nodes *nodes,
                    const struct trace_pods *pods, double inflate, char *err, size_t errlen);
void fill_setup_fini(struct fill_setup *s);

/* Run one seed of one policy. */
void fill_run(const struct fill_setup *s, int policy, uint64_t seed,
              struct fill_result *out);

/* Run seeds [first, first + n) on up to `jobs` threads; results in seed order. */
void fill_run_seeds(const struct fill_setup *s, int policy, uint64_t first, int n,
                    int jobs, struct fill_result *out);

/* The mean curve over n results. */
void fill_mean(const struct fill_result *r, int n, struct fill_curve *mean);

#endif
