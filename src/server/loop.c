/*
 * The scheduler loop.  Each pass reads the store into a snapshot (projects, the nodes whose
 * agents are alive, the jobs waiting, assigned or running), runs one cycle of src/sched, and
 * writes back what it decided: assignments, jobs stopped to make room, and the reason of every
 * job that still waits.  A node whose agent has been silent for the node timeout is gone: its
 * jobs go back to the queue.
 *
 * Agents cannot yet swap a job out, lend its GPUs or move it, so the cycle runs here with
 * fractions, quotas, reclaim and preemption (by stopping) only.
 */
#include "server/loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/hash.h"
#include "common/log.h"
#include "sched/cycle.h"
#include "server/history.h"
#include "server/jobspec.h"
#include "server/queue.h"

#define PASS_GAP_MS 100

struct loop {
    struct store *store;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool poked, stop;
    struct loop_hooks hooks;
    int64_t node_timeout_ms;
    int64_t min_runtime_ms;
    char (*was_silent)[129]; /* the nodes silent at the last pass */
    int nwas_silent;
    struct history *history;
    int64_t sampled_ms;
    bool sampled_nodes; /* whether the last sample had any node */
    json_t *shares; /* the last cycle's figures of each project (loop_shares); under mu */
    /* The waiting jobs' reasons as the last pass left them (ids ascending, fingerprints), so
     * that a pass writes only the reasons that changed. */
    int64_t *said_ids;
    uint64_t *said;
    int nsaid;
    struct queue *queue; /* the live jobs' specs, parsed once */
    int64_t held_ms;     /* how long the last passes took: heartbeats may have waited as long */
};

struct snapshot {
    int64_t now, node_timeout_ms;
    struct queue *queue; /* NULL: specs parsed from the rows */
    struct sched_cycle_cfg cfg;
    struct sched_project *projects;
    char (*names)[129];
    char (*parents)[129];
    int nprojects, cap;
    struct sched_cluster cluster;
    char (*node_names)[129];
    int *by_name; /* node indexes in name order, made when bindings are first read */
    bool *schedulable;
    char **strings; /* GPU model names kept for the cluster's table */
    int nstrings, capn;
    char (*silent)[129];
    int nsilent;
    struct sched_job *jobs;
    int64_t *ids, *owners;
    int njobs, capj;
    /* Of each node: the compute its agent measured in use, and that held by swapped jobs. */
    int64_t *used_milli, *swapped_milli;
};

/* The cycle as the server runs it: agents cannot yet swap, lend or move jobs. */
static const struct sched_cycle_cfg pass_cfg = {
    .placement = SCHED_POLICY_GPOOL, .fractions = true, .quotas = true, .reclaim = true,
    .preempt = true, .min_runtime = 600000, .idle_window = 300000};

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- reading the store ------------------------------------------------------------------- */

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
        .name = NULL, .parent = -1, .deserved_milli = p->deserved_milli,
        .limit_milli = p->limit_milli, .over_quota_weight = p->weight};
}

static int project_index(const struct snapshot *s, const char *name)
{
    for (int i = 0; i < s->nprojects; i++)
        if (strcmp(s->names[i], name) == 0)
            return i;
    return -1;
}

/* Departments: a project's parent is named; the cycle wants its index. */
static void link_parents(struct snapshot *s)
{
    for (int i = 0; i < s->nprojects; i++) {
        s->projects[i].name = s->names[i];
        s->projects[i].parent = s->parents[i][0] ? project_index(s, s->parents[i]) : -1;
    }
}

static int model_of(struct snapshot *s, const char *model)
{
    for (int i = 0; i < s->cluster.nmodels; i++)
        if (strcmp(s->cluster.models[i], model) == 0)
            return i;
    s->strings = xreallocarray(s->strings, (size_t)s->nstrings + 1, sizeof(*s->strings));
    s->strings[s->nstrings] = xstrdup(model);
    return sched_cluster_model(&s->cluster, s->strings[s->nstrings++]);
}

/* The compute a node's agent measured in use on its GPUs: their busy percentages, summed. */
static int64_t measured_milli(const struct store_node *n)
{
    int64_t used = 0;
    size_t i;
    json_t *m;

    json_array_foreach(n->telemetry, i, m)
        used += json_integer_value(json_object_get(m, "utilization_pct")) * SCHED_MILLI / 100;
    return used;
}

static void add_node(const struct store_node *n, void *arg)
{
    struct snapshot *s = arg;
    struct sched_node *sn;
    size_t i;
    json_t *g;

    if (s->now - n->heartbeat_ms > s->node_timeout_ms) {
        s->silent = xreallocarray(s->silent, (size_t)s->nsilent + 1, sizeof(*s->silent));
        memcpy(s->silent[s->nsilent++], n->name, sizeof(s->silent[0]));
        return;
    }
    if (s->cluster.nnodes == s->capn) {
        s->capn = s->capn ? 2 * s->capn : 16;
        s->cluster.nodes = xreallocarray(s->cluster.nodes, (size_t)s->capn,
                                         sizeof(*s->cluster.nodes));
        s->node_names = xreallocarray(s->node_names, (size_t)s->capn, sizeof(*s->node_names));
        s->schedulable = xreallocarray(s->schedulable, (size_t)s->capn, sizeof(bool));
        s->used_milli = xreallocarray(s->used_milli, (size_t)s->capn, sizeof(int64_t));
        s->swapped_milli = xreallocarray(s->swapped_milli, (size_t)s->capn, sizeof(int64_t));
    }
    s->used_milli[s->cluster.nnodes] = measured_milli(n);
    s->swapped_milli[s->cluster.nnodes] = 0;
    memcpy(s->node_names[s->cluster.nnodes], n->name, sizeof(s->node_names[0]));
    s->schedulable[s->cluster.nnodes] = n->state == STORE_NODE_READY;
    sn = &s->cluster.nodes[s->cluster.nnodes++];
    *sn = (struct sched_node){.name = s->node_names[s->cluster.nnodes - 1], .pool = -1,
                              .model = -1, .cpu_milli = n->cpu_milli, .cpu_free = n->cpu_milli,
                              .mem_mib = n->mem_mib, .mem_free = n->mem_mib};
    json_array_foreach(n->gpus, i, g) {
        uint64_t mem = (uint64_t)json_integer_value(json_object_get(g, "memory_bytes"));

        if (sn->ngpu == SCHED_NODE_MAX_GPUS)
            break;
        sn->gpu[sn->ngpu++] = (struct sched_gpu){SCHED_MILLI, mem, mem};
        if (json_is_string(json_object_get(g, "model")))
            sn->model = model_of(s, json_string_value(json_object_get(g, "model")));
    }
}

static int by_name_cmp(const void *a, const void *b, void *arg)
{
    const struct snapshot *s = arg;

    return strcmp(s->node_names[*(const int *)a], s->node_names[*(const int *)b]);
}

/* A node by name, in log time: a long queue's running jobs each name theirs. */
static int node_index(struct snapshot *s, const char *name, size_t len)
{
    int lo = 0, hi = s->cluster.nnodes - 1;

    if (s->by_name == NULL) {
        s->by_name = xcalloc((size_t)s->cluster.nnodes + 1, sizeof(int));
        for (int i = 0; i < s->cluster.nnodes; i++)
            s->by_name[i] = i;
        qsort_r(s->by_name, (size_t)s->cluster.nnodes, sizeof(int), by_name_cmp, s);
    }
    while (lo <= hi) {
        int mid = (lo + hi) / 2, i = s->by_name[mid];
        int c = strncmp(s->node_names[i], name, len);

        if (c == 0 && s->node_names[i][len] == '\0')
            return i;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* "n1 n2" and "0,1;2,3": replica r runs on the r-th node with the r-th GPU list. */
static int parse_bindings(struct snapshot *s, const struct store_job *j,
                          struct sched_binding *b, int replicas)
{
    const char *np = j->node, *gp = j->gpus;

    for (int r = 0; r < replicas; r++) {
        size_t nl = strcspn(np, " ");
        char *end;

        if ((b[r].node = node_index(s, np, nl)) < 0)
            return -1;
        b[r].choice.ngpu = 0;
        while (*gp != '\0' && *gp != ';' && b[r].choice.ngpu < SCHED_NODE_MAX_GPUS) {
            long g = strtol(gp, &end, 10);

            if (end == gp || g < 0 || g >= s->cluster.nodes[b[r].node].ngpu)
                return -1;
            b[r].choice.gpu[b[r].choice.ngpu++] = (uint8_t)g;
            gp = *end == ',' ? end + 1 : end;
        }
        np += nl + (np[nl] == ' ');
        gp += *gp == ';';
    }
    return 0;
}

static int add_job(const struct store_job *j, void *arg)
{
    struct snapshot *s = arg;
    struct jobspec spec;
    struct sched_job *sj;
    int p = project_index(s, j->project);

    if (p < 0 || queue_spec(s->queue, j, &spec) != 0)
        return 0;
    if (s->njobs == s->capj) {
        s->capj = s->capj ? 2 * s->capj : 256;
        s->jobs = xreallocarray(s->jobs, (size_t)s->capj, sizeof(*s->jobs));
        s->ids = xreallocarray(s->ids, (size_t)s->capj, sizeof(*s->ids));
        s->owners = xreallocarray(s->owners, (size_t)s->capj, sizeof(*s->owners));
    }
    sj = &s->jobs[s->njobs];
    *sj = (struct sched_job){
        .id = j->id, .project = p, .cpu_milli = spec.cpu_milli, .mem_mib = spec.mem_mib,
        .req = spec.req, .replicas = spec.replicas, .priority = spec.priority,
        .preemptible = spec.preemptible, .swappable = spec.swappable,
        .submitted = j->submitted_ms, .state = SCHED_JOB_PENDING, .idle_since = -1,
        .started = j->started_ms};
    sj->bind = xcalloc((size_t)spec.replicas, sizeof(*sj->bind));
    if (j->state != STORE_JOB_PENDING) {
        struct sched_pod pod;

        /* Held capacity: on a node that is gone, it is requeued by the pass instead. */
        if (parse_bindings(s, j, sj->bind, spec.replicas) != 0) {
            free(sj->bind);
            return 0;
        }
        sched_cycle_pod(&s->cfg, sj, &pod);
        for (int r = 0; r < spec.replicas; r++) {
            sched_node_bind(&s->cluster.nodes[sj->bind[r].node], &pod, &sj->bind[r].choice);
            if (j->state == STORE_JOB_SWAPPED)
                s->swapped_milli[sj->bind[r].node] += (int64_t)pod.gpu_milli * pod.num_gpu;
        }
        sj->state = SCHED_JOB_RUNNING;
    }
    s->owners[s->njobs] = j->user_id;
    s->ids[s->njobs++] = j->id;
    return 0;
}

/* Cordoned and draining nodes keep their jobs and take no new ones. */
static void close_unschedulable(struct snapshot *s)
{
    for (int i = 0; i < s->cluster.nnodes; i++) {
        struct sched_node *n = &s->cluster.nodes[i];

        if (s->schedulable[i])
            continue;
        n->cpu_free = 0;
        for (int g = 0; g < n->ngpu; g++)
            n->gpu[g].free_milli = 0;
    }
}

static void snapshot_fini(struct snapshot *s)
{
    for (int i = 0; i < s->njobs; i++)
        free(s->jobs[i].bind);
    for (int i = 0; i < s->nstrings; i++)
        free(s->strings[i]);
    free(s->strings);
    free(s->projects);
    free(s->names);
    free(s->parents);
    free(s->cluster.nodes);
    free(s->node_names);
    free(s->by_name);
    free(s->schedulable);
    free(s->silent);
    free(s->jobs);
    free(s->ids);
    free(s->owners);
    free(s->used_milli);
    free(s->swapped_milli);
}

/* ---- writing back ------------------------------------------------------------------------ */

/* The nodes whose assignments a pass changed, "n1 n2 ...", for the agents to be told. */
struct changed_nodes {
    char *names;
    size_t len, cap;
};

static void changed_add(struct changed_nodes *c, const char *nodes)
{
    size_t n = strlen(nodes);

    if (n == 0)
        return;
    if (c->len + n + 2 > c->cap) {
        c->cap = (c->len + n + 2) * 2;
        c->names = xreallocarray(c->names, c->cap, 1);
    }
    if (c->len > 0)
        c->names[c->len++] = ' ';
    memcpy(c->names + c->len, nodes, n + 1);
    c->len += n;
}

static void encode_bindings(const struct snapshot *s, const struct sched_job *j, char *nodes,
                            size_t nlen, char *gpus, size_t glen)
{
    size_t n = 0, g = 0;

    nodes[0] = gpus[0] = '\0';
    for (int r = 0; r < j->replicas; r++) {
        n += (size_t)snprintf(nodes + n, nlen > n ? nlen - n : 0, "%s%s", r ? " " : "",
                              s->node_names[j->bind[r].node]);
        for (int i = 0; i < j->bind[r].choice.ngpu; i++)
            g += (size_t)snprintf(gpus + g, glen > g ? glen - g : 0, "%s%d",
                                  i ? "," : (r ? ";" : ""), j->bind[r].choice.gpu[i]);
    }
}

/* What a placed job holds: GPU milli on each of its GPUs, and on all of them. */
static void allocation_of(const struct snapshot *s, const struct sched_job *j, int64_t *per_gpu,
                          int64_t *all)
{
    struct sched_pod pod;

    sched_cycle_pod(&s->cfg, j, &pod);
    *per_gpu = *all = 0;
    for (int r = 0; r < j->replicas; r++) {
        const struct sched_node *n = &s->cluster.nodes[j->bind[r].node];

        for (int i = 0; i < j->bind[r].choice.ngpu; i++) {
            int share = sched_pod_share_on(&pod, &n->gpu[j->bind[r].choice.gpu[i]]);

            *per_gpu = share > 0 ? share : 0;
            *all += *per_gpu;
        }
    }
}

/* What a pass writes of one action: its nodes and GPUs, and why it was stopped. */
struct action_text {
    char nodes[1024], gpus[512], why[128];
};

/* The cycle's starts and stops, written in one transaction; a job cancelled meanwhile is
 * skipped, and nothing is written when the store fails (the next pass decides again). */
static bool apply(struct loop *l, struct snapshot *s, const struct sched_cycle *c,
                  struct changed_nodes *nodes_changed)
{
    struct store_placement *p = xcalloc((size_t)c->nact + 1, sizeof(*p));
    struct action_text *t = xcalloc((size_t)c->nact + 1, sizeof(*t));
    int *job = xcalloc((size_t)c->nact + 1, sizeof(*job));
    bool changed = false;
    int n = 0;

    for (int k = 0; k < c->nact; k++) {
        const struct sched_action *a = &c->act[k];
        const struct sched_job *j = &s->jobs[a->job];

        if (a->kind != SCHED_ACT_START && a->kind != SCHED_ACT_PREEMPT)
            continue;
        encode_bindings(s, j, t[n].nodes, sizeof(t[n].nodes), t[n].gpus, sizeof(t[n].gpus));
        p[n] = (struct store_placement){.id = s->ids[a->job], .node = t[n].nodes,
                                        .gpus = t[n].gpus, .reason = t[n].why};
        if (a->kind == SCHED_ACT_START) {
            allocation_of(s, j, &p[n].gpu_milli, &p[n].alloc_milli);
        } else {
            p[n].requeue = true;
            snprintf(t[n].why, sizeof(t[n].why), "stopped to make room for job %lld; queued again",
                     a->for_job >= 0 ? (long long)s->ids[a->for_job] : 0LL);
        }
        job[n++] = a->job;
    }
    if (store_jobs_place(l->store, p, n, s->now) != 0)
        n = 0;
    for (int i = 0; i < n; i++) {
        if (p[i].rc != 0)
            continue;
        changed_add(nodes_changed, t[i].nodes);
        if (l->hooks.job_changed != NULL)
            l->hooks.job_changed(l->hooks.arg, s->ids[job[i]]);
        changed = true;
    }
    free(p);
    free(t);
    free(job);
    return changed;
}

/* A reason's fingerprint, to tell whether it changed since the last pass. */
static uint64_t fingerprint(const char *text)
{
    return hash_fnv1a(text, HASH_FNV_OFFSET);
}

/* Each waiting job's reason, written when it differs from what the last pass left: a queue of
 * 100,000 jobs would otherwise be rewritten on every pass. */
static void write_reasons(struct loop *l, struct snapshot *s, const struct sched_cycle *c)
{
    const char **reasons = xcalloc((size_t)s->njobs + 1, sizeof(*reasons));
    int64_t *ids = xcalloc((size_t)s->njobs + 1, sizeof(*ids));
    int64_t *said_ids = xcalloc((size_t)s->njobs + 1, sizeof(*said_ids));
    uint64_t *said = xcalloc((size_t)s->njobs + 1, sizeof(*said));
    int n = 0, nsaid = 0, k = 0;

    for (int i = 0; i < s->njobs; i++)
        if (s->jobs[i].state == SCHED_JOB_PENDING) {
            const char *why = c != NULL ? c->reason[i]
                                        : "no node has joined the pool yet (nodes join when "
                                          "their agent registers)";
            uint64_t f = fingerprint(why);

            /* Pending jobs come in ascending ids, as the last pass's. */
            while (k < l->nsaid && l->said_ids[k] < s->ids[i])
                k++;
            if (k >= l->nsaid || l->said_ids[k] != s->ids[i] || l->said[k] != f) {
                ids[n] = s->ids[i];
                reasons[n++] = why;
            }
            said_ids[nsaid] = s->ids[i];
            said[nsaid++] = f;
        }
    /* Not written: all of them again next time. */
    if (n > 0 && store_job_reasons(l->store, ids, reasons, n) != 0)
        nsaid = 0;
    free(l->said_ids);
    free(l->said);
    l->said_ids = said_ids;
    l->said = said;
    l->nsaid = nsaid;
    free(reasons);
    free(ids);
}

/* ---- what the dashboard shows ------------------------------------------------------------ */

/* A node's pool: nodes carry no labels yet, so the nodes of one GPU model make a pool. */
static const char *pool_of(const struct snapshot *s, int node)
{
    int m = s->cluster.nodes[node].model;

    return m >= 0 ? s->cluster.models[m] : "default";
}

/* Every HISTORY_INTERVAL_MS, each pool's GPUs, allocated, measured in use and swapped out, as
 * the store has them at the start of the pass.  The server does not lend capacity yet, so
 * nothing is borrowed. */
static void sample(struct loop *l, const struct snapshot *s)
{
    struct history_sample by_pool[HISTORY_POOLS];
    const char *names[HISTORY_POOLS];
    int npools = 0;

    /* The first node to join is sampled at once: a new pool has a figure to show. */
    if (s->now - l->sampled_ms < HISTORY_INTERVAL_MS && (l->sampled_nodes || !s->cluster.nnodes))
        return;
    l->sampled_ms = s->now;
    l->sampled_nodes = s->cluster.nnodes > 0;
    for (int i = 0; i < s->cluster.nnodes; i++) {
        const struct sched_node *n = &s->cluster.nodes[i];
        const char *pool = pool_of(s, i);
        int p = 0;

        while (p < npools && strcmp(names[p], pool) != 0)
            p++;
        if (p == HISTORY_POOLS)
            continue;
        if (p == npools) {
            names[npools++] = pool;
            by_pool[p] = (struct history_sample){.t_ms = s->now};
        }
        by_pool[p].gpus += (int64_t)n->ngpu * SCHED_MILLI;
        for (int g = 0; g < n->ngpu; g++)
            by_pool[p].allocated += SCHED_MILLI - n->gpu[g].free_milli;
        by_pool[p].used += s->used_milli[i];
        by_pool[p].swapped += s->swapped_milli[i];
    }
    for (int p = 0; p < npools; p++)
        history_add(l->history, names[p], &by_pool[p]);
}

/* Each project's fair share and allocation as the cycle computed them. */
static void keep_shares(struct loop *l, const struct snapshot *s, const struct sched_cycle *c)
{
    json_t *shares = json_object();

    /* Every project; 0 when no cycle ran (no job pending or running). */
    for (int i = 0; i < s->nprojects; i++)
        json_object_set_new(shares, s->names[i],
                            json_pack("{s:I, s:I}", "fair_share_milli",
                                      (json_int_t)(c ? c->fair_share[i] : 0), "allocated_milli",
                                      (json_int_t)(c ? c->allocated[i] : 0)));
    pthread_mutex_lock(&l->mu);
    json_decref(l->shares);
    l->shares = shares;
    pthread_mutex_unlock(&l->mu);
}

json_t *loop_shares(struct loop *l)
{
    json_t *out;

    pthread_mutex_lock(&l->mu);
    out = json_incref(l->shares);
    pthread_mutex_unlock(&l->mu);
    return out ? out : json_object();
}

json_t *loop_history(struct loop *l, int64_t since_ms)
{
    return history_json(l->history, since_ms);
}

/* The pods that fragmentation-aware placement keeps room for: those of the live jobs. */
static void typical_of(const struct snapshot *s, struct sched_typical *t)
{
    struct sched_pod *pods = xcalloc((size_t)s->njobs + 1, sizeof(*pods));
    const struct sched_pod **ptr = xcalloc((size_t)s->njobs + 1, sizeof(*ptr));

    for (int i = 0; i < s->njobs; i++) {
        sched_cycle_pod(&s->cfg, &s->jobs[i], &pods[i]);
        ptr[i] = &pods[i];
    }
    if (s->njobs == 0 || sched_typical_build(ptr, s->njobs, t) != 0)
        *t = (struct sched_typical){0};
    free(pods);
    free(ptr);
}

struct id_list {
    int64_t *ids;
    int n;
    struct changed_nodes nodes; /* where they ran */
};

static int collect_id(const struct store_job *j, void *arg)
{
    struct id_list *l = arg;

    l->ids = xreallocarray(l->ids, (size_t)l->n + 1, sizeof(*l->ids));
    l->ids[l->n++] = j->id;
    changed_add(&l->nodes, j->node);
    return 0;
}

/* The jobs of a silent node go back to the queue; true when it held any.  Its gangs' other
 * nodes are told. */
static bool requeue_silent(struct loop *l, const char *node, struct changed_nodes *nodes_changed)
{
    struct store_job_filter f = {.state = -1, .node = node, .light = true};
    struct id_list held = {0};
    bool done;

    store_jobs(l->store, &f, collect_id, &held);
    done = held.n > 0 &&
           store_node_requeue(l->store, node, "its node went silent; queued again",
                              wall_ms()) == 0;
    for (int i = 0; done && l->hooks.job_changed != NULL && i < held.n; i++)
        l->hooks.job_changed(l->hooks.arg, held.ids[i]);
    if (done)
        changed_add(nodes_changed, held.nodes.names);
    free(held.ids);
    free(held.nodes.names);
    return done;
}

static bool among(char (*names)[129], int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

/* Nodes that went silent since the last pass, or came back, are news. */
static void silent_news(struct loop *l, const struct snapshot *s)
{
    if (l->hooks.node_changed != NULL) {
        for (int i = 0; i < s->nsilent; i++)
            if (!among(l->was_silent, l->nwas_silent, s->silent[i]))
                l->hooks.node_changed(l->hooks.arg, s->silent[i]);
        for (int i = 0; i < l->nwas_silent; i++)
            if (!among(s->silent, s->nsilent, l->was_silent[i]))
                l->hooks.node_changed(l->hooks.arg, l->was_silent[i]);
    }
    l->was_silent = xreallocarray(l->was_silent, (size_t)s->nsilent + 1, sizeof(*l->was_silent));
    for (int i = 0; i < s->nsilent; i++)
        memcpy(l->was_silent[i], s->silent[i], sizeof(l->was_silent[i]));
    l->nwas_silent = s->nsilent;
}

struct overdue {
    struct queue *queue;
    int64_t now;
    int64_t *ids;
    int64_t *limits;
    char (*nodes)[129];
    int n;
};

static int collect_overdue(const struct store_job *j, void *arg)
{
    struct overdue *o = arg;
    struct jobspec spec;
    int64_t limit = queue_spec(o->queue, j, &spec) == 0 ? spec.walltime_s : 0;

    if (limit > 0 && j->started_ms > 0 && o->now - j->started_ms > limit * 1000) {
        o->ids = xreallocarray(o->ids, (size_t)o->n + 1, sizeof(*o->ids));
        o->limits = xreallocarray(o->limits, (size_t)o->n + 1, sizeof(*o->limits));
        o->nodes = xreallocarray(o->nodes, (size_t)o->n + 1, sizeof(*o->nodes));
        o->limits[o->n] = limit;
        memcpy(o->nodes[o->n], j->node, sizeof(o->nodes[0]));
        o->ids[o->n++] = j->id;
    }
    return 0;
}

/* Jobs placed longer ago than their walltime are stopped and fail; true when any was. */
static bool stop_overdue(struct loop *l, int64_t now, struct changed_nodes *nodes_changed)
{
    struct overdue o = {.queue = l->queue, .now = now};
    struct store_job_filter f = {.state = -1, .light = true,
                                 .states = 1u << STORE_JOB_ASSIGNED | 1u << STORE_JOB_RUNNING |
                                           1u << STORE_JOB_SWAPPED};
    bool changed = false;

    /* A job the queue does not know yet is looked at from the next pass on. */
    store_jobs(l->store, &f, collect_overdue, &o);
    for (int i = 0; i < o.n; i++) {
        char why[128];
        bool done;

        snprintf(why, sizeof(why), "walltime exceeded: ran past its walltime of %llds",
                 (long long)o.limits[i]);
        done = store_job_transition(l->store, o.ids[i],
                                    1u << STORE_JOB_ASSIGNED | 1u << STORE_JOB_RUNNING |
                                        1u << STORE_JOB_SWAPPED,
                                    STORE_JOB_FAILED, why, now) == 0;
        if (done && l->hooks.job_changed != NULL)
            l->hooks.job_changed(l->hooks.arg, o.ids[i]);
        if (done)
            changed_add(nodes_changed, o.nodes[i]);
        changed |= done;
    }
    free(o.ids);
    free(o.limits);
    free(o.nodes);
    return changed;
}

/* {"P": fair share in milli-GPUs} of the last pass, from what keep_shares kept. */
json_t *loop_fair_shares(struct loop *l)
{
    json_t *shares = loop_shares(l), *fs = json_object(), *v;
    const char *name;

    json_object_foreach(shares, name, v)
        json_object_set(fs, name, json_object_get(v, "fair_share_milli"));
    json_decref(shares);
    return fs;
}

static void pass(struct loop *l)
{
    /* A heartbeat that came while the last pass held the store was answered late. */
    struct snapshot s = {.now = wall_ms(), .node_timeout_ms = l->node_timeout_ms + l->held_ms,
                         .queue = l->queue, .cfg = pass_cfg};

    s.cfg.min_runtime = l->min_runtime_ms;
    struct sched_typical typical = {0};
    struct sched_cycle c;
    struct changed_nodes nodes_changed = {0};
    bool changed = false;

    changed |= stop_overdue(l, s.now, &nodes_changed);
    store_projects(l->store, add_project, &s);
    link_parents(&s);
    store_nodes(l->store, add_node, &s);
    for (int i = 0; i < s.nsilent; i++)
        changed |= requeue_silent(l, s.silent[i], &nodes_changed);
    silent_news(l, &s);
    /* A swapped or suspended job keeps its GPUs until it runs again or ends. */
    queue_read(l->queue, l->store,
               1u << STORE_JOB_PENDING | 1u << STORE_JOB_ASSIGNED | 1u << STORE_JOB_RUNNING |
                   1u << STORE_JOB_SWAPPED | 1u << STORE_JOB_SUSPENDED,
               add_job, &s);
    sample(l, &s);
    close_unschedulable(&s);
    typical_of(&s, &typical);
    if (s.njobs > 0 && s.cluster.nnodes == 0) {
        write_reasons(l, &s, NULL);
    } else if (s.njobs > 0 &&
               sched_cycle_init(&c, &s.cfg, &s.cluster, &typical, s.nprojects, s.njobs) == 0) {
        if (sched_cycle_run(&c, s.projects, s.nprojects, s.jobs, s.njobs, s.now) == 0) {
            changed |= apply(l, &s, &c, &nodes_changed);
            write_reasons(l, &s, &c);
            keep_shares(l, &s, &c);
        }
        sched_cycle_fini(&c);
    } else {
        keep_shares(l, &s, NULL);
    }
    sched_typical_fini(&typical);
    snapshot_fini(&s);
    if (changed && l->hooks.assignments_changed != NULL)
        l->hooks.assignments_changed(l->hooks.arg, nodes_changed.names ? nodes_changed.names : "");
    free(nodes_changed.names);
}

/* ---- the thread -------------------------------------------------------------------------- */

static void *run(void *arg)
{
    struct loop *l = arg;

    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        struct timespec ts, t0, t1;

        l->poked = false;
        pthread_mutex_unlock(&l->mu);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        pass(l);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        /* The last passes' time, the older halved: what heartbeats may have waited for. */
        l->held_ms = l->held_ms / 2 + (t1.tv_sec - t0.tv_sec) * 1000 +
                     (t1.tv_nsec - t0.tv_nsec) / 1000000;
        if (l->hooks.cycle_done != NULL)
            l->hooks.cycle_done(l->hooks.arg, (double)(t1.tv_sec - t0.tv_sec) +
                                                  (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
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

int loop_start(struct store *s, int node_timeout_s, int min_runtime_s,
               const struct loop_hooks *hooks, struct loop **out)
{
    struct loop *l = xcalloc(1, sizeof(*l));
    pthread_condattr_t ca;

    l->store = s;
    l->node_timeout_ms = (int64_t)node_timeout_s * 1000;
    l->min_runtime_ms = (int64_t)min_runtime_s * 1000;
    l->hooks = *hooks;
    l->history = history_new();
    l->queue = queue_new();
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&l->thread, NULL, run, l) != 0) {
        history_free(l->history);
        queue_free(l->queue);
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
    free(l->was_silent);
    free(l->said_ids);
    free(l->said);
    history_free(l->history);
    queue_free(l->queue);
    json_decref(l->shares);
    free(l);
}

/* ---- what the GPUs hold ------------------------------------------------------------------- */

static json_t *gpu_json(const struct sched_gpu *g)
{
    return json_pack("{s:i, s:I, s:[]}", "allocated_milli", SCHED_MILLI - g->free_milli,
                     "memory_allocated_bytes", (json_int_t)(g->mem_bytes - g->mem_free_bytes),
                     "jobs");
}

json_t *loop_allocations(struct store *st)
{
    struct snapshot s = {.now = wall_ms(), .node_timeout_ms = INT64_MAX, .cfg = pass_cfg};
    json_t *out = json_object();
    int first_swapped = 0;

    store_projects(st, add_project, &s);
    store_nodes(st, add_node, &s);
    for (int state = STORE_JOB_ASSIGNED; state <= STORE_JOB_SUSPENDED; state++) {
        struct store_job_filter f = {.state = state};

        if (state == STORE_JOB_SWAPPED)
            first_swapped = s.njobs;
        store_jobs(st, &f, add_job, &s);
    }
    for (int i = 0; i < s.cluster.nnodes; i++) {
        const struct sched_node *n = &s.cluster.nodes[i];
        json_t *gpus = json_array();

        for (int g = 0; g < n->ngpu; g++)
            json_array_append_new(gpus, gpu_json(&n->gpu[g]));
        json_object_set_new(out, s.node_names[i], gpus);
    }
    for (int k = 0; k < s.njobs; k++) {
        const struct sched_job *j = &s.jobs[k];
        struct sched_pod pod;

        sched_cycle_pod(&s.cfg, j, &pod);
        for (int r = 0; j->state == SCHED_JOB_RUNNING && r < j->replicas; r++)
            for (int i = 0; i < j->bind[r].choice.ngpu; i++) {
                json_t *gpus = json_object_get(out, s.node_names[j->bind[r].node]);

                json_array_append_new(
                    json_object_get(json_array_get(gpus, j->bind[r].choice.gpu[i]), "jobs"),
                    json_pack("{s:I, s:I, s:i, s:b, s:s}", "id", (json_int_t)s.ids[k], "user_id",
                              (json_int_t)s.owners[k], "milli", pod.gpu_milli, "swapped",
                              k >= first_swapped, "project", s.names[j->project]));
            }
    }
    snapshot_fini(&s);
    return out;
}
