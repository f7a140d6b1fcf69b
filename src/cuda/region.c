/*
 * The region between the agent and libgpool-cuda: creating, opening, the job table and the
 * process slots.  Used by both sides; depends on nothing but libc.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cuda/region.h"

int64_t gpr_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

int gpr_path(char *buf, size_t len, const char *dir, const char *uuid)
{
    int n = snprintf(buf, len, "%s/%s", dir, uuid);

    return n < 0 || (size_t)n >= len || strchr(uuid, '/') != NULL ? -1 : 0;
}

static struct gpr_region *map_fd(int fd)
{
    void *p = mmap(NULL, sizeof(struct gpr_region), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

    return p == MAP_FAILED ? NULL : p;
}

static bool well_formed(const struct gpr_region *r)
{
    return r->magic == GPR_MAGIC && r->version == GPR_VERSION &&
           r->size == sizeof(struct gpr_region) && r->njobs == GPR_JOBS &&
           r->nprocs == GPR_PROCS;
}

struct gpr_region *gpr_open(const char *path, char *err, size_t errlen)
{
    struct stat st;
    struct gpr_region *r;
    int fd = open(path, O_RDWR | O_CLOEXEC);

    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || st.st_size != (off_t)sizeof(struct gpr_region)) {
        snprintf(err, errlen, "%s: not a gpool region of this version (%lld bytes, expected %zu)",
                 path, (long long)st.st_size, sizeof(struct gpr_region));
        close(fd);
        return NULL;
    }
    r = map_fd(fd);
    close(fd);
    if (r == NULL) {
        snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
        return NULL;
    }
    if (!well_formed(r)) {
        snprintf(err, errlen, "%s: not a gpool region of version %d", path, GPR_VERSION);
        munmap(r, sizeof(*r));
        return NULL;
    }
    return r;
}

struct gpr_region *gpr_create(const char *dir, const char *uuid, uint64_t total_mem, char *err,
                              size_t errlen)
{
    char path[4096], tmp[4200];
    pthread_mutexattr_t a;
    struct gpr_region *r;
    int fd;

    if (gpr_path(path, sizeof(path), dir, uuid) != 0) {
        snprintf(err, errlen, "bad GPU UUID or directory: %s/%s", dir, uuid);
        return NULL;
    }
    if (access(path, F_OK) == 0 && (r = gpr_open(path, err, errlen)) != NULL) {
        r->total_mem = total_mem;
        return r;
    }
    /* Built aside and renamed, so that no process ever maps half a region. */
    snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
    fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0 || fchmod(fd, 0666) != 0 || ftruncate(fd, sizeof(struct gpr_region)) != 0 ||
        (r = map_fd(fd)) == NULL) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd), unlink(tmp);
        return NULL;
    }
    close(fd);
    r->magic = GPR_MAGIC;
    r->version = GPR_VERSION;
    r->size = sizeof(struct gpr_region);
    r->njobs = GPR_JOBS;
    r->nprocs = GPR_PROCS;
    snprintf(r->uuid, sizeof(r->uuid), "%s", uuid);
    r->total_mem = total_mem;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&r->mu, &a);
    pthread_mutexattr_destroy(&a);
    atomic_store(&r->turn_job, -1);
    for (int i = 0; i < GPR_PROCS; i++)
        atomic_store(&r->procs[i].job, -1);
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        unlink(tmp);
        munmap(r, sizeof(*r));
        return NULL;
    }
    return r;
}

void gpr_close(struct gpr_region *r)
{
    if (r != NULL)
        munmap(r, sizeof(*r));
}

void gpr_lock(struct gpr_region *r)
{
    if (pthread_mutex_lock(&r->mu) == EOWNERDEAD)
        pthread_mutex_consistent(&r->mu); /* every field it guards is written whole */
}

void gpr_unlock(struct gpr_region *r)
{
    pthread_mutex_unlock(&r->mu);
}

int gpr_job_find(struct gpr_region *r, const char *id)
{
    for (int i = 0; i < GPR_JOBS; i++)
        if (atomic_load(&r->jobs[i].used) && strncmp(r->jobs[i].id, id, GPR_ID_MAX) == 0)
            return i;
    return -1;
}

int gpr_job_set(struct gpr_region *r, const char *id, uint64_t mem_cap, unsigned share_milli,
                unsigned limit_milli)
{
    int i;

    if (strlen(id) == 0 || strlen(id) >= GPR_ID_MAX || share_milli < 1 || share_milli > 1000 ||
        limit_milli < share_milli || limit_milli > 1000)
        return -1;
    gpr_lock(r);
    i = gpr_job_find(r, id);
    if (i < 0) {
        for (i = 0; i < GPR_JOBS && atomic_load(&r->jobs[i].used); i++)
            ;
        if (i == GPR_JOBS) {
            gpr_unlock(r);
            return -1;
        }
        struct gpr_job *j = &r->jobs[i];

        memset(j->id, 0, sizeof(j->id));
        strcpy(j->id, id);
        atomic_store(&j->active_until, 0);
        atomic_store(&j->idle_since, 0);
        atomic_store(&j->woke_at, 0);
        atomic_store(&j->vtime_ns, atomic_load(&r->vclock_ns));
        atomic_store(&j->busy_ns, 0);
        atomic_store(&j->launches, 0);
        atomic_store(&j->drain_until, 0);
        atomic_store(&j->want_until, 0);
        atomic_store(&j->borrower, 0);
        atomic_store(&j->yielded_at, 0);
        atomic_store(&j->drained_at, 0);
        atomic_store(&j->yields, 0);
        atomic_store(&j->reclaimed_at, 0);
        atomic_store(&j->reclaims, 0);
        atomic_store(&j->reclaim_bytes, 0);
    }
    atomic_store(&r->jobs[i].mem_cap, mem_cap);
    atomic_store(&r->jobs[i].share_milli, share_milli);
    atomic_store(&r->jobs[i].limit_milli, limit_milli);
    atomic_store(&r->jobs[i].used, 1);
    gpr_unlock(r);
    return i;
}

void gpr_job_remove(struct gpr_region *r, const char *id)
{
    gpr_lock(r);
    int i = gpr_job_find(r, id);

    if (i >= 0) {
        atomic_store(&r->jobs[i].used, 0);
        if (atomic_load(&r->turn_job) == i)
            atomic_store(&r->turn_job, -1);
    }
    gpr_unlock(r);
}

int gpr_job_set_borrower(struct gpr_region *r, const char *id, bool borrower)
{
    int i;

    gpr_lock(r);
    i = gpr_job_find(r, id);
    if (i >= 0)
        atomic_store(&r->jobs[i].borrower, borrower ? 1 : 0);
    gpr_unlock(r);
    return i < 0 ? -1 : 0;
}

int gpr_proc_stat(pid_t pid, pid_t *session, uint64_t *start_ticks)
{
    char path[64], buf[1024], *p;
    unsigned long long ticks = 0;
    int sid = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((f = fopen(path, "re")) == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);

    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: count fields after the last ')'. */
    if ((p = strrchr(buf, ')')) == NULL ||
        sscanf(p + 1, " %*c %*d %*d %d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d "
                      "%*d %llu",
               &sid, &ticks) != 2)
        return -1;
    if (session != NULL)
        *session = (pid_t)sid;
    if (start_ticks != NULL)
        *start_ticks = ticks;
    return 0;
}

uint64_t gpr_start_ticks(pid_t pid)
{
    uint64_t ticks = 0;

    return gpr_proc_stat(pid, NULL, &ticks) == 0 ? ticks : 0;
}

bool gpr_proc_alive(const struct gpr_proc *p)
{
    pid_t pid = atomic_load(&p->pid);

    if (pid <= 0)
        return false;
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return false;
    uint64_t t = gpr_start_ticks(pid);

    /* Another pid namespace may hide the process: then trust kill's answer. */
    return t == 0 || t == atomic_load(&p->start_ticks);
}

uint64_t gpr_job_mem(struct gpr_region *r, int job)
{
    uint64_t sum = 0;

    for (int i = 0; i < GPR_PROCS; i++) {
        struct gpr_proc *p = &r->procs[i];

        if (atomic_load(&p->job) == job && atomic_load(&p->pid) > 0 && gpr_proc_alive(p))
            sum += atomic_load(&p->mem_used);
    }
    return sum;
}
