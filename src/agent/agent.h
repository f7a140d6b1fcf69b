/*
 * `gpool agent`: one per node.  It finds the node's GPUs through NVML, registers them with the
 * server, sends heartbeats, takes its assignments by long-poll and runs each job under a small
 * supervisor process of its own, as the job's Unix user, so that workloads outlive an agent
 * restart and are adopted again.  What runs, and how it ended, is kept in a state directory.
 */
#ifndef GPOOL_AGENT_AGENT_H
#define GPOOL_AGENT_AGENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct agent_opts {
    const char *server;     /* http://HOST:PORT */
    const char *token_file; /* a token on the command line would be visible in /proc */
    const char *name;       /* node name; default: the host name */
    const char *state_dir;  /* default /var/lib/gpool/agent */
    int heartbeat_s;
    const char *cuda_lib;   /* libgpool-cuda; NULL: beside the binary, "none": not preloaded */
    const char *cgroup_root; /* NULL: found (cgroup v2), "none": process groups only */
    const char *address;     /* how other nodes reach this one; NULL: the node name */
    json_t *env;             /* {"KEY": "VALUE"} every workload here gets; a job's own win */
    int64_t cpu_milli;       /* the CPUs offered to jobs; 0: the online CPUs */
};

/* The node as NVML and the system describe it: {"name", "cpu_milli", "mem_mib", "gpus"}. */
json_t *agent_discover(const char *name, char *err, size_t errlen);

/* Runs until SIGINT or SIGTERM; the jobs keep running.  0, or -1 with a message on stderr. */
int agent_run(const struct agent_opts *o);

/* The supervisor: runs one job's command as its user, in its own session, and records its pid
 * and exit status under dir.  Returns in the agent with the supervisor's pid, or -1. */
int agent_spawn(const char *dir, json_t *job, const char *gpus);

#endif
