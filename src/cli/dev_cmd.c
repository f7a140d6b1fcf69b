/*
 * `gpool dev`: a whole pool on this machine for trying gpool out: a server with a fresh store, an
 * agent, and simulated GPUs (simgpu, from the build tree beside the binary).  It prints what to
 * export, and stops everything on Ctrl-C.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/http.h"
#include "common/log.h"

static const char dev_usage[] =
    "usage: gpool dev [--gpus N] [--gpu-memory SIZE] [--listen ADDRESS:PORT] [--dir DIR]\n"
    "\n"
    "Run a server, an agent and N simulated GPUs (default 4 of 80GiB) on this machine, with a\n"
    "fresh store in DIR (default a new directory under /tmp) and a project 'default' that\n"
    "deserves every GPU. It prints the GPOOL_SERVER and GPOOL_TOKEN to export; Ctrl-C stops it.\n";

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    stopping = sig;
}

static pid_t spawn(char *const argv[], const char *log)
{
    pid_t p = fork();

    if (p == 0) {
        FILE *f = freopen(log, "a", stderr);

        (void)f;
        execv(argv[0], argv);
        _exit(127);
    }
    return p;
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

struct dev {
    char exe[4096], dir[4096], server[128], admin[128];
    const char *listen;
    int gpus;
};

static int call(const struct dev *d, const char *method, const char *path, json_t *body,
                json_t **out)
{
    char err[256];
    long status;
    int rc = http_json(d->server, d->admin, method, path, body, 10, &status, out, err,
                       sizeof(err));

    json_decref(body);
    if (rc != 0 || status >= 300) {
        fprintf(stderr, "gpool dev: %s %s: %s\n", method, path, rc ? err : "refused");
        return -1;
    }
    return 0;
}

/* The admin's project, and the agent's account and token file. */
static int configure(struct dev *d, const char *unix_user, char *token_file, size_t len)
{
    json_t *out = NULL;
    FILE *f;

    if (call(d, "PUT", "/api/v1/projects/default",
             json_pack("{s:i}", "deserved_gpus", d->gpus), &out) != 0)
        return -1;
    json_decref(out);
    if (call(d, "POST", "/api/v1/users",
             json_pack("{s:s, s:s, s:s}", "name", "dev-agent", "unix_user", unix_user, "role",
                       "agent"), &out) != 0)
        return -1;
    json_decref(out);
    if (call(d, "POST", "/api/v1/users/dev-agent/tokens", NULL, &out) != 0)
        return -1;
    snprintf(token_file, len, "%s/agent.token", d->dir);
    f = fopen(token_file, "w");
    if (f == NULL) {
        json_decref(out);
        return -1;
    }
    fchmod(fileno(f), 0600);
    fprintf(f, "%s\n", json_string_value(json_object_get(out, "token")));
    fclose(f);
    json_decref(out);
    return 0;
}

static int wait_reachable(const struct dev *d)
{
    for (int i = 0; i < 100 && !stopping; i++) {
        char err[128];
        long status;
        json_t *out;

        if (http_json(d->server, d->admin, "GET", "/api/v1/status", NULL, 2, &status, &out, err,
                      sizeof(err)) == 0 && status == 200) {
            json_decref(out);
            return 0;
        }
        usleep(100000);
    }
    return -1;
}

static int setup_env(struct dev *d, const char *memory)
{
    char lib[4096], path[4400], count[16];
    struct stat st;

    snprintf(lib, sizeof(lib), "%s/src/simgpu", dirname(strcpy(path, d->exe)));
    snprintf(path, sizeof(path), "%s/libcuda.so.1", lib);
    if (stat(path, &st) != 0) {
        fprintf(stderr, "gpool dev: simgpu's libraries are not beside this gpool (%s): run the "
                        "gpool of a build tree\n", lib);
        return -1;
    }
    snprintf(path, sizeof(path), "%s/simgpu", d->dir);
    snprintf(count, sizeof(count), "%d", d->gpus);
    setenv("LD_LIBRARY_PATH", lib, 1);
    setenv("SIMGPU_STATE", path, 1);
    setenv("SIMGPU_COUNT", count, 1);
    setenv("SIMGPU_MEMORY", memory, 1);
    return 0;
}

static int parse(int argc, char **argv, struct dev *d, const char **memory)
{
    static const struct option o[] = {{"gpus", 1, NULL, 'g'}, {"gpu-memory", 1, NULL, 'm'},
                                      {"listen", 1, NULL, 'l'}, {"dir", 1, NULL, 'd'},
                                      {"help", 0, NULL, 'h'},   {NULL, 0, NULL, 0}};
    char *end;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", o, NULL)) != -1) {
        switch (c) {
        case 'g':
            d->gpus = (int)strtol(optarg, &end, 10);
            if (*end != '\0' || d->gpus < 1 || d->gpus > 16) {
                fprintf(stderr, "gpool dev: --gpus %s: expected 1 to 16\n", optarg);
                return CLI_EXIT_USAGE;
            }
            break;
        case 'm': *memory = optarg; break;
        case 'l': d->listen = optarg; break;
        case 'd': snprintf(d->dir, sizeof(d->dir), "%s", optarg); break;
        case 'h': fputs(dev_usage, stdout); return -1;
        default: fputs(dev_usage, stderr); return CLI_EXIT_USAGE;
        }
    }
    return 0;
}

static void stop_all(pid_t *pids, int n)
{
    for (int i = 0; i < n; i++)
        if (pids[i] > 0)
            kill(pids[i], SIGTERM);
    for (int i = 0; i < n; i++)
        if (pids[i] > 0)
            waitpid(pids[i], NULL, 0);
}

int cli_dev(int argc, char **argv)
{
    static struct dev d = {.listen = "127.0.0.1:8470", .gpus = 4};
    const char *memory = "80GiB";
    struct passwd *pw = getpwuid(getuid());
    const char *unix_user = getuid() == 0 ? "nobody" : (pw ? pw->pw_name : "nobody");
    char store[4200], log[4200], token_file[4200], state[4200];
    pid_t pids[2] = {0, 0};
    ssize_t n;
    int rc;

    if ((rc = parse(argc, argv, &d, &memory)) != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (d.dir[0] == '\0' && mkdtemp(strcpy(d.dir, "/tmp/gpool-dev-XXXXXX")) == NULL)
        return CLI_EXIT_FAIL;
    if (mkdir(d.dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "gpool dev: %s: %s\n", d.dir, strerror(errno));
        return CLI_EXIT_USAGE;
    }
    chmod(d.dir, 0755); /* the workloads' account reads its logs and the GPUs' state here */
    if ((n = readlink("/proc/self/exe", d.exe, sizeof(d.exe) - 1)) <= 0)
        return CLI_EXIT_FAIL;
    d.exe[n] = '\0';
    if (setup_env(&d, memory) != 0)
        return CLI_EXIT_FAIL;
    snprintf(store, sizeof(store), "sqlite:%s/gpool.db", d.dir);
    snprintf(log, sizeof(log), "%s/dev.log", d.dir);
    snprintf(d.server, sizeof(d.server), "http://%s", d.listen);
    if (run_capture((char *[]){d.exe, "server", "init", "--store", store, "--admin", "dev",
                               "--unix-user", (char *)unix_user, NULL},
                    d.admin, sizeof(d.admin)) != 0) {
        fprintf(stderr, "gpool dev: could not create the store in %s (is it fresh?)\n", d.dir);
        return CLI_EXIT_FAIL;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    pids[0] = spawn((char *[]){d.exe, "server", "--listen", (char *)d.listen, "--store", store,
                               "--node-timeout", "10", NULL},
                    log);
    if (wait_reachable(&d) != 0 || configure(&d, unix_user, token_file, sizeof(token_file))) {
        fprintf(stderr, "gpool dev: the server did not start; see %s\n", log);
        stop_all(pids, 2);
        return CLI_EXIT_FAIL;
    }
    snprintf(state, sizeof(state), "%s/agent", d.dir);
    pids[1] = spawn((char *[]){d.exe, "agent", "--server", d.server, "--token-file", token_file,
                               "--name", "dev-node", "--state-dir", state, "--heartbeat", "2",
                               NULL},
                    log);
    printf("gpool dev: %d simulated GPUs of %s, server %s, files in %s (log: dev.log)\n"
           "the dashboard: %s/ (log in with the token below)\n"
           "export GPOOL_SERVER=%s GPOOL_TOKEN=%s\n"
           "then, for example:  gpool submit --project default --gpu 0.5 -- sleep 60; gpool list\n",
           d.gpus, memory, d.server, d.dir, d.server, d.server, d.admin);
    fflush(stdout);
    while (!stopping)
        pause();
    stop_all(pids, 2);
    fprintf(stderr, "gpool dev: stopped\n");
    return CLI_EXIT_OK;
}
