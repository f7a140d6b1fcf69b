/*
 * The process checkpoint API on simulated GPUs.  The calls name another
 * process by pid; they post a request in that process's slot of the shared
 * state and wait for its answer.  Each process that uses the driver runs a
 * thread that serves its slot: lock closes the gate every device call
 * passes and waits for queued work, checkpoint copies every allocation to
 * host memory and gives the device memory back, restore takes device memory
 * again and copies the bytes back at the same addresses, unlock opens the
 * gate.  Moving the bytes takes the time of the host link.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "simgpu/driver.h"

#define drv simgpu__drv
#define ANSWER_GRACE_MS 60000

static int64_t all_work_done_ns(void)
{
    int64_t t = 0;

    for (int i = 0; i < SIMGPU_MAX_GPUS; i++)
        if (drv.primary[i].live && drv.primary[i].busy_until_ns > t)
            t = drv.primary[i].busy_until_ns;
    return t;
}

static CUresult do_lock(unsigned timeout_ms)
{
    struct timespec ts;

    if (timeout_ms == 0) {
        pthread_rwlock_wrlock(&drv.gate);
    } else {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += timeout_ms / 1000;
        ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        if (pthread_rwlock_clockwrlock(&drv.gate, CLOCK_MONOTONIC, &ts) != 0)
            return CUDA_ERROR_TIMEOUT;
    }
    simgpu_sleep_until(all_work_done_ns());
    return CUDA_SUCCESS;
}

struct move {
    uint64_t bytes[SIMGPU_MAX_GPUS];
    uint64_t total;
    bool failed;
};

static void count_phys(struct simgpu_phys *p, void *arg)
{
    struct move *mv = arg;

    mv->bytes[p->dev] += p->size;
    mv->total += p->size;
}

static void save_phys(struct simgpu_phys *p, void *arg)
{
    struct move *mv = arg;

    if (mv->failed || p->data == NULL)
        return;
    p->saved = mmap(NULL, p->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p->saved == MAP_FAILED) {
        p->saved = NULL;
        mv->failed = true;
        return;
    }
    simgpu_mem_advise(p->saved, p->size);
    memcpy(p->saved, p->data, p->size);
    munmap(p->data, p->size);
    p->data = NULL;
}

static void load_phys(struct simgpu_phys *p, void *arg)
{
    struct move *mv = arg;

    if (mv->failed || p->saved == NULL)
        return;
    p->data = mmap(NULL, p->size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p->data == MAP_FAILED) {
        p->data = NULL;
        mv->failed = true;
        return;
    }
    simgpu_mem_advise(p->data, p->size);
    memcpy(p->data, p->saved, p->size);
    munmap(p->saved, p->size);
    p->saved = NULL;
}

/* Moves every allocation to host memory and gives its device memory back. */
static CUresult do_checkpoint(void)
{
    struct move mv = {0};
    int64_t t0 = simgpu_now_ns();

    simgpu_mem_lock(&drv.mem);
    simgpu_mem_each(&drv.mem, count_phys, &mv);
    simgpu_mem_each(&drv.mem, save_phys, &mv);
    if (mv.failed) {
        mv.failed = false;
        simgpu_mem_each(&drv.mem, load_phys, &mv);
        simgpu_mem_unlock(&drv.mem);
        return CUDA_ERROR_OUT_OF_MEMORY; /* no host memory for it: nothing moved */
    }
    simgpu_mem_unlock(&drv.mem);
    simgpu_lock(drv.shm);
    for (int d = 0; d < drv.shm->ngpu; d++)
        simgpu_uncharge(drv.shm, drv.slot, d, drv.slot->mem[d]);
    drv.slot->host_bytes = mv.total;
    simgpu_unlock(drv.shm);
    simgpu_sleep_until(t0 + simgpu__link_ns(mv.total));
    return CUDA_SUCCESS;
}

static uint64_t contexts_on(int dev)
{
    return drv.primary[dev].live ? drv.shm->ctx_bytes : 0;
}

/* Takes the device memory back, all of it or none, then the bytes. */
static CUresult do_restore(void)
{
    struct move mv = {0};
    int64_t t0 = simgpu_now_ns();
    int d, rc = 0;

    simgpu_mem_lock(&drv.mem);
    simgpu_mem_each(&drv.mem, count_phys, &mv);
    simgpu_lock(drv.shm);
    for (d = 0; d < drv.shm->ngpu && rc == 0; d++)
        rc = simgpu_charge(drv.shm, drv.slot, d, mv.bytes[d] + contexts_on(d));
    if (rc != 0) {
        while (--d > 0)
            simgpu_uncharge(drv.shm, drv.slot, d - 1, mv.bytes[d - 1] + contexts_on(d - 1));
        simgpu_unlock(drv.shm);
        simgpu_mem_unlock(&drv.mem);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    drv.slot->host_bytes = 0;
    simgpu_unlock(drv.shm);
    simgpu_mem_each(&drv.mem, load_phys, &mv);
    simgpu_mem_unlock(&drv.mem);
    if (mv.failed)
        return CUDA_ERROR_OUT_OF_MEMORY;
    simgpu_sleep_until(t0 + simgpu__link_ns(mv.total));
    return CUDA_SUCCESS;
}

static CUresult serve(uint32_t req, uint32_t arg, int32_t *state)
{
    CUresult rc = CUDA_ERROR_ILLEGAL_STATE;

    switch (req) {
    case SIMGPU_REQ_LOCK:
        if (*state == CU_PROCESS_STATE_RUNNING && (rc = do_lock(arg)) == CUDA_SUCCESS)
            *state = CU_PROCESS_STATE_LOCKED;
        break;
    case SIMGPU_REQ_CHECKPOINT:
        if (*state == CU_PROCESS_STATE_LOCKED && (rc = do_checkpoint()) == CUDA_SUCCESS)
            *state = CU_PROCESS_STATE_CHECKPOINTED;
        break;
    case SIMGPU_REQ_RESTORE:
        if (*state == CU_PROCESS_STATE_CHECKPOINTED && (rc = do_restore()) == CUDA_SUCCESS)
            *state = CU_PROCESS_STATE_LOCKED;
        break;
    case SIMGPU_REQ_UNLOCK:
        if (*state == CU_PROCESS_STATE_LOCKED) {
            pthread_rwlock_unlock(&drv.gate);
            *state = CU_PROCESS_STATE_RUNNING;
            rc = CUDA_SUCCESS;
        }
        break;
    }
    return rc;
}

static void *ckpt_thread(void *arg)
{
    struct simgpu_proc *slot = drv.slot;

    for (;;) {
        uint32_t req, reqarg, seq;
        int32_t state;
        CUresult rc;

        simgpu_lock(drv.shm);
        while ((seq = slot->req_seq) == slot->done_seq) {
            simgpu_unlock(drv.shm);
            simgpu_futex_wait(&slot->req_seq, seq, 1000);
            simgpu_lock(drv.shm);
        }
        req = slot->req;
        reqarg = slot->req_arg;
        state = slot->state;
        simgpu_unlock(drv.shm);
        rc = serve(req, reqarg, &state);
        simgpu_lock(drv.shm);
        slot->state = state;
        slot->req_result = (int32_t)rc;
        slot->done_seq = seq;
        simgpu_unlock(drv.shm);
        simgpu_futex_wake(&slot->done_seq);
    }
    return NULL;
}

int simgpu__ckpt_start(void)
{
    pthread_t t;
    pthread_attr_t a;
    int rc;

    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&t, &a, ckpt_thread, NULL);
    pthread_attr_destroy(&a);
    return -rc;
}

/* Posts a request to pid's driver and waits for the answer. */
static CUresult request(int pid, uint32_t req, uint32_t arg, int wait_ms)
{
    struct simgpu_proc *p;
    int64_t deadline = simgpu_now_ns() + (int64_t)wait_ms * 1000000;
    uint32_t seq;
    CUresult rc = CUDA_SUCCESS;

    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (pid == drv.pid)
        return CUDA_ERROR_NOT_SUPPORTED; /* a process cannot checkpoint itself */
    simgpu_lock(drv.shm);
    simgpu_reap(drv.shm);
    p = simgpu_proc_slot(drv.shm, pid, false);
    if (p == NULL) {
        simgpu_unlock(drv.shm);
        return CUDA_ERROR_INVALID_VALUE; /* not a process using the simulated GPUs */
    }
    if (p->req_seq != p->done_seq) {
        simgpu_unlock(drv.shm);
        return CUDA_ERROR_ILLEGAL_STATE; /* another request is in progress */
    }
    p->req = req;
    p->req_arg = arg;
    seq = ++p->req_seq;
    simgpu_futex_wake(&p->req_seq);
    while (p->pid == pid && p->done_seq != seq && simgpu_now_ns() < deadline) {
        uint32_t done = p->done_seq;

        simgpu_unlock(drv.shm);
        simgpu_futex_wait(&p->done_seq, done, 100);
        simgpu_lock(drv.shm);
        simgpu_reap(drv.shm);
    }
    if (p->pid != pid)
        rc = CUDA_ERROR_INVALID_VALUE; /* it died */
    else if (p->done_seq != seq)
        rc = CUDA_ERROR_TIMEOUT;
    else
        rc = (CUresult)p->req_result;
    simgpu_unlock(drv.shm);
    return rc;
}

SIMGPU_EXPORT CUresult cuCheckpointProcessGetState(int pid, CUprocessState *state)
{
    struct simgpu_proc *p;

    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (state == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    simgpu_lock(drv.shm);
    p = simgpu_proc_slot(drv.shm, pid, false);
    if (p != NULL)
        *state = (CUprocessState)p->state;
    simgpu_unlock(drv.shm);
    return p != NULL ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

SIMGPU_EXPORT CUresult cuCheckpointProcessLock(int pid, CUcheckpointLockArgs *args)
{
    unsigned timeout = args != NULL ? args->timeoutMs : 0;

    return request(pid, SIMGPU_REQ_LOCK, timeout,
                   timeout == 0 ? 24 * 3600 * 1000 : (int)timeout + ANSWER_GRACE_MS);
}

SIMGPU_EXPORT CUresult cuCheckpointProcessCheckpoint(int pid, CUcheckpointCheckpointArgs *args)
{
    return request(pid, SIMGPU_REQ_CHECKPOINT, 0, 24 * 3600 * 1000);
}

SIMGPU_EXPORT CUresult cuCheckpointProcessRestore(int pid, CUcheckpointRestoreArgs *args)
{
    if (args != NULL && args->gpuPairsCount != 0) {
        simgpu_say_once("remap", "restoring onto other GPUs is not simulated");
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    return request(pid, SIMGPU_REQ_RESTORE, 0, 24 * 3600 * 1000);
}

SIMGPU_EXPORT CUresult cuCheckpointProcessUnlock(int pid, CUcheckpointUnlockArgs *args)
{
    return request(pid, SIMGPU_REQ_UNLOCK, 0, ANSWER_GRACE_MS);
}
