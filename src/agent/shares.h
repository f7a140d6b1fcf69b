/*
 * The agent's side of libgpool-cuda (see shares.c): regions per GPU, each job's terms in them,
 * the library in the job's environment, and caps checked through NVML.
 */
#ifndef GPOOL_AGENT_SHARES_H
#define GPOOL_AGENT_SHARES_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cuda/region.h"

#define AGENT_MAX_GPUS 16

struct agent_shares {
    char dir[4096];
    char lib[PATH_MAX];
    int n;
    struct gpr_region *r[AGENT_MAX_GPUS];
    uint64_t total[AGENT_MAX_GPUS];
    unsigned long long util_seen[AGENT_MAX_GPUS]; /* NVML's time of the last busy samples */
};

/* Creates STATE_DIR/regions and a region per GPU; lib is --cuda-lib (NULL: look beside the
 * binary, "none": do not inject). */
int agent_shares_init(struct agent_shares *s, const char *state_dir, json_t *gpus,
                      const char *lib);
/* Writes the job's terms for each of its GPUs and sets job["agent_env"] for the runner. */
void agent_shares_grant(struct agent_shares *s, json_t *job);
void agent_shares_revoke(struct agent_shares *s, int64_t job_id);
/* Marks the job (its "id" and "gpus") a borrower on its GPUs, or no longer one. */
void agent_shares_borrower(struct agent_shares *s, json_t *job, bool borrower);
/* A job whose every process on the swap path was swapped out without the agent asking (its
 * lender's allocation had the library do it): how many processes, their pids in pids, and the
 * bytes they moved; 0 when not (or the job has no such process). */
int agent_shares_reclaimed(struct agent_shares *s, int64_t job_id, pid_t *pids, int max,
                           uint64_t *bytes);
/* 1 with a message when the processes of the job (its supervisor's session) hold more than its
 * cap on a GPU, as NVML sees them. */
int agent_shares_over_cap(struct agent_shares *s, int64_t job_id, pid_t supervisor, char *why,
                          size_t len);

/* A job's processes on this node: those of its supervisors' sessions. */
struct agent_workload {
    int64_t id;
    pid_t supervisor;
};

/* What NVML measures of each GPU now, and of each job's processes on it, for the heartbeat:
 * [{"index", "memory_used_bytes", "utilization_pct",
 *   "jobs": [{"id", "memory_used_bytes", "utilization_pct"}]}]. */
json_t *agent_shares_telemetry(struct agent_shares *s, const struct agent_workload *w, int n);

#endif
