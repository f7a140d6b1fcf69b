/*
 * Reading cluster traces: a node list and a pod list, CSV files whose columns are found by name.
 * A trace with bad input is refused whole, with an error naming the file, line and column.
 */
#ifndef GPOOL_SIM_TRACE_H
#define GPOOL_SIM_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "sched/model.h"

enum trace_qos { TRACE_QOS_NONE, TRACE_QOS_LS, TRACE_QOS_GUARANTEED, TRACE_QOS_BURSTABLE,
                 TRACE_QOS_BE };

struct trace_pod {
    char *name;
    struct sched_pod pod;
    enum trace_qos qos;
    int64_t created, deleted, scheduled; /* seconds; -1 when the trace has none */
};

struct trace_nodes {
    struct sched_cluster cluster; /* nodes at full capacity, models from the `model` column */
    char **names;                 /* storage behind node and model names */
    int nnames;
};

struct trace_pods {
    struct trace_pod *pods;
    int npods;
};

/*
 * Read a node list (`sn, cpu_milli, memory_mib, gpu[, model]`). Returns 0, or -1 with a message
 * in `err`.
 */
int trace_read_nodes(const char *path, struct trace_nodes *out, char *err, size_t errlen);
void trace_nodes_fini(struct trace_nodes *t);

/*
 * Read a pod list (`name, cpu_milli, memory_mib, num_gpu, gpu_milli[, gpu_spec, qos,
 * creation_time, deletion_time, scheduled_time]`). GPU models named by `gpu_spec` are looked up
 * in, or added to, the node list's model table.
 */
int trace_read_pods(const char *path, struct trace_nodes *nodes, struct trace_pods *out, char *err,
                    size_t errlen);
void trace_pods_fini(struct trace_pods *t);

/* One pod's GPU use, a sample a minute: busy fraction (0..1) and memory used (bytes). */
struct trace_series {
    char *pod;
    float *busy;
    int nbusy;
    float *mem;
    int nmem;
};

struct trace_usage {
    struct trace_series *s;
    int n;
};

/*
 * Read GPU usage series (`value, timestamp_anon, container_ip`: the duty cycle in percent, and
 * the memory used in bytes), ordered by time within each pod; pods without both are dropped.
 */
int trace_read_usage(const char *duty_path, const char *mem_path, struct trace_usage *out,
                     char *err, size_t errlen);
void trace_usage_fini(struct trace_usage *u);

struct replay_projects;
/*
 * Read projects (`name, deserved_pct[, weight, limit_pct]`: percents of the cluster's GPUs;
 * together they deserve at most 100%).
 */
int trace_read_projects(const char *path, struct replay_projects *out, char *err, size_t errlen);

/*
 * Find a trace file: `name` as given if it exists, else under $GPOOL_TRACES or the shared traces
 * folder, as `name`, `openb/name` or `openb/openb_pod_list_<name>.csv`. Returns a new string, or
 * NULL when nothing matches.
 */
char *trace_find(const char *name);
/* The folders trace_find searches, for messages: a static string. */
const char *trace_search_path(void);

#endif
