/*
 * The shared state of the simulated GPUs: creating and configuring the file,
 * the lock, the process slots, memory accounting and the kernel timeline.
 */
#include "simgpu/state.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/units.h"

#define SIMGPU_MAGIC 0x53494d47u /* "SIMG" */
#define SIMGPU_VERSION 3

struct simgpu_config {
    int count;
    char model[96];
    uint64_t memory;
    int sms;
    uint64_t link_bps;
    uint64_t membw_bps;
    uint64_t ctx_bytes;
};

int64_t simgpu_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void simgpu_sleep_until(int64_t t_ns)
{
    struct timespec ts = {.tv_sec = t_ns / 1000000000, .tv_nsec = t_ns % 1000000000};

    if (t_ns <= simgpu_now_ns())
        return;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

void simgpu_say_once(const char *key, const char *fmt, ...)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static char said[64][64];
    static int nsaid;
    va_list ap;

    pthread_mutex_lock(&mu);
    for (int i = 0; i < nsaid; i++) {
        if (strncmp(said[i], key, sizeof(said[i]) - 1) == 0) {
            pthread_mutex_unlock(&mu);
            return;
        }
    }
    if (nsaid < 64)
        snprintf(said[nsaid++], sizeof(said[0]), "%s", key);
    pthread_mutex_unlock(&mu);
    va_start(ap, fmt);
    fputs("simgpu: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int env_int(const char *name, int def, int lo, int hi, int *out, char *msg, size_t len)
{
    const char *v = getenv(name);
    char *end;
    long n;

    if (v == NULL || *v == '\0') {
        *out = def;
        return 0;
    }
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < lo || n > hi) {
        snprintf(msg, len, "%s=%s: expected a whole number from %d to %d", name, v, lo, hi);
        return -EINVAL;
    }
    *out = (int)n;
    return 0;
}

static int env_bytes(const char *name, uint64_t def, uint64_t *out, char *msg, size_t len)
{
    const char *v = getenv(name);

    if (v == NULL || *v == '\0') {
        *out = def;
        return 0;
    }
    if (units_parse_bytes(v, out) != 0) {
        snprintf(msg, len, "%s=%s: expected a size such as 80GiB", name, v);
        return -EINVAL;
    }
    return 0;
}

static int env_gbps(const char *name, int def, uint64_t *out, char *msg, size_t len)
{
    int gbps;
    int rc = env_int(name, def, 1, 100000, &gbps, msg, len);

    *out = (uint64_t)gbps * 1000000000ull;
    return rc;
}

static int config_read(struct simgpu_config *c, char *msg, size_t len)
{
    const char *model = getenv("SIMGPU_MODEL");

    memset(c, 0, sizeof(*c));
    snprintf(c->model, sizeof(c->model), "%s",
             model != NULL && *model != '\0' ? model : "NVIDIA H100 80GB HBM3 (simgpu)");
    if (env_int("SIMGPU_COUNT", 1, 1, SIMGPU_MAX_GPUS, &c->count, msg, len) != 0 ||
        env_bytes("SIMGPU_MEMORY", 80ull << 30, &c->memory, msg, len) != 0 ||
        env_int("SIMGPU_SMS", 132, 1, 1024, &c->sms, msg, len) != 0 ||
        env_gbps("SIMGPU_HOST_LINK_GBPS", 25, &c->link_bps, msg, len) != 0 ||
        env_gbps("SIMGPU_MEM_GBPS", 3000, &c->membw_bps, msg, len) != 0 ||
        env_bytes("SIMGPU_CONTEXT_MEMORY", 0, &c->ctx_bytes, msg, len) != 0)
        return -EINVAL;
    if (c->memory < SIMGPU_GRANULARITY) {
        snprintf(msg, len, "SIMGPU_MEMORY must be at least 2MiB");
        return -EINVAL;
    }
    return 0;
}

static void config_string(const struct simgpu_config *c, char *buf, size_t len)
{
    snprintf(buf, len, "count=%d model=%s memory=%llu sms=%d link=%llu membw=%llu ctx=%llu",
             c->count, c->model, (unsigned long long)c->memory, c->sms,
             (unsigned long long)c->link_bps, (unsigned long long)c->membw_bps,
             (unsigned long long)c->ctx_bytes);
}

/* FNV-1a, to give each simulated GPU a stable UUID of its own. */
static uint64_t hash64(const char *s, uint64_t h)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static void devices_init(struct simgpu_shm *s, const struct simgpu_config *c, const char *path)
{
    memset(s->dev, 0, sizeof(s->dev));
    s->ngpu = c->count;
    s->link_bps = c->link_bps;
    s->membw_bps = c->membw_bps;
    s->ctx_bytes = c->ctx_bytes;
    snprintf(s->config, sizeof(s->config), "%s", "");
    config_string(c, s->config, sizeof(s->config));
    for (int i = 0; i < c->count; i++) {
        struct simgpu_dev *d = &s->dev[i];
        uint64_t h = hash64(path, 0xcbf29ce484222325ull) + (uint64_t)i * 0x9e3779b97f4a7c15ull;

        snprintf(d->name, sizeof(d->name), "%s", c->model);
        snprintf(d->uuid, sizeof(d->uuid), "GPU-%08x-%04x-4%03x-8%03x-%012llx",
                 (unsigned)(h >> 32), (unsigned)(h >> 16) & 0xffff, (unsigned)(h >> 4) & 0xfff,
                 (unsigned)i & 0xfff, (unsigned long long)(h & 0xffffffffffffull));
        d->sms = c->sms;
        d->mem_total = c->memory;
    }
}

static void sync_init(struct simgpu_shm *s)
{
    pthread_mutexattr_t ma;

    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&s->lock, &ma);
    pthread_mutexattr_destroy(&ma);
}

static bool any_live(struct simgpu_shm *s)
{
    simgpu_reap(s);
    for (int i = 0; i < SIMGPU_MAX_PROCS; i++)
        if (s->proc[i].pid != 0)
            return true;
    return false;
}

/* A file left by earlier runs takes the configuration asked now, unless it is in use. */
static void reconfigure(struct simgpu_shm *s, const struct simgpu_config *c, const char *path)
{
    char want[sizeof(s->config)];

    config_string(c, want, sizeof(want));
    simgpu_lock(s);
    if (strcmp(want, s->config) != 0) {
        if (!any_live(s))
            devices_init(s, c, path);
        else
            simgpu_say_once("config", "%s is in use with %s; the SIMGPU_* settings of this "
                                      "process are ignored", path, s->config);
    }
    simgpu_unlock(s);
}

static int map_file(int fd, const char *path, const struct simgpu_config *c,
                    struct simgpu_shm **out, char *msg, size_t len)
{
    struct stat st;
    struct simgpu_shm *s;
    bool fresh;

    if (fstat(fd, &st) != 0)
        return -errno;
    fresh = (size_t)st.st_size != sizeof(*s);
    if (fresh && ftruncate(fd, 0) == 0 && ftruncate(fd, sizeof(*s)) != 0) {
        snprintf(msg, len, "%s: %s", path, strerror(errno));
        return -errno;
    }
    s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (s == MAP_FAILED) {
        snprintf(msg, len, "%s: mmap: %s", path, strerror(errno));
        return -errno;
    }
    if (fresh || s->magic != SIMGPU_MAGIC || s->version != SIMGPU_VERSION) {
        memset(s, 0, sizeof(*s));
        sync_init(s);
        devices_init(s, c, path);
        s->version = SIMGPU_VERSION;
        __atomic_store_n(&s->magic, SIMGPU_MAGIC, __ATOMIC_RELEASE);
    }
    *out = s;
    return 0;
}

int simgpu_state_open(struct simgpu_shm **out, char *msg, size_t len)
{
    struct simgpu_config c;
    char defpath[64];
    const char *path = getenv("SIMGPU_STATE");
    struct stat st;
    int fd, rc;

    if (config_read(&c, msg, len) != 0)
        return -EINVAL;
    if (path == NULL || *path == '\0') {
        snprintf(defpath, sizeof(defpath), "/dev/shm/simgpu-%u", (unsigned)getuid());
        path = defpath;
    }
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        rc = -errno;
        snprintf(msg, len, "%s: %s", path, strerror(errno));
        return rc;
    }
    /* Like /dev/nvidia*: every user's processes share the devices (whatever the umask). */
    if (fstat(fd, &st) == 0 && st.st_uid == geteuid())
        fchmod(fd, 0666);
    /* The file lock orders creators; the robust mutex inside guards everything after. */
    flock(fd, LOCK_EX);
    rc = map_file(fd, path, &c, out, msg, len);
    flock(fd, LOCK_UN);
    close(fd);
    if (rc == 0)
        reconfigure(*out, &c, path);
    return rc;
}

void simgpu_lock(struct simgpu_shm *s)
{
    if (pthread_mutex_lock(&s->lock) == EOWNERDEAD)
        pthread_mutex_consistent(&s->lock);
}

void simgpu_unlock(struct simgpu_shm *s)
{
    pthread_mutex_unlock(&s->lock);
}

void simgpu_futex_wait(uint32_t *word, uint32_t seen, int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

    /* Shared (not private) futexes, since the word lives in a file mapped by many processes. */
    syscall(SYS_futex, word, FUTEX_WAIT, seen, &ts, NULL, 0);
}

void simgpu_futex_wake(uint32_t *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

struct simgpu_proc *simgpu_proc_slot(struct simgpu_shm *s, pid_t pid, bool create)
{
    struct simgpu_proc *free_slot = NULL;

    for (int i = 0; i < SIMGPU_MAX_PROCS; i++) {
        if (s->proc[i].pid == pid)
            return &s->proc[i];
        if (s->proc[i].pid == 0 && free_slot == NULL)
            free_slot = &s->proc[i];
    }
    if (!create)
        return NULL;
    if (free_slot == NULL) {
        simgpu_reap(s);
        for (int i = 0; i < SIMGPU_MAX_PROCS && free_slot == NULL; i++)
            if (s->proc[i].pid == 0)
                free_slot = &s->proc[i];
    }
    if (free_slot != NULL) {
        memset(free_slot, 0, sizeof(*free_slot));
        free_slot->pid = pid;
        free_slot->state = 0;
    }
    return free_slot;
}

void simgpu_reap(struct simgpu_shm *s)
{
    for (int i = 0; i < SIMGPU_MAX_PROCS; i++) {
        struct simgpu_proc *p = &s->proc[i];

        if (p->pid == 0 || kill(p->pid, 0) == 0 || errno != ESRCH)
            continue;
        for (int d = 0; d < s->ngpu; d++)
            simgpu_uncharge(s, p, d, p->mem[d]);
        memset(p, 0, sizeof(*p));
    }
}

int simgpu_charge(struct simgpu_shm *s, struct simgpu_proc *p, int dev, uint64_t bytes)
{
    struct simgpu_dev *d = &s->dev[dev];

    if (d->mem_used + bytes > d->mem_total) {
        simgpu_reap(s);
        if (d->mem_used + bytes > d->mem_total)
            return -ENOMEM;
    }
    d->mem_used += bytes;
    p->mem[dev] += bytes;
    return 0;
}

void simgpu_uncharge(struct simgpu_shm *s, struct simgpu_proc *p, int dev, uint64_t bytes)
{
    bytes = bytes < p->mem[dev] ? bytes : p->mem[dev];
    p->mem[dev] -= bytes;
    s->dev[dev].mem_used -= bytes < s->dev[dev].mem_used ? bytes : s->dev[dev].mem_used;
}

int64_t simgpu_schedule(struct simgpu_shm *s, int dev, pid_t pid, int64_t ready_ns,
                        int64_t duration_ns)
{
    struct simgpu_dev *d = &s->dev[dev];
    struct simgpu_proc *p = simgpu_proc_slot(s, pid, false);
    int64_t start = ready_ns > d->free_at_ns ? ready_ns : d->free_at_ns;

    d->free_at_ns = start + duration_ns;
    d->busy_ns += (uint64_t)duration_ns;
    if (p != NULL)
        p->busy_ns[dev] += (uint64_t)duration_ns;
    d->ring[d->ring_next % SIMGPU_RING] =
        (struct simgpu_interval){.start_ns = start, .end_ns = start + duration_ns, .pid = pid};
    d->ring_next++;
    return start + duration_ns;
}

int64_t simgpu_busy_between(const struct simgpu_shm *s, int dev, pid_t pid, int64_t from,
                            int64_t to)
{
    const struct simgpu_dev *d = &s->dev[dev];
    uint32_t n = d->ring_next < SIMGPU_RING ? d->ring_next : SIMGPU_RING;
    int64_t busy = 0;

    for (uint32_t i = 0; i < n; i++) {
        const struct simgpu_interval *iv = &d->ring[i];
        int64_t a = iv->start_ns > from ? iv->start_ns : from;
        int64_t b = iv->end_ns < to ? iv->end_ns : to;

        if ((pid <= 0 || iv->pid == pid) && b > a)
            busy += b - a;
    }
    return busy;
}
