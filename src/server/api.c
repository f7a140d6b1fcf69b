/*
 * The HTTP/JSON API under /api/v1, on libmicrohttpd with its internal epoll thread.  A request
 * body is gathered (up to API_BODY_MAX) and handled whole; every answer is JSON, errors as
 * {"error": {"code", "message", "field"}} with their HTTP status, except a job's log (its bytes)
 * and the event stream (Server-Sent Events).
 */
#include "server/api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "server/auth.h"
#include "server/events.h"
#include "server/jobspec.h"
#include "server/loop.h"
#include "server/metrics.h"
#include "server/openapi.h"
#include "server/usage.h"
#include "server/shares.h"
#include "server/web.h"

#define API_BODY_MAX (1 << 20)
#define LIST_MAX 1000
#define LOG_READ_MAX (1 << 20)
#define SESSION_COOKIE "gpool_session"
#define SESSION_S (12 * 3600)

struct request {
    struct timespec t0; /* when it came, for the request-time histogram */
    char *body;
    size_t len;
    bool too_big;
    /* A submission or an agent's report waiting for its group commit, its connection suspended
     * meanwhile. */
    bool queued, done, is_report;
    int rc;
    struct MHD_Connection *conn;
    struct store_job job;
    struct store_report report; /* its node, swap and requeue point into the fields below */
    char *report_node, *report_swap, report_requeue[256];
    /* An agent's long-poll, suspended until assignments change or the deadline passes. */
    bool waiting;
    int64_t deadline_ms;
    uint64_t since; /* the generation the agent has */
    char node[129];
};

/* An answer: JSON, or a response made whole (a log's bytes, an event stream, a cookie). */
struct reply {
    int status;
    json_t *body;
    struct MHD_Response *resp;
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct reply error_reply(const struct api_error *e)
{
    return (struct reply){e->status, json_pack("{s:{s:s, s:s, s:s}}", "error", "code", e->code,
                                               "message", e->message, "field", e->field), NULL};
}

static struct reply verror(int status, const char *code, const char *field, const char *fmt,
                           va_list ap) __attribute__((format(printf, 4, 0)));

static struct reply verror(int status, const char *code, const char *field, const char *fmt,
                           va_list ap)
{
    struct api_error e;
    char msg[256];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    api_error_set(&e, status, code, field, "%s", msg);
    return error_reply(&e);
}

static struct reply fail(int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static struct reply fail(int status, const char *code, const char *fmt, ...)
{
    struct reply r;
    va_list ap;

    va_start(ap, fmt);
    r = verror(status, code, "", fmt, ap);
    va_end(ap);
    return r;
}

static struct reply bad_field(const char *field, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* 400 invalid_field for one field of the request. */
static struct reply bad_field(const char *field, const char *fmt, ...)
{
    struct reply r;
    va_list ap;

    va_start(ap, fmt);
    r = verror(400, "invalid_field", field, fmt, ap);
    va_end(ap);
    return r;
}

/* ---- authentication ---------------------------------------------------------------------- */

static bool is(const char *method, const char *want)
{
    return strcmp(method, want) == 0;
}

/*
 * Who asks: the bearer token's user, or (browsers cannot send Authorization with EventSource)
 * the session cookie's, which is taken for GET requests and to end the session only.  0, or -1
 * with the refusal in *err.
 */
static int authenticate(struct api *a, struct MHD_Connection *c, const char *url,
                        const char *method, struct store_user *u, struct reply *err)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const char *cookie = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, SESSION_COOKIE);
    char hash[AUTH_HASH_LEN];

    if (h != NULL || cookie == NULL) {
        if (h != NULL && strncmp(h, "Bearer ", 7) == 0) {
            auth_token_hash(h + 7, hash);
            if (store_token_user(a->store, hash, u) == 0)
                return 0;
        }
        *err = fail(401, "unauthorized", "%s",
                    "a valid token is needed: Authorization: Bearer TOKEN");
        return -1;
    }
    if (!is(method, "GET") && !(is(method, "DELETE") && strcmp(url, "/api/v1/session") == 0)) {
        *err = fail(401, "unauthorized", "%s",
                    "a session cookie is taken for GET requests only: send Authorization: "
                    "Bearer TOKEN");
        return -1;
    }
    auth_token_hash(cookie, hash);
    if (store_session_user(a->store, hash, now_ms(), u) != 0) {
        *err = fail(401, "unauthorized", "%s",
                    "the session cookie is unknown or has expired: start a new session with "
                    "POST /api/v1/session");
        return -1;
    }
    return 0;
}

/* The request body as JSON (duplicate keys refused), or NULL. */
static json_t *body_json(const struct request *r)
{
    return json_loadb(r->body ? r->body : "", r->len, JSON_REJECT_DUPLICATES, NULL);
}

/* ---- jobs -------------------------------------------------------------------------------- */

static json_t *job_json(const struct store_job *j)
{
    json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:O}", "id",
                          (json_int_t)j->id, "name", j->name, "project", j->project, "user",
                          j->user, "state", store_job_state_name(j->state), "reason", j->reason,
                          "submitted_ms", (json_int_t)j->submitted_ms, "started_ms",
                          (json_int_t)j->started_ms, "finished_ms", (json_int_t)j->finished_ms,
                          "spec", j->spec ? j->spec : json_null());

    json_object_set_new(o, "node", json_string(j->node));
    json_object_set_new(o, "gpus", json_string(j->gpus));
    json_object_set_new(o, "exit_code", json_integer(j->exit_code));
    json_object_set_new(o, "attempts", json_integer(j->attempts));
    json_object_set_new(o, "failures", json_integer(j->failures));
    if (j->borrowed)
        json_object_set_new(o, "borrowed", json_true());
    if (j->swap != NULL)
        json_object_set(o, "swap", j->swap);
    if (j->control[0] != '\0')
        json_object_set_new(o, "control", json_string(j->control));
    return o;
}

/* A job as events carry it: without its spec. */
static json_t *job_event(const struct store_job *j)
{
    json_t *o = job_json(j);

    json_object_del(o, "spec");
    return o;
}

void api_job_changed(void *arg, int64_t id)
{
    struct api *a = arg;
    struct store_job j;

    if (store_job_get(a->store, id, &j) != 0)
        return;
    events_publish(a->events, "job", j.user_id, job_event(&j));
    store_job_clear(&j);
}

/* Checks a submission and fills r->job; 0, or -1 with the error reply in *err. */
static int submit_prepare(struct api *a, const struct store_user *u, struct request *r,
                          struct reply *err)
{
    struct jobspec spec;
    struct store_project p;
    struct store_job *j = &r->job;
    struct api_error e;
    json_t *obj = jobspec_decode(r->body, r->len, &spec, &e);

    if (obj == NULL) {
        *err = error_reply(&e);
        return -1;
    }
    if (store_project_get(a->store, spec.project, &p) != 0) {
        api_error_set(&e, 404, "unknown_project", "project", "no project '%s'", spec.project);
    } else if (u->role != STORE_ROLE_ADMIN && !store_is_member(a->store, spec.project, u->id)) {
        api_error_set(&e, 403, "forbidden", "project", "you are not a member of project '%s'",
                      spec.project);
    } else {
        memset(j, 0, sizeof(*j));
        snprintf(j->name, sizeof(j->name), "%s", spec.name[0] ? spec.name : "job");
        snprintf(j->project, sizeof(j->project), "%s", spec.project);
        j->user_id = u->id;
        snprintf(j->user, sizeof(j->user), "%s", u->name);
        j->state = STORE_JOB_PENDING;
        j->submitted_ms = now_ms();
        j->spec = obj;
        return 0;
    }
    json_decref(obj);
    *err = error_reply(&e);
    return -1;
}

/* ---- group commit -------------------------------------------------------------------------- */

static void resume_waiters(struct api *a, bool all, int64_t now);

#define COMMIT_BATCH 4096

/* When the committer next answers the long-polls whose wait is over (an agent's 1 s wait
 * lasted up to 2 s otherwise) and sees to the event streams: at least once a second; under qmu. */
static int64_t next_wake(struct api *a, int64_t now)
{
    int64_t wake = now + 1000;

    for (int i = 0; i < a->nwaiters; i++)
        if (a->waiters[i]->deadline_ms < wake)
            wake = a->waiters[i]->deadline_ms;
    return a->next_wake_ms = wake;
}

/* The submissions of a batch, in one transaction: each told to the event streams once stored. */
static void commit_jobs(struct api *a, struct request **batch, int n, struct store_job **jobs)
{
    int nj = 0, rc;

    for (int i = 0; i < n; i++)
        if (!batch[i]->is_report)
            jobs[nj++] = &batch[i]->job;
    if (nj == 0)
        return;
    rc = store_jobs_add(a->store, jobs, nj);
    /* Told before the connections resume: a resumed one may be answered and freed. */
    for (int i = 0; i < nj && rc == 0; i++)
        events_publish(a->events, "job", jobs[i]->user_id, job_event(jobs[i]));
    if (rc == 0)
        loop_poke(a->loop);
    for (int i = 0; i < n; i++)
        if (!batch[i]->is_report)
            batch[i]->rc = rc;
}

/* The agents' reports of a batch, in one transaction, copied into reports (which outlive the
 * requests); how many.  Each request's answer is its own report's result. */
static int commit_reports(struct api *a, struct request **batch, int n,
                          struct store_report *reports)
{
    int nr = 0, rc;

    for (int i = 0; i < n; i++)
        if (batch[i]->is_report)
            reports[nr++] = batch[i]->report;
    rc = store_jobs_report(a->store, reports, nr, now_ms());
    for (int i = 0, k = 0; i < n; i++)
        if (batch[i]->is_report) {
            reports[k].rc = rc != 0 ? rc : reports[k].rc;
            batch[i]->rc = reports[k++].rc;
        }
    return nr;
}

/* After the reports are answered: each job that changed is told to the event streams, and the
 * scheduler is woken when GPUs were given back (only ids and states are read: the requests the
 * node names pointed into may be gone). */
static void reports_told(struct api *a, const struct store_report *reports, int n)
{
    bool poke = false;

    for (int i = 0; i < n; i++) {
        if (reports[i].rc != 0)
            continue;
        poke |= reports[i].to >= STORE_JOB_SUCCEEDED || reports[i].requeue != NULL;
        api_job_changed(a, reports[i].id);
    }
    if (poke)
        loop_poke(a->loop);
}

/*
 * Submissions and agents' reports are committed together: whatever arrived while the last
 * commit synced goes into the next one, so one sync acknowledges many.  Each waits with its
 * connection suspended, and is answered once its transaction is committed and synced.
 */
static void *committer(void *arg)
{
    struct api *a = arg;
    struct request **batch = calloc(COMMIT_BATCH, sizeof(*batch));
    struct store_job **jobs = calloc(COMMIT_BATCH, sizeof(*jobs));
    struct store_report *reports = calloc(COMMIT_BATCH, sizeof(*reports));

    pthread_mutex_lock(&a->qmu);
    while (batch != NULL && jobs != NULL && reports != NULL) {
        int n = 0, nr;

        while (a->qn == 0 && !a->qstop) {
            int64_t wake = next_wake(a, now_ms());
            struct timespec ts = {.tv_sec = wake / 1000, .tv_nsec = wake % 1000 * 1000000};

            pthread_cond_timedwait(&a->qcond, &a->qmu, &ts);
            resume_waiters(a, false, now_ms());
            events_tick(a->events);
        }
        if (a->qn == 0 && a->qstop)
            break;
        /* A steady stream of reports leaves the queue never empty: the long-polls and the event
         * streams are seen to between batches too. */
        if (now_ms() >= a->next_wake_ms) {
            resume_waiters(a, false, now_ms());
            events_tick(a->events);
            next_wake(a, now_ms());
        }
        n = a->qn < COMMIT_BATCH ? a->qn : COMMIT_BATCH;
        memcpy(batch, a->q, (size_t)n * sizeof(*batch));
        memmove(a->q, a->q + n, (size_t)(a->qn - n) * sizeof(*a->q));
        a->qn -= n;
        pthread_mutex_unlock(&a->qmu);
        commit_jobs(a, batch, n, jobs);
        nr = commit_reports(a, batch, n, reports);
        for (int i = 0; i < n; i++) {
            batch[i]->done = true;
            MHD_resume_connection(batch[i]->conn);
        }
        reports_told(a, reports, nr);
        pthread_mutex_lock(&a->qmu);
    }
    pthread_mutex_unlock(&a->qmu);
    free(batch);
    free(jobs);
    free(reports);
    return NULL;
}

static int enqueue(struct api *a, struct request *r)
{
    int rc = 0;

    pthread_mutex_lock(&a->qmu);
    if (a->qstop)
        rc = -ESHUTDOWN;
    else if (a->qn == a->qcap) {
        int cap = a->qcap ? 2 * a->qcap : 1024;
        struct request **q = realloc(a->q, (size_t)cap * sizeof(*q));

        if (q == NULL)
            rc = -ENOMEM;
        else {
            a->q = q;
            a->qcap = cap;
        }
    }
    if (rc == 0) {
        r->queued = true;
        a->q[a->qn++] = r;
        pthread_cond_signal(&a->qcond);
    }
    pthread_mutex_unlock(&a->qmu);
    return rc;
}

static struct reply submitted(struct request *r)
{
    json_decref(r->job.spec);
    r->job.spec = NULL;
    if (r->rc != 0)
        return fail(503, "store", "the job could not be stored: %s", strerror(-r->rc));
    return (struct reply){201, json_pack("{s:I, s:s}", "id", (json_int_t)r->job.id, "state",
                                         "pending"), NULL};
}

struct list_ctx {
    json_t *arr;
    int64_t last;
    int n, limit;
};

static int list_one(const struct store_job *j, void *arg)
{
    struct list_ctx *x = arg;

    json_array_append_new(x->arr, job_json(j));
    x->last = j->id;
    return ++x->n >= x->limit;
}

static int query_int(struct MHD_Connection *c, const char *key, int64_t lo, int64_t hi,
                     int64_t dflt, int64_t *out)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
    char *end;

    *out = dflt;
    if (v == NULL)
        return 0;
    *out = strtoll(v, &end, 10);
    return *v == '\0' || *end != '\0' || *out < lo || *out > hi ? -1 : 0;
}

/* "succeeded,failed": the mask of the states named; -1 for a name that is no state. */
static int state_mask(const char *list, unsigned *mask)
{
    char name[32];

    *mask = 0;
    for (const char *p = list; *p != '\0'; p += *p == ',') {
        size_t n = strcspn(p, ",");
        enum store_job_state st;

        snprintf(name, sizeof(name), "%.*s", (int)(n < sizeof(name) ? n : sizeof(name) - 1), p);
        if (n == 0 || n >= sizeof(name) || store_job_state_parse(name, &st) != 0)
            return -1;
        *mask |= 1u << st;
        p += n;
    }
    return *mask != 0 ? 0 : -1;
}

static struct reply list_jobs(struct api *a, struct MHD_Connection *c, const struct store_user *u)
{
    const char *state = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "state");
    struct store_job_filter f = {
        .user_id = u->role == STORE_ROLE_ADMIN ? 0 : u->id,
        .project = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "project"),
        .state = -1};
    struct list_ctx x = {.arr = NULL};
    int64_t limit;

    if (state != NULL && state_mask(state, &f.states) != 0)
        return bad_field("state", "unknown state in '%s' (pending, assigned, running, swapped, "
                         "succeeded, failed, cancelled; a comma between several)", state);
    if (query_int(c, "limit", 1, LIST_MAX, 100, &limit) != 0 ||
        query_int(c, "after", 0, INT64_MAX, 0, &f.after_id) != 0)
        return fail(400, "invalid_field", "%s", "limit must be 1 to 1000, after a job id");
    if (query_int(c, "since", 0, INT64_MAX, 0, &f.since_ms) != 0 ||
        query_int(c, "until", 0, INT64_MAX, 0, &f.until_ms) != 0)
        return bad_field("since", "%s", "since and until are times in milliseconds since 1970");
    f.limit = (int)limit + 1; /* one more, to know whether there is a next page */
    x.limit = (int)limit + 1;
    x.arr = json_array();
    if (store_jobs(a->store, &f, list_one, &x) != 0) {
        json_decref(x.arr);
        return fail(503, "store", "%s", "the store could not be read");
    }
    if (x.n > limit) {
        json_array_remove(x.arr, json_array_size(x.arr) - 1);
        x.last = json_integer_value(
            json_object_get(json_array_get(x.arr, json_array_size(x.arr) - 1), "id"));
        return (struct reply){200, json_pack("{s:o, s:I}", "jobs", x.arr, "next",
                                             (json_int_t)x.last), NULL};
    }
    return (struct reply){200, json_pack("{s:o, s:n}", "jobs", x.arr, "next"), NULL};
}

static int job_visible(struct api *a, const struct store_user *u, int64_t id, struct store_job *j)
{
    if (store_job_get(a->store, id, j) != 0)
        return -1;
    if (u->role != STORE_ROLE_ADMIN && j->user_id != u->id) {
        store_job_clear(j);
        return -1; /* another user's job does not exist, as far as this user can tell */
    }
    return 0;
}

/* What the agents last measured of one job's processes, summed over its GPUs. */
struct usage_ctx {
    const struct store_job *j;
    json_int_t memory, measured_ms;
    double busy;
    int gpus;
    /* The oldest heartbeat of its nodes that measured each job; -1: a node does not. */
    int64_t heard_ms;
};

/* Whether `name` is one of the space-separated `nodes` (a gang's). */
static bool on_node(const char *nodes, const char *name)
{
    size_t len = strlen(name);

    for (const char *p = nodes; (p = strstr(p, name)) != NULL; p += len)
        if ((p == nodes || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\0'))
            return true;
    return false;
}

static void add_usage(const struct store_node *n, void *arg)
{
    struct usage_ctx *x = arg;
    size_t i, k;
    json_t *g, *e;

    if (!on_node(x->j->node, n->name))
        return;
    if (n->telemetry == NULL || json_array_size(n->telemetry) == 0)
        x->heard_ms = -1;
    json_array_foreach(n->telemetry, i, g) if (!json_is_array(json_object_get(g, "jobs")))
        x->heard_ms = -1;
    if (x->heard_ms == 0 || (x->heard_ms > 0 && n->heartbeat_ms < x->heard_ms))
        x->heard_ms = n->heartbeat_ms;
    json_array_foreach(n->telemetry, i, g) json_array_foreach(json_object_get(g, "jobs"), k, e) {
        if (json_integer_value(json_object_get(e, "id")) != x->j->id)
            continue;
        x->memory += (json_int_t)json_number_value(json_object_get(e, "memory_used_bytes"));
        x->busy += json_number_value(json_object_get(e, "utilization_pct"));
        x->gpus++;
        x->measured_ms = n->heartbeat_ms;
    }
}

/* What the agents last measured of a job's processes: its GPU memory, and its busy % averaged
 * over the GPUs it used; and, running, since when it is idle. */
static void job_usage(struct api *a, const struct store_job *j, json_t *o)
{
    struct usage_ctx x = {.j = j};
    int64_t since;

    if (j->node[0] == '\0' || j->state >= STORE_JOB_SUCCEEDED)
        return;
    store_nodes(a->store, add_usage, &x);
    if (j->state == STORE_JOB_RUNNING && x.heard_ms > 0 &&
        (since = idle_since(&a->idle, j->id, j->started_ms, x.heard_ms)) > 0)
        json_object_set_new(o, "idle_since_ms", json_integer(since));
    if (x.gpus > 0)
        json_object_set_new(o, "measured",
                            json_pack("{s:I, s:f, s:i, s:I}", "memory_used_bytes", x.memory,
                                      "utilization_pct", x.busy / x.gpus, "gpus", x.gpus,
                                      "measured_ms", x.measured_ms));
}

static void run_add(const struct store_run *r, void *arg)
{
    json_t *o = json_pack("{s:i, s:s, s:s, s:f, s:I, s:I, s:s}", "attempt", r->attempt, "node",
                          r->node, "gpus", r->gpus, "allocated_gpus",
                          (double)r->alloc_milli / 1000, "started_ms", (json_int_t)r->started_ms,
                          "ended_ms", (json_int_t)r->ended_ms, "outcome", r->outcome);

    json_array_append_new(arg, o);
}

static struct reply get_job(struct api *a, const struct store_user *u, int64_t id)
{
    struct store_job j;
    struct reply r;
    json_t *runs = json_array();

    if (job_visible(a, u, id, &j) != 0) {
        json_decref(runs);
        return fail(404, "not_found", "no job %s", "with that id");
    }
    store_job_runs(a->store, id, run_add, runs);
    r = (struct reply){200, job_json(&j), NULL};
    job_usage(a, &j, r.body);
    json_object_set_new(r.body, "runs", runs);
    store_job_clear(&j);
    return r;
}

static struct reply cancel_job(struct api *a, const struct store_user *u, int64_t id)
{
    struct store_job j;
    int rc;

    if (job_visible(a, u, id, &j) != 0)
        return fail(404, "not_found", "no job %s", "with that id");
    rc = store_job_transition(a->store, id,
                              1u << STORE_JOB_PENDING | 1u << STORE_JOB_ASSIGNED |
                                  1u << STORE_JOB_RUNNING | 1u << STORE_JOB_SWAPPED |
                                  1u << STORE_JOB_SUSPENDED,
                              STORE_JOB_CANCELLED, "cancelled by the user", now_ms());
    if (rc == 0) {
        /* Its agents stop it (one the loop placed meanwhile, from a pending read: all of them). */
        api_assignments_changed(a, j.node[0] != '\0' ? j.node : NULL);
        api_job_changed(a, id);
    }
    store_job_clear(&j);
    if (rc == -EBUSY)
        return fail(409, "conflict", "the job has %s", "already ended");
    if (rc != 0)
        return fail(503, "store", "%s", "the store could not be written");
    loop_poke(a->loop);
    return get_job(a, u, id);
}

/* POST /jobs/{id}/swap {"to": "out"|"in"}: its agent moves its GPU memory to host memory, or
 * back; the job shows "swapped" once that is done. */
static struct reply swap_job(struct api *a, const struct store_user *u, int64_t id,
                             const struct request *r)
{
    json_t *obj = body_json(r);
    const char *to = NULL;
    struct store_job j;
    int rc;

    if (obj == NULL || json_unpack_ex(obj, NULL, JSON_STRICT, "{s:s}", "to", &to) != 0 ||
        (strcmp(to, "out") != 0 && strcmp(to, "in") != 0)) {
        json_decref(obj);
        return fail(400, "invalid_field", "%s", "a swap is {\"to\": \"out\" or \"in\"}");
    }
    if (job_visible(a, u, id, &j) != 0) {
        json_decref(obj);
        return fail(404, "not_found", "no job %s", "with that id");
    }
    rc = store_job_swap_want(a->store, id, to, NULL);
    json_decref(obj);
    if (rc == 0)
        api_assignments_changed(a, j.node); /* its agent acts on it */
    store_job_clear(&j);
    if (rc == -EBUSY)
        return fail(409, "conflict", "only a running job can be swapped %s",
                    "out, and only a swapped one in");
    if (rc != 0)
        return fail(503, "store", "%s", "the store could not be written");
    api_job_changed(a, id);
    return get_job(a, u, id);
}

/* POST /jobs/{id}/suspend and /resume: its agent stops its processes where they are (they keep
 * their GPUs and memory), or lets them go on; the job shows "suspended" once they are stopped. */
static struct reply control_job(struct api *a, const struct store_user *u, int64_t id,
                                bool suspend)
{
    struct store_job j;
    int rc;

    if (job_visible(a, u, id, &j) != 0)
        return fail(404, "not_found", "no job %s", "with that id");
    rc = store_job_control(a->store, id, suspend ? "suspend" : "");
    if (rc == 0)
        api_assignments_changed(a, j.node); /* its agents act on it */
    store_job_clear(&j);
    if (rc == -EBUSY)
        return fail(409, "conflict", "%s",
                    suspend ? "only a running job that is not being suspended can be suspended"
                            : "only a suspended job can be resumed");
    if (rc != 0)
        return fail(503, "store", "%s", "the store could not be written");
    api_job_changed(a, id);
    return get_job(a, u, id);
}

/* GET /jobs/{id}/timeline: the states the job has entered, oldest first. */
static struct reply job_timeline(struct api *a, const struct store_user *u, int64_t id)
{
    struct store_job j;
    json_t *states;

    if (job_visible(a, u, id, &j) != 0)
        return fail(404, "not_found", "no job %s", "with that id");
    store_job_clear(&j);
    if (store_job_timeline(a->store, id, &states) != 0)
        return fail(503, "store", "%s", "the store could not be read");
    return (struct reply){200, json_pack("{s:I, s:o}", "id", (json_int_t)id, "states", states),
                          NULL};
}

/* ---- the pool's figures ------------------------------------------------------------------ */

static struct reply shares(struct api *a)
{
    json_t *alloc = loop_allocations(a->store), *fair = loop_shares(a->loop);
    json_t *out = shares_json(a->store, alloc, fair);

    json_decref(alloc);
    json_decref(fair);
    return (struct reply){200, out, NULL};
}

static struct reply utilization(struct api *a, struct MHD_Connection *c)
{
    int64_t hours;

    if (query_int(c, "hours", 1, 6, 6, &hours) != 0)
        return fail(400, "invalid_field", "%s", "hours must be 1 to 6");
    return (struct reply){200, loop_history(a->loop, now_ms() - hours * 3600 * 1000), NULL};
}

/* ---- projects ---------------------------------------------------------------------------- */

struct projects_ctx {
    json_t *arr, *held, *fair;
};

static void project_add(const struct store_project *p, void *arg)
{
    struct projects_ctx *x = arg;
    json_t *held = json_object_get(x->held, p->name);

    json_array_append_new(x->arr, json_pack("{s:s, s:s, s:f, s:o, s:i}", "name", p->name, "parent",
                                         p->parent, "deserved_gpus",
                                         (double)p->deserved_milli / 1000, "limit_gpus",
                                         p->limit_milli < 0
                                             ? json_null()
                                             : json_real((double)p->limit_milli / 1000),
                                         "weight", p->weight));
    json_object_set_new(json_array_get(x->arr, json_array_size(x->arr) - 1), "allocated_gpus",
                        json_real((double)json_integer_value(
                                      json_object_get(held, "allocated_milli")) / 1000));
    json_object_set_new(json_array_get(x->arr, json_array_size(x->arr) - 1), "fair_share_gpus",
                        json_real((double)json_integer_value(json_object_get(x->fair, p->name)) /
                                  1000));
    json_object_set_new(json_array_get(x->arr, json_array_size(x->arr) - 1), "lend",
                        json_boolean(!p->no_lend));
    json_object_set_new(json_array_get(x->arr, json_array_size(x->arr) - 1), "borrow",
                        json_boolean(!p->no_borrow));
}

static struct reply list_projects(struct api *a)
{
    struct projects_ctx x = {json_array(), NULL, loop_fair_shares(a->loop)};

    if (store_project_holdings(a->store, &x.held) != 0 ||
        store_projects(a->store, project_add, &x) != 0) {
        json_decref(x.arr);
        json_decref(x.held);
        json_decref(x.fair);
        return fail(503, "store", "%s", "the store could not be read");
    }
    json_decref(x.held);
    json_decref(x.fair);
    return (struct reply){200, json_pack("{s:o}", "projects", x.arr), NULL};
}

static int project_number(json_t *obj, const char *key, double dflt, double *out,
                          struct api_error *e)
{
    json_t *v = json_object_get(obj, key);

    *out = dflt;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1e6) {
        api_error_set(e, 400, "invalid_field", key, "%s must be a number >= 0", key);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

static struct reply put_project(struct api *a, const char *name, const struct request *r)
{
    json_t *obj = body_json(r);
    struct store_project p = {0};
    struct api_error e;
    double deserved, limit, weight;
    char err[256];
    const char *key;
    json_t *v;

    if (!json_is_object(obj)) {
        json_decref(obj);
        return fail(400, "bad_json", "%s", "the body must be a JSON object");
    }
    json_object_foreach(obj, key, v) {
        if (strcmp(key, "deserved_gpus") && strcmp(key, "limit_gpus") && strcmp(key, "weight") &&
            strcmp(key, "parent") && strcmp(key, "lend") && strcmp(key, "borrow")) {
            api_error_set(&e, 400, "unknown_field", key, "unknown field '%s'", key);
            json_decref(obj);
            return error_reply(&e);
        }
        if ((strcmp(key, "lend") == 0 || strcmp(key, "borrow") == 0) && !json_is_boolean(v)) {
            api_error_set(&e, 400, "invalid_field", key, "%s must be true or false", key);
            json_decref(obj);
            return error_reply(&e);
        }
    }
    p.no_lend = json_is_false(json_object_get(obj, "lend"));
    p.no_borrow = json_is_false(json_object_get(obj, "borrow"));
    if (project_number(obj, "deserved_gpus", 0, &deserved, &e) ||
        project_number(obj, "limit_gpus", -1, &limit, &e) ||
        project_number(obj, "weight", 1, &weight, &e)) {
        json_decref(obj);
        return error_reply(&e);
    }
    snprintf(p.name, sizeof(p.name), "%s", name);
    v = json_object_get(obj, "parent");
    if (json_is_string(v))
        snprintf(p.parent, sizeof(p.parent), "%s", json_string_value(v));
    p.deserved_milli = (int64_t)(deserved * 1000);
    p.limit_milli = limit < 0 ? -1 : (int64_t)(limit * 1000);
    p.weight = (int)weight;
    json_decref(obj);
    if (p.parent[0] != '\0') {
        struct store_project up;
        int depth = 0;

        /* The parent must exist, and the tree must stay a tree. */
        for (const char *at = p.parent; *at != '\0'; at = up.parent, depth++) {
            if (strcmp(at, name) == 0 || depth > 64)
                return fail(400, "invalid_field", "parent '%s' would make a cycle", p.parent);
            if (store_project_get(a->store, at, &up) != 0)
                return fail(404, "unknown_project", "no parent project '%s'", at);
        }
    }
    if (store_project_put(a->store, &p, err, sizeof(err)) != 0)
        return fail(503, "store", "%s", err);
    loop_poke(a->loop);
    return (struct reply){200, json_pack("{s:s}", "name", name), NULL};
}

/* ---- users and tokens -------------------------------------------------------------------- */

static struct reply new_token(struct api *a, int64_t user_id)
{
    char token[AUTH_TOKEN_LEN], hash[AUTH_HASH_LEN];

    if (auth_token_new(token) != 0)
        return fail(503, "internal", "%s", "no randomness for a token");
    auth_token_hash(token, hash);
    if (store_token_add(a->store, user_id, hash) != 0)
        return fail(503, "store", "%s", "the token could not be stored");
    return (struct reply){201, json_pack("{s:s}", "token", token), NULL};
}

int api_user_check(const struct store_user *u, struct api_error *e)
{
    struct passwd *pw = getpwnam(u->unix_user);

    if (pw == NULL) {
        api_error_set(e, 400, "invalid_field", "unix_user", "no Unix account '%s' on the server",
                      u->unix_user);
        return -1;
    }
    if (pw->pw_uid == 0 && u->role != STORE_ROLE_AGENT) {
        api_error_set(e, 400, "invalid_field", "unix_user",
                      "workloads never run as root: choose another account than '%s'",
                      u->unix_user);
        return -1;
    }
    return 0;
}

static struct reply add_user(struct api *a, const struct request *r)
{
    json_t *obj = body_json(r);
    struct store_user u = {.role = STORE_ROLE_USER};
    const char *name = NULL, *unix_user = NULL, *role = "user";
    struct api_error e;
    char err[256];
    int64_t id;

    if (obj == NULL || json_unpack_ex(obj, NULL, JSON_STRICT, "{s:s, s:s, s?:s}", "name", &name,
                                      "unix_user", &unix_user, "role", &role) != 0) {
        json_decref(obj);
        return fail(400, "invalid_field", "%s",
                    "a user is {\"name\": ..., \"unix_user\": ..., \"role\": admin|user|agent}");
    }
    snprintf(u.name, sizeof(u.name), "%s", name);
    snprintf(u.unix_user, sizeof(u.unix_user), "%s", unix_user);
    if (store_role_parse(role, &u.role) != 0) {
        struct reply bad_role = fail(400, "invalid_field", "unknown role '%s'", role);

        json_decref(obj);
        return bad_role;
    }
    json_decref(obj);
    if (api_user_check(&u, &e) != 0)
        return error_reply(&e);
    u.uid = getpwnam(u.unix_user)->pw_uid;
    if (store_user_add(a->store, &u, &id, err, sizeof(err)) != 0)
        return fail(409, "conflict", "%s", err);
    return (struct reply){201, json_pack("{s:I, s:s}", "id", (json_int_t)id, "name", u.name), NULL};
}

static struct reply add_member(struct api *a, const char *project, const struct request *r)
{
    json_t *obj = body_json(r);
    const char *user = NULL;
    struct store_user u;
    struct store_project p;

    if (obj == NULL || json_unpack_ex(obj, NULL, JSON_STRICT, "{s:s}", "user", &user) != 0) {
        json_decref(obj);
        return fail(400, "invalid_field", "%s", "a member is {\"user\": NAME}");
    }
    if (store_project_get(a->store, project, &p) != 0 || store_user_get(a->store, user, &u)) {
        json_decref(obj);
        return fail(404, "not_found", "%s", "no such project or user");
    }
    json_decref(obj);
    store_member_add(a->store, project, u.id);
    return (struct reply){200, json_pack("{s:s, s:s}", "project", project, "user", u.name), NULL};
}

/* ---- nodes and agents -------------------------------------------------------------------- */

static int check_gpus(json_t *gpus, struct api_error *e)
{
    size_t i;
    json_t *g;

    if (!json_is_array(gpus) || json_array_size(gpus) > 16) {
        api_error_set(e, 400, "invalid_field", "gpus", "gpus: a list of at most 16 GPUs");
        return -1;
    }
    json_array_foreach(gpus, i, g) {
        const char *uuid, *model;
        json_int_t mem;

        if (json_unpack_ex(g, NULL, JSON_STRICT, "{s:s, s:s, s:I}", "uuid", &uuid, "model",
                           &model, "memory_bytes", &mem) != 0 || mem <= 0 || *model == '\0') {
            api_error_set(e, 400, "invalid_field", "gpus",
                          "gpus[%zu]: {\"uuid\", \"model\", \"memory_bytes\" > 0}", i);
            return -1;
        }
    }
    return 0;
}

static struct reply agent_register(struct api *a, const struct request *r)
{
    json_t *obj = body_json(r), *gpus = NULL;
    struct store_node n = {0};
    struct api_error e;
    const char *name = NULL, *address = "";
    json_int_t cpu = 0, mem = 0;

    if (obj == NULL ||
        json_unpack_ex(obj, NULL, JSON_STRICT, "{s:s, s:I, s:I, s:o, s?:s}", "name", &name,
                       "cpu_milli", &cpu, "mem_mib", &mem, "gpus", &gpus, "address",
                       &address) != 0 || cpu <= 0 || mem <= 0 || *name == '\0' ||
        strlen(name) >= sizeof(n.name) || strchr(name, ' ') != NULL ||
        strlen(address) >= sizeof(n.address) || strpbrk(address, " \t\n") != NULL) {
        json_decref(obj);
        return fail(400, "invalid_field", "%s",
                    "a node is {\"name\" (no spaces), \"cpu_milli\" > 0, \"mem_mib\" > 0, "
                    "\"gpus\": [...], \"address\"}");
    }
    if (check_gpus(gpus, &e) != 0) {
        json_decref(obj);
        return error_reply(&e);
    }
    snprintf(n.name, sizeof(n.name), "%s", name);
    n.cpu_milli = cpu;
    n.mem_mib = mem;
    n.gpus = gpus;
    n.heartbeat_ms = now_ms();
    snprintf(n.address, sizeof(n.address), "%s", address);
    if (store_node_put(a->store, &n) != 0) {
        json_decref(obj);
        return fail(503, "store", "%s", "the node could not be stored");
    }
    json_decref(obj);
    loop_poke(a->loop);
    api_node_changed(a, n.name);
    return (struct reply){200, json_pack("{s:s}", "name", n.name), NULL};
}

/* What a heartbeat measured of each GPU: [{"index", "memory_used_bytes", "utilization_pct"}]. */
/* A measure: absent, or a number in [0, max]. */
static bool measure_ok(json_t *v, double max)
{
    return v == NULL || (json_is_number(v) && json_number_value(v) >= 0 &&
                         json_number_value(v) <= max);
}

/* What a heartbeat measured of each GPU, and of each job's processes on it: [{"index",
 * "memory_used_bytes", "utilization_pct", "jobs": [{"id", "memory_used_bytes",
 * "utilization_pct"}]}]. */
static int check_telemetry(json_t *gpus, struct api_error *e)
{
    size_t i, k;
    json_t *g, *j;

    if (gpus == NULL)
        return 0;
    if (!json_is_array(gpus) || json_array_size(gpus) > 16) {
        api_error_set(e, 400, "invalid_field", "gpus", "gpus: a list of at most 16 GPUs");
        return -1;
    }
    json_array_foreach(gpus, i, g) {
        json_t *idx = json_object_get(g, "index"), *jobs = json_object_get(g, "jobs");
        bool ok = json_is_integer(idx) && json_integer_value(idx) >= 0 &&
                  json_integer_value(idx) < 16 &&
                  measure_ok(json_object_get(g, "memory_used_bytes"), 1e18) &&
                  measure_ok(json_object_get(g, "utilization_pct"), 100) &&
                  (jobs == NULL || (json_is_array(jobs) && json_array_size(jobs) <= 64));

        json_array_foreach(ok ? jobs : NULL, k, j)
            ok &= json_is_integer(json_object_get(j, "id")) &&
                  measure_ok(json_object_get(j, "memory_used_bytes"), 1e18) &&
                  measure_ok(json_object_get(j, "utilization_pct"), 100);
        if (!ok) {
            api_error_set(e, 400, "invalid_field", "gpus",
                          "gpus[%zu]: {\"index\": 0..15, \"memory_used_bytes\" >= 0, "
                          "\"utilization_pct\": 0..100, \"jobs\": [{\"id\", "
                          "\"memory_used_bytes\", \"utilization_pct\"}]}",
                          i);
            return -1;
        }
    }
    return 0;
}

static struct reply agent_heartbeat(struct api *a, const struct request *r)
{
    json_t *obj = body_json(r), *gpus = NULL;
    const char *name = NULL;
    struct api_error e;
    int64_t now = now_ms();
    int rc;

    if (obj == NULL || json_unpack(obj, "{s:s, s?o}", "name", &name, "gpus", &gpus) != 0) {
        json_decref(obj);
        return fail(400, "invalid_field", "%s", "a heartbeat is {\"name\": NODE, \"gpus\": [...]}");
    }
    if (check_telemetry(gpus, &e) != 0) {
        json_decref(obj);
        return error_reply(&e);
    }
    rc = store_node_heartbeat(a->store, name, now, gpus);
    if (rc == 0)
        idle_heartbeat(&a->idle, gpus, now);
    json_decref(obj);
    if (rc == -ENOENT)
        return fail(404, "not_found", "%s", "no such node: register first");
    return rc == 0 ? (struct reply){200, json_pack("{}"), NULL}
                   : fail(503, "store", "%s", "the heartbeat could not be stored");
}

/*
 * Checks an agent's report of a job and fills r->report, for the group commit; 0, or -1 with the
 * error reply in *err.  A swap report that says the scheduler's swap out failed (its "error" and
 * "why" both given, the job running) puts the job back in the queue in the same transaction:
 * the room it was to make is given already.
 */
static int status_prepare(struct request *r, struct reply *err)
{
    json_t *obj = body_json(r);
    const char *node = NULL, *state = NULL;
    json_int_t job = 0, code = 0, rank = 0;
    json_t *swap = NULL;
    enum store_job_state to;

    if (obj == NULL ||
        json_unpack_ex(obj, NULL, JSON_STRICT, "{s:s, s:I, s:s, s?:I, s?:o, s?:I}", "node", &node,
                       "job", &job, "state", &state, "exit_code", &code, "swap", &swap, "rank",
                       &rank) != 0 ||
        store_job_state_parse(state, &to) != 0 || rank < 0 || rank >= JOBSPEC_REPLICAS_MAX ||
        (to != STORE_JOB_RUNNING && to != STORE_JOB_SUCCEEDED && to != STORE_JOB_FAILED &&
         to != STORE_JOB_SWAPPED && to != STORE_JOB_SUSPENDED) ||
        (swap != NULL && !json_is_object(swap)) || (to == STORE_JOB_SWAPPED && swap == NULL)) {
        json_decref(obj);
        *err = fail(400, "invalid_field", "%s",
                    "a status is {\"node\", \"job\", \"rank\", \"state\": running|succeeded|"
                    "failed|swapped|suspended, \"exit_code\", \"swap\": {...}}");
        return -1;
    }
    if ((r->report_node = strdup(node)) == NULL) {
        json_decref(obj);
        *err = fail(503, "store", "%s", "the status could not be stored");
        return -1;
    }
    r->report = (struct store_report){
        .id = job, .node = r->report_node, .rank = (int)rank, .to = to, .exit_code = (int)code};
    if (swap != NULL) {
        /* A swap done, undone or refused: the job's state and the swap's figures. */
        const char *error = json_string_value(json_object_get(swap, "error"));
        const char *why = json_string_value(json_object_get(swap, "why"));

        if ((r->report_swap = json_dumps(swap, JSON_COMPACT)) == NULL) {
            json_decref(obj);
            *err = fail(503, "store", "%s", "the status could not be stored");
            return -1;
        }
        r->report.swap = r->report_swap;
        if (to == STORE_JOB_RUNNING && error != NULL && error[0] != '\0' && why != NULL &&
            why[0] != '\0') {
            snprintf(r->report_requeue, sizeof(r->report_requeue),
                     "could not be swapped out (%s); stopped %s; queued again", error, why);
            r->report.requeue = r->report_requeue;
        }
    }
    json_decref(obj);
    r->is_report = true;
    return 0;
}

/* The answer to a report once its group commit is done. */
static struct reply reported(const struct request *r)
{
    if (r->rc == -EBUSY)
        return fail(409, "conflict", "job %lld is not assigned to that node, or has ended",
                    (long long)r->report.id);
    if (r->rc != 0)
        return fail(503, "store", "%s", "the status could not be stored");
    return (struct reply){200, json_pack("{}"), NULL};
}

struct assignment_ctx {
    const char *node;
    json_t *jobs;
    bool gangs;
};

/* Gangs' "master_addr" named their rank 0's node: now its address, where it said one (each
 * node looked up by name: a node's agent asks often, and there may be thousands of nodes). */
static int set_addresses(struct api *a, json_t *jobs)
{
    size_t i;
    json_t *o;

    json_array_foreach(jobs, i, o) {
        json_t *m = json_object_get(o, "master_addr");
        struct store_node n;
        int rc;

        if (m == NULL)
            continue;
        if ((rc = store_node_get(a->store, json_string_value(m), &n)) == -ENOENT)
            continue;
        if (rc != 0)
            return rc;
        if (n.address[0] != '\0')
            json_object_set_new(o, "master_addr", json_string(n.address));
        store_node_clear(&n);
    }
    return 0;
}

/* A gang's replicas on this node: their ranks and GPUs, the world size, and where replica 0
 * listens for the others (its node, whose address set_addresses puts in; a port from the job
 * id, 20000 + id mod 10000). */
static void add_ranks(const struct assignment_ctx *x, const struct store_job *j, json_t *o)
{
    char nodes[sizeof(j->node)], gpus[sizeof(j->gpus)], master[sizeof(j->node)] = "";
    char *ns = NULL, *gs = NULL, *n = strtok_r(strcpy(nodes, j->node), " ", &ns),
         *g = strtok_r(strcpy(gpus, j->gpus), ";", &gs);
    json_t *ranks = json_array();
    int rank = 0, local = 0;

    for (; n != NULL; n = strtok_r(NULL, " ", &ns), g = strtok_r(NULL, ";", &gs), rank++) {
        if (rank == 0)
            snprintf(master, sizeof(master), "%s", n);
        if (strcmp(n, x->node) == 0)
            json_array_append_new(ranks, json_pack("{s:i, s:i, s:s}", "rank", rank,
                                                   "local_rank", local++, "gpus", g ? g : ""));
    }
    json_object_set_new(o, "ranks", ranks);
    json_object_set_new(o, "world_size", json_integer(rank));
    json_object_set_new(o, "master_addr", json_string(master));
    json_object_set_new(o, "master_port", json_integer(20000 + j->id % 10000));
}

static int assignment_add(const struct store_job *j, void *arg)
{
    struct assignment_ctx *x = arg;
    json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:I, s:s, s:s, s:O, s:O, s:s}", "id",
                          (json_int_t)j->id, "name", j->name, "user", j->user, "unix_user",
                          j->unix_user, "uid", (json_int_t)j->uid, "state",
                          store_job_state_name(j->state), "gpus", j->gpus, "spec",
                          j->spec ? j->spec : json_null(), "swap",
                          j->swap ? j->swap : json_null(), "control", j->control);

    /* Which placement this is: a replica that ended is not run again for the same one. */
    json_object_set_new(o, "placed_ms", json_integer(j->started_ms));
    json_object_set_new(o, "borrowed", json_boolean(j->borrowed));

    if (strchr(j->node, ' ') != NULL || json_integer_value(json_object_get(j->spec,
                                                                           "replicas")) > 1)
        add_ranks(x, j, o);
    x->gangs |= json_object_get(o, "ranks") != NULL;
    json_array_append_new(x->jobs, o);
    return 0;
}

/* What a node should run now: its agent starts what is new and stops what is gone. */
static struct reply assignments(struct api *a, const char *node)
{
    struct store_job_filter f = {.state = -1, .node = node};
    json_t *arr = json_array();
    struct assignment_ctx x = {node, arr, false};
    uint64_t gen;

    pthread_mutex_lock(&a->qmu);
    gen = a->generation;
    pthread_mutex_unlock(&a->qmu);
    if (store_jobs(a->store, &f, assignment_add, &x) != 0 ||
        (x.gangs && set_addresses(a, arr) != 0)) {
        json_decref(arr);
        return fail(503, "store", "%s", "the store could not be read");
    }
    return (struct reply){200, json_pack("{s:I, s:o}", "generation", (json_int_t)gen, "jobs",
                                         arr), NULL};
}

/* The generation at which a node's assignments last changed; under qmu. */
static uint64_t changed_at(const struct api *a, const char *node)
{
    json_t *g = json_object_get(a->node_gen, node);
    uint64_t at = g != NULL ? (uint64_t)json_integer_value(g) : 0;

    return at > a->all_gen ? at : a->all_gen;
}

/* Answers at once when the node's assignments changed since the agent's generation, else waits
 * (its connection suspended) until they change or `wait` seconds pass.  Changes on other nodes
 * leave it waiting: an agent is woken by its own node's changes only. */
static int assignments_wait(struct api *a, struct MHD_Connection *c, struct request *r,
                            struct reply *now)
{
    const char *node = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "node");
    int64_t since, wait;
    bool park = false;

    if (node == NULL || *node == '\0' || strlen(node) >= sizeof(r->node) ||
        query_int(c, "since", 0, INT64_MAX, -1, &since) != 0 ||
        query_int(c, "wait", 0, 300, 0, &wait) != 0) {
        *now = fail(400, "invalid_field", "%s", "node=NAME&since=GENERATION&wait=0..300 seconds");
        return 0;
    }
    snprintf(r->node, sizeof(r->node), "%s", node);
    pthread_mutex_lock(&a->qmu);
    /* A generation above the current one is another server process's: answer. */
    if (wait > 0 && since >= 0 && (uint64_t)since <= a->generation &&
        changed_at(a, node) <= (uint64_t)since && !a->qstop &&
        (a->nwaiters < a->capwaiters ||
         (a->waiters = realloc(a->waiters, (size_t)(a->capwaiters = a->capwaiters * 2 + 16) *
                                               sizeof(*a->waiters))) != NULL)) {
        r->waiting = true;
        r->conn = c;
        r->since = (uint64_t)since;
        r->deadline_ms = now_ms() + wait * 1000;
        MHD_suspend_connection(c);
        a->waiters[a->nwaiters++] = r;
        park = true;
        if (r->deadline_ms < a->next_wake_ms)
            pthread_cond_signal(&a->qcond); /* the committer answers it in time */
    }
    pthread_mutex_unlock(&a->qmu);
    if (!park)
        *now = assignments(a, node);
    return park;
}

/* Answers the long-polls whose node changed, whose wait is over (now), or all; under qmu. */
static void resume_waiters(struct api *a, bool all, int64_t now)
{
    int keep = 0;

    for (int i = 0; i < a->nwaiters; i++) {
        struct request *w = a->waiters[i];

        if (all || now >= w->deadline_ms || changed_at(a, w->node) > w->since)
            MHD_resume_connection(w->conn);
        else
            a->waiters[keep++] = w;
    }
    a->nwaiters = keep;
}

void api_assignments_changed(void *arg, const char *nodes)
{
    struct api *a = arg;

    pthread_mutex_lock(&a->qmu);
    a->generation++;
    if (nodes == NULL)
        a->all_gen = a->generation;
    /* "n1 n2": each node named (a gang's); one that cannot be kept wakes every agent. */
    for (const char *p = nodes; p != NULL && *p != '\0';) {
        size_t len = strcspn(p, " ");

        if (len > 0 && json_object_setn_new_nocheck(a->node_gen, p, len,
                                                    json_integer((json_int_t)a->generation)) != 0)
            a->all_gen = a->generation;
        p += len + (p[len] == ' ');
    }
    resume_waiters(a, false, 0);
    pthread_mutex_unlock(&a->qmu);
}

struct nodes_ctx {
    struct api *a;
    const struct store_user *u;
    json_t *arr, *alloc;
    int64_t now;
};

static bool node_alive(const struct api *a, const struct store_node *n, int64_t now)
{
    return now - n->heartbeat_ms <= a->node_timeout_ms;
}

/* One GPU as people see it: what it is, what is allocated on it, and what its node measured. */
static json_t *gpu_view(const struct nodes_ctx *x, const struct store_node *n, size_t i,
                        json_t *g)
{
    json_t *o = json_deep_copy(g), *alloc = json_array_get(json_object_get(x->alloc, n->name), i);
    json_t *ids = json_array(), *shares = json_array(), *job, *m;
    int64_t others = 0;
    size_t k;

    json_object_set_new(o, "index", json_integer((json_int_t)i));
    json_object_set_new(o, "allocated",
                        json_real((double)json_integer_value(
                                      json_object_get(alloc, "allocated_milli")) / 1000));
    json_object_set_new(o, "memory_allocated_bytes",
                        json_integer(json_integer_value(
                            json_object_get(alloc, "memory_allocated_bytes"))));
    /* Another user's job stays unnamed, as it does everywhere. */
    json_array_foreach(json_object_get(alloc, "jobs"), k, job) {
        bool named = x->u->role == STORE_ROLE_ADMIN ||
                     json_integer_value(json_object_get(job, "user_id")) == x->u->id;

        json_int_t milli = json_integer_value(json_object_get(job, "milli"));

        if (named)
            json_array_append(ids, json_object_get(job, "id"));
        else
            others++;
        json_array_append_new(
            shares, json_pack("{s:O, s:f, s:O, s:O}", "job",
                              named ? json_object_get(job, "id") : json_null(), "gpu",
                              (double)milli / 1000, "swapped", json_object_get(job, "swapped"),
                              "borrowed", json_object_get(job, "borrowed")));
    }
    /* Borrowed: run by borrowers on capacity lent by idle jobs; swapped: held by jobs that are
     * swapped out (in host memory). */
    json_object_set_new(o, "borrowed",
                        json_real((double)json_integer_value(
                                      json_object_get(alloc, "borrowed_milli")) / 1000));
    json_object_set_new(o, "swapped",
                        json_real((double)json_integer_value(
                                      json_object_get(alloc, "swapped_milli")) / 1000));
    json_object_set_new(o, "jobs", ids);
    json_object_set_new(o, "shares", shares);
    json_object_set_new(o, "other_jobs", json_integer(others));
    json_array_foreach(n->telemetry, k, m) {
        if (json_integer_value(json_object_get(m, "index")) != (json_int_t)i)
            continue;
        if (json_object_get(m, "memory_used_bytes"))
            json_object_set(o, "memory_used_bytes", json_object_get(m, "memory_used_bytes"));
        if (json_object_get(m, "utilization_pct"))
            json_object_set(o, "utilization_pct", json_object_get(m, "utilization_pct"));
    }
    return o;
}

static void node_add(const struct store_node *n, void *arg)
{
    struct nodes_ctx *x = arg;
    json_t *gpus = json_array(), *g;
    double allocated = 0;
    size_t i;

    json_array_foreach(n->gpus, i, g) {
        json_t *v = gpu_view(x, n, i, g);

        allocated += json_real_value(json_object_get(v, "allocated"));
        json_array_append_new(gpus, v);
    }
    json_array_append_new(
        x->arr, json_pack("{s:s, s:s, s:b, s:I, s:I, s:o, s:f, s:f}", "name", n->name, "state",
                          store_node_state_name(n->state), "alive", node_alive(x->a, n, x->now),
                          "cpu_milli", (json_int_t)n->cpu_milli, "mem_mib",
                          (json_int_t)n->mem_mib, "gpus", gpus, "allocated_gpus", allocated,
                          "heartbeat_age_s", (double)(x->now - n->heartbeat_ms) / 1000));
}

static struct reply list_nodes(struct api *a, const struct store_user *u)
{
    struct nodes_ctx x = {a, u, json_array(), loop_allocations(a->store), now_ms()};

    store_nodes(a->store, node_add, &x);
    json_decref(x.alloc);
    return (struct reply){200, json_pack("{s:o}", "nodes", x.arr), NULL};
}

void api_node_changed(void *arg, const char *name)
{
    struct api *a = arg;
    struct store_node n;

    if (store_node_get(a->store, name, &n) != 0)
        return;
    events_publish(a->events, "node", 0,
                   json_pack("{s:s, s:s, s:b}", "name", n.name, "state",
                             store_node_state_name(n.state), "alive", node_alive(a, &n, now_ms())));
    store_node_clear(&n);
}

static struct reply node_state(struct api *a, const char *name, const char *verb)
{
    enum store_node_state st = strcmp(verb, "cordon") == 0    ? STORE_NODE_CORDONED
                               : strcmp(verb, "drain") == 0   ? STORE_NODE_DRAINING
                                                              : STORE_NODE_READY;
    int rc;

    if (strcmp(verb, "cordon") && strcmp(verb, "drain") && strcmp(verb, "uncordon"))
        return fail(404, "not_found", "no node action '%s' (cordon, drain, uncordon, revoke)",
                    verb);
    rc = store_node_set_state(a->store, name, st);
    if (rc == -ENOENT)
        return fail(404, "not_found", "no node '%s'", name);
    if (rc != 0)
        return fail(503, "store", "%s", "the store could not be written");
    loop_poke(a->loop);
    api_node_changed(a, name);
    return (struct reply){200, json_pack("{s:s, s:s}", "name", name, "state",
                                         store_node_state_name(st)), NULL};
}

/* POST /nodes/{name}/revoke: the credentials a node got when it joined stop working. */
static struct reply node_revoke(struct api *a, const char *name)
{
    struct store_user nu;
    char user[64];
    int rc;

    if (snprintf(user, sizeof(user), STORE_NODE_USER_PREFIX "%s", name) >= (int)sizeof(user) ||
        store_user_get(a->store, user, &nu) != 0 || nu.role != STORE_ROLE_AGENT)
        return fail(404, "not_found", "no node '%s' joined with a join token", name);
    if ((rc = store_user_tokens_revoke(a->store, nu.id)) == -ENOENT)
        return fail(404, "not_found", "node '%s' has no credential left to revoke", name);
    if (rc != 0)
        return fail(503, "store", "%s", "the store could not be written");
    return (struct reply){200, json_pack("{s:s, s:b}", "name", name, "revoked", 1), NULL};
}

/* ---- join tokens ------------------------------------------------------------------------- */

#define JOIN_EXPIRES_MAX_S (10LL * 365 * 86400)

/* POST /join-tokens {"expires_in_seconds"?}: a new join token, shown once. */
static struct reply join_token_create(struct api *a, const struct store_user *u,
                                      const struct request *r)
{
    json_t *obj = r->len > 0 ? body_json(r) : json_object();
    json_int_t expires_in = 0;
    char token[AUTH_TOKEN_LEN], hash[AUTH_HASH_LEN];
    int64_t now = now_ms(), expires, id;

    if (obj == NULL ||
        json_unpack_ex(obj, NULL, JSON_STRICT, "{s?:I}", "expires_in_seconds", &expires_in) != 0 ||
        expires_in < 0 || expires_in > JOIN_EXPIRES_MAX_S) {
        json_decref(obj);
        return bad_field("expires_in_seconds", "%s",
                         "a join token is {\"expires_in_seconds\": 0 (never) to 315360000}");
    }
    json_decref(obj);
    expires = expires_in > 0 ? now + (int64_t)expires_in * 1000 : 0;
    if (auth_token_new(token) != 0)
        return fail(503, "internal", "%s", "no randomness for a token");
    auth_token_hash(token, hash);
    if (store_join_token_add(a->store, hash, u->id, now, expires, &id) != 0)
        return fail(503, "store", "%s", "the join token could not be stored");
    return (struct reply){201,
                          json_pack("{s:I, s:s, s:I}", "id", (json_int_t)id, "token", token,
                                    "expires_ms", (json_int_t)expires),
                          NULL};
}

static void join_token_row(const struct store_join_token *t, void *arg)
{
    int64_t now = now_ms();

    json_array_append_new(
        arg, json_pack("{s:I, s:s, s:I, s:I, s:b, s:b, s:I}", "id", (json_int_t)t->id, "created_by",
                       t->created_by, "created_ms", (json_int_t)t->created_ms, "expires_ms",
                       (json_int_t)t->expires_ms, "revoked", t->revoked, "expired",
                       t->expires_ms != 0 && t->expires_ms <= now, "joins", (json_int_t)t->joins));
}

static struct reply join_tokens_list(struct api *a)
{
    json_t *list = json_array();

    if (store_join_tokens(a->store, join_token_row, list) != 0) {
        json_decref(list);
        return fail(503, "store", "%s", "the store could not be read");
    }
    return (struct reply){200, json_pack("{s:o}", "join_tokens", list), NULL};
}

static struct reply join_token_revoke(struct api *a, int64_t id)
{
    int rc = store_join_token_revoke(a->store, id);

    if (rc == -ENOENT)
        return fail(404, "not_found", "no join token %lld", (long long)id);
    if (rc != 0)
        return fail(503, "store", "%s", "the store could not be written");
    return (struct reply){200, json_pack("{s:I, s:b}", "id", (json_int_t)id, "revoked", 1), NULL};
}

/*
 * POST /agent/join {"name"} with a join token as the bearer token: the node gets an agent user of
 * its own and a token of it, its credential, shown once.
 */
static struct reply agent_join(struct api *a, struct MHD_Connection *c, const struct request *r)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    json_t *obj = body_json(r);
    const char *name = NULL;
    char join_hash[AUTH_HASH_LEN], token[AUTH_TOKEN_LEN], hash[AUTH_HASH_LEN], user[64];
    char node[64];
    int rc;

    if (h == NULL || strncmp(h, "Bearer ", 7) != 0) {
        json_decref(obj);
        return fail(401, "unauthorized", "%s",
                    "a join token is needed: Authorization: Bearer JOIN_TOKEN");
    }
    if (obj == NULL || json_unpack_ex(obj, NULL, JSON_STRICT, "{s:s}", "name", &name) != 0 ||
        *name == '\0' || strpbrk(name, " \t\n/") != NULL ||
        snprintf(user, sizeof(user), STORE_NODE_USER_PREFIX "%s", name) >= (int)sizeof(user)) {
        json_decref(obj);
        return bad_field("name", "%s",
                         "a join is {\"name\": NODE} (no spaces or slashes, at most 58 bytes)");
    }
    snprintf(node, sizeof(node), "%s", name);
    json_decref(obj);
    auth_token_hash(h + 7, join_hash);
    if (auth_token_new(token) != 0)
        return fail(503, "internal", "%s", "no randomness for a token");
    auth_token_hash(token, hash);
    rc = store_node_join(a->store, join_hash, user, hash, now_ms());
    if (rc == -ENOENT)
        return fail(401, "unauthorized", "%s", "the join token is not known to this server");
    if (rc == -EKEYREVOKED)
        return fail(401, "unauthorized", "%s", "the join token was revoked: ask for a new one");
    if (rc == -EKEYEXPIRED)
        return fail(401, "unauthorized", "%s", "the join token has expired: ask for a new one");
    if (rc == -EEXIST)
        return fail(409, "conflict", "user '%s' exists and is not a node's", user);
    if (rc != 0)
        return fail(503, "store", "%s", "the store could not be written");
    return (struct reply){
        201, json_pack("{s:s, s:s, s:s}", "name", node, "user", user, "token", token), NULL};
}

/* ---- logs -------------------------------------------------------------------------------- */

static bool job_ended(const struct store_job *j)
{
    return j->state >= STORE_JOB_SUCCEEDED;
}

/*
 * Whether a job's log is whole: the job has ended and its agent said it sent all of the stream,
 * or the job never ran, or its agent has had the node timeout to send the rest.
 */
static bool log_whole(const struct api *a, const struct store_job *j, bool marked)
{
    return job_ended(j) &&
           (marked || j->started_ms == 0 || now_ms() - j->finished_ms > a->node_timeout_ms);
}

static void add_header_int(struct MHD_Response *r, const char *name, int64_t v)
{
    char text[32];

    snprintf(text, sizeof(text), "%lld", (long long)v);
    MHD_add_response_header(r, name, text);
}

/* GET /jobs/ID/logs: bytes from offset, and in headers where to go on and whether it is whole. */
static struct reply get_logs(struct api *a, struct MHD_Connection *c, const struct store_user *u,
                             int64_t id)
{
    const char *name = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "stream");
    enum logs_stream st = LOGS_STDOUT;
    struct MHD_Response *resp;
    struct store_job j;
    int64_t offset, limit, size, n;
    bool marked;
    int fd;

    if (job_visible(a, u, id, &j) != 0)
        return fail(404, "not_found", "no job %s", "with that id");
    json_decref(j.spec); /* only its state and times are used */
    j.spec = NULL;
    if (name != NULL && logs_stream_parse(name, &st) != 0)
        return bad_field("stream", "stream must be stdout or stderr, not '%s'", name);
    if (query_int(c, "offset", 0, INT64_MAX, 0, &offset) != 0)
        return bad_field("offset", "%s", "offset must be a byte offset, 0 or more");
    if (query_int(c, "limit", 1, LOG_READ_MAX, LOG_READ_MAX, &limit) != 0)
        return bad_field("limit", "limit must be 1 to %d bytes", LOG_READ_MAX);
    if (logs_open(&a->logs, id, j.started_ms, st, &fd, &size, &marked) != 0)
        return fail(503, "store", "%s", "the log could not be read");
    if (offset > size) {
        if (fd >= 0)
            close(fd);
        return bad_field("offset", "offset %lld is past the end of the log (%lld bytes)",
                         (long long)offset, (long long)size);
    }
    n = size - offset < limit ? size - offset : limit;
    if (n > 0) {
        resp = MHD_create_response_from_fd_at_offset64((uint64_t)n, fd, (uint64_t)offset);
    } else {
        if (fd >= 0)
            close(fd);
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    if (resp == NULL)
        return fail(503, "internal", "%s", "no memory for the answer");
    MHD_add_response_header(resp, "Content-Type", "text/plain; charset=utf-8");
    add_header_int(resp, "Gpool-Next-Offset", offset + n);
    add_header_int(resp, "Gpool-Log-Size", size);
    MHD_add_response_header(resp, "Gpool-Job-State", store_job_state_name(j.state));
    MHD_add_response_header(resp, "Gpool-Log-Complete",
                            log_whole(a, &j, marked) ? "true" : "false");
    return (struct reply){200, NULL, resp};
}

/* Whether the job's (first) node is `node`: a gang's log is its first replica's. */
static bool first_node(const struct store_job *j, const char *node)
{
    size_t n = strcspn(j->node, " ");

    return n > 0 && strlen(node) == n && strncmp(j->node, node, n) == 0;
}

/* POST /agent/logs?node=&job=&stream=&offset=[&end=1]: bytes of a job's output, by offset. */
static struct reply agent_logs(struct api *a, struct MHD_Connection *c, const struct request *r)
{
    const char *node = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "node");
    const char *name = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "stream");
    enum logs_stream st;
    struct store_job j;
    int64_t id, offset, end, next = 0;
    int rc;

    if (node == NULL || *node == '\0')
        return bad_field("node", "%s", "node=NAME is needed");
    if (query_int(c, "job", 1, INT64_MAX, 0, &id) != 0 || id == 0)
        return bad_field("job", "%s", "job=ID is needed");
    if (name == NULL || logs_stream_parse(name, &st) != 0)
        return bad_field("stream", "%s", "stream must be stdout or stderr");
    if (query_int(c, "offset", 0, INT64_MAX, -1, &offset) != 0 || offset < 0)
        return bad_field("offset", "%s", "offset must be a byte offset, 0 or more");
    if (query_int(c, "end", 0, 1, 0, &end) != 0)
        return bad_field("end", "%s", "end must be 0 or 1");
    if (store_job_get(a->store, id, &j) != 0)
        return fail(404, "not_found", "no job %lld", (long long)id);
    json_decref(j.spec); /* only its state, node and run are used */
    j.spec = NULL;
    if (j.state == STORE_JOB_PENDING || !first_node(&j, node))
        return fail(409, "conflict", "job %lld does not run on node %s", (long long)id, node);
    rc = logs_append(&a->logs, id, j.started_ms, st, offset, r->body, r->len, &next);
    if (rc == -ESPIPE) {
        struct reply gap = bad_field("offset", "the log has %lld bytes: send from there",
                                     (long long)next);

        gap.status = 409;
        json_object_set_new(json_object_get(gap.body, "error"), "code", json_string("conflict"));
        json_object_set_new(gap.body, "next", json_integer(next));
        return gap;
    }
    if (rc == 0 && end)
        rc = logs_end(&a->logs, id, j.started_ms, st);
    if (rc != 0)
        return fail(503, "store", "the log could not be written: %s", strerror(-rc));
    return (struct reply){200, json_pack("{s:o}", "next", next < 0 ? json_null()
                                                                 : json_integer(next)), NULL};
}

/* ---- sessions and events ------------------------------------------------------------------- */

static struct MHD_Response *json_response(json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    struct MHD_Response *resp;

    json_decref(body);
    if (text == NULL)
        return NULL;
    resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL)
        free(text);
    else
        MHD_add_response_header(resp, "Content-Type", "application/json");
    return resp;
}

/* POST /session: the bearer's token exchanged for a cookie a browser sends by itself. */
static struct reply session_start(struct api *a, const struct store_user *u)
{
    char token[AUTH_TOKEN_LEN], hash[AUTH_HASH_LEN], cookie[256];
    int64_t expires = now_ms() + (int64_t)SESSION_S * 1000;
    struct MHD_Response *resp;

    if (auth_token_new(token) != 0)
        return fail(503, "internal", "%s", "no randomness for a session");
    auth_token_hash(token, hash);
    if (store_session_add(a->store, u->id, hash, expires, now_ms()) != 0)
        return fail(503, "store", "%s", "the session could not be stored");
    resp = json_response(json_pack("{s:s, s:I}", "user", u->name, "expires_ms",
                                   (json_int_t)expires));
    if (resp == NULL)
        return fail(503, "internal", "%s", "no memory for the answer");
    snprintf(cookie, sizeof(cookie),
             SESSION_COOKIE "=%s; Path=/api/v1; Max-Age=%d; HttpOnly; SameSite=Strict", token,
             SESSION_S);
    MHD_add_response_header(resp, "Set-Cookie", cookie);
    return (struct reply){201, NULL, resp};
}

/* DELETE /session: the cookie's session ends, and the browser forgets the cookie. */
static struct reply session_end(struct api *a, struct MHD_Connection *c)
{
    const char *cookie = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, SESSION_COOKIE);
    char hash[AUTH_HASH_LEN];
    struct MHD_Response *resp;

    if (cookie == NULL)
        return bad_field(SESSION_COOKIE, "%s", "no " SESSION_COOKIE " cookie: no session to end");
    auth_token_hash(cookie, hash);
    if (store_session_delete(a->store, hash) != 0)
        return fail(404, "not_found", "%s", "no such session (it ended or expired)");
    if ((resp = json_response(json_pack("{}"))) == NULL)
        return fail(503, "internal", "%s", "no memory for the answer");
    MHD_add_response_header(resp, "Set-Cookie",
                            SESSION_COOKIE "=; Path=/api/v1; Max-Age=0; HttpOnly; SameSite=Strict");
    return (struct reply){200, NULL, resp};
}

static struct reply event_stream(struct api *a, struct MHD_Connection *c,
                                 const struct store_user *u)
{
    struct MHD_Response *resp = events_subscribe(
        a->events, c, u->id, u->role == STORE_ROLE_ADMIN,
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID"));

    if (resp == NULL)
        return fail(503, "stopping", "%s", "the server is stopping");
    return (struct reply){200, NULL, resp};
}

/* ---- routing ----------------------------------------------------------------------------- */

/*
 * Every endpoint, as the API reference names it: what `gpool server --routes` prints, what the
 * OpenAPI document is checked against, and the route label of the request-time histogram.  A
 * change to route() comes with a change here.
 */
static const struct {
    const char *method, *path;
} routes[] = {
    {"GET", "/metrics"},
    {"GET", "/api/v1/openapi.json"},
    {"GET", "/api/v1/jobs"},
    {"POST", "/api/v1/jobs"},
    {"GET", "/api/v1/jobs/{id}"},
    {"DELETE", "/api/v1/jobs/{id}"},
    {"POST", "/api/v1/jobs/{id}/cancel"},
    {"GET", "/api/v1/jobs/{id}/logs"},
    {"POST", "/api/v1/jobs/{id}/swap"},
    {"POST", "/api/v1/jobs/{id}/suspend"},
    {"POST", "/api/v1/jobs/{id}/resume"},
    {"GET", "/api/v1/jobs/{id}/timeline"},
    {"GET", "/api/v1/usage"},
    {"GET", "/api/v1/projects"},
    {"GET", "/api/v1/shares"},
    {"GET", "/api/v1/utilization"},
    {"PUT", "/api/v1/projects/{name}"},
    {"POST", "/api/v1/projects/{name}/members"},
    {"POST", "/api/v1/users"},
    {"POST", "/api/v1/users/{name}/tokens"},
    {"POST", "/api/v1/tokens"},
    {"POST", "/api/v1/session"},
    {"DELETE", "/api/v1/session"},
    {"GET", "/api/v1/events"},
    {"GET", "/api/v1/status"},
    {"GET", "/api/v1/nodes"},
    {"POST", "/api/v1/nodes/{name}/cordon"},
    {"POST", "/api/v1/nodes/{name}/drain"},
    {"POST", "/api/v1/nodes/{name}/uncordon"},
    {"POST", "/api/v1/nodes/{name}/revoke"},
    {"GET", "/api/v1/join-tokens"},
    {"POST", "/api/v1/join-tokens"},
    {"DELETE", "/api/v1/join-tokens/{id}"},
    {"POST", "/api/v1/agent/join"},
    {"POST", "/api/v1/agent/register"},
    {"POST", "/api/v1/agent/heartbeat"},
    {"POST", "/api/v1/agent/status"},
    {"POST", "/api/v1/agent/logs"},
    {"GET", "/api/v1/agent/assignments"},
};

void api_routes_print(FILE *f)
{
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        fprintf(f, "%s %s\n", routes[i].method, routes[i].path);
}

/* Whether url fits a template whose "{...}" segments stand for any one non-empty segment. */
static bool path_fits(const char *tmpl, const char *url)
{
    while (*tmpl != '\0' && *url != '\0') {
        if (*tmpl == '{') {
            size_t n = strcspn(url, "/");

            if (n == 0)
                return false;
            tmpl += strcspn(tmpl, "}") + 1;
            url += n;
        } else if (*tmpl++ != *url++) {
            return false;
        }
    }
    return *tmpl == '\0' && *url == '\0';
}

/* The template a request's path fits, whatever its method; "other" when none does. */
static const char *route_class(const char *url)
{
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (path_fits(routes[i].path, url))
            return routes[i].path;
    return "other";
}

/* "/api/v1/jobs/42" with prefix "/api/v1/jobs/": 42; -1 when it is not a job id. */
static int64_t path_id(const char *url, const char *prefix, const char **rest)
{
    char *end;
    long long id;

    if (strncmp(url, prefix, strlen(prefix)) != 0)
        return -1;
    id = strtoll(url + strlen(prefix), &end, 10);
    if (end == url + strlen(prefix) || id <= 0)
        return -1;
    *rest = end;
    return id;
}

static struct reply usage(struct api *a, struct MHD_Connection *c, const struct store_user *u)
{
    struct api_error e;
    json_t *out;

    if (usage_report(a->store, u, MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since"),
                     MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "until"),
                     MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "by"), now_ms(), &out,
                     &e) != 0)
        return error_reply(&e);
    return (struct reply){200, out, NULL};
}

static struct reply admin_only(const struct store_user *u)
{
    return fail(403, "forbidden", "%s needs the admin role", u->name);
}

/*
 * Whether a node's own credential (its user node:NAME, from a join) is used for another node: the
 * node an agent endpoint acts for is in the body ("name"; "node" for status) or the query
 * ("node"); a request without one is left to its handler to refuse.
 */
static bool for_another_node(const struct store_user *u, struct MHD_Connection *c,
                             const char *endpoint, const struct request *r)
{
    const char *own = u->name + strlen(STORE_NODE_USER_PREFIX), *named;
    bool other;
    json_t *obj;

    if (strncmp(u->name, STORE_NODE_USER_PREFIX, strlen(STORE_NODE_USER_PREFIX)) != 0)
        return false;
    if (strcmp(endpoint, "logs") == 0 || strcmp(endpoint, "assignments") == 0) {
        named = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "node");
        return named != NULL && strcmp(named, own) != 0;
    }
    obj = body_json(r);
    named = json_string_value(
        json_object_get(obj, strcmp(endpoint, "status") == 0 ? "node" : "name"));
    other = named != NULL && strcmp(named, own) != 0;
    json_decref(obj);
    return other;
}

static struct reply another_node(const struct store_user *u)
{
    return fail(403, "forbidden", "this credential is node %s's: it acts for no other node",
                u->name + strlen(STORE_NODE_USER_PREFIX));
}

static struct reply route(struct api *a, struct MHD_Connection *c, const char *url,
                          const char *method, struct request *r, const struct store_user *u)
{
    const char *rest = "";
    int64_t id;

    if (strncmp(url, "/api/v1/agent/", 14) == 0) {
        if (u->role == STORE_ROLE_USER)
            return fail(403, "forbidden", "%s", "the agent endpoints take agent tokens");
        if (for_another_node(u, c, url + 14, r))
            return another_node(u);
        if (strcmp(url + 14, "register") == 0 && is(method, "POST"))
            return agent_register(a, r);
        if (strcmp(url + 14, "heartbeat") == 0 && is(method, "POST"))
            return agent_heartbeat(a, r);
        if (strcmp(url + 14, "logs") == 0 && is(method, "POST"))
            return agent_logs(a, c, r);
        return fail(404, "not_found", "no endpoint %s", url);
    }
    if (u->role == STORE_ROLE_AGENT)
        return fail(403, "forbidden", "%s", "agent tokens reach the agent endpoints only");
    if (strcmp(url, "/api/v1/jobs") == 0 && is(method, "GET"))
        return list_jobs(a, c, u);
    if (strcmp(url, "/api/v1/usage") == 0 && is(method, "GET"))
        return usage(a, c, u);
    if ((id = path_id(url, "/api/v1/jobs/", &rest)) > 0) {
        if (*rest == '\0' && is(method, "GET"))
            return get_job(a, u, id);
        if (strcmp(rest, "/logs") == 0 && is(method, "GET"))
            return get_logs(a, c, u, id);
        if (strcmp(rest, "/timeline") == 0 && is(method, "GET"))
            return job_timeline(a, u, id);
        if ((*rest == '\0' && is(method, "DELETE")) ||
            (strcmp(rest, "/cancel") == 0 && is(method, "POST")))
            return cancel_job(a, u, id);
        if (strcmp(rest, "/swap") == 0 && is(method, "POST"))
            return swap_job(a, u, id, r);
        if ((strcmp(rest, "/suspend") == 0 || strcmp(rest, "/resume") == 0) &&
            is(method, "POST"))
            return control_job(a, u, id, strcmp(rest, "/suspend") == 0);
    }
    if (strcmp(url, "/api/v1/projects") == 0 && is(method, "GET"))
        return list_projects(a);
    if (strcmp(url, "/api/v1/shares") == 0 && is(method, "GET"))
        return shares(a);
    if (strcmp(url, "/api/v1/utilization") == 0 && is(method, "GET"))
        return utilization(a, c);
    if (strncmp(url, "/api/v1/projects/", 17) == 0 && u->role != STORE_ROLE_ADMIN)
        return admin_only(u);
    if (strncmp(url, "/api/v1/projects/", 17) == 0) {
        const char *name = url + 17, *slash = strchr(name, '/');

        if (slash == NULL && is(method, "PUT") && *name != '\0')
            return put_project(a, name, r);
        if (slash != NULL && strcmp(slash, "/members") == 0 && is(method, "POST")) {
            char pname[129];

            snprintf(pname, sizeof(pname), "%.*s", (int)(slash - name), name);
            return add_member(a, pname, r);
        }
    }
    if (strcmp(url, "/api/v1/users") == 0 && is(method, "POST"))
        return u->role == STORE_ROLE_ADMIN ? add_user(a, r) : admin_only(u);
    if (strncmp(url, "/api/v1/users/", 14) == 0 && is(method, "POST")) {
        const char *slash = strchr(url + 14, '/');
        struct store_user other;
        char name[64];

        if (u->role != STORE_ROLE_ADMIN)
            return admin_only(u);
        if (slash != NULL && strcmp(slash, "/tokens") == 0 && slash - (url + 14) < 64) {
            snprintf(name, sizeof(name), "%.*s", (int)(slash - (url + 14)), url + 14);
            if (store_user_get(a->store, name, &other) != 0)
                return fail(404, "not_found", "no user '%s'", name);
            return new_token(a, other.id);
        }
    }
    if (strcmp(url, "/api/v1/tokens") == 0 && is(method, "POST"))
        return new_token(a, u->id);
    if (strcmp(url, "/api/v1/session") == 0 && is(method, "POST"))
        return session_start(a, u);
    if (strcmp(url, "/api/v1/session") == 0 && is(method, "DELETE"))
        return session_end(a, c);
    if (strcmp(url, "/api/v1/events") == 0 && is(method, "GET"))
        return event_stream(a, c, u);
    if (strcmp(url, "/api/v1/status") == 0 && is(method, "GET")) {
        json_t *st;

        store_settings(a->store, &st);
        return (struct reply){200, json_pack("{s:o, s:s, s:i}", "store", st, "user", u->name,
                                             "event_streams", events_subscribers(a->events)), NULL};
    }
    if (strcmp(url, "/api/v1/nodes") == 0 && is(method, "GET"))
        return list_nodes(a, u);
    if (strcmp(url, "/api/v1/join-tokens") == 0 && (is(method, "GET") || is(method, "POST"))) {
        if (u->role != STORE_ROLE_ADMIN)
            return admin_only(u);
        return is(method, "GET") ? join_tokens_list(a) : join_token_create(a, u, r);
    }
    if ((id = path_id(url, "/api/v1/join-tokens/", &rest)) > 0 && *rest == '\0' &&
        is(method, "DELETE"))
        return u->role == STORE_ROLE_ADMIN ? join_token_revoke(a, id) : admin_only(u);
    if (strncmp(url, "/api/v1/nodes/", 14) == 0 && is(method, "POST")) {
        const char *slash = strchr(url + 14, '/');
        char name[129];

        if (u->role != STORE_ROLE_ADMIN)
            return admin_only(u);
        if (slash != NULL && slash - (url + 14) < (long)sizeof(name)) {
            snprintf(name, sizeof(name), "%.*s", (int)(slash - (url + 14)), url + 14);
            if (strcmp(slash + 1, "revoke") == 0)
                return node_revoke(a, name);
            return node_state(a, name, slash + 1);
        }
    }
    return fail(404, "not_found", "no endpoint %s", url);
}

/* Queues the answer, and counts the request in the request-time histogram. */
static enum MHD_Result send_reply(struct api *a, struct MHD_Connection *c, const char *url,
                                  const char *method, const struct request *r, struct reply rep)
{
    struct MHD_Response *resp = rep.resp ? rep.resp : json_response(rep.body);
    enum MHD_Result ret;
    struct timespec t1;

    if (resp == NULL)
        return MHD_NO;
    ret = MHD_queue_response(c, (unsigned)rep.status, resp);
    MHD_destroy_response(resp);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (a->metrics != NULL)
        metrics_request(a->metrics, method, route_class(url), rep.status,
                        (double)(t1.tv_sec - r->t0.tv_sec) +
                            (double)(t1.tv_nsec - r->t0.tv_nsec) / 1e9);
    return ret;
}

static struct reply text_reply(const char *type, char *text, size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);

    if (resp == NULL) {
        free(text);
        return fail(503, "internal", "%s", "no memory for the answer");
    }
    MHD_add_response_header(resp, "Content-Type", type);
    return (struct reply){200, NULL, resp};
}

/*
 * GET /metrics: an admin's token (Prometheus's bearer token), or anyone when the server runs
 * with --metrics-public.
 */
static struct reply metrics_page(struct api *a, struct MHD_Connection *c, const char *url,
                                 const char *method)
{
    struct metrics_view v = {a->store, a->loop, now_ms(), a->node_timeout_ms};
    struct store_user u;
    struct reply refused;
    size_t len;
    char *text;

    if (!is(method, "GET"))
        return fail(404, "not_found", "no endpoint %s %s", method, url);
    if (!a->metrics_public) {
        if (authenticate(a, c, url, method, &u, &refused) != 0)
            return refused;
        if (u.role != STORE_ROLE_ADMIN)
            return fail(403, "forbidden", "%s",
                        "metrics need an admin's token (or the server's --metrics-public)");
    }
    if ((text = metrics_render(a->metrics, &v, &len)) == NULL)
        return fail(503, "internal", "%s", "no memory for the metrics");
    return text_reply("text/plain; version=0.0.4; charset=utf-8", text, len);
}

/* GET /api/v1/openapi.json: the API's own description, as built into the binary; public. */
static struct reply openapi_page(const char *method, const char *url)
{
    char *text;

    if (!is(method, "GET"))
        return fail(404, "not_found", "no endpoint %s %s", method, url);
    if ((text = malloc(gpool_openapi_json_len)) == NULL)
        return fail(503, "internal", "%s", "no memory for the answer");
    memcpy(text, gpool_openapi_json, gpool_openapi_json_len);
    return text_reply("application/json", text, gpool_openapi_json_len);
}

/*
 * A standby's answer to every API request: 503 with Retry-After, and where the leader serves
 * (in the error's "leader" and the X-Gpool-Leader header) when the store knows it.
 */
static struct reply standby_reply(struct api *a)
{
    char leader[256] = "";
    struct reply rep;
    json_t *body;

    store_leader(a->store, leader, sizeof(leader));
    body = json_pack("{s:{s:s, s:s, s:s, s:s}}", "error", "code", "standby", "message",
                     leader[0] ? "this server stands by; the leader serves at the URL in 'leader'"
                               : "this server stands by; no server leads yet",
                     "field", "", "leader", leader);
    rep = (struct reply){503, NULL, json_response(body)};
    if (rep.resp == NULL)
        return fail(503, "standby", "%s", "this server stands by");
    MHD_add_response_header(rep.resp, "Retry-After", "1");
    if (leader[0])
        MHD_add_response_header(rep.resp, "X-Gpool-Leader", leader);
    return rep;
}

/* Waits, the connection suspended, for the request's group commit; handle() answers it once
 * the committer resumes it. */
static enum MHD_Result commit_wait(struct api *a, struct MHD_Connection *c, struct request *r)
{
    r->conn = c;
    /* Suspended before it is queued, so that the commit cannot resume it first. */
    MHD_suspend_connection(c);
    if (enqueue(a, r) != 0) {
        MHD_resume_connection(c);
        r->queued = true;
        r->rc = -ENOMEM;
    }
    return MHD_YES;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *size, void **con_cls)
{
    struct api *a = cls;
    struct request *r = *con_cls;
    struct store_user u;
    struct reply refused;

    if (r == NULL) {
        if ((r = calloc(1, sizeof(*r))) == NULL)
            return MHD_NO;
        clock_gettime(CLOCK_MONOTONIC, &r->t0);
        *con_cls = r;
        return MHD_YES;
    }
    if (*size > 0) {
        if (r->len + *size > API_BODY_MAX) {
            r->too_big = true;
        } else {
            char *nb = realloc(r->body, r->len + *size + 1);

            if (nb == NULL)
                return MHD_NO;
            r->body = nb;
            memcpy(r->body + r->len, data, *size);
            r->len += *size;
        }
        *size = 0;
        return MHD_YES;
    }
    if (r->too_big)
        return send_reply(a, c, url, method, r,
                          fail(413, "too_large", "the body is over %s", "1 MiB"));
    /* The dashboard: its files need no token. */
    if (strncmp(url, "/api/", 5) != 0 && strcmp(url, "/metrics") != 0)
        return web_serve(c, url, method);
    if (api_standing_by(a))
        return send_reply(a, c, url, method, r, standby_reply(a));
    if (r->queued) /* resumed: the group commit is done */
        return send_reply(a, c, url, method, r, r->is_report ? reported(r) : submitted(r));
    if (r->waiting) /* resumed: assignments changed, or the wait is over */
        return send_reply(a, c, url, method, r, assignments(a, r->node));
    if (strcmp(url, "/metrics") == 0)
        return send_reply(a, c, url, method, r, metrics_page(a, c, url, method));
    if (strcmp(url, "/api/v1/openapi.json") == 0)
        return send_reply(a, c, url, method, r, openapi_page(method, url));
    /* A node joining shows a join token, not a user's. */
    if (strcmp(url, "/api/v1/agent/join") == 0 && is(method, "POST"))
        return send_reply(a, c, url, method, r, agent_join(a, c, r));
    if (authenticate(a, c, url, method, &u, &refused) != 0)
        return send_reply(a, c, url, method, r, refused);
    if (strcmp(url, "/api/v1/agent/assignments") == 0 && is(method, "GET") &&
        u.role != STORE_ROLE_USER) {
        struct reply now;

        if (for_another_node(&u, c, "assignments", r))
            return send_reply(a, c, url, method, r, another_node(&u));
        return assignments_wait(a, c, r, &now) ? MHD_YES : send_reply(a, c, url, method, r, now);
    }
    if (strcmp(url, "/api/v1/jobs") == 0 && is(method, "POST") && u.role != STORE_ROLE_AGENT) {
        struct reply err;

        if (submit_prepare(a, &u, r, &err) != 0)
            return send_reply(a, c, url, method, r, err);
        return commit_wait(a, c, r);
    }
    if (strcmp(url, "/api/v1/agent/status") == 0 && is(method, "POST") &&
        u.role != STORE_ROLE_USER) {
        struct reply err;

        if (for_another_node(&u, c, "status", r))
            return send_reply(a, c, url, method, r, another_node(&u));
        if (status_prepare(r, &err) != 0)
            return send_reply(a, c, url, method, r, err);
        return commit_wait(a, c, r);
    }
    return send_reply(a, c, url, method, r, route(a, c, url, method, r, &u));
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    struct request *r = *con_cls;

    if (r != NULL) {
        json_decref(r->job.spec);
        free(r->report_swap);
        free(r->report_node);
        free(r->body);
        free(r);
    }
    *con_cls = NULL;
}

void api_init(struct api *a)
{
    pthread_mutex_init(&a->qmu, NULL);
    pthread_cond_init(&a->qcond, NULL);
    a->events = events_new(now_ms());
    a->metrics = metrics_new();
    idle_init(&a->idle, IDLE_BUSY_PCT_DEFAULT, IDLE_WINDOW_S_DEFAULT * 1000LL, now_ms());
    /* Above any generation an earlier process gave its agents, which each get a fresh answer. */
    a->generation = a->all_gen = (uint64_t)now_ms();
    a->node_gen = json_object();
}

bool api_standing_by(struct api *a)
{
    return __atomic_load_n(&a->standby, __ATOMIC_ACQUIRE);
}

void api_set_standby(struct api *a, bool standby)
{
    __atomic_store_n(&a->standby, standby, __ATOMIC_RELEASE);
}

void api_cycle_done(void *arg, double seconds)
{
    struct api *a = arg;

    metrics_cycle(a->metrics, seconds);
}

static void stop_committer(struct api *a)
{
    pthread_mutex_lock(&a->qmu);
    resume_waiters(a, true, 0);
    a->qstop = true;
    pthread_cond_signal(&a->qcond);
    pthread_mutex_unlock(&a->qmu);
    pthread_join(a->committer, NULL);
}

/*
 * Connections live long here (agents' long-polls, event streams), so the server takes as many
 * file descriptors as it may and lets libmicrohttpd use them, less a few for the store and logs;
 * libmicrohttpd's own default is about a thousand.
 */
static unsigned connection_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1000;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1000000)
        return 1000000;
    return rl.rlim_cur > 1064 ? (unsigned)rl.rlim_cur - 64 : 1000;
}

int api_start(struct api *a, const char *listen, char *err, size_t errlen)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    char host[64];
    const char *colon = strrchr(listen, ':');
    struct MHD_OptionItem tls[] = {{MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)a->tls_cert},
                                   {MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)a->tls_key},
                                   {MHD_OPTION_END, 0, NULL}},
                          plain[] = {{MHD_OPTION_END, 0, NULL}};
    long port;

    if (colon == NULL || (size_t)(colon - listen) >= sizeof(host) ||
        (port = strtol(colon + 1, NULL, 10)) <= 0 || port > 65535) {
        snprintf(err, errlen, "--listen %s: expected ADDRESS:PORT", listen);
        return -EINVAL;
    }
    snprintf(host, sizeof(host), "%.*s", (int)(colon - listen), listen);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        snprintf(err, errlen, "--listen %s: '%s' is not an IPv4 address", listen, host);
        return -EINVAL;
    }
    sa.sin_port = htons((uint16_t)port);
    if (pthread_create(&a->committer, NULL, committer, a) != 0) {
        snprintf(err, errlen, "cannot start the commit thread");
        return -EAGAIN;
    }
    a->daemon = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG |
                                     MHD_ALLOW_SUSPEND_RESUME | (a->tls_cert ? MHD_USE_TLS : 0),
                                 (uint16_t)port, NULL, NULL, handle, a, MHD_OPTION_SOCK_ADDR, &sa,
                                 MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                                 MHD_OPTION_CONNECTION_LIMIT, connection_limit(), MHD_OPTION_ARRAY,
                                 a->tls_cert ? tls : plain, MHD_OPTION_END);
    if (a->daemon == NULL) {
        snprintf(err, errlen, "cannot listen on %s%s: %s", listen, a->tls_cert ? " with TLS" : "",
                 strerror(errno));
        stop_committer(a);
        return -EADDRINUSE;
    }
    return 0;
}

void api_stop(struct api *a)
{
    /* End the event streams, commit and answer what is queued, then stop serving. */
    events_close(a->events);
    stop_committer(a);
    if (a->daemon != NULL)
        MHD_stop_daemon(a->daemon);
    a->daemon = NULL;
    free(a->q);
    free(a->waiters);
}

void api_fini(struct api *a)
{
    events_free(a->events);
    a->events = NULL;
    json_decref(a->node_gen);
    a->node_gen = NULL;
    metrics_free(a->metrics);
    a->metrics = NULL;
    idle_fini(&a->idle);
}
