/*
 * What a store backend provides: a table of its calls, behind the functions of store.h.  Each
 * backend embeds struct store first in its own struct and fills a struct store_ops; store.c
 * picks the backend from the store's URL and forwards each call.  Not for use outside the
 * store's files.
 */
#ifndef GPOOL_SERVER_STORE_IMPL_H
#define GPOOL_SERVER_STORE_IMPL_H

#include <stdbool.h>

#include "server/store.h"

struct store_ops {
    void (*close)(struct store *s);
    int (*settings)(struct store *s, json_t **out);
    int (*lead_try)(struct store *s, const char *url);
    bool (*leading)(struct store *s);
    int (*leader)(struct store *s, char *url, size_t len);
    int (*user_add)(struct store *s, const struct store_user *u, int64_t *id, char *err,
                    size_t errlen);
    int (*user_get)(struct store *s, const char *name, struct store_user *out);
    int (*users_count)(struct store *s, int64_t *n);
    int (*token_add)(struct store *s, int64_t user_id, const char *hash);
    int (*token_user)(struct store *s, const char *hash, struct store_user *out);
    int (*user_tokens_revoke)(struct store *s, int64_t user_id);
    int (*join_token_add)(struct store *s, const char *hash, int64_t created_by, int64_t created_ms,
                          int64_t expires_ms, int64_t *id);
    int (*join_tokens)(struct store *s, void (*fn)(const struct store_join_token *, void *),
                       void *arg);
    int (*join_token_revoke)(struct store *s, int64_t id);
    int (*node_join)(struct store *s, const char *join_hash, const char *user_name,
                     const char *cred_hash, int64_t now_ms);
    int (*session_add)(struct store *s, int64_t user_id, const char *hash, int64_t expires_ms,
                       int64_t now_ms);
    int (*session_user)(struct store *s, const char *hash, int64_t now_ms, struct store_user *out);
    int (*session_delete)(struct store *s, const char *hash);
    int (*project_put)(struct store *s, const struct store_project *p, char *err, size_t errlen);
    int (*project_get)(struct store *s, const char *name, struct store_project *out);
    int (*projects)(struct store *s, void (*fn)(const struct store_project *, void *), void *arg);
    int (*member_add)(struct store *s, const char *project, int64_t user_id);
    int (*is_member)(struct store *s, const char *project, int64_t user_id);
    int (*jobs_add)(struct store *s, struct store_job *const *jobs, int n);
    int (*job_get)(struct store *s, int64_t id, struct store_job *out);
    int (*jobs)(struct store *s, const struct store_job_filter *f,
                int (*fn)(const struct store_job *, void *), void *arg);
    int (*job_timeline)(struct store *s, int64_t id, json_t **out);
    int (*job_transition)(struct store *s, int64_t id, unsigned from, enum store_job_state to,
                          const char *reason, int64_t now_ms);
    int (*job_assign)(struct store *s, int64_t id, const char *node, const char *gpus,
                      int64_t gpu_milli, int64_t alloc_milli, bool borrowed, int64_t now_ms);
    int (*job_requeue)(struct store *s, int64_t id, const char *reason, int64_t now_ms);
    int (*jobs_place)(struct store *s, struct store_placement *p, int n, int64_t now_ms);
    int (*job_runs)(struct store *s, int64_t id, void (*fn)(const struct store_run *, void *),
                    void *arg);
    int (*job_counts)(struct store *s, int64_t counts[STORE_JOB_CANCELLED + 1]);
    int (*project_holdings)(struct store *s, json_t **out);
    int (*usage)(struct store *s, const struct store_usage_query *q, json_t **out);
    int (*job_swap_want)(struct store *s, int64_t id, const char *want, const char *why);
    int (*job_swap_report)(struct store *s, int64_t id, const char *node, enum store_job_state to,
                           const char *swap);
    int (*job_report)(struct store *s, int64_t id, const char *node, int rank,
                      enum store_job_state to, int exit_code, int64_t now_ms);
    int (*jobs_report)(struct store *s, struct store_report *r, int n, int64_t now_ms);
    int (*job_control)(struct store *s, int64_t id, const char *control);
    int (*node_put)(struct store *s, const struct store_node *n);
    int (*node_heartbeat)(struct store *s, const char *name, int64_t now_ms, json_t *telemetry);
    int (*node_set_state)(struct store *s, const char *name, enum store_node_state st);
    int (*nodes)(struct store *s, void (*fn)(const struct store_node *, void *), void *arg);
    int (*node_get)(struct store *s, const char *name, struct store_node *out);
    int (*node_requeue)(struct store *s, const char *name, const char *reason, int64_t now_ms);
    int (*job_reasons)(struct store *s, const int64_t *ids, const char *const *reasons, int n);
};

struct store {
    const struct store_ops *ops;
};

int store__sqlite_open(const char *path, struct store **out, char *err, size_t errlen);
int store__pg_open(const char *url, struct store **out, char *err, size_t errlen);

int store__node_state_parse(const char *name, enum store_node_state *out);

/* A running job's share of one node's GPUs (the jobs a heartbeat's measures are shared among). */
struct store_share {
    int64_t job, gpu_milli, started_ms;
    int ngpu;
    int gpu[16];
};

/* Fills sh->gpu with the GPUs of "0,1;2,3" that the replica on `node` of "n1 n2" holds. */
void store__gpus_on(const char *nodes, const char *gpus, const char *node, struct store_share *sh);
/* Each share's part of what the heartbeat measured: used[k] and measured[k] in milli-GPUs
 * (measured[k] is 0 when none of its GPUs was measured). */
void store__shares_used(json_t *telemetry, const struct store_share *sh, int n, int64_t *used,
                        int64_t *measured);

#define STORE_HOUR_MS 3600000LL
/* A heartbeat more than this after the last one does not vouch for the time between. */
#define STORE_HEARTBEAT_GAP_MAX_MS 60000

#endif
