/*
 * `gpool agent`.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "agent/agent.h"
#include "cli/cli.h"

static const char agent_usage[] =
    "usage: gpool agent --server URL (--token-file PATH | --join-token-file PATH)\n"
    "                   [--name NODE] [--state-dir DIR] [--ca FILE]\n"
    "                   [--heartbeat SECONDS] [--cuda-lib PATH|none] [--cgroup-root DIR|none]\n"
    "                   [--address HOST]\n"
    "\n"
    "Register this node's GPUs (found through NVML) with the server and run the jobs it assigns,\n"
    "each under a supervisor, as the job's Unix user, with CUDA_VISIBLE_DEVICES set. Jobs keep\n"
    "running when the agent stops; a new agent adopts them from the state directory\n"
    "(default /var/lib/gpool/agent). The token is read from a file, never from the command line:\n"
    "--token-file holds an agent's token; --join-token-file a join token (gpool nodes join-token\n"
    "create), with which the node joins once and gets a credential of its own, kept in\n"
    "STATE_DIR/credential (mode 0600) and used from then on. --ca FILE: the CA certificates\n"
    "(PEM) to trust for an https:// server instead of the system's.\n"
    "Fractions are enforced inside each workload by libgpool-cuda, preloaded into it (found beside\n"
    "the gpool binary, or --cuda-lib PATH; none: not preloaded), with caps and shares in\n"
    "STATE_DIR/regions; a job whose processes hold more than its cap on a GPU is stopped.\n"
    "Each workload runs in a cgroup of its own under the agent's cgroup v2 (or --cgroup-root DIR),\n"
    "so that cancel kills all it started; none, or no writable cgroup v2: process groups.\n"
    "A gang's replicas get GPOOL_RANK, GPOOL_WORLD_SIZE, RANK, LOCAL_RANK, WORLD_SIZE, and\n"
    "MASTER_ADDR and MASTER_PORT of its rank 0: --address is how other nodes reach this one\n"
    "(default: the node name).\n"
    "Exit status: 0 on SIGINT or SIGTERM, 1 when it cannot start, 2 on bad arguments.\n";

int cli_agent(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"server", required_argument, NULL, 's'},   {"token-file", required_argument, NULL, 't'},
        {"name", required_argument, NULL, 'n'},     {"state-dir", required_argument, NULL, 'd'},
        {"heartbeat", required_argument, NULL, 'b'}, {"cuda-lib", required_argument, NULL, 'l'},
        {"cgroup-root", required_argument, NULL, 'g'}, {"address", required_argument, NULL, 'a'},
        {"join-token-file", required_argument, NULL, 'j'}, {"ca", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    struct agent_opts o = {.state_dir = "/var/lib/gpool/agent", .heartbeat_s = 5};
    char *end;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 's': o.server = optarg; break;
        case 't': o.token_file = optarg; break;
        case 'j': o.join_token_file = optarg; break;
        case 'c': o.ca_file = optarg; break;
        case 'n': o.name = optarg; break;
        case 'd': o.state_dir = optarg; break;
        case 'l': o.cuda_lib = optarg; break;
        case 'g': o.cgroup_root = optarg; break;
        case 'a': o.address = optarg; break;
        case 'b':
            o.heartbeat_s = (int)strtol(optarg, &end, 10);
            if (*end != '\0' || o.heartbeat_s < 1 || o.heartbeat_s > 3600) {
                fprintf(stderr, "gpool agent: --heartbeat %s: expected 1 to 3600 seconds\n",
                        optarg);
                return CLI_EXIT_USAGE;
            }
            break;
        case 'h': fputs(agent_usage, stdout); return CLI_EXIT_OK;
        default: fputs(agent_usage, stderr); return CLI_EXIT_USAGE;
        }
    }
    if (o.server == NULL || (o.token_file == NULL) == (o.join_token_file == NULL)) {
        fprintf(stderr, "gpool agent: --server URL and one of --token-file PATH and "
                        "--join-token-file PATH are required\n");
        return CLI_EXIT_USAGE;
    }
    return agent_run(&o) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}
