/*
 * `gpool region`: the regions the agent shares with libgpool-cuda, one per GPU, seen and set by
 * hand: what each job may use (cap, share, limit) and what its processes use.  The agent writes
 * them for the jobs it runs; this command is for operators and tests.
 */
#include <dirent.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "cli/cli.h"
#include "common/units.h"
#include "cuda/region.h"

static const char usage_text[] =
    "usage: gpool region init [--dir DIR] [--context-memory SIZE]\n"
    "       gpool region set --gpu UUID|INDEX --job ID [--memory SIZE] [--share F] [--limit F]\n"
    "                        [--borrower yes|no]\n"
    "       gpool region remove --gpu UUID|INDEX --job ID\n"
    "       gpool region show [-o json]\n"
    "\n"
    "The shared regions between the agent and libgpool-cuda, one file per GPU in DIR\n"
    "($GPOOL_REGION_DIR, default /var/lib/gpool/agent/regions).\n"
    "  init     create a region for every GPU that NVML sees\n"
    "  set      give a job a memory cap (--memory, default none), a compute share (--share,\n"
    "           0 < F <= 1, default 1) and a limit (--limit, share <= F <= 1, default 1);\n"
    "           running processes take a change at their next call; --borrower yes: the job\n"
    "           runs on capacity lent by idle jobs (it stops launching while another job is\n"
    "           active, and is swapped out when a lender needs its memory)\n"
    "  remove   take a job off a GPU\n"
    "  show     each GPU's jobs and processes: caps, shares, memory and kernel time used\n";

struct region_args {
    const char *dir, *gpu, *job, *output;
    uint64_t memory, context;
    double share, limit;
    bool has_context;
    int borrower; /* -1: unchanged */
};

static int parse(const char *cmd, int argc, char **argv, struct region_args *a)
{
    static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
                                         {"gpu", required_argument, NULL, 'g'},
                                         {"job", required_argument, NULL, 'j'},
                                         {"memory", required_argument, NULL, 'm'},
                                         {"share", required_argument, NULL, 's'},
                                         {"limit", required_argument, NULL, 'l'},
                                         {"context-memory", required_argument, NULL, 'c'},
                                         {"borrower", required_argument, NULL, 'b'},
                                         {"output", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    char *end;
    int c;

    a->dir = getenv("GPOOL_REGION_DIR");
    if (a->dir == NULL || a->dir[0] == '\0')
        a->dir = "/var/lib/gpool/agent/regions";
    a->share = a->limit = 1.0;
    a->borrower = -1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': a->dir = optarg; break;
        case 'g': a->gpu = optarg; break;
        case 'j': a->job = optarg; break;
        case 'o': a->output = optarg; break;
        case 'm':
            if (units_parse_bytes(optarg, &a->memory) != 0 || a->memory == 0)
                return cli_usage_error(cmd, "--memory %s: expected a size such as 20GiB", optarg);
            break;
        case 'c':
            if (units_parse_bytes(optarg, &a->context) != 0)
                return cli_usage_error(cmd, "--context-memory %s: expected a size", optarg);
            a->has_context = true;
            break;
        case 's':
        case 'l': {
            double v = strtod(optarg, &end);

            if (*end != '\0' || end == optarg || !(v > 0 && v <= 1))
                return cli_usage_error(cmd, "--%s %s: expected a fraction in (0, 1]",
                                       c == 's' ? "share" : "limit", optarg);
            *(c == 's' ? &a->share : &a->limit) = v;
            break;
        }
        case 'b':
            if (strcmp(optarg, "yes") != 0 && strcmp(optarg, "no") != 0)
                return cli_usage_error(cmd, "--borrower %s: expected yes or no", optarg);
            a->borrower = strcmp(optarg, "yes") == 0;
            break;
        case 'h': fputs(usage_text, stdout); return -1;
        default: return CLI_EXIT_USAGE;
        }
    }
    if (optind != argc)
        return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (a->output != NULL && strcmp(a->output, "json") != 0)
        return cli_usage_error(cmd, "-o %s: the only output format is json", a->output);
    return 0;
}

/* The UUID of --gpu: given as is, or the index of a GPU NVML sees. */
static int gpu_uuid(const char *cmd, const char *gpu, char *out, size_t len)
{
    char err[256] = "";
    json_t *node, *g;
    char *end;
    long i = strtol(gpu, &end, 10);

    if (strncmp(gpu, "GPU-", 4) == 0) {
        snprintf(out, len, "%s", gpu);
        return 0;
    }
    if (*end != '\0' || end == gpu || i < 0)
        return cli_usage_error(cmd, "--gpu %s: expected a GPU UUID (GPU-...) or index", gpu);
    if ((node = agent_discover("node", err, sizeof(err))) == NULL ||
        (g = json_array_get(json_object_get(node, "gpus"), (size_t)i)) == NULL) {
        json_decref(node);
        return cli_usage_error(cmd, "--gpu %s: no such GPU %s", gpu, err);
    }
    snprintf(out, len, "%s", json_string_value(json_object_get(g, "uuid")));
    json_decref(node);
    return 0;
}

static int init_cmd(struct region_args *a)
{
    char err[512] = "";
    json_t *node = agent_discover("node", err, sizeof(err)), *g;
    size_t i;
    int n = 0;

    if (node == NULL) {
        fprintf(stderr, "gpool region init: %s\n", err);
        return CLI_EXIT_FAIL;
    }
    json_array_foreach(json_object_get(node, "gpus"), i, g) {
        struct gpr_region *r = gpr_create(
            a->dir, json_string_value(json_object_get(g, "uuid")),
            (uint64_t)json_integer_value(json_object_get(g, "memory_bytes")), err, sizeof(err));

        if (r == NULL) {
            fprintf(stderr, "gpool region init: %s\n", err);
            json_decref(node);
            return CLI_EXIT_FAIL;
        }
        if (a->has_context)
            atomic_store(&r->context_bytes, a->context);
        printf("%s/%s\n", a->dir, r->uuid);
        gpr_close(r);
        n++;
    }
    json_decref(node);
    if (n == 0)
        fprintf(stderr, "gpool region init: NVML sees no GPU\n");
    return n == 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

static struct gpr_region *open_gpu(const char *cmd, struct region_args *a)
{
    char uuid[GPR_UUID_MAX], path[4096], err[512];
    struct gpr_region *r;

    if (a->gpu == NULL || a->job == NULL) {
        cli_usage_error(cmd, "--gpu and --job are required");
        return NULL;
    }
    if (gpu_uuid(cmd, a->gpu, uuid, sizeof(uuid)) != 0)
        return NULL;
    if (gpr_path(path, sizeof(path), a->dir, uuid) != 0 ||
        (r = gpr_open(path, err, sizeof(err))) == NULL) {
        cli_usage_error(cmd, "%s (run 'gpool region init' first)", err);
        return NULL;
    }
    return r;
}

static int set_cmd(struct region_args *a)
{
    unsigned share = (unsigned)(a->share * 1000 + 0.5), limit = (unsigned)(a->limit * 1000 + 0.5);
    struct gpr_region *r;
    int rc = CLI_EXIT_OK;

    if (a->job != NULL && strlen(a->job) >= GPR_ID_MAX)
        return cli_usage_error("region set", "--job: the id is too long");
    if (limit < share)
        return cli_usage_error("region set", "--limit must be at least --share");
    if ((r = open_gpu("region set", a)) == NULL)
        return CLI_EXIT_USAGE;
    if (gpr_job_set(r, a->job, a->memory, share, limit) < 0) {
        fprintf(stderr, "gpool region set: the job table is full\n");
        rc = CLI_EXIT_FAIL;
    } else if (a->borrower >= 0) {
        gpr_job_set_borrower(r, a->job, a->borrower == 1);
    }
    gpr_close(r);
    return rc;
}

static int remove_cmd(struct region_args *a)
{
    struct gpr_region *r = open_gpu("region remove", a);

    if (r == NULL)
        return CLI_EXIT_USAGE;
    if (gpr_job_find(r, a->job) < 0) {
        gpr_close(r);
        fprintf(stderr, "gpool region remove: no job %s on %s\n", a->job, a->gpu);
        return CLI_EXIT_FAIL;
    }
    gpr_job_remove(r, a->job);
    gpr_close(r);
    return CLI_EXIT_OK;
}

static json_t *describe(struct gpr_region *r)
{
    json_t *jobs = json_array(), *procs = json_array();
    int64_t now = gpr_now();

    for (int k = 0; k < GPR_JOBS; k++) {
        struct gpr_job *j = &r->jobs[k];

        if (!atomic_load(&j->used))
            continue;
        json_t *o = json_pack(
            "{s:s, s:I, s:f, s:f, s:I, s:I, s:I, s:b, s:I, s:b}", "job", j->id, "mem_cap",
            (json_int_t)atomic_load(&j->mem_cap), "share", atomic_load(&j->share_milli) / 1000.0,
            "limit", atomic_load(&j->limit_milli) / 1000.0, "mem_used",
            (json_int_t)gpr_job_mem(r, k), "busy_ns", (json_int_t)atomic_load(&j->busy_ns),
            "launches", (json_int_t)atomic_load(&j->launches), "active",
            atomic_load(&j->active_until) > now, "woke_at_ns", (json_int_t)atomic_load(&j->woke_at),
            "borrower", atomic_load(&j->borrower) != 0);

        if (atomic_load(&j->borrower)) {
            json_t *b = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "yielded_at_ns",
                                  (json_int_t)atomic_load(&j->yielded_at), "drained_at_ns",
                                  (json_int_t)atomic_load(&j->drained_at), "yields",
                                  (json_int_t)atomic_load(&j->yields), "reclaimed_at_ns",
                                  (json_int_t)atomic_load(&j->reclaimed_at), "reclaims",
                                  (json_int_t)atomic_load(&j->reclaims), "reclaimed_bytes",
                                  (json_int_t)atomic_load(&j->reclaim_bytes));

            json_object_update(o, b);
            json_decref(b);
        }
        json_array_append_new(jobs, o);
    }
    for (int i = 0; i < GPR_PROCS; i++) {
        struct gpr_proc *p = &r->procs[i];
        int job = atomic_load(&p->job);

        if (!gpr_proc_alive(p))
            continue;
        json_array_append_new(procs,
                              json_pack("{s:i, s:s, s:I, s:I, s:I, s:b, s:b}", "pid",
                                        (int)atomic_load(&p->pid), "job",
                                        job >= 0 && job < GPR_JOBS ? r->jobs[job].id : "",
                                        "mem_used", (json_int_t)atomic_load(&p->mem_used),
                                        "busy_ns", (json_int_t)atomic_load(&p->busy_ns), "launches",
                                        (json_int_t)atomic_load(&p->launches), "swapped_out",
                                        atomic_load(&p->swap_state) == GPR_SWAPPED_OUT, "reclaimed",
                                        atomic_load(&p->reclaimed) != 0));
    }
    return json_pack("{s:s, s:I, s:I, s:o, s:o}", "gpu", r->uuid, "mem_total",
                     (json_int_t)r->total_mem, "context_bytes",
                     (json_int_t)atomic_load(&r->context_bytes), "jobs", jobs, "processes",
                     procs);
}

static void print_table(json_t *all)
{
    size_t i, k;
    json_t *g, *x;

    json_array_foreach(all, i, g) {
        printf("%s  %.1f GiB\n", json_string_value(json_object_get(g, "gpu")),
               json_integer_value(json_object_get(g, "mem_total")) / 1073741824.0);
        printf("  %-20s %10s %6s %6s %10s %10s %-6s %s\n", "JOB", "CAP", "SHARE", "LIMIT", "USED",
               "BUSY", "ACTIVE", "BORROWER");
        json_array_foreach(json_object_get(g, "jobs"), k, x) {
            json_int_t cap = json_integer_value(json_object_get(x, "mem_cap"));
            char capbuf[32];

            if (cap == 0)
                snprintf(capbuf, sizeof(capbuf), "-");
            else
                snprintf(capbuf, sizeof(capbuf), "%.2fG", cap / 1073741824.0);
            printf("  %-20s %10s %6.2f %6.2f %9.2fG %9.2fs %-6s %s\n",
                   json_string_value(json_object_get(x, "job")), capbuf,
                   json_real_value(json_object_get(x, "share")),
                   json_real_value(json_object_get(x, "limit")),
                   json_integer_value(json_object_get(x, "mem_used")) / 1073741824.0,
                   json_integer_value(json_object_get(x, "busy_ns")) / 1e9,
                   json_is_true(json_object_get(x, "active")) ? "yes" : "no",
                   json_is_true(json_object_get(x, "borrower")) ? "yes" : "no");
        }
    }
}

static int show_cmd(struct region_args *a)
{
    json_t *all = json_array();
    struct dirent *e;
    DIR *d = opendir(a->dir);

    if (d == NULL) {
        fprintf(stderr, "gpool region show: %s: no regions (run 'gpool region init')\n", a->dir);
        json_decref(all);
        return CLI_EXIT_FAIL;
    }
    while ((e = readdir(d)) != NULL) {
        char path[4096], err[512];
        struct gpr_region *r;

        if (strncmp(e->d_name, "GPU-", 4) != 0 || strstr(e->d_name, ".tmp") != NULL ||
            gpr_path(path, sizeof(path), a->dir, e->d_name) != 0 ||
            (r = gpr_open(path, err, sizeof(err))) == NULL)
            continue;
        json_array_append_new(all, describe(r));
        gpr_close(r);
    }
    closedir(d);
    if (a->output != NULL) {
        json_dumpf(all, stdout, JSON_INDENT(2));
        putchar('\n');
    } else {
        print_table(all);
    }
    json_decref(all);
    return CLI_EXIT_OK;
}

int cli_region(int argc, char **argv)
{
    struct region_args a = {0};
    const char *sub = argc > 1 ? argv[1] : NULL;
    int rc;

    if (sub == NULL || strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        fputs(usage_text, sub == NULL ? stderr : stdout);
        return sub == NULL ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if ((rc = parse("region", argc - 1, argv + 1, &a)) != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (strcmp(sub, "init") == 0)
        return init_cmd(&a);
    if (strcmp(sub, "set") == 0)
        return set_cmd(&a);
    if (strcmp(sub, "remove") == 0)
        return remove_cmd(&a);
    if (strcmp(sub, "show") == 0)
        return show_cmd(&a);
    return cli_usage_error("region", "unknown subcommand '%s' (init, set, remove, show)", sub);
}
