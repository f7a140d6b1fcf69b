/*
 * The scheduling model: nodes and their GPUs, the project tree and jobs.
 *
 * Everything the scheduling core decides on is a plain value in these structs, filled by the
 * caller (the server from its store, the simulator from a trace). The core never reads a file,
 * a clock or a global: the same model in gives the same decisions out.
 */
#ifndef GPOOL_SCHED_MODEL_H
#define GPOOL_SCHED_MODEL_H

#include <stdbool.h>
#include <stdint.h>

/* Compute capacity of one GPU, in milli-GPU. */
#define SCHED_MILLI 1000
/* The most GPUs one node may carry. */
#define SCHED_NODE_MAX_GPUS 16
/* The most GPU models one cluster may name (a model set is a 64-bit mask). */
#define SCHED_MAX_MODELS 64

typedef uint64_t sched_models_t; /* bit i = model i of the cluster; 0 = any model */

struct sched_gpu {
    int free_milli;          /* compute share not yet allocated, 0..SCHED_MILLI */
    uint64_t mem_bytes;      /* device memory; 0 when unknown (trace replays) */
    uint64_t mem_free_bytes; /* device memory not yet allocated */
};

struct sched_node {
    const char *name;  /* owned by the caller */
    int pool;          /* node pool index, -1 for none */
    int model;         /* GPU model index into the cluster's model table, -1 for none */
    int64_t cpu_milli; /* capacity */
    int64_t cpu_free;
    int64_t mem_mib; /* host memory capacity */
    int64_t mem_free;
    int ngpu;
    struct sched_gpu gpu[SCHED_NODE_MAX_GPUS];
};

/* One replica's demand on one node: the unit that placement handles. */
struct sched_pod {
    int64_t cpu_milli;
    int64_t mem_mib;
    int num_gpu;            /* 0 for CPU-only pods */
    int gpu_milli;          /* per GPU; SCHED_MILLI for whole GPUs, 0 exactly when num_gpu == 0 */
    uint64_t gpu_mem_bytes; /* per GPU, 0 when the request is not by memory */
    sched_models_t models;  /* allowed GPU models, 0 = any */
};

/* Which GPUs of a node a pod was (or would be) given. */
struct sched_choice {
    int ngpu;
    uint8_t gpu[SCHED_NODE_MAX_GPUS];
};

enum sched_request_kind {
    SCHED_REQ_NONE,     /* CPU only */
    SCHED_REQ_WHOLE,    /* `gpus: N` whole GPUs */
    SCHED_REQ_FRACTION, /* `gpu: 0.5`: milli of one GPU */
    SCHED_REQ_MEMORY,   /* `gpu_memory: 20GiB` of one GPU */
};

struct sched_request {
    enum sched_request_kind kind;
    int gpus;              /* SCHED_REQ_WHOLE */
    int milli;             /* SCHED_REQ_FRACTION */
    uint64_t mem_bytes;    /* SCHED_REQ_MEMORY */
    int limit_milli;       /* compute ceiling above the request; 0 = none */
    sched_models_t models; /* allowed GPU models, 0 = any */
};

/* Priority classes, lowest first, so that a larger value wins. */
enum sched_priority {
    SCHED_PRIO_TRAIN,
    SCHED_PRIO_BUILD,
    SCHED_PRIO_INTERACTIVE,
    SCHED_PRIO_INFERENCE,
};
#define SCHED_PRIORITIES 4

/* Where one replica of a job runs: a node and the GPUs it was given there. */
struct sched_binding {
    int node;
    struct sched_choice choice;
};

enum sched_job_state {
    SCHED_JOB_PENDING,
    SCHED_JOB_RUNNING,
    SCHED_JOB_SWAPPED,
    SCHED_JOB_DONE,
};

struct sched_project {
    const char *name;
    int parent;             /* index of the parent department, -1 at the root */
    int64_t deserved_milli; /* guaranteed quota */
    int64_t limit_milli;    /* the most it may use; -1 = no limit */
    int over_quota_weight;  /* share of spare capacity, relative to siblings */
};

struct sched_job {
    int64_t id;
    int project;              /* index into the projects */
    int64_t cpu_milli;        /* per replica */
    int64_t mem_mib;          /* per replica */
    struct sched_request req; /* per replica */
    int replicas;             /* > 1 makes a gang: all replicas or none */
    enum sched_priority priority;
    bool preemptible;
    bool swappable;
    int64_t submitted; /* caller's clock, for ordering by age */
    enum sched_job_state state;
    /* What the scheduling cycle needs of a running or swapped job. */
    struct sched_binding *bind; /* `replicas` entries, caller-owned */
    int64_t started;            /* when it last started or resumed */
    int64_t idle_since;         /* when it stopped using its GPUs; -1 while it uses them */
    bool borrowed;              /* runs on GPUs lent by idle jobs, not on its own allocation */
    bool no_lend;               /* its GPUs are not lent while it idles (policy) */
    bool no_borrow;             /* it never runs on lent GPUs (policy) */
    uint64_t gpu_mem_used;      /* GPU memory it uses now on each of its GPUs */
};

struct sched_cluster {
    struct sched_node *nodes;
    int nnodes;
    const char *models[SCHED_MAX_MODELS]; /* GPU model names, owned by the caller */
    int nmodels;
};

const char *sched_priority_name(enum sched_priority p);
int sched_priority_parse(const char *name, enum sched_priority *out);
bool sched_priority_preemptible_default(enum sched_priority p);

/* Index of a GPU model, added to the table if new; -ENOSPC when the table is full. */
int sched_cluster_model(struct sched_cluster *c, const char *name);

/* The per-replica pod of a job, with memory requests turned into shares of `gpu_mem_bytes`. */
void sched_job_pod(const struct sched_job *job, struct sched_pod *pod);

/*
 * The compute share a pod takes on GPU `g`: its milli, or for a request by memory the share of
 * the GPU's memory it asks for, rounded up; -1 when the GPU cannot hold it.
 */
int sched_pod_share_on(const struct sched_pod *pod, const struct sched_gpu *g);

/* Total GPU milli a pod asks for. */
static inline int64_t sched_pod_gpu_demand(const struct sched_pod *p)
{
    return (int64_t)p->num_gpu * p->gpu_milli;
}

/* GPU milli still unallocated on a node. */
int64_t sched_node_free_milli(const struct sched_node *n);
/* How many of a node's GPUs are entirely free. */
int sched_node_whole_free(const struct sched_node *n);

/* Take (or give back) what `pod` uses on `node` through the GPUs of `choice`. */
void sched_node_bind(struct sched_node *node, const struct sched_pod *pod,
                     const struct sched_choice *choice);
void sched_node_unbind(struct sched_node *node, const struct sched_pod *pod,
                       const struct sched_choice *choice);

#endif
