/*
 * GPU fragmentation against a workload, the measure of the FGD paper (ATC'23): GPU capacity
 * that is free but that the typical pods of the workload could not use.
 */
#ifndef GPOOL_SCHED_FRAG_H
#define GPOOL_SCHED_FRAG_H

#include "sched/model.h"

/* One class of typical pod and its share of all pods. */
struct sched_typical_class {
    struct sched_pod pod;
    double weight;
};

/* The typical pods of a workload: the most frequent classes that together cover 95% of it. */
struct sched_typical {
    struct sched_typical_class *cls;
    int n;
};

#define SCHED_TYPICAL_COVERAGE 0.95

/*
 * Group pods by (cpu, gpu_milli, num_gpu, gpu models) and keep the most frequent classes until
 * they cover SCHED_TYPICAL_COVERAGE of the pods. Allocates t->cls (sched_typical_fini frees
 * it). Returns 0 or -ENOMEM.
 */
int sched_typical_build(const struct sched_pod *const *pods, int n, struct sched_typical *t);
void sched_typical_fini(struct sched_typical *t);

/* Fragmented GPU milli of a node for one class of pod. */
double sched_frag_class(const struct sched_node *n, const struct sched_pod *cls);
/* Fragmented GPU milli of a node: the weighted sum over the typical classes. */
double sched_frag_node(const struct sched_node *n, const struct sched_typical *t);

#endif
