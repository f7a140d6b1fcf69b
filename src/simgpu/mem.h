/*
 * A process's simulated device memory.  Device addresses lie in one range
 * reserved with no access rights, so that the host faults when it reads a
 * device pointer, as it would on a real GPU.  The bytes live in separate
 * host mappings ("physical" allocations) that the driver reaches by
 * translating addresses.  The layout follows the driver's virtual memory
 * API: reservations, physical allocations, and mappings between them;
 * cuMemAlloc is the three in one.  Accounting against the shared state is
 * the caller's.
 */
#ifndef GPOOL_SIMGPU_MEM_H
#define GPOOL_SIMGPU_MEM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct simgpu_phys {
    uint64_t handle;
    int dev;
    size_t size;
    unsigned char *data;  /* the bytes; NULL while checkpointed */
    unsigned char *saved; /* the bytes in host memory while checkpointed */
    int nmaps;
    bool released;
};

struct simgpu_map {
    uint64_t va;
    size_t size;
    size_t offset;
    struct simgpu_phys *phys;
};

struct simgpu_resv {
    uint64_t va;
    size_t size;
    bool alloc; /* made by cuMemAlloc, freed by cuMemFree */
};

struct simgpu_mem {
    pthread_mutex_t mu;
    uint64_t base;
    size_t span;
    struct simgpu_resv *resv; /* sorted by va */
    size_t nresv;
    struct simgpu_map *map; /* sorted by va */
    size_t nmap;
    struct simgpu_phys **phys;
    size_t nphys;
    uint64_t next_handle;
};

/* Reserves the device address range; 0 or -errno. */
int simgpu_mem_init(struct simgpu_mem *m, size_t span);

int simgpu_mem_reserve(struct simgpu_mem *m, size_t size, size_t align, uint64_t hint, bool alloc,
                       uint64_t *va);
/* Frees a reservation with no mappings left: 0, or -EINVAL. */
int simgpu_mem_unreserve(struct simgpu_mem *m, uint64_t va, size_t size);
const struct simgpu_resv *simgpu_mem_find_resv(struct simgpu_mem *m, uint64_t va);

int simgpu_mem_create(struct simgpu_mem *m, int dev, size_t size, struct simgpu_phys **out);
struct simgpu_phys *simgpu_mem_phys(struct simgpu_mem *m, uint64_t handle);
/* Marks a physical allocation released; returns true when it is gone (no mappings left). */
bool simgpu_mem_release(struct simgpu_mem *m, struct simgpu_phys *p);
int simgpu_mem_map(struct simgpu_mem *m, uint64_t va, size_t size, size_t offset,
                   struct simgpu_phys *p);
/* Unmaps whole mappings in [va, va + size); the physical allocations that are now gone are
 * passed to gone(). 0 or -EINVAL. */
int simgpu_mem_unmap(struct simgpu_mem *m, uint64_t va, size_t size,
                     void (*gone)(struct simgpu_phys *, void *), void *arg);

/* The host address of device address va and how many bytes follow it in the same mapping, or
 * NULL when va is not mapped. */
unsigned char *simgpu_mem_host(struct simgpu_mem *m, uint64_t va, size_t *avail);

/* Calls fn on every live physical allocation. */
void simgpu_mem_each(struct simgpu_mem *m, void (*fn)(struct simgpu_phys *, void *), void *arg);

/* Asks for huge pages behind a mapping of device bytes. */
void simgpu_mem_advise(void *data, size_t size);

void simgpu_mem_lock(struct simgpu_mem *m);
void simgpu_mem_unlock(struct simgpu_mem *m);

#endif
