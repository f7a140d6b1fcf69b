/*
 * The commands people type against a server: submit, list, describe, cancel, logs, projects,
 * users, token, nodes, top, usage.  The server, token and CA come from GPOOL_SERVER, GPOOL_TOKEN
 * and GPOOL_CA, or from ~/.config/gpool/config ("server = URL", "token = TOKEN", "ca = FILE").
 * Tables for people, `-o json` for scripts.  Exit status: 0 done, 1 the server failed or cannot be
 * reached, 2 refused (bad arguments or input: nothing changed).
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/jobfile.h"
#include "common/http.h"
#include "common/log.h"

#define DEFAULT_SERVER "http://127.0.0.1:8470"

struct client {
    char server[512];
    char token[128];
    char ca[1024]; /* CA certificates (PEM) to trust for an https:// server */
    bool json;
};

static void config_line(struct client *c, char *line)
{
    char *eq = strchr(line, '='), *k = line, *v;

    if (eq == NULL || line[0] == '#')
        return;
    *eq = '\0';
    v = eq + 1;
    while (*k == ' ')
        k++;
    while (*v == ' ')
        v++;
    for (char *e = k + strlen(k); e > k && (e[-1] == ' ' || e[-1] == '\t'); *--e = '\0')
        ;
    v[strcspn(v, " \t\r\n")] = '\0';
    if (strcmp(k, "server") == 0 && c->server[0] == '\0')
        snprintf(c->server, sizeof(c->server), "%s", v);
    else if (strcmp(k, "token") == 0 && c->token[0] == '\0')
        snprintf(c->token, sizeof(c->token), "%s", v);
    else if (strcmp(k, "ca") == 0 && c->ca[0] == '\0')
        snprintf(c->ca, sizeof(c->ca), "%s", v);
}

static void client_init(struct client *c)
{
    const char *s = getenv("GPOOL_SERVER"), *t = getenv("GPOOL_TOKEN"), *ca = getenv("GPOOL_CA");
    const char *home = getenv("HOME");
    char path[1024], line[1024];
    FILE *f;

    memset(c, 0, sizeof(*c));
    if (s != NULL)
        snprintf(c->server, sizeof(c->server), "%s", s);
    if (t != NULL)
        snprintf(c->token, sizeof(c->token), "%s", t);
    if (ca != NULL)
        snprintf(c->ca, sizeof(c->ca), "%s", ca);
    snprintf(path, sizeof(path), "%s/.config/gpool/config", home ? home : ".");
    if ((f = fopen(path, "r")) != NULL) {
        while (fgets(line, sizeof(line), f))
            config_line(c, line);
        fclose(f);
    }
    if (c->server[0] == '\0')
        snprintf(c->server, sizeof(c->server), "%s", DEFAULT_SERVER);
    http_set_ca(c->ca[0] != '\0' ? c->ca : NULL);
}

/* Says what an error answer says; its exit status. */
static int refused(long status, json_t *answer)
{
    json_t *err = json_object_get(answer, "error");

    fprintf(stderr, "gpool: %s", json_string_value(json_object_get(err, "message"))
                                     ? json_string_value(json_object_get(err, "message"))
                                     : "the server answered an error");
    if (json_string_length(json_object_get(err, "field")) > 0)
        fprintf(stderr, " (field %s)", json_string_value(json_object_get(err, "field")));
    fprintf(stderr, " [HTTP %ld]\n", status);
    return status < 500 ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
}

/* Runs a request and turns an error answer into a message and an exit status. */
static int call(const struct client *c, const char *method, const char *path, json_t *body,
                json_t **out)
{
    long status = 0;
    char msg[512];
    int rc;

    if (http_json(c->server, c->token, method, path, body, 30, &status, out, msg,
                  sizeof(msg)) != 0) {
        fprintf(stderr, "gpool: %s\n", msg);
        return CLI_EXIT_FAIL;
    }
    if (status < 400)
        return CLI_EXIT_OK;
    rc = refused(status, *out);
    json_decref(*out);
    *out = NULL;
    return rc;
}

static void print_json(json_t *v)
{
    json_dumpf(v, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
}

static double num(json_t *o, const char *key);

/* ---- times ------------------------------------------------------------------------------- */

/* "90" (seconds), "90s", "2h", "1h30m", "1d": seconds.  0, or -1 when it is not a duration. */
static int parse_duration(const char *arg, int64_t *seconds)
{
    char *end;
    long long v = strtoll(arg, &end, 10);

    *seconds = v;
    if (end != arg && *end == '\0' && v >= 0)
        return 0;
    *seconds = 0;
    for (const char *p = arg; *p != '\0'; p = end + 1) {
        int64_t unit;

        v = strtoll(p, &end, 10);
        if (end == p || v < 0 || v > 100000000)
            return -1;
        unit = *end == 's' ? 1 : *end == 'm' ? 60 : *end == 'h' ? 3600 : *end == 'd' ? 86400 : 0;
        if (unit == 0)
            return -1;
        *seconds += v * unit;
    }
    return *arg != '\0' ? 0 : -1;
}

/* WHEN: a duration ago ("1d", "2h") or a local date "YYYY-MM-DD[THH:MM[:SS]]"; epoch ms. */
static int parse_when(const char *arg, int64_t *ms)
{
    struct tm tm = {0};
    int64_t ago;
    const char *end;

    if (parse_duration(arg, &ago) == 0) {
        *ms = ((int64_t)time(NULL) - ago) * 1000;
        return 0;
    }
    if ((end = strptime(arg, "%Y-%m-%d", &tm)) == NULL)
        return -1;
    if (*end == 'T' || *end == ' ') {
        const char *t = strptime(end + 1, "%H:%M", &tm);

        if (t != NULL && *t == ':')
            t = strptime(t + 1, "%S", &tm);
        end = t;
    }
    if (end == NULL || *end != '\0')
        return -1;
    tm.tm_isdst = -1;
    *ms = (int64_t)mktime(&tm) * 1000;
    return 0;
}

/* ---- submit ------------------------------------------------------------------------------ */

static int number_field(json_t *job, const char *key, const char *arg)
{
    char *end;
    double v = strtod(arg, &end);

    if (*arg == '\0' || *end != '\0') {
        fprintf(stderr, "gpool submit: --%s %s: not a number\n", key, arg);
        return -1;
    }
    json_object_set_new(job, key, v == (double)(json_int_t)v ? json_integer((json_int_t)v)
                                                            : json_real(v));
    return 0;
}

static int submit_flag(json_t *job, int opt, const char *arg)
{
    static const char *const keys[] = {['g'] = "gpu", ['G'] = "gpus", ['M'] = "gpu_memory",
                                       ['L'] = "gpu_limit", ['c'] = "cpu", ['m'] = "memory",
                                       ['r'] = "replicas", ['p'] = "project", ['P'] = "priority",
                                       ['n'] = "name", ['w'] = "workdir"};
    char *eq;

    switch (opt) {
    case 'g': case 'G': case 'L': case 'c': case 'r':
        return number_field(job, keys[opt], arg);
    case 'R':
        return number_field(job, "retries", arg);
    case 'W': {
        int64_t seconds;

        if (parse_duration(arg, &seconds) != 0) {
            fprintf(stderr, "gpool submit: --walltime %s: expected a duration such as 90m, 2h "
                            "or 1d12h\n", arg);
            return -1;
        }
        json_object_set_new(job, "walltime_seconds", json_integer(seconds));
        return 0;
    }
    case 'M': case 'm': case 'p': case 'P': case 'n': case 'w':
        json_object_set_new(job, keys[opt], json_string(arg));
        return 0;
    case 'e':
        if ((eq = strchr(arg, '=')) == NULL || eq == arg) {
            fprintf(stderr, "gpool submit: -e %s: expected KEY=VALUE\n", arg);
            return -1;
        }
        if (json_object_get(job, "env") == NULL)
            json_object_set_new(job, "env", json_object());
        *eq = '\0';
        json_object_set_new(json_object_get(job, "env"), arg, json_string(eq + 1));
        return 0;
    }
    return -1;
}

static int cmd_submit(const struct client *c, int argc, char **argv)
{
    static const struct option o[] = {
        {"gpu", 1, NULL, 'g'},      {"gpus", 1, NULL, 'G'},     {"gpu-memory", 1, NULL, 'M'},
        {"gpu-limit", 1, NULL, 'L'}, {"cpu", 1, NULL, 'c'},     {"memory", 1, NULL, 'm'},
        {"replicas", 1, NULL, 'r'}, {"project", 1, NULL, 'p'},  {"priority", 1, NULL, 'P'},
        {"name", 1, NULL, 'n'},     {"workdir", 1, NULL, 'w'},  {"file", 1, NULL, 'f'},
        {"output", 1, NULL, 'o'},   {"walltime", 1, NULL, 'W'}, {"retries", 1, NULL, 'R'},
        {NULL, 0, NULL, 0}};
    json_t *job = json_object(), *cmd = json_array(), *out;
    const char *file = NULL;
    int opt, rc;

    while ((opt = getopt_long(argc, argv, "+e:f:o:", o, NULL)) != -1) {
        if (opt == 'f') {
            file = optarg;
        } else if (opt == 'o') {
            continue;
        } else if (opt == '?' || submit_flag(job, opt, optarg) != 0) {
            json_decref(job);
            json_decref(cmd);
            return CLI_EXIT_USAGE;
        }
    }
    if (file != NULL) {
        char err[512];

        json_decref(job);
        json_decref(cmd);
        if ((job = jobfile_load(file, err, sizeof(err))) == NULL) {
            fprintf(stderr, "gpool submit: %s\n", err);
            return CLI_EXIT_USAGE;
        }
    } else {
        for (int i = optind; i < argc; i++)
            json_array_append_new(cmd, json_string(argv[i]));
        if (json_array_size(cmd) > 0)
            json_object_set_new(job, "command", cmd);
        else
            json_decref(cmd);
    }
    rc = call(c, "POST", "/api/v1/jobs", job, &out);
    json_decref(job);
    if (rc == CLI_EXIT_OK)
        printf("%lld\n", (long long)json_integer_value(json_object_get(out, "id")));
    json_decref(out);
    return rc;
}

/* ---- list, describe, cancel -------------------------------------------------------------- */

static void age(int64_t ms, char *buf, size_t len)
{
    int64_t s = (int64_t)time(NULL) - ms / 1000;

    if (s < 120)
        snprintf(buf, len, "%llds", (long long)s);
    else if (s < 7200)
        snprintf(buf, len, "%lldm", (long long)s / 60);
    else
        snprintf(buf, len, "%lldh", (long long)s / 3600);
}

/* "1h02m", "45s", or "-" for a job that never ran: how long it has run (its last run). */
static void run_time(json_t *j, char *buf, size_t len)
{
    int64_t start = json_integer_value(json_object_get(j, "started_ms"));
    int64_t end = json_integer_value(json_object_get(j, "finished_ms")), s;
    const char *state = json_string_value(json_object_get(j, "state"));

    if (start == 0 || (end == 0 && strcmp(state, "pending") == 0)) {
        snprintf(buf, len, "-");
        return;
    }
    s = ((end > 0 ? end : (int64_t)time(NULL) * 1000) - start) / 1000;
    if (s < 3600)
        snprintf(buf, len, "%lldm%02llds", (long long)s / 60, (long long)s % 60);
    else
        snprintf(buf, len, "%lldh%02lldm", (long long)s / 3600, (long long)s / 60 % 60);
}

static void job_row(json_t *j)
{
    char a[32], run[32];

    age(json_integer_value(json_object_get(j, "submitted_ms")), a, sizeof(a));
    run_time(j, run, sizeof(run));
    printf("%-8lld %-20.20s %-14.14s %-10.10s %-10s %5s %8s %5lld  %s\n",
           (long long)json_integer_value(json_object_get(j, "id")),
           json_string_value(json_object_get(j, "name")),
           json_string_value(json_object_get(j, "project")),
           json_string_value(json_object_get(j, "user")),
           json_string_value(json_object_get(j, "state")), a, run,
           (long long)json_integer_value(json_object_get(j, "attempts")),
           json_string_value(json_object_get(j, "reason")));
}

/* "since=MS&" for --since WHEN and --until WHEN; -1 when WHEN is not a time. */
static int when_arg(const char *cmd, const char *key, const char *arg, char *path, size_t len)
{
    int64_t ms;

    if (parse_when(arg, &ms) != 0) {
        fprintf(stderr, "gpool %s: --%s %s: expected a duration ago (2h, 1d) or a date "
                        "(2025-05-01, 2025-05-01T12:00)\n", cmd, key, arg);
        return -1;
    }
    snprintf(path + strlen(path), len - strlen(path), "%s=%lld&", key, (long long)ms);
    return 0;
}

static int cmd_list(const struct client *c, int argc, char **argv)
{
    static const struct option o[] = {{"state", 1, NULL, 's'}, {"project", 1, NULL, 'p'},
                                      {"limit", 1, NULL, 'l'}, {"output", 1, NULL, 'o'},
                                      {"since", 1, NULL, 'S'}, {"until", 1, NULL, 'U'},
                                      {NULL, 0, NULL, 0}};
    char path[512] = "/api/v1/jobs?", *e;
    json_t *out, *arr;
    int opt, rc;

    while ((opt = getopt_long(argc, argv, "o:", o, NULL)) != -1) {
        if (opt == '?')
            return CLI_EXIT_USAGE;
        if (opt == 'o')
            continue;
        if (opt == 'S' || opt == 'U') {
            if (when_arg("list", opt == 'S' ? "since" : "until", optarg, path, sizeof(path)) != 0)
                return CLI_EXIT_USAGE;
            continue;
        }
        e = http_escape(optarg);
        snprintf(path + strlen(path), sizeof(path) - strlen(path), "%s=%s&",
                 opt == 's' ? "state" : opt == 'p' ? "project" : "limit", e);
        free(e);
    }
    if ((rc = call(c, "GET", path, NULL, &out)) != CLI_EXIT_OK)
        return rc;
    if (c->json) {
        print_json(out);
    } else {
        size_t i;
        json_t *j;

        printf("%-8s %-20s %-14s %-10s %-10s %5s %8s %5s  %s\n", "ID", "NAME", "PROJECT", "USER",
               "STATE", "AGE", "RUN", "TRIES", "REASON");
        arr = json_object_get(out, "jobs");
        json_array_foreach(arr, i, j)
            job_row(j);
    }
    json_decref(out);
    return CLI_EXIT_OK;
}

/* gpool usage [--since WHEN] [--until WHEN] [--by project|user]: GPU-hours of the period. */
static int cmd_usage(const struct client *c, int argc, char **argv)
{
    static const struct option o[] = {{"since", 1, NULL, 'S'}, {"until", 1, NULL, 'U'},
                                      {"by", 1, NULL, 'b'},    {"output", 1, NULL, 'o'},
                                      {NULL, 0, NULL, 0}};
    char path[512] = "/api/v1/usage?", *e;
    const char *by = "project";
    json_t *out, *row;
    size_t i;
    int opt, rc;

    while ((opt = getopt_long(argc, argv, "o:", o, NULL)) != -1) {
        if (opt == '?')
            return CLI_EXIT_USAGE;
        if ((opt == 'S' || opt == 'U') &&
            when_arg("usage", opt == 'S' ? "since" : "until", optarg, path, sizeof(path)) != 0)
            return CLI_EXIT_USAGE;
        if (opt == 'b')
            by = optarg;
    }
    if (optind != argc)
        return cli_usage_error("usage", "unexpected argument '%s'", argv[optind]);
    e = http_escape(by);
    snprintf(path + strlen(path), sizeof(path) - strlen(path), "by=%s", e);
    free(e);
    if ((rc = call(c, "GET", path, NULL, &out)) != CLI_EXIT_OK)
        return rc;
    if (c->json) {
        print_json(out);
        json_decref(out);
        return CLI_EXIT_OK;
    }
    by = json_string_value(json_object_get(out, "by"));
    printf("%-20s %14s %14s %14s %6s\n", strcmp(by, "user") == 0 ? "USER" : "PROJECT",
           "ALLOC GPU-H", "USED GPU-H", "MEASURED GPU-H", "JOBS");
    json_array_foreach(json_object_get(out, "rows"), i, row)
        printf("%-20.20s %14.3f %14.3f %14.3f %6lld\n",
               json_string_value(json_object_get(row, by)), num(row, "allocated_gpu_hours"),
               num(row, "used_gpu_hours"), num(row, "measured_gpu_hours"),
               (long long)json_integer_value(json_object_get(row, "jobs")));
    json_decref(out);
    return CLI_EXIT_OK;
}

static int job_path(const char *arg, const char *suffix, char *path, size_t len)
{
    char *end;
    long long id = strtoll(arg ? arg : "", &end, 10);

    if (arg == NULL || *arg == '\0' || *end != '\0' || id <= 0) {
        fprintf(stderr, "gpool: expected a job id, got '%s'\n", arg ? arg : "");
        return -1;
    }
    snprintf(path, len, "/api/v1/jobs/%lld%s", id, suffix);
    return 0;
}

static void print_job(const struct client *c, json_t *job)
{
    const char *key;
    json_t *v;

    if (c->json) {
        print_json(job);
        return;
    }
    json_object_foreach(job, key, v) {
        char *text = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

        printf("%-13s %s\n", key, text ? text : json_string_value(v));
        free(text);
    }
    /* Idle: since when, and for how long, as a person reads it. */
    if ((v = json_object_get(job, "idle_since_ms")) != NULL) {
        time_t t = (time_t)(json_integer_value(v) / 1000);
        char when[32], ago[32];
        struct tm tm;

        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
        age(json_integer_value(v), ago, sizeof(ago));
        printf("%-13s since %s (%s)\n", "idle", when, ago);
    }
}

/* describe, or an action on the job (cancel, suspend, resume: "/cancel"...), which shows it. */
static int cmd_describe(const struct client *c, int argc, char **argv, const char *action)
{
    char path[128];
    json_t *out;
    int rc;

    const char *id = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0)
            i++;
        else if (id == NULL)
            id = argv[i];
    }
    if (job_path(id, action, path, sizeof(path)) != 0)
        return CLI_EXIT_USAGE;
    if ((rc = call(c, *action ? "POST" : "GET", path, NULL, &out)) != CLI_EXIT_OK)
        return rc;
    print_job(c, out);
    json_decref(out);
    return CLI_EXIT_OK;
}

/* gpool swap out|in JOB: the job's agent moves its GPU memory to host memory, or back. */
static int cmd_swap(const struct client *c, int argc, char **argv)
{
    char path[128];
    json_t *out, *body;
    int rc;

    if (argc < 3 || (strcmp(argv[1], "out") != 0 && strcmp(argv[1], "in") != 0))
        return cli_usage_error("swap", "expected 'swap out JOB' or 'swap in JOB' (or --pid PID "
                                       "on the node)");
    if (job_path(argv[2], "/swap", path, sizeof(path)) != 0)
        return CLI_EXIT_USAGE;
    body = json_pack("{s:s}", "to", argv[1]);
    rc = call(c, "POST", path, body, &out);
    json_decref(body);
    if (rc != CLI_EXIT_OK)
        return rc;
    print_job(c, out);
    json_decref(out);
    return CLI_EXIT_OK;
}

/* ---- logs -------------------------------------------------------------------------------- */

static int64_t header_int(const struct http_answer *a, const char *name)
{
    char v[32];

    return http_answer_header(a, name, v, sizeof(v)) ? strtoll(v, NULL, 10) : -1;
}

/* Prints one piece of the log from *offset; 1 when there is more to read at once, 0 when there
 * is nothing new now, 2 when the log is whole and printed, or -exit status. */
static int logs_piece(const struct client *c, const char *base, const char *stream,
                      int64_t *offset)
{
    char path[256], err[512], v[16];
    struct http_answer a;
    int64_t next, size;
    bool whole;

    snprintf(path, sizeof(path), "%s?stream=%s&offset=%lld", base, stream, (long long)*offset);
    if (http_raw(c->server, c->token, "GET", path, NULL, 0, NULL, 30, &a, err, sizeof(err)) != 0) {
        fprintf(stderr, "gpool: %s\n", err);
        return -CLI_EXIT_FAIL;
    }
    if (a.status >= 400) {
        json_t *answer = json_loadb(a.body ? a.body : "", a.len, 0, NULL);
        int rc = refused(a.status, answer);

        json_decref(answer);
        http_answer_fini(&a);
        return -rc;
    }
    fwrite(a.body ? a.body : "", 1, a.len, stdout);
    fflush(stdout);
    next = header_int(&a, "Gpool-Next-Offset");
    size = header_int(&a, "Gpool-Log-Size");
    whole = http_answer_header(&a, "Gpool-Log-Complete", v, sizeof(v)) && strcmp(v, "true") == 0;
    http_answer_fini(&a);
    if (next < *offset) {
        fprintf(stderr, "gpool: the server's answer has no Gpool-Next-Offset\n");
        return -CLI_EXIT_FAIL;
    }
    *offset = next;
    return next < size ? 1 : whole ? 2 : 0;
}

static int cmd_logs(const struct client *c, int argc, char **argv)
{
    static const struct option o[] = {{"stderr", 0, NULL, 'e'}, {"follow", 0, NULL, 'f'},
                                      {NULL, 0, NULL, 0}};
    const char *stream = "stdout";
    bool follow = false;
    char base[128];
    int64_t offset = 0;
    int opt, rc;

    while ((opt = getopt_long(argc, argv, "f", o, NULL)) != -1) {
        if (opt == '?')
            return CLI_EXIT_USAGE;
        if (opt == 'e')
            stream = "stderr";
        else
            follow = true;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "usage: gpool logs JOB [--stderr] [-f]\n");
        return CLI_EXIT_USAGE;
    }
    if (job_path(argv[optind], "/logs", base, sizeof(base)) != 0)
        return CLI_EXIT_USAGE;
    /* Following, a log is read again each second until the job has ended and all of it came. */
    while ((rc = logs_piece(c, base, stream, &offset)) == 1 || (rc == 0 && follow)) {
        if (rc == 0)
            sleep(1);
    }
    return rc < 0 ? -rc : CLI_EXIT_OK;
}

/* ---- nodes and top ----------------------------------------------------------------------- */

static double num(json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

/* "2 x H100, 1 x A100": a node's GPUs by model. */
static void gpu_models(json_t *gpus, char *buf, size_t len)
{
    size_t n = 0, i, k;
    json_t *g, *h;

    buf[0] = '\0';
    json_array_foreach(gpus, i, g) {
        const char *model = json_string_value(json_object_get(g, "model"));
        int count = 0;
        bool seen = false;

        json_array_foreach(gpus, k, h) {
            bool same = strcmp(json_string_value(json_object_get(h, "model")), model) == 0;

            seen |= same && k < i;
            count += same;
        }
        if (!seen)
            n += (size_t)snprintf(buf + n, len > n ? len - n : 0, "%s%d x %s", n ? ", " : "",
                                  count, model);
    }
    if (n == 0)
        snprintf(buf, len, "-");
}

static void node_row(json_t *node)
{
    char state[64], models[256], alloc[32], beat[32];
    json_t *gpus = json_object_get(node, "gpus");

    snprintf(state, sizeof(state), "%s%s", json_string_value(json_object_get(node, "state")),
             json_is_false(json_object_get(node, "alive")) ? ",silent" : "");
    gpu_models(gpus, models, sizeof(models));
    snprintf(alloc, sizeof(alloc), "%.2f/%zu", num(node, "allocated_gpus"),
             json_array_size(gpus));
    snprintf(beat, sizeof(beat), "%.0fs ago", num(node, "heartbeat_age_s"));
    printf("%-20.20s %-16s %-36.36s %10s  %s\n", json_string_value(json_object_get(node, "name")),
           state, models, alloc, beat);
}

static void local_time(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms == 0)
        snprintf(buf, len, "never");
    else
        strftime(buf, len, "%Y-%m-%d %H:%M", localtime_r(&t, &tm));
}

/* nodes join-token create [--expires DURATION] | list | revoke ID (admin). */
static int cmd_join_token(const struct client *c, int argc, char **argv)
{
    static const char use[] =
        "usage: gpool nodes join-token create [--expires DURATION] | list [-o json] | revoke ID\n";
    char path[128], created[32], expires[32];
    json_t *out, *t, *body = NULL;
    size_t i;
    int rc;

    if (argc >= 2 && strcmp(argv[1], "create") == 0 && (argc == 2 || argc == 4)) {
        int64_t seconds = 0;

        if (argc == 4 && (strcmp(argv[2], "--expires") != 0 ||
                          parse_duration(argv[3], &seconds) != 0 || seconds <= 0)) {
            fprintf(stderr,
                    "gpool nodes join-token create: --expires %s: expected a duration "
                    "such as 1h or 7d\n",
                    argc == 4 ? argv[3] : "");
            return CLI_EXIT_USAGE;
        }
        body = json_pack("{s:I}", "expires_in_seconds", (json_int_t)seconds);
        rc = call(c, "POST", "/api/v1/join-tokens", body, &out);
        json_decref(body);
        if (rc == CLI_EXIT_OK)
            printf("%s\n", json_string_value(json_object_get(out, "token")));
        json_decref(out);
        return rc;
    }
    if (argc == 3 && strcmp(argv[1], "revoke") == 0) {
        char *end;
        long long id = strtoll(argv[2], &end, 10);

        if (*argv[2] == '\0' || *end != '\0' || id <= 0) {
            fprintf(stderr, "gpool nodes join-token revoke: '%s' is not a join token's ID\n",
                    argv[2]);
            return CLI_EXIT_USAGE;
        }
        snprintf(path, sizeof(path), "/api/v1/join-tokens/%lld", id);
        if ((rc = call(c, "DELETE", path, NULL, &out)) == CLI_EXIT_OK)
            printf("join token %lld revoked\n", id);
        json_decref(out);
        return rc;
    }
    if (argc < 2 || strcmp(argv[1], "list") != 0 ||
        !(argc == 2 || (argc == 4 && strcmp(argv[2], "-o") == 0))) {
        fputs(use, stderr);
        return CLI_EXIT_USAGE;
    }
    if ((rc = call(c, "GET", "/api/v1/join-tokens", NULL, &out)) != CLI_EXIT_OK)
        return rc;
    if (c->json) {
        print_json(out);
        json_decref(out);
        return CLI_EXIT_OK;
    }
    printf("%-6s %-12s %-17s %-17s %-8s %s\n", "ID", "CREATED BY", "CREATED", "EXPIRES", "STATE",
           "JOINS");
    json_array_foreach(json_object_get(out, "join_tokens"), i, t)
    {
        local_time(json_integer_value(json_object_get(t, "created_ms")), created, sizeof(created));
        local_time(json_integer_value(json_object_get(t, "expires_ms")), expires, sizeof(expires));
        printf("%-6lld %-12.12s %-17s %-17s %-8s %lld\n",
               (long long)json_integer_value(json_object_get(t, "id")),
               json_string_value(json_object_get(t, "created_by")), created, expires,
               json_is_true(json_object_get(t, "revoked"))   ? "revoked"
               : json_is_true(json_object_get(t, "expired")) ? "expired"
                                                             : "active",
               (long long)json_integer_value(json_object_get(t, "joins")));
    }
    json_decref(out);
    return CLI_EXIT_OK;
}

static int cmd_nodes(const struct client *c, int argc, char **argv)
{
    char path[256];
    json_t *out;
    size_t i;
    json_t *n;
    int rc;

    if (argc >= 2 && strcmp(argv[1], "join-token") == 0)
        return cmd_join_token(c, argc - 1, argv + 1);
    if (argc == 3 && (strcmp(argv[1], "cordon") == 0 || strcmp(argv[1], "drain") == 0 ||
                      strcmp(argv[1], "uncordon") == 0 || strcmp(argv[1], "revoke") == 0)) {
        char *name = http_escape(argv[2]);

        snprintf(path, sizeof(path), "/api/v1/nodes/%s/%s", name, argv[1]);
        free(name);
        if ((rc = call(c, "POST", path, NULL, &out)) == CLI_EXIT_OK)
            printf("%s %s\n", json_string_value(json_object_get(out, "name")),
                   json_object_get(out, "state") ? json_string_value(json_object_get(out, "state"))
                                                 : "revoked");
        json_decref(out);
        return rc;
    }
    if (argc != 1 && !(argc == 3 && strcmp(argv[1], "-o") == 0)) {
        fprintf(stderr, "usage: gpool nodes [-o json] | nodes cordon|drain|uncordon|revoke NAME\n"
                        "       gpool nodes join-token create [--expires DURATION] | list | "
                        "revoke ID\n");
        return CLI_EXIT_USAGE;
    }
    if ((rc = call(c, "GET", "/api/v1/nodes", NULL, &out)) != CLI_EXIT_OK)
        return rc;
    if (c->json) {
        print_json(out);
    } else {
        printf("%-20s %-16s %-36s %10s  %s\n", "NODE", "STATE", "GPUS", "ALLOCATED", "HEARTBEAT");
        json_array_foreach(json_object_get(out, "nodes"), i, n)
            node_row(n);
    }
    json_decref(out);
    return CLI_EXIT_OK;
}

static void gib(json_t *o, const char *key, char *buf, size_t len)
{
    if (json_object_get(o, key) == NULL)
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%.1f", num(o, key) / (1 << 30));
}

/* One GPU's line: what is allocated on it, what its node measured, and the jobs on it. */
static void gpu_row(json_t *node, json_t *g)
{
    char mem[64], alloc[16], total[16], used[16], busy[16] = "-", jobs[256] = "";
    size_t i, n = 0;
    json_t *id;

    gib(g, "memory_allocated_bytes", alloc, sizeof(alloc));
    gib(g, "memory_bytes", total, sizeof(total));
    snprintf(mem, sizeof(mem), "%s/%s GiB", alloc, total);
    gib(g, "memory_used_bytes", used, sizeof(used));
    if (json_object_get(g, "utilization_pct") != NULL)
        snprintf(busy, sizeof(busy), "%.0f%%", num(g, "utilization_pct"));
    /* Each job with what it is here: b borrowed (on capacity lent by idle jobs), s swapped out. */
    json_array_foreach(json_object_get(g, "shares"), i, id) {
        if (json_is_null(json_object_get(id, "job")))
            continue;
        n += (size_t)snprintf(jobs + n, n < sizeof(jobs) ? sizeof(jobs) - n : 0, "%s%lld%s",
                              n ? "," : "",
                              (long long)json_integer_value(json_object_get(id, "job")),
                              json_is_true(json_object_get(id, "swapped"))    ? "s"
                              : json_is_true(json_object_get(id, "borrowed")) ? "b"
                                                                              : "");
    }
    if (num(g, "other_jobs") > 0 && n < sizeof(jobs))
        snprintf(jobs + n, sizeof(jobs) - n, "%s+%.0f", n ? " " : "", num(g, "other_jobs"));
    printf("%-16.16s %3lld  %-30.30s %5.2f %6.2f %5.2f  %-18s %8s %5s  %s\n",
           json_string_value(json_object_get(node, "name")),
           (long long)json_integer_value(json_object_get(g, "index")),
           json_string_value(json_object_get(g, "model")), num(g, "allocated"),
           num(g, "borrowed"), num(g, "swapped"), mem, used, busy, jobs[0] ? jobs : "-");
}

static int top_once(const struct client *c, bool refresh)
{
    json_t *out, *node, *g;
    size_t i, k;
    int rc = call(c, "GET", "/api/v1/nodes", NULL, &out);

    if (rc != CLI_EXIT_OK)
        return rc;
    if (refresh) {
        time_t now = time(NULL);
        char when[32];

        strftime(when, sizeof(when), "%H:%M:%S", localtime(&now));
        printf("\033[H\033[2Jgpool top  %s  %s  (Ctrl-C to stop)\n\n", c->server, when);
    }
    printf("%-16s %3s  %-30s %5s %6s %5s  %-18s %8s %5s  %s\n", "NODE", "GPU", "MODEL", "ALLOC",
           "BORROW", "SWAP", "MEM ALLOC", "USED GiB", "BUSY", "JOBS");
    json_array_foreach(json_object_get(out, "nodes"), i, node)
        json_array_foreach(json_object_get(node, "gpus"), k, g)
            gpu_row(node, g);
    fflush(stdout);
    json_decref(out);
    return CLI_EXIT_OK;
}

static int cmd_top(const struct client *c, int argc, char **argv)
{
    bool once = argc == 2 && strcmp(argv[1], "--once") == 0;
    int rc;

    if (argc > 1 && !once) {
        fprintf(stderr, "usage: gpool top [--once]\n");
        return CLI_EXIT_USAGE;
    }
    /* Refreshed every second until Ctrl-C, which ends the program. */
    while ((rc = top_once(c, !once && isatty(STDOUT_FILENO))) == CLI_EXIT_OK && !once)
        sleep(1);
    return rc;
}

/* ---- projects, users, tokens ------------------------------------------------------------- */

static int cmd_projects(const struct client *c, int argc, char **argv)
{
    static const struct option o[] = {{"deserved", 1, NULL, 'd'}, {"limit", 1, NULL, 'l'},
                                      {"weight", 1, NULL, 'w'},   {"parent", 1, NULL, 'p'},
                                      {"lend", 1, NULL, 'L'},     {"borrow", 1, NULL, 'B'},
                                      {"output", 1, NULL, 'o'},   {NULL, 0, NULL, 0}};
    json_t *out, *body = json_object();
    char path[512];
    int opt, rc;

    if (argc >= 3 && strcmp(argv[1], "add-member") == 0 && argc == 4) {
        snprintf(path, sizeof(path), "/api/v1/projects/%s/members", argv[2]);
        json_object_set_new(body, "user", json_string(argv[3]));
        rc = call(c, "POST", path, body, &out);
    } else if (argc >= 3 && strcmp(argv[1], "set") == 0) {
        snprintf(path, sizeof(path), "/api/v1/projects/%s", argv[2]);
        optind = 3;
        while ((opt = getopt_long(argc, argv, "o:", o, NULL)) != -1) {
            if (opt == 'L' || opt == 'B') {
                bool yes = strcmp(optarg, "yes") == 0;

                if (!yes && strcmp(optarg, "no") != 0) {
                    fprintf(stderr, "gpool projects set: --%s %s: expected yes or no\n",
                            opt == 'L' ? "lend" : "borrow", optarg);
                    json_decref(body);
                    return CLI_EXIT_USAGE;
                }
                json_object_set_new(body, opt == 'L' ? "lend" : "borrow", json_boolean(yes));
                continue;
            }
            if (opt == '?' || (opt != 'o' && opt != 'p' &&
                               number_field(body, opt == 'd' ? "deserved_gpus"
                                                  : opt == 'l' ? "limit_gpus"
                                                               : "weight",
                                            optarg) != 0)) {
                json_decref(body);
                return CLI_EXIT_USAGE;
            }
            if (opt == 'p')
                json_object_set_new(body, "parent", json_string(optarg));
        }
        rc = call(c, "PUT", path, body, &out);
    } else if (argc == 1 || (argc == 3 && strcmp(argv[1], "-o") == 0)) {
        rc = call(c, "GET", "/api/v1/projects", NULL, &out);
        if (rc == CLI_EXIT_OK && !c->json) {
            size_t i;
            json_t *p;

            printf("%-20s %-14s %9s %9s %6s %5s %6s\n", "PROJECT", "PARENT", "DESERVED", "LIMIT",
                   "WEIGHT", "LEND", "BORROW");
            json_array_foreach(json_object_get(out, "projects"), i, p) {
                char limit[32] = "-";

                if (!json_is_null(json_object_get(p, "limit_gpus")))
                    snprintf(limit, sizeof(limit), "%.2f",
                             json_number_value(json_object_get(p, "limit_gpus")));
                printf("%-20s %-14s %9.2f %9s %6lld %5s %6s\n",
                       json_string_value(json_object_get(p, "name")),
                       json_string_value(json_object_get(p, "parent")),
                       json_number_value(json_object_get(p, "deserved_gpus")), limit,
                       (long long)json_integer_value(json_object_get(p, "weight")),
                       json_is_false(json_object_get(p, "lend")) ? "no" : "yes",
                       json_is_false(json_object_get(p, "borrow")) ? "no" : "yes");
            }
            json_decref(out);
            json_decref(body);
            return rc;
        }
    } else {
        fprintf(stderr, "usage: gpool projects [set NAME --deserved GPUS [--limit GPUS] "
                        "[--weight W] [--parent P] [--lend yes|no] [--borrow yes|no] | "
                        "add-member NAME USER]\n");
        json_decref(body);
        return CLI_EXIT_USAGE;
    }
    json_decref(body);
    if (rc == CLI_EXIT_OK && c->json)
        print_json(out);
    json_decref(out);
    return rc;
}

static int cmd_users(const struct client *c, int argc, char **argv)
{
    json_t *body, *out;
    int rc;

    if (argc < 5 || strcmp(argv[1], "add") != 0 || strcmp(argv[3], "--unix-user") != 0 ||
        (argc != 5 && (argc != 7 || strcmp(argv[5], "--role") != 0))) {
        fprintf(stderr, "usage: gpool users add NAME --unix-user ACCOUNT [--role admin|user|agent]\n");
        return CLI_EXIT_USAGE;
    }
    body = json_pack("{s:s, s:s, s:s}", "name", argv[2], "unix_user", argv[4], "role",
                     argc == 7 ? argv[6] : "user");
    rc = call(c, "POST", "/api/v1/users", body, &out);
    json_decref(body);
    if (rc == CLI_EXIT_OK)
        printf("%s\n", json_string_value(json_object_get(out, "name")));
    json_decref(out);
    return rc;
}

static int cmd_token(const struct client *c, int argc, char **argv)
{
    char path[256];
    json_t *out;
    int rc;

    if ((argc != 2 && argc != 4) || strcmp(argv[1], "create") != 0 ||
        (argc == 4 && strcmp(argv[2], "--user") != 0)) {
        fprintf(stderr, "usage: gpool token create [--user NAME]\n");
        return CLI_EXIT_USAGE;
    }
    if (argc == 4)
        snprintf(path, sizeof(path), "/api/v1/users/%s/tokens", argv[3]);
    else
        snprintf(path, sizeof(path), "/api/v1/tokens");
    if ((rc = call(c, "POST", path, NULL, &out)) == CLI_EXIT_OK)
        printf("%s\n", json_string_value(json_object_get(out, "token")));
    json_decref(out);
    return rc;
}

int cli_client(const char *cmd, int argc, char **argv)
{
    struct client c;
    int rc = CLI_EXIT_USAGE;

    client_init(&c);
    for (int i = 1; i + 1 < argc; i++)
        if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) &&
            strcmp(argv[i + 1], "json") == 0)
            c.json = true;
    if (!http_supports(c.server))
        return CLI_EXIT_CORE;
    optind = 1;
    if (strcmp(cmd, "submit") == 0)
        rc = cmd_submit(&c, argc, argv);
    else if (strcmp(cmd, "list") == 0)
        rc = cmd_list(&c, argc, argv);
    else if (strcmp(cmd, "describe") == 0)
        rc = cmd_describe(&c, argc, argv, "");
    else if (strcmp(cmd, "cancel") == 0 || strcmp(cmd, "suspend") == 0 ||
             strcmp(cmd, "resume") == 0) {
        char action[16];

        snprintf(action, sizeof(action), "/%s", cmd);
        rc = cmd_describe(&c, argc, argv, action);
    }
    else if (strcmp(cmd, "logs") == 0)
        rc = cmd_logs(&c, argc, argv);
    else if (strcmp(cmd, "nodes") == 0)
        rc = cmd_nodes(&c, argc, argv);
    else if (strcmp(cmd, "top") == 0)
        rc = cmd_top(&c, argc, argv);
    else if (strcmp(cmd, "projects") == 0)
        rc = cmd_projects(&c, argc, argv);
    else if (strcmp(cmd, "users") == 0)
        rc = cmd_users(&c, argc, argv);
    else if (strcmp(cmd, "token") == 0)
        rc = cmd_token(&c, argc, argv);
    else if (strcmp(cmd, "swap") == 0)
        rc = cmd_swap(&c, argc, argv);
    else if (strcmp(cmd, "usage") == 0)
        rc = cmd_usage(&c, argc, argv);
    return rc;
}
