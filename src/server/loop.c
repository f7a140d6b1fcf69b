/*
 * The scheduler loop.  Each pass reads the store into a snapshot (projects, the nodes whose
 * agents are alive, the jobs waiting, assigned or running), runs one cycle of src/sched, and
 * writes back what it decided: assignments, jobs stopped to make room, and the reason of every
 * job that still waits.  A node whose agent has been silent for the node timeout is gone: its
 * jobs go back to the queue.
 *
 * Thin provisioning and swapping run live: a job may borrow a GPU whose jobs idle (the API's
 * idle detection), and a job displaced for another is swapped out through its agent when it can
 * be.  A swapped job's process stays on its node bound to its GPUs, so it resumes only there;
 * jobs are not moved between nodes (no consolidation).
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
    struct loop_cfg cfg;
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
    int64_t *used_milli, *swapped_milli, *borrowed_milli;
    /* Of each node: its last heartbeat if it measured each job's processes, else 0. */
    int64_t *heard_ms;
    json_t *job_mem; /* {"ID": GPU memory the job's processes use on each GPU, bytes} */
    uint64_t largest_gpu_mem;
    bool *project_no_lend, *project_no_borrow;
    const struct loop_cfg *lcfg; /* NULL: nothing idles, no policy */
};

/* The cycle as the server runs it; loop_cfg turns lending and swapping on.  Jobs are not moved
 * between nodes: a swapped process stays where it is. */
static const struct sched_cycle_cfg pass_cfg = {
    .placement = SCHED_POLICY_GPOOL, .fractions = true, .quotas = true, .reclaim = true,
    .preempt = true, .min_runtime = 600000, .idle_window = 300000, .swap_in_place = true};

void loop_cfg_defaults(struct loop_cfg *cfg)
{
    *cfg = (struct loop_cfg){.node_timeout_s = 30, .min_runtime_s = 600, .lend = true,
                             .swap = true,
                             .class_no_lend = 1u << SCHED_PRIO_INFERENCE,
                             .class_no_borrow = 1u << SCHED_PRIO_INFERENCE |
                                                1u << SCHED_PRIO_INTERACTIVE};
}

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
        s->project_no_lend = xreallocarray(s->project_no_lend, (size_t)s->cap, sizeof(bool));
        s->project_no_borrow = xreallocarray(s->project_no_borrow, (size_t)s->cap, sizeof(bool));
    }
    s->project_no_lend[s->nprojects] = p->no_lend;
    s->project_no_borrow[s->nprojects] = p->no_borrow;
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

/* Keeps what a node measured of each job's processes (the most on any of its GPUs); false when
 * it does not measure jobs one by one. */
static bool job_measures(struct snapshot *s, const struct store_node *n)
{
    bool each = json_array_size(n->telemetry) > 0;
    size_t i, k;
    json_t *g, *e;

    json_array_foreach(n->telemetry, i, g) {
        json_t *jobs = json_object_get(g, "jobs");

        each &= json_is_array(jobs);
        json_array_foreach(jobs, k, e) {
            char key[24];
            json_int_t bytes = (json_int_t)json_number_value(json_object_get(e, "memory_used_bytes"));

            snprintf(key, sizeof(key), "%lld",
                     (long long)json_integer_value(json_object_get(e, "id")));
            if (s->job_mem == NULL)
                s->job_mem = json_object();
            if (bytes > json_integer_value(json_object_get(s->job_mem, key)))
                json_object_set_new(s->job_mem, key, json_integer(bytes));
        }
    }
    return each;
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
        s->heard_ms = xreallocarray(s->heard_ms, (size_t)s->capn, sizeof(int64_t));
        s->borrowed_milli = xreallocarray(s->borrowed_milli, (size_t)s->capn, sizeof(int64_t));
    }
    s->borrowed_milli[s->cluster.nnodes] = 0;
    s->heard_ms[s->cluster.nnodes] = job_measures(s, n) ? n->heartbeat_ms : 0;
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
        if (mem > s->largest_gpu_mem)
            s->largest_gpu_mem = mem;
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

static const char *swap_field(const struct store_job *j, const char *key)
{
    const char *v = json_string_value(json_object_get(j->swap, key));

    return v != NULL ? v : "";
}

/*
 * How the cycle sees a placed job.  A job the scheduler (or its lender) swapped out, or is
 * swapping out, gives its GPUs up and holds host memory on its node until the cycle resumes it;
 * one a user swapped out keeps its place.  A borrower holds CPU and memory, not GPU shares.
 */
static enum sched_job_state placed_state(const struct store_job *j)
{
    bool by_policy = swap_field(j, "why")[0] != '\0';
    const char *want = swap_field(j, "want");

    if (by_policy && j->state == STORE_JOB_SWAPPED && strcmp(want, "in") != 0)
        return SCHED_JOB_SWAPPED;
    if (by_policy && j->state == STORE_JOB_RUNNING && strcmp(want, "out") == 0 &&
        swap_field(j, "error")[0] == '\0')
        return SCHED_JOB_SWAPPED;
    return SCHED_JOB_RUNNING;
}

/* GPU memory a job uses on each of its GPUs: measured while it runs, what it moved to host while
 * swapped out, and before it runs what it may take (its cap). */
static uint64_t job_gpu_mem(const struct snapshot *s, const struct store_job *j,
                            const struct jobspec *spec, enum sched_job_state st)
{
    char key[24];

    if (st == SCHED_JOB_SWAPPED) {
        json_int_t bytes = json_integer_value(json_object_get(j->swap, "bytes"));
        int gpus = spec->replicas * (spec->req.kind == SCHED_REQ_WHOLE ? spec->req.gpus : 1);

        return bytes > 0 && gpus > 0 ? (uint64_t)bytes / (uint64_t)gpus : 0;
    }
    if (j->state == STORE_JOB_PENDING) {
        if (spec->req.kind == SCHED_REQ_MEMORY)
            return spec->req.mem_bytes;
        if (spec->req.kind == SCHED_REQ_FRACTION)
            return s->largest_gpu_mem / SCHED_MILLI * (uint64_t)spec->req.milli;
        return spec->req.kind == SCHED_REQ_WHOLE ? s->largest_gpu_mem : 0;
    }
    snprintf(key, sizeof(key), "%lld", (long long)j->id);
    return (uint64_t)json_integer_value(json_object_get(s->job_mem, key));
}

/* Since when a running job idles, as the API's idle detection says (-1: it does not). */
static int64_t job_idle_since(const struct snapshot *s, const struct sched_job *sj)
{
    int64_t heard = INT64_MAX, since;

    if (s->lcfg == NULL || s->lcfg->idle == NULL || sj->borrowed)
        return -1;
    for (int r = 0; r < sj->replicas; r++)
        if (s->heard_ms[sj->bind[r].node] < heard)
            heard = s->heard_ms[sj->bind[r].node];
    since = heard > 0 ? idle_since(s->lcfg->idle, sj->id, sj->started, heard) : 0;
    return since > 0 ? since : -1;
}

static int add_job(const struct store_job *j, void *arg)
{
    struct snapshot *s = arg;
    struct jobspec spec;
    struct sched_job *sj;
    int p = project_index(s, j->project);
    unsigned cls;

    if (p < 0 || queue_spec(s->queue, j, &spec) != 0)
        return 0;
    if (s->njobs == s->capj) {
        s->capj = s->capj ? 2 * s->capj : 256;
        s->jobs = xreallocarray(s->jobs, (size_t)s->capj, sizeof(*s->jobs));
        s->ids = xreallocarray(s->ids, (size_t)s->capj, sizeof(*s->ids));
        s->owners = xreallocarray(s->owners, (size_t)s->capj, sizeof(*s->owners));
    }
    sj = &s->jobs[s->njobs];
    cls = 1u << spec.priority;
    *sj = (struct sched_job){
        .id = j->id, .project = p, .cpu_milli = spec.cpu_milli, .mem_mib = spec.mem_mib,
        .req = spec.req, .replicas = spec.replicas, .priority = spec.priority,
        .preemptible = spec.preemptible, .swappable = spec.swappable,
        .submitted = j->submitted_ms, .state = SCHED_JOB_PENDING, .idle_since = -1,
        .started = j->started_ms,
        .no_lend = s->project_no_lend[p] || (s->lcfg != NULL && (s->lcfg->class_no_lend & cls)),
        .no_borrow =
            s->project_no_borrow[p] || (s->lcfg != NULL && (s->lcfg->class_no_borrow & cls))};
    sj->bind = xcalloc((size_t)spec.replicas, sizeof(*sj->bind));
    if (j->state != STORE_JOB_PENDING) {
        struct sched_pod pod;

        /* Held capacity: on a node that is gone, it is requeued by the pass instead. */
        if (parse_bindings(s, j, sj->bind, spec.replicas) != 0) {
            free(sj->bind);
            return 0;
        }
        sj->state = placed_state(j);
        sj->borrowed = j->borrowed;
        sched_cycle_pod(&s->cfg, sj, &pod);
        sj->gpu_mem_used = job_gpu_mem(s, j, &spec, sj->state);
        for (int r = 0; r < spec.replicas; r++) {
            struct sched_node *n = &s->cluster.nodes[sj->bind[r].node];

            if (sj->state == SCHED_JOB_SWAPPED || sj->borrowed) {
                /* Host memory only: its request, and what it moved there. */
                n->cpu_free -= sj->state == SCHED_JOB_SWAPPED ? 0 : pod.cpu_milli;
                n->mem_free -= pod.mem_mib;
                if (sj->state == SCHED_JOB_SWAPPED) {
                    n->mem_free -= (int64_t)(sj->gpu_mem_used * sj->bind[r].choice.ngpu >> 20);
                    s->swapped_milli[sj->bind[r].node] += (int64_t)pod.gpu_milli * pod.num_gpu;
                } else {
                    s->borrowed_milli[sj->bind[r].node] += (int64_t)pod.gpu_milli * pod.num_gpu;
                }
                continue;
            }
            sched_node_bind(n, &pod, &sj->bind[r].choice);
            if (j->state == STORE_JOB_SWAPPED)
                s->swapped_milli[sj->bind[r].node] += (int64_t)pod.gpu_milli * pod.num_gpu;
        }
        sj->idle_since = sj->state == SCHED_JOB_RUNNING && j->state == STORE_JOB_RUNNING
                             ? job_idle_since(s, sj)
                             : -1;
    } else {
        sj->gpu_mem_used = job_gpu_mem(s, j, &spec, SCHED_JOB_PENDING);
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
    free(s->heard_ms);
    free(s->borrowed_milli);
    free(s->project_no_lend);
    free(s->project_no_borrow);
    json_decref(s->job_mem);
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
    char nodes[1024], gpus[512], why[192];
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

        char why[128];

        if (a->for_job >= 0)
            snprintf(why, sizeof(why), "to make room for job %lld",
                     (long long)s->ids[a->for_job]);
        else
            snprintf(why, sizeof(why), "%s", "its lender needs its GPU memory back");
        /* Swaps are asked for at once, before the placements they make room for are written,
         * so that an agent never sees the one without the other. */
        if (a->kind == SCHED_ACT_SWAP_OUT || a->kind == SCHED_ACT_RESUME) {
            char nodes[1024], gpus[512];
            bool out = a->kind == SCHED_ACT_SWAP_OUT;

            if (store_job_swap_want(l->store, s->ids[a->job], out ? "out" : "in",
                                    out ? why : "room again") != 0)
                continue;
            encode_bindings(s, j, nodes, sizeof(nodes), gpus, sizeof(gpus));
            changed_add(nodes_changed, nodes);
            if (l->hooks.job_changed != NULL)
                l->hooks.job_changed(l->hooks.arg, s->ids[a->job]);
            changed = true;
            continue;
        }
        if (a->kind != SCHED_ACT_START && a->kind != SCHED_ACT_PREEMPT)
            continue;
        encode_bindings(s, j, t[n].nodes, sizeof(t[n].nodes), t[n].gpus, sizeof(t[n].gpus));
        p[n] = (struct store_placement){.id = s->ids[a->job], .node = t[n].nodes,
                                        .gpus = t[n].gpus, .reason = t[n].why,
                                        .borrowed = a->borrowed};
        if (a->kind == SCHED_ACT_START) {
            allocation_of(s, j, &p[n].gpu_milli, &p[n].alloc_milli);
        } else {
            p[n].requeue = true;
            snprintf(t[n].why, sizeof(t[n].why), "stopped %s; queued again", why);
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
 * the store has them at the start of the pass. */
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
        by_pool[p].borrowed += s->borrowed_milli[i];
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
                         .queue = l->queue, .cfg = pass_cfg, .lcfg = &l->cfg};

    s.cfg.min_runtime = (int64_t)l->cfg.min_runtime_s * 1000;
    s.cfg.lend = l->cfg.lend && l->cfg.idle != NULL;
    s.cfg.swap = l->cfg.swap;
    s.cfg.class_min_set = l->cfg.class_min_set;
    for (int p = 0; p < SCHED_PRIORITIES; p++)
        s.cfg.class_min_runtime[p] = l->cfg.class_min_runtime_s[p] * 1000;
    if (l->cfg.idle != NULL)
        s.cfg.idle_window = l->cfg.idle->window_ms;
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

int loop_start(struct store *s, const struct loop_cfg *cfg, const struct loop_hooks *hooks,
               struct loop **out)
{
    struct loop *l = xcalloc(1, sizeof(*l));
    pthread_condattr_t ca;

    l->store = s;
    l->cfg = *cfg;
    l->node_timeout_ms = (int64_t)cfg->node_timeout_s * 1000;
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
    return json_pack("{s:i, s:I, s:i, s:i, s:[]}", "allocated_milli", SCHED_MILLI - g->free_milli,
                     "memory_allocated_bytes", (json_int_t)(g->mem_bytes - g->mem_free_bytes),
                     "borrowed_milli", 0, "swapped_milli", 0, "jobs");
}

json_t *loop_allocations(struct store *st)
{
    struct snapshot s = {.now = wall_ms(), .node_timeout_ms = INT64_MAX, .cfg = pass_cfg};
    json_t *out = json_object();
    int first_swapped = 0, first_suspended = 0;

    store_projects(st, add_project, &s);
    store_nodes(st, add_node, &s);
    for (int state = STORE_JOB_ASSIGNED; state <= STORE_JOB_SUSPENDED; state++) {
        struct store_job_filter f = {.state = state};

        if (state == STORE_JOB_SWAPPED)
            first_swapped = s.njobs;
        if (state == STORE_JOB_SUSPENDED)
            first_suspended = s.njobs;
        store_jobs(st, &f, add_job, &s);
    }
    for (int i = 0; i < s.cluster.nnodes; i++) {
        const struct sched_node *n = &s.cluster.nodes[i];
        json_t *gpus = json_array();

        for (int g = 0; g < n->ngpu; g++)
            json_array_append_new(gpus, gpu_json(&n->gpu[g]));
        json_object_set_new(out, s.node_names[i], gpus);
    }
    /* Jobs swapped out by the scheduler hold no share, but are shown on the GPUs they left. */
    for (int k = 0; k < s.njobs; k++) {
        const struct sched_job *j = &s.jobs[k];
        bool swapped = j->state == SCHED_JOB_SWAPPED || (k >= first_swapped && k < first_suspended);
        struct sched_pod pod;

        sched_cycle_pod(&s.cfg, j, &pod);
        for (int r = 0; j->state != SCHED_JOB_PENDING && r < j->replicas; r++)
            for (int i = 0; i < j->bind[r].choice.ngpu; i++) {
                json_t *gpus = json_object_get(out, s.node_names[j->bind[r].node]);
                json_t *g = json_array_get(gpus, j->bind[r].choice.gpu[i]);
                const char *sum = swapped       ? "swapped_milli"
                                  : j->borrowed ? "borrowed_milli"
                                                : NULL;

                if (sum != NULL)
                    json_object_set_new(g, sum,
                                        json_integer(json_integer_value(json_object_get(g, sum)) +
                                                     pod.gpu_milli));
                json_array_append_new(
                    json_object_get(g, "jobs"),
                    json_pack("{s:I, s:I, s:i, s:b, s:b, s:s}", "id", (json_int_t)s.ids[k],
                              "user_id", (json_int_t)s.owners[k], "milli", pod.gpu_milli,
                              "swapped", swapped, "borrowed", j->borrowed, "project",
                              s.names[j->project]));
            }
    }
    snapshot_fini(&s);
    return out;
}
