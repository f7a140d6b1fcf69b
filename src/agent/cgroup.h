/*
 * A cgroup v2 per workload (see cgroup.c): join, kill the whole tree, freeze, limits where the
 * controllers exist; off when no writable cgroup v2 hierarchy is found.
 */
#ifndef GPOOL_AGENT_CGROUP_H
#define GPOOL_AGENT_CGROUP_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct agent_cgroups {
    bool on;
    bool memory, cpu; /* the controllers the jobs' cgroups have */
    char root[PATH_MAX];
};

/* root: NULL finds one (the agent's own cgroup under the cgroup2 mount, + "/gpool-NODE-HASH",
 * HASH naming state_dir), "none" turns cgroups off, a directory is used as is.  -1 only when a
 * given root is unusable. */
int agent_cgroups_init(struct agent_cgroups *c, const char *root, const char *node,
                       const char *state_dir);
void agent_cgroup_path(const struct agent_cgroups *c, int64_t id, char *buf, size_t len);
/* Makes the job's cgroup with its limits; path is empty when cgroups are off. */
int agent_cgroup_create(const struct agent_cgroups *c, int64_t id, uint64_t mem_bytes,
                        unsigned cpu_milli, char *path, size_t len);
/* Moves the calling process into the cgroup at path. */
int agent_cgroup_join(const char *path);
int agent_cgroup_kill(const struct agent_cgroups *c, int64_t id);
int agent_cgroup_freeze(const struct agent_cgroups *c, int64_t id, bool frozen);
void agent_cgroup_remove(const struct agent_cgroups *c, int64_t id);

#endif
