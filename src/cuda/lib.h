/*
 * Internals of libgpool-cuda, the preload library that enforces a job's share of a GPU inside
 * its processes: the real driver entry points, the GPUs this process uses with their regions and
 * process slots, memory charging and kernel pacing.  Names shared between its files carry a
 * double underscore.
 */
#ifndef GPOOL_CUDA_LIB_H
#define GPOOL_CUDA_LIB_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/gcuda.h"
#include "common/gnvml.h"
#include "cuda/region.h"

#define GPC_MAX_GPUS 64
#define GPC_RING 4 /* paced kernels a process may have in flight per GPU */

#define GPC_EXPORT __attribute__((visibility("default")))

/* The real driver calls the library uses itself. */
struct gpc_real {
    CUresult (*ctx_get_device)(CUdevice *);
    CUresult (*device_get_uuid)(CUuuid *, CUdevice);
    CUresult (*granularity)(size_t *, const CUmemAllocationProp *,
                            CUmemAllocationGranularity_flags);
    CUresult (*event_create)(CUevent *, unsigned);
    CUresult (*event_record)(CUevent, CUstream);
    CUresult (*event_query)(CUevent);
    CUresult (*event_sync)(CUevent);
    CUresult (*event_elapsed)(float *, CUevent, CUevent);
    CUresult (*event_destroy)(CUevent);
    nvmlReturn_t (*nvml_uuid)(nvmlDevice_t, char *, unsigned);
};

struct gpc_flight {
    CUevent start, end;
};

/* A GPU as this process sees it (a CUDA device ordinal). */
struct gpc_gpu {
    bool probed;
    struct gpr_region *r; /* NULL: not managed by gpool, calls pass through */
    int job;              /* the job's slot in the region, -1: none */
    struct gpr_proc *slot;
    char uuid[GPR_UUID_MAX];
    uint64_t gran;
    bool ctx_charged;
    /* pacing, touched under the lock of the GPU */
    pthread_mutex_t mu;
    int64_t next_check;     /* when to look at the other jobs again */
    bool contended;         /* another job wants this GPU (a borrower: another borrower) */
    bool borrower;          /* the job runs on lent capacity: it yields to the others */
    int64_t looked_at;      /* a borrower last found no lender active then */
    unsigned limit_milli;
    int64_t last_mark;      /* when activity was last published */
    uint64_t pending_launches;
    struct gpc_flight ring[GPC_RING];
    CUevent spare[2 * GPC_RING];
    int nspare;
    int head, count;
    int64_t tokens_ns, refill_at; /* the gpu_limit bucket */
    int64_t est_kernel_ns;
};

struct gpc_lib {
    bool active; /* under gpool: a region directory and a job id */
    const char *dir;
    const char *job_id;
    void *cuda, *nvml;
    struct gpc_real real;
    pthread_mutex_t mu;
    struct gpc_gpu gpus[GPC_MAX_GPUS];
};

extern struct gpc_lib gpc__lib;

/* Once, from any entry point: finds the real driver and reads the environment. */
void gpc__init(void);
/* Says something on stderr the first time key is seen. */
void gpc__say_once(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The real entry point of a hooked call, by its symbol. */
void *gpc__real(const char *name);
void *gpc__real_nvml(const char *name);

/* The GPU of the current context (probed on first use), or NULL when gpool does not manage it. */
struct gpc_gpu *gpc__current(void);
struct gpc_gpu *gpc__gpu(CUdevice dev);
/* The GPU whose UUID NVML names, or NULL. */
struct gpc_gpu *gpc__gpu_by_uuid(const char *uuid);
/* Charges bytes to this process on g; false (nothing charged) when the job's cap would be passed. */
bool gpc__charge(struct gpc_gpu *g, uint64_t bytes);
void gpc__uncharge(struct gpc_gpu *g, uint64_t bytes);
uint64_t gpc__round(struct gpc_gpu *g, uint64_t bytes);
/* The job's cap on g (0: none) and what its live processes hold. */
uint64_t gpc__cap(struct gpc_gpu *g);
uint64_t gpc__job_mem(struct gpc_gpu *g);
/* Context memory, once per process and GPU. */
void gpc__charge_context(struct gpc_gpu *g);

/* Remembers what an allocation or a handle was charged, and takes it back. */
void gpc__track(uint64_t key, struct gpc_gpu *g, uint64_t bytes);
bool gpc__untrack(uint64_t key, struct gpc_gpu **g, uint64_t *bytes);
void gpc__track_reset(void);

/* Swapping inside the library (swap.c): on with GPOOL_SWAP=library. */
bool gpc__swap_enabled(void);
/* Starts the thread that answers swap requests for the process's slot on g. */
void gpc__swap_start(struct gpc_gpu *g);
CUresult gpc__vmm_alloc(struct gpc_gpu *g, CUdevice dev, CUdeviceptr *dptr, uint64_t size);
CUresult gpc__vmm_free(CUdeviceptr p);
void gpc__mark_unswappable(struct gpc_gpu *g, int why);
/* Every hooked call that touches device memory passes the gate, closed while swapped out. */
void gpc__gate_enter(void);
void gpc__gate_leave(void);
/* The CUDA device ordinal of g. */
int gpc__dev(const struct gpc_gpu *g);

/* Waits at most ns while *w is seen (a word of the region, or of this process); wakes its
 * waiters. */
void gpc__futex_wait(_Atomic uint32_t *w, uint32_t seen, int64_t ns);
void gpc__futex_wake(_Atomic uint32_t *w);

/* Swaps out the borrowers of g's GPU that allocate through the library's swap path, for an
 * allocation of a lender's process that found the GPU full; true when any was swapped out. */
bool gpc__reclaim(struct gpc_gpu *g);

/* Kernel pacing around a launch on stream s.  false: the process is a borrower and a lender is
 * active; it must not launch, and gpc__pace_yield waits (outside the swap gate) until it may. */
struct gpc_ticket {
    struct gpc_gpu *g;
    CUstream stream;
    CUevent start;
};
bool gpc__pace_before(CUstream s, struct gpc_ticket *t);
void gpc__pace_yield(struct gpc_ticket *t);
void gpc__pace_after(struct gpc_ticket *t, CUresult rc);
void gpc__pace_reset(struct gpc_gpu *g);

#endif
