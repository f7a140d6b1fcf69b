/*
 * The agent's loop: register, then take assignments by long-poll and make the node run exactly
 * them; report each job running, then how it ended.  A heartbeat thread tells the server the
 * node is alive.  Jobs run under their supervisors and keep running when the agent stops; a new
 * agent adopts them from the state directory.
 */
#include "agent/agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/cgroup.h"
#include "agent/logship.h"
#include "agent/shares.h"
#include "agent/swap.h"
#include "common/http.h"
#include "common/units.h"

#define POLL_WAIT_S 1
#define KILL_GRACE_S 5
#define MAX_JOBS 1024

/* One replica of a job on this node (a job has one; a gang has one per rank). */
struct local_job {
    int64_t id;
    int rank;
    pid_t supervisor; /* 0 until read from its directory */
    bool reported_running;
    bool suspended;   /* stopped where it is, on the user's request */
    time_t killed_at; /* 0: not being stopped */
    bool over_cap;    /* stopped by the agent for holding more than its GPU memory cap */
    bool borrowed;    /* runs on GPUs lent by idle jobs */
};

struct agent {
    const struct agent_opts *o;
    char token[256];
    char name[256];
    json_t *node;
    struct local_job jobs[MAX_JOBS];
    int njobs;
    /* The jobs' supervisors as the heartbeat thread sees them (its telemetry per job). */
    pthread_mutex_t mu;
    struct agent_workload seen[MAX_JOBS];
    int nseen;
    struct agent_shares shares;
    struct agent_cgroups cg;
};

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    stopping = sig;
}

static int post(struct agent *a, const char *path, json_t *body, long *status)
{
    char err[512];
    json_t *out;
    int rc = http_json(a->o->server, a->token, "POST", path, body, 10, status, &out, err,
                       sizeof(err));

    json_decref(out);
    if (rc != 0)
        fprintf(stderr, "gpool agent: %s\n", err);
    return rc;
}

static int register_node(struct agent *a)
{
    long status;

    if (post(a, "/api/v1/agent/register", a->node, &status) != 0)
        return -1;
    if (status != 200) {
        fprintf(stderr, "gpool agent: the server refused to register %s (HTTP %ld)\n", a->name,
                status);
        return -1;
    }
    return 0;
}

static void *heartbeat(void *arg)
{
    struct agent *a = arg;

    while (!stopping) {
        long status = 0;
        json_t *body;

        for (int i = 0; i < a->o->heartbeat_s * 10 && !stopping; i++)
            usleep(100000);
        /* With what NVML measures of each GPU now (memory used, busy %). */
        pthread_mutex_lock(&a->mu);
        body = json_pack("{s:s, s:o}", "name", a->name, "gpus",
                         agent_shares_telemetry(&a->shares, a->seen, a->nseen));
        pthread_mutex_unlock(&a->mu);
        /* A server that lost the node (a new store) learns it again. */
        if (post(a, "/api/v1/agent/heartbeat", body, &status) == 0 && status == 404)
            register_node(a);
        json_decref(body);
    }
    return NULL;
}

/* ---- local jobs -------------------------------------------------------------------------- */

/* STATE_DIR/jobs/ID for a job's replica 0, STATE_DIR/jobs/ID.RANK for a gang's others. */
static void job_dir(const struct agent *a, int64_t id, int rank, char *buf, size_t len)
{
    if (rank == 0)
        snprintf(buf, len, "%s/jobs/%lld", a->o->state_dir, (long long)id);
    else
        snprintf(buf, len, "%s/jobs/%lld.%d", a->o->state_dir, (long long)id, rank);
}

static int read_int(const char *dir, const char *name, long *out)
{
    char path[4400];
    FILE *f;
    int rc;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    rc = fscanf(f, "%ld", out) == 1 ? 0 : -1;
    fclose(f);
    return rc;
}

static void mark(const char *dir, const char *name)
{
    char path[4400];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if ((f = fopen(path, "w")) != NULL)
        fclose(f);
}

static bool has(const char *dir, const char *name)
{
    char path[4400];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static struct local_job *find(struct agent *a, int64_t id, int rank)
{
    for (int i = 0; i < a->njobs; i++)
        if (a->jobs[i].id == id && (rank < 0 || a->jobs[i].rank == rank))
            return &a->jobs[i];
    return NULL;
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[4400];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if ((f = fopen(path, "we")) != NULL) {
        fputs(text, f);
        fclose(f);
    }
}

/* Tells the server a job's state, with its own fields (the exit code, a swap's outcome), which
 * it takes.  True once the server has answered (whatever it said); false when it could not be
 * reached, and the caller tries again on a later pass. */
static bool report_with(struct agent *a, const struct local_job *j, const char *state,
                        json_t *fields)
{
    json_t *b = json_pack("{s:s, s:I, s:i, s:s}", "node", a->name, "job", (json_int_t)j->id,
                          "rank", j->rank, "state", state);
    long status = 0;
    int rc;

    json_object_update(b, fields);
    json_decref(fields);
    rc = post(a, "/api/v1/agent/status", b, &status);
    json_decref(b);
    return rc == 0 && status != 0;
}

static bool report(struct agent *a, const struct local_job *j, const char *state, long code)
{
    return report_with(a, j, state, json_pack("{s:I}", "exit_code", (json_int_t)code));
}

/* The job's cgroup, with its memory and CPU as limits where the controllers exist; the runner
 * moves the workload into it (job["agent_cgroup"]). */
static void job_cgroup(struct agent *a, int64_t id, json_t *job)
{
    json_t *spec = json_object_get(job, "spec"), *mem = json_object_get(spec, "memory"),
           *cpu = json_object_get(spec, "cpu");
    uint64_t bytes = 0;
    char path[PATH_MAX];

    if (json_is_string(mem) && units_parse_bytes(json_string_value(mem), &bytes) != 0)
        bytes = 0;
    if (agent_cgroup_create(&a->cg, id, bytes,
                            json_is_number(cpu) ? (unsigned)(json_number_value(cpu) * 1000) : 0,
                            path, sizeof(path)) != 0)
        fprintf(stderr, "gpool agent: job %lld: no cgroup (%s): process group only\n",
                (long long)id, path);
    else if (path[0] != '\0')
        json_object_set_new(job, "agent_cgroup", json_string(path));
}

/* CUDA_VISIBLE_DEVICES for the GPUs the server gave (NVML indexes): their UUIDs, since CUDA
 * numbers devices in its own order (fastest first) unless told otherwise. */
static const char *visible_devices(const struct agent *a, const char *gpus, char *buf,
                                   size_t len)
{
    json_t *list = json_object_get(a->node, "gpus");
    size_t n = 0;

    buf[0] = '\0';
    for (const char *p = gpus; p != NULL && *p != '\0';) {
        char *end;
        long g = strtol(p, &end, 10);
        const char *uuid = json_string_value(json_object_get(json_array_get(list, (size_t)g),
                                                             "uuid"));

        if (end == p || g < 0 || uuid == NULL)
            return gpus; /* not indexes of this node's GPUs: as the server said */
        n += (size_t)snprintf(buf + n, len > n ? len - n : 0, "%s%s", n ? "," : "", uuid);
        p = *end == ',' ? end + 1 : end;
    }
    return n < len ? buf : gpus;
}

/* What a replica is told of its gang: its rank, the world size, and where rank 0 listens (the
 * variables PyTorch reads, and gpool's own). */
static void rank_env(json_t *job, json_t *r)
{
    json_t *env = json_object_get(job, "agent_env");
    char text[32];

    snprintf(text, sizeof(text), "%lld", (long long)json_integer_value(json_object_get(r, "rank")));
    json_object_set_new(env, "GPOOL_RANK", json_string(text));
    json_object_set_new(env, "RANK", json_string(text));
    snprintf(text, sizeof(text), "%lld",
             (long long)json_integer_value(json_object_get(r, "local_rank")));
    json_object_set_new(env, "LOCAL_RANK", json_string(text));
    snprintf(text, sizeof(text), "%lld",
             (long long)json_integer_value(json_object_get(job, "world_size")));
    json_object_set_new(env, "GPOOL_WORLD_SIZE", json_string(text));
    json_object_set_new(env, "WORLD_SIZE", json_string(text));
    snprintf(text, sizeof(text), "%lld",
             (long long)json_integer_value(json_object_get(job, "master_port")));
    json_object_set_new(env, "MASTER_PORT", json_string(text));
    json_object_set(env, "MASTER_ADDR", json_object_get(job, "master_addr"));
}

/* Whether the replica in dir still has to run for this placement of its job; an earlier
 * placement's files are kept aside as DIR.run-TIME. */
static bool to_run(int64_t id, const char *dir, const char *placed)
{
    char old[4200], path[4200], was[32] = "";
    FILE *f;

    if (!has(dir, "reported"))
        /* It runs, or its end is not reported yet: the exit check sees to it. */
        return !has(dir, "exit") && !has(dir, "supervisor");
    snprintf(path, sizeof(path), "%s/placed", dir);
    if ((f = fopen(path, "re")) != NULL) {
        if (fgets(was, sizeof(was), f) == NULL)
            was[0] = '\0';
        fclose(f);
    }
    if (strcmp(was, placed) == 0)
        return false; /* this replica of a gang ended; the others still run */
    /* It ran here before and was placed here again (requeued, preempted): a new run. */
    snprintf(old, sizeof(old), "%s.run-%lld", dir, (long long)time(NULL));
    if (rename(dir, old) != 0) {
        fprintf(stderr, "gpool agent: job %lld: %s: %s\n", (long long)id, old, strerror(errno));
        return false;
    }
    return true;
}

static void start_rank(struct agent *a, json_t *job, json_t *r, const char *placed)
{
    struct local_job l = {.id = json_integer_value(json_object_get(job, "id")),
                          .rank = (int)json_integer_value(json_object_get(r, "rank"))};
    char dir[4096], visible[2048];

    job_dir(a, l.id, l.rank, dir, sizeof(dir));
    if (json_object_get(job, "ranks") != NULL)
        rank_env(job, r);
    mkdir(dir, 0755);
    write_text(dir, "placed", placed);
    if (agent_spawn(dir, job, visible_devices(a, json_string_value(json_object_get(r, "gpus")),
                                              visible, sizeof(visible))) < 0) {
        mark(dir, "reported");
        report(a, &l, "failed", 126);
        return;
    }
    a->jobs[a->njobs++] = l;
}

/* Starts the job's replicas that this node runs and that have not run for this placement: one,
 * or a gang's ("ranks"), with the job's terms on their GPUs and its cgroup, which its replicas
 * here share. */
static void start(struct agent *a, json_t *job)
{
    int64_t id = json_integer_value(json_object_get(job, "id"));
    json_t *ranks = json_object_get(job, "ranks"), *to_start = json_array(), *r;
    char placed[32], gpus[256] = "", dir[4096];
    size_t i, n = 0;

    snprintf(placed, sizeof(placed), "%lld",
             (long long)json_integer_value(json_object_get(job, "placed_ms")));
    if (!json_is_array(ranks))
        json_array_append_new(to_start, json_pack("{s:i, s:i, s:O}", "rank", 0, "local_rank", 0,
                                              "gpus", json_object_get(job, "gpus")));
    else
        json_array_extend(to_start, ranks);
    for (i = 0; i < json_array_size(to_start);) {
        int rank = (int)json_integer_value(json_object_get(json_array_get(to_start, i), "rank"));

        job_dir(a, id, rank, dir, sizeof(dir));
        if (find(a, id, rank) != NULL || !to_run(id, dir, placed))
            json_array_remove(to_start, i);
        else
            i++;
    }
    if (json_array_size(to_start) == 0 || a->njobs + (int)json_array_size(to_start) > MAX_JOBS) {
        json_decref(to_start);
        return;
    }
    /* The terms go on every GPU of its replicas here. */
    json_array_foreach(ranks, i, r)
        n += (size_t)snprintf(gpus + n, n < sizeof(gpus) ? sizeof(gpus) - n : 0, "%s%s",
                              n ? "," : "", json_string_value(json_object_get(r, "gpus")));
    if (n > 0 && n < sizeof(gpus))
        json_object_set_new(job, "gpus", json_string(gpus));
    agent_shares_grant(&a->shares, job);
    if (a->o->env != NULL)
        json_object_set(job, "node_env", a->o->env);
    job_cgroup(a, id, job);
    json_array_foreach(to_start, i, r)
        start_rank(a, job, r, placed);
    if (find(a, id, -1) == NULL)
        agent_shares_revoke(&a->shares, id); /* nothing of it runs here */
    json_decref(to_start);
}

/* Stops the workload's process group: TERM, then KILL after the grace period. */
static void stop(struct agent *a, struct local_job *j)
{
    char dir[4096];
    long pid;

    job_dir(a, j->id, j->rank, dir, sizeof(dir));
    if (read_int(dir, "workload", &pid) != 0 || pid <= 1)
        return;
    if (j->killed_at == 0) {
        j->killed_at = time(NULL);
        kill(-(pid_t)pid, SIGTERM);
        if (j->suspended) { /* it has to run to hear the TERM */
            agent_cgroup_freeze(&a->cg, j->id, false);
            kill(-(pid_t)pid, SIGCONT);
        }
    } else if (time(NULL) - j->killed_at >= KILL_GRACE_S) {
        /* Everything in the job's cgroup, what left its process group too. */
        agent_cgroup_kill(&a->cg, j->id);
        kill(-(pid_t)pid, SIGKILL);
    }
}

/* The CUDA processes a swap out moved, for the swap in: DIR/swapped, one pid a line. */
static int swapped_pids(const char *dir, pid_t *pids, int max)
{
    char path[4200];
    int n = 0, pid;
    FILE *f;

    snprintf(path, sizeof(path), "%s/swapped", dir);
    if ((f = fopen(path, "re")) == NULL)
        return 0;
    while (n < max && fscanf(f, "%d", &pid) == 1)
        pids[n++] = pid;
    fclose(f);
    return n;
}

/* Swaps each of pids out or in; on a failure, what was swapped out goes back in. */
static int swap_all(struct agent *a, const pid_t *pids, int n, bool out, json_t *info)
{
    struct swap_opts o = {.via = "auto", .regions = a->shares.dir, .host_reserve = 1ull << 30,
                          .timeout_s = 30};
    uint64_t bytes = 0;
    double secs = 0;
    int k;

    for (k = 0; k < n; k++) {
        struct swap_result r;

        o.bytes_hint = out ? swap_nvml_bytes(pids[k]) : 0;
        if (swap_process(&o, pids[k], out, &r) != 0) {
            json_object_set_new(info, "error", json_string(r.msg));
            break;
        }
        bytes += r.bytes;
        secs += r.seconds;
        json_object_set_new(info, "via", json_string(r.via));
    }
    for (int i = 0; out && k < n && i < k; i++) {
        struct swap_result r;

        swap_process(&o, pids[i], false, &r);
    }
    json_object_set_new(info, "bytes", json_integer((json_int_t)bytes));
    json_object_set_new(info, "seconds", json_real(secs));
    return k == n ? 0 : -1;
}

/* A swap the server asks for ("swap": {"want": "out"|"in", "why"}), done when the job here is
 * not so already.  Every report clears the want, so that a failure is not tried again until the
 * server asks anew. */
static void swap_job(struct agent *a, struct local_job *j, json_t *job)
{
    json_t *swap = json_object_get(job, "swap");
    const char *want = json_string_value(json_object_get(swap, "want"));
    const char *why = json_string_value(json_object_get(swap, "why"));
    char dir[4096], path[4200];
    pid_t pids[64];
    long sup;
    int n;
    bool out, swapped;
    json_t *info;

    if (want == NULL || (strcmp(want, "out") != 0 && strcmp(want, "in") != 0) ||
        j->killed_at != 0)
        return;
    out = strcmp(want, "out") == 0;
    job_dir(a, j->id, j->rank, dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/swapped", dir);
    swapped = access(path, F_OK) == 0;
    if (out == swapped || read_int(dir, "supervisor", &sup) != 0)
        return;
    info = json_pack("{s:s, s:s, s:s}", "want", "", "node", a->name, "why", why ? why : "");
    /* Refused or failed: the job stays as it is here. */
    const char *now = swapped ? "swapped" : "running";

    n = out ? swap_session_pids((pid_t)sup, pids, 64) : swapped_pids(dir, pids, 64);
    if (n == 0) {
        json_object_set_new(info, "error", json_string(out ? "the job has no CUDA process to swap"
                                                           : "nothing of the job is swapped out"));
        report_with(a, j, now, json_pack("{s:o}", "swap", info));
        return;
    }
    if (swap_all(a, pids, n, out, info) != 0) {
        report_with(a, j, now, json_pack("{s:o}", "swap", info));
        return;
    }
    if (out) {
        FILE *f = fopen(path, "we");

        for (int k = 0; f != NULL && k < n; k++)
            fprintf(f, "%d\n", (int)pids[k]);
        if (f != NULL)
            fclose(f);
    } else {
        unlink(path);
    }
    report_with(a, j, out ? "swapped" : "running", json_pack("{s:o}", "swap", info));
}

/* Suspends a replica (its cgroup frozen, or its process group stopped) or lets it go on, as the
 * user asked ("control": "suspend" or ""); the job's directory keeps what was done, for an agent
 * that restarts. */
static void control_job(struct agent *a, struct local_job *j, json_t *job)
{
    bool want = strcmp(json_string_value(json_object_get(job, "control")) ?: "", "suspend") == 0;
    char dir[4096], path[4200];
    long pid;

    job_dir(a, j->id, j->rank, dir, sizeof(dir));
    if (want == j->suspended || j->killed_at != 0 || read_int(dir, "workload", &pid) != 0 ||
        pid <= 1)
        return;
    if (agent_cgroup_freeze(&a->cg, j->id, want) != 0)
        kill(-(pid_t)pid, want ? SIGSTOP : SIGCONT);
    j->suspended = want;
    snprintf(path, sizeof(path), "%s/suspended", dir);
    if (want)
        mark(dir, "suspended");
    else
        unlink(path);
    report(a, j, want ? "suspended" : "running", 0);
}

/* Runs what is assigned, stops what is no longer. */
static void reconcile(struct agent *a, json_t *jobs)
{
    size_t i;
    json_t *j;

    /* Swaps first: a job swapped out makes room for one that starts beside it. */
    json_array_foreach(jobs, i, j) {
        int64_t id = json_integer_value(json_object_get(j, "id"));
        bool borrowed = json_is_true(json_object_get(j, "borrowed")), told = false;

        for (int k = 0; k < a->njobs; k++)
            if (a->jobs[k].id == id) {
                swap_job(a, &a->jobs[k], j);
                control_job(a, &a->jobs[k], j);
                /* Swapped back in on GPUs of its own: no longer a borrower. */
                if (a->jobs[k].borrowed != borrowed && !told) {
                    agent_shares_borrower(&a->shares, j, borrowed);
                    told = true;
                }
                a->jobs[k].borrowed = borrowed;
            }
    }
    json_array_foreach(jobs, i, j) {
        int64_t id = json_integer_value(json_object_get(j, "id"));

        start(a, j);
        for (int k = 0; k < a->njobs; k++)
            if (a->jobs[k].id == id)
                a->jobs[k].borrowed = json_is_true(json_object_get(j, "borrowed"));
    }
    for (int k = 0; k < a->njobs; k++) {
        bool wanted = false;

        json_array_foreach(jobs, i, j)
            wanted |= json_integer_value(json_object_get(j, "id")) == a->jobs[k].id;
        if (!wanted)
            stop(a, &a->jobs[k]);
    }
}

/* Reports jobs that started and jobs that ended; forgets the ended ones. */
static void check_jobs(struct agent *a)
{
    for (int k = 0; k < a->njobs; k++) {
        struct local_job *j = &a->jobs[k];
        char dir[4096];
        long code;
        bool ended;

        job_dir(a, j->id, j->rank, dir, sizeof(dir));
        if (j->supervisor == 0 && read_int(dir, "supervisor", &code) == 0)
            j->supervisor = (pid_t)code;
        if (!j->reported_running && j->killed_at == 0 && has(dir, "workload"))
            j->reported_running = report(a, j, "running", 0);
        ended = read_int(dir, "exit", &code) == 0;
        /* Its output reaches the server before its end does (a gang's: its rank 0's); what
         * cannot be sent now is sent on a later pass. */
        if ((j->rank == 0 &&
             agent_logs_ship(a->o->server, a->token, a->name, j->id, dir, ended) != 0) ||
            !ended)
            continue;
        /* A job the server took away ended because of that: nothing to report.  An end the
         * server did not hear of is reported again on the next pass. */
        if ((j->killed_at == 0 || j->over_cap) &&
            !report(a, j, code == 0 && !j->over_cap ? "succeeded" : "failed", code))
            continue;
        mark(dir, "reported");
        a->jobs[k--] = a->jobs[--a->njobs];
        if (find(a, j->id, -1) == NULL) { /* its last replica here */
            agent_shares_revoke(&a->shares, j->id);
            agent_cgroup_remove(&a->cg, j->id);
        }
    }
}

/* A borrower whose lender's allocation had the library swap it out: it is swapped out, as the
 * server is told, and comes back when the server asks for it (swap_job). */
static void notice_reclaims(struct agent *a)
{
    for (int k = 0; k < a->njobs; k++) {
        struct local_job *j = &a->jobs[k];
        char dir[4096], path[4200];
        uint64_t bytes;
        pid_t pids[64];
        int n;
        FILE *f;

        if (!j->borrowed || j->killed_at != 0)
            continue;
        job_dir(a, j->id, j->rank, dir, sizeof(dir));
        snprintf(path, sizeof(path), "%s/swapped", dir);
        if (access(path, F_OK) == 0 ||
            (n = agent_shares_reclaimed(&a->shares, j->id, pids, 64, &bytes)) == 0)
            continue;
        /* Told first: what the server did not hear of is told again on the next pass. */
        if (!report_with(a, j, "swapped",
                         json_pack("{s:{s:s, s:s, s:s, s:s, s:I}}", "swap", "want", "", "node",
                                   a->name, "why", "its lender needed its GPU memory", "via",
                                   "library", "bytes", (json_int_t)bytes)) ||
            (f = fopen(path, "we")) == NULL)
            continue;
        for (int i = 0; i < n; i++)
            fprintf(f, "%d\n", (int)pids[i]);
        fclose(f);
    }
}

/* A job whose processes hold more GPU memory than its cap is stopped, and says why in its log. */
static void enforce_caps(struct agent *a)
{
    for (int k = 0; k < a->njobs; k++) {
        struct local_job *j = &a->jobs[k];
        char dir[4096], why[512], path[4200];
        long sup;
        FILE *f;

        job_dir(a, j->id, j->rank, dir, sizeof(dir));
        if (j->killed_at != 0 || read_int(dir, "supervisor", &sup) != 0 ||
            !agent_shares_over_cap(&a->shares, j->id, (pid_t)sup, why, sizeof(why)))
            continue;
        fprintf(stderr, "gpool agent: %s\n", why);
        snprintf(path, sizeof(path), "%s/stderr", dir);
        if ((f = fopen(path, "a")) != NULL) {
            fprintf(f, "%s\n", why);
            fclose(f);
        }
        j->over_cap = true;
        stop(a, j);
    }
}

/* The jobs' supervisors, for the heartbeat's measures of each job. */
static void publish(struct agent *a)
{
    pthread_mutex_lock(&a->mu);
    a->nseen = 0;
    for (int k = 0; k < a->njobs; k++)
        if (a->jobs[k].supervisor > 0)
            a->seen[a->nseen++] = (struct agent_workload){a->jobs[k].id, a->jobs[k].supervisor};
    pthread_mutex_unlock(&a->mu);
}

/* Jobs a previous agent started and did not report the end of. */
static void adopt(struct agent *a)
{
    char path[4400];
    struct dirent *e;
    DIR *d;

    snprintf(path, sizeof(path), "%s/jobs", a->o->state_dir);
    if ((d = opendir(path)) == NULL)
        return;
    while ((e = readdir(d)) != NULL && a->njobs < MAX_JOBS) {
        char dir[4096], *end;
        long id = strtol(e->d_name, &end, 10), rank = 0;

        /* ID, or ID.RANK (a gang's replica); ID.run-TIME is an earlier run, ended. */
        if (*end == '.' && end[1] >= '0' && end[1] <= '9')
            rank = strtol(end + 1, &end, 10);
        if (id <= 0 || *end != '\0' || rank < 0 || rank >= 1024)
            continue;
        job_dir(a, id, (int)rank, dir, sizeof(dir));
        if (!has(dir, "reported") && has(dir, "supervisor"))
            a->jobs[a->njobs++] = (struct local_job){.id = id, .rank = (int)rank,
                                                     .reported_running = true,
                                                     .suspended = has(dir, "suspended")};
    }
    closedir(d);
    if (a->njobs > 0)
        fprintf(stderr, "gpool agent: adopted %d running job(s)\n", a->njobs);
}

/* The first line of a file into buf: 0, or -1 with a message. */
static int read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");

    if (f == NULL || fgets(buf, (int)len, f) == NULL) {
        fprintf(stderr, "gpool agent: %s: %s\n", path, f ? "empty" : strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

/* Writes the node's credential to path, readable by its owner only, whole or not at all. */
static int save_credential(const char *path, const char *token)
{
    char tmp[4300], dir[4200], *slash;
    size_t len = strlen(token);
    int fd, dfd, rc = -1;

    snprintf(tmp, sizeof(tmp), "%s.new", path);
    unlink(tmp);
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
        return -1;
    if (write(fd, token, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0)
        rc = 0;
    close(fd);
    if (rc != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    snprintf(dir, sizeof(dir), "%s", path);
    if ((slash = strrchr(dir, '/')) != NULL) {
        *slash = '\0';
        if ((dfd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    return 0;
}

/*
 * The node's credential: with --token-file, that token; with --join-token-file, the one kept in
 * STATE_DIR/credential, got once from the server in exchange for the join token (POST
 * /api/v1/agent/join) and kept there, mode 0600.
 */
static int node_credential(struct agent *a)
{
    char path[4200], join[256], err[512];
    json_t *body, *out = NULL;
    long status = 0;

    if (a->o->token_file != NULL)
        return 0; /* read first of all */
    snprintf(path, sizeof(path), "%s/credential", a->o->state_dir);
    if (access(path, F_OK) == 0)
        return read_line(path, a->token, sizeof(a->token));
    if (read_line(a->o->join_token_file, join, sizeof(join)) != 0)
        return -1;
    body = json_pack("{s:s}", "name", a->name);
    while (http_json(a->o->server, join, "POST", "/api/v1/agent/join", body, 10, &status, &out, err,
                     sizeof(err)) != 0) {
        fprintf(stderr, "gpool agent: joining: %s; trying again\n", err);
        sleep(1);
    }
    json_decref(body);
    if (status != 201 || !json_is_string(json_object_get(out, "token"))) {
        const char *msg =
            json_string_value(json_object_get(json_object_get(out, "error"), "message"));

        fprintf(stderr, "gpool agent: the server refused node %s's join: %s (HTTP %ld)\n", a->name,
                msg ? msg : "no reason given", status);
        json_decref(out);
        return -1;
    }
    snprintf(a->token, sizeof(a->token), "%s", json_string_value(json_object_get(out, "token")));
    json_decref(out);
    if (save_credential(path, a->token) != 0) {
        fprintf(stderr, "gpool agent: %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(stderr, "gpool agent: node %s joined; its credential is in %s\n", a->name, path);
    return 0;
}

static int prepare(struct agent *a)
{
    char err[256], path[4200];

    if (a->o->token_file != NULL && read_line(a->o->token_file, a->token, sizeof(a->token)) != 0)
        return -1;
    if ((a->node = agent_discover(a->o->name, err, sizeof(err))) == NULL) {
        fprintf(stderr, "gpool agent: %s\n", err);
        return -1;
    }
    snprintf(a->name, sizeof(a->name), "%s", json_string_value(json_object_get(a->node, "name")));
    if (a->o->address != NULL)
        json_object_set_new(a->node, "address", json_string(a->o->address));
    if (a->o->cpu_milli > 0)
        json_object_set_new(a->node, "cpu_milli", json_integer(a->o->cpu_milli));
    snprintf(path, sizeof(path), "%s/jobs", a->o->state_dir);
    if ((mkdir(a->o->state_dir, 0755) != 0 && errno != EEXIST) ||
        (mkdir(path, 0755) != 0 && errno != EEXIST)) {
        fprintf(stderr, "gpool agent: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (node_credential(a) != 0)
        return -1;
    if (agent_cgroups_init(&a->cg, a->o->cgroup_root, a->name, a->o->state_dir) != 0)
        return -1;
    fprintf(stderr, "gpool agent: %s%s\n", a->cg.on ? "workloads in cgroups under " :
                                                        "no writable cgroup v2 hierarchy: workloads in "
                                                        "process groups, supervisors as subreapers",
            a->cg.on ? a->cg.root : "");
    return agent_shares_init(&a->shares, a->o->state_dir, json_object_get(a->node, "gpus"),
                             a->o->cuda_lib);
}

int agent_run(const struct agent_opts *o)
{
    static struct agent a;
    pthread_t hb;
    long long gen = -1;

    a.o = o;
    pthread_mutex_init(&a.mu, NULL);
    if (o->ca_file != NULL)
        http_set_ca(o->ca_file);
    if (prepare(&a) != 0)
        return -1;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGCHLD, SIG_IGN); /* supervisors are reaped by the system */
    while (register_node(&a) != 0 && !stopping)
        sleep(1);
    fprintf(stderr, "gpool agent: node %s registered with %s, %zu GPU(s)\n", a.name, o->server,
            json_array_size(json_object_get(a.node, "gpus")));
    adopt(&a);
    pthread_create(&hb, NULL, heartbeat, &a);
    while (!stopping) {
        char path[512], err[512];
        long status;
        json_t *out;

        if (gen < 0)
            snprintf(path, sizeof(path), "/api/v1/agent/assignments?node=%s", a.name);
        else
            snprintf(path, sizeof(path), "/api/v1/agent/assignments?node=%s&since=%lld&wait=%d",
                     a.name, gen, POLL_WAIT_S);
        if (http_json(o->server, a.token, "GET", path, NULL, POLL_WAIT_S + 10, &status, &out,
                      err, sizeof(err)) != 0 || status != 200) {
            fprintf(stderr, "gpool agent: assignments: %s\n",
                    status != 0 ? "the server refused" : err);
            json_decref(out);
            sleep(1);
            continue;
        }
        gen = json_integer_value(json_object_get(out, "generation"));
        reconcile(&a, json_object_get(out, "jobs"));
        json_decref(out);
        check_jobs(&a);
        notice_reclaims(&a);
        enforce_caps(&a);
        publish(&a);
    }
    pthread_join(hb, NULL);
    fprintf(stderr, "gpool agent: stopping on signal %d; %d job(s) keep running\n",
            (int)stopping, a.njobs);
    if (o->cgroup_root == NULL && a.cg.on)
        rmdir(a.cg.root); /* only when no workload's cgroup is left in it */
    json_decref(a.node);
    return 0;
}
