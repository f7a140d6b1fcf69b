/*
 * libgpool-cuda: swapping a process's GPU memory to host memory and back from inside, for drivers
 * without the process checkpoint API and processes it refuses.  With GPOOL_SWAP=library, every
 * allocation goes through the virtual memory API from the start (an address range reserved,
 * physical memory created and mapped into it), so that on swap out the library stops new work,
 * synchronizes, copies each allocation to host memory and releases the physical memory, keeping
 * the addresses reserved; on swap in it maps new memory at the same addresses and restores the
 * bytes.  The agent asks through the process's slot in the region (swap_req) and the library's
 * swap thread answers (swap_state).  Managed memory cannot be swapped this way: a process that
 * allocates it is marked unswappable, and a request is refused with that reason.
 *
 * A lender's process asks the same of the borrowers of its GPU when an allocation of its own
 * finds the GPU full (gpc__reclaim), and waits for their answers before it tries again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cuda/lib.h"

#define lib gpc__lib

struct vmm {
    CUdeviceptr va;
    size_t size; /* reserved and mapped: a multiple of the granularity */
    CUmemGenericAllocationHandle h;
    struct gpc_gpu *g;
    int dev;
    void *host; /* the bytes while swapped out */
    bool pinned;
};

static struct {
    pthread_mutex_t mu;
    struct vmm *a;
    size_t n, cap;
    bool thread;
    /* The gate every hooked call that touches device memory passes. */
    _Atomic uint32_t closed;
    _Atomic int inflight;
    struct {
        CUresult (*reserve)(CUdeviceptr *, size_t, size_t, CUdeviceptr, unsigned long long);
        CUresult (*addr_free)(CUdeviceptr, size_t);
        CUresult (*create)(CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *,
                           unsigned long long);
        CUresult (*release)(CUmemGenericAllocationHandle);
        CUresult (*map)(CUdeviceptr, size_t, size_t, CUmemGenericAllocationHandle,
                        unsigned long long);
        CUresult (*unmap)(CUdeviceptr, size_t);
        CUresult (*access)(CUdeviceptr, size_t, const CUmemAccessDesc *, size_t);
        CUresult (*dtoh)(void *, CUdeviceptr, size_t);
        CUresult (*htod)(CUdeviceptr, const void *, size_t);
        CUresult (*sync)(void);
        CUresult (*retain)(CUcontext *, CUdevice);
        CUresult (*set_current)(CUcontext);
        CUresult (*host_alloc)(void **, size_t); /* pinned host memory, when the driver has it */
        CUresult (*host_free)(void *);
    } cu;
    bool vmm; /* the driver has the virtual memory API */
} sw = {.mu = PTHREAD_MUTEX_INITIALIZER};
static pthread_once_t resolved = PTHREAD_ONCE_INIT;

bool gpc__swap_enabled(void)
{
    static int on = -1;

    if (on < 0) {
        const char *v = getenv("GPOOL_SWAP");

        on = v != NULL && strcmp(v, "library") == 0;
    }
    return on == 1 && lib.active;
}

static void resolve_once(void)
{
    *(void **)&sw.cu.reserve = gpc__real("cuMemAddressReserve");
    *(void **)&sw.cu.addr_free = gpc__real("cuMemAddressFree");
    *(void **)&sw.cu.create = gpc__real("cuMemCreate");
    *(void **)&sw.cu.release = gpc__real("cuMemRelease");
    *(void **)&sw.cu.map = gpc__real("cuMemMap");
    *(void **)&sw.cu.unmap = gpc__real("cuMemUnmap");
    *(void **)&sw.cu.access = gpc__real("cuMemSetAccess");
    *(void **)&sw.cu.dtoh = gpc__real("cuMemcpyDtoH_v2");
    *(void **)&sw.cu.htod = gpc__real("cuMemcpyHtoD_v2");
    *(void **)&sw.cu.sync = gpc__real("cuCtxSynchronize");
    *(void **)&sw.cu.retain = gpc__real("cuDevicePrimaryCtxRetain");
    *(void **)&sw.cu.set_current = gpc__real("cuCtxSetCurrent");
    *(void **)&sw.cu.host_alloc = gpc__real("cuMemAllocHost_v2");
    *(void **)&sw.cu.host_free = gpc__real("cuMemFreeHost");
    sw.vmm = sw.cu.reserve && sw.cu.addr_free && sw.cu.create && sw.cu.release && sw.cu.map &&
             sw.cu.unmap && sw.cu.access && sw.cu.dtoh && sw.cu.htod && sw.cu.sync &&
             sw.cu.retain && sw.cu.set_current;
    if (!sw.vmm)
        gpc__say_once("novmm", "the driver lacks the virtual memory API: no swapping");
}

static bool resolve(void)
{
    pthread_once(&resolved, resolve_once);
    return sw.vmm;
}

/* Host memory for swapped-out bytes: pinned, so that copies run at the link's speed, else
 * pageable. */
static void *host_new(struct vmm *v)
{
    void *p = NULL;

    v->pinned = sw.cu.host_alloc != NULL && sw.cu.host_free != NULL &&
                sw.cu.host_alloc(&p, v->size) == CUDA_SUCCESS;
    return v->pinned ? p : malloc(v->size);
}

static void host_free(struct vmm *v)
{
    if (v->pinned)
        sw.cu.host_free(v->host);
    else
        free(v->host);
    v->host = NULL;
}

/* ---- the gate ---- */

void gpc__gate_enter(void)
{
    for (;;) {
        atomic_fetch_add(&sw.inflight, 1);
        if (!atomic_load(&sw.closed))
            return;
        atomic_fetch_sub(&sw.inflight, 1);
        gpc__futex_wait(&sw.closed, 1, 100000000ll);
    }
}

void gpc__gate_leave(void)
{
    atomic_fetch_sub(&sw.inflight, 1);
}

/* Closes the gate and waits for the calls in progress: false when they outlast timeout. */
static bool close_gate(int64_t timeout_ns)
{
    int64_t until = gpr_now() + timeout_ns;

    atomic_store(&sw.closed, 1);
    while (atomic_load(&sw.inflight) > 0) {
        if (gpr_now() > until) {
            atomic_store(&sw.closed, 0);
            gpc__futex_wake(&sw.closed);
            return false;
        }
        struct timespec ts = {0, 200000};

        nanosleep(&ts, NULL);
    }
    return true;
}

static void open_gate(void)
{
    atomic_store(&sw.closed, 0);
    gpc__futex_wake(&sw.closed);
}

/* ---- allocations through the virtual memory API ---- */

static void *swap_thread(void *arg);

static int remember(struct vmm v)
{
    pthread_mutex_lock(&sw.mu);
    if (sw.n == sw.cap) {
        size_t cap = sw.cap ? 2 * sw.cap : 64;
        struct vmm *a = realloc(sw.a, cap * sizeof(*a));

        if (a == NULL) {
            pthread_mutex_unlock(&sw.mu);
            return -1;
        }
        sw.a = a;
        sw.cap = cap;
    }
    sw.a[sw.n++] = v;
    pthread_mutex_unlock(&sw.mu);
    return 0;
}

void gpc__swap_start(struct gpc_gpu *g)
{
    pthread_mutex_lock(&sw.mu);
    if (!sw.thread) {
        pthread_t t;

        sw.thread = pthread_create(&t, NULL, swap_thread, NULL) == 0;
        if (sw.thread)
            pthread_detach(t);
    }
    pthread_mutex_unlock(&sw.mu);
    /* The agent may ask this process to swap: the library answers, or says why it cannot. */
    atomic_store(&g->slot->swap_lib, sw.thread ? 1 : 0);
}

static CUresult map_new(struct vmm *v)
{
    CUmemAllocationProp prop = {.type = CU_MEM_ALLOCATION_TYPE_PINNED,
                                .location = {CU_MEM_LOCATION_TYPE_DEVICE, v->dev}};
    CUmemAccessDesc acc = {.location = {CU_MEM_LOCATION_TYPE_DEVICE, v->dev},
                           .flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
    CUresult rc = sw.cu.create(&v->h, v->size, &prop, 0);

    if (rc != CUDA_SUCCESS)
        return rc;
    if ((rc = sw.cu.map(v->va, v->size, 0, v->h, 0)) != CUDA_SUCCESS) {
        sw.cu.release(v->h);
        return rc;
    }
    if ((rc = sw.cu.access(v->va, v->size, &acc, 1)) != CUDA_SUCCESS) {
        sw.cu.unmap(v->va, v->size);
        sw.cu.release(v->h);
    }
    return rc;
}

CUresult gpc__vmm_alloc(struct gpc_gpu *g, CUdevice dev, CUdeviceptr *dptr, uint64_t size)
{
    struct vmm v = {.size = size, .g = g, .dev = dev};
    CUresult rc;

    if (!resolve())
        return CUDA_ERROR_NOT_SUPPORTED;
    if ((rc = sw.cu.reserve(&v.va, size, 0, 0, 0)) != CUDA_SUCCESS)
        return rc;
    if ((rc = map_new(&v)) != CUDA_SUCCESS) {
        sw.cu.addr_free(v.va, size);
        return rc;
    }
    if (remember(v) != 0) {
        sw.cu.unmap(v.va, size);
        sw.cu.release(v.h);
        sw.cu.addr_free(v.va, size);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *dptr = v.va;
    return CUDA_SUCCESS;
}

/* Frees a pointer made by gpc__vmm_alloc: CUDA_ERROR_NOT_FOUND when it is not one. */
CUresult gpc__vmm_free(CUdeviceptr p)
{
    pthread_mutex_lock(&sw.mu);
    for (size_t i = 0; i < sw.n; i++) {
        struct vmm v = sw.a[i];

        if (v.va != p)
            continue;
        sw.a[i] = sw.a[--sw.n];
        pthread_mutex_unlock(&sw.mu);
        if (v.host == NULL) {
            sw.cu.unmap(v.va, v.size);
            sw.cu.release(v.h);
        } else {
            host_free(&v);
        }
        sw.cu.addr_free(v.va, v.size);
        return CUDA_SUCCESS;
    }
    pthread_mutex_unlock(&sw.mu);
    return CUDA_ERROR_NOT_FOUND;
}

/* ---- swapping ---- */

static CUresult use_device(int dev)
{
    CUcontext c;
    CUresult rc = sw.cu.retain(&c, dev);

    return rc != CUDA_SUCCESS ? rc : sw.cu.set_current(c);
}

/* Moves the allocations on g to host memory; all or nothing.  The gate is closed. */
static int swap_out(struct gpc_gpu *g, int dev, uint64_t *bytes, int64_t *copy_ns)
{
    size_t i;
    int err = 0;
    int64_t t;

    *bytes = 0;
    *copy_ns = 0;
    if (use_device(dev) != CUDA_SUCCESS || sw.cu.sync() != CUDA_SUCCESS)
        return EIO;
    pthread_mutex_lock(&sw.mu);
    for (i = 0; i < sw.n && err == 0; i++) {
        struct vmm *v = &sw.a[i];

        if (v->g != g || v->host != NULL)
            continue;
        if ((v->host = host_new(v)) == NULL) {
            err = ENOMEM;
            break;
        }
        t = gpr_now();
        if (sw.cu.dtoh(v->host, v->va, v->size) != CUDA_SUCCESS)
            err = EIO;
        *copy_ns += gpr_now() - t;
    }
    for (i = 0; i < sw.n; i++) {
        struct vmm *v = &sw.a[i];

        if (v->g != g || v->host == NULL)
            continue;
        if (err != 0) { /* undo: the device memory is still there */
            host_free(v);
            continue;
        }
        sw.cu.unmap(v->va, v->size);
        sw.cu.release(v->h);
        gpc__uncharge(g, v->size);
        *bytes += v->size;
    }
    pthread_mutex_unlock(&sw.mu);
    return err;
}

/* Maps new device memory at the same addresses and copies the bytes back; all or nothing. */
static int swap_in(struct gpc_gpu *g, int dev, uint64_t *bytes, int64_t *copy_ns)
{
    size_t i, done = 0;
    int err = 0;
    int64_t t;

    *bytes = 0;
    *copy_ns = 0;
    if (use_device(dev) != CUDA_SUCCESS)
        return EIO;
    pthread_mutex_lock(&sw.mu);
    for (i = 0; i < sw.n && err == 0; i++) {
        struct vmm *v = &sw.a[i];
        CUresult rc;

        if (v->g != g || v->host == NULL)
            continue;
        if (!gpc__charge(g, v->size)) {
            err = ENOSPC;
            break;
        }
        rc = map_new(v);
        if (rc != CUDA_SUCCESS) {
            gpc__uncharge(g, v->size);
            err = rc == CUDA_ERROR_OUT_OF_MEMORY ? ENOMEM : EIO;
            break;
        }
        done = i + 1;
    }
    for (i = 0; i < done; i++) {
        struct vmm *v = &sw.a[i];

        if (v->g != g || v->host == NULL)
            continue;
        if (err != 0) { /* undo: give the new memory back, keep the bytes on the host */
            sw.cu.unmap(v->va, v->size);
            sw.cu.release(v->h);
            gpc__uncharge(g, v->size);
            continue;
        }
        t = gpr_now();
        if (sw.cu.htod(v->va, v->host, v->size) != CUDA_SUCCESS)
            err = EIO;
        *copy_ns += gpr_now() - t;
        host_free(v);
        *bytes += v->size;
    }
    pthread_mutex_unlock(&sw.mu);
    return err;
}

/* Answers one request on g's slot. */
static void answer(struct gpc_gpu *g, int dev, uint32_t req)
{
    struct gpr_proc *p = g->slot;
    uint64_t bytes = 0;
    int64_t t0 = gpr_now(), copy_ns = 0;
    int err = 0;
    uint32_t state = atomic_load(&p->swap_state);

    if (req == GPR_SWAP_OUT && state == GPR_SWAPPED_IN) {
        if (atomic_load(&p->unswappable) != 0)
            err = EPERM;
        else if (!close_gate(10000000000ll))
            err = ETIMEDOUT;
        else if ((err = swap_out(g, dev, &bytes, &copy_ns)) != 0)
            open_gate();
        if (err == 0)
            state = GPR_SWAPPED_OUT;
    } else if (req == GPR_SWAP_IN && state == GPR_SWAPPED_OUT) {
        if ((err = swap_in(g, dev, &bytes, &copy_ns)) == 0) {
            state = GPR_SWAPPED_IN;
            atomic_store(&p->reclaimed, 0);
            open_gate();
        }
    } else {
        err = EALREADY; /* out while out, or in while in */
    }
    atomic_store(&p->swap_bytes, bytes);
    atomic_store(&p->swap_ns, (uint64_t)(gpr_now() - t0));
    atomic_store(&p->swap_copy_ns, (uint64_t)copy_ns);
    atomic_store(&p->swap_error, err);
    atomic_store(&p->swap_state, state);
    atomic_store(&p->swap_req, GPR_SWAP_NONE);
    gpc__futex_wake(&p->swap_req);
}

static void *swap_thread(void *arg)
{
    (void)arg;
    for (;;) {
        bool any = false;

        for (int d = 0; d < GPC_MAX_GPUS; d++) {
            struct gpc_gpu *g = &lib.gpus[d];
            uint32_t req;

            if (!__atomic_load_n(&g->probed, __ATOMIC_ACQUIRE) || g->r == NULL)
                continue;
            any = true;
            req = atomic_load(&g->slot->swap_req);
            if (req != GPR_SWAP_NONE)
                answer(g, d, req);
        }
        /* Asked through the first GPU's slot, or found within 50 ms on the others. */
        for (int d = 0; any && d < GPC_MAX_GPUS; d++) {
            struct gpc_gpu *g = &lib.gpus[d];

            if (__atomic_load_n(&g->probed, __ATOMIC_ACQUIRE) && g->r != NULL) {
                gpc__futex_wait(&g->slot->swap_req, GPR_SWAP_NONE, 50000000ll);
                break;
            }
        }
        if (!any) {
            struct timespec ts = {0, 50000000};

            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

void gpc__mark_unswappable(struct gpc_gpu *g, int why)
{
    atomic_store(&g->slot->unswappable, why);
}

/* ---- memory back to a lender ---- */

#define RECLAIM_WAIT_NS 30000000000ll /* the longest a lender waits for the borrowers' answers */
#define RECLAIM_SLICE_NS 10000000ll

/* Can the process of slot p be asked to swap out for a lender of job me? */
static bool reclaimable(struct gpr_region *r, struct gpr_proc *p, int me)
{
    int job = atomic_load(&p->job);

    return job >= 0 && job < GPR_JOBS && job != me && atomic_load(&r->jobs[job].used) &&
           atomic_load(&r->jobs[job].borrower) && atomic_load(&p->swap_lib) == 1 &&
           atomic_load(&p->unswappable) == 0 && atomic_load(&p->swap_state) == GPR_SWAPPED_IN &&
           atomic_load(&p->mem_used) > 0 && gpr_proc_alive(p);
}

bool gpc__reclaim(struct gpc_gpu *g)
{
    struct gpr_region *r = g->r;
    struct gpr_proc *asked[GPR_PROCS];
    bool marked[GPR_JOBS] = {false};
    int n = 0, out = 0;
    int64_t until, now;
    uint64_t bytes = 0;

    if (g->job < 0 || atomic_load(&r->jobs[g->job].borrower))
        return false;
    for (int i = 0; i < GPR_PROCS; i++) {
        struct gpr_proc *p = &r->procs[i];
        uint32_t none = GPR_SWAP_NONE;

        if (!reclaimable(r, p, g->job))
            continue;
        /* The same request the agent makes; a swap out the agent asked for already is waited
         * for, and stays the agent's. */
        atomic_store(&p->reclaimed, 1);
        if (!atomic_compare_exchange_strong(&p->swap_req, &none, GPR_SWAP_OUT)) {
            atomic_store(&p->reclaimed, 0);
            if (none != GPR_SWAP_OUT)
                continue;
        }
        gpc__futex_wake(&p->swap_req);
        asked[n++] = p;
    }
    if (n == 0)
        return false;
    until = gpr_now() + RECLAIM_WAIT_NS;
    for (int k = 0; k < n; k++) {
        struct gpr_proc *p = asked[k];
        int job;

        while (atomic_load(&p->swap_req) == GPR_SWAP_OUT && gpr_now() < until && gpr_proc_alive(p))
            gpc__futex_wait(&p->swap_req, GPR_SWAP_OUT, RECLAIM_SLICE_NS);
        if (atomic_load(&p->swap_state) != GPR_SWAPPED_OUT || atomic_load(&p->swap_error) != 0) {
            atomic_store(&p->reclaimed, 0);
            continue;
        }
        out++;
        if (!atomic_load(&p->reclaimed))
            continue; /* the agent's */
        bytes += atomic_load(&p->swap_bytes);
        job = atomic_load(&p->job);
        if (job < 0 || job >= GPR_JOBS)
            continue;
        now = gpr_now();
        if (!marked[job]) {
            marked[job] = true;
            atomic_store(&r->jobs[job].reclaim_bytes, 0);
            atomic_store(&r->jobs[job].reclaimed_at, now);
            atomic_fetch_add(&r->jobs[job].reclaims, 1);
        }
        atomic_fetch_add(&r->jobs[job].reclaim_bytes, atomic_load(&p->swap_bytes));
    }
    if (out > 0)
        gpc__say_once("reclaim",
                      "%s: the GPU was full: %d borrowing process(es) swapped out (%.2f GiB) "
                      "to make room",
                      g->uuid, out, (double)bytes / 1073741824.0);
    return out > 0;
}
