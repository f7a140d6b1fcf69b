/*
 * Swapping a workload's GPU memory out to host memory and back (see swap.c): through the
 * driver's checkpoint API, or through libgpool-cuda inside the process.
 */
#ifndef GPOOL_AGENT_SWAP_H
#define GPOOL_AGENT_SWAP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct swap_opts {
    const char *via;       /* "auto", "driver" or "library" */
    const char *regions;   /* the agent's region directory */
    uint64_t host_reserve; /* host memory a swap out must leave free */
    uint64_t bytes_hint;   /* what the process holds on its GPUs, when the caller knows (NVML) */
    double timeout_s;      /* for the lock (kernels in flight) or the library's answer */
};

struct swap_result {
    const char *via; /* "driver" or "library" */
    uint64_t bytes;  /* moved (for a driver swap out: what it held) */
    double seconds;
    double copy_seconds; /* of which moving the bytes (library swaps; 0: not known) */
    int err;         /* 0, or an errno: ENOMEM refused for host or device memory, ENOTSUP, ... */
    char msg[256];
};

/* Swaps pid out (out) or back in: 0, or -1 with r->err and r->msg. */
int swap_process(const struct swap_opts *o, pid_t pid, bool out, struct swap_result *r);
/* What NVML says pid holds on all GPUs; 0 when NVML cannot tell. */
uint64_t swap_nvml_bytes(pid_t pid);
/* The session of a process (its job's supervisor leads one), 0 when it is gone. */
pid_t swap_session_of(pid_t pid);
/* The processes of a session that NVML shows on any GPU: how many, at most max. */
int swap_session_pids(pid_t session, pid_t *pids, int max);
/* MemAvailable of /proc/meminfo, in bytes. */
uint64_t swap_host_available(void);

#endif
