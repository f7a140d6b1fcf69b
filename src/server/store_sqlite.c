/*
 * The store on SQLite: one connection in WAL mode with synchronous=FULL, writes in BEGIN
 * IMMEDIATE transactions, a mutex around the connection, and versioned migrations.
 */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/store_impl.h"

#define STMT_CACHE 32
#define READERS 16

struct sq {
    struct store base;
    sqlite3 *db;
    /* The writer's connection, taken in turn (a ticket lock): a scheduler pass writing in many
     * transactions lets the API in between them, which a mutex, unfair, need not. */
    pthread_mutex_t mu;
    pthread_cond_t turn;
    unsigned long next, serving;
    /* Listings read on connections of their own, one per thread (WAL lets readers go on beside
     * the writer): the scheduler's read of a long queue does not hold up heartbeats and
     * submissions.  Under rmu. */
    char *path;
    pthread_mutex_t rmu;
    struct {
        pthread_t thread;
        sqlite3 *db;
    } readers[READERS];
    int nreaders;
    /* Writes' statements, prepared once: a scheduler pass writes thousands of rows. */
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } cached[STMT_CACHE];
};

static void lock(struct sq *s)
{
    unsigned long mine;

    pthread_mutex_lock(&s->mu);
    mine = s->next++;
    while (mine != s->serving)
        pthread_cond_wait(&s->turn, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

static void unlock(struct sq *s)
{
    pthread_mutex_lock(&s->mu);
    s->serving++;
    pthread_cond_broadcast(&s->turn);
    pthread_mutex_unlock(&s->mu);
}

/* Each migration moves the schema one version up; applied in order, in one transaction each. */
static const char *const migrations[] = {
    "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, unix_user TEXT NOT "
    "NULL, uid INTEGER NOT NULL, role TEXT NOT NULL, created_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE tokens (hash TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id), "
    "revoked INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE projects (name TEXT PRIMARY KEY, parent TEXT NOT NULL DEFAULT '', "
    "deserved_milli INTEGER NOT NULL, limit_milli INTEGER NOT NULL, weight INTEGER NOT NULL);"
    "CREATE TABLE members (project TEXT NOT NULL, user_id INTEGER NOT NULL, "
    "PRIMARY KEY (project, user_id));"
    "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, project TEXT "
    "NOT NULL, user_id INTEGER NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', "
    "submitted_ms INTEGER NOT NULL, started_ms INTEGER NOT NULL DEFAULT 0, finished_ms INTEGER "
    "NOT NULL DEFAULT 0, spec TEXT NOT NULL);"
    "CREATE INDEX jobs_state ON jobs(state);",
    "CREATE TABLE nodes (name TEXT PRIMARY KEY, cpu_milli INTEGER NOT NULL, mem_mib INTEGER NOT "
    "NULL, gpus TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'ready', heartbeat_ms INTEGER NOT NULL "
    "DEFAULT 0);"
    "ALTER TABLE jobs ADD COLUMN node TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE jobs ADD COLUMN gpus TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE jobs ADD COLUMN exit_code INTEGER NOT NULL DEFAULT 0;",
    "CREATE TABLE sessions (hash TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id), "
    "expires_ms INTEGER NOT NULL);"
    "ALTER TABLE nodes ADD COLUMN telemetry TEXT NOT NULL DEFAULT '';",
    /* A job's swap: {"want": "out"|"in", "via", "bytes", "seconds", "error"}, '' when none. */
    "ALTER TABLE jobs ADD COLUMN swap TEXT NOT NULL DEFAULT '';",
    /* Where a node's replicas meet (MASTER_ADDR); the ranks of a gang that ended well ("0 2 ");
     * what the user asked of a running job ('' or 'suspend'). */
    "ALTER TABLE nodes ADD COLUMN address TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE jobs ADD COLUMN ranks TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE jobs ADD COLUMN control TEXT NOT NULL DEFAULT '';",
    /* Job history: each placement of a job is a run, kept after the job ends, with what it was
     * allocated; usage holds what the GPUs measured of each job, by the hour.  Jobs placed
     * before this version get a run whose allocation is unknown (0). */
    "ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE runs (job_id INTEGER NOT NULL, attempt INTEGER NOT NULL, node TEXT NOT NULL, "
    "gpus TEXT NOT NULL, gpu_milli INTEGER NOT NULL, alloc_milli INTEGER NOT NULL, started_ms "
    "INTEGER NOT NULL, ended_ms INTEGER NOT NULL DEFAULT 0, outcome TEXT NOT NULL DEFAULT '', "
    "used_milli INTEGER NOT NULL DEFAULT -1, PRIMARY KEY (job_id, attempt));"
    "CREATE INDEX runs_ended ON runs(ended_ms);"
    "CREATE TABLE usage (job_id INTEGER NOT NULL, hour_ms INTEGER NOT NULL, used_gpu_ms INTEGER "
    "NOT NULL DEFAULT 0, measured_gpu_ms INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (job_id, "
    "hour_ms));"
    "CREATE INDEX usage_hour ON usage(hour_ms);"
    "CREATE INDEX jobs_finished ON jobs(finished_ms);"
    "UPDATE jobs SET attempts = 1 WHERE started_ms > 0;"
    "INSERT INTO runs (job_id, attempt, node, gpus, gpu_milli, alloc_milli, started_ms) SELECT id, "
    "1, node, gpus, 0, 0, started_ms FROM jobs WHERE state IN ('assigned', 'running', 'swapped', "
    "'suspended');",
    /* A job's timeline: a row for each state it entered, written by the statement that moved
     * it, so that no path that changes a job's state can forget it. */
    "CREATE TABLE job_states (job_id INTEGER NOT NULL, at_ms INTEGER NOT NULL, state TEXT NOT "
    "NULL, reason TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX job_states_job ON job_states(job_id);"
    "CREATE TRIGGER job_state_first AFTER INSERT ON jobs BEGIN INSERT INTO job_states VALUES "
    "(new.id, new.submitted_ms, new.state, new.reason); END;"
    "CREATE TRIGGER job_state_next AFTER UPDATE OF state ON jobs WHEN new.state <> old.state "
    "BEGIN INSERT INTO job_states VALUES (new.id, CAST((julianday('now') - 2440587.5) * "
    "86400000 AS INTEGER), new.state, new.reason); END;",
    /* Join tokens: an admin's, for nodes to join with (store_node_join). */
    "CREATE TABLE join_tokens (id INTEGER PRIMARY KEY AUTOINCREMENT, hash TEXT NOT NULL UNIQUE, "
    "created_by INTEGER NOT NULL REFERENCES users(id), created_ms INTEGER NOT NULL, expires_ms "
    "INTEGER NOT NULL DEFAULT 0, revoked INTEGER NOT NULL DEFAULT 0, joins INTEGER NOT NULL "
    "DEFAULT 0);",
    /* A node's jobs found by their node, not by reading every job: its agent asks for them
     * about once a second, and its heartbeat shares out its GPUs' use among them.  Gangs ("n1
     * n2") that hold GPUs have an index of their own (HELD_ON). */
    "CREATE INDEX jobs_node ON jobs(node, state);"
    "CREATE INDEX jobs_gangs ON jobs(id) WHERE instr(node, ' ') > 0 AND state IN ('assigned', "
    "'running', 'swapped', 'suspended');",
    /* Thin provisioning: a job placed on GPUs lent by idle jobs is borrowed; a project's policy
     * may keep its idle GPUs from being lent, or its jobs from borrowing. */
    "ALTER TABLE jobs ADD COLUMN borrowed INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE projects ADD COLUMN no_lend INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE projects ADD COLUMN no_borrow INTEGER NOT NULL DEFAULT 0;",
};

/* A job on a node: `node` (a column, "n1 n2" for a gang) names the node `param`. */
#define ON_NODE(column, param) "instr(' ' || " column " || ' ', ' ' || " param " || ' ') > 0"
/* The states of a job that holds GPUs on a node. */
#define HOLDING "'assigned', 'running', 'swapped', 'suspended'"
/* The ids of the jobs that hold GPUs on the node `param`, by the indexes jobs_node and
 * jobs_gangs (whose WHERE this repeats word for word, as SQLite needs to use it). */
#define HELD_ON(param)                                                                             \
    "(SELECT id FROM jobs WHERE node = " param " AND state IN (" HOLDING ") UNION ALL SELECT id "  \
    "FROM jobs INDEXED BY jobs_gangs WHERE instr(node, ' ') > 0 AND state IN (" HOLDING            \
    ") AND " ON_NODE("node", param) ")"

static int exec(struct sq *s, const char *sql)
{
    return sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

static int migrate(struct sq *s, char *err, size_t errlen)
{
    int version = 0, n = (int)(sizeof(migrations) / sizeof(migrations[0]));
    sqlite3_stmt *st;

    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return -EIO;
    if (sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version > n) {
        snprintf(err, errlen, "the store is at schema version %d, newer than this gpool (%d)",
                 version, n);
        return -EPROTO;
    }
    for (int v = version; v < n; v++) {
        char bump[64];

        snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", v + 1);
        if (exec(s, "BEGIN IMMEDIATE") || exec(s, migrations[v]) || exec(s, bump) ||
            exec(s, "COMMIT")) {
            snprintf(err, errlen, "migration to version %d: %s", v + 1, sqlite3_errmsg(s->db));
            exec(s, "ROLLBACK");
            return -EIO;
        }
    }
    return 0;
}

static const struct store_ops sqlite_ops;
static void sq_close(struct store *base);

int store__sqlite_open(const char *path, struct store **out, char *err, size_t errlen)
{
    struct sq *s;
    int rc;

    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->base.ops = &sqlite_ops;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->turn, NULL);
    pthread_mutex_init(&s->rmu, NULL);
    if ((s->path = strdup(path)) == NULL) {
        sq_close(&s->base);
        return -ENOMEM;
    }
    if (sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(s->db));
        sq_close(&s->base);
        return -EIO;
    }
    sqlite3_busy_timeout(s->db, 5000);
    /* Acknowledged means durable: WAL, and every commit synced.  The scheduler reads every live
     * job on each pass: a page cache of up to 256 MiB keeps a queue of 100,000 jobs in memory
     * (SQLite's default, 2 MiB, reads it from the file again each time). */
    if (exec(s, "PRAGMA journal_mode=WAL") || exec(s, "PRAGMA synchronous=FULL") ||
        exec(s, "PRAGMA foreign_keys=ON") || exec(s, "PRAGMA cache_size=-262144")) {
        snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(s->db));
        sq_close(&s->base);
        return -EIO;
    }
    if ((rc = migrate(s, err, errlen)) != 0) {
        sq_close(&s->base);
        return rc;
    }
    *out = &s->base;
    return 0;
}

static void sq_close(struct store *base)
{
    struct sq *s = (struct sq *)base;

    if (s == NULL)
        return;
    for (int i = 0; i < STMT_CACHE; i++)
        sqlite3_finalize(s->cached[i].st);
    for (int i = 0; i < s->nreaders; i++)
        sqlite3_close(s->readers[i].db);
    sqlite3_close(s->db);
    free(s->path);
    pthread_mutex_destroy(&s->rmu);
    pthread_cond_destroy(&s->turn);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static const char *pragma_text(struct sq *s, const char *sql, char *buf, size_t len)
{
    sqlite3_stmt *st;

    buf[0] = '\0';
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return buf;
    if (sqlite3_step(st) == SQLITE_ROW)
        snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return buf;
}

static int sq_settings(struct store *base, json_t **out)
{
    struct sq *s = (struct sq *)base;

    static const char *const sync_names[] = {"off", "normal", "full", "extra"};
    char mode[32], sync[32];
    int level;

    lock(s);
    pragma_text(s, "PRAGMA journal_mode", mode, sizeof(mode));
    pragma_text(s, "PRAGMA synchronous", sync, sizeof(sync));
    unlock(s);
    level = atoi(sync);
    *out = json_pack("{s:s, s:s, s:s}", "backend", "sqlite", "journal_mode", mode, "synchronous",
                     level >= 0 && level < 4 ? sync_names[level] : sync);
    return 0;
}

/* Runs one prepared statement with text and integer bindings given as a format: 't' text,
 * 'i' int64.  Returns the sqlite result of the step; the statement stays open in *stp. */
/* A write's statement: the one prepared before for the same text, or a new one kept for next
 * time while there is room. */
static sqlite3_stmt *cached(struct sq *s, const char *sql)
{
    sqlite3_stmt *st;
    int i;

    for (i = 0; i < STMT_CACHE && s->cached[i].sql != NULL; i++)
        if (s->cached[i].sql == sql && strcmp(sqlite3_sql(s->cached[i].st), sql) == 0)
            return s->cached[i].st;
    if (sqlite3_prepare_v3(s->db, sql, -1, i < STMT_CACHE ? SQLITE_PREPARE_PERSISTENT : 0, &st,
                           NULL) != SQLITE_OK)
        return NULL;
    if (i < STMT_CACHE)
        s->cached[i].sql = sql, s->cached[i].st = st;
    return st;
}

static bool is_cached(const struct sq *s, const sqlite3_stmt *st)
{
    for (int i = 0; i < STMT_CACHE && s->cached[i].sql != NULL; i++)
        if (s->cached[i].st == st)
            return true;
    return false;
}

static int vrun_on(struct sq *s, sqlite3 *db, sqlite3_stmt **stp, const char *sql, const char *fmt,
                   va_list ap)
{
    sqlite3_stmt *st;
    int rc;

    if (stp == NULL) {
        if ((st = cached(s, sql)) == NULL)
            return SQLITE_ERROR;
    } else if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        return SQLITE_ERROR;
    }
    for (int i = 0; fmt[i]; i++) {
        if (fmt[i] == 't')
            sqlite3_bind_text(st, i + 1, va_arg(ap, const char *), -1, SQLITE_TRANSIENT);
        else
            sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
    }
    rc = sqlite3_step(st);
    if (stp != NULL)
        *stp = st;
    else if (is_cached(s, st))
        sqlite3_reset(st);
    else
        sqlite3_finalize(st);
    return rc;
}

static int vrun(struct sq *s, sqlite3_stmt **stp, const char *sql, const char *fmt, va_list ap)
{
    return vrun_on(s, s->db, stp, sql, fmt, ap);
}

static int run(struct sq *s, sqlite3_stmt **stp, const char *sql, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vrun(s, stp, sql, fmt, ap);
    va_end(ap);
    return rc;
}

/* A read on db (read_begin's): its first row in *stp. */
static int run_on(struct sq *s, sqlite3 *db, sqlite3_stmt **stp, const char *sql, const char *fmt,
                  ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vrun_on(s, db, stp, sql, fmt, ap);
    va_end(ap);
    return rc;
}

/* This thread's read connection, opened on its first read; the writer's, locked, when no more
 * can be opened. */
static sqlite3 *read_begin(struct sq *s)
{
    pthread_t self = pthread_self();
    sqlite3 *db = NULL;

    pthread_mutex_lock(&s->rmu);
    for (int i = 0; i < s->nreaders && db == NULL; i++)
        if (pthread_equal(s->readers[i].thread, self))
            db = s->readers[i].db;
    if (db == NULL && s->nreaders < READERS) {
        if (sqlite3_open_v2(s->path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) ==
            SQLITE_OK) {
            sqlite3_busy_timeout(db, 5000);
            sqlite3_exec(db, "PRAGMA cache_size=-65536", NULL, NULL, NULL);
            s->readers[s->nreaders].thread = self;
            s->readers[s->nreaders++].db = db;
        } else {
            sqlite3_close(db);
            db = NULL;
        }
    }
    pthread_mutex_unlock(&s->rmu);
    if (db != NULL)
        return db;
    lock(s);
    return s->db;
}

static void read_end(struct sq *s, sqlite3 *db)
{
    if (db == s->db)
        unlock(s);
}

static int write_result(int rc)
{
    if (rc == SQLITE_DONE || rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_CONSTRAINT ? -EEXIST : -EIO;
}

/* Ends the open transaction: commits (and syncs) when rc is 0, else rolls back. */
static int finish(struct sq *s, int rc)
{
    if (rc == 0 && exec(s, "COMMIT") != 0)
        rc = -EIO;
    if (rc != 0)
        exec(s, "ROLLBACK");
    return rc;
}

/*
 * One statement in its own BEGIN IMMEDIATE transaction, committed before it returns.  With
 * must_change, a statement that changes no row is -ENOENT and is rolled back.
 */
static int write1(struct sq *s, bool must_change, const char *sql, const char *fmt, ...)
{
    va_list ap;
    int rc;

    lock(s);
    exec(s, "BEGIN IMMEDIATE");
    va_start(ap, fmt);
    rc = write_result(vrun(s, NULL, sql, fmt, ap));
    va_end(ap);
    if (rc == 0 && must_change && sqlite3_changes(s->db) == 0)
        rc = -ENOENT;
    rc = finish(s, rc);
    unlock(s);
    return rc;
}

static int sq_user_add(struct store *base, const struct store_user *u, int64_t *id, char *err,
                       size_t errlen)
{
    struct sq *s = (struct sq *)base;
    int rc;

    lock(s);
    exec(s, "BEGIN IMMEDIATE");
    rc = write_result(run(s, NULL,
                          "INSERT INTO users (name, unix_user, uid, role) VALUES (?, ?, ?, ?)",
                          "ttit", u->name, u->unix_user, u->uid, store_role_name(u->role)));
    if (rc == 0)
        *id = sqlite3_last_insert_rowid(s->db);
    if ((rc = finish(s, rc)) == -EEXIST)
        snprintf(err, errlen, "user '%s' exists", u->name);
    else if (rc != 0)
        snprintf(err, errlen, "store: user '%s' could not be written", u->name);
    unlock(s);
    return rc;
}

static void user_row(sqlite3_stmt *st, struct store_user *u)
{
    memset(u, 0, sizeof(*u));
    u->id = sqlite3_column_int64(st, 0);
    snprintf(u->name, sizeof(u->name), "%s", (const char *)sqlite3_column_text(st, 1));
    snprintf(u->unix_user, sizeof(u->unix_user), "%s", (const char *)sqlite3_column_text(st, 2));
    u->uid = sqlite3_column_int64(st, 3);
    store_role_parse((const char *)sqlite3_column_text(st, 4), &u->role);
}

/* The user a query of users' columns finds: 0, -ENOENT, or -EIO. */
static int one_user(struct sq *s, struct store_user *out, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *st = NULL;
    sqlite3 *db = read_begin(s); /* each request's token: not behind the writer's commits */
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vrun_on(s, db, &st, sql, fmt, ap);
    va_end(ap);
    if (rc == SQLITE_ROW)
        user_row(st, out);
    sqlite3_finalize(st);
    read_end(s, db);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : -EIO;
}

static int sq_user_get(struct store *base, const char *name, struct store_user *out)
{
    struct sq *s = (struct sq *)base;

    return one_user(s, out, "SELECT id, name, unix_user, uid, role FROM users WHERE name = ?", "t",
                    name);
}

static int sq_users_count(struct store *base, int64_t *n)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc;

    lock(s);
    rc = run(s, &st, "SELECT count(*) FROM users", "");
    *n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    unlock(s);
    return rc == SQLITE_ROW ? 0 : -EIO;
}

static int sq_token_add(struct store *base, int64_t user_id, const char *hash)
{
    struct sq *s = (struct sq *)base;

    return write1(s, false, "INSERT INTO tokens (user_id, hash) VALUES (?, ?)", "it", user_id,
                  hash);
}

static int sq_token_user(struct store *base, const char *hash, struct store_user *out)
{
    struct sq *s = (struct sq *)base;

    return one_user(s, out,
                    "SELECT u.id, u.name, u.unix_user, u.uid, u.role FROM tokens t JOIN users u "
                    "ON u.id = t.user_id WHERE t.hash = ? AND t.revoked = 0",
                    "t", hash);
}

static int sq_user_tokens_revoke(struct store *base, int64_t user_id)
{
    struct sq *s = (struct sq *)base;

    return write1(s, true, "UPDATE tokens SET revoked = 1 WHERE user_id = ? AND revoked = 0", "i",
                  user_id);
}

static int sq_join_token_add(struct store *base, const char *hash, int64_t created_by,
                             int64_t created_ms, int64_t expires_ms, int64_t *id)
{
    struct sq *s = (struct sq *)base;
    int rc;

    lock(s);
    exec(s, "BEGIN IMMEDIATE");
    rc = write_result(run(s, NULL,
                          "INSERT INTO join_tokens (hash, created_by, created_ms, expires_ms) "
                          "VALUES (?, ?, ?, ?)",
                          "tiii", hash, created_by, created_ms, expires_ms));
    if (rc == 0)
        *id = sqlite3_last_insert_rowid(s->db);
    rc = finish(s, rc);
    unlock(s);
    return rc;
}

static int sq_join_tokens(struct store *base, void (*fn)(const struct store_join_token *, void *),
                          void *arg)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc;

    lock(s);
    for (rc = run(s, &st,
                  "SELECT j.id, coalesce(u.name, ''), j.created_ms, j.expires_ms, j.revoked, "
                  "j.joins FROM join_tokens j LEFT JOIN users u ON u.id = j.created_by ORDER BY "
                  "j.id",
                  "");
         rc == SQLITE_ROW; rc = sqlite3_step(st)) {
        struct store_join_token t = {.id = sqlite3_column_int64(st, 0),
                                     .created_ms = sqlite3_column_int64(st, 2),
                                     .expires_ms = sqlite3_column_int64(st, 3),
                                     .revoked = sqlite3_column_int(st, 4) != 0,
                                     .joins = sqlite3_column_int64(st, 5)};

        snprintf(t.created_by, sizeof(t.created_by), "%s",
                 (const char *)sqlite3_column_text(st, 1));
        fn(&t, arg);
    }
    sqlite3_finalize(st);
    unlock(s);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

static int sq_join_token_revoke(struct store *base, int64_t id)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc;

    /* Revoking a revoked token changes nothing and is not an error. */
    lock(s);
    exec(s, "BEGIN IMMEDIATE");
    rc = run(s, &st, "SELECT 1 FROM join_tokens WHERE id = ?", "i", id);
    sqlite3_finalize(st);
    rc = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : -EIO;
    if (rc == 0)
        rc = write_result(run(s, NULL, "UPDATE join_tokens SET revoked = 1 WHERE id = ?", "i", id));
    rc = finish(s, rc);
    unlock(s);
    return rc;
}

static int sq_node_join(struct store *base, const char *join_hash, const char *user_name,
                        const char *cred_hash, int64_t now_ms)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int64_t join_id = 0, user_id = 0;
    int rc;

    lock(s);
    exec(s, "BEGIN IMMEDIATE");
    rc = run(s, &st, "SELECT id, revoked, expires_ms FROM join_tokens WHERE hash = ?", "t",
             join_hash);
    if (rc == SQLITE_ROW) {
        int64_t expires = sqlite3_column_int64(st, 2);

        join_id = sqlite3_column_int64(st, 0);
        rc = sqlite3_column_int(st, 1) != 0      ? -EKEYREVOKED
             : expires != 0 && expires <= now_ms ? -EKEYEXPIRED
                                                 : 0;
    } else {
        rc = rc == SQLITE_DONE ? -ENOENT : -EIO;
    }
    sqlite3_finalize(st);
    if (rc == 0) {
        rc = run(s, &st, "SELECT id, role FROM users WHERE name = ?", "t", user_name);
        if (rc == SQLITE_ROW) {
            user_id = sqlite3_column_int64(st, 0);
            rc = strcmp((const char *)sqlite3_column_text(st, 1),
                        store_role_name(STORE_ROLE_AGENT)) == 0
                     ? 0
                     : -EEXIST;
        } else {
            rc = rc == SQLITE_DONE ? 0 : -EIO;
        }
        sqlite3_finalize(st);
    }
    if (rc == 0 && user_id == 0) {
        rc = write_result(run(s, NULL,
                              "INSERT INTO users (name, unix_user, uid, role, created_ms) VALUES "
                              "(?, 'root', 0, ?, ?)",
                              "tti", user_name, store_role_name(STORE_ROLE_AGENT), now_ms));
        user_id = sqlite3_last_insert_rowid(s->db);
    }
    if (rc == 0)
        rc = write_result(run(s, NULL, "INSERT INTO tokens (user_id, hash) VALUES (?, ?)", "it",
                              user_id, cred_hash));
    if (rc == 0)
        rc = write_result(
            run(s, NULL, "UPDATE join_tokens SET joins = joins + 1 WHERE id = ?", "i", join_id));
    rc = finish(s, rc);
    unlock(s);
    return rc;
}

static int sq_session_add(struct store *base, int64_t user_id, const char *hash, int64_t expires_ms,
                          int64_t now_ms)
{
    struct sq *s = (struct sq *)base;
    int rc;

    lock(s);
    exec(s, "BEGIN IMMEDIATE");
    /* Expired sessions go as new ones come. */
    rc = write_result(run(s, NULL, "DELETE FROM sessions WHERE expires_ms <= ?", "i", now_ms));
    if (rc == 0)
        rc = write_result(run(s, NULL,
                              "INSERT INTO sessions (hash, user_id, expires_ms) VALUES (?, ?, ?)",
                              "tii", hash, user_id, expires_ms));
    rc = finish(s, rc);
    unlock(s);
    return rc;
}

static int sq_session_user(struct store *base, const char *hash, int64_t now_ms,
                           struct store_user *out)
{
    struct sq *s = (struct sq *)base;

    return one_user(s, out,
                    "SELECT u.id, u.name, u.unix_user, u.uid, u.role FROM sessions x JOIN users u "
                    "ON u.id = x.user_id WHERE x.hash = ? AND x.expires_ms > ?",
                    "ti", hash, now_ms);
}

static int sq_session_delete(struct store *base, const char *hash)
{
    struct sq *s = (struct sq *)base;

    return write1(s, true, "DELETE FROM sessions WHERE hash = ?", "t", hash);
}

static int sq_project_put(struct store *base, const struct store_project *p, char *err,
                          size_t errlen)
{
    struct sq *s = (struct sq *)base;
    int rc =
        write1(s, false,
               "INSERT INTO projects (name, parent, deserved_milli, limit_milli, weight, no_lend, "
               "no_borrow) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET parent = "
               "excluded.parent, deserved_milli = excluded.deserved_milli, limit_milli = "
               "excluded.limit_milli, weight = excluded.weight, no_lend = excluded.no_lend, "
               "no_borrow = excluded.no_borrow",
               "ttiiiii", p->name, p->parent, p->deserved_milli, p->limit_milli,
               (int64_t)p->weight, (int64_t)p->no_lend, (int64_t)p->no_borrow);

    if (rc != 0)
        snprintf(err, errlen, "store: project '%s' could not be written", p->name);
    return rc;
}

static void project_row(sqlite3_stmt *st, struct store_project *p)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(p->parent, sizeof(p->parent), "%s", (const char *)sqlite3_column_text(st, 1));
    p->deserved_milli = sqlite3_column_int64(st, 2);
    p->limit_milli = sqlite3_column_int64(st, 3);
    p->weight = sqlite3_column_int(st, 4);
    p->no_lend = sqlite3_column_int(st, 5) != 0;
    p->no_borrow = sqlite3_column_int(st, 6) != 0;
}

static int sq_project_get(struct store *base, const char *name, struct store_project *out)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc;

    lock(s);
    rc = run(s, &st,
             "SELECT name, parent, deserved_milli, limit_milli, weight, no_lend, no_borrow FROM "
             "projects WHERE name = ?",
             "t", name);
    if (rc == SQLITE_ROW)
        project_row(st, out);
    sqlite3_finalize(st);
    unlock(s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : -EIO;
}

static int sq_projects(struct store *base, void (*fn)(const struct store_project *, void *),
                       void *arg)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    sqlite3 *db;
    int rc;

    db = read_begin(s);
    for (rc = run_on(s, db, &st,
                     "SELECT name, parent, deserved_milli, limit_milli, weight, no_lend, "
                     "no_borrow FROM projects ORDER BY name",
                     "");
         rc == SQLITE_ROW; rc = sqlite3_step(st)) {
        struct store_project p;

        project_row(st, &p);
        fn(&p, arg);
    }
    sqlite3_finalize(st);
    read_end(s, db);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

static int sq_member_add(struct store *base, const char *project, int64_t user_id)
{
    struct sq *s = (struct sq *)base;

    return write1(s, false, "INSERT OR IGNORE INTO members (project, user_id) VALUES (?, ?)", "ti",
                  project, user_id);
}

static int sq_is_member(struct store *base, const char *project, int64_t user_id)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc;

    lock(s);
    rc = run(s, &st, "SELECT 1 FROM members WHERE project = ? AND user_id = ?", "ti", project,
             user_id);
    sqlite3_finalize(st);
    unlock(s);
    return rc == SQLITE_ROW ? 1 : 0;
}

static int insert_job(struct sq *s, struct store_job *j)
{
    char *spec = json_dumps(j->spec, JSON_COMPACT | JSON_SORT_KEYS);
    int rc;

    if (spec == NULL)
        return -ENOMEM;
    rc = write_result(run(s, NULL,
                          "INSERT INTO jobs (name, project, user_id, state, submitted_ms, spec) "
                          "VALUES (?, ?, ?, ?, ?, ?)",
                          "ttitit", j->name, j->project, j->user_id, store_job_state_name(j->state),
                          j->submitted_ms, spec));
    free(spec);
    if (rc == 0)
        j->id = sqlite3_last_insert_rowid(s->db);
    return rc;
}

static int sq_jobs_add(struct store *base, struct store_job *const *jobs, int n)
{
    struct sq *s = (struct sq *)base;
    int rc = 0;

    lock(s);
    exec(s, "BEGIN IMMEDIATE");
    for (int i = 0; i < n && rc == 0; i++)
        rc = insert_job(s, jobs[i]);
    if ((rc = finish(s, rc)) != 0)
        for (int i = 0; i < n; i++)
            jobs[i]->id = 0;
    unlock(s);
    return rc;
}

#define JOB_COLUMNS                                                                                \
    "j.id, j.name, j.project, j.user_id, u.name, j.state, j.reason, j.submitted_ms, "              \
    "j.started_ms, j.finished_ms, j.spec, j.node, j.gpus, j.exit_code, u.unix_user, u.uid, "       \
    "j.swap, j.control, j.attempts, j.failures, j.borrowed FROM jobs j JOIN users u ON u.id = "  \
    "j.user_id"

/* store_jobs's filters: ?1 user, ?2 project, ?3 state, ?4 after this id, ?5 limit, ?7 states
 * (",a,b,"), ?8 not ended before, ?9 submitted before; ?6, the node, is HELD_ON's. */
#define JOB_FILTERS                                                                                \
    "(?1 = 0 OR j.user_id = ?1) AND (?2 = '' OR j.project = ?2) AND (?3 = '' OR j.state = ?3) "    \
    "AND j.id > ?4 AND (?7 = '' OR instr(?7, ',' || j.state || ',') > 0) AND (?8 = 0 OR "          \
    "j.finished_ms = 0 OR j.finished_ms >= ?8) AND (?9 = 0 OR j.submitted_ms < ?9) "               \
    "ORDER BY j.id LIMIT ?5"

static void job_row(sqlite3_stmt *st, struct store_job *j, bool light)
{
    memset(j, 0, sizeof(*j));
    j->id = sqlite3_column_int64(st, 0);
    if (light) {
        snprintf(j->project, sizeof(j->project), "%s", (const char *)sqlite3_column_text(st, 2));
        j->user_id = sqlite3_column_int64(st, 3);
        store_job_state_parse((const char *)sqlite3_column_text(st, 5), &j->state);
        j->submitted_ms = sqlite3_column_int64(st, 7);
        j->started_ms = sqlite3_column_int64(st, 8);
        j->finished_ms = sqlite3_column_int64(st, 9);
        snprintf(j->node, sizeof(j->node), "%s", (const char *)sqlite3_column_text(st, 11));
        snprintf(j->gpus, sizeof(j->gpus), "%s", (const char *)sqlite3_column_text(st, 12));
        j->exit_code = sqlite3_column_int(st, 13);
        j->attempts = sqlite3_column_int(st, 18);
        j->failures = sqlite3_column_int(st, 19);
        /* What the scheduler's swaps and borrowing change. */
        if (sqlite3_column_bytes(st, 16) > 0)
            j->swap = json_loads((const char *)sqlite3_column_text(st, 16), 0, NULL);
        j->borrowed = sqlite3_column_int(st, 20) != 0;
        return;
    }
    snprintf(j->name, sizeof(j->name), "%s", (const char *)sqlite3_column_text(st, 1));
    snprintf(j->project, sizeof(j->project), "%s", (const char *)sqlite3_column_text(st, 2));
    j->user_id = sqlite3_column_int64(st, 3);
    snprintf(j->user, sizeof(j->user), "%s", (const char *)sqlite3_column_text(st, 4));
    store_job_state_parse((const char *)sqlite3_column_text(st, 5), &j->state);
    snprintf(j->reason, sizeof(j->reason), "%s", (const char *)sqlite3_column_text(st, 6));
    j->submitted_ms = sqlite3_column_int64(st, 7);
    j->started_ms = sqlite3_column_int64(st, 8);
    j->finished_ms = sqlite3_column_int64(st, 9);
    j->spec = json_loads((const char *)sqlite3_column_text(st, 10), 0, NULL);
    snprintf(j->node, sizeof(j->node), "%s", (const char *)sqlite3_column_text(st, 11));
    snprintf(j->gpus, sizeof(j->gpus), "%s", (const char *)sqlite3_column_text(st, 12));
    j->exit_code = sqlite3_column_int(st, 13);
    snprintf(j->unix_user, sizeof(j->unix_user), "%s", (const char *)sqlite3_column_text(st, 14));
    j->uid = sqlite3_column_int64(st, 15);
    j->swap = json_loads((const char *)sqlite3_column_text(st, 16), 0, NULL);
    snprintf(j->control, sizeof(j->control), "%s", (const char *)sqlite3_column_text(st, 17));
    j->attempts = sqlite3_column_int(st, 18);
    j->failures = sqlite3_column_int(st, 19);
    j->borrowed = sqlite3_column_int(st, 20) != 0;
}

static int sq_job_get(struct store *base, int64_t id, struct store_job *out)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    sqlite3 *db = read_begin(s);
    int rc = run_on(s, db, &st, "SELECT " JOB_COLUMNS " WHERE j.id = ?", "i", id);

    if (rc == SQLITE_ROW)
        job_row(st, out, false);
    sqlite3_finalize(st);
    read_end(s, db);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : -EIO;
}

static int sq_job_timeline(struct store *base, int64_t id, json_t **out)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc;

    *out = json_array();
    lock(s);
    rc = run(s, &st, "SELECT state, at_ms, reason FROM job_states WHERE job_id = ? ORDER BY rowid",
             "i", id);
    for (; rc == SQLITE_ROW; rc = sqlite3_step(st))
        json_array_append_new(*out, json_pack("{s:s, s:I, s:s}", "state",
                                              (const char *)sqlite3_column_text(st, 0), "at_ms",
                                              (json_int_t)sqlite3_column_int64(st, 1), "reason",
                                              (const char *)sqlite3_column_text(st, 2)));
    sqlite3_finalize(st);
    unlock(s);
    if (rc != SQLITE_DONE) {
        json_decref(*out);
        *out = NULL;
        return -EIO;
    }
    return 0;
}

static int sq_jobs(struct store *base, const struct store_job_filter *f,
                   int (*fn)(const struct store_job *, void *), void *arg)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    sqlite3 *db;
    int rc, n = 0;

    char states[128] = "";
    size_t n_states = 0;

    /* ",succeeded,failed,": the states wanted, for instr(). */
    for (int i = 0; i <= STORE_JOB_CANCELLED; i++)
        if (f->states >> i & 1)
            n_states += (size_t)snprintf(states + n_states, sizeof(states) - n_states, ",%s",
                                         store_job_state_name((enum store_job_state)i));
    if (n_states > 0)
        snprintf(states + n_states, sizeof(states) - n_states, ",");
    db = read_begin(s);
    /* A node's jobs (?6), or those in one state (?3), through the indexes: the filters alone
     * read every job ever submitted. */
    rc = run_on(s, db, &st,
                f->node != NULL && f->node[0] != '\0'
                    ? "SELECT " JOB_COLUMNS " WHERE j.id IN " HELD_ON("?6") " AND " JOB_FILTERS
                : f->state >= 0 ? "SELECT " JOB_COLUMNS " WHERE j.state = ?3 AND " JOB_FILTERS
                                : "SELECT " JOB_COLUMNS " WHERE " JOB_FILTERS,
                "ittiittii", f->user_id, f->project ? f->project : "",
                f->state >= 0 ? store_job_state_name((enum store_job_state)f->state) : "",
                f->after_id, (int64_t)(f->limit > 0 ? f->limit : -1), f->node ? f->node : "",
                states, f->since_ms, f->until_ms);
    for (; rc == SQLITE_ROW; rc = sqlite3_step(st), n++) {
        struct store_job j;
        int stop;

        job_row(st, &j, f->light);
        stop = fn(&j, arg);
        store_job_clear(&j);
        if (stop) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(st);
    read_end(s, db);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

/* Ends a job's open run, if it has one; inside the caller's transaction. */
static int end_run(struct sq *s, int64_t id, const char *outcome, int64_t now_ms)
{
    return write_result(run(s, NULL,
                            "UPDATE runs SET ended_ms = max(?, started_ms), outcome = ? WHERE "
                            "job_id = ? AND +ended_ms = 0", /* +: by the job, not all open runs */
                            "iti", now_ms, outcome, id));
}

/* Opens a transaction on the locked store. */
static void begin(struct sq *s)
{
    lock(s);
    exec(s, "BEGIN IMMEDIATE");
}

/* Commits (rc 0) or rolls back, and unlocks; rc. */
static int end(struct sq *s, int rc)
{
    rc = finish(s, rc);
    unlock(s);
    return rc;
}

/* A write that must change a row: -EBUSY when it changed none (the job is not in the state the
 * write starts from). */
static int changed(struct sq *s, int rc)
{
    return rc == 0 && sqlite3_changes(s->db) == 0 ? -EBUSY : rc;
}

static int sq_job_transition(struct store *base, int64_t id, unsigned from, enum store_job_state to,
                             const char *reason, int64_t now_ms)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    enum store_job_state cur = STORE_JOB_PENDING;
    int rc;

    lock(s);
    exec(s, "BEGIN IMMEDIATE");
    rc = run(s, &st, "SELECT state FROM jobs WHERE id = ?", "i", id);
    if (rc == SQLITE_ROW) {
        store_job_state_parse((const char *)sqlite3_column_text(st, 0), &cur);
        rc = (from >> cur & 1) ? 0 : -EBUSY;
    } else {
        rc = rc == SQLITE_DONE ? -ENOENT : -EIO;
    }
    sqlite3_finalize(st);
    if (rc == 0)
        rc = write_result(run(s, NULL,
                              "UPDATE jobs SET state = ?, reason = ?, started_ms = CASE WHEN ? "
                              "THEN ? ELSE started_ms END, finished_ms = CASE WHEN ? THEN ? ELSE "
                              "finished_ms END WHERE id = ?",
                              "ttiiiii", store_job_state_name(to), reason ? reason : "",
                              (int64_t)(to == STORE_JOB_RUNNING), now_ms,
                              (int64_t)(to >= STORE_JOB_SUCCEEDED), now_ms, id));
    if (rc == 0 && to >= STORE_JOB_SUCCEEDED)
        rc = end_run(s, id, store_job_state_name(to), now_ms);
    rc = finish(s, rc);
    unlock(s);
    return rc;
}

#define REASONS_PER_TRANSACTION 1000

static int sq_job_reasons(struct store *base, const int64_t *ids, const char *const *reasons, int n)
{
    struct sq *s = (struct sq *)base;
    int rc = 0;

    /* A thousand at a time: the API has the store in between. */
    for (int at = 0; at < n && rc == 0; at += REASONS_PER_TRANSACTION) {
        lock(s);
        exec(s, "BEGIN IMMEDIATE");
        for (int i = at; i < n && i < at + REASONS_PER_TRANSACTION && rc == 0; i++)
            rc = write_result(run(s, NULL,
                                  "UPDATE jobs SET reason = ? WHERE id = ? AND reason != ?1 AND "
                                  "state = 'pending'",
                                  "ti", reasons[i], ids[i]));
        rc = finish(s, rc);
        unlock(s);
    }
    return rc;
}

/* ---- nodes and assignments ---- */

static int share_telemetry(struct sq *s, const char *node, json_t *telemetry, int64_t prev,
                           int64_t now);

static int sq_node_put(struct store *base, const struct store_node *n)
{
    struct sq *s = (struct sq *)base;
    char *gpus = json_dumps(n->gpus, JSON_COMPACT);
    int rc;

    if (gpus == NULL)
        return -ENOMEM;
    rc = write1(s, true,
                "INSERT INTO nodes (name, cpu_milli, mem_mib, gpus, heartbeat_ms, address) VALUES "
                "(?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET cpu_milli = "
                "excluded.cpu_milli, mem_mib = excluded.mem_mib, gpus = excluded.gpus, "
                "heartbeat_ms = excluded.heartbeat_ms, address = excluded.address",
                "tiitit", n->name, n->cpu_milli, n->mem_mib, gpus, n->heartbeat_ms, n->address);
    free(gpus);
    return rc;
}

static int sq_node_heartbeat(struct store *base, const char *name, int64_t now_ms,
                             json_t *telemetry)
{
    struct sq *s = (struct sq *)base;
    char *text = telemetry ? json_dumps(telemetry, JSON_COMPACT) : NULL;
    sqlite3_stmt *st = NULL;
    int64_t prev = 0;
    int rc;

    if (telemetry != NULL && text == NULL)
        return -ENOMEM;
    /* Not synced on its own (a thousand nodes would keep the disk syncing heartbeats): it
     * survives the server's crash, and the next synced commit takes it to the disk. */
    lock(s);
    exec(s, "PRAGMA synchronous=NORMAL");
    exec(s, "BEGIN IMMEDIATE");
    rc = run(s, &st, "SELECT heartbeat_ms FROM nodes WHERE name = ?", "t", name);
    if (rc == SQLITE_ROW)
        prev = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    rc = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : -EIO;
    if (rc == 0)
        rc = write_result(run(s, NULL,
                              "UPDATE nodes SET heartbeat_ms = ?, telemetry = ? WHERE name = ?",
                              "itt", now_ms, text ? text : "", name));
    if (rc == 0 && telemetry != NULL)
        rc = share_telemetry(s, name, telemetry, prev, now_ms);
    free(text);
    rc = finish(s, rc);
    exec(s, "PRAGMA synchronous=FULL");
    unlock(s);
    return rc;
}

static int sq_node_set_state(struct store *base, const char *name, enum store_node_state st)
{
    struct sq *s = (struct sq *)base;

    return write1(s, true, "UPDATE nodes SET state = ? WHERE name = ?", "tt",
                  store_node_state_name(st), name);
}

#define NODE_COLUMNS "name, cpu_milli, mem_mib, gpus, state, heartbeat_ms, telemetry, address"

static void node_row(sqlite3_stmt *st, struct store_node *n)
{
    *n = (struct store_node){0};
    snprintf(n->name, sizeof(n->name), "%s", (const char *)sqlite3_column_text(st, 0));
    n->cpu_milli = sqlite3_column_int64(st, 1);
    n->mem_mib = sqlite3_column_int64(st, 2);
    n->gpus = json_loads((const char *)sqlite3_column_text(st, 3), 0, NULL);
    store__node_state_parse((const char *)sqlite3_column_text(st, 4), &n->state);
    n->heartbeat_ms = sqlite3_column_int64(st, 5);
    n->telemetry = json_loads((const char *)sqlite3_column_text(st, 6), 0, NULL);
    snprintf(n->address, sizeof(n->address), "%s", (const char *)sqlite3_column_text(st, 7));
}

static int sq_nodes(struct store *base, void (*fn)(const struct store_node *, void *), void *arg)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    sqlite3 *db;
    int rc;

    db = read_begin(s);
    for (rc = run_on(s, db, &st, "SELECT " NODE_COLUMNS " FROM nodes ORDER BY name", "");
         rc == SQLITE_ROW; rc = sqlite3_step(st)) {
        struct store_node n;

        node_row(st, &n);
        fn(&n, arg);
        store_node_clear(&n);
    }
    sqlite3_finalize(st);
    read_end(s, db);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

static int sq_node_get(struct store *base, const char *name, struct store_node *out)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    sqlite3 *db = read_begin(s);
    int rc = run_on(s, db, &st, "SELECT " NODE_COLUMNS " FROM nodes WHERE name = ?", "t", name);

    if (rc == SQLITE_ROW)
        node_row(st, out);
    sqlite3_finalize(st);
    read_end(s, db);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : -EIO;
}

static int sq_node_requeue(struct store *base, const char *name, const char *reason, int64_t now_ms)
{
    struct sq *s = (struct sq *)base;
    int rc;

    begin(s);
    rc = write_result(run(s, NULL,
                          "UPDATE runs SET ended_ms = max(?1, started_ms), outcome = 'node silent' "
                          "WHERE job_id IN " HELD_ON("?2") " AND +ended_ms = 0",
                          "it", now_ms, name));
    if (rc == 0)
        rc = write_result(run(s, NULL,
                              "UPDATE jobs SET state = 'pending', node = '', gpus = '', ranks = "
                              "'', control = '', reason = ?1 WHERE id IN " HELD_ON("?2"),
                              "tt", reason, name));
    return end(s, rc);
}

/* The job-moving writes: a job not in the state they start from is -EBUSY. */
static int busy(int rc)
{
    return rc == -ENOENT ? -EBUSY : rc;
}

/* store_job_assign inside the caller's transaction. */
static int assign_in(struct sq *s, int64_t id, const char *node, const char *gpus,
                     int64_t gpu_milli, int64_t alloc_milli, bool borrowed, int64_t now_ms)
{
    int rc = changed(s, write_result(run(s, NULL,
                                         "UPDATE jobs SET state = 'assigned', node = ?, gpus = ?, "
                                         "reason = '', ranks = '', control = '', swap = '', "
                                         "started_ms = ?, borrowed = ?, attempts = attempts + 1 "
                                         "WHERE id = ? AND state = 'pending'",
                                         "ttiii", node, gpus, now_ms, (int64_t)borrowed, id)));

    if (rc == 0)
        rc = write_result(run(s, NULL,
                              "INSERT OR REPLACE INTO runs (job_id, attempt, node, gpus, "
                              "gpu_milli, alloc_milli, started_ms) SELECT id, attempts, node, "
                              "gpus, ?, ?, started_ms FROM jobs WHERE id = ?",
                              "iii", gpu_milli, alloc_milli, id));
    return rc;
}

/* store_job_requeue inside the caller's transaction. */
static int requeue_in(struct sq *s, int64_t id, const char *reason, int64_t now_ms)
{
    int rc = changed(s, write_result(run(s, NULL,
                                         "UPDATE jobs SET state = 'pending', node = '', gpus = '', "
                                         "ranks = '', control = '', reason = ? WHERE id = ? AND "
                                         "state IN (" HOLDING ")",
                                         "ti", reason, id)));

    if (rc == 0)
        rc = end_run(s, id, "preempted", now_ms);
    return rc;
}

static int sq_job_assign(struct store *base, int64_t id, const char *node, const char *gpus,
                         int64_t gpu_milli, int64_t alloc_milli, bool borrowed, int64_t now_ms)
{
    struct sq *s = (struct sq *)base;

    begin(s);
    return end(s, assign_in(s, id, node, gpus, gpu_milli, alloc_milli, borrowed, now_ms));
}

static int sq_jobs_place(struct store *base, struct store_placement *p, int n, int64_t now_ms)
{
    struct sq *s = (struct sq *)base;
    int rc = 0;

    begin(s);
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
static int job_failed_in(struct sq *s, int64_t id, const char *node, int exit_code, int64_t now_ms)
{
    int rc = changed(
        s, write_result(run(
               s, NULL,
               "UPDATE jobs SET failures = failures + 1, exit_code = ?1, state = CASE WHEN "
               "failures < ifnull(json_extract(spec, '$.retries'), 0) THEN 'pending' ELSE "
               "'failed' END, reason = CASE WHEN failures < ifnull(json_extract(spec, "
               "'$.retries'), 0) THEN printf('attempt %d failed with exit code %d; queued "
               "again (retry %d of %d)', attempts, ?1, failures + 1, json_extract(spec, "
               "'$.retries')) ELSE printf('failed with exit code %d', ?1) END, finished_ms = "
               "CASE WHEN failures < ifnull(json_extract(spec, '$.retries'), 0) THEN 0 ELSE "
               "?2 END, node = CASE WHEN failures < ifnull(json_extract(spec, '$.retries'), 0) "
               "THEN '' ELSE node END, gpus = CASE WHEN failures < ifnull(json_extract(spec, "
               "'$.retries'), 0) THEN '' ELSE gpus END, ranks = '', control = '' WHERE id = ?3 "
               "AND " ON_NODE("node", "?4") " AND state IN ('assigned', 'running', 'suspended')",
               "iiit", (int64_t)exit_code, now_ms, id, node)));

    if (rc == 0)
        rc = end_run(s, id, "failed", now_ms);
    return rc;
}

/* A replica ended well: counted once; the job has succeeded when all have.  Inside the caller's
 * transaction. */
static int rank_succeeded_in(struct sq *s, int64_t id, const char *node, int rank, int64_t now_ms)
{
    int rc = changed(
        s, write_result(
               run(s, NULL,
                   "UPDATE jobs SET ranks = ranks || ?3 || ' ', state = CASE state WHEN "
                   "'assigned' THEN 'running' ELSE state END WHERE id = ?1 AND " ON_NODE(
                       "node", "?2") " AND state IN ('assigned', 'running', "
                                     "'suspended') AND instr(' ' || ranks, ' ' || ?3 || ' ') = 0",
                   "iti", id, node, (int64_t)rank)));

    if (rc == 0)
        rc = write_result(run(s, NULL,
                              "UPDATE jobs SET state = 'succeeded', exit_code = 0, finished_ms = "
                              "?2 WHERE id = ?1 AND length(ranks) - length(replace(ranks, ' ', "
                              "'')) >= coalesce(json_extract(spec, '$.replicas'), 1)",
                              "ii", id, now_ms));
    if (rc == 0 && sqlite3_changes(s->db) > 0)
        rc = end_run(s, id, "succeeded", now_ms);
    return rc;
}

/* One agent's report inside the caller's transaction: -EBUSY, nothing of it written, when the
 * job is not in a state for it (only a report's first statement can find that). */
static int report_in(struct sq *s, const struct store_report *r, int64_t now_ms)
{
    int rc;

    if (r->swap != NULL)
        rc = changed(
            s, write_result(run(s, NULL,
                                "UPDATE jobs SET state = ?, swap = ? WHERE id = ? AND "
                                "node = ? AND state IN ('running', 'swapped')",
                                "ttit", store_job_state_name(r->to), r->swap, r->id, r->node)));
    else if (r->to == STORE_JOB_RUNNING) /* started, or resumed */
        rc = changed(s, write_result(run(
                            s, NULL,
                            "UPDATE jobs SET state = 'running' WHERE id = ? AND " ON_NODE(
                                "node", "?2") " AND (state = 'assigned' OR (state = 'suspended' "
                                              "AND control = ''))",
                            "it", r->id, r->node)));
    else if (r->to == STORE_JOB_SUSPENDED)
        rc = changed(
            s, write_result(run(s, NULL,
                                "UPDATE jobs SET state = 'suspended' WHERE id = ? AND " ON_NODE(
                                    "node", "?2") " AND state = 'running' AND control = 'suspend'",
                                "it", r->id, r->node)));
    else if (r->to == STORE_JOB_SUCCEEDED)
        rc = rank_succeeded_in(s, r->id, r->node, r->rank, now_ms);
    else /* one replica failing fails the gang (or queues it again, while it has retries) */
        rc = job_failed_in(s, r->id, r->node, r->exit_code, now_ms);
    if (rc == 0 && r->requeue != NULL) {
        rc = requeue_in(s, r->id, r->requeue, now_ms);
        rc = rc == -EBUSY ? 0 : rc; /* the report stands; the job held no GPUs to give back */
    }
    return rc;
}

static int sq_job_report(struct store *base, int64_t id, const char *node, int rank,
                         enum store_job_state to, int exit_code, int64_t now_ms)
{
    struct sq *s = (struct sq *)base;
    struct store_report r = {
        .id = id, .node = node, .rank = rank, .to = to, .exit_code = exit_code};

    begin(s);
    return end(s, report_in(s, &r, now_ms));
}

static int sq_jobs_report(struct store *base, struct store_report *r, int n, int64_t now_ms)
{
    struct sq *s = (struct sq *)base;
    int rc = 0;

    begin(s);
    for (int i = 0; i < n && rc == 0; i++) {
        r[i].rc = report_in(s, &r[i], now_ms);
        rc = r[i].rc == -EBUSY ? 0 : r[i].rc;
    }
    return end(s, rc);
}

static int sq_job_control(struct store *base, int64_t id, const char *control)
{
    struct sq *s = (struct sq *)base;

    /* Suspending a running job; resuming a suspended one, or one not suspended yet. */
    return busy(write1(s, true,
                       "UPDATE jobs SET control = ?1 WHERE id = ?2 AND ((?1 = 'suspend' AND state "
                       "= 'running' AND control = '') OR (?1 = '' AND control = 'suspend' AND "
                       "state IN ('running', 'suspended')))",
                       "ti", control, id));
}

static int sq_job_swap_want(struct store *base, int64_t id, const char *want, const char *why)
{
    struct sq *s = (struct sq *)base;

    /* The scheduler's swap (why given) keeps its reason; resumed, the job is no longer borrowed
     * but holds GPUs of its own. */
    return busy(write1(s, true,
                       "UPDATE jobs SET swap = json_set(CASE swap WHEN '' THEN '{}' ELSE swap END, "
                       "'$.want', ?1, '$.error', '', '$.why', ?3), borrowed = CASE WHEN ?3 <> '' "
                       "AND ?1 = 'in' THEN 0 ELSE borrowed END WHERE id = ?2 AND ((?1 = 'out' AND "
                       "state = 'running') OR (?1 = 'in' AND (state = 'swapped' OR (state = "
                       "'running' AND swap <> '' AND json_extract(swap, '$.want') = 'out'))))",
                       "tit", want, id, why != NULL ? why : ""));
}

static int sq_job_swap_report(struct store *base, int64_t id, const char *node,
                              enum store_job_state to, const char *swap)
{
    struct sq *s = (struct sq *)base;
    struct store_report r = {.id = id, .node = node, .to = to, .swap = swap};

    begin(s);
    return end(s, report_in(s, &r, 0));
}

static int sq_job_requeue(struct store *base, int64_t id, const char *reason, int64_t now_ms)
{
    struct sq *s = (struct sq *)base;

    begin(s);
    return end(s, requeue_in(s, id, reason, now_ms));
}

/* ---- history and usage ---- */

static int sq_job_runs(struct store *base, int64_t id, void (*fn)(const struct store_run *, void *),
                       void *arg)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc;

    lock(s);
    for (rc = run(s, &st,
                  "SELECT attempt, node, gpus, gpu_milli, alloc_milli, started_ms, "
                  "ended_ms, outcome, used_milli FROM runs WHERE job_id = ? ORDER BY "
                  "attempt",
                  "i", id);
         rc == SQLITE_ROW; rc = sqlite3_step(st)) {
        struct store_run r = {.attempt = sqlite3_column_int(st, 0)};

        snprintf(r.node, sizeof(r.node), "%s", (const char *)sqlite3_column_text(st, 1));
        snprintf(r.gpus, sizeof(r.gpus), "%s", (const char *)sqlite3_column_text(st, 2));
        r.gpu_milli = sqlite3_column_int64(st, 3);
        r.alloc_milli = sqlite3_column_int64(st, 4);
        r.started_ms = sqlite3_column_int64(st, 5);
        r.ended_ms = sqlite3_column_int64(st, 6);
        snprintf(r.outcome, sizeof(r.outcome), "%s", (const char *)sqlite3_column_text(st, 7));
        r.used_milli = sqlite3_column_int64(st, 8);
        fn(&r, arg);
    }
    sqlite3_finalize(st);
    unlock(s);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

static int sq_job_counts(struct store *base, int64_t counts[STORE_JOB_CANCELLED + 1])
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc;

    memset(counts, 0, sizeof(int64_t) * (STORE_JOB_CANCELLED + 1));
    lock(s);
    for (rc = run(s, &st, "SELECT state, count(*) FROM jobs GROUP BY state", ""); rc == SQLITE_ROW;
         rc = sqlite3_step(st)) {
        enum store_job_state js;

        if (store_job_state_parse((const char *)sqlite3_column_text(st, 0), &js) == 0)
            counts[js] = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    unlock(s);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

/* Rows of (key, then numbers) into {"KEY": {names[0]: value, ...}}, adding to what is there. */
static int rows_into(struct sq *s, json_t *out, const char *const *names, double scale,
                     const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *st = NULL;
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vrun(s, &st, sql, fmt, ap);
    va_end(ap);
    for (; rc == SQLITE_ROW; rc = sqlite3_step(st)) {
        const char *key = (const char *)sqlite3_column_text(st, 0);
        json_t *row = json_object_get(out, key);

        if (row == NULL)
            json_object_set_new(out, key, row = json_object());
        for (int i = 0; names[i] != NULL; i++) {
            double v = sqlite3_column_double(st, i + 1);

            if (strcmp(names[i], "jobs") == 0 || strcmp(names[i], "allocated_milli") == 0 ||
                strcmp(names[i], "used_milli") == 0)
                json_object_set_new(row, names[i], json_integer((json_int_t)v));
            else
                json_object_set_new(row, names[i], json_real(v * scale));
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

static int sq_project_holdings(struct store *base, json_t **out)
{
    struct sq *s = (struct sq *)base;

    static const char *const names[] = {"allocated_milli", "used_milli", "jobs", NULL};
    int rc;

    *out = json_object();
    lock(s);
    rc = rows_into(s, *out, names, 1,
                   "SELECT j.project, sum(r.alloc_milli), sum(CASE WHEN j.state = 'running' AND "
                   "r.used_milli > 0 THEN r.used_milli ELSE 0 END), count(*) FROM runs r JOIN "
                   "jobs j ON j.id = r.job_id WHERE r.ended_ms = 0 AND j.state IN ('assigned', "
                   "'running', 'swapped') GROUP BY j.project",
                   "");
    unlock(s);
    return rc;
}

static int sq_usage(struct store *base, const struct store_usage_query *q, json_t **out)
{
    struct sq *s = (struct sq *)base;

    static const char *const alloc[] = {"allocated_gpu_hours", "jobs", NULL};
    static const char *const used[] = {"used_gpu_hours", "measured_gpu_hours", NULL};
    /* Milli-GPU milliseconds, and GPU milliseconds, in GPU-hours. */
    const double milli_ms = 1.0 / 1000 / STORE_HOUR_MS, gpu_ms = 1.0 / STORE_HOUR_MS;
    int rc;

    *out = json_object();
    lock(s);
    rc = rows_into(s, *out, alloc, milli_ms,
                   "SELECT CASE WHEN ?4 THEN u.name ELSE j.project END, sum(r.alloc_milli * "
                   "max(0, min(CASE r.ended_ms WHEN 0 THEN ?3 ELSE r.ended_ms END, ?2) - "
                   "max(r.started_ms, ?1))), count(DISTINCT r.job_id) FROM runs r JOIN jobs j ON "
                   "j.id = r.job_id JOIN users u ON u.id = j.user_id WHERE r.started_ms < ?2 AND "
                   "(r.ended_ms = 0 OR r.ended_ms > ?1) AND (?5 = 0 OR j.user_id = ?5) GROUP BY 1",
                   "iiiii", q->since_ms, q->until_ms, q->now_ms, (int64_t)q->by_user, q->user_id);
    /* An hour the period cuts counts for the part of it inside the period. */
    if (rc == 0)
        rc = rows_into(s, *out, used, gpu_ms,
                       "SELECT CASE WHEN ?3 THEN u.name ELSE j.project END, sum(x.used_gpu_ms * "
                       "(max(0, min(x.hour_ms + 3600000, ?2) - max(x.hour_ms, ?1)) / 3600000.0)), "
                       "sum(x.measured_gpu_ms * (max(0, min(x.hour_ms + 3600000, ?2) - "
                       "max(x.hour_ms, ?1)) / 3600000.0)) FROM usage x JOIN jobs j ON j.id = "
                       "x.job_id JOIN users u ON u.id = j.user_id WHERE x.hour_ms < ?2 AND "
                       "x.hour_ms + 3600000 > ?1 AND (?4 = 0 OR j.user_id = ?4) GROUP BY 1",
                       "iiii", q->since_ms, q->until_ms, (int64_t)q->by_user, q->user_id);
    unlock(s);
    return rc;
}

/* Adds GPU-milliseconds to a job's usage, split at the hours [from, to) crosses. */
static int add_usage(struct sq *s, int64_t job, int64_t from, int64_t to, int64_t used_milli,
                     int64_t measured_milli)
{
    int rc = 0;

    while (from < to && rc == 0) {
        int64_t hour = from - from % STORE_HOUR_MS,
                upto = to < hour + STORE_HOUR_MS ? to : hour + STORE_HOUR_MS;

        rc = write_result(run(s, NULL,
                              "INSERT INTO usage (job_id, hour_ms, used_gpu_ms, measured_gpu_ms) "
                              "VALUES (?, ?, ?, ?) ON CONFLICT(job_id, hour_ms) DO UPDATE SET "
                              "used_gpu_ms = used_gpu_ms + excluded.used_gpu_ms, measured_gpu_ms "
                              "= measured_gpu_ms + excluded.measured_gpu_ms",
                              "iiii", job, hour, used_milli * (upto - from) / 1000,
                              measured_milli * (upto - from) / 1000));
        from = upto;
    }
    return rc;
}

/* The running jobs on a node, with their GPUs there; the caller frees *out. */
static int node_shares(struct sq *s, const char *node, struct store_share **out, int *n)
{
    sqlite3_stmt *st = NULL;
    int rc, cap = 0;

    *out = NULL;
    *n = 0;
    for (rc = run(s, &st,
                  "SELECT r.job_id, j.node, r.gpus, r.gpu_milli, r.started_ms FROM jobs j JOIN "
                  "runs r ON r.job_id = j.id WHERE j.id IN " HELD_ON(
                      "?1") " AND j.state = "
                            "'running' AND +r.ended_ms = 0",
                  "t", node);
         rc == SQLITE_ROW; rc = sqlite3_step(st)) {
        if (*n == cap) {
            struct store_share *more = realloc(*out, (size_t)(cap = cap * 2 + 8) * sizeof(**out));

            if (more == NULL)
                break;
            *out = more;
        }
        (*out)[*n] = (struct store_share){.job = sqlite3_column_int64(st, 0),
                                          .gpu_milli = sqlite3_column_int64(st, 3),
                                          .started_ms = sqlite3_column_int64(st, 4)};
        store__gpus_on((const char *)sqlite3_column_text(st, 1),
                       (const char *)sqlite3_column_text(st, 2), node, &(*out)[(*n)++]);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

/*
 * What a heartbeat measured, given to the jobs running on the node (store__shares_used), for the
 * time since the node's previous heartbeat.
 */
static int share_telemetry(struct sq *s, const char *node, json_t *telemetry, int64_t prev,
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
        rc = write_result(run(s, NULL,
                              "UPDATE runs SET used_milli = ? WHERE job_id = ? AND +ended_ms = 0",
                              "ii", used[k], sh[k].job)); /* +: by the job, not all open runs */
        if (rc == 0 && prev > 0 && now - prev <= STORE_HEARTBEAT_GAP_MAX_MS)
            rc = add_usage(s, sh[k].job, from, now, used[k], used[n + k]);
    }
    free(used);
    free(sh);
    return rc;
}

static const struct store_ops sqlite_ops = {
    .close = sq_close,
    .settings = sq_settings,
    .user_add = sq_user_add,
    .user_get = sq_user_get,
    .users_count = sq_users_count,
    .token_add = sq_token_add,
    .token_user = sq_token_user,
    .user_tokens_revoke = sq_user_tokens_revoke,
    .join_token_add = sq_join_token_add,
    .join_tokens = sq_join_tokens,
    .join_token_revoke = sq_join_token_revoke,
    .node_join = sq_node_join,
    .session_add = sq_session_add,
    .session_user = sq_session_user,
    .session_delete = sq_session_delete,
    .project_put = sq_project_put,
    .project_get = sq_project_get,
    .projects = sq_projects,
    .member_add = sq_member_add,
    .is_member = sq_is_member,
    .jobs_add = sq_jobs_add,
    .job_get = sq_job_get,
    .jobs = sq_jobs,
    .job_timeline = sq_job_timeline,
    .job_transition = sq_job_transition,
    .job_assign = sq_job_assign,
    .job_requeue = sq_job_requeue,
    .jobs_place = sq_jobs_place,
    .job_runs = sq_job_runs,
    .job_counts = sq_job_counts,
    .project_holdings = sq_project_holdings,
    .usage = sq_usage,
    .job_swap_want = sq_job_swap_want,
    .job_swap_report = sq_job_swap_report,
    .job_report = sq_job_report,
    .jobs_report = sq_jobs_report,
    .job_control = sq_job_control,
    .node_put = sq_node_put,
    .node_heartbeat = sq_node_heartbeat,
    .node_set_state = sq_node_set_state,
    .nodes = sq_nodes,
    .node_get = sq_node_get,
    .node_requeue = sq_node_requeue,
    .job_reasons = sq_job_reasons,
};
