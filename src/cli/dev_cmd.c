/*
 * `gpool dev`: a whole pool on this machine for trying gpool out: a server, a few agents (nodes)
 * with simulated GPUs each (simgpu, from the build tree beside the binary), and a project that
 * deserves them all.  State lives in ./.gpool-dev (a second run goes on with the same store and
 * token); it prints what to export, and Ctrl-C cancels the jobs still running and stops it all.
 *
 * Workloads run as the user who started it, or, for root, as an account of its own (gpool-dev,
 * created when missing).  What workloads must read (simgpu's libraries, the preload library,
 * gpool-burn, the GPUs' state and regions) is copied where that account can reach it: the state
 * directory, or /run/gpool-dev/HASH when the state directory is in a private place (/root).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/hash.h"
#include "common/http.h"
#include "common/log.h"
#include "common/units.h"

static const char dev_usage[] =
    "usage: gpool dev [--nodes N] [--gpus N] [--gpu-memory SIZE] [--listen ADDRESS:PORT]\n"
    "                 [--dir DIR] [--fresh]\n"
    "       gpool dev --demo [--minutes N] [--nodes N] [--gpus N] [--dir DIR]\n"
    "\n"
    "Run a server and N agents (default 2 nodes), each with its own simulated GPUs (default 4 of\n"
    "80GiB per node), on this machine, and a project 'default' that deserves every GPU. State is\n"
    "kept in DIR (default ./.gpool-dev): run it again and it goes on with the same store and\n"
    "token; --fresh starts over. It prints the GPOOL_SERVER and GPOOL_TOKEN to export.\n"
    "Workloads run as you; run as root, as the account gpool-dev (created when missing). They\n"
    "find gpool-burn on their PATH. Ctrl-C cancels the jobs still running and stops it all.\n"
    "--demo runs a mixed workload twice, N minutes in all (default 4), on fresh pools (one node\n"
    "unless --nodes says otherwise) in\n"
    "DIR/demo-on and DIR/demo-off: interactive jobs that hold a GPU each and compute in short\n"
    "bursts, a queue of training jobs, and build jobs of a project below its quota now and then;\n"
    "once with thin provisioning and swapping on, once with both off.  It prints the GPUs'\n"
    "utilization and the work done side by side.\n";

#define MAX_NODES 16
#define DEV_ACCOUNT "gpool-dev"
#define STOP_WAIT_S 15
/* A simulated node offers its jobs the CPUs of a GPU server (8 per GPU), whatever this machine
 * has: on a laptop, two nodes would otherwise run only as many one-CPU jobs as it has cores. */
#define CPUS_PER_GPU 8

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    stopping = sig;
}

struct dev {
    char exe[PATH_MAX], dir[PATH_MAX], work[PATH_MAX], server[128], admin[128];
    const char *listen, *memory, *account;
    int nodes, gpus;
    bool fresh, demo, nodes_set;
    int minutes; /* --demo: both runs together */
    uid_t uid;
    gid_t gid;
};

/* Starts argv with the extra environment env (NAME=VALUE, NULL-terminated), in a process group
 * of its own (Ctrl-C is ours to hand on), stderr to log; it dies with us. */
static pid_t spawn(char *const argv[], char *const env[], const char *log)
{
    pid_t p = fork();

    if (p == 0) {
        FILE *f = freopen(log, "a", stderr);

        (void)f;
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        for (int i = 0; env != NULL && env[i] != NULL; i++)
            putenv(env[i]);
        execv(argv[0], argv);
        _exit(127);
    }
    return p;
}

static int run_status(char *const argv[])
{
    int status;
    pid_t p = fork();

    if (p == 0) {
        int null = open("/dev/null", O_WRONLY);

        dup2(null, 1);
        dup2(null, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    if (p < 0 || waitpid(p, &status, 0) < 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int run_capture(char *const argv[], char *out, size_t len)
{
    int fd[2], status;
    pid_t p;
    ssize_t n;

    if (pipe(fd) != 0)
        return -1;
    if ((p = fork()) == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fd[1]);
    n = read(fd[0], out, len - 1);
    close(fd[0]);
    waitpid(p, &status, 0);
    out[n > 0 ? n : 0] = '\0';
    out[strcspn(out, "\n")] = '\0';
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 && n > 0 ? 0 : -1;
}

static int call(const struct dev *d, const char *method, const char *path, json_t *body,
                json_t **out)
{
    char err[256];
    long status;
    int rc = http_json(d->server, d->admin, method, path, body, 10, &status, out, err, sizeof(err));

    json_decref(body);
    if (rc != 0 || status >= 300) {
        fprintf(stderr, "gpool dev: %s %s: %s\n", method, path, rc ? err : "refused");
        return -1;
    }
    return 0;
}

static int wait_reachable(const struct dev *d)
{
    for (int i = 0; i < 100 && !stopping; i++) {
        char err[128];
        long status;
        json_t *out;

        if (http_json(d->server, d->admin, "GET", "/api/v1/status", NULL, 2, &status, &out, err,
                      sizeof(err)) == 0 &&
            status == 200) {
            json_decref(out);
            return 0;
        }
        usleep(100000);
    }
    return -1;
}

/* The account workloads run as: ours, or for root gpool-dev, created as a system account. */
static int account(struct dev *d)
{
    struct passwd *pw = getpwuid(getuid());

    if (getuid() != 0) {
        if (pw == NULL) {
            fprintf(stderr, "gpool dev: uid %d has no account name\n", (int)getuid());
            return -1;
        }
        d->account = strdup(pw->pw_name);
    } else {
        if (getpwnam(DEV_ACCOUNT) == NULL &&
            run_status((char *[]){"/usr/sbin/useradd", "--system", "--user-group",
                                  "--no-create-home", "--home-dir", "/nonexistent", "--shell",
                                  "/usr/sbin/nologin", "--comment", "gpool dev workloads",
                                  DEV_ACCOUNT, NULL}) != 0 &&
            getpwnam(DEV_ACCOUNT) == NULL) {
            fprintf(stderr,
                    "gpool dev: could not create the account %s (useradd): workloads "
                    "never run as root\n",
                    DEV_ACCOUNT);
            return -1;
        }
        d->account = DEV_ACCOUNT;
        pw = getpwnam(DEV_ACCOUNT);
    }
    d->uid = pw->pw_uid;
    d->gid = pw->pw_gid;
    return 0;
}

/* Whether the workloads' account can reach dir (for root: a child that becomes it). */
static bool reachable(const struct dev *d, const char *dir)
{
    int status;
    pid_t p;

    if (getuid() != 0)
        return true;
    if ((p = fork()) == 0) {
        if (setgroups(0, NULL) != 0 || setgid(d->gid) != 0 || setuid(d->uid) != 0)
            _exit(1);
        _exit(access(dir, X_OK) == 0 ? 0 : 1);
    }
    return p > 0 && waitpid(p, &status, 0) == p && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static int make_dir(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "gpool dev: %s: %s\n", path, strerror(errno));
        return -1;
    }
    chmod(path, 0755); /* the workloads' account reads what is in it */
    return 0;
}

/* Copies from to dir/NAME (a new file renamed over the old: running workloads keep theirs). */
static int install(const char *from, const char *dir, const char *name, mode_t mode)
{
    char to[PATH_MAX + 64], tmp[PATH_MAX + 80], buf[65536];
    int in = open(from, O_RDONLY | O_CLOEXEC), out;
    ssize_t n = 0;

    snprintf(to, sizeof(to), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s.new", to);
    if (in < 0) {
        fprintf(stderr, "gpool dev: %s: %s (run the gpool of a build tree)\n", from,
                strerror(errno));
        return -1;
    }
    out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    while (out >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
        if (write(out, buf, (size_t)n) != n) {
            n = -1;
            break;
        }
    close(in);
    if (out < 0 || n < 0 || fchmod(out, mode) != 0 || close(out) != 0 || rename(tmp, to) != 0) {
        fprintf(stderr, "gpool dev: %s: %s\n", to, strerror(errno));
        if (out >= 0)
            unlink(tmp);
        return -1;
    }
    return 0;
}

/* The workloads' files: simgpu's libraries, the preload library and gpool-burn, from the build
 * tree beside this gpool, in WORK/lib and WORK/bin. */
static int install_files(const struct dev *d)
{
    static const struct {
        const char *from, *dir, *name;
        mode_t mode;
    } files[] = {{"src/simgpu/libcuda.so.1", "lib", "libcuda.so.1", 0644},
                 {"src/simgpu/libnvidia-ml.so.1", "lib", "libnvidia-ml.so.1", 0644},
                 {"src/cuda/libgpool-cuda.so", "lib", "libgpool-cuda.so", 0644},
                 {"src/burn/gpool-burn", "bin", "gpool-burn", 0755}};
    char exe[PATH_MAX], from[PATH_MAX + 64], dir[PATH_MAX + 8];
    const char *build = dirname(strcpy(exe, d->exe));

    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(from, sizeof(from), "%s/%s", build, files[i].from);
        snprintf(dir, sizeof(dir), "%s/%s", d->work, files[i].dir);
        if (make_dir(dir) != 0 || install(from, dir, files[i].name, files[i].mode) != 0)
            return -1;
    }
    return 0;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *f)
{
    (void)st;
    (void)f;
    return (type == FTW_DP ? rmdir(path) : unlink(path)) != 0 && errno != ENOENT ? -1 : 0;
}

/* --fresh: the store, tokens, log and the nodes' directories go. */
static int start_over(const struct dev *d)
{
    static const char *const names[] = {"gpool.db",    "gpool.db-wal", "gpool.db-shm",
                                        "admin.token", "agent.token",  "dev.log"};
    char path[PATH_MAX + 32];

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", d->dir, names[i]);
        if (unlink(path) != 0 && errno != ENOENT) {
            fprintf(stderr, "gpool dev: %s: %s\n", path, strerror(errno));
            return -1;
        }
    }
    for (int k = 1; k <= MAX_NODES; k++) {
        snprintf(path, sizeof(path), "%s/node-%d", d->work, k);
        if (nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT) {
            fprintf(stderr, "gpool dev: %s: %s\n", path, strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* Where workloads' files go: the state directory, or a directory under /run named for it. */
static int choose_work(struct dev *d)
{
    uint64_t h = hash_fnv1a(d->dir, HASH_FNV_OFFSET);

    if (reachable(d, d->dir)) {
        snprintf(d->work, sizeof(d->work), "%s", d->dir);
        return 0;
    }
    if (make_dir("/run/gpool-dev") != 0)
        return -1;
    snprintf(d->work, sizeof(d->work), "/run/gpool-dev/%08x", (uint32_t)(h ^ h >> 32));
    return make_dir(d->work);
}

static int write_secret(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX + 32];
    int fd;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 ||
        dprintf(fd, "%s\n", text) < 0 || fsync(fd) != 0) {
        fprintf(stderr, "gpool dev: %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return close(fd);
}

static int read_secret(const char *dir, const char *name, char *buf, size_t len)
{
    char path[PATH_MAX + 32];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if ((f = fopen(path, "re")) == NULL || fgets(buf, (int)len, f) == NULL) {
        if (f != NULL)
            fclose(f);
        return -1;
    }
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
    return buf[0] != '\0' ? 0 : -1;
}

/* A new store: created with its admin (the token kept in DIR/admin.token). */
static int new_store(struct dev *d, const char *store)
{
    if (run_capture((char *[]){d->exe, "server", "init", "--store", (char *)store, "--admin", "dev",
                               "--unix-user", (char *)d->account, NULL},
                    d->admin, sizeof(d->admin)) != 0) {
        fprintf(stderr, "gpool dev: could not create the store in %s\n", d->dir);
        return -1;
    }
    return write_secret(d->dir, "admin.token", d->admin);
}

/* The project that deserves every GPU, and, on a new store, the agents' user and token. */
static int configure(struct dev *d, bool fresh_store)
{
    json_t *out = NULL;
    int rc;

    if (call(d, "PUT", "/api/v1/projects/default",
             json_pack("{s:i}", "deserved_gpus", d->nodes * d->gpus), &out) != 0)
        return -1;
    json_decref(out);
    if (!fresh_store)
        return 0;
    if (call(d, "POST", "/api/v1/users",
             json_pack("{s:s, s:s, s:s}", "name", "dev-agent", "unix_user", d->account, "role",
                       "agent"),
             &out) != 0)
        return -1;
    json_decref(out);
    if (call(d, "POST", "/api/v1/users/dev-agent/tokens", NULL, &out) != 0)
        return -1;
    rc = write_secret(d->dir, "agent.token", json_string_value(json_object_get(out, "token")));
    json_decref(out);
    return rc;
}

/* Agent k (1-based): node dev-node-k, its state and its GPUs' state in WORK/node-k. */
static pid_t start_agent(const struct dev *d, int k, const char *log)
{
    char name[32], state[PATH_MAX + 16], token[PATH_MAX + 16], lib[PATH_MAX + 32],
        path_env[PATH_MAX + 64], ld[PATH_MAX + 32], sim[PATH_MAX + 64], count[32], mem[64],
        cpus[16];

    snprintf(name, sizeof(name), "dev-node-%d", k);
    snprintf(state, sizeof(state), "%s/node-%d", d->work, k);
    if (make_dir(state) != 0)
        return -1;
    snprintf(token, sizeof(token), "%s/agent.token", d->dir);
    snprintf(lib, sizeof(lib), "%s/lib/libgpool-cuda.so", d->work);
    snprintf(path_env, sizeof(path_env), "PATH=%s/bin:/usr/local/bin:/usr/bin:/bin", d->work);
    snprintf(ld, sizeof(ld), "LD_LIBRARY_PATH=%s/lib", d->work);
    snprintf(sim, sizeof(sim), "SIMGPU_STATE=%s/simgpu", state);
    snprintf(count, sizeof(count), "SIMGPU_COUNT=%d", d->gpus);
    snprintf(mem, sizeof(mem), "SIMGPU_MEMORY=%s", d->memory);
    snprintf(cpus, sizeof(cpus), "%d", CPUS_PER_GPU * d->gpus);
    return spawn((char *[]){(char *)d->exe,
                            "agent",
                            "--server",
                            (char *)d->server,
                            "--token-file",
                            token,
                            "--name",
                            name,
                            "--state-dir",
                            state,
                            "--heartbeat",
                            "2",
                            "--address",
                            "127.0.0.1",
                            "--cuda-lib",
                            lib,
                            "--env",
                            path_env,
                            "--cpus",
                            cpus,
                            NULL},
                 (char *[]){ld, sim, count, mem, NULL}, log);
}

/* Whether any GPU's agent still measures memory in use: a workload not yet stopped. */
static bool gpus_in_use(const struct dev *d)
{
    json_t *out = NULL, *n, *g;
    bool used = false;
    size_t i, k;

    if (call(d, "GET", "/api/v1/nodes", NULL, &out) != 0)
        return false;
    json_array_foreach(json_object_get(out, "nodes"), i, n)
        json_array_foreach(json_object_get(n, "gpus"), k, g)
            used |= json_integer_value(json_object_get(g, "memory_used_bytes")) > 0;
    json_decref(out);
    return used;
}

/* Ctrl-C: the jobs still running are cancelled, and their agents given the time to stop them
 * (until no GPU measures memory in use: the agents leave workloads running when they stop). */
static int cancel_running(const struct dev *d)
{
    int cancelled = 0;

    for (int waited = 0; waited < STOP_WAIT_S * 4; waited++) {
        json_t *out = NULL, *jobs, *j;
        size_t i;

        if (call(d, "GET", "/api/v1/jobs?state=assigned,running,swapped,suspended&limit=1000", NULL,
                 &out) != 0)
            return cancelled;
        jobs = json_object_get(out, "jobs");
        if (json_array_size(jobs) == 0) {
            json_decref(out);
            while (cancelled > 0 && gpus_in_use(d) && waited++ < STOP_WAIT_S * 4)
                usleep(250000);
            return cancelled;
        }
        json_array_foreach(jobs, i, j)
        {
            char path[64];
            json_t *r = NULL;

            /* A job listed is not cancelled yet: one placed since the last round too. */
            snprintf(path, sizeof(path), "/api/v1/jobs/%lld/cancel",
                     (long long)json_integer_value(json_object_get(j, "id")));
            if (call(d, "POST", path, NULL, &r) == 0)
                cancelled++;
            json_decref(r);
        }
        json_decref(out);
        usleep(250000);
    }
    fprintf(stderr, "gpool dev: jobs still running after %d s\n", STOP_WAIT_S);
    return cancelled;
}

static void stop_all(pid_t *pids, int n)
{
    for (int i = n - 1; i >= 0; i--)
        if (pids[i] > 0)
            kill(pids[i], SIGTERM);
    for (int i = n - 1; i >= 0; i--)
        if (pids[i] > 0)
            waitpid(pids[i], NULL, 0);
}

static int parse(int argc, char **argv, struct dev *d)
{
    static const struct option o[] = {{"nodes", 1, NULL, 'n'},      {"gpus", 1, NULL, 'g'},
                                      {"gpu-memory", 1, NULL, 'm'}, {"listen", 1, NULL, 'l'},
                                      {"dir", 1, NULL, 'd'},        {"fresh", 0, NULL, 'f'},
                                      {"demo", 0, NULL, 'D'},       {"minutes", 1, NULL, 'M'},
                                      {"help", 0, NULL, 'h'},       {NULL, 0, NULL, 0}};
    uint64_t bytes;
    char *end;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", o, NULL)) != -1) {
        switch (c) {
        case 'n':
        case 'g': {
            int v = (int)strtol(optarg, &end, 10);

            if (*end != '\0' || v < 1 || v > MAX_NODES) {
                fprintf(stderr, "gpool dev: --%s %s: expected 1 to %d\n",
                        c == 'n' ? "nodes" : "gpus", optarg, MAX_NODES);
                return CLI_EXIT_USAGE;
            }
            *(c == 'n' ? &d->nodes : &d->gpus) = v;
            d->nodes_set |= c == 'n';
            break;
        }
        case 'm':
            d->memory = optarg;
            break;
        case 'l':
            d->listen = optarg;
            break;
        case 'd':
            snprintf(d->dir, sizeof(d->dir), "%s", optarg);
            break;
        case 'f':
            d->fresh = true;
            break;
        case 'D':
            d->demo = true;
            break;
        case 'M':
            d->minutes = (int)strtol(optarg, &end, 10);
            if (*end != '\0' || d->minutes < 1 || d->minutes > 600) {
                fprintf(stderr, "gpool dev: --minutes %s: expected 1 to 600\n", optarg);
                return CLI_EXIT_USAGE;
            }
            break;
        case 'h':
            fputs(dev_usage, stdout);
            return -1;
        default:
            fputs(dev_usage, stderr);
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "gpool dev: unexpected argument '%s'\n%s", argv[optind], dev_usage);
        return CLI_EXIT_USAGE;
    }
    if (d->minutes > 0 && !d->demo) {
        fprintf(stderr, "gpool dev: --minutes goes with --demo\n");
        return CLI_EXIT_USAGE;
    }
    if (units_parse_bytes(d->memory, &bytes) != 0 || bytes == 0) {
        fprintf(stderr, "gpool dev: --gpu-memory %s: expected a size such as 80GiB\n", d->memory);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

/* Whether dir is one of $PATH's. */
static bool on_path(const char *dir)
{
    const char *p = getenv("PATH");
    size_t len = strlen(dir);

    while (p != NULL && *p != '\0') {
        size_t n = strcspn(p, ":");

        if (n == len && strncmp(p, dir, len) == 0)
            return true;
        p += n + (p[n] == ':');
    }
    return false;
}

/* Starts a pool in d->dir: its files, store, server (with the extra options) and agents; pids[0]
 * the server, pids[1..nodes] the agents.  0, or -1 with what is started stopped. */
static int start_pool(struct dev *d, char *const *server_extra, pid_t *pids)
{
    char store[PATH_MAX + 16], log[PATH_MAX + 16];
    char *argv[32] = {d->exe, "server", "--listen", (char *)d->listen, "--store", store,
                      "--node-timeout", "10"};
    bool fresh_store;
    int n = 8;

    if (make_dir(d->dir) != 0 || account(d) != 0 || choose_work(d) != 0)
        return -1;
    if (d->fresh && start_over(d) != 0)
        return -1;
    if (install_files(d) != 0)
        return -1;
    snprintf(store, sizeof(store), "%s/gpool.db", d->dir);
    fresh_store = access(store, F_OK) != 0;
    snprintf(store, sizeof(store), "sqlite:%s/gpool.db", d->dir);
    snprintf(log, sizeof(log), "%s/dev.log", d->dir);
    snprintf(d->server, sizeof(d->server), "http://%s", d->listen);
    if (fresh_store ? new_store(d, store) != 0
                    : read_secret(d->dir, "admin.token", d->admin, sizeof(d->admin)) != 0) {
        if (!fresh_store)
            fprintf(stderr, "gpool dev: %s/admin.token is missing: start over with --fresh\n",
                    d->dir);
        return -1;
    }
    for (int i = 0; server_extra != NULL && server_extra[i] != NULL && n < 31; i++)
        argv[n++] = server_extra[i];
    argv[n] = NULL;
    pids[0] = spawn(argv, NULL, log);
    if (wait_reachable(d) != 0 || configure(d, fresh_store) != 0) {
        fprintf(stderr, "gpool dev: the server did not start at %s; see %s\n", d->server, log);
        stop_all(pids, 1);
        return -1;
    }
    for (int k = 1; k <= d->nodes; k++)
        if ((pids[k] = start_agent(d, k, log)) < 0) {
            stop_all(pids, k);
            return -1;
        }
    return 0;
}

/* ---- --demo ------------------------------------------------------------------------------ */

#define DEMO_TRAIN_ITERATIONS 300 /* a training job's work: kernels of 10 ms */
#define DEMO_SAMPLE_S 2
#define DEMO_BUILD_EVERY_S 30

struct demo_figures {
    double busy, held; /* sums over samples of the GPUs' mean busy share and allocated share */
    int samples;
    int trained;  /* training jobs finished */
    int built;    /* build jobs finished */
    int restarts; /* training runs stopped and started over */
    int swaps;    /* training jobs swapped out (and so not restarted) */
    int borrowed; /* training jobs placed on lent GPUs */
};

static int demo_submit(const struct dev *d, const char *project, const char *priority,
                       double gpu, const char *command)
{
    json_t *out = NULL, *job = json_pack("{s:s, s:s, s:[s, s, s]}", "project", project,
                                         "priority", priority, "command", "sh", "-c", command);
    int rc;

    json_object_set_new(job, gpu < 1 ? "gpu" : "gpus",
                        gpu < 1 ? json_real(gpu) : json_integer((json_int_t)gpu));
    rc = call(d, "POST", "/api/v1/jobs", job, &out);
    json_decref(out);
    return rc;
}

/* The projects of the demo: notebooks deserve the GPUs their interactive jobs hold, builds a
 * quarter of the pool; training deserves nothing and runs on what is left over. */
static int demo_projects(const struct dev *d, int gpus)
{
    static const char *const names[] = {"notebooks", "builds", "training"};
    int deserved[] = {gpus / 2, gpus / 4 > 0 ? gpus / 4 : 1, 0};

    for (int i = 0; i < 3; i++) {
        char path[64];
        json_t *out = NULL;

        snprintf(path, sizeof(path), "/api/v1/projects/%s", names[i]);
        if (call(d, "PUT", path, json_pack("{s:i}", "deserved_gpus", deserved[i]), &out) != 0)
            return -1;
        json_decref(out);
    }
    return 0;
}

static void demo_sample(const struct dev *d, struct demo_figures *f)
{
    json_t *out = NULL, *n, *g;
    double busy = 0, held = 0;
    size_t i, k;
    int count = 0;

    if (call(d, "GET", "/api/v1/nodes", NULL, &out) != 0)
        return;
    json_array_foreach(json_object_get(out, "nodes"), i, n)
        json_array_foreach(json_object_get(n, "gpus"), k, g) {
            busy += json_number_value(json_object_get(g, "utilization_pct")) / 100;
            held += json_number_value(json_object_get(g, "allocated")) +
                    json_number_value(json_object_get(g, "borrowed"));
            count++;
        }
    json_decref(out);
    if (count > 0) {
        f->busy += busy / count;
        f->held += (held < count ? held : count) / count;
        f->samples++;
    }
}

/* What became of the jobs of a project: finished, restarted, swapped, borrowed. */
static void demo_count(const struct dev *d, const char *project, struct demo_figures *f)
{
    char path[128];
    json_t *out = NULL, *j;
    size_t i;

    snprintf(path, sizeof(path), "/api/v1/jobs?project=%s&limit=1000", project);
    if (call(d, "GET", path, NULL, &out) != 0)
        return;
    json_array_foreach(json_object_get(out, "jobs"), i, j) {
        bool done = strcmp(json_string_value(json_object_get(j, "state")), "succeeded") == 0;
        int attempts = (int)json_integer_value(json_object_get(j, "attempts"));

        if (strcmp(project, "builds") == 0) {
            f->built += done;
            continue;
        }
        f->trained += done;
        f->restarts += attempts > 1 ? attempts - 1 : 0;
        f->swaps += json_object_get(j, "swap") != NULL;
        f->borrowed += json_is_true(json_object_get(j, "borrowed"));
    }
    json_decref(out);
}

/* The jobs still waiting are cancelled, so that none starts while the pool stops. */
static void cancel_pending(const struct dev *d)
{
    json_t *out = NULL, *j;
    size_t i;

    if (call(d, "GET", "/api/v1/jobs?state=pending&limit=1000", NULL, &out) != 0)
        return;
    json_array_foreach(json_object_get(out, "jobs"), i, j) {
        char path[64];
        json_t *r = NULL;

        snprintf(path, sizeof(path), "/api/v1/jobs/%lld/cancel",
                 (long long)json_integer_value(json_object_get(j, "id")));
        call(d, "POST", path, NULL, &r);
        json_decref(r);
    }
    json_decref(out);
}

/* One run of the demo on a fresh pool in DIR/demo-NAME. */
static int demo_run(struct dev *d, const char *base, bool on, int seconds, struct demo_figures *f)
{
    static char *const on_flags[] = {"--idle-window", "5", "--min-runtime", "0", NULL};
    static char *const off_flags[] = {"--idle-window", "5", "--min-runtime", "0", "--no-lend",
                                      "--no-swap", NULL};
    pid_t pids[1 + MAX_NODES] = {0};
    int gpus = d->nodes * d->gpus, rc = 0;
    char cmd[256];

    snprintf(d->dir, sizeof(d->dir), "%s/demo-%s", base, on ? "on" : "off");
    d->fresh = true;
    if (start_pool(d, on ? on_flags : off_flags, pids) != 0 || demo_projects(d, gpus) != 0)
        return -1;
    /* Interactive jobs: a GPU each, 4 s of compute every 24 s. */
    for (int i = 0; i < gpus / 2 && rc == 0; i++)
        rc = demo_submit(d, "notebooks", "interactive", 1,
                         "while :; do gpool-burn --memory 64MiB --seconds 4 -q; sleep 20; done");
    /* More training than the pool can run in the time: half a GPU each. */
    snprintf(cmd, sizeof(cmd), "exec gpool-burn --memory 64MiB --iterations %d --kernel-ms 10 -q",
             DEMO_TRAIN_ITERATIONS);
    for (int i = 0; i < 4 * gpus && rc == 0; i++)
        rc = demo_submit(d, "training", "train", 0.5, cmd);
    printf("gpool dev --demo: thin provisioning and swapping %s, %d GPUs, %d s ...\n",
           on ? "on" : "off", gpus, seconds);
    fflush(stdout);
    for (int t = 0; rc == 0 && t < seconds && !stopping; t += DEMO_SAMPLE_S) {
        if (t % DEMO_BUILD_EVERY_S == DEMO_BUILD_EVERY_S / 2)
            rc = demo_submit(d, "builds", "build", 1,
                             "exec gpool-burn --memory 64MiB --seconds 5 -q");
        sleep(DEMO_SAMPLE_S);
        demo_sample(d, f);
    }
    demo_count(d, "training", f);
    demo_count(d, "builds", f);
    cancel_pending(d);
    cancel_running(d);
    stop_all(pids, 1 + d->nodes);
    return rc;
}

static int demo(struct dev *d)
{
    struct demo_figures on = {0}, off = {0};
    int seconds = (d->minutes > 0 ? d->minutes : 4) * 60 / 2;
    char base[PATH_MAX];

    if (make_dir(d->dir) != 0 || realpath(d->dir, base) == NULL)
        return CLI_EXIT_FAIL;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (demo_run(d, base, true, seconds, &on) != 0 || stopping ||
        demo_run(d, base, false, seconds, &off) != 0 || stopping)
        return stopping ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    printf("\n%-44s %14s %14s\n", "", "on", "off");
    printf("%-44s %13.0f%% %13.0f%%\n", "GPU utilization (busy, mean of the GPUs)",
           100 * on.busy / (on.samples ? on.samples : 1),
           100 * off.busy / (off.samples ? off.samples : 1));
    printf("%-44s %13.0f%% %13.0f%%\n", "GPUs held (allocated or borrowed)",
           100 * on.held / (on.samples ? on.samples : 1),
           100 * off.held / (off.samples ? off.samples : 1));
    printf("%-44s %14d %14d\n", "training jobs finished", on.trained, off.trained);
    printf("%-44s %14d %14d\n", "  work done (kernels of 10 ms)", on.trained * DEMO_TRAIN_ITERATIONS,
           off.trained * DEMO_TRAIN_ITERATIONS);
    printf("%-44s %14d %14d\n", "  runs stopped and started over", on.restarts, off.restarts);
    printf("%-44s %14d %14d\n", "  swapped out instead", on.swaps, off.swaps);
    printf("%-44s %14d %14d\n", "  placed on borrowed GPUs (still borrowing)", on.borrowed,
           off.borrowed);
    printf("%-44s %14d %14d\n", "build jobs finished", on.built, off.built);
    return CLI_EXIT_OK;
}

int cli_dev(int argc, char **argv)
{
    static struct dev d = {
        .listen = "127.0.0.1:8470", .memory = "80GiB", .nodes = 2, .gpus = 4, .dir = ".gpool-dev"};
    char real[PATH_MAX], bin[PATH_MAX];
    pid_t pids[1 + MAX_NODES] = {0};
    ssize_t n;
    int rc;

    if ((rc = parse(argc, argv, &d)) != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if ((n = readlink("/proc/self/exe", d.exe, sizeof(d.exe) - 1)) <= 0)
        return CLI_EXIT_FAIL;
    d.exe[n] = '\0';
    if (d.demo) {
        /* One node unless told otherwise: the demo runs every workload twice on this machine. */
        if (!d.nodes_set)
            d.nodes = 1;
        return demo(&d);
    }
    if (make_dir(d.dir) != 0 || realpath(d.dir, real) == NULL)
        return CLI_EXIT_FAIL;
    snprintf(d.dir, sizeof(d.dir), "%s", real); /* the workloads' PATH, the agents' files */
    snprintf(bin, sizeof(bin), "%s", dirname(strcpy(real, d.exe))); /* gpool's directory */
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (start_pool(&d, NULL, pids) != 0)
        return CLI_EXIT_FAIL;
    printf("gpool dev: %d node(s) x %d simulated GPUs of %s, server %s, state in %s (log: "
           "dev.log)\n"
           "workloads run as %s, with gpool-burn on their PATH%s%s\n"
           "the dashboard: %s/ (log in with the token below)\n"
           "export GPOOL_SERVER=%s GPOOL_TOKEN=%s%s%s%s\n"
           "then, for example:  gpool submit --project default --gpu 0.5 -- gpool-burn --seconds 30"
           "; gpool list\n",
           d.nodes, d.gpus, d.memory, d.server, d.dir, d.account,
           strcmp(d.work, d.dir) ? "; their files in " : "", strcmp(d.work, d.dir) ? d.work : "",
           d.server, d.server, d.admin, on_path(bin) ? "" : " PATH=", on_path(bin) ? "" : bin,
           on_path(bin) ? "" : ":$PATH");
    fflush(stdout);
    while (!stopping)
        pause();
    fprintf(stderr, "gpool dev: stopping\n");
    if ((n = cancel_running(&d)) > 0)
        fprintf(stderr, "gpool dev: cancelled %d running job(s)\n", (int)n);
    stop_all(pids, 1 + d.nodes);
    fprintf(stderr, "gpool dev: stopped\n");
    return CLI_EXIT_OK;
}
