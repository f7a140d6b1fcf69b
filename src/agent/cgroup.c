/*
 * A cgroup v2 per workload, for process control that nothing in the workload can escape: the
 * workload joins its job's cgroup before it runs, cancel writes cgroup.kill (the whole tree, even
 * processes that left the process group or the session), suspend and resume write cgroup.freeze.
 * Only these core files are used, which need no controllers; memory and CPU limits are set only
 * where the hierarchy has those controllers.  The root is found in /proc/self/mountinfo (the
 * agent's own cgroup under a cgroup2 mount, so that under systemd it stays inside the agent's
 * delegated subtree, in a directory named for the node and the agent's state directory), or given;
 * without a writable cgroup v2 hierarchy the agent falls back to process groups and the supervisor
 * as a child subreaper.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/cgroup.h"
#include "common/hash.h"

static int write_file(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX + 64];
    int fd, rc;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
        return -errno;
    rc = write(fd, text, strlen(text)) == (ssize_t)strlen(text) ? 0 : -errno;
    close(fd);
    return rc;
}

static bool has_word(const char *dir, const char *name, const char *word)
{
    char path[PATH_MAX + 64], buf[512], *tok, *save;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if ((f = fopen(path, "re")) == NULL)
        return false;
    if (fgets(buf, sizeof(buf), f) == NULL)
        buf[0] = '\0';
    fclose(f);
    for (tok = strtok_r(buf, " \n", &save); tok != NULL; tok = strtok_r(NULL, " \n", &save))
        if (strcmp(tok, word) == 0)
            return true;
    return false;
}

/* The cgroup2 mount point and this process's cgroup in it: base = mount + own path. */
static bool find_base(char *base, size_t len)
{
    char line[PATH_MAX * 2], mnt[PATH_MAX] = "", own[PATH_MAX] = "";
    FILE *f = fopen("/proc/self/mountinfo", "re");

    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        char point[PATH_MAX], *dash = strstr(line, " - ");

        if (dash != NULL && strncmp(dash + 3, "cgroup2 ", 8) == 0 &&
            sscanf(line, "%*s %*s %*s %*s %4095s", point) == 1) {
            snprintf(mnt, sizeof(mnt), "%s", point);
            break;
        }
    }
    if (f != NULL)
        fclose(f);
    if ((f = fopen("/proc/self/cgroup", "re")) != NULL) {
        while (fgets(line, sizeof(line), f) != NULL)
            if (strncmp(line, "0::", 3) == 0) {
                line[strcspn(line, "\n")] = '\0';
                if (strlen(line + 3) < sizeof(own))
                    memcpy(own, line + 3, strlen(line + 3) + 1);
            }
        fclose(f);
    }
    if (mnt[0] == '\0')
        return false;
    return snprintf(base, len, "%s%s", mnt, strcmp(own, "/") == 0 ? "" : own) < (int)len;
}

/*
 * The default root's name: "gpool-NODE-HASH", HASH (FNV-1a) naming the agent's state directory.
 * Two agents on one host (gpool dev's nodes, test pools side by side) share the base cgroup and
 * number their jobs alike; each needs a root of its own, stable across its restarts so that it
 * finds its workloads' cgroups again.
 */
static void default_name(char *buf, size_t len, const char *node, const char *state_dir)
{
    char dir[PATH_MAX], safe[64];
    uint64_t h;
    size_t i;

    if (realpath(state_dir, dir) == NULL)
        snprintf(dir, sizeof(dir), "%s", state_dir);
    h = hash_fnv1a(dir, HASH_FNV_OFFSET);
    for (i = 0; node[i] != '\0' && i < sizeof(safe) - 1; i++)
        safe[i] = isalnum((unsigned char)node[i]) || strchr("._-", node[i]) ? node[i] : '_';
    safe[i] = '\0';
    snprintf(buf, len, "gpool-%s-%08x", safe, (uint32_t)(h ^ h >> 32));
}

int agent_cgroups_init(struct agent_cgroups *c, const char *root, const char *node,
                       const char *state_dir)
{
    char base[PATH_MAX], name[128];

    memset(c, 0, sizeof(*c));
    if (root != NULL && strcmp(root, "none") == 0)
        return 0;
    if (root != NULL) {
        snprintf(c->root, sizeof(c->root), "%s", root);
    } else {
        default_name(name, sizeof(name), node, state_dir);
        if (!find_base(base, sizeof(base)) ||
            snprintf(c->root, sizeof(c->root), "%s/%s", base, name) >= (int)sizeof(c->root))
            return 0;
    }
    if ((mkdir(c->root, 0755) != 0 && errno != EEXIST) || access(c->root, W_OK) != 0 ||
        !has_word(c->root, "cgroup.type", "domain")) {
        if (root != NULL) {
            fprintf(stderr, "gpool agent: --cgroup-root %s: not a writable cgroup v2 directory\n",
                    root);
            return -1;
        }
        c->root[0] = '\0';
        return 0;
    }
    /* Limits where the hierarchy offers the controllers; none are needed otherwise. */
    write_file(c->root, "cgroup.subtree_control", "+memory");
    write_file(c->root, "cgroup.subtree_control", "+cpu");
    c->memory = has_word(c->root, "cgroup.subtree_control", "memory");
    c->cpu = has_word(c->root, "cgroup.subtree_control", "cpu");
    c->on = true;
    return 0;
}

void agent_cgroup_path(const struct agent_cgroups *c, int64_t id, char *buf, size_t len)
{
    if (snprintf(buf, len, "%s/job-%lld", c->root, (long long)id) >= (int)len)
        buf[0] = '\0';
}

int agent_cgroup_create(const struct agent_cgroups *c, int64_t id, uint64_t mem_bytes,
                        unsigned cpu_milli, char *path, size_t len)
{
    char text[64];

    path[0] = '\0';
    if (!c->on)
        return 0;
    agent_cgroup_path(c, id, path, len);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        path[0] = '\0';
        return -errno;
    }
    if (c->memory && mem_bytes > 0) {
        snprintf(text, sizeof(text), "%llu", (unsigned long long)mem_bytes);
        write_file(path, "memory.max", text);
    }
    if (c->cpu && cpu_milli > 0) {
        snprintf(text, sizeof(text), "%u 100000", cpu_milli * 100);
        write_file(path, "cpu.max", text);
    }
    return 0;
}

int agent_cgroup_join(const char *path)
{
    return path == NULL || path[0] == '\0' ? -ENOENT : write_file(path, "cgroup.procs", "0");
}

int agent_cgroup_kill(const struct agent_cgroups *c, int64_t id)
{
    char path[PATH_MAX];

    if (!c->on)
        return -ENOENT;
    agent_cgroup_path(c, id, path, sizeof(path));
    return write_file(path, "cgroup.kill", "1");
}

int agent_cgroup_freeze(const struct agent_cgroups *c, int64_t id, bool frozen)
{
    char path[PATH_MAX];

    if (!c->on)
        return -ENOENT;
    agent_cgroup_path(c, id, path, sizeof(path));
    return write_file(path, "cgroup.freeze", frozen ? "1" : "0");
}

void agent_cgroup_remove(const struct agent_cgroups *c, int64_t id)
{
    char path[PATH_MAX];

    if (!c->on)
        return;
    agent_cgroup_path(c, id, path, sizeof(path));
    /* Busy while a process is left: cgroup.kill first, the next check removes it. */
    if (rmdir(path) != 0 && errno == EBUSY) {
        write_file(path, "cgroup.kill", "1");
        rmdir(path);
    }
}
