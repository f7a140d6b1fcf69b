/*
 * The store's contract: every case runs against both backends, SQLite (a new file) and
 * PostgreSQL (a new schema in the database GPOOL_TEST_PG names; tests/with_pg.sh starts a
 * private cluster when none is given).  Without PostgreSQL the PostgreSQL cases fail.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/store.h"

#define HOUR 3600000LL
#define T0 (1700000000000LL - 1700000000000LL % HOUR) /* on the hour */

static const char *backend; /* "sqlite" or "postgresql": the group that runs */
static char url[512];
static char sqlite_path[64];

/* A fresh, empty PostgreSQL schema: the last test's tables dropped. */
static int pg_fresh(const char *pg_url)
{
    PGconn *c = PQconnectdb(pg_url);
    PGresult *r;
    int ok;

    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "# PostgreSQL at %s: %s", pg_url, PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    r = PQexec(c, "SET client_min_messages = warning; DROP SCHEMA IF EXISTS public CASCADE; "
                  "CREATE SCHEMA public");
    ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    PQfinish(c);
    return ok ? 0 : -1;
}

static int open_fresh(void **state)
{
    struct store *s;
    char err[256];

    if (strcmp(backend, "sqlite") == 0) {
        int fd;

        snprintf(sqlite_path, sizeof(sqlite_path), "/tmp/gpool-store-test.XXXXXX");
        if ((fd = mkstemp(sqlite_path)) < 0)
            return -1;
        close(fd);
        unlink(sqlite_path);
        snprintf(url, sizeof(url), "sqlite:%s", sqlite_path);
    } else {
        const char *pg = getenv("GPOOL_TEST_PG");

        if (pg == NULL || pg[0] == '\0') {
            fprintf(stderr, "# GPOOL_TEST_PG is not set: no PostgreSQL to test against\n");
            return -1;
        }
        if (pg_fresh(pg) != 0)
            return -1;
        snprintf(url, sizeof(url), "%s", pg);
    }
    if (store_open(url, &s, err, sizeof(err)) != 0) {
        fprintf(stderr, "# %s: %s\n", url, err);
        return -1;
    }
    *state = s;
    return 0;
}

static int close_store(void **state)
{
    store_close(*state);
    if (strcmp(backend, "sqlite") == 0) {
        char more[80];

        unlink(sqlite_path);
        snprintf(more, sizeof(more), "%s-wal", sqlite_path);
        unlink(more);
        snprintf(more, sizeof(more), "%s-shm", sqlite_path);
        unlink(more);
    }
    return 0;
}

/* ---- helpers ---- */

static int64_t add_user(struct store *s, const char *name, enum store_role role)
{
    struct store_user u = {.uid = 65534, .role = role};
    char err[128];
    int64_t id = 0;

    snprintf(u.name, sizeof(u.name), "%s", name);
    snprintf(u.unix_user, sizeof(u.unix_user), "nobody");
    assert_int_equal(store_user_add(s, &u, &id, err, sizeof(err)), 0);
    assert_true(id > 0);
    return id;
}

static void put_project(struct store *s, const char *name, const char *parent, int64_t deserved)
{
    struct store_project p = {.deserved_milli = deserved, .limit_milli = -1, .weight = 1};
    char err[128];

    snprintf(p.name, sizeof(p.name), "%s", name);
    snprintf(p.parent, sizeof(p.parent), "%s", parent);
    assert_int_equal(store_project_put(s, &p, err, sizeof(err)), 0);
}

/* Submits one job of `gpus` GPUs (spec extras as JSON text, or NULL); its id. */
static int64_t submit(struct store *s, int64_t user, const char *project, const char *name,
                      int64_t at, const char *extra)
{
    struct store_job j = {.user_id = user, .state = STORE_JOB_PENDING, .submitted_ms = at};
    struct store_job *jp = &j;
    int64_t id;

    snprintf(j.name, sizeof(j.name), "%s", name);
    snprintf(j.project, sizeof(j.project), "%s", project);
    j.spec = json_pack("{s:i, s:[s,s]}", "gpus", 1, "command", "sleep", "1");
    if (extra != NULL) {
        json_t *more = json_loads(extra, 0, NULL);

        json_object_update(j.spec, more);
        json_decref(more);
    }
    assert_int_equal(store_jobs_add(s, &jp, 1), 0);
    id = j.id;
    json_decref(j.spec);
    assert_true(id > 0);
    return id;
}

static enum store_job_state state_of(struct store *s, int64_t id)
{
    enum store_job_state st;
    struct store_job j;

    assert_int_equal(store_job_get(s, id, &j), 0);
    st = j.state;
    store_job_clear(&j);
    return st;
}

struct ids {
    int64_t id[64];
    int n;
};

static int collect(const struct store_job *j, void *arg)
{
    struct ids *x = arg;

    if (x->n < 64)
        x->id[x->n++] = j->id;
    return 0;
}

static struct ids list(struct store *s, const struct store_job_filter *f)
{
    struct ids x = {.n = 0};

    assert_int_equal(store_jobs(s, f, collect, &x), 0);
    return x;
}

static void put_node(struct store *s, const char *name, int gpus)
{
    struct store_node n = {.cpu_milli = 32000, .mem_mib = 256000, .heartbeat_ms = T0};

    snprintf(n.name, sizeof(n.name), "%s", name);
    n.gpus = json_array();
    for (int i = 0; i < gpus; i++)
        json_array_append_new(n.gpus, json_pack("{s:s, s:s, s:I}", "uuid", "GPU-x", "model", "H100",
                                                "memory_bytes", (json_int_t)80 << 30));
    assert_int_equal(store_node_put(s, &n), 0);
    json_decref(n.gpus);
}

struct run_list {
    struct store_run r[8];
    int n;
};

static void add_run(const struct store_run *r, void *arg)
{
    struct run_list *x = arg;

    if (x->n < 8)
        x->r[x->n++] = *r;
}

static struct run_list runs_of(struct store *s, int64_t id)
{
    struct run_list x = {.n = 0};

    assert_int_equal(store_job_runs(s, id, add_run, &x), 0);
    return x;
}

/* ---- the cases ---- */

static void users_tokens_and_sessions(void **state)
{
    struct store *s = *state;
    struct store_user u = {.uid = 1, .role = STORE_ROLE_USER}, got;
    char err[128] = "";
    int64_t n, id, ana = add_user(s, "ana", STORE_ROLE_ADMIN);

    snprintf(u.name, sizeof(u.name), "ana");
    snprintf(u.unix_user, sizeof(u.unix_user), "ana");
    assert_int_equal(store_user_add(s, &u, &id, err, sizeof(err)), -EEXIST);
    assert_non_null(strstr(err, "'ana' exists"));
    add_user(s, "bob", STORE_ROLE_AGENT);
    assert_int_equal(store_users_count(s, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(store_user_get(s, "bob", &got), 0);
    assert_int_equal(got.role, STORE_ROLE_AGENT);
    assert_string_equal(got.unix_user, "nobody");
    assert_int_equal(store_user_get(s, "carol", &got), -ENOENT);

    assert_int_equal(store_token_add(s, ana, "hash-1"), 0);
    assert_int_equal(store_token_add(s, ana, "hash-1"), -EEXIST);
    assert_int_equal(store_token_user(s, "hash-1", &got), 0);
    assert_string_equal(got.name, "ana");
    assert_int_equal(got.id, ana);
    assert_int_equal(store_token_user(s, "hash-2", &got), -ENOENT);

    assert_int_equal(store_session_add(s, ana, "cookie", T0 + 1000, T0), 0);
    assert_int_equal(store_session_user(s, "cookie", T0 + 999, &got), 0);
    assert_string_equal(got.name, "ana");
    assert_int_equal(store_session_user(s, "cookie", T0 + 1000, &got), -ENOENT);
    assert_int_equal(store_session_delete(s, "cookie"), 0);
    assert_int_equal(store_session_delete(s, "cookie"), -ENOENT);
}

struct join_list {
    struct store_join_token t[4];
    int n;
};

static void add_join(const struct store_join_token *t, void *arg)
{
    struct join_list *x = arg;

    if (x->n < 4)
        x->t[x->n++] = *t;
}

static void join_tokens_and_node_credentials(void **state)
{
    struct store *s = *state;
    struct store_user got;
    struct join_list x = {.n = 0};
    int64_t ana = add_user(s, "ana", STORE_ROLE_ADMIN), j1, j2, j3, n;

    add_user(s, "bob", STORE_ROLE_USER);
    assert_int_equal(store_join_token_add(s, "join-1", ana, T0, 0, &j1), 0);
    assert_int_equal(store_join_token_add(s, "join-2", ana, T0, T0 + 1000, &j2), 0);
    assert_int_equal(store_join_token_add(s, "join-3", ana, T0, 0, &j3), 0);
    assert_int_equal(store_join_token_add(s, "join-1", ana, T0, 0, &n), -EEXIST);
    assert_true(j1 < j2 && j2 < j3);

    /* A node joins: an agent user of its own, its credential a token of that user. */
    assert_int_equal(store_node_join(s, "join-1", "node:n1", "cred-1", T0 + 10), 0);
    assert_int_equal(store_token_user(s, "cred-1", &got), 0);
    assert_string_equal(got.name, "node:n1");
    assert_int_equal(got.role, STORE_ROLE_AGENT);
    /* Joining again (a reinstalled node) adds a credential to the same user. */
    assert_int_equal(store_node_join(s, "join-1", "node:n1", "cred-1b", T0 + 20), 0);
    assert_int_equal(store_token_user(s, "cred-1b", &got), 0);
    assert_string_equal(got.name, "node:n1");

    /* Refusals change nothing: unknown, expired, revoked, a user's name taken by a non-agent. */
    assert_int_equal(store_node_join(s, "nope", "node:n2", "cred-2", T0), -ENOENT);
    assert_int_equal(store_node_join(s, "join-2", "node:n2", "cred-2", T0 + 1000), -EKEYEXPIRED);
    assert_int_equal(store_join_token_revoke(s, j3), 0);
    assert_int_equal(store_join_token_revoke(s, j3), 0);
    assert_int_equal(store_join_token_revoke(s, j3 + 100), -ENOENT);
    assert_int_equal(store_node_join(s, "join-3", "node:n3", "cred-3", T0), -EKEYREVOKED);
    assert_int_equal(store_node_join(s, "join-1", "bob", "cred-4", T0), -EEXIST);
    assert_int_equal(store_token_user(s, "cred-2", &got), -ENOENT);
    assert_int_equal(store_token_user(s, "cred-3", &got), -ENOENT);
    assert_int_equal(store_token_user(s, "cred-4", &got), -ENOENT);
    assert_int_equal(store_user_get(s, "node:n2", &got), -ENOENT);
    assert_int_equal(store_user_get(s, "node:n3", &got), -ENOENT);

    assert_int_equal(store_join_tokens(s, add_join, &x), 0);
    assert_int_equal(x.n, 3);
    assert_int_equal(x.t[0].id, j1);
    assert_string_equal(x.t[0].created_by, "ana");
    assert_int_equal(x.t[0].joins, 2);
    assert_false(x.t[0].revoked);
    assert_int_equal(x.t[1].expires_ms, T0 + 1000);
    assert_int_equal(x.t[1].joins, 0);
    assert_true(x.t[2].revoked);

    /* A node's credentials are revoked together; then there are none left to revoke. */
    assert_int_equal(store_user_get(s, "node:n1", &got), 0);
    assert_int_equal(store_user_tokens_revoke(s, got.id), 0);
    assert_int_equal(store_token_user(s, "cred-1", &got), -ENOENT);
    assert_int_equal(store_token_user(s, "cred-1b", &got), -ENOENT);
    assert_int_equal(store_user_get(s, "node:n1", &got), 0);
    assert_int_equal(store_user_tokens_revoke(s, got.id), -ENOENT);
}

struct names {
    char name[8][129];
    int n;
};

static void add_name(const struct store_project *p, void *arg)
{
    struct names *x = arg;

    if (x->n < 8)
        snprintf(x->name[x->n++], 129, "%s", p->name);
}

static void projects_and_members(void **state)
{
    struct store *s = *state;
    struct store_project p;
    struct names x = {.n = 0};
    int64_t ana = add_user(s, "ana", STORE_ROLE_USER);
    char err[128];

    put_project(s, "vision", "", 4000);
    put_project(s, "Zeta", "", 1000);
    put_project(s, "audio", "", 2000);
    put_project(s, "vision-a", "vision", 1000);
    put_project(s, "vision", "", 6000); /* an update, not a second one */
    assert_int_equal(store_project_get(s, "vision", &p), 0);
    assert_int_equal(p.deserved_milli, 6000);
    assert_int_equal(p.limit_milli, -1);
    assert_int_equal(store_project_get(s, "vision-a", &p), 0);
    assert_string_equal(p.parent, "vision");
    assert_int_equal(store_project_get(s, "nope", &p), -ENOENT);
    assert_int_equal(store_projects(s, add_name, &x), 0);
    assert_int_equal(x.n, 4);
    /* Byte order, as the API lists them. */
    assert_string_equal(x.name[0], "Zeta");
    assert_string_equal(x.name[1], "audio");
    assert_string_equal(x.name[2], "vision");
    assert_string_equal(x.name[3], "vision-a");

    /* A project's lending policy is kept, and changed by an update. */
    assert_false(p.no_lend || p.no_borrow);
    p.no_lend = true;
    assert_int_equal(store_project_put(s, &p, err, sizeof(err)), 0);
    assert_int_equal(store_project_get(s, "vision-a", &p), 0);
    assert_true(p.no_lend);
    assert_false(p.no_borrow);
    p.no_lend = false;
    p.no_borrow = true;
    assert_int_equal(store_project_put(s, &p, err, sizeof(err)), 0);
    assert_int_equal(store_project_get(s, "vision-a", &p), 0);
    assert_false(p.no_lend);
    assert_true(p.no_borrow);

    assert_int_equal(store_is_member(s, "vision", ana), 0);
    assert_int_equal(store_member_add(s, "vision", ana), 0);
    assert_int_equal(store_member_add(s, "vision", ana), 0);
    assert_int_equal(store_is_member(s, "vision", ana), 1);
    assert_int_equal(store_is_member(s, "audio", ana), 0);
}

static void submit_get_and_list_with_filters(void **state)
{
    struct store *s = *state;
    int64_t ana = add_user(s, "ana", STORE_ROLE_USER), bob = add_user(s, "bob", STORE_ROLE_USER);
    struct store_job_filter f = {.state = -1};
    struct store_job j0 = {.user_id = ana, .submitted_ms = T0}, j1 = j0, j;
    struct store_job *batch[2] = {&j0, &j1};
    int64_t id[6];
    struct ids x;

    put_project(s, "vision", "", 4000);
    put_project(s, "audio", "", 4000);
    /* A batch is stored whole, in order. */
    snprintf(j0.name, sizeof(j0.name), "first");
    snprintf(j0.project, sizeof(j0.project), "vision");
    j1 = j0;
    snprintf(j1.name, sizeof(j1.name), "second \"quoted\" \\ name");
    j0.spec = json_pack("{s:i, s:[s,s], s:{s:s}}", "gpus", 2, "command", "python", "train.py",
                        "env", "SEED", "1");
    j1.spec = json_pack("{s:i, s:[s]}", "gpus", 1, "command", "true");
    assert_int_equal(store_jobs_add(s, batch, 2), 0);
    assert_true(j0.id > 0 && j1.id == j0.id + 1);
    id[0] = j0.id;
    id[1] = j1.id;
    id[2] = submit(s, bob, "audio", "b1", T0 + 10, NULL);
    id[3] = submit(s, bob, "vision", "b2", T0 + 20, NULL);
    id[4] = submit(s, ana, "audio", "a3", T0 + 30, NULL);
    id[5] = submit(s, ana, "vision", "a4", T0 + 40, NULL);

    assert_int_equal(store_job_get(s, id[0], &j), 0);
    assert_string_equal(j.name, "first");
    assert_string_equal(j.user, "ana");
    assert_string_equal(j.unix_user, "nobody");
    assert_int_equal(j.state, STORE_JOB_PENDING);
    assert_int_equal(j.submitted_ms, T0);
    assert_true(json_equal(j.spec, j0.spec));
    assert_null(j.swap);
    store_job_clear(&j);
    assert_int_equal(store_job_get(s, id[1], &j), 0);
    assert_string_equal(j.name, "second \"quoted\" \\ name");
    store_job_clear(&j);
    assert_int_equal(store_job_get(s, id[5] + 100, &j), -ENOENT);
    json_decref(j0.spec);
    json_decref(j1.spec);

    x = list(s, &f);
    assert_int_equal(x.n, 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(x.id[i], id[i]);
    f.user_id = bob;
    x = list(s, &f);
    assert_int_equal(x.n, 2);
    assert_int_equal(x.id[0], id[2]);
    f = (struct store_job_filter){.state = -1, .project = "vision"};
    x = list(s, &f);
    assert_int_equal(x.n, 4);
    f = (struct store_job_filter){.state = -1, .project = "vision", .user_id = ana};
    x = list(s, &f);
    assert_int_equal(x.n, 3);
    /* Pages: after an id, up to a limit. */
    f = (struct store_job_filter){.state = -1, .limit = 2};
    x = list(s, &f);
    assert_int_equal(x.n, 2);
    assert_int_equal(x.id[1], id[1]);
    f.after_id = x.id[1];
    x = list(s, &f);
    assert_int_equal(x.n, 2);
    assert_int_equal(x.id[0], id[2]);
    f.after_id = id[5];
    x = list(s, &f);
    assert_int_equal(x.n, 0);
    /* By state, and by a set of states. */
    assert_int_equal(store_job_transition(s, id[3], 1u << STORE_JOB_PENDING, STORE_JOB_CANCELLED,
                                          "cancelled by bob", T0 + 100),
                     0);
    f = (struct store_job_filter){.state = STORE_JOB_CANCELLED};
    x = list(s, &f);
    assert_int_equal(x.n, 1);
    assert_int_equal(x.id[0], id[3]);
    f = (struct store_job_filter){.state = -1,
                                  .states = 1u << STORE_JOB_CANCELLED | 1u << STORE_JOB_SUCCEEDED};
    assert_int_equal(list(s, &f).n, 1);
    f = (struct store_job_filter){.state = -1, .states = 1u << STORE_JOB_PENDING};
    assert_int_equal(list(s, &f).n, 5);
    /* Alive in a period: submitted before its end, not ended before its start. */
    f = (struct store_job_filter){.state = -1, .until_ms = T0 + 25};
    assert_int_equal(list(s, &f).n, 4);
    f = (struct store_job_filter){.state = -1, .since_ms = T0 + 101};
    assert_int_equal(list(s, &f).n, 5);
}

static int stop_after_two(const struct store_job *j, void *arg)
{
    return ++*(int *)arg == 2;
}

static void a_listing_stops_when_asked(void **state)
{
    struct store *s = *state;
    struct store_job_filter f = {.state = -1};
    int64_t ana = add_user(s, "ana", STORE_ROLE_USER);
    int seen = 0;

    for (int i = 0; i < 5; i++)
        submit(s, ana, "p", "j", T0 + i, NULL);
    assert_int_equal(store_jobs(s, &f, stop_after_two, &seen), 0);
    assert_int_equal(seen, 2);
}

static void cancel_and_timeline(void **state)
{
    struct store *s = *state;
    int64_t ana = add_user(s, "ana", STORE_ROLE_USER);
    int64_t id = submit(s, ana, "p", "j", T0, NULL);
    unsigned live = 1u << STORE_JOB_PENDING | 1u << STORE_JOB_RUNNING;
    struct store_job j;
    json_t *tl;

    assert_int_equal(store_job_transition(s, id, live, STORE_JOB_CANCELLED, "asked", T0 + 50), 0);
    assert_int_equal(store_job_transition(s, id, live, STORE_JOB_CANCELLED, "again", T0 + 60),
                     -EBUSY);
    assert_int_equal(store_job_transition(s, id + 1, live, STORE_JOB_CANCELLED, "x", T0), -ENOENT);
    assert_int_equal(store_job_get(s, id, &j), 0);
    assert_int_equal(j.state, STORE_JOB_CANCELLED);
    assert_string_equal(j.reason, "asked");
    assert_int_equal(j.finished_ms, T0 + 50);
    store_job_clear(&j);
    assert_int_equal(store_job_timeline(s, id, &tl), 0);
    assert_int_equal(json_array_size(tl), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(tl, 0), "state")),
                        "pending");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(tl, 0), "at_ms")), T0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(tl, 1), "state")),
                        "cancelled");
    assert_string_equal(json_string_value(json_object_get(json_array_get(tl, 1), "reason")),
                        "asked");
    json_decref(tl);
    assert_int_equal(store_job_timeline(s, id + 1, &tl), 0);
    assert_int_equal(json_array_size(tl), 0);
    json_decref(tl);
}

static void assign_report_and_history(void **state)
{
    struct store *s = *state;
    int64_t ana = add_user(s, "ana", STORE_ROLE_USER);
    int64_t id = submit(s, ana, "p", "j", T0, NULL), other = submit(s, ana, "p", "k", T0, NULL);
    struct store_job_filter f = {.state = -1, .node = "n1"};
    int64_t counts[STORE_JOB_CANCELLED + 1];
    struct run_list runs;
    struct store_job j;
    json_t *tl;

    put_node(s, "n1", 2);
    assert_int_equal(store_job_assign(s, id, "n1", "0", 1000, 1000, false, T0 + 10), 0);
    assert_int_equal(store_job_assign(s, id, "n1", "1", 1000, 1000, false, T0 + 11), -EBUSY);
    assert_int_equal(state_of(s, id), STORE_JOB_ASSIGNED);
    assert_int_equal(list(s, &f).n, 1);
    assert_int_equal(list(s, &f).id[0], id);
    /* Another node's agent cannot move it. */
    assert_int_equal(store_job_report(s, id, "n2", 0, STORE_JOB_RUNNING, 0, T0 + 12), -EBUSY);
    assert_int_equal(store_job_report(s, id, "n1", 0, STORE_JOB_RUNNING, 0, T0 + 12), 0);
    assert_int_equal(state_of(s, id), STORE_JOB_RUNNING);
    assert_int_equal(store_job_report(s, id, "n1", 0, STORE_JOB_SUCCEEDED, 0, T0 + 500), 0);
    assert_int_equal(store_job_get(s, id, &j), 0);
    assert_int_equal(j.state, STORE_JOB_SUCCEEDED);
    assert_string_equal(j.node, "n1");
    assert_string_equal(j.gpus, "0");
    assert_int_equal(j.attempts, 1);
    assert_int_equal(j.finished_ms, T0 + 500);
    store_job_clear(&j);
    assert_int_equal(store_job_report(s, id, "n1", 0, STORE_JOB_SUCCEEDED, 0, T0 + 501), -EBUSY);
    assert_int_equal(list(s, &f).n, 0);

    runs = runs_of(s, id);
    assert_int_equal(runs.n, 1);
    assert_int_equal(runs.r[0].attempt, 1);
    assert_string_equal(runs.r[0].node, "n1");
    assert_int_equal(runs.r[0].alloc_milli, 1000);
    assert_int_equal(runs.r[0].started_ms, T0 + 10);
    assert_int_equal(runs.r[0].ended_ms, T0 + 500);
    assert_string_equal(runs.r[0].outcome, "succeeded");
    assert_int_equal(runs.r[0].used_milli, -1);
    assert_int_equal(runs_of(s, other).n, 0);

    assert_int_equal(store_job_counts(s, counts), 0);
    assert_int_equal(counts[STORE_JOB_SUCCEEDED], 1);
    assert_int_equal(counts[STORE_JOB_PENDING], 1);
    assert_int_equal(counts[STORE_JOB_RUNNING], 0);
    assert_int_equal(store_job_timeline(s, id, &tl), 0);
    assert_int_equal(json_array_size(tl), 4); /* pending, assigned, running, succeeded */
    assert_string_equal(json_string_value(json_object_get(json_array_get(tl, 3), "state")),
                        "succeeded");
    json_decref(tl);
}

static void retries_requeue_and_silent_nodes(void **state)
{
    struct store *s = *state;
    int64_t ana = add_user(s, "ana", STORE_ROLE_USER);
    int64_t id = submit(s, ana, "p", "j", T0, "{\"retries\": 1}");
    int64_t k = submit(s, ana, "p", "k", T0, NULL), m = submit(s, ana, "p", "m", T0, NULL);
    struct run_list runs;
    struct store_job j;

    put_node(s, "n1", 4);
    assert_int_equal(store_job_assign(s, id, "n1", "0", 1000, 1000, false, T0 + 1), 0);
    assert_int_equal(store_job_report(s, id, "n1", 0, STORE_JOB_FAILED, 3, T0 + 2), 0);
    assert_int_equal(store_job_get(s, id, &j), 0);
    assert_int_equal(j.state, STORE_JOB_PENDING);
    assert_string_equal(j.reason, "attempt 1 failed with exit code 3; queued again (retry 1 of 1)");
    assert_string_equal(j.node, "");
    assert_int_equal(j.failures, 1);
    store_job_clear(&j);
    assert_int_equal(store_job_assign(s, id, "n1", "1", 1000, 1000, false, T0 + 3), 0);
    assert_int_equal(store_job_report(s, id, "n1", 0, STORE_JOB_FAILED, 4, T0 + 4), 0);
    assert_int_equal(store_job_get(s, id, &j), 0);
    assert_int_equal(j.state, STORE_JOB_FAILED);
    assert_string_equal(j.reason, "failed with exit code 4");
    assert_int_equal(j.exit_code, 4);
    assert_int_equal(j.attempts, 2);
    store_job_clear(&j);
    runs = runs_of(s, id);
    assert_int_equal(runs.n, 2);
    assert_string_equal(runs.r[0].outcome, "failed");
    assert_string_equal(runs.r[1].gpus, "1");

    /* Preempted: back in the queue, its run ended. */
    assert_int_equal(store_job_assign(s, k, "n1", "2", 500, 500, false, T0 + 5), 0);
    assert_int_equal(store_job_requeue(s, k, "preempted for a job of q", T0 + 6), 0);
    assert_int_equal(store_job_requeue(s, k, "again", T0 + 7), -EBUSY);
    assert_int_equal(store_job_get(s, k, &j), 0);
    assert_int_equal(j.state, STORE_JOB_PENDING);
    assert_string_equal(j.reason, "preempted for a job of q");
    store_job_clear(&j);
    assert_string_equal(runs_of(s, k).r[0].outcome, "preempted");

    /* A node gone: its jobs go back to the queue; jobs elsewhere stay. */
    put_node(s, "n10", 1);
    assert_int_equal(store_job_assign(s, k, "n1", "2", 500, 500, false, T0 + 8), 0);
    assert_int_equal(store_job_assign(s, m, "n10", "0", 1000, 1000, false, T0 + 8), 0);
    assert_int_equal(store_node_requeue(s, "n1", "its node went silent", T0 + 9), 0);
    assert_int_equal(state_of(s, k), STORE_JOB_PENDING);
    assert_int_equal(state_of(s, m), STORE_JOB_ASSIGNED);
    runs = runs_of(s, k);
    assert_int_equal(runs.n, 2);
    assert_string_equal(runs.r[1].outcome, "node silent");
    assert_int_equal(runs.r[1].ended_ms, T0 + 9);
}

static int count_light(const struct store_job *j, void *arg)
{
    int *n = arg;

    /* What changes is there; the spec and the names are left in the store. */
    assert_null(j->spec);
    assert_string_equal(j->name, "");
    assert_string_equal(j->project, "p");
    if (j->state == STORE_JOB_ASSIGNED) {
        assert_string_equal(j->node, "n1");
        assert_string_equal(j->gpus, "0");
        assert_int_equal(j->started_ms, T0 + 2);
        assert_true(j->borrowed); /* placed on lent GPUs */
    } else {
        assert_false(j->borrowed);
    }
    ++*n;
    return 0;
}

/* A pass's writes go in one transaction: a job cancelled meanwhile is skipped and the others
 * are written; a write that fails leaves nothing of the batch. */
static void a_pass_writes_in_one_transaction(void **state)
{
    struct store *s = *state;
    int64_t ana = add_user(s, "ana", STORE_ROLE_USER);
    int64_t a = submit(s, ana, "p", "a", T0, NULL), b = submit(s, ana, "p", "b", T0, NULL);
    int64_t c = submit(s, ana, "p", "c", T0, NULL), d = submit(s, ana, "p", "d", T0, NULL);
    struct store_job_filter live = {
        .state = -1, .light = true, .states = 1u << STORE_JOB_PENDING | 1u << STORE_JOB_ASSIGNED};
    struct store_placement p[3];
    struct store_job j;
    int n = 0;

    put_node(s, "n1", 4);
    assert_int_equal(store_job_assign(s, c, "n1", "1", 1000, 1000, false, T0 + 1), 0);
    assert_int_equal(store_job_transition(s, b, 1u << STORE_JOB_PENDING, STORE_JOB_CANCELLED,
                                          "cancelled by ana", T0 + 1),
                     0);
    p[0] = (struct store_placement){.id = a, .node = "n1", .gpus = "0", .gpu_milli = 1000,
                                    .alloc_milli = 1000, .borrowed = true};
    p[1] = (struct store_placement){
        .id = b, .node = "n1", .gpus = "2", .gpu_milli = 1000, .alloc_milli = 1000};
    p[2] = (struct store_placement){.id = c, .requeue = true, .reason = "stopped for job a"};
    assert_int_equal(store_jobs_place(s, p, 3, T0 + 2), 0);
    assert_int_equal(p[0].rc, 0);
    assert_int_equal(p[1].rc, -EBUSY);
    assert_int_equal(p[2].rc, 0);
    assert_int_equal(state_of(s, a), STORE_JOB_ASSIGNED);
    assert_int_equal(state_of(s, b), STORE_JOB_CANCELLED);
    assert_int_equal(runs_of(s, b).n, 0);
    assert_int_equal(store_job_get(s, c, &j), 0);
    assert_int_equal(j.state, STORE_JOB_PENDING);
    assert_string_equal(j.reason, "stopped for job a");
    store_job_clear(&j);
    assert_string_equal(runs_of(s, c).r[0].outcome, "preempted");
    assert_int_equal(runs_of(s, a).n, 1);
    assert_string_equal(runs_of(s, a).r[0].node, "n1");

    /* The live jobs, light: a assigned, c and d pending. */
    assert_int_equal(store_jobs(s, &live, count_light, &n), 0);
    assert_int_equal(n, 3);

    /* The second write fails (no node): the first is not kept either. */
    p[0] = (struct store_placement){
        .id = d, .node = "n1", .gpus = "3", .gpu_milli = 1000, .alloc_milli = 1000};
    p[1] = (struct store_placement){.id = c, .node = NULL, .gpus = "1"};
    assert_true(store_jobs_place(s, p, 2, T0 + 3) < 0);
    assert_int_equal(state_of(s, d), STORE_JOB_PENDING);
    assert_int_equal(state_of(s, c), STORE_JOB_PENDING);
    assert_int_equal(runs_of(s, d).n, 0);
    assert_int_equal(store_job_get(s, d, &j), 0);
    assert_int_equal(j.attempts, 0);
    store_job_clear(&j);
}

/* Makes the database itself refuse to store exit code 99 (a trigger): a store failure in the
 * middle of a transaction. */
static void refuse_exit_code_99(void)
{
    if (strcmp(backend, "sqlite") == 0) {
        sqlite3 *db;

        assert_int_equal(sqlite3_open(sqlite_path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db,
                                      "CREATE TRIGGER refuse BEFORE UPDATE ON jobs WHEN "
                                      "NEW.exit_code = 99 BEGIN SELECT RAISE(ABORT, 'refused'); "
                                      "END",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(db);
    } else {
        PGconn *c = PQconnectdb(url);
        PGresult *r = PQexec(c, "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE "
                                "EXCEPTION 'refused'; END $$ LANGUAGE plpgsql; CREATE TRIGGER "
                                "refuse BEFORE UPDATE ON jobs FOR EACH ROW WHEN (NEW.exit_code = "
                                "99) EXECUTE FUNCTION refuse()");

        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
        PQfinish(c);
    }
}

/* Agents' reports in one transaction, in order: each is applied as its own call would be, one
 * for a job not on that node is -EBUSY and changes nothing, a failed scheduler's swap out puts
 * its job back in the queue; a report the database refuses leaves nothing of the batch. */
static void agents_reports_in_one_transaction(void **state)
{
    struct store *s = *state;
    int64_t ana = add_user(s, "ana", STORE_ROLE_USER);
    int64_t a = submit(s, ana, "p", "a", T0, NULL), b = submit(s, ana, "p", "b", T0, NULL);
    int64_t c = submit(s, ana, "p", "c", T0, "{\"retries\": 1}");
    int64_t d = submit(s, ana, "p", "d", T0, NULL), e = submit(s, ana, "p", "e", T0, NULL);
    struct store_report r[7];
    struct store_job j;

    put_node(s, "n1", 4);
    put_node(s, "n2", 4);
    assert_int_equal(store_job_assign(s, a, "n1", "0", 1000, 1000, false, T0 + 1), 0);
    assert_int_equal(store_job_assign(s, b, "n1", "1", 1000, 1000, false, T0 + 1), 0);
    assert_int_equal(store_job_assign(s, c, "n2", "0", 1000, 1000, false, T0 + 1), 0);
    assert_int_equal(store_job_assign(s, d, "n2", "1", 1000, 1000, true, T0 + 1), 0);
    assert_int_equal(store_job_report(s, d, "n2", 0, STORE_JOB_RUNNING, 0, T0 + 1), 0);
    assert_int_equal(store_job_swap_want(s, d, "out", "to make room for job 9"), 0);
    r[0] = (struct store_report){.id = a, .node = "n1", .to = STORE_JOB_RUNNING};
    r[1] = (struct store_report){.id = a, .node = "n1", .to = STORE_JOB_SUCCEEDED};
    r[2] = (struct store_report){.id = b, .node = "n2", .to = STORE_JOB_RUNNING};
    r[3] = (struct store_report){.id = c, .node = "n2", .to = STORE_JOB_FAILED, .exit_code = 3};
    r[4] = (struct store_report){
        .id = d,
        .node = "n2",
        .to = STORE_JOB_RUNNING,
        .swap = "{\"want\":\"\",\"why\":\"to make room for job 9\",\"error\":\"no room\"}",
        .requeue = "could not be swapped out (no room); stopped to make room for job 9; queued "
                   "again"};
    r[5] = (struct store_report){.id = e, .node = "n1", .to = STORE_JOB_RUNNING};
    r[6] = (struct store_report){.id = a, .node = "n1", .to = STORE_JOB_FAILED, .exit_code = 1};
    assert_int_equal(store_jobs_report(s, r, 7, T0 + 2), 0);
    assert_int_equal(r[0].rc, 0);
    assert_int_equal(r[1].rc, 0);      /* after its start, in the same transaction */
    assert_int_equal(r[2].rc, -EBUSY); /* b is on n1 */
    assert_int_equal(r[3].rc, 0);
    assert_int_equal(r[4].rc, 0);
    assert_int_equal(r[5].rc, -EBUSY); /* e was never placed */
    assert_int_equal(r[6].rc, -EBUSY); /* a has ended */
    assert_int_equal(store_job_get(s, a, &j), 0);
    assert_int_equal(j.state, STORE_JOB_SUCCEEDED);
    assert_int_equal(j.finished_ms, T0 + 2);
    assert_int_equal(j.exit_code, 0);
    store_job_clear(&j);
    assert_string_equal(runs_of(s, a).r[0].outcome, "succeeded");
    assert_int_equal(state_of(s, b), STORE_JOB_ASSIGNED);
    assert_int_equal(store_job_get(s, c, &j), 0);
    assert_int_equal(j.state, STORE_JOB_PENDING);
    assert_string_equal(j.reason, "attempt 1 failed with exit code 3; queued again (retry 1 of 1)");
    assert_int_equal(j.failures, 1);
    store_job_clear(&j);
    assert_string_equal(runs_of(s, c).r[0].outcome, "failed");
    assert_int_equal(store_job_get(s, d, &j), 0);
    assert_int_equal(j.state, STORE_JOB_PENDING);
    assert_string_equal(j.reason, "could not be swapped out (no room); stopped to make room for "
                                  "job 9; queued again");
    assert_string_equal(j.node, "");
    store_job_clear(&j);
    assert_string_equal(runs_of(s, d).r[0].outcome, "preempted");
    assert_int_equal(state_of(s, e), STORE_JOB_PENDING);

    /* The database refuses the third report: the first two are not kept either. */
    refuse_exit_code_99();
    assert_int_equal(store_job_assign(s, e, "n1", "2", 1000, 1000, false, T0 + 3), 0);
    r[0] = (struct store_report){.id = b, .node = "n1", .to = STORE_JOB_RUNNING};
    r[1] = (struct store_report){.id = e, .node = "n1", .to = STORE_JOB_FAILED, .exit_code = 2};
    r[2] = (struct store_report){.id = b, .node = "n1", .to = STORE_JOB_FAILED, .exit_code = 99};
    assert_true(store_jobs_report(s, r, 3, T0 + 4) < 0);
    assert_int_equal(state_of(s, b), STORE_JOB_ASSIGNED);
    assert_int_equal(store_job_get(s, e, &j), 0);
    assert_int_equal(j.state, STORE_JOB_ASSIGNED);
    assert_int_equal(j.failures, 0);
    store_job_clear(&j);
    assert_int_equal(runs_of(s, e).r[0].ended_ms, 0);
    /* And the store goes on: the same reports without the refused one are stored. */
    assert_int_equal(store_jobs_report(s, r, 2, T0 + 5), 0);
    assert_int_equal(state_of(s, b), STORE_JOB_RUNNING);
    assert_int_equal(state_of(s, e), STORE_JOB_FAILED);
}

static void gangs_suspend_and_swap(void **state)
{
    struct store *s = *state;
    int64_t ana = add_user(s, "ana", STORE_ROLE_USER);
    int64_t g = submit(s, ana, "p", "gang", T0, "{\"replicas\": 2}");
    int64_t id = submit(s, ana, "p", "j", T0, NULL);
    struct store_job j;

    put_node(s, "n1", 1);
    put_node(s, "n2", 1);
    assert_int_equal(store_job_assign(s, g, "n1 n2", "0;0", 1000, 2000, false, T0 + 1), 0);
    assert_int_equal(store_job_report(s, g, "n2", 1, STORE_JOB_SUCCEEDED, 0, T0 + 2), 0);
    assert_int_equal(state_of(s, g), STORE_JOB_RUNNING);
    assert_int_equal(store_job_report(s, g, "n2", 1, STORE_JOB_SUCCEEDED, 0, T0 + 3), -EBUSY);
    assert_int_equal(store_job_report(s, g, "n1", 0, STORE_JOB_SUCCEEDED, 0, T0 + 4), 0);
    assert_int_equal(state_of(s, g), STORE_JOB_SUCCEEDED);

    assert_int_equal(store_job_control(s, id, "suspend"), -EBUSY); /* not running */
    assert_int_equal(store_job_assign(s, id, "n1", "0", 1000, 1000, false, T0 + 5), 0);
    assert_int_equal(store_job_report(s, id, "n1", 0, STORE_JOB_RUNNING, 0, T0 + 6), 0);
    assert_int_equal(store_job_report(s, id, "n1", 0, STORE_JOB_SUSPENDED, 0, T0 + 7), -EBUSY);
    assert_int_equal(store_job_control(s, id, "suspend"), 0);
    assert_int_equal(store_job_report(s, id, "n1", 0, STORE_JOB_SUSPENDED, 0, T0 + 7), 0);
    assert_int_equal(state_of(s, id), STORE_JOB_SUSPENDED);
    assert_int_equal(store_job_control(s, id, ""), 0);
    assert_int_equal(store_job_report(s, id, "n1", 0, STORE_JOB_RUNNING, 0, T0 + 8), 0);
    assert_int_equal(state_of(s, id), STORE_JOB_RUNNING);

    assert_int_equal(store_job_swap_want(s, id, "in", NULL), -EBUSY);
    assert_int_equal(store_job_swap_want(s, id, "out", NULL), 0);
    assert_int_equal(store_job_get(s, id, &j), 0);
    assert_string_equal(json_string_value(json_object_get(j.swap, "want")), "out");
    store_job_clear(&j);
    assert_int_equal(store_job_swap_report(s, id, "n1", STORE_JOB_SWAPPED,
                                           "{\"want\":\"out\",\"bytes\":1024,\"seconds\":0.5}"),
                     0);
    assert_int_equal(state_of(s, id), STORE_JOB_SWAPPED);
    assert_int_equal(store_job_swap_want(s, id, "in", NULL), 0);
    assert_int_equal(store_job_get(s, id, &j), 0);
    assert_string_equal(json_string_value(json_object_get(j.swap, "want")), "in");
    assert_int_equal(json_integer_value(json_object_get(j.swap, "bytes")), 1024);
    store_job_clear(&j);
}

/* A borrower: placed on lent GPUs, swapped out by the scheduler with its reason, and no longer
 * borrowed once the scheduler swaps it back in on GPUs of its own. */
static void borrowed_jobs_and_the_schedulers_swaps(void **state)
{
    struct store *s = *state;
    int64_t ana = add_user(s, "ana", STORE_ROLE_USER);
    int64_t id = submit(s, ana, "p", "b", T0, NULL), own = submit(s, ana, "p", "o", T0, NULL);
    struct store_job j;

    put_node(s, "n1", 2);
    assert_int_equal(store_job_assign(s, id, "n1", "0", 500, 500, true, T0 + 1), 0);
    assert_int_equal(store_job_assign(s, own, "n1", "1", 1000, 1000, false, T0 + 1), 0);
    assert_int_equal(store_job_get(s, id, &j), 0);
    assert_true(j.borrowed);
    store_job_clear(&j);
    assert_int_equal(store_job_get(s, own, &j), 0);
    assert_false(j.borrowed);
    store_job_clear(&j);
    assert_int_equal(store_job_report(s, id, "n1", 0, STORE_JOB_RUNNING, 0, T0 + 2), 0);
    assert_int_equal(store_job_swap_want(s, id, "out", "to make room for job 9"), 0);
    assert_int_equal(store_job_get(s, id, &j), 0);
    assert_string_equal(json_string_value(json_object_get(j.swap, "why")),
                        "to make room for job 9");
    assert_true(j.borrowed);
    store_job_clear(&j);
    assert_int_equal(store_job_swap_report(
                         s, id, "n1", STORE_JOB_SWAPPED,
                         "{\"want\":\"\",\"why\":\"to make room for job 9\",\"bytes\":64}"),
                     0);
    assert_int_equal(store_job_swap_want(s, id, "in", "room again"), 0);
    assert_int_equal(store_job_get(s, id, &j), 0);
    assert_false(j.borrowed);
    assert_string_equal(json_string_value(json_object_get(j.swap, "want")), "in");
    store_job_clear(&j);
    /* Queued again and placed anew: nothing of the old swap is left. */
    assert_int_equal(store_job_requeue(s, id, "stopped", T0 + 3), 0);
    assert_int_equal(store_job_assign(s, id, "n1", "0", 500, 500, false, T0 + 4), 0);
    assert_int_equal(store_job_get(s, id, &j), 0);
    assert_null(j.swap);
    store_job_clear(&j);
}

struct node_list {
    struct store_node n[4];
    int count;
};

static void keep_node(const struct store_node *n, void *arg)
{
    struct node_list *x = arg;

    if (x->count < 4) {
        x->n[x->count] = *n;
        x->n[x->count].gpus = json_incref(n->gpus);
        x->n[x->count].telemetry = json_incref(n->telemetry);
        x->count++;
    }
}

static void nodes_heartbeats_and_usage(void **state)
{
    struct store *s = *state;
    int64_t ana = add_user(s, "ana", STORE_ROLE_USER);
    int64_t a = submit(s, ana, "vision", "a", T0, NULL), b = submit(s, ana, "audio", "b", T0, NULL);
    struct store_usage_query uq = {.since_ms = T0, .until_ms = T0 + HOUR, .now_ms = T0 + 20000};
    struct node_list x = {.count = 0};
    json_t *tel, *out;

    put_node(s, "n2", 1);
    put_node(s, "n1", 2);
    assert_int_equal(store_node_set_state(s, "n2", STORE_NODE_CORDONED), 0);
    assert_int_equal(store_node_set_state(s, "n3", STORE_NODE_CORDONED), -ENOENT);
    put_node(s, "n2", 1); /* registering again keeps its state */
    assert_int_equal(store_nodes(s, keep_node, &x), 0);
    assert_int_equal(x.count, 2);
    assert_string_equal(x.n[0].name, "n1");
    assert_int_equal(x.n[0].state, STORE_NODE_READY);
    assert_int_equal(json_array_size(x.n[0].gpus), 2);
    assert_int_equal(x.n[1].state, STORE_NODE_CORDONED);
    for (int i = 0; i < x.count; i++)
        store_node_clear(&x.n[i]);
    /* One node by name, as listed. */
    assert_int_equal(store_node_get(s, "n2", &x.n[0]), 0);
    assert_string_equal(x.n[0].name, "n2");
    assert_int_equal(x.n[0].state, STORE_NODE_CORDONED);
    assert_int_equal(x.n[0].cpu_milli, 32000);
    assert_int_equal(json_array_size(x.n[0].gpus), 1);
    store_node_clear(&x.n[0]);
    assert_int_equal(store_node_get(s, "n3", &x.n[0]), -ENOENT);

    /* Two jobs share GPU 0 of n1, 600 and 400 milli; it is 50% busy for 10 s. */
    assert_int_equal(store_job_assign(s, a, "n1", "0", 600, 600, false, T0 + 1000), 0);
    assert_int_equal(store_job_assign(s, b, "n1", "0", 400, 400, false, T0 + 1000), 0);
    assert_int_equal(store_job_report(s, a, "n1", 0, STORE_JOB_RUNNING, 0, T0 + 1000), 0);
    assert_int_equal(store_job_report(s, b, "n1", 0, STORE_JOB_RUNNING, 0, T0 + 1000), 0);
    tel = json_pack("[{s:i, s:I, s:f}]", "index", 0, "memory_used_bytes", (json_int_t)1 << 30,
                    "utilization_pct", 50.0);
    assert_int_equal(store_node_heartbeat(s, "n1", T0 + 10000, tel), 0);
    assert_int_equal(store_node_heartbeat(s, "n1", T0 + 20000, tel), 0);
    assert_int_equal(store_node_heartbeat(s, "n9", T0 + 20000, tel), -ENOENT);
    json_decref(tel);
    assert_int_equal(runs_of(s, a).r[0].used_milli, 300);
    assert_int_equal(runs_of(s, b).r[0].used_milli, 200);
    x.count = 0;
    assert_int_equal(store_nodes(s, keep_node, &x), 0);
    assert_int_equal(x.n[0].heartbeat_ms, T0 + 20000);
    assert_int_equal(json_array_size(x.n[0].telemetry), 1);
    for (int i = 0; i < x.count; i++)
        store_node_clear(&x.n[i]);

    assert_int_equal(store_project_holdings(s, &out), 0);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(out, "vision"), "allocated_milli")),
        600);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(out, "audio"), "used_milli")), 200);
    json_decref(out);

    assert_int_equal(store_usage(s, &uq, &out), 0);
    /* 0.6 GPU from T0+1 s to now (T0+20 s), measured 0.3 GPU busy since it started. */
    assert_float_equal(
        json_real_value(json_object_get(json_object_get(out, "vision"), "allocated_gpu_hours")),
        0.6 * 19 / 3600, 1e-9);
    assert_float_equal(
        json_real_value(json_object_get(json_object_get(out, "vision"), "used_gpu_hours")),
        0.3 * 19 / 3600, 1e-9);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(out, "audio"), "jobs")), 1);
    json_decref(out);
    uq.by_user = 1;
    assert_int_equal(store_usage(s, &uq, &out), 0);
    assert_float_equal(
        json_real_value(json_object_get(json_object_get(out, "ana"), "allocated_gpu_hours")),
        1.0 * 19 / 3600, 1e-9);
    json_decref(out);
}

static void reasons_of_waiting_jobs(void **state)
{
    struct store *s = *state;
    int64_t ana = add_user(s, "ana", STORE_ROLE_USER);
    int64_t ids[3] = {submit(s, ana, "p", "a", T0, NULL), submit(s, ana, "p", "b", T0, NULL),
                      submit(s, ana, "p", "c", T0, NULL)};
    const char *why[3] = {"waits for 2 GPUs", "quota of \"p\" \\ full, {x,y}", "not this one"};
    struct store_job j;

    put_node(s, "n1", 1);
    assert_int_equal(store_job_assign(s, ids[2], "n1", "0", 1000, 1000, false, T0), 0);
    assert_int_equal(store_job_reasons(s, ids, why, 3), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(store_job_get(s, ids[i], &j), 0);
        assert_string_equal(j.reason, why[i]);
        store_job_clear(&j);
    }
    assert_int_equal(store_job_get(s, ids[2], &j), 0);
    assert_string_equal(j.reason, "");
    store_job_clear(&j);
    assert_int_equal(store_job_reasons(s, ids, why, 0), 0);
}

static void what_is_acknowledged_is_there_after_reopening(void **state)
{
    struct store *s = *state;
    int64_t ana = add_user(s, "ana", STORE_ROLE_USER), id = submit(s, ana, "p", "a", T0, NULL);
    struct store_job j;
    char err[256];
    json_t *set;

    assert_int_equal(store_settings(s, &set), 0);
    assert_string_equal(json_string_value(json_object_get(set, "backend")), backend);
    /* Synced commits: FULL in SQLite, synchronous_commit on in PostgreSQL. */
    assert_string_equal(json_string_value(json_object_get(set, "synchronous")),
                        strcmp(backend, "sqlite") == 0 ? "full" : "on");
    json_decref(set);
    store_close(s);
    assert_int_equal(store_open(url, &s, err, sizeof(err)), 0);
    *state = s;
    assert_int_equal(store_job_get(s, id, &j), 0);
    assert_string_equal(j.name, "a");
    store_job_clear(&j);
    /* New ids go on from the last, never reused. */
    assert_true(submit(s, ana, "p", "b", T0, NULL) > id);
}

/* Ends the session holding the leadership lock, as a crash or a lost network would. */
static void end_lock_session(void)
{
    PGconn *c = PQconnectdb(getenv("GPOOL_TEST_PG"));
    PGresult *r = PQexec(c, "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = "
                            "'advisory' AND granted AND pid <> pg_backend_pid()");

    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    PQclear(r);
    PQfinish(c);
}

static void one_leader_and_fenced_writes(void **state)
{
    struct store *s = *state, *other;
    int64_t ana = add_user(s, "ana", STORE_ROLE_USER), counts[STORE_JOB_CANCELLED + 1];
    struct store_job j = {.user_id = ana, .submitted_ms = T0}, *jp = &j;
    char err[256], leader[256];

    assert_int_equal(store_lead_try(s, "http://one:8470"), 1);
    assert_true(store_leading(s));
    submit(s, ana, "p", "by-one", T0, NULL);
    if (strcmp(backend, "sqlite") == 0)
        return; /* one server on a SQLite store; it leads at once */
    assert_int_equal(store_leader(s, leader, sizeof(leader)), 0);
    assert_string_equal(leader, "http://one:8470");
    assert_int_equal(store_open(url, &other, err, sizeof(err)), 0);
    assert_int_equal(store_lead_try(other, "http://two:8470"), 0);
    assert_false(store_leading(other));
    /* The leader's lock session ends; the other takes over with a newer epoch. */
    end_lock_session();
    for (int i = 0; i < 100 && store_lead_try(other, "http://two:8470") == 0; i++)
        usleep(50000);
    assert_true(store_leading(other));
    assert_int_equal(store_leader(other, leader, sizeof(leader)), 0);
    assert_string_equal(leader, "http://two:8470");
    /* The old leader's write is refused and changes nothing; it no longer leads. */
    snprintf(j.name, sizeof(j.name), "stale");
    snprintf(j.project, sizeof(j.project), "p");
    j.spec = json_pack("{s:i}", "gpus", 1);
    assert_int_equal(store_jobs_add(s, &jp, 1), -ESTALE);
    json_decref(j.spec);
    assert_int_equal(j.id, 0);
    assert_false(store_leading(s));
    assert_int_equal(store_job_transition(s, 1, ~0u, STORE_JOB_CANCELLED, "stale", T0), -ESTALE);
    {
        struct store_placement p = {
            .id = 1, .node = "n1", .gpus = "0", .gpu_milli = 1000, .alloc_milli = 1000};

        assert_int_equal(store_jobs_place(s, &p, 1, T0), -ESTALE);
    }
    assert_int_equal(store_job_counts(other, counts), 0);
    assert_int_equal(counts[STORE_JOB_PENDING], 1);
    assert_int_equal(counts[STORE_JOB_CANCELLED], 0);
    /* The new leader writes. */
    submit(other, ana, "p", "by-two", T0, NULL);
    assert_true(store_leading(other));
    store_close(other);
}

static const struct CMUnitTest cases[] = {
    cmocka_unit_test_setup_teardown(users_tokens_and_sessions, open_fresh, close_store),
    cmocka_unit_test_setup_teardown(join_tokens_and_node_credentials, open_fresh, close_store),
    cmocka_unit_test_setup_teardown(projects_and_members, open_fresh, close_store),
    cmocka_unit_test_setup_teardown(submit_get_and_list_with_filters, open_fresh, close_store),
    cmocka_unit_test_setup_teardown(a_listing_stops_when_asked, open_fresh, close_store),
    cmocka_unit_test_setup_teardown(cancel_and_timeline, open_fresh, close_store),
    cmocka_unit_test_setup_teardown(assign_report_and_history, open_fresh, close_store),
    cmocka_unit_test_setup_teardown(retries_requeue_and_silent_nodes, open_fresh, close_store),
    cmocka_unit_test_setup_teardown(a_pass_writes_in_one_transaction, open_fresh, close_store),
    cmocka_unit_test_setup_teardown(agents_reports_in_one_transaction, open_fresh, close_store),
    cmocka_unit_test_setup_teardown(gangs_suspend_and_swap, open_fresh, close_store),
    cmocka_unit_test_setup_teardown(borrowed_jobs_and_the_schedulers_swaps, open_fresh,
                                    close_store),
    cmocka_unit_test_setup_teardown(nodes_heartbeats_and_usage, open_fresh, close_store),
    cmocka_unit_test_setup_teardown(reasons_of_waiting_jobs, open_fresh, close_store),
    cmocka_unit_test_setup_teardown(what_is_acknowledged_is_there_after_reopening, open_fresh,
                                    close_store),
    cmocka_unit_test_setup_teardown(one_leader_and_fenced_writes, open_fresh, close_store),
};

/* test_server_store sqlite|postgresql: the cases against that backend. */
int main(int argc, char **argv)
{
    backend = argc > 1 ? argv[1] : "sqlite";
    if (strcmp(backend, "sqlite") != 0 && strcmp(backend, "postgresql") != 0) {
        fprintf(stderr, "usage: test_server_store sqlite|postgresql\n");
        return 2;
    }
    return cmocka_run_group_tests_name(backend, cases, NULL, NULL);
}
