/*
 * The /metrics exposition.  Gauges are read at each scrape from the store (projects, nodes and
 * their last measures, placed jobs, job counts) and from the loop (fair shares), so they never
 * disagree with what the API answers at the same moment.  The histograms are kept here, under
 * one mutex: a request or a pass adds one observation, a scrape copies them out.
 */
#include "server/metrics.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "server/loop.h"
#include "server/store.h"

#define NBUCKETS_MAX 20
/* Distinct (method, route, status) series kept; past that they count as route "other". */
#define REQUEST_SERIES_MAX 256

static const double cycle_le[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                  0.1,   0.25,   0.5,   1,    2.5,   5};
static const double request_le[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                    0.25,   0.5,   1,      2.5,   5,    10,    60,    300};

struct histogram {
    uint64_t bucket[NBUCKETS_MAX]; /* observations at or below each bound, not cumulated */
    uint64_t count;
    double sum;
};

struct request_series {
    char method[8], route[64];
    int status;
    struct histogram h;
};

struct metrics {
    pthread_mutex_t mu;
    struct histogram cycle;
    struct request_series *req;
    int nreq, capreq;
};

#define NLE(a) ((int)(sizeof(a) / sizeof((a)[0])))

struct metrics *metrics_new(void)
{
    struct metrics *m = xcalloc(1, sizeof(*m));

    pthread_mutex_init(&m->mu, NULL);
    return m;
}

void metrics_free(struct metrics *m)
{
    if (m == NULL)
        return;
    pthread_mutex_destroy(&m->mu);
    free(m->req);
    free(m);
}

static void observe(struct histogram *h, const double *le, int n, double v)
{
    int i = 0;

    while (i < n && v > le[i])
        i++;
    if (i < n)
        h->bucket[i]++;
    h->count++;
    h->sum += v;
}

void metrics_cycle(struct metrics *m, double seconds)
{
    pthread_mutex_lock(&m->mu);
    observe(&m->cycle, cycle_le, NLE(cycle_le), seconds);
    pthread_mutex_unlock(&m->mu);
}

static struct request_series *request_series(struct metrics *m, const char *method,
                                             const char *route, int status)
{
    for (int i = 0; i < m->nreq; i++) {
        struct request_series *r = &m->req[i];

        if (r->status == status && strcmp(r->method, method) == 0 && strcmp(r->route, route) == 0)
            return r;
    }
    if (m->nreq == REQUEST_SERIES_MAX)
        return strcmp(route, "other") == 0 ? &m->req[m->nreq - 1]
                                           : request_series(m, method, "other", status);
    if (m->nreq == m->capreq) {
        m->capreq = m->capreq ? 2 * m->capreq : 32;
        m->req = xreallocarray(m->req, (size_t)m->capreq, sizeof(*m->req));
    }
    m->req[m->nreq] = (struct request_series){.status = status};
    snprintf(m->req[m->nreq].method, sizeof(m->req[0].method), "%s", method);
    snprintf(m->req[m->nreq].route, sizeof(m->req[0].route), "%s", route);
    return &m->req[m->nreq++];
}

void metrics_request(struct metrics *m, const char *method, const char *route, int status,
                     double seconds)
{
    pthread_mutex_lock(&m->mu);
    observe(&request_series(m, method, route, status)->h, request_le, NLE(request_le), seconds);
    pthread_mutex_unlock(&m->mu);
}

void metrics_escape(const char *s, char *out, size_t outlen)
{
    size_t n = 0;

    for (; *s != '\0' && n + 3 < outlen; s++) {
        if (*s == '\\' || *s == '"') {
            out[n++] = '\\';
            out[n++] = *s;
        } else if (*s == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else {
            out[n++] = *s;
        }
    }
    out[n] = '\0';
}

/* ---- writing the exposition ---------------------------------------------------------------- */

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A sample with one label. */
static void sample1(FILE *f, const char *name, const char *label, const char *value, double v)
{
    char esc[512];

    metrics_escape(value, esc, sizeof(esc));
    fprintf(f, "%s{%s=\"%s\"} %.17g\n", name, label, esc, v);
}

static void histogram(FILE *f, const char *name, const char *labels, const struct histogram *h,
                      const double *le, int n)
{
    uint64_t cum = 0;

    for (int i = 0; i < n; i++) {
        cum += h->bucket[i];
        fprintf(f, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, *labels ? "," : "", le[i],
                (unsigned long long)cum);
    }
    fprintf(f, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, *labels ? "," : "",
            (unsigned long long)h->count);
    fprintf(f, "%s_sum%s%s%s %.17g\n", name, *labels ? "{" : "", labels, *labels ? "}" : "",
            h->sum);
    fprintf(f, "%s_count%s%s%s %llu\n", name, *labels ? "{" : "", labels, *labels ? "}" : "",
            (unsigned long long)h->count);
}

static void projects_collect(const struct store_project *p, void *arg)
{
    json_array_append_new(arg, json_pack("{s:s, s:I, s:I}", "name", p->name, "deserved",
                                         (json_int_t)p->deserved_milli, "limit",
                                         (json_int_t)p->limit_milli));
}

static double milli_of(json_t *obj, const char *key, const char *field)
{
    return (double)json_integer_value(json_object_get(json_object_get(obj, key), field)) / 1000;
}

static void write_projects(FILE *f, const struct metrics_view *v)
{
    static const struct {
        const char *name, *help;
    } fam[] = {
        {"gpool_project_deserved_gpus", "GPUs the project is guaranteed (its deserved quota)."},
        {"gpool_project_fair_share_gpus",
         "GPUs the scheduler's last pass found to be the project's fair share."},
        {"gpool_project_allocated_gpus", "GPUs allocated to the project's placed jobs."},
        {"gpool_project_used_gpus",
         "GPUs the project's running jobs use, by their GPUs' last measures."},
    };
    json_t *projects = json_array(), *held = NULL, *fair = loop_fair_shares(v->loop), *p;
    size_t i;

    store_projects(v->store, projects_collect, projects);
    if (store_project_holdings(v->store, &held) != 0) {
        json_decref(held);
        held = json_object();
    }
    for (int k = 0; k < 4; k++) {
        family(f, fam[k].name, "gauge", fam[k].help);
        json_array_foreach(projects, i, p) {
            const char *name = json_string_value(json_object_get(p, "name"));
            double val = k == 0   ? (double)json_integer_value(json_object_get(p, "deserved")) / 1000
                         : k == 1 ? (double)json_integer_value(json_object_get(fair, name)) / 1000
                         : k == 2 ? milli_of(held, name, "allocated_milli")
                                  : milli_of(held, name, "used_milli");

            sample1(f, fam[k].name, "project", name, val);
        }
    }
    json_decref(projects);
    json_decref(held);
    json_decref(fair);
}

struct gpu_ctx {
    FILE *f;
    json_t *alloc;
    int64_t now_ms, node_timeout_ms;
    int family; /* which family is being written */
};

/* The GPU families, in the order they are written. */
static const struct {
    const char *name, *help;
} gpu_fam[] = {
    {"gpool_gpu_allocated_milli", "GPU compute allocated to jobs, in thousandths of the GPU."},
    {"gpool_gpu_borrowed_milli",
     "GPU compute lent to other jobs while its owners leave it idle, in thousandths of the GPU."},
    {"gpool_gpu_memory_allocated_bytes", "GPU memory allocated to jobs."},
    {"gpool_gpu_utilization_ratio", "How busy the GPU was at the node's last measure (0 to 1)."},
    {"gpool_gpu_memory_used_bytes", "GPU memory in use at the node's last measure."},
};

static json_t *measure_of(const struct store_node *n, size_t index)
{
    size_t k;
    json_t *m;

    json_array_foreach(n->telemetry, k, m) {
        if (json_integer_value(json_object_get(m, "index")) == (json_int_t)index)
            return m;
    }
    return NULL;
}

static void gpu_samples(const struct store_node *n, void *arg)
{
    struct gpu_ctx *x = arg;
    char node[300], uuid[300], model[300];
    size_t i;
    json_t *g;

    metrics_escape(n->name, node, sizeof(node));
    json_array_foreach(n->gpus, i, g) {
        json_t *a = json_array_get(json_object_get(x->alloc, n->name), i), *m = measure_of(n, i);
        const char *key = x->family == 3 ? "utilization_pct" : "memory_used_bytes";
        double v;

        metrics_escape(json_string_value(json_object_get(g, "uuid")), uuid, sizeof(uuid));
        metrics_escape(json_string_value(json_object_get(g, "model")), model, sizeof(model));
        if (x->family == 0)
            v = (double)json_integer_value(json_object_get(a, "allocated_milli"));
        else if (x->family == 1)
            v = (double)json_integer_value(json_object_get(a, "borrowed_milli"));
        else if (x->family == 2)
            v = (double)json_integer_value(json_object_get(a, "memory_allocated_bytes"));
        else if (m == NULL || !json_is_number(json_object_get(m, key)))
            continue; /* not measured: no sample rather than a false zero */
        else
            v = json_number_value(json_object_get(m, key)) / (x->family == 3 ? 100 : 1);
        fprintf(x->f, "%s{node=\"%s\",gpu=\"%zu\",uuid=\"%s\",model=\"%s\"} %.17g\n",
                gpu_fam[x->family].name, node, i, uuid, model, v);
    }
}

static void node_up(const struct store_node *n, void *arg)
{
    struct gpu_ctx *x = arg;

    sample1(x->f, "gpool_node_up", "node", n->name,
            x->now_ms - n->heartbeat_ms <= x->node_timeout_ms ? 1 : 0);
}

static void write_gpus(FILE *f, const struct metrics_view *v)
{
    struct gpu_ctx x = {f, loop_allocations(v->store), v->now_ms, v->node_timeout_ms, 0};

    family(f, "gpool_node_up", "gauge", "1 while the node's agent sends heartbeats, else 0.");
    store_nodes(v->store, node_up, &x);
    for (x.family = 0; x.family < (int)(sizeof(gpu_fam) / sizeof(gpu_fam[0])); x.family++) {
        family(f, gpu_fam[x.family].name, "gauge", gpu_fam[x.family].help);
        store_nodes(v->store, gpu_samples, &x);
    }
    json_decref(x.alloc);
}

static void write_jobs(FILE *f, const struct metrics_view *v)
{
    int64_t counts[STORE_JOB_CANCELLED + 1];

    family(f, "gpool_jobs", "gauge", "Jobs in the store, by state.");
    if (store_job_counts(v->store, counts) != 0)
        return;
    for (int s = 0; s <= STORE_JOB_CANCELLED; s++)
        sample1(f, "gpool_jobs", "state", store_job_state_name((enum store_job_state)s),
                (double)counts[s]);
}

static void write_histograms(FILE *f, struct metrics *m)
{
    struct histogram cycle;
    struct request_series *req;
    int n;

    pthread_mutex_lock(&m->mu);
    cycle = m->cycle;
    n = m->nreq;
    req = xcalloc((size_t)n + 1, sizeof(*req));
    memcpy(req, m->req, (size_t)n * sizeof(*req));
    pthread_mutex_unlock(&m->mu);
    family(f, "gpool_scheduler_cycle_seconds", "histogram",
           "How long each pass of the scheduler loop took.");
    histogram(f, "gpool_scheduler_cycle_seconds", "", &cycle, cycle_le, NLE(cycle_le));
    family(f, "gpool_http_request_duration_seconds", "histogram",
           "API requests by method, route and status: time from the request to its answer.");
    for (int i = 0; i < n; i++) {
        char labels[256], method[32], route[160];

        metrics_escape(req[i].method, method, sizeof(method));
        metrics_escape(req[i].route, route, sizeof(route));
        snprintf(labels, sizeof(labels), "method=\"%s\",route=\"%s\",status=\"%d\"", method,
                 route, req[i].status);
        histogram(f, "gpool_http_request_duration_seconds", labels, &req[i].h, request_le,
                  NLE(request_le));
    }
    free(req);
}

char *metrics_render(struct metrics *m, const struct metrics_view *v, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);

    if (f == NULL)
        return NULL;
    write_projects(f, v);
    write_gpus(f, v);
    write_jobs(f, v);
    write_histograms(f, m);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
