/*
 * Reading cluster traces: a node list and a pod list, CSV files whose columns are found by name.
 * A trace with bad input is refused whole, with an error naming the file, line and column.
 */
#ifndef GPOOL_SIM_TRACE_H
#define GPOOL_SIM_TRACE_H

#include <stddef.h>

#include "sched/model.h"

struct trace_pod {
    char *name;
    struct sched_pod pod;
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
 * Read a pod list (`name, cpu_milli, memory_mib, num_gpu, gpu_milli[, gpu_spec]`). GPU models
 * named by `gpu_spec` are looked up in, or added to, the node list's model table.
 */
int trace_read_pods(const char *path, struct trace_nodes *nodes, struct trace_pods *out, char *err,
                    size_t errlen);
void trace_pods_fini(struct trace_pods *t);

/*
 * Find a trace file: `name` as given if it exists, else under $GPOOL_TRACES or the shared traces
 * folder, as `name`, `openb/name` or `openb/openb_pod_list_<name>.csv`. Returns a new string, or
 * NULL when nothing matches.
 */
char *trace_find(const char *name);
/* The folders trace_find searches, for messages: a static string. */
const char *trace_search_path(void);

#endif
