/*
 * The scheduler loop.  Each pass reads the projects and the live jobs from the store, runs one
 * cycle, and writes back what changed.  Nodes come from agents (not yet registered here), so
 * until then every job waits, with the reason the cycle gives.
 */
#include "server/loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "sched/cycle.h"
#include "server/jobspec.h"

#define PASS_GAP_MS 100

struct loop {
    struct store *store;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool poked, stop;
};

struct snapshot {
    struct sched_project *projects;
    char (*names)[129];
    char (*parents)[129];
    int nprojects, cap;
    struct sched_job *jobs;
    int64_t *ids;
    int njobs, capj;
};

static void add_project(const struct store_project *p, void *arg)
{
    struct snapshot *s = arg;

    if (s->nprojects == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->projects = xreallocarray(s->projects, (size_t)s->cap, sizeof(*s->projects));
        s->names = xreallocarray(s->names, (size_t)s->cap, sizeof(*s->names));
        s->parents = xreallocarray(s->parents, (size_t)s->cap, sizeof(*s->parents));
    }
    memcpy(s->names[s->nprojects], p->name, sizeof(s->names[0]));
    memcpy(s->parents[s->nprojects], p->parent, sizeof(s->parents[0]));
    s->projects[s->nprojects++] = (struct sched_project){
        .parent = -1, .deserved_milli = p->deserved_milli, .limit_milli = p->limit_milli,
        .over_quota_weight = p->weight};
}

static int project_index(const struct snapshot *s, const char *name)
{
    for (int i = 0; i < s->nprojects; i++)
        if (strcmp(s->names[i], name) == 0)
            return i;
    return -1;
}

static int add_job(const struct store_job *j, void *arg)
{
    struct snapshot *s = arg;
    struct jobspec spec;
    struct api_error e;
    int p = project_index(s, j->project);

    if (p < 0 || j->spec == NULL || jobspec_parse(j->spec, &spec, &e) != 0)
        return 0;
    if (s->njobs == s->capj) {
        s->capj = s->capj ? 2 * s->capj : 256;
        s->jobs = xreallocarray(s->jobs, (size_t)s->capj, sizeof(*s->jobs));
        s->ids = xreallocarray(s->ids, (size_t)s->capj, sizeof(*s->ids));
    }
    s->ids[s->njobs] = j->id;
    s->jobs[s->njobs++] = (struct sched_job){
        .id = j->id, .project = p, .cpu_milli = spec.cpu_milli, .mem_mib = spec.mem_mib,
        .req = spec.req, .replicas = spec.replicas, .priority = spec.priority,
        .preemptible = spec.preemptible, .swappable = spec.swappable,
        .submitted = j->submitted_ms, .state = SCHED_JOB_PENDING, .idle_since = -1};
    return 0;
}

/* Departments: a project's parent is named; the cycle wants its index. */
static void link_parents(struct snapshot *s)
{
    for (int i = 0; i < s->nprojects; i++)
        s->projects[i].parent = s->parents[i][0] ? project_index(s, s->parents[i]) : -1;
}

static void snapshot_fini(struct snapshot *s)
{
    free(s->projects);
    free(s->names);
    free(s->parents);
    free(s->jobs);
    free(s->ids);
}

static void pass(struct loop *l)
{
    struct snapshot s = {0};
    struct store_job_filter f = {.state = STORE_JOB_PENDING};
    struct sched_cluster cluster = {0};
    struct sched_typical typical = {0};
    struct sched_cycle_cfg cfg = {.placement = SCHED_POLICY_GPOOL, .fractions = true,
                                  .quotas = true, .reclaim = true, .preempt = true, .swap = true,
                                  .lend = true, .consolidate = true, .min_runtime = 600000,
                                  .idle_window = 300000};
    struct sched_cycle c;
    const char **reasons;

    store_projects(l->store, add_project, &s);
    link_parents(&s);
    store_jobs(l->store, &f, add_job, &s);
    for (int i = 0; i < s.njobs; i++)
        s.jobs[i].bind = xcalloc((size_t)s.jobs[i].replicas, sizeof(struct sched_binding));
    if (s.njobs > 0 && cluster.nnodes == 0) {
        /* Nothing to schedule on: say so rather than what a cycle over nothing would. */
        reasons = xcalloc((size_t)s.njobs, sizeof(*reasons));
        for (int i = 0; i < s.njobs; i++)
            reasons[i] = "no node has joined the pool yet (nodes join when their agent registers)";
        store_job_reasons(l->store, s.ids, reasons, s.njobs);
        free(reasons);
    } else if (s.njobs > 0 &&
               sched_cycle_init(&c, &cfg, &cluster, &typical, s.nprojects, s.njobs) == 0) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        if (sched_cycle_run(&c, s.projects, s.nprojects, s.jobs, s.njobs,
                            (int64_t)ts.tv_sec * 1000) == 0) {
            reasons = xcalloc((size_t)s.njobs, sizeof(*reasons));
            for (int i = 0; i < s.njobs; i++)
                reasons[i] = c.reason[i];
            store_job_reasons(l->store, s.ids, reasons, s.njobs);
            free(reasons);
        }
        sched_cycle_fini(&c);
    }
    for (int i = 0; i < s.njobs; i++)
        free(s.jobs[i].bind);
    snapshot_fini(&s);
}

static void *run(void *arg)
{
    struct loop *l = arg;

    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        struct timespec ts;

        l->poked = false;
        pthread_mutex_unlock(&l->mu);
        pass(l);
        pthread_mutex_lock(&l->mu);
        /* At most one pass per PASS_GAP_MS however often it is poked: a burst of submissions
         * is scheduled together, and the store is left to the API in between. */
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += PASS_GAP_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (!l->stop && pthread_cond_timedwait(&l->cond, &l->mu, &ts) != ETIMEDOUT)
            ;
        ts.tv_sec += 1;
        while (!l->poked && !l->stop)
            if (pthread_cond_timedwait(&l->cond, &l->mu, &ts) == ETIMEDOUT)
                break;
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int loop_start(struct store *s, struct loop **out)
{
    struct loop *l = xcalloc(1, sizeof(*l));
    pthread_condattr_t ca;

    l->store = s;
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&l->thread, NULL, run, l) != 0) {
        free(l);
        return -EAGAIN;
    }
    *out = l;
    return 0;
}

void loop_poke(struct loop *l)
{
    pthread_mutex_lock(&l->mu);
    l->poked = true;
    pthread_cond_signal(&l->cond);
    pthread_mutex_unlock(&l->mu);
}

void loop_stop(struct loop *l)
{
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_signal(&l->cond);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->mu);
    free(l);
}
