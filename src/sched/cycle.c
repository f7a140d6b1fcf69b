/*
 * The scheduling cycle: fair share, order, allocation with gangs, reclaim, preemption, and thin
 * provisioning, with a reason for every job left waiting.
 */
#include "sched/cycle.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/fairshare.h"

#define MIB (1024.0 * 1024.0)
#define BINDINGS_PER_JOB 4

enum mode { RECLAIM, PREEMPT };

/*
 * What failed earlier in this cycle: a request that could not be met.  A later request that asks
 * for as much or more in every respect fails too, so it is not tried (waiting jobs are many; this
 * keeps a cycle over 100,000 of them fast).  Capacity freed later in the cycle is used from the
 * next cycle on.
 */
struct sched_memo {
    bool set;
    int64_t cpu, mem;
    int num_gpu, milli;
    uint64_t gmem;
    sched_models_t models;
};

static bool memo_covers(const struct sched_memo *m, const struct sched_pod *p, uint64_t gmem)
{
    return m->set && p->models == m->models && p->cpu_milli >= m->cpu && p->mem_mib >= m->mem &&
           p->num_gpu >= m->num_gpu && p->gpu_milli >= m->milli && gmem >= m->gmem;
}

/* Called for a failure the memo did not cover: it replaces the memo when there is none, when it
 * asks for other models, or when it asks for no more in every respect (so it covers more). */
static void memo_note(struct sched_memo *m, const struct sched_pod *p, uint64_t gmem)
{
    if (!m->set || p->models != m->models ||
        (p->cpu_milli <= m->cpu && p->mem_mib <= m->mem && p->num_gpu <= m->num_gpu &&
         p->gpu_milli <= m->milli && gmem <= m->gmem))
        *m = (struct sched_memo){true, p->cpu_milli, p->mem_mib, p->num_gpu, p->gpu_milli, gmem,
                                 p->models};
}

/* ---- requests ---------------------------------------------------------------------------- */

void sched_cycle_pod(const struct sched_cycle_cfg *cfg, const struct sched_job *job,
                     struct sched_pod *pod)
{
    sched_job_pod(job, pod);
    if (!cfg->fractions && pod->num_gpu == 1 &&
        (pod->gpu_milli < SCHED_MILLI || pod->gpu_mem_bytes != 0)) {
        pod->gpu_milli = SCHED_MILLI;
        pod->gpu_mem_bytes = 0;
    }
}

/* GPU milli a job holds (where it is bound) or asks for (a request by memory counts as a whole
 * GPU until it is placed). */
static int64_t job_milli(const struct sched_cycle *c, const struct sched_job *j)
{
    struct sched_pod pod = c->pod[j - c->jobs];
    int64_t sum = 0;

    if (pod.num_gpu == 0)
        return 0;
    if (pod.gpu_mem_bytes == 0 || j->state != SCHED_JOB_RUNNING || j->borrowed)
        return (int64_t)j->replicas * pod.num_gpu * (pod.gpu_milli > 0 ? pod.gpu_milli : SCHED_MILLI);
    for (int r = 0; r < j->replicas; r++) {
        const struct sched_binding *b = &j->bind[r];

        for (int i = 0; i < b->choice.ngpu; i++)
            sum += sched_pod_share_on(&pod, &c->cluster->nodes[b->node].gpu[b->choice.gpu[i]]);
    }
    return sum;
}

static void describe(const struct sched_cycle *c, const struct sched_pod *pod, char *buf,
                     size_t len)
{
    int n;

    if (pod->num_gpu == 0)
        n = snprintf(buf, len, "%.1f CPUs", (double)pod->cpu_milli / 1000);
    else if (pod->gpu_mem_bytes != 0)
        n = snprintf(buf, len, "%.1f GiB of a GPU", (double)pod->gpu_mem_bytes / (MIB * 1024));
    else if (pod->gpu_milli < SCHED_MILLI)
        n = snprintf(buf, len, "%.2f of a GPU", (double)pod->gpu_milli / SCHED_MILLI);
    else
        n = snprintf(buf, len, "%d whole GPU%s", pod->num_gpu, pod->num_gpu > 1 ? "s" : "");
    if (pod->models != 0 && n > 0 && (size_t)n < len)
        n += snprintf(buf + n, len - (size_t)n, " of model");
    for (int m = 0; m < c->cluster->nmodels && pod->models != 0 && (size_t)n < len; m++)
        if (pod->models >> m & 1)
            n += snprintf(buf + n, len - (size_t)n, " %s", c->cluster->models[m]);
}

static void why(struct sched_cycle *c, int job, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void why(struct sched_cycle *c, int job, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->reason[job], SCHED_REASON_LEN, fmt, ap);
    va_end(ap);
}

/* ---- free capacity at a glance ----------------------------------------------------------- */

static void node_largest(struct sched_cycle *c, int i)
{
    const struct sched_node *n = &c->cluster->nodes[i];
    int share = 0;

    for (int g = 0; g < n->ngpu; g++)
        share = n->gpu[g].free_milli > share ? n->gpu[g].free_milli : share;
    c->node_whole[i] = sched_node_whole_free(n);
    c->node_share[i] = share;
}

/* The most whole GPUs and the largest share free on any node, after nodes[] changed (all of
 * them with node < 0). */
static void refresh_largest_at(struct sched_cycle *c, int node)
{
    if (node < 0)
        for (int i = 0; i < c->cluster->nnodes; i++)
            node_largest(c, i);
    else
        node_largest(c, node);
    c->largest_whole = 0;
    c->largest_share = 0;
    for (int i = 0; i < c->cluster->nnodes; i++) {
        c->largest_whole = c->node_whole[i] > c->largest_whole ? c->node_whole[i] : c->largest_whole;
        c->largest_share = c->node_share[i] > c->largest_share ? c->node_share[i] : c->largest_share;
    }
}

static void refresh_largest(struct sched_cycle *c)
{
    refresh_largest_at(c, -1);
}

static void refresh_job_nodes(struct sched_cycle *c, const struct sched_job *j)
{
    for (int r = 0; r < j->replicas; r++)
        node_largest(c, j->bind[r].node);
    refresh_largest_at(c, j->bind[0].node);
}

/* False when no node can have room: saves a full placement pass for most waiting jobs when the
 * cluster is full. */
static bool may_fit(const struct sched_cycle *c, const struct sched_pod *pod)
{
    if (pod->num_gpu == 0 || pod->gpu_mem_bytes != 0)
        return true;
    if (pod->gpu_milli >= SCHED_MILLI)
        return c->largest_whole >= pod->num_gpu;
    return c->largest_share >= pod->gpu_milli;
}

/* ---- binding and unbinding jobs ---------------------------------------------------------- */

static void add_action(struct sched_cycle *c, enum sched_action_kind kind, int job, int for_job,
                       bool borrowed, uint64_t bytes)
{
    c->act[c->nact++] = (struct sched_action){
        .kind = kind, .job = job, .for_job = for_job, .borrowed = borrowed, .bytes = bytes};
}

static void account(struct sched_cycle *c, const struct sched_job *j, int64_t sign)
{
    int64_t m = job_milli(c, j) * sign;

    c->allocated[j->project] += m;
    if (!j->preemptible)
        c->deserved_used[j->project] += m;
}

/* GPU memory a swap of the job moves off one node, in MiB rounded up. */
static int64_t swap_mib_on(const struct sched_job *j, int node)
{
    uint64_t bytes = 0;

    for (int r = 0; r < j->replicas; r++)
        if (j->bind[r].node == node)
            bytes += j->gpu_mem_used * (uint64_t)j->bind[r].choice.ngpu;
    return (int64_t)((double)bytes / MIB + 0.999999);
}

static uint64_t swap_bytes(const struct sched_job *j)
{
    uint64_t bytes = 0;

    for (int r = 0; r < j->replicas; r++)
        bytes += j->gpu_mem_used * (uint64_t)j->bind[r].choice.ngpu;
    return bytes;
}

/* Takes a running job off its GPUs: swapped out (its host memory and the moved GPU memory stay
 * reserved on its nodes) or stopped and queued again. */
static void displace(struct sched_cycle *c, int v, enum sched_action_kind kind, int for_job)
{
    struct sched_job *j = &c->jobs[v];
    struct sched_pod pod = c->pod[v];

    if (!j->borrowed)
        account(c, j, -1);
    for (int r = 0; r < j->replicas; r++) {
        struct sched_node *n = &c->cluster->nodes[j->bind[r].node];

        if (j->borrowed) {
            n->cpu_free += pod.cpu_milli;
            n->mem_free += pod.mem_mib;
        } else {
            sched_placer_unbind(&c->placer, j->bind[r].node, &pod, &j->bind[r].choice);
        }
        if (kind == SCHED_ACT_SWAP_OUT)
            n->mem_free -= pod.mem_mib;
    }
    if (kind == SCHED_ACT_SWAP_OUT)
        for (int r = 0; r < j->replicas; r++)
            if (r == 0 || j->bind[r].node != j->bind[r - 1].node)
                c->cluster->nodes[j->bind[r].node].mem_free -= swap_mib_on(j, j->bind[r].node);
    add_action(c, kind, v, for_job, j->borrowed, kind == SCHED_ACT_SWAP_OUT ? swap_bytes(j) : 0);
    j->state = kind == SCHED_ACT_SWAP_OUT ? SCHED_JOB_SWAPPED : SCHED_JOB_PENDING;
    refresh_job_nodes(c, j);
}

/* Gives back the host memory a swapped job holds on its nodes (before it resumes). */
static void unreserve_swap(struct sched_cycle *c, struct sched_job *j, const struct sched_pod *pod,
                           int64_t sign)
{
    for (int r = 0; r < j->replicas; r++) {
        struct sched_node *n = &c->cluster->nodes[j->bind[r].node];

        n->mem_free += sign * pod->mem_mib;
        if (r == 0 || j->bind[r].node != j->bind[r - 1].node)
            n->mem_free += sign * swap_mib_on(j, j->bind[r].node);
    }
}

/* Places every replica, or none (a gang is all or nothing).  Returns how many fit. */
static int place_all(struct sched_cycle *c, struct sched_job *j, const struct sched_pod *pod)
{
    int r;

    for (r = 0; r < j->replicas; r++) {
        int node = sched_place(&c->placer, pod, &j->bind[r].choice);

        if (node < 0)
            break;
        j->bind[r].node = node;
        sched_placer_bind(&c->placer, node, pod, &j->bind[r].choice);
    }
    if (r < j->replicas)
        for (int k = 0; k < r; k++)
            sched_placer_unbind(&c->placer, j->bind[k].node, pod, &j->bind[k].choice);
    return r;
}

/* Whether the GPUs of a choice have room for the pod as they are (CPU and memory too). */
static bool fits_on(const struct sched_node *n, const struct sched_pod *pod,
                    const struct sched_choice *choice)
{
    if (n->cpu_free < pod->cpu_milli || n->mem_free < pod->mem_mib)
        return false;
    for (int i = 0; i < choice->ngpu; i++) {
        const struct sched_gpu *g = &n->gpu[choice->gpu[i]];
        int share = sched_pod_share_on(pod, g);

        if (share < 0 || share > g->free_milli ||
            (pod->gpu_mem_bytes != 0 && pod->gpu_mem_bytes > g->mem_free_bytes))
            return false;
    }
    return true;
}

/* A swapped job resumes on the nodes that hold its memory, on any GPUs with room there; with
 * swap_in_place, only on the GPUs it was swapped out of (its processes stay bound to them). */
static bool resume_all(struct sched_cycle *c, struct sched_job *j, const struct sched_pod *pod)
{
    int r;

    unreserve_swap(c, j, pod, 1);
    for (r = 0; r < j->replicas; r++) {
        int node = j->bind[r].node;

        if (c->cfg->swap_in_place
                ? !fits_on(&c->cluster->nodes[node], pod, &j->bind[r].choice)
                : !sched_choose_gpus(&c->cluster->nodes[node], pod, &j->bind[r].choice))
            break;
        sched_placer_bind(&c->placer, node, pod, &j->bind[r].choice);
    }
    if (r < j->replicas) {
        for (int k = 0; k < r; k++)
            sched_placer_unbind(&c->placer, j->bind[k].node, pod, &j->bind[k].choice);
        unreserve_swap(c, j, pod, -1);
    }
    return r == j->replicas;
}

static void started(struct sched_cycle *c, int job, bool borrowed)
{
    struct sched_job *j = &c->jobs[job];
    bool resumed = j->state == SCHED_JOB_SWAPPED;

    j->state = SCHED_JOB_RUNNING;
    j->borrowed = borrowed;
    j->started = c->now;
    if (!borrowed)
        account(c, j, 1);
    add_action(c, resumed ? SCHED_ACT_RESUME : SCHED_ACT_START, job, -1, borrowed,
               resumed ? swap_bytes(j) : 0);
    c->index_dirty = true;
    refresh_job_nodes(c, j);
}

/*
 * A swapped job resumes where its memory is when it can; otherwise on any node with room, its
 * memory moving there (the same bytes over the host link, from the other node's host memory).
 */
static bool resume_anywhere(struct sched_cycle *c, struct sched_job *j, const struct sched_pod *pod)
{
    struct sched_binding old = j->bind[0];

    if (resume_all(c, j, pod))
        return true;
    if (j->replicas != 1 || c->cfg->swap_in_place)
        return false;
    unreserve_swap(c, j, pod, 1);
    if (place_all(c, j, pod) == 1)
        return true;
    j->bind[0] = old;
    unreserve_swap(c, j, pod, -1);
    return false;
}

static bool try_bind(struct sched_cycle *c, int job, const struct sched_pod *pod, int *fitted)
{
    struct sched_job *j = &c->jobs[job];

    *fitted = 0;
    if (!may_fit(c, pod))
        return false;
    if (j->state == SCHED_JOB_SWAPPED) {
        if (!resume_anywhere(c, j, pod))
            return false;
    } else if ((*fitted = place_all(c, j, pod)) < j->replicas) {
        return false;
    }
    started(c, job, false);
    return true;
}

/* ---- jobs on nodes ----------------------------------------------------------------------- */

/*
 * Lists the running jobs with GPUs on each node (borrowers too), and counts the borrowers on each
 * GPU.  Rebuilt when something needs it after a change; jobs started in this cycle are not
 * displaced in this cycle, so victims are looked for on the list as it was.
 */
static int index_nodes(struct sched_cycle *c)
{
    int nn = c->cluster->nnodes, total = 0;

    c->index_dirty = false;
    memset(c->borrowers_on, 0, (size_t)nn * SCHED_NODE_MAX_GPUS * sizeof(int));
    for (int i = 0; i < c->njobs; i++) {
        const struct sched_job *j = &c->jobs[i];

        if (j->state == SCHED_JOB_RUNNING && j->borrowed)
            c->borrowers_on[j->bind[0].node * SCHED_NODE_MAX_GPUS + j->bind[0].choice.gpu[0]]++;
    }

    memset(c->node_first, 0, ((size_t)nn + 1) * sizeof(int));
    for (int i = 0; i < c->njobs; i++) {
        const struct sched_job *j = &c->jobs[i];

        if (j->state != SCHED_JOB_RUNNING)
            continue;
        for (int r = 0; r < j->replicas; r++)
            if (r == 0 || j->bind[r].node != j->bind[r - 1].node)
                c->node_first[j->bind[r].node + 1]++;
    }
    for (int n = 0; n < nn; n++)
        c->node_first[n + 1] += c->node_first[n];
    total = c->node_first[nn];
    if (total > c->cap_jobs * BINDINGS_PER_JOB)
        return -ENOSPC;
    for (int i = 0; i < nn; i++)
        c->node_fill[i] = c->node_first[i];
    for (int i = 0; i < c->njobs; i++) {
        const struct sched_job *j = &c->jobs[i];

        if (j->state != SCHED_JOB_RUNNING)
            continue;
        for (int r = 0; r < j->replicas; r++)
            if (r == 0 || j->bind[r].node != j->bind[r - 1].node)
                c->node_jobs[c->node_fill[j->bind[r].node]++] = i;
    }
    return 0;
}

static bool uses_gpu(const struct sched_job *j, int node, int gpu)
{
    for (int r = 0; r < j->replicas; r++) {
        if (j->bind[r].node != node)
            continue;
        for (int i = 0; i < j->bind[r].choice.ngpu; i++)
            if (j->bind[r].choice.gpu[i] == gpu)
                return true;
    }
    return false;
}

/* Whether a job has run its minimum runtime (its class's, else the cycle's). */
static bool ran_long_enough(const struct sched_cycle *c, const struct sched_job *j)
{
    int64_t min = c->cfg->min_runtime;

    if (c->cfg->class_min_set >> j->priority & 1)
        min = c->cfg->class_min_runtime[j->priority];
    return c->now - j->started >= min;
}

static bool idle_long(const struct sched_cycle *c, const struct sched_job *j)
{
    return j->idle_since >= 0 && c->now - j->idle_since >= c->cfg->idle_window;
}

/* ---- victims ----------------------------------------------------------------------------- */

struct gpu_use {
    int owners, active, borrowers, keep; /* keep: owners that do not lend (policy) */
    uint64_t mem_used;
};

static struct gpu_use gpu_use(const struct sched_cycle *c, int node, int gpu)
{
    struct gpu_use u = {0};

    for (int k = c->node_first[node]; k < c->node_first[node + 1]; k++) {
        const struct sched_job *j = &c->jobs[c->node_jobs[k]];

        if (!uses_gpu(j, node, gpu))
            continue;
        u.mem_used += j->gpu_mem_used;
        if (j->borrowed) {
            u.borrowers++;
        } else {
            u.owners++;
            u.active += !idle_long(c, j);
            u.keep += j->no_lend;
        }
    }
    return u;
}

/* Whether a job lends any of its GPUs now: lending must not cost the lender its place. */
static bool lending(const struct sched_cycle *c, const struct sched_job *v)
{
    for (int r = 0; r < v->replicas; r++)
        for (int i = 0; i < v->bind[r].choice.ngpu; i++)
            if (c->borrowers_on[v->bind[r].node * SCHED_NODE_MAX_GPUS + v->bind[r].choice.gpu[i]] >
                0)
                return true;
    return false;
}

/* How job v may be displaced for job j: SWAP_OUT, PREEMPT, or -1 when it may not. */
static int displace_kind(const struct sched_cycle *c, const struct sched_job *v,
                         const struct sched_job *j, enum mode mode, const struct sched_node *n,
                         int node)
{
    bool may_swap;

    if (v->state != SCHED_JOB_RUNNING || v->borrowed || v == j || !ran_long_enough(c, v) ||
        (c->cfg->lend && lending(c, v)))
        return -1;
    if (mode == RECLAIM && (v->project == j->project ||
                            c->allocated[v->project] <= c->projects[v->project].deserved_milli))
        return -1;
    if (mode == PREEMPT &&
        ((c->cfg->quotas && v->project != j->project) || v->priority >= j->priority))
        return -1;
    /* A job that is not preemptible may only be swapped out, and only while it is idle. */
    may_swap = c->cfg->swap && v->swappable && (v->preemptible || idle_long(c, v));
    for (int r = 0; r < v->replicas && may_swap; r++) {
        int at = v->bind[r].node;

        may_swap = (at == node ? n : &c->cluster->nodes[at])->mem_free >= swap_mib_on(v, at);
    }
    if (may_swap)
        return SCHED_ACT_SWAP_OUT;
    return v->preemptible ? SCHED_ACT_PREEMPT : -1;
}

struct victim {
    int job;
    int kind;
};

/* Cheapest first: lower priority, swap before stop, the most recently started. */
static int victim_cmp(const struct sched_cycle *c, const struct victim *a, const struct victim *b)
{
    const struct sched_job *x = &c->jobs[a->job], *y = &c->jobs[b->job];

    if (x->priority != y->priority)
        return x->priority < y->priority ? -1 : 1;
    if (a->kind != b->kind)
        return a->kind == SCHED_ACT_SWAP_OUT ? -1 : 1;
    if (x->started != y->started)
        return x->started > y->started ? -1 : 1;
    return a->job - b->job;
}

static void sort_victims(const struct sched_cycle *c, struct victim *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int k = i; k > 0 && victim_cmp(c, &v[k], &v[k - 1]) < 0; k--) {
            struct victim t = v[k];
            v[k] = v[k - 1];
            v[k - 1] = t;
        }
}

/*
 * The fewest victims on one node that make room for pod there; -1 when none do.  With stop, jobs
 * that may be stopped are stopped rather than swapped, which leaves the host memory to the jobs
 * that may only be swapped.
 */
static int victims_on(struct sched_cycle *c, int node, const struct sched_pod *pod, int job,
                      enum mode mode, bool stop, struct victim *out, int max)
{
    struct sched_node copy = c->cluster->nodes[node];
    struct victim cand[64];
    int ncand = 0, used = 0;

    if (copy.ngpu < pod->num_gpu || copy.cpu_milli < pod->cpu_milli)
        return -1;
    for (int k = c->node_first[node]; k < c->node_first[node + 1] && ncand < 64; k++) {
        int kind = displace_kind(c, &c->jobs[c->node_jobs[k]], &c->jobs[job], mode, &copy, node);

        if (kind == SCHED_ACT_SWAP_OUT && stop && c->jobs[c->node_jobs[k]].preemptible)
            kind = SCHED_ACT_PREEMPT;
        if (kind >= 0)
            cand[ncand++] = (struct victim){c->node_jobs[k], kind};
    }
    sort_victims(c, cand, ncand);
    for (int i = 0; i < ncand && used < max && !sched_fits(&copy, pod); i++) {
        const struct sched_job *v = &c->jobs[cand[i].job];
        struct sched_pod vp = c->pod[cand[i].job];
        int64_t keep = 0;

        for (int r = 0; r < v->replicas; r++)
            if (v->bind[r].node == node) {
                sched_node_unbind(&copy, &vp, &v->bind[r].choice);
                keep += vp.mem_mib;
            }
        /* A swapped job keeps its host memory and adds the GPU memory it moved there. */
        if (cand[i].kind == SCHED_ACT_SWAP_OUT &&
            copy.mem_free - keep - swap_mib_on(v, node) < 0)
            cand[i].kind = v->preemptible ? SCHED_ACT_PREEMPT : -1;
        if (cand[i].kind < 0) {
            for (int r = 0; r < v->replicas; r++)
                if (v->bind[r].node == node)
                    sched_node_bind(&copy, &vp, &v->bind[r].choice);
            continue;
        }
        if (cand[i].kind == SCHED_ACT_SWAP_OUT)
            copy.mem_free -= keep + swap_mib_on(v, node);
        out[used++] = cand[i];
    }
    return sched_fits(&copy, pod) ? used : -1;
}

/* Displaces the fewest jobs that let a single-replica job start, and starts it. */
static bool make_room(struct sched_cycle *c, int job, const struct sched_pod *pod, enum mode mode)
{
    struct victim best[16], cur[16];
    int nbest = -1, fitted;

    if (c->jobs[job].replicas != 1)
        return false;
    for (int i = 0; i < c->cluster->nnodes; i++) {
        int node = c->rank[i];
        int n = victims_on(c, node, pod, job, mode, false, cur, 16);

        if (n < 0)
            n = victims_on(c, node, pod, job, mode, true, cur, 16);
        if (n >= 0 && (nbest < 0 || n < nbest)) {
            nbest = n;
            memcpy(best, cur, (size_t)n * sizeof(best[0]));
            if (n <= 1)
                break;
        }
    }
    if (nbest <= 0)
        return false;
    for (int i = 0; i < nbest; i++)
        displace(c, best[i].job, (enum sched_action_kind)best[i].kind, job);
    c->index_dirty = true;
    return try_bind(c, job, pod, &fitted);
}

/* ---- consolidation ----------------------------------------------------------------------- */

#define MOVE_MAX 4
#define MOVE_TRIES 16 /* consolidation attempts per cycle: each may try every node */

/* Running jobs on a node that may be moved: single replica, swappable, past the minimum runtime,
 * not lending, not borrowed.  Smallest first. */
static int movable_on(struct sched_cycle *c, int node, int *out)
{
    int n = 0;

    for (int k = c->node_first[node]; k < c->node_first[node + 1] && n < 64; k++) {
        int v = c->node_jobs[k];
        const struct sched_job *j = &c->jobs[v];

        if (j->state != SCHED_JOB_RUNNING || j->borrowed || j->replicas != 1 || !j->swappable ||
            !ran_long_enough(c, j) || lending(c, j))
            continue;
        out[n++] = v;
    }
    for (int i = 1; i < n; i++)
        for (int k = i; k > 0 && job_milli(c, &c->jobs[out[k]]) <
                                     job_milli(c, &c->jobs[out[k - 1]]); k--) {
            int t = out[k];
            out[k] = out[k - 1];
            out[k - 1] = t;
        }
    return n;
}

/* Puts moved jobs back where they were. */
static void unmove(struct sched_cycle *c, const int *moved, const struct sched_binding *was, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        struct sched_job *j = &c->jobs[moved[i]];

        if (j->bind[0].node >= 0)
            sched_placer_unbind(&c->placer, j->bind[0].node, &c->pod[moved[i]],
                                &j->bind[0].choice);
        j->bind[0] = was[i];
        sched_placer_bind(&c->placer, was[i].node, &c->pod[moved[i]], &was[i].choice);
    }
}

/*
 * Frees room on one node for a waiting single-replica job by moving up to MOVE_MAX of the node's
 * jobs to other nodes where they fit now.  All or nothing.
 */
static bool consolidate_on(struct sched_cycle *c, int job, const struct sched_pod *pod, int node)
{
    struct sched_node *n = &c->cluster->nodes[node];
    struct sched_binding was[MOVE_MAX], at;
    int cand[64], moved[MOVE_MAX], ncand = movable_on(c, node, cand), nm = 0;
    int64_t room = sched_node_free_milli(n);

    /* Cheap test first: the node's free share and what could move must add up to the request. */
    for (int i = 0; i < ncand && i < MOVE_MAX; i++)
        room += job_milli(c, &c->jobs[cand[i]]);
    if (ncand == 0 || room < sched_pod_gpu_demand(pod))
        return false;

    for (int i = 0; i < ncand && nm < MOVE_MAX && !sched_fits(n, pod); i++) {
        struct sched_job *v = &c->jobs[cand[i]];

        was[nm] = v->bind[0];
        moved[nm++] = cand[i];
        sched_placer_unbind(&c->placer, node, &c->pod[cand[i]], &v->bind[0].choice);
        v->bind[0].node = -1;
    }
    if (nm == 0 || !sched_choose_gpus(n, pod, &at.choice)) {
        unmove(c, moved, was, nm);
        return false;
    }
    at.node = node;
    sched_placer_bind(&c->placer, node, pod, &at.choice);
    for (int i = 0; i < nm; i++) {
        struct sched_job *v = &c->jobs[moved[i]];
        int to = sched_place(&c->placer, &c->pod[moved[i]], &v->bind[0].choice);

        if (to < 0) {
            sched_placer_unbind(&c->placer, node, pod, &at.choice);
            unmove(c, moved, was, nm);
            return false;
        }
        v->bind[0].node = to;
        sched_placer_bind(&c->placer, to, &c->pod[moved[i]], &v->bind[0].choice);
    }
    for (int i = 0; i < nm; i++) {
        add_action(c, SCHED_ACT_MOVE, moved[i], job, false, swap_bytes(&c->jobs[moved[i]]));
        refresh_job_nodes(c, &c->jobs[moved[i]]);
    }
    c->jobs[job].bind[0] = at;
    started(c, job, false);
    return true;
}

/* Step 6: a job that fits on no node, though the cluster has the room, fits after moves. */
static bool consolidate(struct sched_cycle *c, int job, const struct sched_pod *pod)
{
    int64_t free_whole = 0;

    if (!c->cfg->consolidate || c->jobs[job].replicas != 1 || pod->num_gpu == 0 ||
        c->jobs[job].state != SCHED_JOB_PENDING || c->moves_tried >= MOVE_TRIES)
        return false;
    c->moves_tried++;
    for (int i = 0; i < c->cluster->nnodes; i++)
        free_whole += c->node_whole[i];
    if (pod->gpu_milli >= SCHED_MILLI && free_whole < pod->num_gpu)
        return false;
    if (c->index_dirty && index_nodes(c) != 0)
        return false;
    for (int i = 0; i < c->cluster->nnodes; i++) {
        int node = c->rank[i];
        const struct sched_node *n = &c->cluster->nodes[node];

        if (n->ngpu < pod->num_gpu || n->cpu_milli < pod->cpu_milli ||
            (pod->models != 0 && (n->model < 0 || !(pod->models >> n->model & 1))))
            continue;
        if (consolidate_on(c, job, pod, node)) {
            c->index_dirty = true;
            return true;
        }
    }
    return false;
}

/* ---- thin provisioning ------------------------------------------------------------------- */

/* A borrower whose lender is active again yields its compute at once (the executor's part);
 * when the lenders need the memory it holds, it is swapped out, or stopped. */
static void borrowers_yield(struct sched_cycle *c)
{
    for (int i = 0; i < c->njobs; i++) {
        struct sched_job *j = &c->jobs[i];
        const struct sched_node *n;
        struct gpu_use u;
        int g;

        if (j->state != SCHED_JOB_RUNNING || !j->borrowed)
            continue;
        n = &c->cluster->nodes[j->bind[0].node];
        g = j->bind[0].choice.gpu[0];
        u = gpu_use(c, j->bind[0].node, g);
        if (u.mem_used <= n->gpu[g].mem_bytes || n->gpu[g].mem_bytes == 0)
            continue;
        if (j->swappable && c->cfg->swap && n->mem_free >= swap_mib_on(j, j->bind[0].node))
            displace(c, i, SCHED_ACT_SWAP_OUT, -1);
        else
            displace(c, i, SCHED_ACT_PREEMPT, -1);
        index_nodes(c);
    }
}

/* Starts a single-GPU job on a GPU whose jobs have all been idle for the window, in the memory
 * they leave free. */
static bool borrow(struct sched_cycle *c, int job, const struct sched_pod *pod)
{
    struct sched_job *j = &c->jobs[job];

    if (!c->cfg->lend || j->replicas != 1 || pod->num_gpu != 1 || j->no_borrow ||
        (!j->preemptible && !j->swappable))
        return false;
    if (j->state == SCHED_JOB_SWAPPED)
        return false; /* it resumes on capacity of its own */
    if (c->index_dirty && index_nodes(c) != 0)
        return false;
    for (int i = 0; i < c->cluster->nnodes; i++) {
        int node = c->rank[i];
        struct sched_node *n = &c->cluster->nodes[node];

        if (n->cpu_free < pod->cpu_milli || n->mem_free < pod->mem_mib ||
            (pod->models != 0 && (n->model < 0 || !(pod->models >> n->model & 1))))
            continue;
        for (int g = 0; g < n->ngpu; g++) {
            struct gpu_use u = gpu_use(c, node, g);

            if (u.owners == 0 || u.active > 0 || u.borrowers > 0 || u.keep > 0 ||
                (n->gpu[g].mem_bytes != 0 && u.mem_used + j->gpu_mem_used > n->gpu[g].mem_bytes))
                continue;
            n->cpu_free -= pod->cpu_milli;
            n->mem_free -= pod->mem_mib;
            j->bind[0] = (struct sched_binding){.node = node, .choice = {.ngpu = 1, .gpu = {g}}};
            started(c, job, true);
            return index_nodes(c) == 0;
        }
    }
    return false;
}

/* ---- one job ----------------------------------------------------------------------------- */

static double gpus(int64_t milli)
{
    return (double)milli / SCHED_MILLI;
}

/* The quota rules that keep a job waiting whatever the free capacity. */
static bool quota_allows(struct sched_cycle *c, int job, int64_t milli)
{
    const struct sched_job *j = &c->jobs[job];
    const struct sched_project *p = &c->projects[j->project];

    if (!c->cfg->quotas)
        return true;
    if (p->limit_milli >= 0 && c->allocated[j->project] + milli > p->limit_milli) {
        why(c, job, "project %s is at its limit of %.1f GPUs (it holds %.1f)", p->name,
            gpus(p->limit_milli), gpus(c->allocated[j->project]));
        return false;
    }
    if (!j->preemptible && c->deserved_used[j->project] + milli > p->deserved_milli) {
        why(c, job,
            "a job that cannot be preempted runs only within the deserved quota of project %s "
            "(%.1f GPUs, %.1f held by such jobs)",
            p->name, gpus(p->deserved_milli), gpus(c->deserved_used[j->project]));
        return false;
    }
    return true;
}

static void schedule_one(struct sched_cycle *c, int job)
{
    struct sched_job *j = &c->jobs[job];
    struct sched_pod pod = c->pod[job];
    int64_t milli = job_milli(c, j);
    char what[96];
    int fitted;

    c->reason[job][0] = '\0';
    if (!quota_allows(c, job, milli))
        return;
    if (try_bind(c, job, &pod, &fitted))
        return;
    if (c->cfg->reclaim && c->cfg->quotas &&
        c->allocated[j->project] + milli <= c->projects[j->project].deserved_milli &&
        !memo_covers(&c->memo[j->project], &pod, 0)) {
        if (make_room(c, job, &pod, RECLAIM))
            return;
        memo_note(&c->memo[j->project], &pod, 0);
    }
    if (c->cfg->preempt) {
        struct sched_memo *m =
            &c->memo[c->nprojects * (1 + (int)j->priority) + (c->cfg->quotas ? j->project : 0)];

        if (!memo_covers(m, &pod, 0)) {
            if (make_room(c, job, &pod, PREEMPT))
                return;
            memo_note(m, &pod, 0);
        }
    }
    if (c->cfg->consolidate && !memo_covers(&c->memo[c->nprojects * 5 + 1], &pod, 0)) {
        if (consolidate(c, job, &pod))
            return;
        memo_note(&c->memo[c->nprojects * 5 + 1], &pod, 0);
    }
    if (!memo_covers(&c->memo[c->nprojects * 5], &pod, j->gpu_mem_used)) {
        if (borrow(c, job, &pod))
            return;
        memo_note(&c->memo[c->nprojects * 5], &pod, j->gpu_mem_used);
    }
    if (j->replicas == 1 && j->state == SCHED_JOB_PENDING && c->last_why >= 0 &&
        memcmp(&c->pod[c->last_why], &pod, sizeof(pod)) == 0 &&
        c->jobs[c->last_why].project == j->project) {
        /* Waiting jobs come in runs of the same request: the same words. */
        memcpy(c->reason[job], c->reason[c->last_why], SCHED_REASON_LEN);
        return;
    }
    describe(c, &pod, what, sizeof(what));
    if (j->replicas == 1 && j->state == SCHED_JOB_PENDING)
        c->last_why = job;
    if (j->replicas > 1 && fitted > 0)
        why(c, job, "gang of %d replicas of %s: only %d fit now, and a gang starts whole",
            j->replicas, what, fitted);
    else if (j->state == SCHED_JOB_SWAPPED)
        why(c, job, "swapped out: waiting for %s on the node that holds its memory", what);
    else
        why(c, job, "no node has %s free%s", what,
            c->cfg->quotas && c->allocated[j->project] >= c->fair_share[j->project]
                ? " and its project is at or above its fair share"
                : "");
}

/* ---- order ------------------------------------------------------------------------------- */

struct order_by {
    const struct sched_job *jobs;
    bool priority;
};

/* Swapped first, then priority (when it counts), then age, then id. */
static int job_cmp(const void *a, const void *b, void *arg)
{
    const struct order_by *o = arg;
    const struct sched_job *x = &o->jobs[*(const int *)a], *y = &o->jobs[*(const int *)b];

    /* A swapped job goes first: it was running, and its owner sees every minute it waits. */
    if ((x->state == SCHED_JOB_SWAPPED) != (y->state == SCHED_JOB_SWAPPED))
        return x->state == SCHED_JOB_SWAPPED ? -1 : 1;
    if (o->priority && x->priority != y->priority)
        return x->priority > y->priority ? -1 : 1;
    if (x->submitted != y->submitted)
        return x->submitted < y->submitted ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int build_queue(struct sched_cycle *c)
{
    int n = 0;

    for (int i = 0; i < c->njobs; i++)
        if (c->jobs[i].state == SCHED_JOB_PENDING || c->jobs[i].state == SCHED_JOB_SWAPPED)
            c->order[n++] = i;
    struct order_by by = {c->jobs, c->cfg->quotas || c->cfg->priority_order};

    qsort_r(c->order, (size_t)n, sizeof(int), job_cmp, &by);
    for (int p = 0; p < c->nprojects; p++)
        c->queue_head[p] = -1;
    for (int k = n - 1; k >= 0; k--) {
        int i = c->order[k], p = c->jobs[i].project;

        c->queue_next[i] = c->queue_head[p];
        c->queue_head[p] = i;
    }
    return n;
}

/* With quotas, the project furthest below its fair share goes next. */
static int next_project(const struct sched_cycle *c)
{
    int best = -1;
    double best_ratio = 0;

    for (int p = 0; p < c->nprojects; p++) {
        double ratio;

        if (c->queue_head[p] < 0)
            continue;
        ratio = (double)c->allocated[p] / (double)(c->fair_share[p] > 0 ? c->fair_share[p] : 1);
        if (best < 0 || ratio < best_ratio) {
            best = p;
            best_ratio = ratio;
        }
    }
    return best;
}

/* ---- the cycle --------------------------------------------------------------------------- */

static int fair_shares(struct sched_cycle *c)
{
    int64_t capacity = 0;

    for (int i = 0; i < c->cluster->nnodes; i++)
        capacity += (int64_t)c->cluster->nodes[i].ngpu * SCHED_MILLI;
    memset(c->allocated, 0, (size_t)c->nprojects * sizeof(int64_t));
    memset(c->deserved_used, 0, (size_t)c->nprojects * sizeof(int64_t));
    memset(c->fair_share, 0, (size_t)c->nprojects * sizeof(int64_t));
    for (int i = 0; i < c->njobs; i++) {
        const struct sched_job *j = &c->jobs[i];

        if (j->project < 0 || j->project >= c->nprojects || j->replicas < 1 ||
            (j->state != SCHED_JOB_DONE && j->bind == NULL))
            return -EINVAL;
        if (j->state == SCHED_JOB_RUNNING && !j->borrowed)
            account(c, j, 1);
        /* Demand is kept in fair_share for the moment: what each project holds and wants. */
        if (j->state != SCHED_JOB_DONE)
            c->fair_share[j->project] += job_milli(c, j);
    }
    memcpy(c->scratch + c->nprojects, c->fair_share, (size_t)c->nprojects * sizeof(int64_t));
    return sched_fair_share(c->projects, c->nprojects, c->scratch + c->nprojects, capacity,
                            c->fair_share, c->scratch);
}

int sched_cycle_run(struct sched_cycle *c, struct sched_project *projects, int nprojects,
                    struct sched_job *jobs, int njobs, int64_t now)
{
    int rc, n;

    if (nprojects > c->cap_projects || njobs > c->cap_jobs)
        return -ENOSPC;
    c->projects = projects;
    c->nprojects = nprojects;
    c->jobs = jobs;
    c->njobs = njobs;
    c->now = now;
    c->nact = 0;
    for (int i = 0; i < njobs; i++)
        sched_cycle_pod(c->cfg, &jobs[i], &c->pod[i]);
    if ((rc = fair_shares(c)) != 0)
        return rc;
    for (int i = 0; i < njobs; i++)
        c->reason[i][0] = '\0';
    memset(c->memo, 0, (size_t)(c->nprojects * 5 + 2) * sizeof(*c->memo));
    c->last_why = -1;
    c->moves_tried = 0;
    sched_placer_sync(&c->placer);
    refresh_largest(c);
    if ((rc = index_nodes(c)) != 0)
        return rc;
    borrowers_yield(c);
    n = build_queue(c);
    if (!c->cfg->quotas) {
        for (int k = 0; k < n; k++)
            schedule_one(c, c->order[k]);
        return 0;
    }
    for (int p; (p = next_project(c)) >= 0;) {
        int job = c->queue_head[p];

        c->queue_head[p] = c->queue_next[job];
        schedule_one(c, job);
    }
    return 0;
}

/* ---- lifetime ---------------------------------------------------------------------------- */

int sched_cycle_init(struct sched_cycle *c, const struct sched_cycle_cfg *cfg,
                     struct sched_cluster *cluster, const struct sched_typical *typical,
                     int nprojects, int njobs)
{
    int nn = cluster->nnodes;

    memset(c, 0, sizeof(*c));
    c->cfg = cfg;
    c->cluster = cluster;
    c->cap_projects = nprojects;
    c->cap_jobs = njobs;
    c->cap_nodes = nn;
    c->act = calloc((size_t)njobs * 2 + 1, sizeof(*c->act));
    c->fair_share = calloc((size_t)nprojects + 1, sizeof(int64_t));
    c->allocated = calloc((size_t)nprojects + 1, sizeof(int64_t));
    c->deserved_used = calloc((size_t)nprojects + 1, sizeof(int64_t));
    c->scratch = calloc((size_t)nprojects * 2 + 1, sizeof(int64_t));
    c->reason = calloc((size_t)njobs + 1, sizeof(*c->reason));
    c->rank = calloc((size_t)nn + 1, sizeof(int));
    c->order = calloc((size_t)(njobs > nn ? njobs : nn) + 1, sizeof(int));
    c->queue_head = calloc((size_t)nprojects + 1, sizeof(int));
    c->queue_next = calloc((size_t)njobs + 1, sizeof(int));
    c->node_first = calloc((size_t)nn + 2, sizeof(int));
    c->node_fill = calloc((size_t)nn + 1, sizeof(int));
    c->node_whole = calloc((size_t)nn + 1, sizeof(int));
    c->node_share = calloc((size_t)nn + 1, sizeof(int));
    c->borrowers_on = calloc((size_t)nn * SCHED_NODE_MAX_GPUS + 1, sizeof(int));
    c->memo = calloc((size_t)nprojects * 5 + 2, sizeof(*c->memo));
    c->pod = calloc((size_t)njobs + 1, sizeof(*c->pod));
    c->node_jobs = calloc((size_t)njobs * BINDINGS_PER_JOB + 1, sizeof(int));
    c->typical.n = typical->n;
    c->typical.cls = calloc((size_t)typical->n + 1, sizeof(*c->typical.cls));
    if (!c->act || !c->fair_share || !c->allocated || !c->deserved_used || !c->scratch ||
        !c->reason || !c->rank || !c->order || !c->queue_head || !c->queue_next ||
        !c->node_first || !c->node_fill || !c->node_jobs || !c->typical.cls ||
        !c->borrowers_on || !c->memo || !c->node_whole || !c->node_share || !c->pod) {
        sched_cycle_fini(c);
        return -ENOMEM;
    }
    if (typical->n > 0)
        memcpy(c->typical.cls, typical->cls, (size_t)typical->n * sizeof(*c->typical.cls));
    for (int i = 0; i < nn; i++)
        c->rank[i] = i;
    sched_rng_seed(&c->rng, 1);
    if (sched_placer_init(&c->placer, cfg->placement, cluster, c->rank, &c->typical, &c->rng) !=
        0) {
        sched_cycle_fini(c);
        return -ENOMEM;
    }
    return 0;
}

void sched_cycle_fini(struct sched_cycle *c)
{
    if (c->placer.cluster != NULL)
        sched_placer_fini(&c->placer);
    free(c->act);
    free(c->fair_share);
    free(c->allocated);
    free(c->deserved_used);
    free(c->scratch);
    free(c->reason);
    free(c->rank);
    free(c->order);
    free(c->queue_head);
    free(c->queue_next);
    free(c->node_first);
    free(c->node_fill);
    free(c->node_whole);
    free(c->node_share);
    free(c->borrowers_on);
    free(c->memo);
    free(c->pod);
    free(c->node_jobs);
    free(c->typical.cls);
    memset(c, 0, sizeof(*c));
}
