/*
 * Running a job: a supervisor process per job, in a session of its own, forks the workload as
 * the job's Unix user (never root) with its logs, GPUs and environment, waits for it, and writes
 * how it ended.  The files of a job's directory say what happened, for an agent that restarts:
 *   supervisor  the supervisor's pid (its session)
 *   workload    the workload's pid (its own process group, which a cancel kills)
 *   stdout, stderr  the workload's output
 *   exit        its exit status (128 + signal when killed), written when it ends
 * The agent never waits for a supervisor: SIGCHLD is ignored, so they are reaped for it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/cgroup.h"

#define ENV_MAX 256

static int write_file(const char *dir, const char *name, const char *text)
{
    char tmp[4200], path[4200];
    int fd;
    ssize_t n = (ssize_t)strlen(text);

    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    if (write(fd, text, (size_t)n) != n || fsync(fd) != 0) {
        close(fd);
        return -1;
    }
    close(fd);
    /* A reader sees the whole file or none of it. */
    return rename(tmp, path);
}

/* Sets the string members of from in to (NULL: nothing). */
static void set_strings(json_t *to, json_t *from)
{
    const char *key;
    json_t *v;

    json_object_foreach(from, key, v) if (json_is_string(v)) json_object_set(to, key, v);
}

/*
 * The workload's environment, from the weakest to the strongest: a PATH; what the agent was
 * started with for simulated GPUs and sanitizers (a test build's workloads); the node's own
 * (`gpool agent --env`); the job's; then what the agent sets, which nothing replaces: the
 * user's identity, the GPUs, the preload library and its regions, a gang's ranks.
 */
static char **environment(json_t *job, const struct passwd *pw, const char *gpus)
{
    static char *envp[ENV_MAX + 1];
    json_t *all = json_object(), *v;
    const char *key;
    char id[32];
    int n = 0;

    json_object_set_new(all, "PATH", json_string("/usr/local/bin:/usr/bin:/bin"));
    for (const char *const *k =
             (const char *const[]){"LD_LIBRARY_PATH", "SIMGPU_STATE", "SIMGPU_COUNT",
                                   "SIMGPU_MEMORY", "ASAN_OPTIONS", "UBSAN_OPTIONS", NULL};
         *k; k++)
        if (getenv(*k) != NULL)
            json_object_set_new(all, *k, json_string(getenv(*k)));
    set_strings(all, json_object_get(job, "node_env"));
    set_strings(all, json_object_get(json_object_get(job, "spec"), "env"));
    json_object_set_new(all, "HOME", json_string(pw->pw_dir));
    json_object_set_new(all, "USER", json_string(pw->pw_name));
    json_object_set_new(all, "LOGNAME", json_string(pw->pw_name));
    json_object_set_new(all, "CUDA_VISIBLE_DEVICES", json_string(gpus));
    snprintf(id, sizeof(id), "%lld", (long long)json_integer_value(json_object_get(job, "id")));
    json_object_set_new(all, "GPOOL_JOB_ID", json_string(id));
    set_strings(all, json_object_get(job, "agent_env"));
    json_object_foreach(all, key, v)
    {
        if (n >= ENV_MAX)
            break;
        if (asprintf(&envp[n++], "%s=%s", key, json_string_value(v)) < 0)
            return NULL;
    }
    envp[n] = NULL;
    return envp;
}

static char **arguments(json_t *job)
{
    json_t *cmd = json_object_get(json_object_get(job, "spec"), "command");
    size_t n = json_array_size(cmd);
    char **argv = calloc(n + 1, sizeof(*argv));

    for (size_t i = 0; argv != NULL && i < n; i++)
        argv[i] = (char *)json_string_value(json_array_get(cmd, i));
    return n > 0 ? argv : NULL;
}

/* In the workload's process: become the user and run the command; never returns. */
static void workload(const char *dir, json_t *job, const struct passwd *pw, const char *gpus)
{
    const char *workdir =
        json_string_value(json_object_get(json_object_get(job, "spec"), "workdir"));
    char path[4200];
    char **argv = arguments(job), **envp = environment(job, pw, gpus);
    int in = open("/dev/null", O_RDONLY), out, err;

    snprintf(path, sizeof(path), "%s/stdout", dir);
    out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    snprintf(path, sizeof(path), "%s/stderr", dir);
    err = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    if (in < 0 || out < 0 || err < 0 || argv == NULL || envp == NULL)
        _exit(126);
    if (fchown(out, pw->pw_uid, pw->pw_gid) != 0 || fchown(err, pw->pw_uid, pw->pw_gid) != 0)
        _exit(126);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    /* Into the job's cgroup while still privileged: nothing it starts can leave it. */
    agent_cgroup_join(json_string_value(json_object_get(job, "agent_cgroup")));
    /* An agent that is not root (gpool dev as a user) runs jobs only as itself. */
    if (getuid() != 0 && getuid() == pw->pw_uid) {
        /* already that user */
    } else if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0 ||
               getuid() == 0) {
        fprintf(stderr, "gpool: cannot become %s\n", pw->pw_name);
        _exit(126);
    }
    if (chdir(workdir != NULL ? workdir : pw->pw_dir) != 0 && chdir("/") != 0)
        _exit(126);
    signal(SIGCHLD, SIG_DFL);
    setpgid(0, 0);
    /* The command is looked up in the workload's PATH, not the agent's (execvpe reads ours). */
    environ = envp;
    execvp(argv[0], argv);
    fprintf(stderr, "gpool: %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* The workload is gone: what it left behind goes with it. */
static void end_leftovers(void)
{
    pid_t me = getpid();
    struct dirent *e;
    DIR *d;

    for (int round = 0; round < 3; round++) {
        if ((d = opendir("/proc")) == NULL)
            return;
        while ((e = readdir(d)) != NULL) {
            char path[300], buf[512], *p;
            int ppid = 0;
            FILE *f;

            if (e->d_name[0] < '1' || e->d_name[0] > '9')
                continue;
            snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
            if ((f = fopen(path, "re")) == NULL)
                continue;
            p = fgets(buf, sizeof(buf), f);
            fclose(f);
            if (p != NULL && (p = strrchr(buf, ')')) != NULL &&
                sscanf(p + 1, " %*c %d", &ppid) == 1 && ppid == me)
                kill((pid_t)atoi(e->d_name), SIGKILL);
        }
        closedir(d);
        usleep(10000);
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
    }
}

/* In the supervisor: run the workload, wait for it, record how it ended. */
static void supervise(const char *dir, json_t *job, const struct passwd *pw, const char *gpus)
{
    char text[32];
    pid_t w;
    int status;

    setsid();
    signal(SIGCHLD, SIG_DFL);
    /* Processes the workload leaves behind (daemons, double forks) become our children. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    snprintf(text, sizeof(text), "%d\n", (int)getpid());
    if (write_file(dir, "supervisor", text) != 0)
        _exit(1);
    w = fork();
    if (w == 0)
        workload(dir, job, pw, gpus);
    if (w > 0) {
        setpgid(w, w); /* before the agent may read the file and signal the group */
        snprintf(text, sizeof(text), "%d\n", (int)w);
        write_file(dir, "workload", text);
    }
    if (w < 0 || waitpid(w, &status, 0) != w)
        status = 126 << 8;
    end_leftovers();
    snprintf(text, sizeof(text), "%d\n",
             WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    write_file(dir, "exit", text);
    _exit(0);
}

int agent_spawn(const char *dir, json_t *job, const char *gpus)
{
    const char *user = json_string_value(json_object_get(job, "unix_user"));
    struct passwd *pw = user != NULL ? getpwnam(user) : NULL;
    pid_t s;

    if (pw == NULL || pw->pw_uid == 0 ||
        (json_int_t)pw->pw_uid != json_integer_value(json_object_get(job, "uid"))) {
        fprintf(stderr,
                "gpool agent: job %lld: account '%s' is unknown here, root, or not uid "
                "%lld; refused\n",
                (long long)json_integer_value(json_object_get(job, "id")), user ? user : "",
                (long long)json_integer_value(json_object_get(job, "uid")));
        return -1;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return -1;
    s = fork();
    if (s == 0)
        supervise(dir, job, pw, gpus);
    return s < 0 ? -1 : (int)s;
}
