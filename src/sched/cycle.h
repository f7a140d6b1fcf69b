/*
 * The scheduling cycle (ARCHITECTURE.md, steps 1 to 7): from a snapshot of the cluster, the
 * projects and the jobs, and the time now, it decides what starts, what resumes, what is swapped
 * out or stopped to make room, and why every job left waiting waits.
 *
 * The snapshot is the caller's and the cycle changes it as it decides: nodes' free capacity,
 * jobs' states and bindings.  The actions list what changed, for the caller to carry out.  The
 * same snapshot, configuration and time give the same actions.
 *
 * The caller's cluster must already account for every running job that is not borrowed (its
 * CPU, host memory and GPU shares) and for every swapped job (its host memory request, plus the
 * GPU memory it moved to host, on the node it was swapped out of).
 */
#ifndef GPOOL_SCHED_CYCLE_H
#define GPOOL_SCHED_CYCLE_H

#include <stdbool.h>
#include <stdint.h>

#include "sched/frag.h"
#include "sched/model.h"
#include "sched/place.h"

#define SCHED_REASON_LEN 160

struct sched_memo;

/* Which of the cycle's steps run: each policy of `gpool sim replay` is one such set. */
struct sched_cycle_cfg {
    enum sched_policy placement;
    bool fractions;      /* shares of a GPU; false: requests rounded up to whole GPUs */
    bool quotas;         /* fair-share order, deserved quotas and limits */
    bool priority_order; /* without quotas, order by priority then age; else by age alone */
    bool reclaim;        /* a project below its deserved quota takes capacity back */
    bool preempt;        /* higher priority displaces lower (inside a project with quotas) */
    bool swap;           /* displaced jobs are swapped out when they can be, not stopped */
    bool lend;           /* thin provisioning: borrow GPUs whose jobs are idle */
    bool consolidate;    /* move swappable jobs to other nodes to make room for a waiting one */
    int64_t min_runtime; /* a job runs this long before it may be displaced */
    /* The minimum runtime of each priority class, where class_min_set has its bit (1 << class);
     * the others use min_runtime. */
    int64_t class_min_runtime[SCHED_PRIORITIES];
    unsigned class_min_set;
    bool swap_in_place; /* a swapped job resumes only on the GPUs that hold its process (live) */
    int64_t idle_window; /* a job idle this long lends its GPUs, and may be swapped out */
};

enum sched_action_kind {
    SCHED_ACT_START,    /* a pending job starts on its bindings */
    SCHED_ACT_RESUME,   /* a swapped job is swapped back in on its bindings */
    SCHED_ACT_SWAP_OUT, /* a running job is suspended, its GPU memory moved to host */
    SCHED_ACT_PREEMPT,  /* a running job is stopped and queued again from the start */
    SCHED_ACT_MOVE,     /* a running job is swapped out and back in on its new bindings */
};

struct sched_action {
    enum sched_action_kind kind;
    int job;        /* index into the jobs */
    int for_job;    /* the job it makes room for, or -1 */
    bool borrowed;  /* START or RESUME on lent GPUs */
    uint64_t bytes; /* GPU memory a swap moves over the host link (all replicas) */
};

struct sched_cycle {
    const struct sched_cycle_cfg *cfg;
    struct sched_cluster *cluster;
    struct sched_project *projects;
    int nprojects;
    struct sched_job *jobs;
    int njobs;
    int64_t now;
    /* Results of the last run. */
    struct sched_action *act;
    int nact;
    int64_t *fair_share;               /* [nprojects], GPU milli */
    int64_t *allocated;                /* [nprojects], GPU milli held by running jobs */
    char (*reason)[SCHED_REASON_LEN]; /* [njobs]: why each waiting job waits, else "" */
    /* Working state, sized by sched_cycle_init. */
    struct sched_placer placer;
    struct sched_typical typical;
    int *rank;
    int *order, *queue_head, *queue_next;
    int *node_first, *node_fill, *node_jobs;
    int *borrowers_on; /* [node * SCHED_NODE_MAX_GPUS + gpu] */
    int *node_whole, *node_share; /* per node: whole GPUs free, largest share free */
    bool index_dirty;
    struct sched_memo *memo; /* [nprojects * 5 + 2]: reclaim, preempt per class, borrow, move */
    struct sched_pod *pod;   /* [njobs]: each job's pod under cfg */
    int last_why;            /* the last job given a "no room" reason, or -1 */
    int moves_tried;         /* consolidation attempts in this cycle */
    struct sched_rng rng;
    int64_t *scratch, *deserved_used;
    int cap_projects, cap_jobs, cap_nodes;
    int largest_whole, largest_share; /* most whole GPUs / share free on any node */
};

/*
 * Sizes the cycle for up to njobs jobs and nprojects projects on `cluster` (whose node count and
 * GPUs stay fixed), with `typical` the pods that fragmentation-aware placement protects room for
 * (the cycle keeps a copy).  0 or -ENOMEM.
 */
int sched_cycle_init(struct sched_cycle *c, const struct sched_cycle_cfg *cfg,
                     struct sched_cluster *cluster, const struct sched_typical *typical,
                     int nprojects, int njobs);
void sched_cycle_fini(struct sched_cycle *c);

/* One cycle over the snapshot at time now.  0, -EINVAL for a bad snapshot, -ENOSPC past the
 * sizes given to sched_cycle_init. */
int sched_cycle_run(struct sched_cycle *c, struct sched_project *projects, int nprojects,
                    struct sched_job *jobs, int njobs, int64_t now);

/* The pod one replica of a job asks for under cfg (whole GPUs when fractions are off). */
void sched_cycle_pod(const struct sched_cycle_cfg *cfg, const struct sched_job *job,
                     struct sched_pod *pod);

#endif
