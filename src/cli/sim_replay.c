/*
 * `gpool sim replay`: a pod trace replayed as arriving and leaving jobs through the whole
 * scheduling cycle, under one policy or all four, with real GPU usage.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/log.h"
#include "sim/replay.h"
#include "sim/trace.h"

#define DEFAULT_NODES "openb_node_list_gpu_node.csv"
#define DEFAULT_USAGE "pod_gpu_duty_cycle_anon.csv"
#define MEMORY_FILE "pod_gpu_memory_used_bytes_anon.csv"

static const char replay_usage[] =
    "usage: gpool sim replay --jobs FILE --policy NAME [--nodes FILE] [--projects FILE]\n"
    "                        [--usage FILE] [--load X] [--seed N] [--node-fraction F]\n"
    "                        [--json] [--csv OUT] [--plot OUT.svg]\n"
    "\n"
    "Replay a pod trace as jobs that arrive and leave, through gpool's whole scheduling cycle,\n"
    "and report what the GPUs did: allocated and used, work done, waits, fairness, swaps.\n"
    "\n"
    "  --jobs FILE      pod list with creation_time, deletion_time, scheduled_time and qos\n"
    "  --nodes FILE     node list (default: " DEFAULT_NODES ")\n"
    "  --projects FILE  name, deserved_pct[, weight, limit_pct] (default: four projects\n"
    "                   deserving 40/30/20/10% of the GPUs; jobs go to projects by name hash)\n"
    "  --usage FILE     GPU duty-cycle series; the memory series is read from " MEMORY_FILE "\n"
    "                   beside it (default: " DEFAULT_USAGE ")\n"
    "  --policy NAME    static, slurm-like, kai-like, gpool, or all\n"
    "  --load X         divide inter-arrival times by X (default 1)\n"
    "  --seed N         seed that draws each job's usage series (default 42)\n"
    "  --node-fraction F  replay on a seeded sample of F of the nodes, keeping at least one\n"
    "                   node of each GPU model (default 1: all of them)\n"
    "  --json           print JSON instead of the table\n"
    "  --csv OUT        write allocated and used GPUs over time, per policy\n"
    "  --plot OUT.svg   draw them\n"
    "\n"
    "A FILE that does not exist as given is looked up in $GPOOL_TRACES or ../shared/traces.\n"
    "Exit status: 0 on success, 2 on bad arguments or a bad trace (nothing is run).\n";

struct replay_cli {
    const char *nodes, *jobs, *projects, *usage, *policy, *csv, *plot;
    bool json;
    struct replay_opts opts;
};

#define bad_usage(...) cli_usage_error("sim replay", __VA_ARGS__)

static int parse_number(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;

    errno = 0;
    *out = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno != 0 || !(*out >= lo && *out <= hi))
        return bad_usage("%s: '%s' is not a number from %g to %g", opt, s, lo, hi);
    return 0;
}


static int parse_opts(int argc, char **argv, struct replay_cli *o)
{
    static const struct option longopts[] = {
        {"jobs", required_argument, NULL, 'j'},   {"nodes", required_argument, NULL, 'n'},
        {"projects", required_argument, NULL, 'r'}, {"usage", required_argument, NULL, 'u'},
        {"policy", required_argument, NULL, 'P'}, {"load", required_argument, NULL, 'l'},
        {"seed", required_argument, NULL, 's'},   {"json", no_argument, NULL, 'J'},
        {"csv", required_argument, NULL, 'c'},    {"plot", required_argument, NULL, 'g'},
        {"node-fraction", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    double v;
    int c;

    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'j': o->jobs = optarg; break;
        case 'n': o->nodes = optarg; break;
        case 'r': o->projects = optarg; break;
        case 'u': o->usage = optarg; break;
        case 'P': o->policy = optarg; break;
        case 'c': o->csv = optarg; break;
        case 'g': o->plot = optarg; break;
        case 'J': o->json = true; break;
        case 'l':
            if (parse_number("--load", optarg, 0.001, 1e6, &o->opts.load))
                return CLI_EXIT_USAGE;
            break;
        case 's':
            if (parse_number("--seed", optarg, 0, 1e15, &v) || v != (double)(uint64_t)v)
                return bad_usage("--seed: '%s' is not a whole number", optarg);
            o->opts.seed = (uint64_t)v;
            break;
        case 'f':
            if (parse_number("--node-fraction", optarg, 0.001, 1, &o->opts.node_fraction))
                return CLI_EXIT_USAGE;
            break;
        case 'h': fputs(replay_usage, stdout); return -1;
        default: return bad_usage("unknown option");
        }
    }
    if (optind < argc)
        return bad_usage("unexpected argument '%s'", argv[optind]);
    if (o->jobs == NULL)
        return bad_usage("--jobs FILE is required");
    if (o->policy == NULL)
        return bad_usage("--policy NAME is required");
    if (cli_check_writable("sim replay", "--csv", o->csv) ||
        cli_check_writable("sim replay", "--plot", o->plot))
        return CLI_EXIT_USAGE;
    return 0;
}

struct inputs {
    struct trace_nodes nodes;
    struct trace_pods pods;
    struct trace_usage usage;
    struct replay_projects projects;
};

static char *found(const char *what, const char *name)
{
    char *p = trace_find(name);

    if (p == NULL)
        fprintf(stderr, "gpool sim replay: %s '%s' not found here nor in %s\n", what, name,
                trace_search_path());
    return p;
}

static int read_usage(const char *name, struct trace_usage *u, char *err, size_t len)
{
    char *duty = found("usage series", name), *mem, *slash;
    int rc;

    if (duty == NULL)
        return -2;
    mem = xcalloc(strlen(duty) + sizeof(MEMORY_FILE) + 2, 1);
    strcpy(mem, duty);
    slash = strrchr(mem, '/');
    strcpy(slash != NULL ? slash + 1 : mem, MEMORY_FILE);
    rc = trace_read_usage(duty, mem, u, err, len);
    free(duty);
    free(mem);
    return rc;
}

static int load_inputs(const struct replay_cli *o, struct inputs *in)
{
    char err[512] = "";
    char *np = found("node list", o->nodes), *jp = np ? found("pod list", o->jobs) : NULL;
    char *pp = o->projects && jp ? found("project list", o->projects) : NULL;
    int rc = -1;

    memset(in, 0, sizeof(*in));
    if (np == NULL || jp == NULL || (o->projects && pp == NULL))
        goto out;
    if (trace_read_nodes(np, &in->nodes, err, sizeof(err)) < 0)
        goto out;
    if (trace_read_pods(jp, &in->nodes, &in->pods, err, sizeof(err)) < 0)
        goto nodes;
    if ((rc = read_usage(o->usage, &in->usage, err, sizeof(err))) < 0)
        goto pods;
    if (pp == NULL)
        replay_projects_default(&in->projects);
    else if ((rc = trace_read_projects(pp, &in->projects, err, sizeof(err))) < 0)
        goto usage;
    rc = 0;
    goto out;
usage:
    trace_usage_fini(&in->usage);
pods:
    trace_pods_fini(&in->pods);
nodes:
    trace_nodes_fini(&in->nodes);
out:
    if (err[0] != '\0')
        fprintf(stderr, "gpool sim replay: %s\n", err);
    free(np);
    free(jp);
    free(pp);
    return rc == 0 ? 0 : -1;
}

static void free_inputs(struct inputs *in)
{
    replay_projects_fini(&in->projects);
    trace_usage_fini(&in->usage);
    trace_pods_fini(&in->pods);
    trace_nodes_fini(&in->nodes);
}

struct run {
    const struct inputs *in;
    struct replay_opts opts;
    struct replay_result res;
    char err[256];
    int rc;
};

static void *run_one(void *arg)
{
    struct run *r = arg;

    r->rc = replay_run(&r->in->nodes, &r->in->pods, &r->in->usage, &r->in->projects, &r->opts,
                       &r->res, r->err, sizeof(r->err));
    return NULL;
}

/* Policies run two at a time: each replay is single-threaded. */
static int run_all(struct run *runs, int n)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int width = ncpu > 1 ? 2 : 1;

    for (int i = 0; i < n; i += width) {
        pthread_t t[2];

        for (int k = 0; k < width && i + k < n; k++)
            pthread_create(&t[k], NULL, run_one, &runs[i + k]);
        for (int k = 0; k < width && i + k < n; k++)
            pthread_join(t[k], NULL);
    }
    for (int i = 0; i < n; i++)
        if (runs[i].rc != 0) {
            fprintf(stderr, "gpool sim replay: %s\n", runs[i].err);
            return CLI_EXIT_USAGE;
        }
    return 0;
}

static int report(const struct replay_cli *o, const struct inputs *in, struct run *runs, int n)
{
    struct replay_result res[REPLAY_POLICY_COUNT];
    char title[512], *jb = xstrdup(o->jobs);
    double gpus = runs[0].res.gpus;
    int rc = CLI_EXIT_OK, err;

    for (int i = 0; i < n; i++)
        res[i] = runs[i].res;
    snprintf(title, sizeof(title), "%s at load %g: %d jobs (%d never scheduled, skipped), %.0f "
             "GPUs, %.1f h of arrivals", basename(jb), o->opts.load, res[0].jobs, res[0].skipped,
             gpus, res[0].window_hours);
    if (o->json) {
        json_t *out = n == 1 ? replay_json(&res[0]) : json_object(), *arr = json_array();

        for (int i = 0; n > 1 && i < n; i++)
            json_array_append_new(arr, replay_json(&res[i]));
        if (n > 1)
            json_object_set_new(out, "policies", arr);
        else
            json_decref(arr);
        json_dumpf(out, stdout, JSON_INDENT(0) | JSON_REAL_PRECISION(6));
        fputc('\n', stdout);
        json_decref(out);
    } else {
        replay_table(stdout, res, n, title);
    }
    if (o->csv && (err = replay_csv(o->csv, res, n)) < 0) {
        fprintf(stderr, "gpool sim replay: %s: %s\n", o->csv, strerror(-err));
        rc = CLI_EXIT_FAIL;
    }
    if (o->plot && (err = replay_svg(o->plot, res, n, title, gpus)) < 0) {
        fprintf(stderr, "gpool sim replay: %s: %s\n", o->plot, strerror(-err));
        rc = CLI_EXIT_FAIL;
    }
    free(jb);
    return rc;
}

int cli_sim_replay(int argc, char **argv)
{
    struct replay_cli o = {.nodes = DEFAULT_NODES, .usage = DEFAULT_USAGE};
    struct run runs[REPLAY_POLICY_COUNT];
    struct inputs in;
    enum replay_policy one;
    int n = 0, rc;

    replay_opts_default(&o.opts);
    optind = 1;
    if ((rc = parse_opts(argc, argv, &o)) != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (strcmp(o.policy, "all") != 0 && replay_policy_parse(o.policy, &one) < 0)
        return bad_usage("--policy: unknown policy '%s' (static, slurm-like, kai-like, gpool, "
                         "all)", o.policy);
    if (load_inputs(&o, &in) < 0)
        return CLI_EXIT_USAGE;
    for (int p = 0; p < REPLAY_POLICY_COUNT; p++) {
        if (strcmp(o.policy, "all") != 0 && p != (int)one)
            continue;
        runs[n] = (struct run){.in = &in, .opts = o.opts};
        runs[n++].opts.policy = (enum replay_policy)p;
    }
    rc = run_all(runs, n);
    if (rc == 0)
        rc = report(&o, &in, runs, n);
    for (int i = 0; i < n; i++)
        replay_result_fini(&runs[i].res);
    free_inputs(&in);
    return rc;
}
