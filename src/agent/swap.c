/*
 * Swapping a workload's GPU memory to host memory and back, from outside the process.  Through
 * the driver's process checkpoint API where it exists and takes the process (lock with a timeout,
 * since locking waits for the kernels in flight; checkpoint; later restore and unlock; cuInit
 * first, in this process); else through libgpool-cuda inside the process (GPOOL_SWAP=library),
 * asked through the process's slots in the regions.  A swap out is refused unless the host has
 * the memory for it, beyond a reserve.  Depends on libc and the dynamic loader only.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <linux/futex.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "agent/swap.h"
#include "common/gcuda.h"
#include "agent/nvml.h"
#include "cuda/region.h"

struct ckpt {
    CUresult (*init)(unsigned);
    CUresult (*state)(int, CUprocessState *);
    CUresult (*lock)(int, CUcheckpointLockArgs *);
    CUresult (*checkpoint)(int, CUcheckpointCheckpointArgs *);
    CUresult (*restore)(int, CUcheckpointRestoreArgs *);
    CUresult (*unlock)(int, CUcheckpointUnlockArgs *);
    CUresult (*name)(CUresult, const char **);
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int fail(struct swap_result *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct swap_result *r, int err, const char *fmt, ...)
{
    va_list ap;

    r->err = err;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
    va_end(ap);
    return -1;
}

/* The driver's checkpoint calls, or false when it has none. */
static bool load_ckpt(struct ckpt *c)
{
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);

    if (h == NULL)
        return false;
    *(void **)&c->init = dlsym(h, "cuInit");
    *(void **)&c->state = dlsym(h, "cuCheckpointProcessGetState");
    *(void **)&c->lock = dlsym(h, "cuCheckpointProcessLock");
    *(void **)&c->checkpoint = dlsym(h, "cuCheckpointProcessCheckpoint");
    *(void **)&c->restore = dlsym(h, "cuCheckpointProcessRestore");
    *(void **)&c->unlock = dlsym(h, "cuCheckpointProcessUnlock");
    *(void **)&c->name = dlsym(h, "cuGetErrorName");
    return c->init && c->state && c->lock && c->checkpoint && c->restore && c->unlock &&
           c->name && c->init(0) == CUDA_SUCCESS;
}

static const char *cu_name(const struct ckpt *c, CUresult rc)
{
    const char *s = "CUDA_ERROR_UNKNOWN";

    c->name(rc, &s);
    return s;
}

/* Each slot of pid in the regions under dir: calls fn(slot, arg) and counts them. */
static int each_slot(const char *dir, pid_t pid, void (*fn)(struct gpr_proc *, void *), void *arg)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        char path[PATH_MAX], err[256];
        struct gpr_region *r;

        if (strncmp(e->d_name, "GPU-", 4) != 0 || strstr(e->d_name, ".tmp") != NULL ||
            gpr_path(path, sizeof(path), dir, e->d_name) != 0 ||
            (r = gpr_open(path, err, sizeof(err))) == NULL)
            continue;
        for (int i = 0; i < GPR_PROCS; i++)
            if (atomic_load(&r->procs[i].pid) == pid && gpr_proc_alive(&r->procs[i])) {
                fn(&r->procs[i], arg);
                n++;
            }
        gpr_close(r);
    }
    closedir(d);
    return n;
}

struct tally {
    uint64_t mem, bytes, ns, copy_ns;
    int lib, out, unswappable, err;
};

static void tally(struct gpr_proc *p, void *arg)
{
    struct tally *t = arg;

    t->mem += atomic_load(&p->mem_used);
    t->bytes += atomic_load(&p->swap_bytes);
    if (atomic_load(&p->swap_ns) > t->ns)
        t->ns = atomic_load(&p->swap_ns);
    t->copy_ns += atomic_load(&p->swap_copy_ns);
    t->lib += atomic_load(&p->swap_lib) != 0;
    t->out += atomic_load(&p->swap_state) == GPR_SWAPPED_OUT;
    if (atomic_load(&p->unswappable) != 0)
        t->unswappable = atomic_load(&p->unswappable);
    if (atomic_load(&p->swap_error) != 0)
        t->err = atomic_load(&p->swap_error);
}

static void ask(struct gpr_proc *p, void *arg)
{
    atomic_store(&p->swap_req, *(uint32_t *)arg);
    syscall(SYS_futex, (uint32_t *)&p->swap_req, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static void pending(struct gpr_proc *p, void *arg)
{
    *(int *)arg += atomic_load(&p->swap_req) != GPR_SWAP_NONE;
}

static int via_library(const char *dir, pid_t pid, bool out, double timeout_s,
                       struct swap_result *r)
{
    uint32_t req = out ? GPR_SWAP_OUT : GPR_SWAP_IN;
    double until = now_s() + timeout_s;
    struct tally t = {0};
    int left = 1;

    each_slot(dir, pid, ask, &req);
    while (left > 0 && now_s() < until) {
        struct timespec ts = {0, 1000000};

        left = 0;
        each_slot(dir, pid, pending, &left);
        if (left > 0)
            nanosleep(&ts, NULL);
    }
    if (left > 0)
        return fail(r, ETIMEDOUT, "the process did not answer within the timeout");
    each_slot(dir, pid, tally, &t);
    r->via = "library";
    r->bytes = t.bytes;
    r->seconds = t.ns / 1e9;
    r->copy_seconds = t.copy_ns / 1e9;
    if (t.err == EPERM)
        return fail(r, EPERM, "the process cannot be swapped by the library: it holds %s",
                    t.unswappable == GPR_UNSWAPPABLE_MANAGED ? "managed memory"
                                                              : "pitched allocations");
    if (t.err == EALREADY)
        return fail(r, EALREADY, "the process is already swapped %s", out ? "out" : "in");
    if (t.err == ENOMEM || t.err == ENOSPC)
        return fail(r, t.err, "not enough free device memory to swap it in");
    if (t.err != 0)
        return fail(r, t.err, "the library's swap failed: %s", strerror(t.err));
    return 0;
}

static int via_driver(const struct ckpt *c, pid_t pid, bool out, double timeout_s,
                      struct swap_result *r)
{
    double t0 = now_s();
    CUresult rc;

    r->via = "driver";
    if (out) {
        CUcheckpointLockArgs la = {.timeoutMs = (unsigned)(timeout_s * 1000)};
        CUcheckpointCheckpointArgs ca = {{0}};

        if ((rc = c->lock(pid, &la)) != CUDA_SUCCESS)
            return fail(r, EIO, "cuCheckpointProcessLock: %s", cu_name(c, rc));
        if ((rc = c->checkpoint(pid, &ca)) != CUDA_SUCCESS) {
            CUcheckpointUnlockArgs ua = {{0}};

            c->unlock(pid, &ua);
            return fail(r, EIO, "cuCheckpointProcessCheckpoint: %s", cu_name(c, rc));
        }
    } else {
        CUcheckpointRestoreArgs ra = {0};
        CUcheckpointUnlockArgs ua = {{0}};

        if ((rc = c->restore(pid, &ra)) != CUDA_SUCCESS)
            return fail(r, rc == CUDA_ERROR_OUT_OF_MEMORY ? ENOMEM : EIO,
                        "cuCheckpointProcessRestore: %s", cu_name(c, rc));
        if ((rc = c->unlock(pid, &ua)) != CUDA_SUCCESS)
            return fail(r, EIO, "cuCheckpointProcessUnlock: %s", cu_name(c, rc));
    }
    r->seconds = now_s() - t0;
    return 0;
}

/* Calls fn for every compute process NVML shows on any GPU: false when NVML is not there. */
static bool nvml_each(void (*fn)(const nvmlProcessInfo_t *, void *), void *arg)
{
    const struct agent_nvml *nv = agent_nvml();
    unsigned n = 0;

    if (nv == NULL || nv->GetProcesses == NULL || nv->GetCount(&n) != NVML_SUCCESS)
        return false;
    for (unsigned d = 0; d < n; d++) {
        nvmlProcessInfo_t infos[128];
        unsigned k = 128;
        nvmlDevice_t dev;

        if (nv->GetHandle(d, &dev) != NVML_SUCCESS ||
            nv->GetProcesses(dev, &k, infos) != NVML_SUCCESS)
            continue;
        for (unsigned i = 0; i < k && i < 128; i++)
            fn(&infos[i], arg);
    }
    return true;
}

struct pid_bytes {
    pid_t pid;
    uint64_t sum;
};

static void add_bytes(const nvmlProcessInfo_t *p, void *arg)
{
    struct pid_bytes *b = arg;

    if ((pid_t)p->pid == b->pid && p->usedGpuMemory != NVML_VALUE_NOT_AVAILABLE)
        b->sum += p->usedGpuMemory;
}

uint64_t swap_nvml_bytes(pid_t pid)
{
    struct pid_bytes b = {pid, 0};

    nvml_each(add_bytes, &b);
    return b.sum;
}

pid_t swap_session_of(pid_t pid)
{
    pid_t sid = 0;

    return gpr_proc_stat(pid, &sid, NULL) == 0 ? sid : 0;
}

struct session_pids {
    pid_t session, *pids;
    int n, max;
};

static void add_pid(const nvmlProcessInfo_t *p, void *arg)
{
    struct session_pids *s = arg;

    for (int j = 0; j < s->n; j++)
        if (s->pids[j] == (pid_t)p->pid)
            return;
    if (s->n < s->max && swap_session_of((pid_t)p->pid) == s->session)
        s->pids[s->n++] = (pid_t)p->pid;
}

int swap_session_pids(pid_t session, pid_t *pids, int max)
{
    struct session_pids s = {session, pids, 0, max};

    nvml_each(add_pid, &s);
    return s.n;
}

uint64_t swap_host_available(void)
{
    char line[256];
    unsigned long long kb = 0;
    FILE *f = fopen("/proc/meminfo", "re");

    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return (uint64_t)kb * 1024;
}

int swap_process(const struct swap_opts *o, pid_t pid, bool out, struct swap_result *r)
{
    struct ckpt c;
    struct tally t = {0};
    CUprocessState st = CU_PROCESS_STATE_FAILED;
    bool driver = false;

    memset(r, 0, sizeof(*r));
    r->via = "";
    if (strcmp(o->via, "library") != 0 && load_ckpt(&c) &&
        c.state(pid, &st) == CUDA_SUCCESS)
        driver = out ? st == CU_PROCESS_STATE_RUNNING : st == CU_PROCESS_STATE_CHECKPOINTED;
    if (strcmp(o->via, "driver") == 0 && !driver)
        return fail(r, ENOTSUP, "the driver cannot %s this process (no checkpoint API, or it is "
                                "not a CUDA process in that state)", out ? "swap out" : "swap in");
    each_slot(o->regions, pid, tally, &t);
    if (!driver && t.lib == 0)
        return fail(r, ENOTSUP, "cannot swap: the driver has no checkpoint API for it and the "
                                "process does not allocate through libgpool-cuda "
                                "(GPOOL_SWAP=library)");
    if (out) {
        /* What the process holds on the GPUs: the library's books, or the driver's through the
         * caller (bytes_hint, from NVML). */
        uint64_t need = t.mem > o->bytes_hint ? t.mem : o->bytes_hint, avail = swap_host_available();

        if (need + o->host_reserve > avail) {
            char a[64], b[64];

            snprintf(a, sizeof(a), "%.2f GiB", need / 1073741824.0);
            snprintf(b, sizeof(b), "%.2f GiB", (avail > o->host_reserve ? avail - o->host_reserve
                                                                         : 0) / 1073741824.0);
            return fail(r, ENOMEM, "refused: the swap needs %s of host memory, %s is free "
                                   "beyond the reserve", a, b);
        }
        r->bytes = need;
    }
    if (driver && via_driver(&c, pid, out, o->timeout_s, r) == 0)
        return 0;
    if (driver && (!out || strcmp(o->via, "driver") == 0 || t.lib == 0))
        return -1;
    /* The driver refused this process (some drivers do, with CUDA_VISIBLE_DEVICES subsets or
     * other GPUs): the library swaps it, when it runs with the swap path. */
    return via_library(o->regions, pid, out, o->timeout_s, r);
}
