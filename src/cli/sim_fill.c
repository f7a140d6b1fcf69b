/*
 * `gpool sim fill`: the FGD paper's fill experiment on a node list and a pod list, for one
 * placement policy or all of them, over a range of seeds.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/log.h"
#include "sim/fill.h"
#include "sim/report.h"
#include "sim/trace.h"

#define DEFAULT_NODES "openb_node_list_gpu_node.csv"
#define DEFAULT_SEED_FIRST 42
#define DEFAULT_SEED_COUNT 10
#define MAX_SEEDS 100000

static const char fill_usage[] =
    "usage: gpool sim fill --pods FILE --policy NAME [--nodes FILE] [--seed N | --seeds A..B]\n"
    "                      [--inflate X] [--csv OUT] [--json] [--plot OUT.svg] [--jobs N]\n"
    "\n"
    "Place the pods of FILE one at a time on an empty cluster, as the FGD paper's simulator\n"
    "does (ATC'23), and report the share of GPU capacity left unallocated as demand arrives.\n"
    "\n"
    "  --pods FILE      pod list: name, cpu_milli, memory_mib, num_gpu, gpu_milli[, gpu_spec]\n"
    "  --nodes FILE     node list: sn, cpu_milli, memory_mib, gpu[, model]\n"
    "                   (default: " DEFAULT_NODES ")\n"
    "  --policy NAME    random, dotprod, clustering, packing, bestfit, fgd, gpool,\n"
    "                   offline-ffd, or all\n"
    "  --seed N         one seed\n"
    "  --seeds A..B     seeds A to B inclusive (default 42..51)\n"
    "  --inflate X      grow (or cut) the pod list to X times the GPU capacity (default 1.3)\n"
    "  --csv OUT        write each seed's curve to OUT\n"
    "  --json           print one JSON object instead of the table\n"
    "  --plot OUT.svg   draw unallocated GPU %% against arrived demand, one line per policy\n"
    "  --jobs N         run seeds on N threads (default: the number of CPUs)\n"
    "\n"
    "A FILE that does not exist as given is looked up in $GPOOL_TRACES or ../shared/traces,\n"
    "also as openb/FILE and openb/openb_pod_list_FILE.csv (so '--pods default' works).\n"
    "Exit status: 0 on success, 2 on bad arguments or a bad trace (nothing is run).\n";

struct fill_opts {
    const char *nodes;
    const char *pods;
    const char *policy;
    const char *csv;
    const char *plot;
    bool json;
    uint64_t seed_first;
    int nseeds;
    double inflate;
    int jobs;
};

#define bad_usage(...) cli_usage_error("sim fill", __VA_ARGS__)

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end != '\0')
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_seeds(const char *s, struct fill_opts *o)
{
    const char *dots = strstr(s, "..");
    char first[32];
    uint64_t a, b;

    if (dots == NULL || (size_t)(dots - s) >= sizeof(first))
        return -EINVAL;
    memcpy(first, s, (size_t)(dots - s));
    first[dots - s] = '\0';
    if (parse_u64(first, &a) < 0 || parse_u64(dots + 2, &b) < 0 || b < a || b - a >= MAX_SEEDS)
        return -EINVAL;
    o->seed_first = a;
    o->nseeds = (int)(b - a + 1);
    return 0;
}


static int parse_opts(int argc, char **argv, struct fill_opts *o)
{
    static const struct option longopts[] = {
        {"nodes", required_argument, NULL, 'n'},  {"pods", required_argument, NULL, 'p'},
        {"policy", required_argument, NULL, 'P'}, {"seed", required_argument, NULL, 's'},
        {"seeds", required_argument, NULL, 'S'},  {"inflate", required_argument, NULL, 'i'},
        {"csv", required_argument, NULL, 'c'},    {"json", no_argument, NULL, 'J'},
        {"plot", required_argument, NULL, 'g'},   {"jobs", required_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    uint64_t v;
    char *end;
    int c;

    while ((c = getopt_long(argc, argv, "hj:", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            o->nodes = optarg;
            break;
        case 'p':
            o->pods = optarg;
            break;
        case 'P':
            o->policy = optarg;
            break;
        case 'c':
            o->csv = optarg;
            break;
        case 'g':
            o->plot = optarg;
            break;
        case 'J':
            o->json = true;
            break;
        case 's':
            if (parse_u64(optarg, &v) < 0)
                return bad_usage("--seed: '%s' is not a non-negative whole number", optarg);
            o->seed_first = v;
            o->nseeds = 1;
            break;
        case 'S':
            if (parse_seeds(optarg, o) < 0)
                return bad_usage("--seeds: '%s' is not a range A..B with A <= B", optarg);
            break;
        case 'i':
            o->inflate = strtod(optarg, &end);
            if (*optarg == '\0' || *end != '\0' || !(o->inflate > 0 && o->inflate <= 100))
                return bad_usage("--inflate: '%s' is not a number in (0, 100]", optarg);
            break;
        case 'j':
            if (parse_u64(optarg, &v) < 0 || v < 1 || v > 1024)
                return bad_usage("--jobs: '%s' is not a number from 1 to 1024", optarg);
            o->jobs = (int)v;
            break;
        case 'h':
            fputs(fill_usage, stdout);
            return -1;
        default:
            return bad_usage("unknown option");
        }
    }
    if (optind < argc)
        return bad_usage("unexpected argument '%s'", argv[optind]);
    if (o->pods == NULL)
        return bad_usage("--pods FILE is required");
    if (o->policy == NULL)
        return bad_usage("--policy NAME is required");
    if (cli_check_writable("sim fill", "--csv", o->csv) ||
        cli_check_writable("sim fill", "--plot", o->plot))
        return CLI_EXIT_USAGE;
    return 0;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int load_traces(const struct fill_opts *o, struct trace_nodes *nodes,
                       struct trace_pods *pods)
{
    char err[512];
    char *np = trace_find(o->nodes), *pp = trace_find(o->pods);
    int rc = CLI_EXIT_USAGE;

    if (np == NULL)
        fprintf(stderr, "gpool sim fill: node list '%s' not found here nor in %s\n", o->nodes,
                trace_search_path());
    else if (pp == NULL)
        fprintf(stderr, "gpool sim fill: pod list '%s' not found here nor in %s\n", o->pods,
                trace_search_path());
    else if (trace_read_nodes(np, nodes, err, sizeof(err)) < 0)
        fprintf(stderr, "gpool sim fill: %s\n", err);
    else if (trace_read_pods(pp, nodes, pods, err, sizeof(err)) < 0) {
        fprintf(stderr, "gpool sim fill: %s\n", err);
        trace_nodes_fini(nodes);
    } else
        rc = 0;
    free(np);
    free(pp);
    return rc;
}

static int select_policies(const char *name, int *list)
{
    if (strcmp(name, "all") == 0) {
        for (int i = 0; i < FILL_POLICY_COUNT; i++)
            list[i] = i;
        return FILL_POLICY_COUNT;
    }
    if (fill_policy_parse(name, &list[0]) < 0)
        return -1;
    return 1;
}

static void print_json(const struct report_run *runs, int n)
{
    json_t *out;

    if (n == 1) {
        out = report_json(&runs[0]);
    } else {
        out = json_object();
        json_t *arr = json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(arr, report_json(&runs[i]));
        json_object_set_new(out, "policies", arr);
    }
    json_dumpf(out, stdout, JSON_INDENT(0) | JSON_REAL_PRECISION(6));
    fputc('\n', stdout);
    json_decref(out);
}

static int write_outputs(const struct fill_opts *o, const struct report_run *runs, int n,
                         const char *title)
{
    int err;

    if (o->json)
        print_json(runs, n);
    else
        report_table(stdout, runs, n, title);
    if (o->csv && (err = report_csv(o->csv, runs, n)) < 0) {
        fprintf(stderr, "gpool sim fill: %s: %s\n", o->csv, strerror(-err));
        return CLI_EXIT_FAIL;
    }
    if (o->plot) {
        if ((err = report_svg(o->plot, runs, n, title)) < 0) {
            fprintf(stderr, "gpool sim fill: %s: %s\n", o->plot, strerror(-err));
            return CLI_EXIT_FAIL;
        }
        fprintf(o->json ? stderr : stdout, "plot: %s\n", o->plot);
    }
    return CLI_EXIT_OK;
}

static int run_policies(const struct fill_opts *o, const int *list, int n,
                        struct trace_nodes *nodes, struct trace_pods *pods)
{
    struct report_run runs[FILL_POLICY_COUNT];
    struct fill_setup setup;
    char title[512];
    char err[256];
    char *pb;
    int rc;

    if (fill_setup_init(&setup, nodes, pods, o->inflate, err, sizeof(err)) < 0) {
        fprintf(stderr, "gpool sim fill: %s\n", err);
        return CLI_EXIT_USAGE;
    }
    pb = xstrdup(o->pods);
    for (int i = 0; i < n; i++) {
        double t0 = now_seconds();
        runs[i] = (struct report_run){.policy = list[i], .nseeds = o->nseeds};
        runs[i].results = xcalloc((size_t)o->nseeds, sizeof(struct fill_result));
        fill_run_seeds(&setup, list[i], o->seed_first, o->nseeds, o->jobs, runs[i].results);
        fill_mean(runs[i].results, o->nseeds, &runs[i].mean);
        runs[i].seconds = now_seconds() - t0;
    }
    snprintf(title, sizeof(title), "%s: %d nodes, %d pods, seeds %llu..%llu, inflate %.2f",
             basename(pb), nodes->cluster.nnodes, pods->npods, (unsigned long long)o->seed_first,
             (unsigned long long)(o->seed_first + (uint64_t)o->nseeds - 1), o->inflate);
    rc = write_outputs(o, runs, n, title);
    for (int i = 0; i < n; i++)
        free(runs[i].results);
    fill_setup_fini(&setup);
    free(pb);
    return rc;
}

int cli_sim_fill(int argc, char **argv)
{
    struct fill_opts o = {.nodes = DEFAULT_NODES,
                          .seed_first = DEFAULT_SEED_FIRST,
                          .nseeds = DEFAULT_SEED_COUNT,
                          .inflate = 1.3};
    int list[FILL_POLICY_COUNT];
    struct trace_nodes nodes;
    struct trace_pods pods;
    int n, rc;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    o.jobs = ncpu > 0 ? (int)ncpu : 1;
    optind = 1;
    if ((rc = parse_opts(argc, argv, &o)) != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if ((n = select_policies(o.policy, list)) < 0)
        return bad_usage("--policy: unknown policy '%s'", o.policy);
    if ((rc = load_traces(&o, &nodes, &pods)) != 0)
        return rc;
    rc = run_policies(&o, list, n, &nodes, &pods);
    trace_pods_fini(&pods);
    trace_nodes_fini(&nodes);
    return rc;
}
