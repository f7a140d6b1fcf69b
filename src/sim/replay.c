/*
 * The replay engine: arrivals, the scheduling cycle, usage, progress, departures, and the
 * figures of docs/sim.md, tick by tick.
 */
#include "sim/replay.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/hash.h"
#include "common/log.h"
#include "sched/cycle.h"

#define GiB (1024.0 * 1024.0 * 1024.0)
#define IDLE_BUSY 0.01 /* below this fraction of its share a job counts as idle */
#define CURVE_EVERY 10 /* ticks between points of the curve */

static const char *const policy_names[REPLAY_POLICY_COUNT] = {"static", "slurm-like", "kai-like",
                                                              "gpool"};

const char *replay_policy_name(enum replay_policy p)
{
    return p < REPLAY_POLICY_COUNT ? policy_names[p] : "?";
}

int replay_policy_parse(const char *name, enum replay_policy *out)
{
    for (int i = 0; i < REPLAY_POLICY_COUNT; i++)
        if (strcmp(name, policy_names[i]) == 0) {
            *out = (enum replay_policy)i;
            return 0;
        }
    return -EINVAL;
}

void replay_opts_default(struct replay_opts *o)
{
    *o = (struct replay_opts){.policy = REPLAY_GPOOL,
                              .load = 1,
                              .seed = 42,
                              .tick = 60,
                              .idle_window = 300,
                              .min_runtime = 600,
                              .link_gbps = 25,
                              .gpu_mem_default = 32ull << 30,
                              .node_fraction = 1};
}

void replay_projects_default(struct replay_projects *out)
{
    static const double share[4] = {0.4, 0.3, 0.2, 0.1};

    out->n = 4;
    out->p = xcalloc(4, sizeof(*out->p));
    for (int i = 0; i < 4; i++) {
        char name[16];

        snprintf(name, sizeof(name), "project-%d", i + 1);
        out->p[i] = (struct replay_project_def){xstrdup(name), share[i], -1, 1};
    }
}

void replay_projects_fini(struct replay_projects *p)
{
    for (int i = 0; i < p->n; i++)
        free(p->p[i].name);
    free(p->p);
    memset(p, 0, sizeof(*p));
}

/* The cycle's steps each policy runs. */
static void policy_cfg(const struct replay_opts *o, struct sched_cycle_cfg *c)
{
    *c = (struct sched_cycle_cfg){.placement = SCHED_POLICY_BESTFIT,
                                  .min_runtime = o->min_runtime,
                                  .idle_window = o->idle_window};
    switch (o->policy) {
    case REPLAY_STATIC:
        break;
    case REPLAY_SLURM:
        c->priority_order = c->preempt = true;
        break;
    case REPLAY_KAI:
        c->fractions = c->quotas = c->reclaim = c->preempt = true;
        break;
    case REPLAY_GPOOL:
    case REPLAY_POLICY_COUNT:
        c->fractions = c->quotas = c->reclaim = c->preempt = c->swap = c->lend = true;
        c->consolidate = true;
        c->placement = SCHED_POLICY_GPOOL;
        break;
    }
}

/* GPU memory of the openb models, from their public specifications; G2 and G3 are not public. */
static uint64_t model_memory(const char *model, uint64_t dflt)
{
    static const struct {
        const char *name;
        unsigned gib;
    } known[] = {{"T4", 16}, {"P100", 16}, {"V100M16", 16}, {"V100M32", 32}, {"A10", 24}};

    for (size_t i = 0; model != NULL && i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(model, known[i].name) == 0)
            return (uint64_t)known[i].gib << 30;
    return dflt;
}

/* FNV-1a over a name, then splitmix64's finaliser: FNV alone leaves the high bits of similar
 * names (openb-node-0001, -0002, ...) far from uniform. */
static uint64_t fnv(const char *s, uint64_t h)
{
    h = hash_fnv1a(s, h);
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

struct rjob {
    double arrival, runtime, gpus; /* gpus: what the job asked for, the rate of its work */
    double progress;               /* seconds of run time done */
    double first_start, finish, blocked_until;
    const struct trace_series *use;
    double busy; /* fraction of its share it keeps busy now */
    bool lent, borrowed; /* it lent its GPUs; it ran on lent GPUs */
};

struct replay {
    const struct replay_opts *o;
    struct sched_cycle_cfg cfg;
    struct sched_cluster cluster;
    struct sched_project *projects;
    int nprojects;
    struct sched_job *jobs;
    struct sched_binding *binds;
    struct rjob *r;
    int n, *by_arrival, next, done, unplaced;
    struct sched_cycle cycle;
    struct sched_typical typical;
    double t0, t_last, capacity;
    double *owner_milli, *borrow_milli; /* per GPU slot, this tick */
    double alloc_int, used_int, good_int;
    double t_busy, alloc_busy, used_busy, good_busy; /* from the first percentile of arrivals */
    double *proj_alloc, *proj_share;
    struct replay_result *out;
    int capcurve;
};

static int gpu_slot(const struct replay *x, int node, int gpu)
{
    return node * SCHED_NODE_MAX_GPUS + gpu;
}

/* ---- setup ------------------------------------------------------------------------------- */

static int arrival_cmp(const void *a, const void *b, void *arg)
{
    const struct rjob *r = arg;
    double x = r[*(const int *)a].arrival, y = r[*(const int *)b].arrival;

    if (x != y)
        return x < y ? -1 : 1;
    return *(const int *)a - *(const int *)b;
}

/* Whether a node is in the sample: a seeded draw, but the first node of each model always is,
 * so that every model constraint can still be met. */
static bool sampled(const struct replay *x, const struct trace_nodes *nodes, int i)
{
    const struct sched_node *n = &nodes->cluster.nodes[i];
    uint64_t h = fnv(n->name, x->o->seed * 0x9e3779b97f4a7c15ull + 7);

    for (int k = 0; k < i; k++)
        if (nodes->cluster.nodes[k].model == n->model)
            return (double)(h >> 11) / 9007199254740992.0 < x->o->node_fraction;
    return true;
}

static void setup_cluster(struct replay *x, const struct trace_nodes *nodes)
{
    x->cluster = nodes->cluster;
    x->cluster.nodes = xcalloc((size_t)nodes->cluster.nnodes, sizeof(struct sched_node));
    x->cluster.nnodes = 0;
    for (int i = 0; i < nodes->cluster.nnodes; i++)
        if (x->o->node_fraction >= 1 || sampled(x, nodes, i))
            x->cluster.nodes[x->cluster.nnodes++] = nodes->cluster.nodes[i];
    for (int i = 0; i < x->cluster.nnodes; i++) {
        struct sched_node *n = &x->cluster.nodes[i];
        uint64_t mem = model_memory(n->model >= 0 ? x->cluster.models[n->model] : NULL,
                                    x->o->gpu_mem_default);

        for (int g = 0; g < n->ngpu; g++)
            n->gpu[g].mem_bytes = n->gpu[g].mem_free_bytes = mem;
        x->capacity += (double)n->ngpu * SCHED_MILLI;
    }
}

static void setup_projects(struct replay *x, const struct replay_projects *p)
{
    x->nprojects = p->n;
    x->projects = xcalloc((size_t)p->n, sizeof(*x->projects));
    for (int i = 0; i < p->n; i++)
        x->projects[i] = (struct sched_project){
            .name = p->p[i].name,
            .parent = -1,
            .deserved_milli = (int64_t)(p->p[i].deserved_share * x->capacity),
            .limit_milli =
                p->p[i].limit_share < 0 ? -1 : (int64_t)(p->p[i].limit_share * x->capacity),
            .over_quota_weight = p->p[i].weight};
    x->proj_alloc = xcalloc((size_t)p->n, sizeof(double));
    x->proj_share = xcalloc((size_t)p->n, sizeof(double));
}

/* Priority classes from the trace's QoS: LS is interactive (not preemptible, swappable when
 * idle), Guaranteed and Burstable build, BE training (preemptible). */
static void job_class(struct sched_job *j, enum trace_qos q)
{
    j->priority = q == TRACE_QOS_LS                                       ? SCHED_PRIO_INTERACTIVE
                  : q == TRACE_QOS_GUARANTEED || q == TRACE_QOS_BURSTABLE ? SCHED_PRIO_BUILD
                                                                          : SCHED_PRIO_TRAIN;
    j->preemptible = sched_priority_preemptible_default(j->priority);
    j->swappable = true;
}

static void setup_job(struct replay *x, const struct trace_pod *tp, const struct trace_usage *u)
{
    int i = x->n++;
    struct sched_job *j = &x->jobs[i];
    struct rjob *r = &x->r[i];
    const struct sched_pod *p = &tp->pod;

    *j = (struct sched_job){.id = i, .cpu_milli = p->cpu_milli, .mem_mib = p->mem_mib,
                            .replicas = 1, .state = SCHED_JOB_DONE, .bind = &x->binds[i],
                            .idle_since = -1};
    j->project = (int)(fnv(tp->name, 0xcbf29ce484222325ull) % (uint64_t)x->nprojects);
    j->req.models = p->models;
    if (p->num_gpu == 1 && p->gpu_milli < SCHED_MILLI)
        j->req = (struct sched_request){.kind = SCHED_REQ_FRACTION, .milli = p->gpu_milli,
                                        .models = p->models};
    else if (p->num_gpu > 0)
        j->req = (struct sched_request){.kind = SCHED_REQ_WHOLE, .gpus = p->num_gpu,
                                        .models = p->models};
    job_class(j, tp->qos);
    *r = (struct rjob){.runtime = (double)(tp->deleted - tp->scheduled),
                       .gpus = (double)p->num_gpu * p->gpu_milli / SCHED_MILLI,
                       .first_start = -1, .finish = -1};
    r->arrival = (double)tp->created;
    if (p->num_gpu > 0)
        r->use = &u->s[fnv(tp->name, x->o->seed * 0x9e3779b97f4a7c15ull + 1) % (uint64_t)u->n];
}

static int setup_jobs(struct replay *x, const struct trace_pods *pods, const struct trace_usage *u,
                      char *err, size_t errlen)
{
    double first = INFINITY;
    const struct sched_pod **pp;

    x->jobs = xcalloc((size_t)pods->npods + 1, sizeof(*x->jobs));
    x->binds = xcalloc((size_t)pods->npods + 1, sizeof(*x->binds));
    x->r = xcalloc((size_t)pods->npods + 1, sizeof(*x->r));
    x->by_arrival = xcalloc((size_t)pods->npods + 1, sizeof(int));
    for (int i = 0; i < pods->npods; i++) {
        const struct trace_pod *tp = &pods->pods[i];

        if (tp->created < 0 || tp->deleted < 0) {
            snprintf(err, errlen, "pod %s has no creation_time or deletion_time: a replay needs "
                                  "both", tp->name);
            return -1;
        }
        if (tp->scheduled < 0 || tp->deleted < tp->scheduled) {
            x->out->skipped++;
            continue;
        }
        setup_job(x, tp, u);
        first = first < tp->created ? first : (double)tp->created;
    }
    if (x->n == 0) {
        snprintf(err, errlen, "no pod of the list was ever scheduled in the trace");
        return -1;
    }
    for (int i = 0; i < x->n; i++) {
        x->r[i].arrival = first + (x->r[i].arrival - first) / x->o->load;
        x->jobs[i].submitted = (int64_t)x->r[i].arrival;
        x->by_arrival[i] = i;
        x->t_last = x->t_last > x->r[i].arrival ? x->t_last : x->r[i].arrival;
    }
    x->t0 = first;
    qsort_r(x->by_arrival, (size_t)x->n, sizeof(int), arrival_cmp, x->r);
    x->t_busy = x->r[x->by_arrival[x->n / 100]].arrival;
    pp = xcalloc((size_t)pods->npods + 1, sizeof(*pp));
    for (int i = 0; i < pods->npods; i++)
        pp[i] = &pods->pods[i].pod;
    if (sched_typical_build(pp, pods->npods, &x->typical) != 0)
        fatalx("out of memory");
    free(pp);
    return 0;
}

/* ---- usage and progress ------------------------------------------------------------------ */

static double share_of(const struct replay *x, const struct sched_job *j)
{
    struct sched_pod pod;

    sched_cycle_pod(&x->cfg, j, &pod);
    return pod.num_gpu == 0 ? 0 : pod.gpu_milli;
}

/* Each running GPU job's use this minute: busy fraction and memory, idle since when. */
static void update_usage(struct replay *x, double t)
{
    for (int i = 0; i < x->n; i++) {
        struct sched_job *j = &x->jobs[i];
        struct rjob *r = &x->r[i];
        const struct sched_node *n;
        long m;
        double cap;

        if (j->state != SCHED_JOB_RUNNING || r->use == NULL)
            continue;
        m = (long)((t - r->first_start) / 60);
        r->busy = r->use->busy[m % r->use->nbusy];
        n = &x->cluster.nodes[j->bind->node];
        cap = (double)n->gpu[0].mem_bytes * (r->gpus / (j->req.kind == SCHED_REQ_WHOLE
                                                            ? j->req.gpus
                                                            : 1));
        j->gpu_mem_used = (uint64_t)fmin(r->use->mem[m % r->use->nmem], cap);
        if (r->busy < IDLE_BUSY && j->idle_since < 0)
            j->idle_since = (int64_t)t;
        else if (r->busy >= IDLE_BUSY)
            j->idle_since = -1;
    }
}

/* Busy demand on every GPU this tick: owners' and borrowers', in milli. */
static void gpu_demand(struct replay *x)
{
    size_t slots = (size_t)x->cluster.nnodes * SCHED_NODE_MAX_GPUS;

    memset(x->owner_milli, 0, slots * sizeof(double));
    memset(x->borrow_milli, 0, slots * sizeof(double));
    for (int i = 0; i < x->n; i++) {
        const struct sched_job *j = &x->jobs[i];
        double d;

        if (j->state != SCHED_JOB_RUNNING || x->r[i].use == NULL)
            continue;
        /* A job keeps busy the share it asked for, whatever it was given: a half-GPU job
         * given a whole GPU (static) does the same work as on half of one. */
        d = x->r[i].busy * x->r[i].gpus / j->bind->choice.ngpu * SCHED_MILLI;
        for (int g = 0; g < j->bind->choice.ngpu; g++)
            (j->borrowed ? x->borrow_milli
                         : x->owner_milli)[gpu_slot(x, j->bind->node, j->bind->choice.gpu[g])] +=
                d;
    }
}

/* A borrower on an oversubscribed GPU gets what its owners leave; everyone else runs at speed. */
static double rate_of(const struct replay *x, const struct sched_job *j)
{
    int s;
    double own, bor;

    if (!j->borrowed)
        return 1;
    s = gpu_slot(x, j->bind->node, j->bind->choice.gpu[0]);
    own = x->owner_milli[s];
    bor = x->borrow_milli[s];
    if (own + bor <= SCHED_MILLI || bor <= 0)
        return 1;
    return fmax(0, SCHED_MILLI - own) / bor;
}

static void release(struct replay *x, int i)
{
    struct sched_job *j = &x->jobs[i];
    struct sched_node *n = &x->cluster.nodes[j->bind->node];
    struct sched_pod pod;

    sched_cycle_pod(&x->cfg, j, &pod);
    if (j->borrowed) {
        n->cpu_free += pod.cpu_milli;
        n->mem_free += pod.mem_mib;
    } else {
        sched_node_unbind(n, &pod, &j->bind->choice);
    }
    j->state = SCHED_JOB_DONE;
    j->borrowed = false;
    x->done++;
}

/* Progress over [t, t + dt); jobs that finish leave.  Returns how many finished. */
static int advance(struct replay *x, double t, double dt, double in_window)
{
    double in_busy = fmax(0, fmin(t + dt, x->t_last) - fmax(t, x->t_busy));

    int finished = 0;

    for (int i = 0; i < x->n; i++) {
        struct sched_job *j = &x->jobs[i];
        struct rjob *r = &x->r[i];
        double from = fmax(t, r->blocked_until), rate, step;

        if (j->state != SCHED_JOB_RUNNING || from >= t + dt)
            continue;
        rate = rate_of(x, j);
        step = rate * (t + dt - from);
        if (r->progress + step >= r->runtime && rate > 0) {
            r->finish = from + (r->runtime - r->progress) / rate;
            step = r->runtime - r->progress;
            release(x, i);
            finished++;
        }
        r->progress += step;
        x->good_int += step * r->gpus * in_window / dt;
        x->good_busy += step * r->gpus * in_busy / dt;
    }
    return finished;
}

/* ---- actions ----------------------------------------------------------------------------- */

static double link_seconds(const struct replay *x, uint64_t bytes)
{
    return (double)bytes / (x->o->link_gbps * 1e9);
}

/* The owners of the GPU a borrower sits on lent it; when they need their memory back they wait
 * for it to move. */
static void mark_owners(struct replay *x, int b, double wait_until)
{
    const struct sched_binding *bb = x->jobs[b].bind;

    for (int i = 0; i < x->n; i++) {
        const struct sched_job *j = &x->jobs[i];

        if (i == b || j->state != SCHED_JOB_RUNNING || j->borrowed || j->bind->node != bb->node)
            continue;
        for (int g = 0; g < j->bind->choice.ngpu; g++)
            if (j->bind->choice.gpu[g] == bb->choice.gpu[0]) {
                x->r[i].lent = true;
                x->r[i].blocked_until = fmax(x->r[i].blocked_until, wait_until);
            }
    }
}

static void apply(struct replay *x, double t)
{
    for (int k = 0; k < x->cycle.nact; k++) {
        const struct sched_action *a = &x->cycle.act[k];
        struct rjob *r = &x->r[a->job];
        double cost = link_seconds(x, a->bytes);

        switch (a->kind) {
        case SCHED_ACT_START:
            if (r->first_start < 0)
                r->first_start = t;
            r->blocked_until = t;
            if (a->borrowed) {
                mark_owners(x, a->job, 0);
                r->borrowed = true;
            }
            break;
        case SCHED_ACT_RESUME:
            r->blocked_until = t + cost;
            break;
        case SCHED_ACT_SWAP_OUT:
            x->out->swaps++;
            if (a->for_job >= 0)
                x->r[a->for_job].blocked_until = fmax(x->r[a->for_job].blocked_until, t + cost);
            else if (a->borrowed)
                mark_owners(x, a->job, t + cost);
            x->jobs[a->job].borrowed = false;
            break;
        case SCHED_ACT_MOVE:
            /* Out over the host link and back in on the new node; room once it is out. */
            x->out->moves++;
            r->blocked_until = fmax(r->blocked_until, t + 2 * cost);
            if (a->for_job >= 0)
                x->r[a->for_job].blocked_until = fmax(x->r[a->for_job].blocked_until, t + cost);
            break;
        case SCHED_ACT_PREEMPT:
            x->out->preemptions++;
            x->out->work_lost_gpu_hours += r->progress * r->gpus / 3600;
            r->progress = 0;
            x->jobs[a->job].borrowed = false;
            break;
        }
    }
}

/* ---- metrics ----------------------------------------------------------------------------- */

static void measure(struct replay *x, double t, double dt_in, double dt_busy, bool sample)
{
    double alloc = 0, used = 0;

    for (int i = 0; i < x->cluster.nnodes; i++) {
        const struct sched_node *n = &x->cluster.nodes[i];

        for (int g = 0; g < n->ngpu; g++) {
            int s = gpu_slot(x, i, g);

            alloc += SCHED_MILLI - n->gpu[g].free_milli;
            used += fmin(SCHED_MILLI, x->owner_milli[s] + x->borrow_milli[s]);
        }
    }
    x->alloc_int += alloc * dt_in;
    x->used_int += used * dt_in;
    x->alloc_busy += alloc * dt_busy;
    x->used_busy += used * dt_busy;
    for (int p = 0; p < x->nprojects; p++)
        x->proj_share[p] += (double)x->cycle.fair_share[p] * dt_in;
    for (int i = 0; i < x->n; i++)
        if (x->jobs[i].state == SCHED_JOB_RUNNING && !x->jobs[i].borrowed)
            x->proj_alloc[x->jobs[i].project] += share_of(x, &x->jobs[i]) *
                                                 (x->jobs[i].req.kind == SCHED_REQ_WHOLE
                                                      ? x->jobs[i].req.gpus
                                                      : 1) *
                                                 dt_in;
    if (sample && dt_in > 0) {
        struct replay_result *o = x->out;

        if (o->ncurve == x->capcurve) {
            x->capcurve = x->capcurve ? 2 * x->capcurve : 256;
            o->curve = xreallocarray(o->curve, (size_t)x->capcurve, sizeof(*o->curve));
        }
        o->curve[o->ncurve++] = (struct replay_point){(t - x->t0) / 3600, alloc / SCHED_MILLI,
                                                      used / SCHED_MILLI};
    }
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double p95(double *v, int n)
{
    if (n == 0)
        return 0;
    qsort(v, (size_t)n, sizeof(double), dbl_cmp);
    return v[(int)ceil(0.95 * n) - 1];
}

static void summarize(struct replay *x)
{
    struct replay_result *o = x->out;
    double window = fmax(x->t_last - x->t0, 1), cap = x->capacity * window;
    double *delay = xcalloc((size_t)x->n + 1, sizeof(double));
    double *done = xcalloc((size_t)x->n + 1, sizeof(double));
    double sum_d = 0, sum_c = 0, slow = 0, jx = 0, jx2 = 0, busy;
    int nd = 0, nj = 0;

    o->jobs = x->n;
    o->never_started = x->unplaced;
    o->gpus = x->capacity / SCHED_MILLI;
    o->window_hours = window / 3600;
    o->allocated_ratio = x->alloc_int / cap;
    o->used_ratio = x->used_int / cap;
    o->goodput = x->good_int * SCHED_MILLI / cap;
    busy = fmax(x->t_last - x->t_busy, 1);
    o->busy_hours = busy / 3600;
    o->allocated_ratio_busy = x->alloc_busy / (x->capacity * busy);
    o->used_ratio_busy = x->used_busy / (x->capacity * busy);
    o->goodput_busy = x->good_busy * SCHED_MILLI / (x->capacity * busy);
    for (int i = 0; i < x->n; i++) {
        const struct rjob *r = &x->r[i];

        if (r->finish < 0)
            continue;
        delay[nd] = r->first_start - r->arrival;
        done[nd] = r->finish - r->arrival;
        sum_d += delay[nd];
        sum_c += done[nd++];
        /* An owner lent and never borrowed: a borrower's own waits are not the lending's cost. */
        if (r->lent && !r->borrowed && r->runtime > 0) {
            slow += (r->finish - r->first_start) / r->runtime - 1;
            o->owners++;
        }
    }
    o->delay_mean = nd ? sum_d / nd : 0;
    o->completion_mean = nd ? sum_c / nd : 0;
    o->delay_p95 = p95(delay, nd);
    o->completion_p95 = p95(done, nd);
    o->owner_slowdown = o->owners ? slow / o->owners : 0;
    for (int p = 0; p < x->nprojects; p++)
        if (x->proj_share[p] > 0) {
            double v = x->proj_alloc[p] / x->proj_share[p];

            jx += v;
            jx2 += v * v;
            nj++;
        }
    o->jain = jx2 > 0 ? jx * jx / (nj * jx2) : 1;
    free(delay);
    free(done);
}

/* ---- the loop ---------------------------------------------------------------------------- */

static int admit(struct replay *x, double t)
{
    int n = 0;

    while (x->next < x->n && x->r[x->by_arrival[x->next]].arrival <= t) {
        x->jobs[x->by_arrival[x->next++]].state = SCHED_JOB_PENDING;
        n++;
    }
    return n;
}

static bool waiting(const struct replay *x)
{
    for (int i = 0; i < x->n; i++)
        if (x->jobs[i].state == SCHED_JOB_PENDING || x->jobs[i].state == SCHED_JOB_SWAPPED ||
            (x->jobs[i].state == SCHED_JOB_RUNNING && x->jobs[i].borrowed))
            return true;
    return false;
}

/* After the last arrival, with nothing waiting and nothing borrowed, nothing changes until the
 * next job finishes: jump there. */
static double quiet_until(const struct replay *x, double t)
{
    double next = INFINITY;

    if (t < x->t_last || x->next < x->n)
        return t;
    for (int i = 0; i < x->n; i++) {
        const struct sched_job *j = &x->jobs[i];
        const struct rjob *r = &x->r[i];

        if (j->state == SCHED_JOB_PENDING || j->state == SCHED_JOB_SWAPPED || j->borrowed)
            return t;
        if (j->state == SCHED_JOB_RUNNING)
            next = fmin(next, fmax(t, r->blocked_until) + r->runtime - r->progress);
    }
    return isfinite(next) ? next : t;
}

static int loop(struct replay *x, char *err, size_t errlen)
{
    double dt = (double)x->o->tick, t = x->t0;
    bool changed = true;
    long ticks = 0;

    while (x->done + x->unplaced < x->n) {
        double in_window = fmax(0, fmin(t + dt, x->t_last) - t);
        double in_busy = fmax(0, fmin(t + dt, x->t_last) - fmax(t, x->t_busy));
        double quiet;
        int rc;

        changed |= admit(x, t) > 0;
        update_usage(x, t);
        if (changed || (x->cfg.lend && waiting(x))) {
            if ((rc = sched_cycle_run(&x->cycle, x->projects, x->nprojects, x->jobs, x->n,
                                      (int64_t)t)) != 0) {
                snprintf(err, errlen, "scheduling cycle: %s", strerror(-rc));
                return -1;
            }
            apply(x, t);
        }
        gpu_demand(x);
        measure(x, t, in_window, in_busy, ticks % CURVE_EVERY == 0);
        quiet = quiet_until(x, t);
        if (quiet > t + dt) {
            /* Whole ticks up to the next departure, which happens in the tick that follows. */
            double skip = floor((quiet - t) / dt) * dt;

            advance(x, t, skip, 0);
            t += skip;
            changed = true;
            continue;
        }
        changed = advance(x, t, dt, in_window) > 0;
        t += dt;
        ticks++;
        /* Nothing runs, nothing arrives, nothing changed: what waits can never start. */
        if (!changed && x->next == x->n && x->cycle.nact == 0 && x->done + x->unplaced < x->n) {
            bool running = false;

            for (int i = 0; i < x->n && !running; i++)
                running = x->jobs[i].state == SCHED_JOB_RUNNING;
            if (!running)
                x->unplaced = x->n - x->done;
        }
    }
    return 0;
}

int replay_run(const struct trace_nodes *nodes, const struct trace_pods *pods,
               const struct trace_usage *usage, const struct replay_projects *projects,
               const struct replay_opts *o, struct replay_result *out, char *err, size_t errlen)
{
    struct replay x = {.o = o, .out = out};
    struct timespec t0, t1;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    out->policy = o->policy;
    out->load = o->load;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    policy_cfg(o, &x.cfg);
    setup_cluster(&x, nodes);
    setup_projects(&x, projects);
    x.owner_milli = xcalloc((size_t)x.cluster.nnodes * SCHED_NODE_MAX_GPUS, sizeof(double));
    x.borrow_milli = xcalloc((size_t)x.cluster.nnodes * SCHED_NODE_MAX_GPUS, sizeof(double));
    if (setup_jobs(&x, pods, usage, err, errlen) == 0) {
        if (sched_cycle_init(&x.cycle, &x.cfg, &x.cluster, &x.typical, x.nprojects, x.n) != 0)
            fatalx("out of memory");
        rc = loop(&x, err, errlen);
        if (rc == 0)
            summarize(&x);
        sched_cycle_fini(&x.cycle);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    out->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    sched_typical_fini(&x.typical);
    free(x.cluster.nodes);
    free(x.projects);
    free(x.proj_alloc);
    free(x.proj_share);
    free(x.owner_milli);
    free(x.borrow_milli);
    free(x.jobs);
    free(x.binds);
    free(x.r);
    free(x.by_arrival);
    return rc;
}

void replay_result_fini(struct replay_result *r)
{
    free(r->curve);
    memset(r, 0, sizeof(*r));
}
