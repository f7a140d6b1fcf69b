/*
 * gpool-core: the commands that run the pool (server, agent, dev), simulate it (sim) or act on
 * this node (region, swap --pid), with the server's and the agent's libraries.  `gpool` runs it
 * (docs/server.md, "The `gpool` executable and gpool-core").  It also runs the client commands
 * on libcurl, which `gpool` hands it for an https:// server or several servers.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/log.h"

static const char *const client_cmds[] = {"submit", "list", "describe", "cancel", "suspend",
                                          "resume", "logs", "projects", "users",  "token",
                                          "nodes",  "top",  "usage"};

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
    if (argc < 2) {
        fputs("usage: gpool <command> [options]   (gpool-core runs gpool's server, agent, dev, "
              "sim, region and swap commands; see 'gpool --help')\n",
              stderr);
        return CLI_EXIT_USAGE;
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
