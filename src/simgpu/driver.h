/*
 * Internals shared by the files of simgpu's driver (libcuda.so.1): the
 * process's driver state, contexts, streams, and the gate that every call
 * touching the device passes, which a checkpoint lock closes.
 */
#ifndef GPOOL_SIMGPU_DRIVER_H
#define GPOOL_SIMGPU_DRIVER_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "common/gcuda.h"
#include "simgpu/mem.h"
#include "simgpu/state.h"

struct CUstream_st {
    struct CUctx_st *ctx;
    int64_t ready_ns; /* when the work queued on it so far is done */
    unsigned flags;
};

struct CUctx_st {
    int dev;
    int refs;
    bool primary;
    bool live;
    struct CUstream_st legacy;
    int64_t busy_until_ns; /* when all work of the context is done */
};

struct CUevent_st {
    int64_t t_ns;
    bool recorded;
    unsigned flags;
};

struct simgpu_driver {
    pthread_mutex_t init_mu;
    bool ready;
    pid_t pid;
    struct simgpu_shm *shm;
    struct simgpu_proc *slot;
    struct simgpu_mem mem;
    pthread_rwlock_t gate;
    struct CUctx_st primary[SIMGPU_MAX_GPUS];
    long flip_after; /* SIMGPU_FAULT_FLIP_AFTER: kernels before a bit flips, or 0 */
    int visible[SIMGPU_MAX_GPUS]; /* CUDA ordinal -> simulated device (CUDA_VISIBLE_DEVICES) */
    int nvisible;
    long launches;
};

extern struct simgpu_driver simgpu__drv;

/* Passes the gate: CUDA_SUCCESS, or CUDA_ERROR_NOT_INITIALIZED before cuInit. */
CUresult simgpu__enter(void);
void simgpu__leave(void);
/* The current context, or NULL. */
struct CUctx_st *simgpu__ctx(void);
struct CUstream_st *simgpu__stream(CUstream s, struct CUctx_st *ctx);
/* Marks work on stream st that takes duration_ns from now or when the stream is ready. */
int64_t simgpu__enqueue(struct CUstream_st *st, int64_t duration_ns);
/* The time to move bytes over the host link. */
int64_t simgpu__link_ns(uint64_t bytes);
/* Starts the thread that answers checkpoint requests from other processes. */
int simgpu__ckpt_start(void);
/* Flips one bit of device memory when SIMGPU_FAULT_FLIP_AFTER kernels have run. */
void simgpu__maybe_flip(void);
CUresult simgpu__mem_error(int rc);

#define SIMGPU_EXPORT __attribute__((visibility("default")))

#endif
