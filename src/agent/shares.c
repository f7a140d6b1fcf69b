/*
 * The agent's side of libgpool-cuda: one region per GPU in the state directory, each job's cap,
 * share and limit written there before it starts and taken off when it ends, the library put in
 * the job's environment, and the caps checked from outside through NVML, since a process may run
 * without the library (LD_PRELOAD is voluntary): a job whose processes hold more than its cap on a
 * GPU is stopped.
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/shares.h"
#include "agent/swap.h"
#include "agent/nvml.h"
#include "common/units.h"

/* Where libgpool-cuda lies beside the gpool binary: the build tree, or an installed prefix. */
/* Beside the build tree's gpool-core, then from an installed PREFIX/libexec/gpool/gpool-core (or
 * an executable in PREFIX/bin). */
static const char *const lib_places[] = {"src/cuda/libgpool-cuda.so",
                                         "../../lib/x86_64-linux-gnu/libgpool-cuda.so",
                                         "../../lib64/libgpool-cuda.so",
                                         "../../lib/libgpool-cuda.so",
                                         "../lib/x86_64-linux-gnu/libgpool-cuda.so",
                                         "../lib64/libgpool-cuda.so", "../lib/libgpool-cuda.so"};

static void find_lib(struct agent_shares *s, const char *given)
{
    char exe[PATH_MAX], path[PATH_MAX + 64];
    ssize_t n;

    s->lib[0] = '\0';
    if (given != NULL) {
        if (strcmp(given, "none") != 0)
            snprintf(s->lib, sizeof(s->lib), "%s", given);
        return;
    }
    if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) <= 0)
        return;
    exe[n] = '\0';
    *strrchr(exe, '/') = '\0';
    for (size_t i = 0; i < sizeof(lib_places) / sizeof(lib_places[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", exe, lib_places[i]);
        if (realpath(path, s->lib) != NULL && access(s->lib, R_OK) == 0)
            return;
    }
    s->lib[0] = '\0';
}

int agent_shares_init(struct agent_shares *s, const char *state_dir, json_t *gpus,
                      const char *lib)
{
    char err[512];
    size_t i;
    json_t *g;

    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "%s/regions", state_dir);
    if (mkdir(s->dir, 0755) != 0 && access(s->dir, W_OK) != 0) {
        fprintf(stderr, "gpool agent: %s: cannot create the GPU regions\n", s->dir);
        return -1;
    }
    json_array_foreach(gpus, i, g) {
        if (i >= AGENT_MAX_GPUS)
            break;
        s->total[i] = (uint64_t)json_integer_value(json_object_get(g, "memory_bytes"));
        s->r[i] = gpr_create(s->dir, json_string_value(json_object_get(g, "uuid")), s->total[i],
                             err, sizeof(err));
        if (s->r[i] == NULL) {
            fprintf(stderr, "gpool agent: %s\n", err);
            return -1;
        }
        s->n = (int)i + 1;
    }
    find_lib(s, lib);
    if (s->lib[0] == '\0')
        fprintf(stderr, "gpool agent: libgpool-cuda not found: fractions are not enforced inside "
                        "the workloads (--cuda-lib PATH)\n");
    return 0;
}

/* The cap, share and limit of a job's request on one of its GPUs. */
static void job_terms(const struct agent_shares *s, json_t *spec, int gpu, uint64_t *cap,
                      unsigned *share, unsigned *limit)
{
    json_t *frac = json_object_get(spec, "gpu"), *mem = json_object_get(spec, "gpu_memory"),
           *lim = json_object_get(spec, "gpu_limit");
    uint64_t total = s->total[gpu], bytes = 0;

    *cap = 0;
    *share = *limit = 1000;
    if (json_is_number(frac) && json_number_value(frac) < 1) {
        *share = (unsigned)(json_number_value(frac) * 1000 + 0.5);
        *cap = (uint64_t)(json_number_value(frac) * (double)total);
    } else if ((json_is_string(mem) &&
                units_parse_bytes(json_string_value(mem), &bytes) == 0) ||
               (json_is_integer(mem) && (bytes = (uint64_t)json_integer_value(mem)) > 0)) {
        *cap = bytes;
        *share = total > 0 ? (unsigned)(bytes * 1000 / total) : 1000;
    }
    if (*share < 1)
        *share = 1;
    if (*share > 1000)
        *share = 1000;
    if (json_is_number(lim))
        *limit = (unsigned)(json_number_value(lim) * 1000 + 0.5);
    if (*limit < *share || *limit > 1000)
        *limit = *limit < *share ? *share : 1000;
}

/* Calls fn on each GPU of the job's "gpus" ("0,2") that this node has. */
static void each_gpu(struct agent_shares *s, json_t *job,
                     void (*fn)(struct agent_shares *, int, void *), void *arg)
{
    const char *gpus = json_string_value(json_object_get(job, "gpus"));

    for (const char *p = gpus; p != NULL && *p != '\0';) {
        char *end;
        long g = strtol(p, &end, 10);

        if (end == p)
            break;
        if (g >= 0 && g < s->n)
            fn(s, (int)g, arg);
        p = *end == ',' ? end + 1 : end;
    }
}

struct borrower_arg {
    char id[32];
    bool borrower;
};

static void set_borrower(struct agent_shares *s, int g, void *arg)
{
    struct borrower_arg *b = arg;

    gpr_job_set_borrower(s->r[g], b->id, b->borrower);
}

void agent_shares_borrower(struct agent_shares *s, json_t *job, bool borrower)
{
    struct borrower_arg b = {.borrower = borrower};

    snprintf(b.id, sizeof(b.id), "%lld", (long long)json_integer_value(json_object_get(job, "id")));
    each_gpu(s, job, set_borrower, &b);
}

struct grant_arg {
    json_t *spec;
    char id[32];
};

static void grant_on(struct agent_shares *s, int g, void *arg)
{
    struct grant_arg *x = arg;
    uint64_t cap;
    unsigned share, limit;

    job_terms(s, x->spec, g, &cap, &share, &limit);
    if (gpr_job_set(s->r[g], x->id, cap, share, limit) < 0)
        fprintf(stderr, "gpool agent: job %s: GPU %d has no room for another job's share: not "
                        "enforced there\n", x->id, g);
}

void agent_shares_grant(struct agent_shares *s, json_t *job)
{
    struct grant_arg x = {.spec = json_object_get(job, "spec")};
    json_t *env = json_object();

    snprintf(x.id, sizeof(x.id), "%lld", (long long)json_integer_value(json_object_get(job, "id")));
    each_gpu(s, job, grant_on, &x);
    if (json_is_true(json_object_get(job, "borrowed")))
        agent_shares_borrower(s, job, true);
    if (s->lib[0] != '\0')
        json_object_set_new(env, "LD_PRELOAD", json_string(s->lib));
    /* A borrower allocates through the library's swap path, so that its lender's allocations
     * can swap it out at once (docs/preload.md, "Borrowers"). */
    if (s->lib[0] != '\0' && json_is_true(json_object_get(job, "borrowed")))
        json_object_set_new(env, "GPOOL_SWAP", json_string("library"));
    json_object_set_new(env, "GPOOL_REGION_DIR", json_string(s->dir));
    json_object_set_new(job, "agent_env", env);
}

int agent_shares_reclaimed(struct agent_shares *s, int64_t job_id, pid_t *pids, int max,
                           uint64_t *bytes)
{
    char id[32];
    int n = 0, live = 0;

    *bytes = 0;
    snprintf(id, sizeof(id), "%lld", (long long)job_id);
    for (int g = 0; g < s->n; g++) {
        struct gpr_region *r = s->r[g];
        int k = gpr_job_find(r, id);

        for (int i = 0; k >= 0 && i < GPR_PROCS; i++) {
            struct gpr_proc *p = &r->procs[i];

            if (atomic_load(&p->pid) == 0 || atomic_load(&p->job) != k || !gpr_proc_alive(p) ||
                !atomic_load(&p->swap_lib))
                continue;
            live++;
            if (atomic_load(&p->swap_state) != GPR_SWAPPED_OUT)
                continue;
            *bytes += atomic_load(&p->swap_bytes);
            if (n < max)
                pids[n++] = atomic_load(&p->pid);
        }
    }
    /* Some of its processes still hold their memory: not swapped out as a whole. */
    return n == live ? n : 0;
}

void agent_shares_revoke(struct agent_shares *s, int64_t job_id)
{
    char id[32];

    snprintf(id, sizeof(id), "%lld", (long long)job_id);
    for (int g = 0; g < s->n; g++)
        gpr_job_remove(s->r[g], id);
}

int agent_shares_over_cap(struct agent_shares *s, int64_t job_id, pid_t supervisor, char *why,
                          size_t len)
{
    const struct agent_nvml *nv = agent_nvml();
    char id[32];

    if (nv == NULL || nv->GetProcesses == NULL || supervisor <= 0)
        return 0;
    snprintf(id, sizeof(id), "%lld", (long long)job_id);
    for (int g = 0; g < s->n; g++) {
        int k = gpr_job_find(s->r[g], id);
        uint64_t cap = k < 0 ? 0 : atomic_load(&s->r[g]->jobs[k].mem_cap), used = 0;
        nvmlProcessInfo_t infos[64];
        unsigned count = 64;
        nvmlDevice_t dev;

        if (cap == 0 || nv->GetHandle((unsigned)g, &dev) != NVML_SUCCESS ||
            nv->GetProcesses(dev, &count, infos) != NVML_SUCCESS)
            continue;
        for (unsigned i = 0; i < count && i < 64; i++)
            if (swap_session_of((pid_t)infos[i].pid) == supervisor)
                used += infos[i].usedGpuMemory;
        /* The driver rounds allocations up: a granule of slack is no overrun. */
        if (used > cap + (2u << 20)) {
            snprintf(why, len, "gpool: job %s used %.2f GiB on %s, over its cap of %.2f GiB: stopped",
                     id, used / 1073741824.0, s->r[g]->uuid, cap / 1073741824.0);
            return 1;
        }
    }
    return 0;
}

/* The entry of job `id` in a GPU's "jobs", made when missing. */
static json_t *job_entry(json_t *jobs, int64_t id)
{
    size_t i;
    json_t *e;

    json_array_foreach(jobs, i, e)
        if (json_integer_value(json_object_get(e, "id")) == id)
            return e;
    e = json_pack("{s:I, s:I, s:i}", "id", (json_int_t)id, "memory_used_bytes", (json_int_t)0,
                  "utilization_pct", 0);
    json_array_append_new(jobs, e);
    return e;
}

static void add_to(json_t *o, const char *key, json_int_t v)
{
    json_object_set_new(o, key, json_integer(json_integer_value(json_object_get(o, key)) + v));
}

/* The job whose supervisor's session pid is in, or 0. */
static int64_t job_of(pid_t pid, const struct agent_workload *w, int n)
{
    pid_t sid = swap_session_of(pid);

    for (int k = 0; k < n && sid > 0; k++)
        if (w[k].supervisor == sid)
            return w[k].id;
    return 0;
}

/* Each job's processes on one GPU: their memory, and their busy % since the last call. */
static json_t *jobs_on(struct agent_shares *s, const struct agent_nvml *nv, int g,
                       nvmlDevice_t dev, const struct agent_workload *w, int n)
{
    nvmlProcessInfo_t infos[64];
    nvmlProcessUtilizationSample_t samples[64];
    unsigned count = 64;
    json_t *jobs = json_array();
    int64_t id;

    if (nv->GetProcesses != NULL && nv->GetProcesses(dev, &count, infos) == NVML_SUCCESS)
        for (unsigned i = 0; i < count && i < 64; i++)
            if ((id = job_of((pid_t)infos[i].pid, w, n)) > 0)
                add_to(job_entry(jobs, id), "memory_used_bytes",
                       (json_int_t)infos[i].usedGpuMemory);
    count = 64;
    if (nv->GetProcessUtilization != NULL &&
        nv->GetProcessUtilization(dev, samples, &count, s->util_seen[g]) == NVML_SUCCESS)
        for (unsigned i = 0; i < count && i < 64; i++) {
            if (samples[i].timeStamp > s->util_seen[g])
                s->util_seen[g] = samples[i].timeStamp;
            if ((id = job_of((pid_t)samples[i].pid, w, n)) > 0)
                add_to(job_entry(jobs, id), "utilization_pct",
                       (json_int_t)(samples[i].smUtil > 100 ? 100 : samples[i].smUtil));
        }
    return jobs;
}

json_t *agent_shares_telemetry(struct agent_shares *s, const struct agent_workload *w, int n)
{
    const struct agent_nvml *nv = agent_nvml();
    json_t *arr = json_array();

    for (int g = 0; g < s->n && nv != NULL; g++) {
        nvmlDevice_t dev;
        nvmlMemory_t m;
        nvmlUtilization_t u;
        json_t *o, *jobs;

        if (nv->GetHandle((unsigned)g, &dev) != NVML_SUCCESS)
            continue;
        o = json_pack("{s:i}", "index", g);
        if (nv->GetMemory(dev, &m) == NVML_SUCCESS)
            json_object_set_new(o, "memory_used_bytes", json_integer((json_int_t)m.used));
        if (nv->GetUtilization != NULL && nv->GetUtilization(dev, &u) == NVML_SUCCESS)
            json_object_set_new(o, "utilization_pct", json_integer(u.gpu));
        jobs = jobs_on(s, nv, g, dev, w, n);
        /* Several processes of a job on one GPU add up; the GPU is busy 100% at most. */
        for (size_t i = 0; i < json_array_size(jobs); i++) {
            json_t *e = json_array_get(jobs, i);

            if (json_integer_value(json_object_get(e, "utilization_pct")) > 100)
                json_object_set_new(e, "utilization_pct", json_integer(100));
        }
        json_object_set_new(o, "jobs", jobs);
        json_array_append_new(arr, o);
    }
    return arr;
}
