/*
 * Small helpers over the scheduling model: priority names, the GPU model table, a job's per-replica
 * demand, and taking or giving back a pod's resources on a node.
 */
#include "model.h"

#include <errno.h>
#include <string.h>

static const char *const priority_names[] = {
    [SCHED_PRIO_TRAIN] = "train",
    [SCHED_PRIO_BUILD] = "build",
    [SCHED_PRIO_INTERACTIVE] = "interactive",
    [SCHED_PRIO_INFERENCE] = "inference",
};

const char *sched_priority_name(enum sched_priority p)
{
    if ((unsigned)p >= sizeof(priority_names) / sizeof(priority_names[0]))
        return "unknown";
    return priority_names[p];
}

int sched_priority_parse(const char *name, enum sched_priority *out)
{
    for (size_t i = 0; i < sizeof(priority_names) / sizeof(priority_names[0]); i++) {
        if (strcmp(name, priority_names[i]) == 0) {
            *out = (enum sched_priority)i;
            return 0;
        }
    }
    return -EINVAL;
}

bool sched_priority_preemptible_default(enum sched_priority p)
{
    return p == SCHED_PRIO_TRAIN;
}

int sched_cluster_model(struct sched_cluster *c, const char *name)
{
    for (int i = 0; i < c->nmodels; i++)
        if (strcmp(c->models[i], name) == 0)
            return i;
    if (c->nmodels == SCHED_MAX_MODELS)
        return -ENOSPC;
    c->models[c->nmodels] = name;
    return c->nmodels++;
}

void sched_job_pod(const struct sched_job *job, struct sched_pod *pod)
{
    const struct sched_request *r = &job->req;

    memset(pod, 0, sizeof(*pod));
    pod->cpu_milli = job->cpu_milli;
    pod->mem_mib = job->mem_mib;
    pod->models = r->models;
    switch (r->kind) {
    case SCHED_REQ_NONE:
        break;
    case SCHED_REQ_WHOLE:
        pod->num_gpu = r->gpus;
        pod->gpu_milli = SCHED_MILLI;
        break;
    case SCHED_REQ_FRACTION:
        pod->num_gpu = 1;
        pod->gpu_milli = r->milli;
        break;
    case SCHED_REQ_MEMORY:
        /* The compute share follows from the memory share of the GPU it lands on. */
        pod->num_gpu = 1;
        pod->gpu_mem_bytes = r->mem_bytes;
        break;
    }
}

int64_t sched_node_free_milli(const struct sched_node *n)
{
    int64_t sum = 0;
    for (int i = 0; i < n->ngpu; i++)
        sum += n->gpu[i].free_milli;
    return sum;
}

int sched_node_whole_free(const struct sched_node *n)
{
    int k = 0;
    for (int i = 0; i < n->ngpu; i++)
        k += n->gpu[i].free_milli == SCHED_MILLI;
    return k;
}

int sched_pod_share_on(const struct sched_pod *pod, const struct sched_gpu *g)
{
    if (pod->gpu_mem_bytes == 0)
        return pod->gpu_milli;
    if (g->mem_bytes == 0 || pod->gpu_mem_bytes > g->mem_bytes)
        return -1;
    return (int)((pod->gpu_mem_bytes * SCHED_MILLI + g->mem_bytes - 1) / g->mem_bytes);
}

static uint64_t pod_mem_on(const struct sched_pod *pod, const struct sched_gpu *g, int share)
{
    if (pod->gpu_mem_bytes != 0)
        return pod->gpu_mem_bytes;
    /* Multiply first, so that a whole GPU takes all of its memory. */
    return g->mem_bytes * (uint64_t)share / SCHED_MILLI;
}

void sched_node_bind(struct sched_node *node, const struct sched_pod *pod,
                     const struct sched_choice *choice)
{
    node->cpu_free -= pod->cpu_milli;
    node->mem_free -= pod->mem_mib;
    for (int i = 0; i < choice->ngpu; i++) {
        struct sched_gpu *g = &node->gpu[choice->gpu[i]];
        int share = sched_pod_share_on(pod, g);
        g->free_milli -= share;
        g->mem_free_bytes -= pod_mem_on(pod, g, share);
    }
}

void sched_node_unbind(struct sched_node *node, const struct sched_pod *pod,
                       const struct sched_choice *choice)
{
    node->cpu_free += pod->cpu_milli;
    node->mem_free += pod->mem_mib;
    for (int i = 0; i < choice->ngpu; i++) {
        struct sched_gpu *g = &node->gpu[choice->gpu[i]];
        int share = sched_pod_share_on(pod, g);
        g->free_milli += share;
        g->mem_free_bytes += pod_mem_on(pod, g, share);
    }
}
