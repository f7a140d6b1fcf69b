/*
 * The server's durable store: users and their tokens, projects, jobs.  The API and the scheduler
 * loop see only these calls; SQLite (store_sqlite.c) or PostgreSQL (store_pg.c) is behind them,
 * and both pass the same contract tests (tests/unit/test_server_store.c).  Every change is
 * committed and synced before the call returns: what the API acknowledges survives a crash.
 * Calls return 0 or a negative errno (-ENOENT, -EEXIST, -EBUSY, -EIO; -ESTALE from a server
 * that no longer leads).  Calls may come from
 * several threads.
 */
#ifndef GPOOL_SERVER_STORE_H
#define GPOOL_SERVER_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum store_role { STORE_ROLE_ADMIN, STORE_ROLE_USER, STORE_ROLE_AGENT };

struct store_user {
    int64_t id;
    char name[64];
    char unix_user[64];
    int64_t uid;
    enum store_role role;
};

struct store_project {
    char name[129];
    char parent[129]; /* "" at the root */
    int64_t deserved_milli;
    int64_t limit_milli; /* -1: none */
    int weight;
    bool no_lend;   /* its idle jobs' GPUs are not lent to others */
    bool no_borrow; /* its jobs never run on lent GPUs */
};

enum store_job_state {
    STORE_JOB_PENDING,
    STORE_JOB_ASSIGNED, /* placed on a node; its agent has not reported it started */
    STORE_JOB_RUNNING,
    STORE_JOB_SWAPPED,
    STORE_JOB_SUSPENDED, /* stopped where it is, on request; it keeps its GPUs */
    STORE_JOB_SUCCEEDED,
    STORE_JOB_FAILED,
    STORE_JOB_CANCELLED,
};

struct store_job {
    int64_t id;
    char name[129];
    char project[129];
    int64_t user_id;
    char user[64];
    char unix_user[64];
    int64_t uid;
    enum store_job_state state;
    char reason[256];
    int64_t submitted_ms, started_ms, finished_ms;
    char node[129]; /* where it is assigned or runs, "" when nowhere */
    char gpus[64];  /* the GPU indexes on that node, "0,1" */
    int exit_code;
    int attempts;     /* how many times it was placed */
    int failures;     /* how many of its runs failed */
    json_t *spec;     /* the checked job object; owned by the struct (store_job_clear) */
    json_t *swap;     /* {"want", "via", "bytes", "seconds", "error"} or NULL; owned */
    char control[16]; /* what the user asked of it while it runs: "" or "suspend" */
    bool borrowed;    /* placed on GPUs lent by idle jobs, not on an allocation of its own */
};

enum store_node_state { STORE_NODE_READY, STORE_NODE_CORDONED, STORE_NODE_DRAINING };

struct store_node {
    char name[129];
    int64_t cpu_milli, mem_mib;
    json_t *gpus; /* [{"uuid", "model", "memory_bytes"}]; owned (store_node_clear) */
    enum store_node_state state;
    int64_t heartbeat_ms;
    char address[256]; /* where other nodes reach it (a gang's MASTER_ADDR); "" if not said */
    /* What its last heartbeat measured of each GPU, [{"index", "memory_used_bytes",
     * "utilization_pct"}]; NULL when it measured nothing.  Owned. */
    json_t *telemetry;
};

struct store_job_filter {
    int64_t user_id; /* 0: any */
    const char *project;
    int state; /* -1: any */
    int64_t after_id;
    int limit;
    const char *node; /* jobs assigned to or running on this node; NULL: any */
    unsigned states;  /* 1 << state for each state wanted; 0: any (state still applies) */
    /* Jobs alive in [since_ms, until_ms): submitted before until and not ended before since;
     * 0 leaves that end open. */
    int64_t since_ms, until_ms;
    /* Only what changes while a job lives: id, project, user_id, state, the times, node, gpus,
     * exit_code, attempts, failures, swap and borrowed; spec is NULL, names and reason empty
     * (the scheduler's read of a long queue, whose specs it keeps). */
    bool light;
};

/* One placement of a job on GPUs, from placed to ended (0 while it goes on). */
struct store_run {
    int attempt;
    char node[129], gpus[64];
    int64_t gpu_milli;   /* on each of its GPUs */
    int64_t alloc_milli; /* on all of its GPUs */
    int64_t started_ms, ended_ms;
    char outcome[32];   /* "", succeeded, failed, cancelled, preempted, node silent */
    int64_t used_milli; /* what its GPUs' last measure gives it; -1 when never measured */
};

/* GPU-hours over a period, by project or by user (usage.c explains how they are counted). */
struct store_usage_query {
    int64_t since_ms, until_ms, now_ms;
    int by_user;     /* key the rows by user name rather than by project */
    int64_t user_id; /* only this user's jobs; 0: everyone's */
};

struct store;

/* Opens (creating and migrating) the store at url: "sqlite:PATH", or "postgresql://..." (also
 * "postgres://": a libpq connection URI). */
int store_open(const char *url, struct store **out, char *err, size_t errlen);
void store_close(struct store *s);
bool store_is_sqlite(const char *url);

/*
 * Leading: of the servers on one store, one leads (serves and schedules); the others stand by.
 * Tries once to lead, naming url as where the leader serves: 1 when this server now leads (a
 * new fencing epoch is its), 0 when another leads, or a negative errno.  A SQLite store has one
 * server, which leads at once.
 */
int store_lead_try(struct store *s, const char *url);
/* Whether this server still leads: false once a newer leader has taken over or the store's
 * connection is lost; its writes then fail with -ESTALE and change nothing. */
bool store_leading(struct store *s);
/* Where the leader serves, as it said when it took the lead; "" when unknown. */
int store_leader(struct store *s, char *url, size_t len);

const char *store_role_name(enum store_role r);
int store_role_parse(const char *name, enum store_role *out);
const char *store_job_state_name(enum store_job_state s);
int store_job_state_parse(const char *name, enum store_job_state *out);
void store_job_clear(struct store_job *j);

/* What the store guarantees, as the database reports it (journal mode, synchronous). */
int store_settings(struct store *s, json_t **out);

int store_user_add(struct store *s, const struct store_user *u, int64_t *id, char *err,
                   size_t errlen);
int store_user_get(struct store *s, const char *name, struct store_user *out);
int store_users_count(struct store *s, int64_t *n);
int store_token_add(struct store *s, int64_t user_id, const char *hash);
/* The user a token hash belongs to; -ENOENT for an unknown or revoked token. */
int store_token_user(struct store *s, const char *hash, struct store_user *out);

/* Revokes every token of a user; -ENOENT when it had none left to revoke. */
int store_user_tokens_revoke(struct store *s, int64_t user_id);

/* Join tokens: what an admin hands a new node, stored as their hash; a node that joins with one
 * gets an agent user of its own (STORE_NODE_USER_PREFIX + its name) and a token of that user. */
#define STORE_NODE_USER_PREFIX "node:"
struct store_join_token {
    int64_t id;
    char created_by[64];
    int64_t created_ms, expires_ms; /* expires_ms 0: never */
    bool revoked;
    int64_t joins; /* nodes that joined with it */
};
int store_join_token_add(struct store *s, const char *hash, int64_t created_by, int64_t created_ms,
                         int64_t expires_ms, int64_t *id);
/* Calls fn for each join token, oldest first. */
int store_join_tokens(struct store *s, void (*fn)(const struct store_join_token *, void *),
                      void *arg);
/* Revokes a join token: new joins with it are refused; -ENOENT when there is none by that id. */
int store_join_token_revoke(struct store *s, int64_t id);
/*
 * A node joins: in one transaction, the join token of join_hash is checked (-ENOENT unknown,
 * -EKEYREVOKED revoked, -EKEYEXPIRED expired at now_ms), the agent user `user_name` is made
 * unless it exists (-EEXIST when a user of that name is not an agent), cred_hash becomes a token
 * of it, and the join is counted.  Nothing changes on an error.
 */
int store_node_join(struct store *s, const char *join_hash, const char *user_name,
                    const char *cred_hash, int64_t now_ms);

/* Browser sessions: a cookie's hash, whose user it is, until when. */
int store_session_add(struct store *s, int64_t user_id, const char *hash, int64_t expires_ms,
                      int64_t now_ms);
/* The user of a session that has not expired; -ENOENT for an unknown or expired one. */
int store_session_user(struct store *s, const char *hash, int64_t now_ms, struct store_user *out);
/* Ends a session; -ENOENT when there is none. */
int store_session_delete(struct store *s, const char *hash);

int store_project_put(struct store *s, const struct store_project *p, char *err, size_t errlen);
int store_project_get(struct store *s, const char *name, struct store_project *out);
/* Calls fn for each project, in name order. */
int store_projects(struct store *s, void (*fn)(const struct store_project *, void *), void *arg);
int store_member_add(struct store *s, const char *project, int64_t user_id);
int store_is_member(struct store *s, const char *project, int64_t user_id);

/* Adds jobs in one transaction (one sync for all: group commit); all or none. */
int store_jobs_add(struct store *s, struct store_job *const *jobs, int n);
int store_job_get(struct store *s, int64_t id, struct store_job *out);
/* Calls fn for each job matching f, in id order; stops early when fn returns non-zero. */
int store_jobs(struct store *s, const struct store_job_filter *f,
               int (*fn)(const struct store_job *, void *), void *arg);
/* The states a job has entered, oldest first: [{"state", "at_ms", "reason"}] (owned by the
 * caller). A job that does not exist has none. */
int store_job_timeline(struct store *s, int64_t id, json_t **out);
/* Moves a job to `to` when it is in one of the states of `from` (a bit mask); -EBUSY if not. */
int store_job_transition(struct store *s, int64_t id, unsigned from, enum store_job_state to,
                         const char *reason, int64_t now_ms);
/* Places a pending job on a node's GPUs (state assigned), gpu_milli on each of them and
 * alloc_milli in all (borrowed: on GPUs lent by idle jobs), and opens its run.  -EBUSY when it
 * is no longer pending. */
int store_job_assign(struct store *s, int64_t id, const char *node, const char *gpus,
                     int64_t gpu_milli, int64_t alloc_milli, bool borrowed, int64_t now_ms);
/* Puts an assigned or running job back in the queue, with the reason; its run ends. */
int store_job_requeue(struct store *s, int64_t id, const char *reason, int64_t now_ms);
/* One of a scheduler pass's writes: store_job_assign's (requeue false) or store_job_requeue's. */
struct store_placement {
    int64_t id;
    bool requeue;
    const char *node, *gpus; /* assign */
    int64_t gpu_milli, alloc_milli;
    bool borrowed; /* assigned on GPUs lent by idle jobs */
    const char *reason; /* requeue */
    int rc;             /* out: 0 done, -EBUSY when the job was no longer in the state for it */
};
/* A pass's assignments and requeues in one transaction (one sync): each is done or, when its
 * job is no longer in the state it starts from (cancelled meanwhile, say), skipped with rc
 * -EBUSY.  0, or a negative errno and nothing written (all or none). */
int store_jobs_place(struct store *s, struct store_placement *p, int n, int64_t now_ms);
/* Calls fn for each run of a job, first to last. */
int store_job_runs(struct store *s, int64_t id, void (*fn)(const struct store_run *, void *),
                   void *arg);
/* How many jobs are in each state, indexed by enum store_job_state. */
int store_job_counts(struct store *s, int64_t counts[STORE_JOB_CANCELLED + 1]);
/* What placed jobs hold now, by project: {"P": {"allocated_milli", "used_milli", "jobs"}}. */
int store_project_holdings(struct store *s, json_t **out);
/* GPU-hours of the period: {"KEY": {"allocated_gpu_hours", "used_gpu_hours",
 * "measured_gpu_hours", "jobs"}}. */
int store_usage(struct store *s, const struct store_usage_query *q, json_t **out);
/* Asks its agent to swap a job out (it must be running) or back in: 0, or -EBUSY.  why: NULL for
 * a user's swap; the scheduler's reason for its own (the job then gives its GPUs up while it is
 * out, and is no longer borrowed once swapped back in). */
int store_job_swap_want(struct store *s, int64_t id, const char *want, const char *why);
/* The agent's answer: the job's state (swapped or running) and the swap's figures (JSON). */
int store_job_swap_report(struct store *s, int64_t id, const char *node, enum store_job_state to,
                          const char *swap);
/* What the agent of a node reports of a job's replica `rank`: it started (or was resumed), was
 * suspended, or ended with exit_code.  A gang has succeeded when all its replicas have, and has
 * failed when one has; a failed run is queued again while the job has retries left (its spec's
 * "retries"). */
int store_job_report(struct store *s, int64_t id, const char *node, int rank,
                     enum store_job_state to, int exit_code, int64_t now_ms);
/* One agent's report of a job, as store_job_report (swap NULL) or store_job_swap_report (swap
 * given) takes it; with requeue, the job is then put back in the queue with that reason, as
 * store_job_requeue does (the scheduler's swap out that failed: the room it was to make is given
 * already). */
struct store_report {
    int64_t id;
    const char *node;
    int rank;
    enum store_job_state to;
    int exit_code;
    const char *swap;    /* the swap's figures (JSON), or NULL */
    const char *requeue; /* a reason, or NULL */
    int rc; /* out: 0 done, -EBUSY when the job is not on that node or not in a state for it */
};
/* Reports of several agents in one transaction (one sync: group commit), applied in order, a
 * later one seeing what an earlier one did: each is done or, like the call it stands for, -EBUSY
 * and nothing of it written.  0, or a negative errno and nothing written (all or none). */
int store_jobs_report(struct store *s, struct store_report *r, int n, int64_t now_ms);
/* Asks the agent of a running job to suspend it ("suspend"), or of a suspended one to resume it
 * (""): 0, or -EBUSY when the job is not in a state for it. */
int store_job_control(struct store *s, int64_t id, const char *control);

void store_node_clear(struct store_node *n);
const char *store_node_state_name(enum store_node_state s);
/* Registers a node, or updates what it has; keeps its state. */
int store_node_put(struct store *s, const struct store_node *n);
/* A heartbeat, with what the node measured (kept as given; NULL: nothing).  Each GPU's
 * measured use since the last heartbeat is shared among the running jobs on it, by their
 * allocation, and added to their usage.  Committed without a sync of its own: it survives the
 * server's crash, and the next synced commit takes it to the disk (an operating system crash may
 * lose the last seconds of heartbeats, which the node's next heartbeat renews). */
int store_node_heartbeat(struct store *s, const char *name, int64_t now_ms, json_t *telemetry);
int store_node_set_state(struct store *s, const char *name, enum store_node_state st);
int store_nodes(struct store *s, void (*fn)(const struct store_node *, void *), void *arg);
/* One node by name (the caller clears it); -ENOENT when there is none. */
int store_node_get(struct store *s, const char *name, struct store_node *out);
/* Puts the jobs assigned to or running on a node back in the queue (the node is gone). */
int store_node_requeue(struct store *s, const char *name, const char *reason, int64_t now_ms);

/* Updates the reasons of waiting jobs, in one transaction. */
int store_job_reasons(struct store *s, const int64_t *ids, const char *const *reasons, int n);

#endif
