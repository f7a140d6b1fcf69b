/*
 * gpool: the command people type.  The client commands (submit, list, ...) run here, with
 * nothing but jansson and libevent loaded, so that a submission costs little more than its
 * request; the commands that run the pool (server, agent, dev), simulate it or act on this
 * node run gpool-core, an executable beside this one or in gpool's libexec folder, with the
 * same arguments (docs/server.md, "The `gpool` executable and gpool-core").
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/log.h"

#ifndef GPOOL_VERSION
#define GPOOL_VERSION "0.1.0"
#endif
#ifndef GPOOL_LIBEXECDIR
#define GPOOL_LIBEXECDIR "/usr/local/libexec/gpool"
#endif

static const char usage_text[] =
    "usage: gpool [--ca FILE] <command> [options]\n"
    "\n"
    "GPU pooling and scheduling for clusters shared by many teams.\n"
    "\n"
    "commands:\n"
    "  sim fill     replay a pod list onto an empty cluster with one placement policy\n"
    "               and measure how many GPUs stay unallocated (the FGD experiment)\n"
    "  sim replay   replay a trace of arriving and leaving jobs through the scheduling\n"
    "               cycle, with real GPU usage, under static, slurm-like, kai-like or gpool\n"
    "  server       serve the API and the web dashboard (server init: create the store and\n"
    "               its first admin)\n"
    "  dev          a server and two nodes of simulated GPUs on this machine, to try gpool\n"
    "  agent        run this node's jobs for a server (GPUs found through NVML)\n"
    "  region       the per-GPU regions the agent shares with libgpool-cuda: caps, shares, use\n"
    "  swap         swap out|in JOB: a job's GPU memory to host memory and back (its agent does\n"
    "               it); swap out|in --pid PID does it to a process on this node\n"
    "  submit       submit a job: gpool submit --gpu 0.5 --project P -- COMMAND ...\n"
    "               (--walltime 2h: stopped and failed past it; --retries N: a failed run is\n"
    "               queued again up to N times)\n"
    "  list         list jobs (--state S[,S...], --project, --since WHEN, --until WHEN,\n"
    "               -o json); ended jobs stay listed with their run time and tries\n"
    "  describe     show a job, with why it waits\n"
    "  cancel       cancel a job\n"
    "  suspend      stop a running job where it is (it keeps its GPUs); resume lets it go on\n"
    "  logs         print a job's output: logs JOB [--stderr] [-f]  (-f: until the job ends)\n"
    "  projects     list projects; projects set NAME --deserved GPUS; projects add-member\n"
    "  users        users add NAME --unix-user ACCOUNT [--role ROLE]\n"
    "  token        token create [--user NAME]: a new token (for another user: admin)\n"
    "  nodes        list nodes (-o json); nodes cordon|drain|uncordon|revoke NAME (admin);\n"
    "               nodes join-token create [--expires DURATION] | list | revoke ID (admin):\n"
    "               tokens with which agents join (gpool agent --join-token-file)\n"
    "  top          each GPU's allocation, use and jobs, refreshed every second (--once)\n"
    "  usage        GPU-hours allocated and used per project or user: usage [--since WHEN]\n"
    "               [--until WHEN] [--by project|user] [-o json]  (default: the last day)\n"
    "  help         show this help\n"
    "  version      print the version\n"
    "\n"
    "Run 'gpool sim fill --help' or 'gpool server --help' for the options of a command.\n"
    "WHEN is a duration ago (30m, 2h, 1d) or a local date and time (2025-05-01[T12:00]).\n"
    "Client commands reach $GPOOL_SERVER (default http://127.0.0.1:8470) with $GPOOL_TOKEN,\n"
    "or the server and token lines of ~/.config/gpool/config; several URLs separated by commas\n"
    "(a server's replicas) are tried in turn while one cannot be reached or stands by.  An\n"
    "https:// server's certificate is verified against the system's CAs, or those of\n"
    "'gpool --ca FILE COMMAND', $GPOOL_CA or the config's ca line.\n";

static const char *const client_cmds[] = {"submit", "list", "describe", "cancel", "suspend",
                                          "resume", "logs", "projects", "users",  "token",
                                          "nodes",  "top",  "usage"};

static int usage(FILE *f, int code)
{
    fputs(usage_text, f);
    return code;
}

/*
 * Runs gpool-core with these arguments: $GPOOL_CORE when set, else the one beside this
 * executable (a build tree), else the installed one.  Returns only when none can run.
 */
static int run_core(char **argv)
{
    const char *env = getenv("GPOOL_CORE");
    char self[PATH_MAX], path[PATH_MAX + 16];
    ssize_t n;

    if (env != NULL && *env != '\0') {
        execv(env, argv);
        log_warnx("cannot run %s (GPOOL_CORE): %s", env, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) > 0) {
        char *slash;

        self[n] = '\0';
        if ((slash = strrchr(self, '/')) != NULL) {
            *slash = '\0';
            snprintf(path, sizeof(path), "%s/gpool-core", self);
            if (access(path, X_OK) == 0)
                execv(path, argv);
        }
    }
    snprintf(path, sizeof(path), "%s/gpool-core", GPOOL_LIBEXECDIR);
    execv(path, argv);
    log_warnx("cannot run %s, which runs 'gpool %s': %s", path, argv[1], strerror(errno));
    return CLI_EXIT_FAIL;
}

/* swap out|in JOB goes through the server; swap --pid PID acts on this node. */
static int swap_on_node(int argc, char **argv)
{
    if (argc == 2)
        return 1;
    for (int i = 2; i < argc; i++)
        if (strncmp(argv[i], "--pid", 5) == 0 || strcmp(argv[i], "--help") == 0 ||
            strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    int rc;

    log_init("gpool", LOG_INFO);
    /* gpool --ca FILE COMMAND ...: as GPOOL_CA=FILE, for this command and gpool-core. */
    if (argc >= 3 && strcmp(argv[1], "--ca") == 0) {
        setenv("GPOOL_CA", argv[2], 1);
        argv[2] = argv[0];
        argv += 2;
        argc -= 2;
    }
    if (argc < 2)
        return usage(stderr, CLI_EXIT_USAGE);
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0)
        return usage(stdout, CLI_EXIT_OK);
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("gpool %s\n", GPOOL_VERSION);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "sim") == 0 || strcmp(argv[1], "server") == 0 ||
        strcmp(argv[1], "agent") == 0 || strcmp(argv[1], "dev") == 0 ||
        strcmp(argv[1], "region") == 0 ||
        (strcmp(argv[1], "swap") == 0 && swap_on_node(argc, argv)))
        return run_core(argv);
    for (size_t i = 0; i < sizeof(client_cmds) / sizeof(client_cmds[0]); i++)
        if (strcmp(argv[1], client_cmds[i]) == 0 || strcmp(argv[1], "swap") == 0) {
            rc = cli_client(argv[1], argc - 1, argv + 1);
            return rc == CLI_EXIT_CORE ? run_core(argv) : rc;
        }
    log_warnx("unknown command '%s' (try 'gpool --help')", argv[1]);
    return CLI_EXIT_USAGE;
}
