/*
 * `gpool server` and `gpool server init`.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/log.h"
#include "common/units.h"
#include "server/api.h"
#include "server/auth.h"
#include "server/loop.h"
#include "server/store.h"

#define DEFAULT_LISTEN "127.0.0.1:8470"
#define DEFAULT_STORE "sqlite:gpool.db"
#define DEFAULT_LOG_LIMIT "64MiB"

static const char server_usage[] =
    "usage: gpool server [--listen ADDRESS:PORT] [--store STORE] [--node-timeout SECONDS]\n"
    "                    [--log-dir DIR] [--log-limit SIZE] [--min-runtime SECONDS]\n"
    "                    [--metrics-public] [--advertise URL]\n"
    "       gpool server --routes\n"
    "       gpool server init --admin NAME --unix-user ACCOUNT [--store STORE]\n"
    "\n"
    "Serve the gpool API under /api/v1 and the web dashboard at / (default " DEFAULT_LISTEN ",\n"
    "store " DEFAULT_STORE ").  STORE is sqlite:PATH, or postgresql://USER@HOST/DB (also\n"
    "postgres://; any libpq URI).  Several servers may share one PostgreSQL store: one leads,\n"
    "the others stand by (answering 503 with the leader's --advertise URL, default\n"
    "http://LISTEN) and one of them takes over when the leader is gone; a leader that finds a\n"
    "newer one, or loses the store, exits with status 1.  A node whose\n"
    "agent is silent for --node-timeout seconds (default 30) is gone: its jobs are queued again.\n"
    "Jobs' output is kept in --log-dir (default: PATH-logs beside a SQLite store, else\n"
    "gpool-logs), each of a job's\n"
    "stdout and stderr up to --log-limit (default " DEFAULT_LOG_LIMIT ").  A job that ran less\n"
    "than --min-runtime seconds (default 600) is never preempted to make room for another.\n"
    "/metrics (Prometheus) takes an admin's token, or none with --metrics-public.  --routes\n"
    "prints every endpoint of the API and exits.\n"
    "'init' creates the store and its first admin, and prints the admin's token once.\n"
    "Exit status: 0 on a clean stop, 1 when serving fails, 2 on bad arguments.\n";

struct serve_opts {
    const char *store, *listen, *log_dir, *advertise;
    int node_timeout;
    int min_runtime; /* seconds a job runs before it may be preempted or swapped out */
    int64_t log_limit;
    bool metrics_public;
};

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    stopping = sig;
}

static int server_init(const char *store_url, const char *admin, const char *unix_user)
{
    struct store_user u = {.role = STORE_ROLE_ADMIN};
    struct api_error e;
    struct store *s;
    char err[256], token[AUTH_TOKEN_LEN], hash[AUTH_HASH_LEN];
    int64_t n, id;

    if (admin == NULL || unix_user == NULL) {
        fprintf(stderr, "gpool server init: --admin NAME and --unix-user ACCOUNT are required\n");
        return CLI_EXIT_USAGE;
    }
    snprintf(u.name, sizeof(u.name), "%s", admin);
    snprintf(u.unix_user, sizeof(u.unix_user), "%s", unix_user);
    if (api_user_check(&u, &e) != 0) {
        fprintf(stderr, "gpool server init: %s\n", e.message);
        return CLI_EXIT_USAGE;
    }
    u.uid = getpwnam(unix_user)->pw_uid;
    if (store_open(store_url, &s, err, sizeof(err)) != 0) {
        fprintf(stderr, "gpool server init: %s\n", err);
        return CLI_EXIT_USAGE;
    }
    if (store_users_count(s, &n) != 0 || n > 0) {
        fprintf(stderr, "gpool server init: %s already has users; nothing changed\n", store_url);
        store_close(s);
        return CLI_EXIT_USAGE;
    }
    if (store_user_add(s, &u, &id, err, sizeof(err)) != 0 || auth_token_new(token) != 0) {
        fprintf(stderr, "gpool server init: %s\n", err);
        store_close(s);
        return CLI_EXIT_FAIL;
    }
    auth_token_hash(token, hash);
    store_token_add(s, id, hash);
    store_close(s);
    printf("%s\n", token);
    return CLI_EXIT_OK;
}

/* The log directory: --log-dir, or PATH-logs beside the store's PATH. */
static int open_logs(const struct serve_opts *o, struct logs *l)
{
    char dir[4096];
    int rc;

    if (o->log_dir != NULL)
        snprintf(dir, sizeof(dir), "%s", o->log_dir);
    else if (store_is_sqlite(o->store))
        snprintf(dir, sizeof(dir), "%s-logs", o->store + strlen("sqlite:"));
    else
        snprintf(dir, sizeof(dir), "gpool-logs");
    if ((rc = logs_init(l, dir, o->log_limit)) != 0)
        fprintf(stderr, "gpool server: log directory %s: %s\n", dir, strerror(-rc));
    return rc;
}

/* Sleeps up to ms, less when a signal stops the server. */
static void nap(int ms)
{
    for (int i = 0; i < ms / 100 && !stopping; i++)
        usleep(100000);
}

/*
 * Waits until this server leads the store, answering API requests as a standby meanwhile: 0
 * once it leads, 1 when a signal stopped it first.
 */
static int await_lead(struct api *a, const char *advertise)
{
    int rc, said = -1;

    while (!stopping && (rc = store_lead_try(a->store, advertise)) != 1) {
        if (rc != said)
            fprintf(stderr, "gpool server: standing by: %s\n",
                    rc == 0 ? "another server leads the store" : "the store cannot be reached");
        said = rc;
        nap(1000);
    }
    return stopping ? 1 : 0;
}

static int serve(const struct serve_opts *o)
{
    struct api a = {.node_timeout_ms = (int64_t)o->node_timeout * 1000,
                    .metrics_public = o->metrics_public};
    struct loop_hooks hooks = {.assignments_changed = api_assignments_changed,
                               .job_changed = api_job_changed,
                               .node_changed = api_node_changed,
                               .cycle_done = api_cycle_done,
                               .arg = &a};
    char err[256], advertise[300];
    bool started = false;
    int rc = CLI_EXIT_OK;

    if (o->advertise != NULL)
        snprintf(advertise, sizeof(advertise), "%s", o->advertise);
    else
        snprintf(advertise, sizeof(advertise), "http://%s", o->listen);
    if (store_open(o->store, &a.store, err, sizeof(err)) != 0) {
        fprintf(stderr, "gpool server: %s\n", err);
        return CLI_EXIT_USAGE;
    }
    if (open_logs(o, &a.logs) != 0) {
        store_close(a.store);
        return CLI_EXIT_USAGE;
    }
    api_init(&a);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    /* A server that does not lead at once serves as a standby until it does. */
    if (store_lead_try(a.store, advertise) != 1) {
        api_set_standby(&a, true);
        if (api_start(&a, o->listen, err, sizeof(err)) != 0)
            goto failed;
        started = true;
        fprintf(stderr, "gpool server: listening on %s as a standby, store %s\n", o->listen,
                o->store);
        if (await_lead(&a, advertise) != 0)
            goto stop;
    }
    if (loop_start(a.store, o->node_timeout, o->min_runtime, &hooks, &a.loop) != 0) {
        snprintf(err, sizeof(err), "the scheduler loop could not start");
        goto failed;
    }
    api_set_standby(&a, false);
    if (!started && api_start(&a, o->listen, err, sizeof(err)) != 0)
        goto failed;
    started = true;
    fprintf(stderr, "gpool server: listening on %s, store %s, logs in %s\n", o->listen, o->store,
            a.logs.dir);
    while (!stopping && store_leading(a.store))
        nap(200);
    if (!stopping) {
        fprintf(stderr, "gpool server: no longer leads the store (a newer leader took over, or "
                        "the store's connection was lost); stopping\n");
        rc = CLI_EXIT_FAIL;
    } else {
    stop:
        fprintf(stderr, "gpool server: stopping on signal %d\n", (int)stopping);
    }
    api_stop(&a);
    if (a.loop)
        loop_stop(a.loop);
    api_fini(&a);
    store_close(a.store);
    return rc;
failed:
    fprintf(stderr, "gpool server: %s\n", err);
    if (started)
        api_stop(&a);
    if (a.loop)
        loop_stop(a.loop);
    api_fini(&a);
    store_close(a.store);
    return CLI_EXIT_FAIL;
}

int cli_server(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'}, {"store", required_argument, NULL, 's'},
        {"admin", required_argument, NULL, 'a'},  {"unix-user", required_argument, NULL, 'u'},
        {"node-timeout", required_argument, NULL, 't'}, {"log-dir", required_argument, NULL, 'L'},
        {"log-limit", required_argument, NULL, 'S'}, {"min-runtime", required_argument, NULL, 'm'},
        {"metrics-public", no_argument, NULL, 'P'}, {"routes", no_argument, NULL, 'R'},
        {"advertise", required_argument, NULL, 'A'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    struct serve_opts o = {.store = DEFAULT_STORE, .listen = DEFAULT_LISTEN};
    const char *admin = NULL, *unix_user = NULL, *log_limit = DEFAULT_LOG_LIMIT;
    bool init = argc > 1 && strcmp(argv[1], "init") == 0;
    long node_timeout = 30, min_runtime = 600;
    uint64_t bytes;
    char *end;
    int c;

    if (init) {
        argc--;
        argv++;
    }
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'l': o.listen = optarg; break;
        case 's': o.store = optarg; break;
        case 'L': o.log_dir = optarg; break;
        case 'S': log_limit = optarg; break;
        case 'a': admin = optarg; break;
        case 'u': unix_user = optarg; break;
        case 't':
            node_timeout = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || node_timeout < 1 || node_timeout > 86400) {
                fprintf(stderr, "gpool server: --node-timeout %s: expected 1 to 86400 seconds\n",
                        optarg);
                return CLI_EXIT_USAGE;
            }
            break;
        case 'm':
            min_runtime = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || min_runtime < 0 || min_runtime > 86400 * 7) {
                fprintf(stderr, "gpool server: --min-runtime %s: expected 0 to 604800 seconds\n",
                        optarg);
                return CLI_EXIT_USAGE;
            }
            break;
        case 'P': o.metrics_public = true; break;
        case 'A': o.advertise = optarg; break;
        case 'R': api_routes_print(stdout); return CLI_EXIT_OK;
        case 'h': fputs(server_usage, stdout); return CLI_EXIT_OK;
        default: fputs(server_usage, stderr); return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "gpool server: unexpected argument '%s'\n", argv[optind]);
        return CLI_EXIT_USAGE;
    }
    if (units_parse_bytes(log_limit, &bytes) != 0 || bytes < 4096 || bytes > (1ULL << 40)) {
        fprintf(stderr, "gpool server: --log-limit %s: expected a size from 4KiB to 1TiB\n",
                log_limit);
        return CLI_EXIT_USAGE;
    }
    o.node_timeout = (int)node_timeout;
    o.min_runtime = (int)min_runtime;
    o.log_limit = (int64_t)bytes;
    if (init)
        return server_init(o.store, admin, unix_user);
    return serve(&o);
}
