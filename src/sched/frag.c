/*
 * Fragmentation as the FGD paper defines it. For one class of pod, a node's free GPU capacity is
 * fragmented when the pod could not use it: all of it when the pod cannot run on the node at all,
 * else the free milli of those GPUs whose free share is too small for the pod. A node's figure
 * is the sum over the typical classes, weighted by how often each occurs.
 */
#include "frag.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bool same_class(const struct sched_pod *a, const struct sched_pod *b)
{
    return a->cpu_milli == b->cpu_milli && a->gpu_milli == b->gpu_milli &&
           a->num_gpu == b->num_gpu && a->models == b->models;
}

/* Most frequent first; equal counts by the larger class first, so the order is total. */
static int by_count_desc(const void *a, const void *b)
{
    const struct sched_typical_class *x = a, *y = b;
    const struct sched_pod *p = &x->pod, *q = &y->pod;

    if (x->weight != y->weight)
        return x->weight < y->weight ? 1 : -1;
    if (p->cpu_milli != q->cpu_milli)
        return p->cpu_milli < q->cpu_milli ? 1 : -1;
    if (p->gpu_milli != q->gpu_milli)
        return p->gpu_milli < q->gpu_milli ? 1 : -1;
    if (p->num_gpu != q->num_gpu)
        return p->num_gpu < q->num_gpu ? 1 : -1;
    return (p->models < q->models) - (p->models > q->models);
}

int sched_typical_build(const struct sched_pod *const *pods, int n, struct sched_typical *t)
{
    struct sched_typical_class *all = calloc((size_t)(n ? n : 1), sizeof(*all));
    int nclass = 0;
    double covered = 0;

    memset(t, 0, sizeof(*t));
    if (all == NULL)
        return -ENOMEM;
    for (int i = 0; i < n; i++) {
        int k = 0;
        while (k < nclass && !same_class(&all[k].pod, pods[i]))
            k++;
        if (k == nclass) {
            all[k].pod = *pods[i];
            all[k].pod.mem_mib = 0;
            nclass++;
        }
        all[k].weight += 1.0; /* a count until the classes are chosen */
    }
    qsort(all, (size_t)nclass, sizeof(*all), by_count_desc);
    while (t->n < nclass && covered < SCHED_TYPICAL_COVERAGE * n)
        covered += all[t->n++].weight;
    /* The chosen classes' weights sum to 1. */
    for (int k = 0; k < t->n; k++)
        all[k].weight /= covered;
    t->cls = all;
    return 0;
}

void sched_typical_fini(struct sched_typical *t)
{
    free(t->cls);
    memset(t, 0, sizeof(*t));
}

double sched_frag_class(const struct sched_node *n, const struct sched_pod *cls)
{
    int free_total = 0, small = 0, fit = 0;

    for (int i = 0; i < n->ngpu; i++) {
        int f = n->gpu[i].free_milli;
        free_total += f;
        if (f >= cls->gpu_milli)
            fit++;
        else
            small += f;
    }
    if (cls->num_gpu == 0 || n->cpu_free < cls->cpu_milli || fit < cls->num_gpu)
        return free_total;
    if (cls->models && (n->model < 0 || !(cls->models >> n->model & 1)))
        return free_total;
    return small;
}

double sched_frag_node(const struct sched_node *n, const struct sched_typical *t)
{
    double sum = 0;
    for (int k = 0; k < t->n; k++)
        sum += t->cls[k].weight * sched_frag_class(n, &t->cls[k].pod);
    return sum;
}
