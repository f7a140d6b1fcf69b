/*
 * gpool: one binary, one subcommand per job.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/log.h"

#ifndef GPOOL_VERSION
#define GPOOL_VERSION "0.1.0"
#endif

static const char usage_text[] =
    "usage: gpool <command> [options]\n"
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
    "  dev          a server, an agent and simulated GPUs on this machine, to try gpool\n"
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
    "  nodes        list nodes (-o json); nodes cordon|drain|uncordon NAME (admin)\n"
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
    "(a server's replicas) are tried in turn while one cannot be reached or stands by.\n";

static const char *const client_cmds[] = {"submit",   "list",   "describe", "cancel", "suspend",
                                          "resume",   "logs",   "projects", "users",  "token",
                                          "nodes",    "top",    "usage"};

static int usage(FILE *f, int code)
{
    fputs(usage_text, f);
    return code;
}

static int sim_main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs("usage: gpool sim fill [options]     (see 'gpool sim fill --help')\n"
              "       gpool sim replay [options]   (see 'gpool sim replay --help')\n",
              argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "fill") == 0)
        return cli_sim_fill(argc - 1, argv + 1);
    if (strcmp(argv[1], "replay") == 0)
        return cli_sim_replay(argc - 1, argv + 1);
    log_warnx("unknown sim command '%s' (try 'gpool sim --help')", argv[1]);
    return CLI_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    log_init("gpool", LOG_INFO);
    if (argc < 2)
        return usage(stderr, CLI_EXIT_USAGE);
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0)
        return usage(stdout, CLI_EXIT_OK);
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("gpool %s\n", GPOOL_VERSION);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "sim") == 0)
        return sim_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "server") == 0)
        return cli_server(argc - 1, argv + 1);
    if (strcmp(argv[1], "agent") == 0)
        return cli_agent(argc - 1, argv + 1);
    if (strcmp(argv[1], "dev") == 0)
        return cli_dev(argc - 1, argv + 1);
    if (strcmp(argv[1], "region") == 0)
        return cli_region(argc - 1, argv + 1);
    if (strcmp(argv[1], "swap") == 0) {
        /* On the node, a process (--pid); else a job, through the server. */
        for (int i = 2; i < argc; i++)
            if (strncmp(argv[i], "--pid", 5) == 0 || strcmp(argv[i], "--help") == 0 ||
                strcmp(argv[i], "-h") == 0)
                return cli_swap(argc - 1, argv + 1);
        if (argc == 2)
            return cli_swap(argc - 1, argv + 1);
        return cli_client("swap", argc - 1, argv + 1);
    }
    for (size_t i = 0; i < sizeof(client_cmds) / sizeof(client_cmds[0]); i++)
        if (strcmp(argv[1], client_cmds[i]) == 0)
            return cli_client(argv[1], argc - 1, argv + 1);
    log_warnx("unknown command '%s' (try 'gpool --help')", argv[1]);
    return CLI_EXIT_USAGE;
}
