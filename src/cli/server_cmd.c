/*
 * `gpool server` and `gpool server init`.
 */
#include <errno.h>
#include <getopt.h>
#include <gnutls/gnutls.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
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
    "                    [--metrics-public] [--advertise URL] [--idle-busy-pct PCT]\n"
    "                    [--idle-window SECONDS] [--no-lend] [--no-swap]\n"
    "                    [--class CLASS:SETTING[,SETTING...]]... [--config FILE]\n"
    "                    [--tls-cert FILE --tls-key FILE]\n"
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
    "A running job whose processes stay below --idle-busy-pct (default 5) on each of its GPUs for\n"
    "--idle-window seconds (default 300) is idle (idle_since_ms in the API and gpool describe).\n"
    "Thin provisioning: a job that does not fit may borrow a GPU whose jobs are all idle, and\n"
    "yields it when they wake (--no-lend: never).  A job displaced for another is swapped out\n"
    "when it can be, and swapped back in later (--no-swap: stopped and queued again instead).\n"
    "--class sets a priority class's policy (inference, interactive, build, train):\n"
    "min-runtime=SECONDS, lend=yes|no (its idle jobs' GPUs are lent), borrow=yes|no (its jobs\n"
    "borrow); by default inference neither lends nor borrows, interactive lends and does not\n"
    "borrow, build and train do both.\n"
    "--config FILE holds settings as 'name = value' lines, named as the long options above; the\n"
    "command line's win.\n"
    "/metrics (Prometheus) takes an admin's token, or none with --metrics-public.  --routes\n"
    "prints every endpoint of the API and exits.  With --tls-cert (a PEM certificate, its chain\n"
    "after it) and --tls-key (its PEM key, readable by the server only), the API and the\n"
    "dashboard are served over HTTPS only.\n"
    "'init' creates the store and its first admin, and prints the admin's token once.\n"
    "Exit status: 0 on a clean stop, 1 when serving fails, 2 on bad arguments.\n";

struct serve_opts {
    const char *store, *listen, *log_dir, *advertise;
    const char *tls_cert, *tls_key; /* files */
    int node_timeout;
    int min_runtime; /* seconds a job runs before it may be preempted or swapped out */
    int64_t log_limit;
    bool metrics_public;
    double idle_busy_pct; /* a job below this on every GPU for idle_window_s is idle */
    int idle_window_s;
    struct loop_cfg loop; /* the scheduling policy */
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

/* A whole file, NUL-terminated; NULL with a message. */
static char *read_pem(const char *opt, const char *path)
{
    FILE *f = fopen(path, "r");
    char *text = NULL;
    size_t len = 0, n;

    if (f == NULL) {
        fprintf(stderr, "gpool server: %s %s: %s\n", opt, path, strerror(errno));
        return NULL;
    }
    for (;;) {
        char *t = realloc(text, len + 65536 + 1);

        if (t == NULL || len > (1 << 20)) {
            fprintf(stderr, "gpool server: %s %s: over 1 MiB\n", opt, path);
            free(t ? t : text);
            fclose(f);
            return NULL;
        }
        text = t;
        if ((n = fread(text + len, 1, 65536, f)) == 0)
            break;
        len += n;
    }
    fclose(f);
    text[len] = '\0';
    return text;
}

/* The certificate and key as GnuTLS reads them: 0, or -1 with a message (nothing served). */
static int tls_check(const struct serve_opts *o, const char *cert, const char *key)
{
    gnutls_certificate_credentials_t cred;
    gnutls_datum_t c = {(unsigned char *)cert, (unsigned)strlen(cert)};
    gnutls_datum_t k = {(unsigned char *)key, (unsigned)strlen(key)};
    int rc;

    if (gnutls_certificate_allocate_credentials(&cred) != GNUTLS_E_SUCCESS)
        return -1;
    rc = gnutls_certificate_set_x509_key_mem(cred, &c, &k, GNUTLS_X509_FMT_PEM);
    gnutls_certificate_free_credentials(cred);
    if (rc < 0) {
        fprintf(stderr, "gpool server: --tls-cert %s with --tls-key %s: %s\n", o->tls_cert,
                o->tls_key, gnutls_strerror(rc));
        return -1;
    }
    return 0;
}

static int serve_api(const struct serve_opts *o, const char *cert, const char *key)
{
    struct api a = {.node_timeout_ms = (int64_t)o->node_timeout * 1000,
                    .metrics_public = o->metrics_public,
                    .tls_cert = cert,
                    .tls_key = key};
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
    a.idle.busy_pct = o->idle_busy_pct;
    a.idle.window_ms = o->idle_window_s * 1000LL;
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
    struct loop_cfg lc = o->loop;

    lc.node_timeout_s = o->node_timeout;
    lc.min_runtime_s = o->min_runtime;
    lc.idle = &a.idle;
    if (loop_start(a.store, &lc, &hooks, &a.loop) != 0) {
        snprintf(err, sizeof(err), "the scheduler loop could not start");
        goto failed;
    }
    api_set_standby(&a, false);
    if (!started && api_start(&a, o->listen, err, sizeof(err)) != 0)
        goto failed;
    started = true;
    fprintf(stderr, "gpool server: listening on %s://%s, store %s, logs in %s\n",
            cert ? "https" : "http", o->listen, o->store, a.logs.dir);
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

static int serve(const struct serve_opts *o)
{
    char *cert = NULL, *key = NULL;
    int rc = CLI_EXIT_USAGE;

    if (o->tls_cert == NULL ||
        ((cert = read_pem("--tls-cert", o->tls_cert)) != NULL &&
         (key = read_pem("--tls-key", o->tls_key)) != NULL && tls_check(o, cert, key) == 0))
        rc = serve_api(o, cert, key);
    free(cert);
    free(key);
    return rc;
}

/* What --config made: its settings as arguments, and the whole argument list. */
struct config {
    char **made; /* strdup'd */
    int nmade;
    char **argv;
};

static void config_free(struct config *cf)
{
    for (int i = 0; i < cf->nmade; i++)
        free(cf->made[i]);
    free(cf->made);
    free(cf->argv);
}

static int config_add(struct config *cf, const char *a, const char *b)
{
    char **more = realloc(cf->made, (size_t)(cf->nmade + 2) * sizeof(char *));

    if (more == NULL)
        return -1;
    cf->made = more;
    if (b == NULL)
        return asprintf(&cf->made[cf->nmade++], "--%s", a) < 0 ? -1 : 0;
    if (asprintf(&cf->made[cf->nmade++], "--%s", a) < 0 ||
        (cf->made[cf->nmade++] = strdup(b)) == NULL)
        return -1;
    return 0;
}

/* Trims spaces and tabs at both ends, in place. */
static char *trim(char *s)
{
    char *end;

    while (*s == ' ' || *s == '\t')
        s++;
    for (end = s + strlen(s); end > s && (end[-1] == ' ' || end[-1] == '\t');)
        *--end = '\0';
    return s;
}

/* One line of a --config file into cf; 0, or -1 with the message printed. */
static int config_line(const struct option *opts, struct config *cf, char *line, const char *file,
                       int lineno)
{
    char *eq, *name, *value = NULL;
    const struct option *o;

    line[strcspn(line, "#\n")] = '\0';
    if ((eq = strchr(line, '=')) != NULL) {
        *eq = '\0';
        value = trim(eq + 1);
    }
    name = trim(line);
    if (*name == '\0' && value == NULL)
        return 0;
    for (o = opts; o->name != NULL && strcmp(o->name, name) != 0; o++)
        ;
    if (o->name == NULL || strcmp(name, "config") == 0 || strcmp(name, "help") == 0 ||
        strcmp(name, "routes") == 0) {
        fprintf(stderr,
                "gpool server: %s:%d: unknown setting '%s' (the settings are gpool "
                "server's long options)\n",
                file, lineno, name);
        return -1;
    }
    if (o->has_arg == no_argument) {
        if (value != NULL && strcmp(value, "true") != 0 && strcmp(value, "false") != 0) {
            fprintf(stderr, "gpool server: %s:%d: %s is true or false\n", file, lineno, name);
            return -1;
        }
        return value != NULL && strcmp(value, "false") == 0 ? 0 : config_add(cf, name, NULL);
    }
    if (value == NULL || *value == '\0') {
        fprintf(stderr, "gpool server: %s:%d: %s needs a value (%s = VALUE)\n", file, lineno, name,
                name);
        return -1;
    }
    return config_add(cf, name, value);
}

/*
 * --config FILE: "name = value" lines, named as gpool server's long options ("name", or "name =
 * true|false", for a flag; '#' starts a comment).  They go before the command line's arguments,
 * which so win.  0, or the exit status (a message printed).
 */
static int config_read(const struct option *opts, int *argc, char ***argv, struct config *cf)
{
    const char *file = NULL;
    char line[4096];
    int lineno = 0, i, n = 0;
    FILE *f;

    for (i = 1; i < *argc; i++) {
        if (strcmp((*argv)[i], "--config") == 0 && i + 1 < *argc)
            file = (*argv)[i + 1];
        else if (strncmp((*argv)[i], "--config=", 9) == 0)
            file = (*argv)[i] + 9;
    }
    if (file == NULL)
        return 0;
    if ((f = fopen(file, "re")) == NULL) {
        fprintf(stderr, "gpool server: --config %s: %s\n", file, strerror(errno));
        return CLI_EXIT_USAGE;
    }
    while (fgets(line, sizeof(line), f) != NULL)
        if (config_line(opts, cf, line, file, ++lineno) != 0) {
            fclose(f);
            config_free(cf);
            return CLI_EXIT_USAGE;
        }
    fclose(f);
    if ((cf->argv = calloc((size_t)(*argc + cf->nmade + 1), sizeof(char *))) == NULL) {
        config_free(cf);
        return CLI_EXIT_FAIL;
    }
    cf->argv[n++] = (*argv)[0];
    for (i = 0; i < cf->nmade; i++)
        cf->argv[n++] = cf->made[i];
    for (i = 1; i < *argc; i++)
        cf->argv[n++] = (*argv)[i];
    *argc = n;
    *argv = cf->argv;
    return 0;
}

static int yes_no(const char *v, bool *out)
{
    if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0)
        *out = true;
    else if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0)
        *out = false;
    else
        return -1;
    return 0;
}

/* "CLASS:min-runtime=S,lend=no,borrow=yes" into cfg; -1 with why, cfg unchanged. */
static int class_policy_parse(const char *arg, struct loop_cfg *cfg, char *why, size_t len)
{
    const char *colon = strchr(arg, ':'), *p;
    struct loop_cfg next = *cfg;
    enum sched_priority cls;
    char name[32];

    if (colon == NULL || colon == arg || (size_t)(colon - arg) >= sizeof(name) || colon[1] == '\0') {
        snprintf(why, len, "expected CLASS:SETTING[,SETTING...]");
        return -1;
    }
    snprintf(name, sizeof(name), "%.*s", (int)(colon - arg), arg);
    if (sched_priority_parse(name, &cls) != 0) {
        snprintf(why, len, "unknown class '%s' (inference, interactive, build, train)", name);
        return -1;
    }
    for (p = colon + 1; *p != '\0';) {
        size_t n = strcspn(p, ",");
        char item[64], *eq, *end;
        unsigned bit = 1u << cls;
        bool v;

        snprintf(item, sizeof(item), "%.*s", (int)(n < sizeof(item) - 1 ? n : sizeof(item) - 1),
                 p);
        if ((eq = strchr(item, '=')) == NULL) {
            snprintf(why, len, "'%s': expected NAME=VALUE", item);
            return -1;
        }
        *eq++ = '\0';
        if (strcmp(item, "min-runtime") == 0) {
            long sec = strtol(eq, &end, 10);

            if (*eq == '\0' || *end != '\0' || sec < 0 || sec > 86400 * 7) {
                snprintf(why, len, "min-runtime=%s: expected 0 to 604800 seconds", eq);
                return -1;
            }
            next.class_min_runtime_s[cls] = sec;
            next.class_min_set |= bit;
        } else if (strcmp(item, "lend") == 0 || strcmp(item, "borrow") == 0) {
            unsigned *no = item[0] == 'l' ? &next.class_no_lend : &next.class_no_borrow;

            if (yes_no(eq, &v) != 0) {
                snprintf(why, len, "%s=%s: expected yes or no", item, eq);
                return -1;
            }
            *no = v ? *no & ~bit : *no | bit;
        } else {
            snprintf(why, len, "unknown setting '%s' (min-runtime, lend, borrow)", item);
            return -1;
        }
        p += n + (p[n] == ',');
    }
    *cfg = next;
    return 0;
}

int cli_server(int argc, char **argv)
{
    static const struct option longopts[] = {{"listen", required_argument, NULL, 'l'},
                                             {"store", required_argument, NULL, 's'},
                                             {"admin", required_argument, NULL, 'a'},
                                             {"unix-user", required_argument, NULL, 'u'},
                                             {"node-timeout", required_argument, NULL, 't'},
                                             {"log-dir", required_argument, NULL, 'L'},
                                             {"log-limit", required_argument, NULL, 'S'},
                                             {"min-runtime", required_argument, NULL, 'm'},
                                             {"metrics-public", no_argument, NULL, 'P'},
                                             {"routes", no_argument, NULL, 'R'},
                                             {"advertise", required_argument, NULL, 'A'},
                                             {"idle-busy-pct", required_argument, NULL, 'I'},
                                             {"idle-window", required_argument, NULL, 'W'},
                                             {"no-lend", no_argument, NULL, 'N'},
                                             {"no-swap", no_argument, NULL, 'O'},
                                             {"class", required_argument, NULL, 'c'},
                                             {"config", required_argument, NULL, 'C'},
                                             {"tls-cert", required_argument, NULL, 'T'},
                                             {"tls-key", required_argument, NULL, 'K'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    struct serve_opts o = {.store = DEFAULT_STORE, .listen = DEFAULT_LISTEN};
    char why[160];
    const char *admin = NULL, *unix_user = NULL, *log_limit = DEFAULT_LOG_LIMIT;
    bool init = argc > 1 && strcmp(argv[1], "init") == 0;
    long node_timeout = 30, min_runtime = 600, idle_window = IDLE_WINDOW_S_DEFAULT;
    double idle_pct = IDLE_BUSY_PCT_DEFAULT;
    struct config cf = {NULL, 0, NULL};
    uint64_t bytes;
    char *end;
    int c, rc;

    if (init) {
        argc--;
        argv++;
    }
    /* A --config file's settings come first, so that the command line's win. */
    if ((rc = config_read(longopts, &argc, &argv, &cf)) != 0)
        return rc;
    rc = CLI_EXIT_USAGE;
    loop_cfg_defaults(&o.loop);
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'l':
            o.listen = optarg;
            break;
        case 's':
            o.store = optarg;
            break;
        case 'L':
            o.log_dir = optarg;
            break;
        case 'S':
            log_limit = optarg;
            break;
        case 'a':
            admin = optarg;
            break;
        case 'u':
            unix_user = optarg;
            break;
        case 't':
            node_timeout = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || node_timeout < 1 || node_timeout > 86400) {
                fprintf(stderr, "gpool server: --node-timeout %s: expected 1 to 86400 seconds\n",
                        optarg);
                goto out;
            }
            break;
        case 'm':
            min_runtime = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || min_runtime < 0 || min_runtime > 86400 * 7) {
                fprintf(stderr, "gpool server: --min-runtime %s: expected 0 to 604800 seconds\n",
                        optarg);
                goto out;
            }
            break;
        case 'P':
            o.metrics_public = true;
            break;
        case 'A':
            o.advertise = optarg;
            break;
        case 'C':
            break; /* read before */
        case 'T':
            o.tls_cert = optarg;
            break;
        case 'K':
            o.tls_key = optarg;
            break;
        case 'I':
            idle_pct = strtod(optarg, &end);
            if (*optarg == '\0' || *end != '\0' || !(idle_pct > 0 && idle_pct <= 100)) {
                fprintf(stderr,
                        "gpool server: --idle-busy-pct %s: expected more than 0, at most "
                        "100\n",
                        optarg);
                goto out;
            }
            break;
        case 'W':
            idle_window = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || idle_window < 1 || idle_window > 86400 * 7) {
                fprintf(stderr, "gpool server: --idle-window %s: expected 1 to 604800 seconds\n",
                        optarg);
                goto out;
            }
            break;
        case 'N':
            o.loop.lend = false;
            break;
        case 'O':
            o.loop.swap = false;
            break;
        case 'c':
            if (class_policy_parse(optarg, &o.loop, why, sizeof(why)) != 0) {
                fprintf(stderr, "gpool server: --class %s: %s\n", optarg, why);
                goto out;
            }
            break;
        case 'R':
            api_routes_print(stdout);
            rc = CLI_EXIT_OK;
            goto out;
        case 'h':
            fputs(server_usage, stdout);
            rc = CLI_EXIT_OK;
            goto out;
        default:
            fputs(server_usage, stderr);
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "gpool server: unexpected argument '%s'\n", argv[optind]);
        goto out;
    }
    if ((o.tls_cert == NULL) != (o.tls_key == NULL)) {
        fprintf(stderr, "gpool server: --tls-cert FILE and --tls-key FILE go together\n");
        goto out;
    }
    if (units_parse_bytes(log_limit, &bytes) != 0 || bytes < 4096 || bytes > (1ULL << 40)) {
        fprintf(stderr, "gpool server: --log-limit %s: expected a size from 4KiB to 1TiB\n",
                log_limit);
        goto out;
    }
    o.node_timeout = (int)node_timeout;
    o.min_runtime = (int)min_runtime;
    o.log_limit = (int64_t)bytes;
    o.idle_busy_pct = idle_pct;
    o.idle_window_s = (int)idle_window;
    rc = init ? server_init(o.store, admin, unix_user) : serve(&o);
out:
    config_free(&cf);
    return rc;
}
