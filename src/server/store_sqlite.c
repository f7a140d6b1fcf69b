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

#include "server/store.h"

struct store {
    sqlite3 *db;
    pthread_mutex_t mu;
};

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
};

static const char *const role_names[] = {"admin", "user", "agent"};
static const char *const state_names[] = {"pending",   "assigned", "running",  "swapped",
                                          "succeeded", "failed",   "cancelled"};
static const char *const node_state_names[] = {"ready", "cordoned", "draining"};

const char *store_role_name(enum store_role r)
{
    return (unsigned)r < 3 ? role_names[r] : "?";
}

int store_role_parse(const char *name, enum store_role *out)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, role_names[i]) == 0) {
            *out = (enum store_role)i;
            return 0;
        }
    return -EINVAL;
}

const char *store_job_state_name(enum store_job_state s)
{
    return (unsigned)s < 7 ? state_names[s] : "?";
}

int store_job_state_parse(const char *name, enum store_job_state *out)
{
    for (int i = 0; i < 7; i++)
        if (strcmp(name, state_names[i]) == 0) {
            *out = (enum store_job_state)i;
            return 0;
        }
    return -EINVAL;
}

void store_job_clear(struct store_job *j)
{
    json_decref(j->spec);
    json_decref(j->swap);
    memset(j, 0, sizeof(*j));
}

static int exec(struct store *s, const char *sql)
{
    return sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

static int migrate(struct store *s, char *err, size_t errlen)
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

int store_open(const char *url, struct store **out, char *err, size_t errlen)
{
    struct store *s;
    int rc;

    if (strncmp(url, "sqlite:", 7) != 0 || url[7] == '\0') {
        snprintf(err, errlen, "store '%s': expected sqlite:PATH", url);
        return -EINVAL;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    pthread_mutex_init(&s->mu, NULL);
    if (sqlite3_open_v2(url + 7, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                             SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", url + 7, sqlite3_errmsg(s->db));
        store_close(s);
        return -EIO;
    }
    sqlite3_busy_timeout(s->db, 5000);
    /* Acknowledged means durable: WAL, and every commit synced. */
    if (exec(s, "PRAGMA journal_mode=WAL") || exec(s, "PRAGMA synchronous=FULL") ||
        exec(s, "PRAGMA foreign_keys=ON")) {
        snprintf(err, errlen, "%s: %s", url + 7, sqlite3_errmsg(s->db));
        store_close(s);
        return -EIO;
    }
    if ((rc = migrate(s, err, errlen)) != 0) {
        store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

void store_close(struct store *s)
{
    if (s == NULL)
        return;
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static const char *pragma_text(struct store *s, const char *sql, char *buf, size_t len)
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

int store_settings(struct store *s, json_t **out)
{
    static const char *const sync_names[] = {"off", "normal", "full", "extra"};
    char mode[32], sync[32];
    int level;

    pthread_mutex_lock(&s->mu);
    pragma_text(s, "PRAGMA journal_mode", mode, sizeof(mode));
    pragma_text(s, "PRAGMA synchronous", sync, sizeof(sync));
    pthread_mutex_unlock(&s->mu);
    level = atoi(sync);
    *out = json_pack("{s:s, s:s, s:s}", "backend", "sqlite", "journal_mode", mode, "synchronous",
                     level >= 0 && level < 4 ? sync_names[level] : sync);
    return 0;
}

/* Runs one prepared statement with text and integer bindings given as a format: 't' text,
 * 'i' int64.  Returns the sqlite result of the step; the statement stays open in *stp. */
static int vrun(struct store *s, sqlite3_stmt **stp, const char *sql, const char *fmt, va_list ap)
{
    sqlite3_stmt *st;
    int rc;

    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return SQLITE_ERROR;
    for (int i = 0; fmt[i]; i++) {
        if (fmt[i] == 't')
            sqlite3_bind_text(st, i + 1, va_arg(ap, const char *), -1, SQLITE_TRANSIENT);
        else
            sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
    }
    rc = sqlite3_step(st);
    if (stp != NULL)
        *stp = st;
    else
        sqlite3_finalize(st);
    return rc;
}

static int run(struct store *s, sqlite3_stmt **stp, const char *sql, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vrun(s, stp, sql, fmt, ap);
    va_end(ap);
    return rc;
}

static int write_result(int rc)
{
    if (rc == SQLITE_DONE || rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_CONSTRAINT ? -EEXIST : -EIO;
}

/* Ends the open transaction: commits (and syncs) when rc is 0, else rolls back. */
static int finish(struct store *s, int rc)
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
static int write1(struct store *s, bool must_change, const char *sql, const char *fmt, ...)
{
    va_list ap;
    int rc;

    pthread_mutex_lock(&s->mu);
    exec(s, "BEGIN IMMEDIATE");
    va_start(ap, fmt);
    rc = write_result(vrun(s, NULL, sql, fmt, ap));
    va_end(ap);
    if (rc == 0 && must_change && sqlite3_changes(s->db) == 0)
        rc = -ENOENT;
    rc = finish(s, rc);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_user_add(struct store *s, const struct store_user *u, int64_t *id, char *err,
                   size_t errlen)
{
    int rc;

    pthread_mutex_lock(&s->mu);
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
    pthread_mutex_unlock(&s->mu);
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
static int one_user(struct store *s, struct store_user *out, const char *sql, const char *fmt,
                    ...)
{
    sqlite3_stmt *st = NULL;
    va_list ap;
    int rc;

    pthread_mutex_lock(&s->mu);
    va_start(ap, fmt);
    rc = vrun(s, &st, sql, fmt, ap);
    va_end(ap);
    if (rc == SQLITE_ROW)
        user_row(st, out);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : -EIO;
}

int store_user_get(struct store *s, const char *name, struct store_user *out)
{
    return one_user(s, out, "SELECT id, name, unix_user, uid, role FROM users WHERE name = ?", "t",
                    name);
}

int store_users_count(struct store *s, int64_t *n)
{
    sqlite3_stmt *st = NULL;
    int rc;

    pthread_mutex_lock(&s->mu);
    rc = run(s, &st, "SELECT count(*) FROM users", "");
    *n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return rc == SQLITE_ROW ? 0 : -EIO;
}

int store_token_add(struct store *s, int64_t user_id, const char *hash)
{
    return write1(s, false, "INSERT INTO tokens (user_id, hash) VALUES (?, ?)", "it", user_id,
                  hash);
}

int store_token_user(struct store *s, const char *hash, struct store_user *out)
{
    return one_user(s, out,
                    "SELECT u.id, u.name, u.unix_user, u.uid, u.role FROM tokens t JOIN users u "
                    "ON u.id = t.user_id WHERE t.hash = ? AND t.revoked = 0",
                    "t", hash);
}

int store_session_add(struct store *s, int64_t user_id, const char *hash, int64_t expires_ms,
                      int64_t now_ms)
{
    int rc;

    pthread_mutex_lock(&s->mu);
    exec(s, "BEGIN IMMEDIATE");
    /* Expired sessions go as new ones come. */
    rc = write_result(run(s, NULL, "DELETE FROM sessions WHERE expires_ms <= ?", "i", now_ms));
    if (rc == 0)
        rc = write_result(run(s, NULL,
                              "INSERT INTO sessions (hash, user_id, expires_ms) VALUES (?, ?, ?)",
                              "tii", hash, user_id, expires_ms));
    rc = finish(s, rc);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_session_user(struct store *s, const char *hash, int64_t now_ms, struct store_user *out)
{
    return one_user(s, out,
                    "SELECT u.id, u.name, u.unix_user, u.uid, u.role FROM sessions x JOIN users u "
                    "ON u.id = x.user_id WHERE x.hash = ? AND x.expires_ms > ?",
                    "ti", hash, now_ms);
}

int store_session_delete(struct store *s, const char *hash)
{
    return write1(s, true, "DELETE FROM sessions WHERE hash = ?", "t", hash);
}

int store_project_put(struct store *s, const struct store_project *p, char *err, size_t errlen)
{
    int rc = write1(s, false,
                    "INSERT INTO projects (name, parent, deserved_milli, limit_milli, weight) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET parent = "
                    "excluded.parent, deserved_milli = excluded.deserved_milli, limit_milli = "
                    "excluded.limit_milli, weight = excluded.weight",
                    "ttiii", p->name, p->parent, p->deserved_milli, p->limit_milli,
                    (int64_t)p->weight);

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
}

int store_project_get(struct store *s, const char *name, struct store_project *out)
{
    sqlite3_stmt *st = NULL;
    int rc;

    pthread_mutex_lock(&s->mu);
    rc = run(s, &st,
             "SELECT name, parent, deserved_milli, limit_milli, weight FROM projects WHERE "
             "name = ?",
             "t", name);
    if (rc == SQLITE_ROW)
        project_row(st, out);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : -EIO;
}

int store_projects(struct store *s, void (*fn)(const struct store_project *, void *), void *arg)
{
    sqlite3_stmt *st = NULL;
    int rc;

    pthread_mutex_lock(&s->mu);
    for (rc = run(s, &st, "SELECT name, parent, deserved_milli, limit_milli, weight FROM "
                          "projects ORDER BY name", "");
         rc == SQLITE_ROW; rc = sqlite3_step(st)) {
        struct store_project p;

        project_row(st, &p);
        fn(&p, arg);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

int store_member_add(struct store *s, const char *project, int64_t user_id)
{
    return write1(s, false, "INSERT OR IGNORE INTO members (project, user_id) VALUES (?, ?)",
                  "ti", project, user_id);
}

int store_is_member(struct store *s, const char *project, int64_t user_id)
{
    sqlite3_stmt *st = NULL;
    int rc;

    pthread_mutex_lock(&s->mu);
    rc = run(s, &st, "SELECT 1 FROM members WHERE project = ? AND user_id = ?", "ti", project,
             user_id);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return rc == SQLITE_ROW ? 1 : 0;
}

static int insert_job(struct store *s, struct store_job *j)
{
    char *spec = json_dumps(j->spec, JSON_COMPACT | JSON_SORT_KEYS);
    int rc;

    if (spec == NULL)
        return -ENOMEM;
    rc = write_result(run(s, NULL,
                          "INSERT INTO jobs (name, project, user_id, state, submitted_ms, spec) "
                          "VALUES (?, ?, ?, ?, ?, ?)",
                          "ttitit", j->name, j->project, j->user_id,
                          store_job_state_name(j->state), j->submitted_ms, spec));
    free(spec);
    if (rc == 0)
        j->id = sqlite3_last_insert_rowid(s->db);
    return rc;
}

int store_jobs_add(struct store *s, struct store_job *const *jobs, int n)
{
    int rc = 0;

    pthread_mutex_lock(&s->mu);
    exec(s, "BEGIN IMMEDIATE");
    for (int i = 0; i < n && rc == 0; i++)
        rc = insert_job(s, jobs[i]);
    if ((rc = finish(s, rc)) != 0)
        for (int i = 0; i < n; i++)
            jobs[i]->id = 0;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

#define JOB_COLUMNS                                                                                \
    "j.id, j.name, j.project, j.user_id, u.name, j.state, j.reason, j.submitted_ms, "              \
    "j.started_ms, j.finished_ms, j.spec, j.node, j.gpus, j.exit_code, u.unix_user, u.uid, "       \
    "j.swap FROM jobs j JOIN users u ON u.id = j.user_id"

static void job_row(sqlite3_stmt *st, struct store_job *j)
{
    memset(j, 0, sizeof(*j));
    j->id = sqlite3_column_int64(st, 0);
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
}

int store_job_get(struct store *s, int64_t id, struct store_job *out)
{
    sqlite3_stmt *st = NULL;
    int rc;

    pthread_mutex_lock(&s->mu);
    rc = run(s, &st, "SELECT " JOB_COLUMNS " WHERE j.id = ?", "i", id);
    if (rc == SQLITE_ROW)
        job_row(st, out);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : -EIO;
}

int store_job_timeline(struct store *s, int64_t id, json_t **out)
{
    sqlite3_stmt *st = NULL;
    int rc;

    *out = json_array();
    pthread_mutex_lock(&s->mu);
    rc = run(s, &st,
             "SELECT state, at_ms, reason FROM job_states WHERE job_id = ? ORDER BY rowid", "i",
             id);
    for (; rc == SQLITE_ROW; rc = sqlite3_step(st))
        json_array_append_new(*out, json_pack("{s:s, s:I, s:s}", "state",
                                              (const char *)sqlite3_column_text(st, 0), "at_ms",
                                              (json_int_t)sqlite3_column_int64(st, 1), "reason",
                                              (const char *)sqlite3_column_text(st, 2)));
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    if (rc != SQLITE_DONE) {
        json_decref(*out);
        *out = NULL;
        return -EIO;
    }
    return 0;
}

int store_jobs(struct store *s, const struct store_job_filter *f,
               int (*fn)(const struct store_job *, void *), void *arg)
{
    sqlite3_stmt *st = NULL;
    int rc, n = 0;

    pthread_mutex_lock(&s->mu);
    rc = run(s, &st,
             "SELECT " JOB_COLUMNS " WHERE (?1 = 0 OR j.user_id = ?1) AND (?2 = '' OR "
             "j.project = ?2) AND (?3 = '' OR j.state = ?3) AND j.id > ?4 AND (?6 = '' OR "
             "(j.state IN ('assigned', 'running', 'swapped') AND (' ' || j.node || ' ') LIKE "
             "('% ' || ?6 || ' %'))) ORDER BY j.id LIMIT ?5",
             "ittiit", f->user_id, f->project ? f->project : "",
             f->state >= 0 ? store_job_state_name((enum store_job_state)f->state) : "",
             f->after_id, (int64_t)(f->limit > 0 ? f->limit : -1), f->node ? f->node : "");
    for (; rc == SQLITE_ROW; rc = sqlite3_step(st), n++) {
        struct store_job j;
        int stop;

        job_row(st, &j);
        stop = fn(&j, arg);
        store_job_clear(&j);
        if (stop) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

int store_job_transition(struct store *s, int64_t id, unsigned from, enum store_job_state to,
                         const char *reason, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    enum store_job_state cur = STORE_JOB_PENDING;
    int rc;

    pthread_mutex_lock(&s->mu);
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
    rc = finish(s, rc);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_job_reasons(struct store *s, const int64_t *ids, const char *const *reasons, int n)
{
    int rc = 0;

    pthread_mutex_lock(&s->mu);
    exec(s, "BEGIN IMMEDIATE");
    for (int i = 0; i < n && rc == 0; i++)
        rc = write_result(run(s, NULL,
                              "UPDATE jobs SET reason = ? WHERE id = ? AND reason != ?1 AND "
                              "state = 'pending'",
                              "ti", reasons[i], ids[i]));
    rc = finish(s, rc);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- nodes and assignments ---- */

const char *store_node_state_name(enum store_node_state st)
{
    return (unsigned)st < 3 ? node_state_names[st] : "?";
}

void store_node_clear(struct store_node *n)
{
    json_decref(n->gpus);
    json_decref(n->telemetry);
    memset(n, 0, sizeof(*n));
}

int store_node_put(struct store *s, const struct store_node *n)
{
    char *gpus = json_dumps(n->gpus, JSON_COMPACT);
    int rc;

    if (gpus == NULL)
        return -ENOMEM;
    rc = write1(s, true,
                "INSERT INTO nodes (name, cpu_milli, mem_mib, gpus, heartbeat_ms) VALUES (?, ?, "
                "?, ?, ?) ON CONFLICT(name) DO UPDATE SET cpu_milli = excluded.cpu_milli, "
                "mem_mib = excluded.mem_mib, gpus = excluded.gpus, heartbeat_ms = "
                "excluded.heartbeat_ms",
                "tiiti", n->name, n->cpu_milli, n->mem_mib, gpus, n->heartbeat_ms);
    free(gpus);
    return rc;
}

int store_node_heartbeat(struct store *s, const char *name, int64_t now_ms, json_t *telemetry)
{
    char *text = telemetry ? json_dumps(telemetry, JSON_COMPACT) : NULL;
    int rc;

    if (telemetry != NULL && text == NULL)
        return -ENOMEM;
    rc = write1(s, true, "UPDATE nodes SET heartbeat_ms = ?, telemetry = ? WHERE name = ?", "itt",
                now_ms, text ? text : "", name);
    free(text);
    return rc;
}

int store_node_set_state(struct store *s, const char *name, enum store_node_state st)
{
    return write1(s, true, "UPDATE nodes SET state = ? WHERE name = ?", "tt",
                  store_node_state_name(st), name);
}

int store_nodes(struct store *s, void (*fn)(const struct store_node *, void *), void *arg)
{
    sqlite3_stmt *st = NULL;
    int rc;

    pthread_mutex_lock(&s->mu);
    for (rc = run(s, &st, "SELECT name, cpu_milli, mem_mib, gpus, state, heartbeat_ms, "
                          "telemetry FROM nodes ORDER BY name", "");
         rc == SQLITE_ROW; rc = sqlite3_step(st)) {
        struct store_node n = {0};

        snprintf(n.name, sizeof(n.name), "%s", (const char *)sqlite3_column_text(st, 0));
        n.cpu_milli = sqlite3_column_int64(st, 1);
        n.mem_mib = sqlite3_column_int64(st, 2);
        n.gpus = json_loads((const char *)sqlite3_column_text(st, 3), 0, NULL);
        for (int i = 0; i < 3; i++)
            if (strcmp((const char *)sqlite3_column_text(st, 4), node_state_names[i]) == 0)
                n.state = (enum store_node_state)i;
        n.heartbeat_ms = sqlite3_column_int64(st, 5);
        n.telemetry = json_loads((const char *)sqlite3_column_text(st, 6), 0, NULL);
        fn(&n, arg);
        store_node_clear(&n);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

int store_node_requeue(struct store *s, const char *name, const char *reason)
{
    return write1(s, false,
                  "UPDATE jobs SET state = 'pending', node = '', gpus = '', reason = ? WHERE "
                  "node = ? AND state IN ('assigned', 'running')",
                  "tt", reason, name);
}

/* The job-moving writes: a job not in the state they start from is -EBUSY. */
static int busy(int rc)
{
    return rc == -ENOENT ? -EBUSY : rc;
}

int store_job_assign(struct store *s, int64_t id, const char *node, const char *gpus,
                     int64_t now_ms)
{
    return busy(write1(s, true,
                       "UPDATE jobs SET state = 'assigned', node = ?, gpus = ?, reason = '', "
                       "started_ms = ? WHERE id = ? AND state = 'pending'",
                       "ttii", node, gpus, now_ms, id));
}

int store_job_report(struct store *s, int64_t id, const char *node, enum store_job_state to,
                     int exit_code, int64_t now_ms)
{
    if (to == STORE_JOB_RUNNING)
        return busy(write1(s, true,
                           "UPDATE jobs SET state = 'running' WHERE id = ? AND node = ? AND "
                           "state = 'assigned'",
                           "it", id, node));
    return busy(write1(s, true,
                       "UPDATE jobs SET state = ?, exit_code = ?, finished_ms = ? WHERE id = ? "
                       "AND node = ? AND state IN ('assigned', 'running')",
                       "tiiit", store_job_state_name(to), (int64_t)exit_code, now_ms, id, node));
}

int store_job_swap_want(struct store *s, int64_t id, const char *want)
{
    return busy(write1(s, true,
                       "UPDATE jobs SET swap = json_set(CASE swap WHEN '' THEN '{}' ELSE swap END, "
                       "'$.want', ?1, '$.error', '') WHERE id = ?2 AND ((?1 = 'out' AND state = "
                       "'running') OR (?1 = 'in' AND (state = 'swapped' OR (state = 'running' AND "
                       "swap <> '' AND json_extract(swap, '$.want') = 'out'))))",
                       "ti", want, id));
}

int store_job_swap_report(struct store *s, int64_t id, const char *node,
                          enum store_job_state to, const char *swap)
{
    return busy(write1(s, true,
                       "UPDATE jobs SET state = ?, swap = ? WHERE id = ? AND node = ? AND state "
                       "IN ('running', 'swapped')",
                       "ttit", store_job_state_name(to), swap, id, node));
}

int store_job_requeue(struct store *s, int64_t id, const char *reason)
{
    return busy(write1(s, true,
                       "UPDATE jobs SET state = 'pending', node = '', gpus = '', reason = ? "
                       "WHERE id = ? AND state IN ('assigned', 'running')",
                       "ti", reason, id));
}
