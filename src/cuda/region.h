/*
 * The shared-memory region between the agent and libgpool-cuda: one file per GPU, named by the
 * GPU's UUID in the node's region directory.  The agent writes each job's memory cap, compute
 * share and limit; the library, inside every workload process, charges its memory and kernel time
 * to its own process slot and takes turns on the GPU with the other jobs' processes.
 *
 * A job may be marked a borrower: it runs on capacity that idle jobs lend.  Its processes stop
 * launching while any other job of the GPU is active, and a lender's allocation that finds the
 * GPU full swaps the borrowers that allocate through the library's swap path out.
 *
 * Robust against a process dying at any moment: a process writes only its own slot, with atomic
 * operations, and a slot whose process is gone counts for nothing and is taken again; the one
 * lock (turn changes, the job table) is a robust process-shared mutex.  The layout is versioned:
 * a reader that finds another magic, version or size leaves the region alone.
 */
#ifndef GPOOL_CUDA_REGION_H
#define GPOOL_CUDA_REGION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define GPR_MAGIC 0x31525047u /* "GPR1" */
#define GPR_VERSION 3
#define GPR_JOBS 64
#define GPR_PROCS 256
#define GPR_ID_MAX 48
#define GPR_UUID_MAX 96

/* Swap requests (the agent writes swap_req) and states (the library answers in swap_state). */
enum { GPR_SWAP_NONE = 0, GPR_SWAP_OUT = 1, GPR_SWAP_IN = 2 };
enum { GPR_SWAPPED_IN = 0, GPR_SWAPPED_OUT = 1 };
/* Why a process cannot be swapped by the library (unswappable). */
enum { GPR_UNSWAPPABLE_MANAGED = 1, GPR_UNSWAPPABLE_PITCHED = 2 };

/* A job's processes have launched within this long: it wants the GPU. */
#define GPR_ACTIVE_NS 50000000ll
/* The longest turn one job holds while another waits. */
#define GPR_TURN_NS 20000000ll

struct gpr_job {
    /* Written by the agent (gpr_job_set). */
    _Atomic uint32_t used;         /* 1 while the slot names a job */
    char id[GPR_ID_MAX];           /* the job's id, as in GPOOL_JOB_ID */
    _Atomic uint64_t mem_cap;      /* bytes on this GPU; 0: no cap */
    _Atomic uint32_t share_milli;  /* guaranteed share of compute, 1..1000 */
    _Atomic uint32_t limit_milli;  /* most compute it may use, share..1000 */
    _Atomic uint32_t borrower;     /* 1: runs on capacity idle jobs lend */
    /* Written by the library in the job's processes. */
    _Atomic int64_t active_until;  /* CLOCK_MONOTONIC ns: it wants the GPU until then */
    _Atomic int64_t idle_since;    /* last launch before a pause of GPR_ACTIVE_NS, 0: busy */
    _Atomic int64_t woke_at;       /* first launch after such a pause */
    _Atomic uint64_t vtime_ns;     /* kernel time divided by share: whose turn is next */
    _Atomic uint64_t busy_ns;      /* kernel time measured while taking turns */
    _Atomic uint64_t launches;
    _Atomic int64_t drain_until;   /* its queued kernels are done by then (estimate) */
    _Atomic int64_t want_until;    /* one of its processes waits for a turn until then */
    /* A borrower's, written by the library in its processes. */
    _Atomic int64_t yielded_at;     /* it last stopped launching as a lender woke; 0: never */
    _Atomic int64_t drained_at;     /* and its kernels in flight were done then */
    _Atomic uint64_t yields;        /* times it stopped for a lender */
    _Atomic int64_t reclaimed_at;   /* a lender's allocation last swapped it out; 0: never */
    _Atomic uint64_t reclaims;      /* times that happened */
    _Atomic uint64_t reclaim_bytes; /* what its processes moved out then */
};

struct gpr_proc {
    _Atomic int32_t pid;           /* 0: free */
    _Atomic int32_t job;           /* index into jobs, -1: none */
    _Atomic uint64_t start_ticks;  /* the process's start time, against a reused pid */
    _Atomic uint64_t mem_used;     /* bytes charged on this GPU, context included */
    _Atomic uint64_t busy_ns;
    _Atomic uint64_t launches;
    _Atomic int64_t last_launch;
    /* Swapping inside the library (GPOOL_SWAP=library): the agent asks, the library answers. */
    _Atomic uint32_t swap_lib;     /* 1: the process allocates through the library's swap path */
    _Atomic uint32_t swap_req;     /* futex word: GPR_SWAP_*; back to NONE when answered */
    _Atomic uint32_t swap_state;   /* GPR_SWAPPED_* */
    _Atomic int32_t swap_error;    /* 0, or an errno: EPERM unswappable, ENOMEM no device memory */
    _Atomic int32_t unswappable;   /* GPR_UNSWAPPABLE_*, 0: swappable */
    _Atomic uint64_t swap_bytes;   /* moved by the last swap */
    _Atomic uint64_t swap_ns;      /* and how long it took */
    _Atomic uint64_t swap_copy_ns; /* of which copying the bytes (the rest: host memory) */
    _Atomic uint32_t reclaimed;    /* 1: swapped out for a lender's allocation, not on request */
};

struct gpr_region {
    uint32_t magic;
    uint32_t version;
    uint32_t size;                 /* sizeof(struct gpr_region) of the writer */
    uint32_t njobs, nprocs;
    char uuid[GPR_UUID_MAX];
    uint64_t total_mem;            /* the GPU's memory */
    _Atomic uint64_t context_bytes;/* device memory one process's context takes */
    pthread_mutex_t mu;            /* robust, process-shared */
    _Atomic uint32_t turn_seq;     /* futex word: bumped when the turn changes hands */
    _Atomic int32_t turn_job;      /* the job whose kernels may run, -1: nobody */
    _Atomic int64_t turn_end;      /* its turn ends then unless nobody else waits */
    _Atomic uint64_t vclock_ns;    /* the virtual time of the last turn taken */
    struct gpr_job jobs[GPR_JOBS];
    struct gpr_proc procs[GPR_PROCS];
};

int64_t gpr_now(void);

/* The file of a GPU: DIR/UUID. */
int gpr_path(char *buf, size_t len, const char *dir, const char *uuid);

/* The agent's side.  Creates (or opens and checks) the region of a GPU. */
struct gpr_region *gpr_create(const char *dir, const char *uuid, uint64_t total_mem, char *err,
                              size_t errlen);
/* Opens an existing region; NULL with a reason when it is missing or of another version. */
struct gpr_region *gpr_open(const char *path, char *err, size_t errlen);
void gpr_close(struct gpr_region *r);

/* Sets (adds or changes) a job's cap, share and limit; -1 when the table is full or a value is
 * out of range.  Changes take effect in running processes at their next call. */
int gpr_job_set(struct gpr_region *r, const char *id, uint64_t mem_cap, unsigned share_milli,
                unsigned limit_milli);
void gpr_job_remove(struct gpr_region *r, const char *id);
/* Marks a job a borrower (it runs on capacity lent by idle jobs: it stops launching while any
 * other job of the GPU is active, and a lender's allocation may swap it out) or not; 0, or -1
 * when the job is not in the region.  A job starts as no borrower. */
int gpr_job_set_borrower(struct gpr_region *r, const char *id, bool borrower);
int gpr_job_find(struct gpr_region *r, const char *id);

/* Locks the region's mutex, making it consistent again if its holder died. */
void gpr_lock(struct gpr_region *r);
void gpr_unlock(struct gpr_region *r);

/* Is the process of this slot alive (and the same process that took it)? */
bool gpr_proc_alive(const struct gpr_proc *p);
/* A process's session (field 6 of /proc/PID/stat) and start time (field 22): 0, or -1 when it
 * is gone. */
int gpr_proc_stat(pid_t pid, pid_t *session, uint64_t *start_ticks);
/* The start time of a process, 0 when it is gone. */
uint64_t gpr_start_ticks(pid_t pid);
/* The memory charged to a job by its live processes. */
uint64_t gpr_job_mem(struct gpr_region *r, int job);

#endif
