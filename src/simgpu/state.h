/*
 * The state that simulated GPUs share between processes: one file, mapped
 * by every process that uses simgpu (its driver or its NVML), holding each
 * device's configuration, the memory in use, the kernel timeline and the
 * per-process accounting that NVML reports.  One robust process-shared
 * mutex guards it, so a process killed while holding it leaves it usable.
 * Processes wait for each other on futexes, not condition variables: a
 * process killed while waiting on a shared condition variable leaves it
 * broken for every other process, while a futex keeps no waiter state.
 *
 * Configuration comes from the environment of the process that creates the
 * file (SIMGPU_COUNT, SIMGPU_MODEL, SIMGPU_MEMORY, SIMGPU_SMS,
 * SIMGPU_HOST_LINK_GBPS, SIMGPU_MEM_GBPS, SIMGPU_CONTEXT_MEMORY); its path is
 * SIMGPU_STATE, by default /dev/shm/simgpu-UID.  docs/simgpu.md lists them.
 */
#ifndef GPOOL_SIMGPU_STATE_H
#define GPOOL_SIMGPU_STATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define SIMGPU_MAX_GPUS 16
#define SIMGPU_MAX_PROCS 128
#define SIMGPU_RING 2048
#define SIMGPU_GRANULARITY (2u << 20)

/* One kernel's time on a device. */
struct simgpu_interval {
    int64_t start_ns;
    int64_t end_ns;
    int32_t pid;
};

struct simgpu_dev {
    char name[96];
    char uuid[48];
    int32_t sms;
    uint64_t mem_total;
    uint64_t mem_used;
    int64_t free_at_ns; /* when the kernels queued so far have all run */
    uint64_t busy_ns;   /* kernel time queued since the file was created */
    uint32_t ring_next;
    struct simgpu_interval ring[SIMGPU_RING];
};

/* Requests one process makes of another's driver (the checkpoint calls). */
enum simgpu_req { SIMGPU_REQ_NONE, SIMGPU_REQ_LOCK, SIMGPU_REQ_CHECKPOINT, SIMGPU_REQ_RESTORE,
                  SIMGPU_REQ_UNLOCK };

struct simgpu_proc {
    int32_t pid;
    int32_t state; /* CUprocessState */
    uint64_t mem[SIMGPU_MAX_GPUS];
    uint64_t busy_ns[SIMGPU_MAX_GPUS]; /* kernel time queued by the process on each device */
    uint64_t host_bytes; /* device bytes a checkpoint moved to host memory */
    uint32_t req, req_arg, req_seq, done_seq;
    int32_t req_result;
};

struct simgpu_shm {
    uint32_t magic;
    uint32_t version;
    char config[512]; /* the environment that configured it, to notice a change */
    pthread_mutex_t lock;
    int32_t ngpu;
    uint64_t link_bps;   /* host link, bytes per second, each way */
    uint64_t membw_bps;  /* device memory bandwidth */
    uint64_t ctx_bytes;  /* device memory a context takes */
    struct simgpu_dev dev[SIMGPU_MAX_GPUS];
    struct simgpu_proc proc[SIMGPU_MAX_PROCS];
};

/* Maps the shared file, creating and configuring it if needed. 0 or -errno; msg says why. */
int simgpu_state_open(struct simgpu_shm **out, char *msg, size_t msglen);

void simgpu_lock(struct simgpu_shm *s);
void simgpu_unlock(struct simgpu_shm *s);
/* Waits at most ms milliseconds while *word is still seen (the lock is not held); wakes the
 * waiters of word. */
void simgpu_futex_wait(uint32_t *word, uint32_t seen, int ms);
void simgpu_futex_wake(uint32_t *word);

/* The slot of pid, or NULL; with create, a new one.  Lock held. */
struct simgpu_proc *simgpu_proc_slot(struct simgpu_shm *s, pid_t pid, bool create);
/* Gives back what dead processes held.  Lock held. */
void simgpu_reap(struct simgpu_shm *s);

/* Charges bytes of device memory to pid on dev: 0, or -ENOMEM when it does not fit.  Lock held. */
int simgpu_charge(struct simgpu_shm *s, struct simgpu_proc *p, int dev, uint64_t bytes);
void simgpu_uncharge(struct simgpu_shm *s, struct simgpu_proc *p, int dev, uint64_t bytes);

/* Queues a kernel of duration_ns for pid on dev, no earlier than ready_ns; returns its end. */
int64_t simgpu_schedule(struct simgpu_shm *s, int dev, pid_t pid, int64_t ready_ns,
                        int64_t duration_ns);
/* Kernel time of dev (of pid alone, when pid > 0) that falls in [from, to). */
int64_t simgpu_busy_between(const struct simgpu_shm *s, int dev, pid_t pid, int64_t from,
                            int64_t to);

int64_t simgpu_now_ns(void);
void simgpu_sleep_until(int64_t t_ns);
/* Says msg on stderr once per distinct key in this process. */
void simgpu_say_once(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
