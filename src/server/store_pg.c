/*
 * The store on PostgreSQL (libpq): one data connection behind a mutex, writes in transactions
 * with synchronous_commit on, and the same versioned migrations as the SQLite store.
 *
 * Several servers may share one database; one leads.  Leading is holding a session-level
 * advisory lock on a connection of its own (the lock connection): a standby tries for it every
 * second.  The server that takes it raises the fencing epoch (the one row of `leader`), and
 * every write transaction of a leader first checks, under a share lock on that row, that the
 * epoch is still its own: a leader that was stopped or cut off and comes back finds a newer
 * epoch, writes nothing, and stops leading.  The lock connection's session ends when it is
 * idle for LEASE_MS (a leader pings it every second, so only a stopped or cut-off one is idle
 * that long), and TCP keepalives end a connection whose peer is gone within seconds.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "server/store_impl.h"

/* The advisory lock keys: leadership, and running the migrations one server at a time. */
#define LEAD_KEY 0x67706f6f6c01LL
#define MIGRATE_KEY 0x67706f6f6c02LL
/* How long a leader's lock connection may be silent before the database ends its session. */
#define LEASE_MS 5000
#define MAX_PARAMS 12

struct pg {
    struct store base;
    PGconn *db; /* the data connection, for writes and what reads inside them; under mu */
    PGconn *rd; /* the read connection: reads outside a write (listings, the loop's snapshot) */
    pthread_mutex_t rmu; /* around rd */
    PGconn *lock;        /* the lock connection: tries, then (leading) the watchdog's pings */
    pthread_mutex_t mu;
    int64_t epoch; /* the epoch this server leads in; 0 while it does not lead */
    atomic_bool lost;
    atomic_bool stop;
    pthread_t watchdog;
    bool watching;
    char *url;
};

/* Each migration moves the schema one version up, as the SQLite store's of the same number. */
static const char *const migrations[] = {
    "CREATE TABLE users (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE, unix_user TEXT NOT "
    "NULL, uid BIGINT NOT NULL, role TEXT NOT NULL, created_ms BIGINT NOT NULL DEFAULT 0);"
    "CREATE TABLE tokens (hash TEXT PRIMARY KEY, user_id BIGINT NOT NULL REFERENCES users(id), "
    "revoked INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE projects (name TEXT PRIMARY KEY, parent TEXT NOT NULL DEFAULT '', "
    "deserved_milli BIGINT NOT NULL, limit_milli BIGINT NOT NULL, weight INTEGER NOT NULL);"
    "CREATE TABLE members (project TEXT NOT NULL, user_id BIGINT NOT NULL, "
    "PRIMARY KEY (project, user_id));"
    "CREATE TABLE jobs (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, project TEXT NOT NULL, "
    "user_id BIGINT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', "
    "submitted_ms BIGINT NOT NULL, started_ms BIGINT NOT NULL DEFAULT 0, finished_ms BIGINT NOT "
    "NULL DEFAULT 0, spec TEXT NOT NULL);"
    "CREATE INDEX jobs_state ON jobs(state);"
    /* The fencing epoch and where its leader serves (PostgreSQL only: one row). */
    "CREATE TABLE leader (id INTEGER PRIMARY KEY CHECK (id = 1), epoch BIGINT NOT NULL, url "
    "TEXT NOT NULL, since_ms BIGINT NOT NULL);"
    "INSERT INTO leader VALUES (1, 0, '', 0);",
    "CREATE TABLE nodes (name TEXT PRIMARY KEY, cpu_milli BIGINT NOT NULL, mem_mib BIGINT NOT "
    "NULL, gpus TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'ready', heartbeat_ms BIGINT NOT NULL "
    "DEFAULT 0);"
    "ALTER TABLE jobs ADD COLUMN node TEXT NOT NULL DEFAULT '', ADD COLUMN gpus TEXT NOT NULL "
    "DEFAULT '', ADD COLUMN exit_code INTEGER NOT NULL DEFAULT 0;",
    "CREATE TABLE sessions (hash TEXT PRIMARY KEY, user_id BIGINT NOT NULL REFERENCES users(id), "
    "expires_ms BIGINT NOT NULL);"
    "ALTER TABLE nodes ADD COLUMN telemetry TEXT NOT NULL DEFAULT '';",
    "ALTER TABLE jobs ADD COLUMN swap TEXT NOT NULL DEFAULT '';",
    "ALTER TABLE nodes ADD COLUMN address TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE jobs ADD COLUMN ranks TEXT NOT NULL DEFAULT '', ADD COLUMN control TEXT NOT "
    "NULL DEFAULT '';",
    "ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0, ADD COLUMN failures "
    "INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE runs (job_id BIGINT NOT NULL, attempt INTEGER NOT NULL, node TEXT NOT NULL, "
    "gpus TEXT NOT NULL, gpu_milli BIGINT NOT NULL, alloc_milli BIGINT NOT NULL, started_ms "
    "BIGINT NOT NULL, ended_ms BIGINT NOT NULL DEFAULT 0, outcome TEXT NOT NULL DEFAULT '', "
    "used_milli BIGINT NOT NULL DEFAULT -1, PRIMARY KEY (job_id, attempt));"
    "CREATE INDEX runs_ended ON runs(ended_ms);"
    "CREATE TABLE usage (job_id BIGINT NOT NULL, hour_ms BIGINT NOT NULL, used_gpu_ms BIGINT NOT "
    "NULL DEFAULT 0, measured_gpu_ms BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (job_id, hour_ms));"
    "CREATE INDEX usage_hour ON usage(hour_ms);"
    "CREATE INDEX jobs_finished ON jobs(finished_ms);"
    "UPDATE jobs SET attempts = 1 WHERE started_ms > 0;"
    "INSERT INTO runs (job_id, attempt, node, gpus, gpu_milli, alloc_milli, started_ms) SELECT "
    "id, 1, node, gpus, 0, 0, started_ms FROM jobs WHERE state IN ('assigned', 'running', "
    "'swapped', 'suspended');",
    /* A job's timeline, written by triggers as in SQLite; seq keeps the order of the rows. */
    "CREATE TABLE job_states (seq BIGSERIAL PRIMARY KEY, job_id BIGINT NOT NULL, at_ms BIGINT NOT "
    "NULL, state TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX job_states_job ON job_states(job_id);"
    "CREATE FUNCTION job_state_first() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO "
    "job_states (job_id, at_ms, state, reason) VALUES (NEW.id, NEW.submitted_ms, NEW.state, "
    "NEW.reason); RETURN NULL; END $$;"
    "CREATE TRIGGER job_state_first AFTER INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION "
    "job_state_first();"
    "CREATE FUNCTION job_state_next() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO "
    "job_states (job_id, at_ms, state, reason) VALUES (NEW.id, (extract(epoch FROM "
    "clock_timestamp()) * 1000)::bigint, NEW.state, NEW.reason); RETURN NULL; END $$;"
    "CREATE TRIGGER job_state_next AFTER UPDATE OF state ON jobs FOR EACH ROW WHEN (NEW.state <> "
    "OLD.state) EXECUTE FUNCTION job_state_next();",
    /* Join tokens: an admin's, for nodes to join with (store_node_join). */
    "CREATE TABLE join_tokens (id BIGSERIAL PRIMARY KEY, hash TEXT NOT NULL UNIQUE, created_by "
    "BIGINT NOT NULL REFERENCES users(id), created_ms BIGINT NOT NULL, expires_ms BIGINT NOT NULL "
    "DEFAULT 0, revoked INTEGER NOT NULL DEFAULT 0, joins BIGINT NOT NULL DEFAULT 0);",
    /* A node's jobs found by their node (its assignments, its heartbeat's shares), and gangs
     * ("n1 n2") that hold GPUs by an index of their own, as in SQLite. */
    "CREATE INDEX jobs_node ON jobs(node, state);"
    "CREATE INDEX jobs_gangs ON jobs(id) WHERE strpos(node, ' ') > 0 AND state IN ('assigned', "
    "'running', 'swapped', 'suspended');",
    /* Thin provisioning: borrowed jobs, and the projects' lending policy, as in SQLite. */
    "ALTER TABLE jobs ADD COLUMN borrowed INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE projects ADD COLUMN no_lend INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE projects ADD COLUMN no_borrow INTEGER NOT NULL DEFAULT 0;",
};

/* A job on a node: `node` (a column, "n1 n2" for a gang) names the node `param`. */
#define ON_NODE(column, param) "strpos(' ' || " column " || ' ', ' ' || " param " || ' ') > 0"
/* The states of a job that holds GPUs on a node. */
#define HOLDING "'assigned', 'running', 'swapped', 'suspended'"
/* A job's retries, from its spec. */
#define RETRIES "coalesce((spec::jsonb->>'retries')::int, 0)"

static struct pg *pg_of(struct store *base)
{
    return (struct pg *)base;
}

/* ---- connections and queries ---- */

/*
 * Connects with keepalives that end a connection to a vanished peer in seconds; what the URL
 * itself says wins over these.
 */
static PGconn *connect_to(const char *url, const char *application, char *err, size_t errlen)
{
    const char *const keys[] = {"keepalives",       "keepalives_idle",  "keepalives_interval",
                                "keepalives_count", "tcp_user_timeout", "connect_timeout",
                                "application_name", "dbname",           NULL};
    const char *const values[] = {"1", "2", "1", "3", "5000", "5", application, url, NULL};
    PGconn *c = PQconnectdbParams(keys, values, 1);

    if (c == NULL) {
        snprintf(err, errlen, "no memory for a connection");
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "%s", PQerrorMessage(c));
        err[strcspn(err, "\n")] = '\0';
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* A command without parameters or rows: 0 or -EIO. */
static int exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;

    if (!ok)
        log_warnx("store: %s", PQerrorMessage(c));
    PQclear(r);
    return ok ? 0 : -EIO;
}

/* What a failed statement means for the caller: a broken connection costs a leader its lead. */
static int failed(struct pg *s, PGconn *c, PGresult *r)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);

    if (state != NULL && strcmp(state, "23505") == 0)
        return -EEXIST;
    log_warnx("store: %s", PQerrorMessage(c));
    if (PQstatus(c) != CONNECTION_OK && s->epoch > 0)
        atomic_store(&s->lost, true);
    return -EIO;
}

/*
 * Runs one statement with parameters given as a format: 't' text, 'i' int64.  0 with the result
 * in *out (the caller clears it; out may be NULL), -EEXIST on a unique key, or -EIO.
 */
static int vq_on(struct pg *s, PGconn *c, PGresult **out, const char *sql, const char *fmt,
                 va_list ap)
{
    char nums[MAX_PARAMS][24];
    const char *values[MAX_PARAMS];
    int n = (int)strlen(fmt), rc = 0;
    PGresult *r;

    for (int i = 0; i < n && i < MAX_PARAMS; i++) {
        if (fmt[i] == 't') {
            values[i] = va_arg(ap, const char *);
        } else {
            snprintf(nums[i], sizeof(nums[i]), "%lld", (long long)va_arg(ap, int64_t));
            values[i] = nums[i];
        }
    }
    r = PQexecParams(c, sql, n, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        rc = failed(s, c, r);
    if (rc == 0 && out != NULL)
        *out = r;
    else
        PQclear(r);
    return rc;
}

static int vq(struct pg *s, PGresult **out, const char *sql, const char *fmt, va_list ap)
{
    return vq_on(s, s->db, out, sql, fmt, ap);
}

static int q(struct pg *s, PGresult **out, const char *sql, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vq(s, out, sql, fmt, ap);
    va_end(ap);
    return rc;
}

/* A write inside the caller's transaction; *changes (when not NULL) is how many rows changed. */
static int w(struct pg *s, int64_t *changes, const char *sql, const char *fmt, ...)
{
    PGresult *r = NULL;
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vq(s, &r, sql, fmt, ap);
    va_end(ap);
    if (rc == 0 && changes != NULL)
        *changes = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return rc;
}

static const char *txt(const PGresult *r, int row, int col)
{
    return PQgetvalue(r, row, col);
}

static int64_t num(const PGresult *r, int row, int col)
{
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/*
 * Locks the store and opens a write transaction.  A leader checks, in the same transaction and
 * under a share lock on the epoch's row, that it still leads: -ESTALE when a newer leader took
 * over (it then no longer leads).  The caller ends with end() whatever this returns.
 */
static int begin(struct pg *s)
{
    char sql[160];
    PGresult *r;
    int rc = 0;

    pthread_mutex_lock(&s->mu);
    if (s->epoch == 0)
        return exec(s->db, "BEGIN");
    snprintf(sql, sizeof(sql),
             "BEGIN; SELECT 1 FROM leader WHERE id = 1 AND epoch = %lld FOR SHARE",
             (long long)s->epoch);
    r = PQexec(s->db, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = failed(s, s->db, r);
    } else if (PQntuples(r) != 1) {
        log_warnx("store: a newer leader holds the store (this server led in epoch %lld); "
                  "nothing written",
                  (long long)s->epoch);
        atomic_store(&s->lost, true);
        rc = -ESTALE;
    }
    PQclear(r);
    return rc;
}

/* Commits (rc 0) or rolls back, and unlocks; rc, or -EIO when the commit failed. */
static int end(struct pg *s, int rc)
{
    if (rc == 0 && exec(s->db, "COMMIT") != 0)
        rc = -EIO;
    if (rc != 0 && PQtransactionStatus(s->db) != PQTRANS_IDLE)
        exec(s->db, "ROLLBACK");
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* One write in a transaction of its own.  With must_change, changing no row is -ENOENT. */
static int write1(struct pg *s, bool must_change, const char *sql, const char *fmt, ...)
{
    int64_t changes = 0;
    va_list ap;
    int rc = begin(s);

    if (rc == 0) {
        PGresult *r = NULL;

        va_start(ap, fmt);
        rc = vq(s, &r, sql, fmt, ap);
        va_end(ap);
        if (rc == 0)
            changes = strtoll(PQcmdTuples(r), NULL, 10);
        PQclear(r);
    }
    if (rc == 0 && must_change && changes == 0)
        rc = -ENOENT;
    return end(s, rc);
}

/* One read under the lock: 0 with the rows in *out, or -EIO. */
static int read1(struct pg *s, PGresult **out, const char *sql, const char *fmt, ...)
{
    va_list ap;
    int rc;

    pthread_mutex_lock(&s->rmu);
    va_start(ap, fmt);
    rc = vq_on(s, s->rd, out, sql, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&s->rmu);
    return rc;
}

/* ---- opening, migrations, settings ---- */

static int migrate(struct pg *s, char *err, size_t errlen)
{
    int n = (int)(sizeof(migrations) / sizeof(migrations[0])), version = 0, rc;
    PGresult *r = NULL;
    char bump[96];

    /* Servers starting together migrate one after the other. */
    snprintf(bump, sizeof(bump), "SELECT pg_advisory_xact_lock(%lld)", MIGRATE_KEY);
    if (exec(s->db, "BEGIN") != 0 || exec(s->db, bump) != 0 ||
        exec(s->db, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")) {
        snprintf(err, errlen, "store: %s", PQerrorMessage(s->db));
        exec(s->db, "ROLLBACK");
        return -EIO;
    }
    if ((rc = q(s, &r, "SELECT version FROM schema_version", "")) == 0 && PQntuples(r) > 0)
        version = (int)num(r, 0, 0);
    else if (rc == 0)
        rc = exec(s->db, "INSERT INTO schema_version VALUES (0)");
    PQclear(r);
    if (rc == 0 && version > n) {
        snprintf(err, errlen, "the store is at schema version %d, newer than this gpool (%d)",
                 version, n);
        exec(s->db, "ROLLBACK");
        return -EPROTO;
    }
    for (int v = version; v < n && rc == 0; v++) {
        snprintf(bump, sizeof(bump), "UPDATE schema_version SET version = %d", v + 1);
        if (exec(s->db, migrations[v]) != 0 || exec(s->db, bump) != 0) {
            snprintf(err, errlen, "migration to version %d: %s", v + 1, PQerrorMessage(s->db));
            rc = -EIO;
        }
    }
    if (rc == 0 && exec(s->db, "COMMIT") != 0) {
        snprintf(err, errlen, "store: %s", PQerrorMessage(s->db));
        rc = -EIO;
    }
    if (rc != 0)
        exec(s->db, "ROLLBACK");
    return rc;
}

static const struct store_ops pg_ops;
static void pg_close(struct store *base);
static int data_settings(PGconn *c);

int store__pg_open(const char *url, struct store **out, char *err, size_t errlen)
{
    struct pg *s = calloc(1, sizeof(*s));
    int rc;

    if (s == NULL || (s->url = strdup(url)) == NULL) {
        free(s);
        return -ENOMEM;
    }
    s->base.ops = &pg_ops;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->rmu, NULL);
    if ((s->db = connect_to(url, "gpool-server", err, errlen)) == NULL ||
        (s->rd = connect_to(url, "gpool-server-read", err, errlen)) == NULL) {
        pg_close(&s->base);
        return -EIO;
    }
    /*
     * Acknowledged means durable: a commit returns once its WAL is flushed (and, with
     * synchronous standbys configured, once they have it).  A transaction left open by a
     * stopped server ends soon, so that it cannot hold the epoch's row from a new leader.
     */
    if (data_settings(s->db) != 0) {
        snprintf(err, errlen, "store: %s", PQerrorMessage(s->db));
        pg_close(&s->base);
        return -EIO;
    }
    if ((rc = migrate(s, err, errlen)) != 0) {
        pg_close(&s->base);
        return rc;
    }
    *out = &s->base;
    return 0;
}

static void pg_close(struct store *base)
{
    struct pg *s = pg_of(base);

    if (s->watching) {
        atomic_store(&s->stop, true);
        pthread_join(s->watchdog, NULL);
    }
    if (s->lock != NULL)
        PQfinish(s->lock);
    if (s->db != NULL)
        PQfinish(s->db);
    if (s->rd != NULL)
        PQfinish(s->rd);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->rmu);
    free(s->url);
    free(s);
}

static int pg_settings(struct store *base, json_t **out)
{
    struct pg *s = pg_of(base);
    PGresult *r = NULL;
    int rc;

    /* As the writing connection has them. */
    pthread_mutex_lock(&s->mu);
    rc = q(s, &r,
           "SELECT current_setting('synchronous_commit'), current_setting('fsync'), (SELECT "
           "epoch FROM leader WHERE id = 1)",
           "");
    pthread_mutex_unlock(&s->mu);
    if (rc != 0)
        return rc;
    *out = json_pack("{s:s, s:s, s:s, s:s, s:I}", "backend", "postgresql", "journal_mode", "wal",
                     "synchronous", txt(r, 0, 0), "fsync", txt(r, 0, 1), "epoch",
                     (json_int_t)num(r, 0, 2));
    PQclear(r);
    return 0;
}

/* ---- leadership ---- */

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Pings the lock connection every second while this server leads: the ping keeps its session
 * from ending idle, and a ping that fails (the connection is gone, and with it the lock) or
 * finds a newer epoch ends the lead.
 */
static void *watch(void *arg)
{
    struct pg *s = arg;
    char sql[96];

    snprintf(sql, sizeof(sql), "SELECT 1 FROM leader WHERE id = 1 AND epoch = %lld",
             (long long)s->epoch);
    while (!atomic_load(&s->stop) && !atomic_load(&s->lost)) {
        PGresult *r = PQexec(s->lock, sql);

        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
            log_warnx("store: the lead is lost: %s", PQresultStatus(r) == PGRES_TUPLES_OK
                                                         ? "a newer leader took over"
                                                         : PQerrorMessage(s->lock));
            atomic_store(&s->lost, true);
        }
        PQclear(r);
        for (int i = 0; i < 10 && !atomic_load(&s->stop); i++)
            usleep(100000);
    }
    return NULL;
}

/* Takes the epoch after the lock: the leader row's epoch one up, with this server's URL. */
static int take_epoch(struct pg *s, const char *url)
{
    PGresult *r = NULL;
    int rc;

    pthread_mutex_lock(&s->mu);
    rc = q(s, &r,
           "UPDATE leader SET epoch = epoch + 1, url = $1, since_ms = $2::bigint WHERE id = 1 "
           "RETURNING epoch",
           "ti", url, wall_ms());
    if (rc == 0 && PQntuples(r) == 1)
        s->epoch = num(r, 0, 0);
    else if (rc == 0)
        rc = -EIO;
    PQclear(r);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* The settings of the data connection (store__pg_open says why). */
static int data_settings(PGconn *c)
{
    char sql[96];

    snprintf(sql, sizeof(sql), "SET idle_in_transaction_session_timeout = %d", LEASE_MS);
    if (exec(c, "SET synchronous_commit = on") != 0 || exec(c, sql) != 0 ||
        exec(c, "SET client_min_messages = warning") != 0)
        return -EIO;
    return 0;
}

/* Whether a connection works: a connection the database ended says so only when used. */
static bool alive(PGconn *c)
{
    PGresult *r;
    bool ok;

    if (PQstatus(c) != CONNECTION_OK)
        return false;
    r = PQexec(c, "SELECT 1");
    ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    return ok;
}

/* A standby's connections, lost while it waited (the database restarted), are made again. */
static void reconnect(struct pg *s)
{
    pthread_mutex_lock(&s->mu);
    if (!alive(s->db)) {
        PQreset(s->db);
        if (PQstatus(s->db) == CONNECTION_OK)
            data_settings(s->db);
    }
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_lock(&s->rmu);
    if (!alive(s->rd))
        PQreset(s->rd);
    pthread_mutex_unlock(&s->rmu);
}

static int pg_lead_try(struct store *base, const char *url)
{
    struct pg *s = pg_of(base);
    char err[256], sql[96];
    PGresult *r;
    bool got;

    if (s->epoch > 0)
        return atomic_load(&s->lost) ? -ESTALE : 1;
    reconnect(s);
    if (s->lock != NULL && PQstatus(s->lock) != CONNECTION_OK) {
        PQfinish(s->lock);
        s->lock = NULL;
    }
    if (s->lock == NULL) {
        if ((s->lock = connect_to(s->url, "gpool-server-lock", err, sizeof(err))) == NULL) {
            log_warnx("store: lock connection: %s", err);
            return -EIO;
        }
        snprintf(sql, sizeof(sql), "SET idle_session_timeout = %d", LEASE_MS);
        if (exec(s->lock, sql) != 0)
            return -EIO;
    }
    snprintf(sql, sizeof(sql), "SELECT pg_try_advisory_lock(%lld)", LEAD_KEY);
    r = PQexec(s->lock, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        log_warnx("store: %s", PQerrorMessage(s->lock));
        PQclear(r);
        return -EIO;
    }
    got = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!got)
        return 0;
    if (take_epoch(s, url) != 0) {
        PQfinish(s->lock);
        s->lock = NULL;
        return -EIO;
    }
    if (pthread_create(&s->watchdog, NULL, watch, s) != 0) {
        atomic_store(&s->lost, true);
        return -EAGAIN;
    }
    s->watching = true;
    return 1;
}

static bool pg_leading(struct store *base)
{
    struct pg *s = pg_of(base);

    return s->epoch > 0 && !atomic_load(&s->lost);
}

static int pg_leader(struct store *base, char *url, size_t len)
{
    PGresult *r = NULL;
    int rc = read1(pg_of(base), &r, "SELECT url FROM leader WHERE id = 1", "");

    snprintf(url, len, "%s", rc == 0 && PQntuples(r) == 1 ? txt(r, 0, 0) : "");
    PQclear(r);
    return rc;
}

/* ---- users, tokens, sessions ---- */

static int pg_user_add(struct store *base, const struct store_user *u, int64_t *id, char *err,
                       size_t errlen)
{
    struct pg *s = pg_of(base);
    PGresult *r = NULL;
    int rc = begin(s);

    if (rc == 0)
        rc = q(s, &r,
               "INSERT INTO users (name, unix_user, uid, role) VALUES ($1, $2, $3::bigint, $4) "
               "RETURNING id",
               "ttit", u->name, u->unix_user, u->uid, store_role_name(u->role));
    if (rc == 0)
        *id = num(r, 0, 0);
    PQclear(r);
    if ((rc = end(s, rc)) == -EEXIST)
        snprintf(err, errlen, "user '%s' exists", u->name);
    else if (rc != 0)
        snprintf(err, errlen, "store: user '%s' could not be written", u->name);
    return rc;
}

static void user_row(const PGresult *r, int i, struct store_user *u)
{
    memset(u, 0, sizeof(*u));
    u->id = num(r, i, 0);
    snprintf(u->name, sizeof(u->name), "%s", txt(r, i, 1));
    snprintf(u->unix_user, sizeof(u->unix_user), "%s", txt(r, i, 2));
    u->uid = num(r, i, 3);
    store_role_parse(txt(r, i, 4), &u->role);
}

/* The user a query of users' columns finds: 0, -ENOENT, or -EIO. */
static int one_user(struct pg *s, struct store_user *out, const char *sql, const char *fmt, ...)
{
    PGresult *r = NULL;
    va_list ap;
    int rc;

    pthread_mutex_lock(&s->rmu);
    va_start(ap, fmt);
    rc = vq_on(s, s->rd, &r, sql, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&s->rmu);
    if (rc == 0 && PQntuples(r) == 0)
        rc = -ENOENT;
    if (rc == 0)
        user_row(r, 0, out);
    PQclear(r);
    return rc;
}

static int pg_user_get(struct store *base, const char *name, struct store_user *out)
{
    return one_user(pg_of(base), out,
                    "SELECT id, name, unix_user, uid, role FROM users WHERE name = $1", "t", name);
}

static int pg_users_count(struct store *base, int64_t *n)
{
    PGresult *r = NULL;
    int rc = read1(pg_of(base), &r, "SELECT count(*) FROM users", "");

    *n = rc == 0 ? num(r, 0, 0) : 0;
    PQclear(r);
    return rc;
}

static int pg_token_add(struct store *base, int64_t user_id, const char *hash)
{
    return write1(pg_of(base), false, "INSERT INTO tokens (user_id, hash) VALUES ($1::bigint, $2)",
                  "it", user_id, hash);
}

static int pg_token_user(struct store *base, const char *hash, struct store_user *out)
{
    return one_user(pg_of(base), out,
                    "SELECT u.id, u.name, u.unix_user, u.uid, u.role FROM tokens t JOIN users u "
                    "ON u.id = t.user_id WHERE t.hash = $1 AND t.revoked = 0",
                    "t", hash);
}

static int pg_session_add(struct store *base, int64_t user_id, const char *hash, int64_t expires_ms,
                          int64_t now_ms)
{
    struct pg *s = pg_of(base);
    int rc = begin(s);

    /* Expired sessions go as new ones come. */
    if (rc == 0)
        rc = w(s, NULL, "DELETE FROM sessions WHERE expires_ms <= $1::bigint", "i", now_ms);
    if (rc == 0)
        rc = w(s, NULL,
               "INSERT INTO sessions (hash, user_id, expires_ms) VALUES ($1, $2::bigint, "
               "$3::bigint)",
               "tii", hash, user_id, expires_ms);
    return end(s, rc);
}

static int pg_session_user(struct store *base, const char *hash, int64_t now_ms,
                           struct store_user *out)
{
    return one_user(pg_of(base), out,
                    "SELECT u.id, u.name, u.unix_user, u.uid, u.role FROM sessions x JOIN users u "
                    "ON u.id = x.user_id WHERE x.hash = $1 AND x.expires_ms > $2::bigint",
                    "ti", hash, now_ms);
}

static int pg_session_delete(struct store *base, const char *hash)
{
    return write1(pg_of(base), true, "DELETE FROM sessions WHERE hash = $1", "t", hash);
}

/* ---- projects ---- */

static int pg_project_put(struct store *base, const struct store_project *p, char *err,
                          size_t errlen)
{
    int rc =
        write1(pg_of(base), false,
               "INSERT INTO projects (name, parent, deserved_milli, limit_milli, weight, no_lend, "
               "no_borrow) VALUES ($1, $2, $3::bigint, $4::bigint, $5::int, $6::int, $7::int) "
               "ON CONFLICT (name) DO UPDATE SET parent = excluded.parent, deserved_milli = "
               "excluded.deserved_milli, limit_milli = excluded.limit_milli, weight = "
               "excluded.weight, no_lend = excluded.no_lend, no_borrow = excluded.no_borrow",
               "ttiiiii", p->name, p->parent, p->deserved_milli, p->limit_milli,
               (int64_t)p->weight, (int64_t)p->no_lend, (int64_t)p->no_borrow);

    if (rc != 0)
        snprintf(err, errlen, "store: project '%s' could not be written", p->name);
    return rc;
}

static void project_row(const PGresult *r, int i, struct store_project *p)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", txt(r, i, 0));
    snprintf(p->parent, sizeof(p->parent), "%s", txt(r, i, 1));
    p->deserved_milli = num(r, i, 2);
    p->limit_milli = num(r, i, 3);
    p->weight = (int)num(r, i, 4);
    p->no_lend = num(r, i, 5) != 0;
    p->no_borrow = num(r, i, 6) != 0;
}

static int pg_project_get(struct store *base, const char *name, struct store_project *out)
{
    PGresult *r = NULL;
    int rc = read1(pg_of(base), &r,
                   "SELECT name, parent, deserved_milli, limit_milli, weight, no_lend, no_borrow "
                   "FROM projects WHERE name = $1",
                   "t", name);

    if (rc == 0 && PQntuples(r) == 0)
        rc = -ENOENT;
    if (rc == 0)
        project_row(r, 0, out);
    PQclear(r);
    return rc;
}

static int pg_projects(struct store *base, void (*fn)(const struct store_project *, void *),
                       void *arg)
{
    PGresult *r = NULL;
    int rc = read1(pg_of(base), &r,
                   "SELECT name, parent, deserved_milli, limit_milli, weight, no_lend, no_borrow "
                   "FROM projects ORDER BY name COLLATE \"C\"",
                   "");

    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        struct store_project p;

        project_row(r, i, &p);
        fn(&p, arg);
    }
    PQclear(r);
    return rc;
}

static int pg_user_tokens_revoke(struct store *base, int64_t user_id)
{
    return write1(pg_of(base), true,
                  "UPDATE tokens SET revoked = 1 WHERE user_id = $1::bigint AND revoked = 0", "i",
                  user_id);
}

static int pg_join_token_add(struct store *base, const char *hash, int64_t created_by,
                             int64_t created_ms, int64_t expires_ms, int64_t *id)
{
    struct pg *s = pg_of(base);
    PGresult *r = NULL;
    int rc = begin(s);

    if (rc == 0)
        rc = q(s, &r,
               "INSERT INTO join_tokens (hash, created_by, created_ms, expires_ms) VALUES ($1, "
               "$2::bigint, $3::bigint, $4::bigint) RETURNING id",
               "tiii", hash, created_by, created_ms, expires_ms);
    if (rc == 0)
        *id = num(r, 0, 0);
    PQclear(r);
    return end(s, rc);
}

static int pg_join_tokens(struct store *base, void (*fn)(const struct store_join_token *, void *),
                          void *arg)
{
    PGresult *r = NULL;
    int rc = read1(pg_of(base), &r,
                   "SELECT j.id, coalesce(u.name, ''), j.created_ms, j.expires_ms, j.revoked, "
                   "j.joins FROM join_tokens j LEFT JOIN users u ON u.id = j.created_by ORDER BY "
                   "j.id",
                   "");

    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        struct store_join_token t = {.id = num(r, i, 0),
                                     .created_ms = num(r, i, 2),
                                     .expires_ms = num(r, i, 3),
                                     .revoked = num(r, i, 4) != 0,
                                     .joins = num(r, i, 5)};

        snprintf(t.created_by, sizeof(t.created_by), "%s", txt(r, i, 1));
        fn(&t, arg);
    }
    PQclear(r);
    return rc;
}

/* Revoking a revoked token changes nothing and is not an error; -ENOENT for no such token. */
static int pg_join_token_revoke(struct store *base, int64_t id)
{
    return write1(pg_of(base), true, "UPDATE join_tokens SET revoked = 1 WHERE id = $1::bigint",
                  "i", id);
}

static int pg_node_join(struct store *base, const char *join_hash, const char *user_name,
                        const char *cred_hash, int64_t now_ms)
{
    struct pg *s = pg_of(base);
    PGresult *r = NULL;
    int64_t join_id = 0, user_id = 0;
    int rc = begin(s);

    if (rc == 0)
        rc = q(s, &r, "SELECT id, revoked, expires_ms FROM join_tokens WHERE hash = $1 FOR UPDATE",
               "t", join_hash);
    if (rc == 0) {
        rc = PQntuples(r) != 1                             ? -ENOENT
             : num(r, 0, 1) != 0                           ? -EKEYREVOKED
             : num(r, 0, 2) != 0 && num(r, 0, 2) <= now_ms ? -EKEYEXPIRED
                                                           : 0;
        join_id = rc == 0 ? num(r, 0, 0) : 0;
    }
    PQclear(r);
    r = NULL;
    if (rc == 0)
        rc = q(s, &r, "SELECT id, role FROM users WHERE name = $1", "t", user_name);
    if (rc == 0 && PQntuples(r) == 1) {
        user_id = num(r, 0, 0);
        if (strcmp(txt(r, 0, 1), store_role_name(STORE_ROLE_AGENT)) != 0)
            rc = -EEXIST;
    }
    PQclear(r);
    r = NULL;
    if (rc == 0 && user_id == 0) {
        rc = q(s, &r,
               "INSERT INTO users (name, unix_user, uid, role, created_ms) VALUES ($1, 'root', 0, "
               "$2, $3::bigint) RETURNING id",
               "tti", user_name, store_role_name(STORE_ROLE_AGENT), now_ms);
        if (rc == 0)
            user_id = num(r, 0, 0);
        PQclear(r);
    }
    if (rc == 0)
        rc = w(s, NULL, "INSERT INTO tokens (user_id, hash) VALUES ($1::bigint, $2)", "it", user_id,
               cred_hash);
    if (rc == 0)
        rc = w(s, NULL, "UPDATE join_tokens SET joins = joins + 1 WHERE id = $1::bigint", "i",
               join_id);
    return end(s, rc);
}

static int pg_member_add(struct store *base, const char *project, int64_t user_id)
{
    return write1(pg_of(base), false,
                  "INSERT INTO members (project, user_id) VALUES ($1, $2::bigint) ON CONFLICT "
                  "DO NOTHING",
                  "ti", project, user_id);
}

static int pg_is_member(struct store *base, const char *project, int64_t user_id)
{
    PGresult *r = NULL;
    int rc =
        read1(pg_of(base), &r, "SELECT 1 FROM members WHERE project = $1 AND user_id = $2::bigint",
              "ti", project, user_id);
    int yes = rc == 0 && PQntuples(r) > 0;

    PQclear(r);
    return yes;
}

/* ---- jobs ---- */

static int by_value(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* Puts the jobs' ids in rising order, job by job. */
static void sort_ids(struct store_job *const *jobs, int n)
{
    int64_t *ids = malloc((size_t)n * sizeof(*ids));

    if (ids == NULL)
        return;
    for (int i = 0; i < n; i++)
        ids[i] = jobs[i]->id;
    qsort(ids, (size_t)n, sizeof(*ids), by_value);
    for (int i = 0; i < n; i++)
        jobs[i]->id = ids[i];
    free(ids);
}

/* Jobs a statement inserts at most: 6 parameters each, within libpq's 65535. */
#define INSERT_BATCH 1000

/*
 * Inserts jobs[0..n) in one statement (one round trip), their ids back in order.  The spec
 * texts are kept in specs[] until the statement has run.
 */
static int insert_jobs(struct pg *s, struct store_job *const *jobs, int n)
{
    const char **values = calloc((size_t)n * 6, sizeof(*values));
    char(*nums)[2][24] = calloc((size_t)n, sizeof(*nums));
    char **specs = calloc((size_t)n, sizeof(*specs));
    size_t cap = 160 + (size_t)n * 96, len;
    char *sql = malloc(cap);
    PGresult *r = NULL;
    int rc = 0;

    if (values == NULL || nums == NULL || specs == NULL || sql == NULL)
        rc = -ENOMEM;
    len = rc ? 0
             : (size_t)snprintf(sql, cap,
                                "INSERT INTO jobs (name, project, user_id, state, "
                                "submitted_ms, spec) VALUES ");
    for (int i = 0; i < n && rc == 0; i++) {
        const struct store_job *j = jobs[i];
        int p = i * 6 + 1;

        if ((specs[i] = json_dumps(j->spec, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
            rc = -ENOMEM;
            break;
        }
        snprintf(nums[i][0], sizeof(nums[i][0]), "%lld", (long long)j->user_id);
        snprintf(nums[i][1], sizeof(nums[i][1]), "%lld", (long long)j->submitted_ms);
        values[i * 6] = j->name;
        values[i * 6 + 1] = j->project;
        values[i * 6 + 2] = nums[i][0];
        values[i * 6 + 3] = store_job_state_name(j->state);
        values[i * 6 + 4] = nums[i][1];
        values[i * 6 + 5] = specs[i];
        len += (size_t)snprintf(sql + len, cap - len,
                                "%s($%d, $%d, $%d::bigint, $%d, $%d::bigint, $%d)", i ? ", " : "",
                                p, p + 1, p + 2, p + 3, p + 4, p + 5);
    }
    if (rc == 0) {
        snprintf(sql + len, cap - len, " RETURNING id");
        r = PQexecParams(s->db, sql, n * 6, NULL, values, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            rc = failed(s, s->db, r);
        else if (PQntuples(r) != n)
            rc = -EIO;
        /* The ids were drawn in the order of VALUES: the smallest is the first job's. */
        for (int i = 0; rc == 0 && i < n; i++)
            jobs[i]->id = num(r, i, 0);
        if (rc == 0)
            sort_ids(jobs, n);
        PQclear(r);
    }
    for (int i = 0; specs != NULL && i < n; i++)
        free(specs[i]);
    free(specs);
    free(nums);
    free(values);
    free(sql);
    return rc;
}

static int pg_jobs_add(struct store *base, struct store_job *const *jobs, int n)
{
    struct pg *s = pg_of(base);
    int rc = begin(s);

    for (int i = 0; i < n && rc == 0; i += INSERT_BATCH)
        rc = insert_jobs(s, jobs + i, n - i < INSERT_BATCH ? n - i : INSERT_BATCH);
    if ((rc = end(s, rc)) != 0)
        for (int i = 0; i < n; i++)
            jobs[i]->id = 0;
    return rc;
}

#define JOB_COLUMNS_WITH(spec, swap)                                                               \
    "j.id, j.name, j.project, j.user_id, u.name, j.state, j.reason, j.submitted_ms, "              \
    "j.started_ms, j.finished_ms, " spec                                                           \
    ", j.node, j.gpus, j.exit_code, u.unix_user, u.uid, " swap                                     \
    ", j.control, j.attempts, j.failures, j.borrowed FROM jobs j JOIN users u ON u.id = "          \
    "j.user_id"
#define JOB_COLUMNS JOB_COLUMNS_WITH("j.spec", "j.swap")

static void job_row(const PGresult *r, int i, struct store_job *j, bool light)
{
    memset(j, 0, sizeof(*j));
    j->id = num(r, i, 0);
    if (light) {
        snprintf(j->project, sizeof(j->project), "%s", txt(r, i, 2));
        j->user_id = num(r, i, 3);
        store_job_state_parse(txt(r, i, 5), &j->state);
        j->submitted_ms = num(r, i, 7);
        j->started_ms = num(r, i, 8);
        j->finished_ms = num(r, i, 9);
        snprintf(j->node, sizeof(j->node), "%s", txt(r, i, 11));
        snprintf(j->gpus, sizeof(j->gpus), "%s", txt(r, i, 12));
        j->exit_code = (int)num(r, i, 13);
        j->attempts = (int)num(r, i, 18);
        j->failures = (int)num(r, i, 19);
        /* What the scheduler's swaps and borrowing change. */
        if (txt(r, i, 16)[0] != '\0')
            j->swap = json_loads(txt(r, i, 16), 0, NULL);
        j->borrowed = num(r, i, 20) != 0;
        return;
    }
    snprintf(j->name, sizeof(j->name), "%s", txt(r, i, 1));
    snprintf(j->project, sizeof(j->project), "%s", txt(r, i, 2));
    j->user_id = num(r, i, 3);
    snprintf(j->user, sizeof(j->user), "%s", txt(r, i, 4));
    store_job_state_parse(txt(r, i, 5), &j->state);
    snprintf(j->reason, sizeof(j->reason), "%s", txt(r, i, 6));
    j->submitted_ms = num(r, i, 7);
    j->started_ms = num(r, i, 8);
    j->finished_ms = num(r, i, 9);
    j->spec = json_loads(txt(r, i, 10), 0, NULL);
    snprintf(j->node, sizeof(j->node), "%s", txt(r, i, 11));
    snprintf(j->gpus, sizeof(j->gpus), "%s", txt(r, i, 12));
    j->exit_code = (int)num(r, i, 13);
    snprintf(j->unix_user, sizeof(j->unix_user), "%s", txt(r, i, 14));
    j->uid = num(r, i, 15);
    j->swap = json_loads(txt(r, i, 16), 0, NULL);
    snprintf(j->control, sizeof(j->control), "%s", txt(r, i, 17));
    j->attempts = (int)num(r, i, 18);
    j->failures = (int)num(r, i, 19);
    j->borrowed = num(r, i, 20) != 0;
}

static int pg_job_get(struct store *base, int64_t id, struct store_job *out)
{
    PGresult *r = NULL;
    int rc = read1(pg_of(base), &r, "SELECT " JOB_COLUMNS " WHERE j.id = $1::bigint", "i", id);

    if (rc == 0 && PQntuples(r) == 0)
        rc = -ENOENT;
    if (rc == 0)
        job_row(r, 0, out, false);
    PQclear(r);
    return rc;
}

static int pg_job_timeline(struct store *base, int64_t id, json_t **out)
{
    PGresult *r = NULL;
    int rc = read1(pg_of(base), &r,
                   "SELECT state, at_ms, reason FROM job_states WHERE job_id = $1::bigint ORDER "
                   "BY seq",
                   "i", id);

    *out = NULL;
    if (rc != 0)
        return rc;
    *out = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(*out, json_pack("{s:s, s:I, s:s}", "state", txt(r, i, 0), "at_ms",
                                              (json_int_t)num(r, i, 1), "reason", txt(r, i, 2)));
    PQclear(r);
    return 0;
}

static int pg_jobs(struct store *base, const struct store_job_filter *f,
                   int (*fn)(const struct store_job *, void *), void *arg)
{
    char states[128] = "";
    size_t n_states = 0;
    PGresult *r = NULL;
    int rc;

    /* ",succeeded,failed,": the states wanted, for strpos(). */
    for (int i = 0; i <= STORE_JOB_CANCELLED; i++)
        if (f->states >> i & 1)
            n_states += (size_t)snprintf(states + n_states, sizeof(states) - n_states, ",%s",
                                         store_job_state_name((enum store_job_state)i));
    if (n_states > 0)
        snprintf(states + n_states, sizeof(states) - n_states, ",");
    rc = read1(
        pg_of(base), &r,
        /* A light read ($10) leaves the specs in the database (swaps are read: they change). */
        "SELECT " JOB_COLUMNS_WITH(
            "CASE WHEN $10::bigint = 1 THEN '' ELSE j.spec END", "j.swap") " WHERE ($1::bigint = 0 OR "
                                                                 "j.user_id = $1::bigint) AND "
                                                                 "($2::text = '' OR j.project = "
                                                                 "$2::text) AND ($3::text = '' OR "
                                                                 "j.state = "
                                                                 "$3::text) AND j.id > $4::bigint "
                                                                 "AND ($6::text = '' OR (j.state "
                                                                 "IN (" HOLDING ") AND " ON_NODE(
                                                                     "j.node",
                                                                     "$6::text") ")) AND ($7::text "
                                                                                 "= '' OR "
                                                                                 "strpos($7::text, "
                                                                                 "',' || j.state "
                                                                                 "|| ',') > 0) AND "
                                                                                 "($8::bigint = 0 "
                                                                                 "OR "
                                                                                 "j.finished_ms = "
                                                                                 "0 OR "
                                                                                 "j.finished_ms >= "
                                                                                 "$8::bigint) AND "
                                                                                 "($9::bigint = 0 "
                                                                                 "OR "
                                                                                 "j.submitted_ms < "
                                                                                 "$9::bigint) "
                                                                                 "ORDER BY j.id "
                                                                                 "LIMIT CASE WHEN "
                                                                                 "$5::bigint > 0 "
                                                                                 "THEN "
                                                                                 "$5::bigint END",
        "ittiittiii", f->user_id, f->project ? f->project : "",
        f->state >= 0 ? store_job_state_name((enum store_job_state)f->state) : "", f->after_id,
        (int64_t)f->limit, f->node ? f->node : "", states, f->since_ms, f->until_ms,
        (int64_t)f->light);
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        struct store_job j;
        int stop;

        job_row(r, i, &j, f->light);
        stop = fn(&j, arg);
        store_job_clear(&j);
        if (stop)
            break;
    }
    PQclear(r);
    return rc;
}

/* Ends a job's open run, if it has one; inside the caller's transaction. */
static int end_run(struct pg *s, int64_t id, const char *outcome, int64_t now_ms)
{
    return w(s, NULL,
             "UPDATE runs SET ended_ms = GREATEST($1::bigint, started_ms), outcome = $2 WHERE "
             "job_id = $3::bigint AND ended_ms = 0",
             "iti", now_ms, outcome, id);
}

/* A write that must change a row: -EBUSY when it changed none. */
static int changed(int rc, int64_t changes)
{
    return rc == 0 && changes == 0 ? -EBUSY : rc;
}

/* The job-moving writes: a job not in the state they start from is -EBUSY. */
static int busy(int rc)
{
    return rc == -ENOENT ? -EBUSY : rc;
}

static int pg_job_transition(struct store *base, int64_t id, unsigned from, enum store_job_state to,
                             const char *reason, int64_t now_ms)
{
    struct pg *s = pg_of(base);
    enum store_job_state cur = STORE_JOB_PENDING;
    PGresult *r = NULL;
    int rc = begin(s);

    if (rc == 0)
        rc = q(s, &r, "SELECT state FROM jobs WHERE id = $1::bigint FOR UPDATE", "i", id);
    if (rc == 0 && PQntuples(r) == 0) {
        rc = -ENOENT;
    } else if (rc == 0) {
        store_job_state_parse(txt(r, 0, 0), &cur);
        rc = (from >> cur & 1) ? 0 : -EBUSY;
    }
    PQclear(r);
    if (rc == 0)
        rc = w(s, NULL,
               "UPDATE jobs SET state = $1, reason = $2, started_ms = CASE WHEN $3::int <> 0 "
               "THEN $4::bigint ELSE started_ms END, finished_ms = CASE WHEN $5::int <> 0 THEN "
               "$6::bigint ELSE finished_ms END WHERE id = $7::bigint",
               "ttiiiii", store_job_state_name(to), reason ? reason : "",
               (int64_t)(to == STORE_JOB_RUNNING), now_ms, (int64_t)(to >= STORE_JOB_SUCCEEDED),
               now_ms, id);
    if (rc == 0 && to >= STORE_JOB_SUCCEEDED)
        rc = end_run(s, id, store_job_state_name(to), now_ms);
    return end(s, rc);
}

/* Appends v, quoted, to a PostgreSQL array literal that the caller closes with '}'. */
static int array_add(char **buf, size_t *len, size_t *cap, const char *v)
{
    size_t need = *len + strlen(v) * 2 + 8;

    if (need > *cap) {
        char *more = realloc(*buf, need * 2);

        if (more == NULL)
            return -ENOMEM;
        *buf = more;
        *cap = need * 2;
    }
    char open = *len == 0 ? '{' : ',';

    (*buf)[(*len)++] = open;
    (*buf)[(*len)++] = '"';
    for (; *v != '\0'; v++) {
        if (*v == '"' || *v == '\\')
            (*buf)[(*len)++] = '\\';
        (*buf)[(*len)++] = *v;
    }
    (*buf)[(*len)++] = '"';
    (*buf)[*len] = '\0';
    return 0;
}

/*
 * The reasons of many waiting jobs in one statement: the ids and reasons travel as two arrays,
 * so that a pass over many jobs costs one round trip.
 */
static int pg_job_reasons(struct store *base, const int64_t *ids, const char *const *reasons, int n)
{
    struct pg *s = pg_of(base);
    char *idv = NULL, *why = NULL, num_text[24];
    size_t il = 0, ic = 0, wl = 0, wc = 0;
    int rc = 0;

    if (n == 0)
        return 0;
    for (int i = 0; i < n && rc == 0; i++) {
        snprintf(num_text, sizeof(num_text), "%lld", (long long)ids[i]);
        rc = array_add(&idv, &il, &ic, num_text);
        if (rc == 0)
            rc = array_add(&why, &wl, &wc, reasons[i]);
    }
    if (rc == 0) {
        idv[il++] = '}', idv[il] = '\0';
        why[wl++] = '}', why[wl] = '\0';
        rc = begin(s);
        if (rc == 0)
            rc = w(s, NULL,
                   "UPDATE jobs j SET reason = x.r FROM unnest($1::bigint[], $2::text[]) AS "
                   "x(id, r) WHERE j.id = x.id AND j.reason <> x.r AND j.state = 'pending'",
                   "tt", idv, why);
        rc = end(s, rc);
    }
    free(idv);
    free(why);
    return rc;
}

/* ---- nodes and assignments ---- */

static int share_telemetry(struct pg *s, const char *node, json_t *telemetry, int64_t prev,
                           int64_t now);

static int pg_node_put(struct store *base, const struct store_node *n)
{
    char *gpus = json_dumps(n->gpus, JSON_COMPACT);
    int rc;

    if (gpus == NULL)
        return -ENOMEM;
    rc = write1(pg_of(base), true,
                "INSERT INTO nodes (name, cpu_milli, mem_mib, gpus, heartbeat_ms, address) VALUES "
                "($1, $2::bigint, $3::bigint, $4, $5::bigint, $6) ON CONFLICT (name) DO UPDATE "
                "SET cpu_milli = excluded.cpu_milli, mem_mib = excluded.mem_mib, gpus = "
                "excluded.gpus, heartbeat_ms = excluded.heartbeat_ms, address = excluded.address",
                "tiitit", n->name, n->cpu_milli, n->mem_mib, gpus, n->heartbeat_ms, n->address);
    free(gpus);
    return rc;
}

static int pg_node_heartbeat(struct store *base, const char *name, int64_t now_ms,
                             json_t *telemetry)
{
    struct pg *s = pg_of(base);
    char *text = telemetry ? json_dumps(telemetry, JSON_COMPACT) : NULL;
    PGresult *r = NULL;
    int64_t prev = 0;
    int rc;

    if (telemetry != NULL && text == NULL)
        return -ENOMEM;
    rc = begin(s);
    /* Not waiting for its WAL to be flushed: the next flushed commit takes it along. */
    if (rc == 0)
        rc = w(s, NULL, "SET LOCAL synchronous_commit = off", "");
    if (rc == 0)
        rc = q(s, &r, "SELECT heartbeat_ms FROM nodes WHERE name = $1 FOR UPDATE", "t", name);
    if (rc == 0 && PQntuples(r) == 0)
        rc = -ENOENT;
    else if (rc == 0)
        prev = num(r, 0, 0);
    PQclear(r);
    if (rc == 0)
        rc =
            w(s, NULL, "UPDATE nodes SET heartbeat_ms = $1::bigint, telemetry = $2 WHERE name = $3",
              "itt", now_ms, text ? text : "", name);
    if (rc == 0 && telemetry != NULL)
        rc = share_telemetry(s, name, telemetry, prev, now_ms);
    free(text);
    return end(s, rc);
}

static int pg_node_set_state(struct store *base, const char *name, enum store_node_state st)
{
    return write1(pg_of(base), true, "UPDATE nodes SET state = $1 WHERE name = $2", "tt",
                  store_node_state_name(st), name);
}

#define NODE_COLUMNS "name, cpu_milli, mem_mib, gpus, state, heartbeat_ms, telemetry, address"

static void node_row(const PGresult *r, int i, struct store_node *n)
{
    *n = (struct store_node){0};
    snprintf(n->name, sizeof(n->name), "%s", txt(r, i, 0));
    n->cpu_milli = num(r, i, 1);
    n->mem_mib = num(r, i, 2);
    n->gpus = json_loads(txt(r, i, 3), 0, NULL);
    store__node_state_parse(txt(r, i, 4), &n->state);
    n->heartbeat_ms = num(r, i, 5);
    n->telemetry = json_loads(txt(r, i, 6), 0, NULL);
    snprintf(n->address, sizeof(n->address), "%s", txt(r, i, 7));
}

static int pg_nodes(struct store *base, void (*fn)(const struct store_node *, void *), void *arg)
{
    PGresult *r = NULL;
    int rc = read1(pg_of(base), &r,
                   "SELECT " NODE_COLUMNS " FROM nodes ORDER BY name COLLATE \"C\"", "");

    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        struct store_node n;

        node_row(r, i, &n);
        fn(&n, arg);
        store_node_clear(&n);
    }
    PQclear(r);
    return rc;
}

static int pg_node_get(struct store *base, const char *name, struct store_node *out)
{
    PGresult *r = NULL;
    int rc =
        read1(pg_of(base), &r, "SELECT " NODE_COLUMNS " FROM nodes WHERE name = $1", "t", name);

    if (rc == 0 && PQntuples(r) == 0)
        rc = -ENOENT;
    if (rc == 0)
        node_row(r, 0, out);
    PQclear(r);
    return rc;
}

static int pg_node_requeue(struct store *base, const char *name, const char *reason, int64_t now_ms)
{
    struct pg *s = pg_of(base);
    int rc = begin(s);

    if (rc == 0)
        rc = w(s, NULL,
               "UPDATE runs SET ended_ms = GREATEST($1::bigint, started_ms), outcome = 'node "
               "silent' WHERE ended_ms = 0 AND job_id IN (SELECT id FROM jobs WHERE " ON_NODE(
                   "node", "$2::text") " AND state IN (" HOLDING "))",
               "it", now_ms, name);
    if (rc == 0)
        rc = w(s, NULL,
               "UPDATE jobs SET state = 'pending', node = '', gpus = '', ranks = '', control = "
               "'', reason = $1 WHERE " ON_NODE("node", "$2::text") " AND state IN (" HOLDING ")",
               "tt", reason, name);
    return end(s, rc);
}

/* store_job_assign inside the caller's transaction. */
static int assign_in(struct pg *s, int64_t id, const char *node, const char *gpus,
                     int64_t gpu_milli, int64_t alloc_milli, bool borrowed, int64_t now_ms)
{
    int64_t changes = 0;
    int rc = w(s, &changes,
               "UPDATE jobs SET state = 'assigned', node = $1, gpus = $2, reason = '', "
               "ranks = '', control = '', swap = '', started_ms = $3::bigint, borrowed = "
               "$5::int, attempts = attempts + 1 WHERE id = $4::bigint AND state = 'pending'",
               "ttiii", node, gpus, now_ms, id, (int64_t)borrowed);

    if (rc == 0)
        rc = changed(rc, changes);
    if (rc == 0)
        rc = w(s, NULL,
               "INSERT INTO runs (job_id, attempt, node, gpus, gpu_milli, alloc_milli, "
               "started_ms) SELECT id, attempts, node, gpus, $1::bigint, $2::bigint, started_ms "
               "FROM jobs WHERE id = $3::bigint ON CONFLICT (job_id, attempt) DO UPDATE SET node "
               "= excluded.node, gpus = excluded.gpus, gpu_milli = excluded.gpu_milli, "
               "alloc_milli = excluded.alloc_milli, started_ms = excluded.started_ms, ended_ms = "
               "0, outcome = '', used_milli = -1",
               "iii", gpu_milli, alloc_milli, id);
    return rc;
}

/* store_job_requeue inside the caller's transaction. */
static int requeue_in(struct pg *s, int64_t id, const char *reason, int64_t now_ms)
{
    int64_t changes = 0;
    int rc = w(s, &changes,
               "UPDATE jobs SET state = 'pending', node = '', gpus = '', ranks = '', "
               "control = '', reason = $1 WHERE id = $2::bigint AND state IN (" HOLDING ")",
               "ti", reason, id);

    if (rc == 0)
        rc = changed(rc, changes);
    if (rc == 0)
        rc = end_run(s, id, "preempted", now_ms);
    return rc;
}

static int pg_job_assign(struct store *base, int64_t id, const char *node, const char *gpus,
                         int64_t gpu_milli, int64_t alloc_milli, bool borrowed, int64_t now_ms)
{
    struct pg *s = pg_of(base);
    int rc = begin(s);

    if (rc == 0)
        rc = assign_in(s, id, node, gpus, gpu_milli, alloc_milli, borrowed, now_ms);
    return end(s, rc);
}

static int pg_jobs_place(struct store *base, struct store_placement *p, int n, int64_t now_ms)
{
    struct pg *s = pg_of(base);
    int rc = begin(s);

    for (int i = 0; i < n && rc == 0; i++) {
        p[i].rc = p[i].requeue ? requeue_in(s, p[i].id, p[i].reason, now_ms)
                               : assign_in(s, p[i].id, p[i].node, p[i].gpus, p[i].gpu_milli,
                                           p[i].alloc_milli, p[i].borrowed, now_ms);
        /* Only the first statement can find the job moved on: nothing of it was written. */
        rc = p[i].rc == -EBUSY ? 0 : p[i].rc;
    }
    return end(s, rc);
}

/*
 * A failed run: the job goes back to the queue while it has retries left (failures before this
 * one below its spec's "retries"), else it has failed.  Inside the caller's transaction.
 */
static int job_failed_in(struct pg *s, int64_t id, const char *node, int exit_code, int64_t now_ms)
{
    int64_t changes = 0;
    int rc = w(s, &changes,
               "UPDATE jobs SET failures = failures + 1, exit_code = $1::int, state = CASE WHEN "
               "failures < " RETRIES " THEN 'pending' ELSE 'failed' END, reason = CASE WHEN "
               "failures < " RETRIES " THEN format('attempt %s failed with exit code %s; queued "
               "again (retry %s of %s)', attempts, $1::int, failures + 1, " RETRIES ") ELSE "
               "format('failed with exit code %s', $1::int) END, finished_ms = CASE WHEN failures "
               "< " RETRIES " THEN 0 ELSE $2::bigint END, node = CASE WHEN failures < " RETRIES
               " THEN '' ELSE node END, gpus = CASE WHEN failures < " RETRIES " THEN '' ELSE gpus "
               "END, ranks = '', control = '' WHERE id = $3::bigint AND " ON_NODE(
                   "node", "$4::text") " AND state IN ('assigned', 'running', 'suspended')",
               "iiit", (int64_t)exit_code, now_ms, id, node);

    rc = changed(rc, changes);
    if (rc == 0)
        rc = end_run(s, id, "failed", now_ms);
    return rc;
}

/* A replica ended well: counted once; the job has succeeded when all have.  Inside the caller's
 * transaction. */
static int rank_succeeded_in(struct pg *s, int64_t id, const char *node, int rank, int64_t now_ms)
{
    int64_t changes = 0;
    int rc = w(s, &changes,
               "UPDATE jobs SET ranks = ranks || $3::text || ' ', state = CASE state WHEN "
               "'assigned' THEN 'running' ELSE state END WHERE id = $1::bigint AND " ON_NODE(
                   "node", "$2::text") " AND state IN ('assigned', 'running', 'suspended') AND "
                                       "strpos(' ' || ranks, ' ' || $3::text || ' ') = 0",
               "iti", id, node, (int64_t)rank);

    rc = changed(rc, changes);
    if (rc == 0)
        rc = w(s, &changes,
               "UPDATE jobs SET state = 'succeeded', exit_code = 0, finished_ms = $2::bigint "
               "WHERE id = $1::bigint AND length(ranks) - length(replace(ranks, ' ', '')) >= "
               "coalesce((spec::jsonb->>'replicas')::int, 1)",
               "ii", id, now_ms);
    if (rc == 0 && changes > 0)
        rc = end_run(s, id, "succeeded", now_ms);
    return rc;
}

/* One agent's report inside the caller's transaction: -EBUSY, nothing of it written, when the
 * job is not in a state for it (only a report's first statement can find that). */
static int report_in(struct pg *s, const struct store_report *r, int64_t now_ms)
{
    int64_t changes = 0;
    int rc;

    if (r->swap != NULL)
        rc = w(s, &changes,
               "UPDATE jobs SET state = $1, swap = $2 WHERE id = $3::bigint AND node = "
               "$4 AND state IN ('running', 'swapped')",
               "ttit", store_job_state_name(r->to), r->swap, r->id, r->node);
    else if (r->to == STORE_JOB_RUNNING) /* started, or resumed */
        rc = w(s, &changes,
               "UPDATE jobs SET state = 'running' WHERE id = $1::bigint AND " ON_NODE(
                   "node", "$2::text") " AND (state = 'assigned' OR (state = "
                                       "'suspended' AND control = ''))",
               "it", r->id, r->node);
    else if (r->to == STORE_JOB_SUSPENDED)
        rc = w(s, &changes,
               "UPDATE jobs SET state = 'suspended' WHERE id = $1::bigint AND " ON_NODE(
                   "node", "$2::text") " AND state = 'running' AND control = 'suspend'",
               "it", r->id, r->node);
    else if (r->to == STORE_JOB_SUCCEEDED)
        rc = rank_succeeded_in(s, r->id, r->node, r->rank, now_ms);
    else /* one replica failing fails the gang (or queues it again, while it has retries) */
        rc = job_failed_in(s, r->id, r->node, r->exit_code, now_ms);
    if (r->swap != NULL || r->to == STORE_JOB_RUNNING || r->to == STORE_JOB_SUSPENDED)
        rc = changed(rc, changes);
    if (rc == 0 && r->requeue != NULL) {
        rc = requeue_in(s, r->id, r->requeue, now_ms);
        rc = rc == -EBUSY ? 0 : rc; /* the report stands; the job held no GPUs to give back */
    }
    return rc;
}

static int pg_job_report(struct store *base, int64_t id, const char *node, int rank,
                         enum store_job_state to, int exit_code, int64_t now_ms)
{
    struct pg *s = pg_of(base);
    struct store_report r = {
        .id = id, .node = node, .rank = rank, .to = to, .exit_code = exit_code};
    int rc = begin(s);

    if (rc == 0)
        rc = report_in(s, &r, now_ms);
    return end(s, rc);
}

static int pg_jobs_report(struct store *base, struct store_report *r, int n, int64_t now_ms)
{
    struct pg *s = pg_of(base);
    int rc = begin(s);

    for (int i = 0; i < n && rc == 0; i++) {
        r[i].rc = report_in(s, &r[i], now_ms);
        rc = r[i].rc == -EBUSY ? 0 : r[i].rc;
    }
    return end(s, rc);
}

static int pg_job_control(struct store *base, int64_t id, const char *control)
{
    /* Suspending a running job; resuming a suspended one, or one not suspended yet. */
    return busy(write1(pg_of(base), true,
                       "UPDATE jobs SET control = $1::text WHERE id = $2::bigint AND (($1::text = "
                       "'suspend' AND state = 'running' AND control = '') OR ($1::text = '' AND "
                       "control = 'suspend' AND state IN ('running', 'suspended')))",
                       "ti", control, id));
}

static int pg_job_swap_want(struct store *base, int64_t id, const char *want, const char *why)
{
    return busy(write1(pg_of(base), true,
                       "UPDATE jobs SET swap = ((CASE swap WHEN '' THEN '{}' ELSE swap END)::jsonb "
                       "|| jsonb_build_object('want', $1::text, 'error', '', 'why', $3::text))"
                       "::text, borrowed = CASE WHEN $3::text <> '' AND $1::text = 'in' THEN 0 "
                       "ELSE borrowed END WHERE id = $2::bigint AND (($1::text = 'out' AND state "
                       "= 'running') OR ($1::text = 'in' AND (state = 'swapped' OR (state = "
                       "'running' AND (CASE WHEN swap = '' THEN '' ELSE swap::jsonb->>'want' END) "
                       "= 'out'))))",
                       "tit", want, id, why != NULL ? why : ""));
}

static int pg_job_swap_report(struct store *base, int64_t id, const char *node,
                              enum store_job_state to, const char *swap)
{
    struct pg *s = pg_of(base);
    struct store_report r = {.id = id, .node = node, .to = to, .swap = swap};
    int rc = begin(s);

    if (rc == 0)
        rc = report_in(s, &r, 0);
    return end(s, rc);
}

static int pg_job_requeue(struct store *base, int64_t id, const char *reason, int64_t now_ms)
{
    struct pg *s = pg_of(base);
    int rc = begin(s);

    if (rc == 0)
        rc = requeue_in(s, id, reason, now_ms);
    return end(s, rc);
}

/* ---- history and usage ---- */

static int pg_job_runs(struct store *base, int64_t id, void (*fn)(const struct store_run *, void *),
                       void *arg)
{
    PGresult *r = NULL;
    int rc = read1(pg_of(base), &r,
                   "SELECT attempt, node, gpus, gpu_milli, alloc_milli, started_ms, ended_ms, "
                   "outcome, used_milli FROM runs WHERE job_id = $1::bigint ORDER BY attempt",
                   "i", id);

    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        struct store_run run = {.attempt = (int)num(r, i, 0)};

        snprintf(run.node, sizeof(run.node), "%s", txt(r, i, 1));
        snprintf(run.gpus, sizeof(run.gpus), "%s", txt(r, i, 2));
        run.gpu_milli = num(r, i, 3);
        run.alloc_milli = num(r, i, 4);
        run.started_ms = num(r, i, 5);
        run.ended_ms = num(r, i, 6);
        snprintf(run.outcome, sizeof(run.outcome), "%s", txt(r, i, 7));
        run.used_milli = num(r, i, 8);
        fn(&run, arg);
    }
    PQclear(r);
    return rc;
}

static int pg_job_counts(struct store *base, int64_t counts[STORE_JOB_CANCELLED + 1])
{
    PGresult *r = NULL;
    int rc = read1(pg_of(base), &r, "SELECT state, count(*) FROM jobs GROUP BY state", "");

    memset(counts, 0, sizeof(int64_t) * (STORE_JOB_CANCELLED + 1));
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        enum store_job_state js;

        if (store_job_state_parse(txt(r, i, 0), &js) == 0)
            counts[js] = num(r, i, 1);
    }
    PQclear(r);
    return rc;
}

/* Rows of (key, then numbers) into {"KEY": {names[0]: value, ...}}, adding to what is there;
 * on the read connection, locked by the caller. */
static int rows_into(struct pg *s, json_t *out, const char *const *names, double scale,
                     const char *sql, const char *fmt, ...)
{
    PGresult *r = NULL;
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vq_on(s, s->rd, &r, sql, fmt, ap);
    va_end(ap);
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        const char *key = txt(r, i, 0);
        json_t *row = json_object_get(out, key);

        if (row == NULL)
            json_object_set_new(out, key, row = json_object());
        for (int k = 0; names[k] != NULL; k++) {
            double v = strtod(txt(r, i, k + 1), NULL);

            if (strcmp(names[k], "jobs") == 0 || strcmp(names[k], "allocated_milli") == 0 ||
                strcmp(names[k], "used_milli") == 0)
                json_object_set_new(row, names[k], json_integer((json_int_t)v));
            else
                json_object_set_new(row, names[k], json_real(v * scale));
        }
    }
    PQclear(r);
    return rc;
}

static int pg_project_holdings(struct store *base, json_t **out)
{
    static const char *const names[] = {"allocated_milli", "used_milli", "jobs", NULL};
    struct pg *s = pg_of(base);
    int rc;

    *out = json_object();
    pthread_mutex_lock(&s->rmu);
    rc = rows_into(s, *out, names, 1,
                   "SELECT j.project, sum(r.alloc_milli), sum(CASE WHEN j.state = 'running' AND "
                   "r.used_milli > 0 THEN r.used_milli ELSE 0 END), count(*) FROM runs r JOIN "
                   "jobs j ON j.id = r.job_id WHERE r.ended_ms = 0 AND j.state IN ('assigned', "
                   "'running', 'swapped') GROUP BY j.project",
                   "");
    pthread_mutex_unlock(&s->rmu);
    return rc;
}

static int pg_usage(struct store *base, const struct store_usage_query *uq, json_t **out)
{
    static const char *const alloc[] = {"allocated_gpu_hours", "jobs", NULL};
    static const char *const used[] = {"used_gpu_hours", "measured_gpu_hours", NULL};
    /* Milli-GPU milliseconds, and GPU milliseconds, in GPU-hours. */
    const double milli_ms = 1.0 / 1000 / STORE_HOUR_MS, gpu_ms = 1.0 / STORE_HOUR_MS;
    struct pg *s = pg_of(base);
    int rc;

    *out = json_object();
    pthread_mutex_lock(&s->rmu);
    rc = rows_into(s, *out, alloc, milli_ms,
                   "SELECT CASE WHEN $4::int <> 0 THEN u.name ELSE j.project END, "
                   "sum(r.alloc_milli * GREATEST(0, LEAST(CASE r.ended_ms WHEN 0 THEN $3::bigint "
                   "ELSE r.ended_ms END, $2::bigint) - GREATEST(r.started_ms, $1::bigint))), "
                   "count(DISTINCT r.job_id) FROM runs r JOIN jobs j ON j.id = r.job_id JOIN "
                   "users u ON u.id = j.user_id WHERE r.started_ms < $2::bigint AND (r.ended_ms = "
                   "0 OR r.ended_ms > $1::bigint) AND ($5::bigint = 0 OR j.user_id = $5::bigint) "
                   "GROUP BY 1",
                   "iiiii", uq->since_ms, uq->until_ms, uq->now_ms, (int64_t)uq->by_user,
                   uq->user_id);
    /* An hour the period cuts counts for the part of it inside the period. */
    if (rc == 0)
        rc = rows_into(s, *out, used, gpu_ms,
                       "SELECT CASE WHEN $3::int <> 0 THEN u.name ELSE j.project END, "
                       "sum(x.used_gpu_ms * (GREATEST(0, LEAST(x.hour_ms + 3600000, $2::bigint) - "
                       "GREATEST(x.hour_ms, $1::bigint)) / 3600000.0)), sum(x.measured_gpu_ms * "
                       "(GREATEST(0, LEAST(x.hour_ms + 3600000, $2::bigint) - GREATEST(x.hour_ms, "
                       "$1::bigint)) / 3600000.0)) FROM usage x JOIN jobs j ON j.id = x.job_id "
                       "JOIN users u ON u.id = j.user_id WHERE x.hour_ms < $2::bigint AND "
                       "x.hour_ms + 3600000 > $1::bigint AND ($4::bigint = 0 OR j.user_id = "
                       "$4::bigint) GROUP BY 1",
                       "iiii", uq->since_ms, uq->until_ms, (int64_t)uq->by_user, uq->user_id);
    pthread_mutex_unlock(&s->rmu);
    return rc;
}

/* Adds GPU-milliseconds to a job's usage, split at the hours [from, to) crosses. */
static int add_usage(struct pg *s, int64_t job, int64_t from, int64_t to, int64_t used_milli,
                     int64_t measured_milli)
{
    int rc = 0;

    while (from < to && rc == 0) {
        int64_t hour = from - from % STORE_HOUR_MS;
        int64_t upto = to < hour + STORE_HOUR_MS ? to : hour + STORE_HOUR_MS;

        rc = w(s, NULL,
               "INSERT INTO usage (job_id, hour_ms, used_gpu_ms, measured_gpu_ms) VALUES "
               "($1::bigint, $2::bigint, $3::bigint, $4::bigint) ON CONFLICT (job_id, hour_ms) DO "
               "UPDATE SET used_gpu_ms = usage.used_gpu_ms + excluded.used_gpu_ms, "
               "measured_gpu_ms = usage.measured_gpu_ms + excluded.measured_gpu_ms",
               "iiii", job, hour, used_milli * (upto - from) / 1000,
               measured_milli * (upto - from) / 1000);
        from = upto;
    }
    return rc;
}

/* The running jobs on a node, with their GPUs there; the caller frees *out. */
static int node_shares(struct pg *s, const char *node, struct store_share **out, int *n)
{
    PGresult *r = NULL;
    int rc = q(s, &r,
               "SELECT r.job_id, j.node, r.gpus, r.gpu_milli, r.started_ms FROM runs r JOIN jobs "
               "j ON j.id = r.job_id WHERE r.ended_ms = 0 AND j.state = 'running' AND " ON_NODE(
                   "j.node", "$1::text"),
               "t", node);

    *out = NULL;
    *n = 0;
    if (rc != 0)
        return rc;
    if ((*out = calloc((size_t)PQntuples(r) + 1, sizeof(**out))) == NULL) {
        PQclear(r);
        return -ENOMEM;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        (*out)[i] = (struct store_share){
            .job = num(r, i, 0), .gpu_milli = num(r, i, 3), .started_ms = num(r, i, 4)};
        store__gpus_on(txt(r, i, 1), txt(r, i, 2), node, &(*out)[i]);
    }
    *n = PQntuples(r);
    PQclear(r);
    return 0;
}

/*
 * What a heartbeat measured, given to the jobs running on the node (store__shares_used), for the
 * time since the node's previous heartbeat.
 */
static int share_telemetry(struct pg *s, const char *node, json_t *telemetry, int64_t prev,
                           int64_t now)
{
    struct store_share *sh;
    int64_t *used;
    int n, rc;

    if ((rc = node_shares(s, node, &sh, &n)) != 0)
        return rc;
    if ((used = calloc((size_t)n * 2 + 1, sizeof(*used))) == NULL) {
        free(sh);
        return -ENOMEM;
    }
    store__shares_used(telemetry, sh, n, used, used + n);
    for (int k = 0; k < n && rc == 0; k++) {
        int64_t from = prev > sh[k].started_ms ? prev : sh[k].started_ms;

        if (used[n + k] == 0)
            continue;
        rc = w(s, NULL,
               "UPDATE runs SET used_milli = $1::bigint WHERE job_id = $2::bigint AND ended_ms = 0",
               "ii", used[k], sh[k].job);
        if (rc == 0 && prev > 0 && now - prev <= STORE_HEARTBEAT_GAP_MAX_MS)
            rc = add_usage(s, sh[k].job, from, now, used[k], used[n + k]);
    }
    free(used);
    free(sh);
    return rc;
}

static const struct store_ops pg_ops = {
    .close = pg_close,
    .settings = pg_settings,
    .lead_try = pg_lead_try,
    .leading = pg_leading,
    .leader = pg_leader,
    .user_add = pg_user_add,
    .user_get = pg_user_get,
    .users_count = pg_users_count,
    .token_add = pg_token_add,
    .token_user = pg_token_user,
    .user_tokens_revoke = pg_user_tokens_revoke,
    .join_token_add = pg_join_token_add,
    .join_tokens = pg_join_tokens,
    .join_token_revoke = pg_join_token_revoke,
    .node_join = pg_node_join,
    .session_add = pg_session_add,
    .session_user = pg_session_user,
    .session_delete = pg_session_delete,
    .project_put = pg_project_put,
    .project_get = pg_project_get,
    .projects = pg_projects,
    .member_add = pg_member_add,
    .is_member = pg_is_member,
    .jobs_add = pg_jobs_add,
    .job_get = pg_job_get,
    .jobs = pg_jobs,
    .job_timeline = pg_job_timeline,
    .job_transition = pg_job_transition,
    .job_assign = pg_job_assign,
    .job_requeue = pg_job_requeue,
    .jobs_place = pg_jobs_place,
    .job_runs = pg_job_runs,
    .job_counts = pg_job_counts,
    .project_holdings = pg_project_holdings,
    .usage = pg_usage,
    .job_swap_want = pg_job_swap_want,
    .job_swap_report = pg_job_swap_report,
    .job_report = pg_job_report,
    .jobs_report = pg_jobs_report,
    .job_control = pg_job_control,
    .node_put = pg_node_put,
    .node_heartbeat = pg_node_heartbeat,
    .node_set_state = pg_node_set_state,
    .nodes = pg_nodes,
    .node_get = pg_node_get,
    .node_requeue = pg_node_requeue,
    .job_reasons = pg_job_reasons,
};
