/*
 * Placement: which node, and which GPUs on it, a pod goes to. Each policy scores every node the
 * pod fits on with an integer 0..100; the highest score wins and ties go to the node ranked first
 * in a caller-given order.
 */
#ifndef GPOOL_SCHED_PLACE_H
#define GPOOL_SCHED_PLACE_H

#include <stdbool.h>

#include "sched/frag.h"
#include "sched/model.h"
#include "sched/rng.h"

enum sched_policy {
    SCHED_POLICY_RANDOM,
    SCHED_POLICY_DOTPROD,
    SCHED_POLICY_CLUSTERING,
    SCHED_POLICY_PACKING,
    SCHED_POLICY_BESTFIT,
    SCHED_POLICY_FGD,
    SCHED_POLICY_GPOOL, /* gpool's own: fgd, also counting scarce capacity a placement takes */
    SCHED_POLICY_COUNT,
};

const char *sched_policy_name(enum sched_policy p);
/* 0, or -EINVAL for an unknown name. */
int sched_policy_parse(const char *name, enum sched_policy *out);

/* Whether `pod` fits on `node` at all: CPU, memory, GPU model and enough GPUs with room. */
bool sched_fits(const struct sched_node *node, const struct sched_pod *pod);

/* Kinds of GPU pod the clustering policy groups by: index 0 for shares, N for N whole GPUs. */
#define SCHED_AFFINITY_KINDS (SCHED_NODE_MAX_GPUS + 1)

/*
 * A placer holds what policies keep between pods, updated by sched_placer_bind:
 * - each node's fragmentation (kept for every policy: it is what the experiments report), with
 *   per typical class the figures that let a hypothetical placement be measured in O(classes):
 *   GPUs with room for the class, free milli on the others, and how many of its pods the GPUs
 *   hold;
 * - per node and class the GPU milli the class could still use, per class its sum over the
 *   cluster, and the cluster's free GPU milli (the gpool policy weighs what a placement takes
 *   against what is left);
 * - for the clustering policy, how many pods of each kind each node holds.
 * The caller owns the cluster, the ranking, the typical pods and the generator.
 */
struct sched_placer {
    enum sched_policy policy;
    struct sched_cluster *cluster;
    const int *rank; /* node indices, best first, for ties */
    const struct sched_typical *typical;
    struct sched_rng *rng;
    double *frag; /* per node, GPU milli */
    double frag_total;
    int *fit_count;          /* [node * classes + k]: GPUs with room for class k */
    int *small_free;         /* [node * classes + k]: free milli on the others */
    int *slots;              /* [node * classes + k]: pods of class k the GPUs hold */
    unsigned char *model_ok; /* [node * classes + k]: node's model allowed for k */
    int64_t *usable;         /* [node * classes + k]: GPU milli class k could still use */
    int64_t *supply;         /* [k]: usable summed over the nodes */
    double *scarcity;        /* [k]: class k's weight over its supply */
    uint16_t *slots_of;      /* [k * (SCHED_MILLI + 1) + m]: pods of class k that m milli hold */
    int *affinity;           /* [node * SCHED_AFFINITY_KINDS + kind] */
    int64_t idle_total;      /* free GPU milli of the cluster */
    double fgd_step[102];    /* [s]: the least drop of fragmentation that fgd scores s */
};

/* Allocates the placer's tables (sched_placer_fini frees them). Returns 0 or -ENOMEM. */
int sched_placer_init(struct sched_placer *p, enum sched_policy policy,
                      struct sched_cluster *cluster, const int *rank,
                      const struct sched_typical *typical, struct sched_rng *rng);
void sched_placer_fini(struct sched_placer *p);

/* Choose a node and GPUs for `pod`. Returns the node's index, or -1 when it fits nowhere. */
int sched_place(struct sched_placer *p, const struct sched_pod *pod, struct sched_choice *choice);
/* Bind `pod` where sched_place put it and update what the placer keeps. */
void sched_placer_bind(struct sched_placer *p, int node, const struct sched_pod *pod,
                       const struct sched_choice *choice);
/* Re-reads the whole cluster after the caller changed it (the clustering policy's record of the
 * pods on each node starts again from empty). */
void sched_placer_sync(struct sched_placer *p);
/* The tightest GPUs of one node for a pod; false when it does not fit there. */
bool sched_choose_gpus(const struct sched_node *node, const struct sched_pod *pod,
                       struct sched_choice *choice);
/* Give back what a bound pod took (it stopped, was preempted or swapped out). */
void sched_placer_unbind(struct sched_placer *p, int node, const struct sched_pod *pod,
                         const struct sched_choice *choice);

#endif
