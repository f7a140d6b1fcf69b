/*
 * `gpool agent`.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "cli/cli.h"

static const char agent_usage[] =
    "usage: gpool agent --server URL[,URL...] --token-file PATH [--name NODE] [--state-dir DIR]\n"
    "                   [--heartbeat SECONDS] [--cuda-lib PATH|none] [--cgroup-root DIR|none]\n"
    "                   [--address HOST] [--env KEY=VALUE ...] [--cpus N]\n"
    "\n"
    "Register this node's GPUs (found through NVML) with the server and run the jobs it assigns,\n"
    "each under a supervisor, as the job's Unix user, with CUDA_VISIBLE_DEVICES set. Jobs keep\n"
    "running when the agent stops; a new agent adopts them from the state directory\n"
    "(default /var/lib/gpool/agent). The token is read from a file, never from the command line.\n"
    "Fractions are enforced inside each workload by libgpool-cuda, preloaded into it (found "
    "beside\n"
    "the gpool binary, or --cuda-lib PATH; none: not preloaded), with caps and shares in\n"
    "STATE_DIR/regions; a job whose processes hold more than its cap on a GPU is stopped.\n"
    "Each workload runs in a cgroup of its own under the agent's cgroup v2 (or --cgroup-root "
    "DIR),\n"
    "so that cancel kills all it started; none, or no writable cgroup v2: process groups.\n"
    "A gang's replicas get GPOOL_RANK, GPOOL_WORLD_SIZE, RANK, LOCAL_RANK, WORLD_SIZE, and\n"
    "MASTER_ADDR and MASTER_PORT of its rank 0: --address is how other nodes reach this one\n"
    "(default: the node name).  Several URLs: the replicas of a server; the agent talks to the\n"
    "one that leads.\n"
    "--env KEY=VALUE (repeatable) sets a variable for every workload on this node; a job's own\n"
    "-e KEY=VALUE replaces it. The agent's own variables (identity, GPUs, preload, ranks) win.\n"
    "--cpus N: the CPUs this node offers to jobs (default: the online CPUs).\n"
    "Exit status: 0 on SIGINT or SIGTERM, 1 when it cannot start, 2 on bad arguments.\n";

int cli_agent(int argc, char **argv)
{
    static const struct option longopts[] = {{"server", required_argument, NULL, 's'},
                                             {"token-file", required_argument, NULL, 't'},
                                             {"name", required_argument, NULL, 'n'},
                                             {"state-dir", required_argument, NULL, 'd'},
                                             {"heartbeat", required_argument, NULL, 'b'},
                                             {"cuda-lib", required_argument, NULL, 'l'},
                                             {"cgroup-root", required_argument, NULL, 'g'},
                                             {"address", required_argument, NULL, 'a'},
                                             {"env", required_argument, NULL, 'e'},
                                             {"cpus", required_argument, NULL, 'c'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    struct agent_opts o = {.state_dir = "/var/lib/gpool/agent", .heartbeat_s = 5};
    char *end, key[256];
    size_t klen;
    int c, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            o.server = optarg;
            break;
        case 't':
            o.token_file = optarg;
            break;
        case 'n':
            o.name = optarg;
            break;
        case 'd':
            o.state_dir = optarg;
            break;
        case 'l':
            o.cuda_lib = optarg;
            break;
        case 'g':
            o.cgroup_root = optarg;
            break;
        case 'a':
            o.address = optarg;
            break;
        case 'e':
            klen = strcspn(optarg, "=");
            if (optarg[klen] != '=' || klen == 0 || klen >= sizeof(key) ||
                strspn(optarg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") !=
                    klen ||
                (optarg[0] >= '0' && optarg[0] <= '9')) {
                fprintf(stderr, "gpool agent: --env %s: expected NAME=VALUE\n", optarg);
                rc = CLI_EXIT_USAGE;
                goto out;
            }
            if (o.env == NULL)
                o.env = json_object();
            memcpy(key, optarg, klen);
            key[klen] = '\0';
            json_object_set_new(o.env, key, json_string(optarg + klen + 1));
            break;
        case 'c': {
            double cpus = strtod(optarg, &end);

            if (*end != '\0' || end == optarg || !(cpus >= 0.001 && cpus <= 1e6)) {
                fprintf(stderr, "gpool agent: --cpus %s: expected a number of CPUs\n", optarg);
                rc = CLI_EXIT_USAGE;
                goto out;
            }
            o.cpu_milli = (int64_t)(cpus * 1000 + 0.5);
            break;
        }
        case 'b':
            o.heartbeat_s = (int)strtol(optarg, &end, 10);
            if (*end != '\0' || o.heartbeat_s < 1 || o.heartbeat_s > 3600) {
                fprintf(stderr, "gpool agent: --heartbeat %s: expected 1 to 3600 seconds\n",
                        optarg);
                rc = CLI_EXIT_USAGE;
                goto out;
            }
            break;
        case 'h':
            fputs(agent_usage, stdout);
            rc = CLI_EXIT_OK;
            goto out;
        default:
            fputs(agent_usage, stderr);
            rc = CLI_EXIT_USAGE;
            goto out;
        }
    }
    if (o.server == NULL || o.token_file == NULL) {
        fprintf(stderr, "gpool agent: --server URL and --token-file PATH are required\n");
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    rc = agent_run(&o) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
out:
    json_decref(o.env);
    return rc;
}
