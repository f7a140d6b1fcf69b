/*
 * libgpool-cuda: finding the real driver, the GPUs this process uses with their regions and its
 * own process slot on each, and charging device memory to the job under its cap.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cuda/lib.h"

struct gpc_lib gpc__lib = {.mu = PTHREAD_MUTEX_INITIALIZER};
#define lib gpc__lib

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t say_mu = PTHREAD_MUTEX_INITIALIZER;
static char said[32][48];
static int nsaid;

void gpc__say_once(const char *key, const char *fmt, ...)
{
    va_list ap;
    char msg[512];

    pthread_mutex_lock(&say_mu);
    for (int i = 0; i < nsaid; i++)
        if (strcmp(said[i], key) == 0) {
            pthread_mutex_unlock(&say_mu);
            return;
        }
    if (nsaid < 32)
        snprintf(said[nsaid++], sizeof(said[0]), "%s", key);
    pthread_mutex_unlock(&say_mu);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "libgpool-cuda: %s\n", msg);
}

/* dlsym itself is hooked (hooks.c); the library resolves through the real one. */
void *(*gpc__dlsym)(void *, const char *);

void *gpc__real(const char *name)
{
    return lib.cuda == NULL ? NULL : gpc__dlsym(lib.cuda, name);
}

void *gpc__real_nvml(const char *name)
{
    if (lib.nvml == NULL) {
        /* The program loaded NVML (it called into it); take the same library. */
        lib.nvml = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_NOLOAD);
        if (lib.nvml == NULL)
            lib.nvml = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    }
    return lib.nvml == NULL ? NULL : gpc__dlsym(lib.nvml, name);
}

static void after_fork_child(void)
{
    /* The child is another process: its slots, allocations and events are none of the parent's. */
    pthread_mutex_init(&lib.mu, NULL);
    pthread_mutex_init(&say_mu, NULL);
    for (int i = 0; i < GPC_MAX_GPUS; i++) {
        struct gpc_gpu *g = &lib.gpus[i];

        g->probed = false;
        g->slot = NULL;
        g->ctx_charged = false;
        pthread_mutex_init(&g->mu, NULL);
        gpc__pace_reset(g);
    }
    gpc__track_reset();
}

static void init_once(void)
{
    struct gpc_real *r = &lib.real;

    lib.dir = getenv("GPOOL_REGION_DIR");
    lib.job_id = getenv("GPOOL_JOB_ID");
    lib.active = lib.dir != NULL && lib.dir[0] != '\0' && lib.job_id != NULL &&
                 lib.job_id[0] != '\0';
    for (int i = 0; i < GPC_MAX_GPUS; i++)
        pthread_mutex_init(&lib.gpus[i].mu, NULL);
    lib.cuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib.cuda == NULL) {
        gpc__say_once("nolib", "cannot load libcuda.so.1 (%s): nothing to enforce", dlerror());
        lib.active = false;
        return;
    }
    r->ctx_get_device = gpc__real("cuCtxGetDevice");
    r->device_get_uuid = gpc__real("cuDeviceGetUuid_v2");
    if (r->device_get_uuid == NULL)
        r->device_get_uuid = gpc__real("cuDeviceGetUuid");
    r->granularity = gpc__real("cuMemGetAllocationGranularity");
    r->event_create = gpc__real("cuEventCreate");
    r->event_record = gpc__real("cuEventRecord");
    r->event_query = gpc__real("cuEventQuery");
    r->event_sync = gpc__real("cuEventSynchronize");
    r->event_elapsed = gpc__real("cuEventElapsedTime");
    r->event_destroy = gpc__real("cuEventDestroy_v2");
    if (r->ctx_get_device == NULL || r->device_get_uuid == NULL || r->event_create == NULL ||
        r->event_record == NULL || r->event_query == NULL || r->event_sync == NULL ||
        r->event_elapsed == NULL) {
        gpc__say_once("oldlib", "libcuda.so.1 lacks calls the library needs: passing through");
        lib.active = false;
    }
    pthread_atfork(NULL, NULL, after_fork_child);
}

void gpc__init(void)
{
    pthread_once(&once, init_once);
}

static void format_uuid(char *out, size_t len, const CUuuid *u)
{
    const unsigned char *b = (const unsigned char *)u->bytes;

    snprintf(out, len,
             "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

/* Takes a free slot, or the slot of a process that is gone. */
static struct gpr_proc *claim_slot(struct gpr_region *r, int job)
{
    int32_t me = (int32_t)getpid();

    for (int i = 0; i < GPR_PROCS; i++) {
        struct gpr_proc *p = &r->procs[i];
        int32_t pid = atomic_load(&p->pid);

        if (pid == me || (pid != 0 && gpr_proc_alive(p)))
            continue;
        if (!atomic_compare_exchange_strong(&p->pid, &pid, me))
            continue;
        atomic_store(&p->job, -1);
        atomic_store(&p->mem_used, 0);
        atomic_store(&p->busy_ns, 0);
        atomic_store(&p->launches, 0);
        atomic_store(&p->last_launch, 0);
        atomic_store(&p->swap_lib, 0);
        atomic_store(&p->swap_req, GPR_SWAP_NONE);
        atomic_store(&p->swap_state, GPR_SWAPPED_IN);
        atomic_store(&p->swap_error, 0);
        atomic_store(&p->unswappable, 0);
        atomic_store(&p->reclaimed, 0);
        atomic_store(&p->start_ticks, gpr_start_ticks(me));
        atomic_store(&p->job, job);
        return p;
    }
    return NULL;
}

static void probe(struct gpc_gpu *g, CUdevice dev)
{
    char path[4096], err[512];
    CUuuid u;
    CUmemAllocationProp prop = {.type = CU_MEM_ALLOCATION_TYPE_PINNED,
                                .location = {CU_MEM_LOCATION_TYPE_DEVICE, dev}};
    size_t gran = 0;

    g->r = NULL;
    g->job = -1;
    if (lib.real.device_get_uuid(&u, dev) != CUDA_SUCCESS)
        return;
    format_uuid(g->uuid, sizeof(g->uuid), &u);
    if (gpr_path(path, sizeof(path), lib.dir, g->uuid) != 0 ||
        (g->r = gpr_open(path, err, sizeof(err))) == NULL) {
        gpc__say_once(g->uuid, "%s: not enforced on this GPU", err);
        return;
    }
    g->job = gpr_job_find(g->r, lib.job_id);
    if (g->job < 0)
        gpc__say_once(g->uuid, "job %s has no share of %s: not enforced on this GPU", lib.job_id,
                      g->uuid);
    g->slot = claim_slot(g->r, g->job);
    if (g->slot == NULL) {
        gpc__say_once("slots", "no free process slot in the region of %s: passing through",
                      g->uuid);
        gpr_close(g->r);
        g->r = NULL;
        g->job = -1;
        return;
    }
    if (lib.real.granularity == NULL ||
        lib.real.granularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM) != CUDA_SUCCESS ||
        gran == 0)
        gran = 2u << 20;
    g->gran = gran;
    g->limit_milli = 1000;
    if (gpc__swap_enabled())
        gpc__swap_start(g);
}

struct gpc_gpu *gpc__gpu(CUdevice dev)
{
    struct gpc_gpu *g;

    if (!lib.active || dev < 0 || dev >= GPC_MAX_GPUS)
        return NULL;
    g = &lib.gpus[dev];
    if (!__atomic_load_n(&g->probed, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&lib.mu);
        if (!g->probed) {
            probe(g, dev);
            __atomic_store_n(&g->probed, true, __ATOMIC_RELEASE);
        }
        pthread_mutex_unlock(&lib.mu);
    }
    return g->r == NULL ? NULL : g;
}

struct gpc_gpu *gpc__current(void)
{
    CUdevice dev;

    gpc__init();
    if (!lib.active || lib.real.ctx_get_device(&dev) != CUDA_SUCCESS)
        return NULL;
    return gpc__gpu(dev);
}

struct gpc_gpu *gpc__gpu_by_uuid(const char *uuid)
{
    int n = 0;

    gpc__init();
    if (!lib.active || lib.cuda == NULL)
        return NULL;
    /* NVML names GPUs by UUID; CUDA by ordinal.  Probe the ordinals the process can see. */
    CUresult (*count)(int *) = gpc__real("cuDeviceGetCount");

    if (count == NULL || count(&n) != CUDA_SUCCESS)
        return NULL;
    for (int d = 0; d < n && d < GPC_MAX_GPUS; d++) {
        struct gpc_gpu *g = gpc__gpu(d);

        if (g != NULL && strcmp(g->uuid, uuid) == 0)
            return g;
    }
    return NULL;
}

int gpc__dev(const struct gpc_gpu *g)
{
    return (int)(g - lib.gpus);
}

uint64_t gpc__round(struct gpc_gpu *g, uint64_t bytes)
{
    return (bytes + g->gran - 1) / g->gran * g->gran;
}

uint64_t gpc__cap(struct gpc_gpu *g)
{
    if (g->job < 0 || !atomic_load(&g->r->jobs[g->job].used))
        return 0;
    return atomic_load(&g->r->jobs[g->job].mem_cap);
}

/* What the job's processes hold, trusting every slot that names a pid. */
static uint64_t job_mem_fast(struct gpc_gpu *g)
{
    uint64_t sum = 0;

    for (int i = 0; i < GPR_PROCS; i++) {
        struct gpr_proc *p = &g->r->procs[i];

        if (atomic_load(&p->job) == g->job && atomic_load(&p->pid) > 0)
            sum += atomic_load(&p->mem_used);
    }
    return sum;
}

uint64_t gpc__job_mem(struct gpc_gpu *g)
{
    return g->job < 0 ? atomic_load(&g->slot->mem_used) : gpr_job_mem(g->r, g->job);
}

bool gpc__charge(struct gpc_gpu *g, uint64_t bytes)
{
    uint64_t cap = gpc__cap(g);

    /* Charge first, then look: two processes of a job racing for the last bytes may both be
     * refused, but the job never holds more than its cap. */
    atomic_fetch_add(&g->slot->mem_used, bytes);
    if (cap == 0 || job_mem_fast(g) <= cap || gpr_job_mem(g->r, g->job) <= cap)
        return true;
    atomic_fetch_sub(&g->slot->mem_used, bytes);
    return false;
}

void gpc__uncharge(struct gpc_gpu *g, uint64_t bytes)
{
    atomic_fetch_sub(&g->slot->mem_used, bytes);
}

void gpc__charge_context(struct gpc_gpu *g)
{
    pthread_mutex_lock(&lib.mu);
    if (!g->ctx_charged) {
        g->ctx_charged = true;
        atomic_fetch_add(&g->slot->mem_used, atomic_load(&g->r->context_bytes));
    }
    pthread_mutex_unlock(&lib.mu);
}

/* Allocations and handles: an open-addressing table from the pointer (or handle) to what it was
 * charged.  Keys of the two kinds cannot collide: handles get their top bit set. */
#define TRACK_MAX (1u << 16)
struct track {
    uint64_t key; /* 0: empty, 1: deleted */
    struct gpc_gpu *g;
    uint64_t bytes;
};
static struct track table[TRACK_MAX];
static pthread_mutex_t track_mu = PTHREAD_MUTEX_INITIALIZER;

static uint32_t hash(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (uint32_t)k & (TRACK_MAX - 1);
}

void gpc__track(uint64_t key, struct gpc_gpu *g, uint64_t bytes)
{
    pthread_mutex_lock(&track_mu);
    for (uint32_t i = hash(key), n = 0; n < TRACK_MAX; i = (i + 1) & (TRACK_MAX - 1), n++)
        if (table[i].key <= 1) {
            table[i] = (struct track){key, g, bytes};
            pthread_mutex_unlock(&track_mu);
            return;
        }
    pthread_mutex_unlock(&track_mu);
    /* A full table forgets the allocation: its memory stays charged until the process ends. */
    gpc__say_once("track", "more than %u live allocations: later frees are not credited",
                  TRACK_MAX);
}

bool gpc__untrack(uint64_t key, struct gpc_gpu **g, uint64_t *bytes)
{
    pthread_mutex_lock(&track_mu);
    for (uint32_t i = hash(key), n = 0; n < TRACK_MAX; i = (i + 1) & (TRACK_MAX - 1), n++) {
        if (table[i].key == 0)
            break;
        if (table[i].key == key) {
            *g = table[i].g;
            *bytes = table[i].bytes;
            table[i].key = 1;
            pthread_mutex_unlock(&track_mu);
            return true;
        }
    }
    pthread_mutex_unlock(&track_mu);
    return false;
}

void gpc__track_reset(void)
{
    pthread_mutex_init(&track_mu, NULL);
    memset(table, 0, sizeof(table));
}
