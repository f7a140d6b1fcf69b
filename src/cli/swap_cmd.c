/*
 * `gpool swap out|in --pid PID`: swaps a workload's GPU memory to host memory and back, on this
 * node, as the agent does (src/agent/swap.c).  For operators and tests.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/swap.h"
#include "cli/cli.h"
#include "common/units.h"

static const char usage_text[] =
    "usage: gpool swap out|in JOB [-o json]\n"
    "       gpool swap out|in --pid PID [--via auto|driver|library] [--regions DIR]\n"
    "                         [--host-reserve SIZE] [--timeout SECONDS] [-o json]\n"
    "\n"
    "With JOB: the server asks the job's agent, which swaps every CUDA process of the job; the\n"
    "job shows state swapped and where its memory is. With --pid, on this node:\n"
    "Swap a CUDA process's GPU memory out to host memory (its device addresses kept, the GPU's\n"
    "memory free for others) or back in. auto (the default) uses the driver's checkpoint API when\n"
    "it can, else libgpool-cuda inside the process (started with GPOOL_SWAP=library). A swap out\n"
    "is refused when the host lacks the memory for it beyond --host-reserve (default 1GiB).\n"
    "DIR: the agent's regions ($GPOOL_REGION_DIR, default /var/lib/gpool/agent/regions).\n"
    "Exit status: 0 done, 1 refused or failed (nothing changed), 2 bad arguments.\n";

int cli_swap(int argc, char **argv)
{
    static const struct option opts[] = {
        {"pid", required_argument, NULL, 'p'},     {"via", required_argument, NULL, 'v'},
        {"regions", required_argument, NULL, 'r'}, {"host-reserve", required_argument, NULL, 'R'},
        {"timeout", required_argument, NULL, 't'}, {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    struct swap_opts o = {.via = "auto", .host_reserve = 1ull << 30, .timeout_s = 30};
    const char *sub = argc > 1 ? argv[1] : NULL, *output = NULL;
    struct swap_result r;
    long pid = 0;
    char *end;
    int c;

    if (sub == NULL || strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        fputs(usage_text, sub == NULL ? stderr : stdout);
        return sub == NULL ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (strcmp(sub, "out") != 0 && strcmp(sub, "in") != 0)
        return cli_usage_error("swap", "expected 'out' or 'in', not '%s'", sub);
    o.regions = getenv("GPOOL_REGION_DIR");
    if (o.regions == NULL || o.regions[0] == '\0')
        o.regions = "/var/lib/gpool/agent/regions";
    optind = 1;
    while ((c = getopt_long(argc - 1, argv + 1, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            pid = strtol(optarg, &end, 10);
            if (*end != '\0' || pid <= 1)
                return cli_usage_error("swap", "--pid %s: expected a process id", optarg);
            break;
        case 'v':
            if (strcmp(optarg, "auto") != 0 && strcmp(optarg, "driver") != 0 &&
                strcmp(optarg, "library") != 0)
                return cli_usage_error("swap", "--via %s: expected auto, driver or library",
                                       optarg);
            o.via = optarg;
            break;
        case 'r': o.regions = optarg; break;
        case 'R':
            if (units_parse_bytes(optarg, &o.host_reserve) != 0)
                return cli_usage_error("swap", "--host-reserve %s: expected a size", optarg);
            break;
        case 't':
            o.timeout_s = strtod(optarg, &end);
            if (*end != '\0' || !(o.timeout_s > 0 && o.timeout_s <= 3600))
                return cli_usage_error("swap", "--timeout %s: expected 0 to 3600 seconds", optarg);
            break;
        case 'o':
            if (strcmp(optarg, "json") != 0)
                return cli_usage_error("swap", "-o %s: the only output format is json", optarg);
            output = optarg;
            break;
        case 'h': fputs(usage_text, stdout); return CLI_EXIT_OK;
        default: return CLI_EXIT_USAGE;
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("swap", "unexpected argument '%s'", argv[optind + 1]);
    if (pid == 0)
        return cli_usage_error("swap", "--pid is required");
    if (strcmp(sub, "out") == 0)
        o.bytes_hint = swap_nvml_bytes((pid_t)pid);
    if (swap_process(&o, (pid_t)pid, strcmp(sub, "out") == 0, &r) != 0) {
        fprintf(stderr, "gpool swap %s: pid %ld: %s\n", sub, pid, r.msg);
        return CLI_EXIT_FAIL;
    }
    if (strcmp(sub, "in") == 0 && r.bytes == 0)
        r.bytes = swap_nvml_bytes((pid_t)pid); /* the driver says what it restored through NVML */
    if (output != NULL)
        printf("{\"pid\": %ld, \"swapped\": \"%s\", \"via\": \"%s\", \"bytes\": %llu, "
               "\"seconds\": %.6f, \"copy_seconds\": %.6f}\n",
               pid, sub, r.via, (unsigned long long)r.bytes, r.seconds, r.copy_seconds);
    else if (r.copy_seconds > 0)
        printf("swapped %s pid %ld via %s: %.2f GiB in %.3f s (%.1f GB/s; copying %.3f s, "
               "%.1f GB/s)\n", sub, pid, r.via, r.bytes / 1073741824.0, r.seconds,
               r.seconds > 0 ? r.bytes / r.seconds / 1e9 : 0, r.copy_seconds,
               r.bytes / r.copy_seconds / 1e9);
    else
        printf("swapped %s pid %ld via %s: %.2f GiB in %.3f s (%.1f GB/s)\n", sub, pid, r.via,
               r.bytes / 1073741824.0, r.seconds, r.seconds > 0 ? r.bytes / r.seconds / 1e9 : 0);
    return CLI_EXIT_OK;
}
