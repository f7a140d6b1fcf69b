/*
 * The store's front: names of roles and states, what both backends share (how a heartbeat's
 * measures are shared among the jobs on a node), and each call of store.h forwarded to the
 * backend that the URL chose (store_sqlite.c, store_pg.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/store_impl.h"

static const char *const role_names[] = {"admin", "user", "agent"};
static const char *const state_names[] = {"pending",   "assigned",  "running", "swapped",
                                          "suspended", "succeeded", "failed",  "cancelled"};
#define NSTATES ((int)(sizeof(state_names) / sizeof(state_names[0])))
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
    return (int)s >= 0 && (int)s < NSTATES ? state_names[s] : "?";
}

int store_job_state_parse(const char *name, enum store_job_state *out)
{
    for (int i = 0; i < NSTATES; i++)
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

const char *store_node_state_name(enum store_node_state st)
{
    return (unsigned)st < 3 ? node_state_names[st] : "?";
}

int store__node_state_parse(const char *name, enum store_node_state *out)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, node_state_names[i]) == 0) {
            *out = (enum store_node_state)i;
            return 0;
        }
    return -EINVAL;
}

void store_node_clear(struct store_node *n)
{
    json_decref(n->gpus);
    json_decref(n->telemetry);
    memset(n, 0, sizeof(*n));
}

void store__gpus_on(const char *nodes, const char *gpus, const char *node, struct store_share *sh)
{
    size_t len = strlen(node);

    sh->ngpu = 0;
    while (*nodes != '\0') {
        size_t nl = strcspn(nodes, " ");
        bool here = nl == len && strncmp(nodes, node, len) == 0;

        while (*gpus != '\0' && *gpus != ';') {
            char *end;
            long g = strtol(gpus, &end, 10);

            if (end == gpus)
                return;
            if (here && g >= 0 && g < 16 && sh->ngpu < 16)
                sh->gpu[sh->ngpu++] = (int)g;
            gpus = *end == ',' ? end + 1 : end;
        }
        if (here)
            return;
        gpus += *gpus == ';';
        nodes += nl + (nodes[nl] == ' ');
    }
}

/*
 * Each GPU's utilization is shared among the jobs on it in proportion to their allocation
 * there.
 */
void store__shares_used(json_t *telemetry, const struct store_share *sh, int n, int64_t *used,
                        int64_t *measured)
{
    double busy[16] = {0}, tot[16] = {0};
    bool have[16] = {false};
    size_t i;
    json_t *m;

    json_array_foreach(telemetry, i, m)
    {
        json_int_t g = json_integer_value(json_object_get(m, "index"));

        if (g >= 0 && g < 16 && json_is_number(json_object_get(m, "utilization_pct"))) {
            busy[g] = json_number_value(json_object_get(m, "utilization_pct")) / 100;
            have[g] = true;
        }
    }
    for (int k = 0; k < n; k++)
        for (int g = 0; g < sh[k].ngpu; g++)
            tot[sh[k].gpu[g]] += (double)sh[k].gpu_milli;
    for (int k = 0; k < n; k++) {
        used[k] = measured[k] = 0;
        for (int g = 0; g < sh[k].ngpu; g++) {
            int x = sh[k].gpu[g];

            if (have[x] && tot[x] > 0) {
                used[k] += (int64_t)(busy[x] * 1000 * (double)sh[k].gpu_milli / tot[x] + 0.5);
                measured[k] += sh[k].gpu_milli;
            }
        }
    }
}

/* ---- the backend a URL names, and the calls forwarded to it ---- */

int store_open(const char *url, struct store **out, char *err, size_t errlen)
{
    if (strncmp(url, "sqlite:", 7) == 0 && url[7] != '\0')
        return store__sqlite_open(url + 7, out, err, errlen);
    if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0)
        return store__pg_open(url, out, err, errlen);
    snprintf(err, errlen, "store '%s': expected sqlite:PATH or postgresql://...", url);
    return -EINVAL;
}

bool store_is_sqlite(const char *url)
{
    return strncmp(url, "sqlite:", 7) == 0;
}

void store_close(struct store *s)
{
    if (s != NULL)
        s->ops->close(s);
}

int store_lead_try(struct store *s, const char *url)
{
    return s->ops->lead_try ? s->ops->lead_try(s, url) : 1;
}

bool store_leading(struct store *s)
{
    return s->ops->leading ? s->ops->leading(s) : true;
}

int store_leader(struct store *s, char *url, size_t len)
{
    if (s->ops->leader == NULL) {
        snprintf(url, len, "%s", "");
        return 0;
    }
    return s->ops->leader(s, url, len);
}

int store_settings(struct store *s, json_t **out)
{
    return s->ops->settings(s, out);
}

int store_user_add(struct store *s, const struct store_user *u, int64_t *id, char *err,
                   size_t errlen)
{
    return s->ops->user_add(s, u, id, err, errlen);
}

int store_user_get(struct store *s, const char *name, struct store_user *out)
{
    return s->ops->user_get(s, name, out);
}

int store_users_count(struct store *s, int64_t *n)
{
    return s->ops->users_count(s, n);
}

int store_token_add(struct store *s, int64_t user_id, const char *hash)
{
    return s->ops->token_add(s, user_id, hash);
}

int store_token_user(struct store *s, const char *hash, struct store_user *out)
{
    return s->ops->token_user(s, hash, out);
}

int store_user_tokens_revoke(struct store *s, int64_t user_id)
{
    return s->ops->user_tokens_revoke(s, user_id);
}

int store_join_token_add(struct store *s, const char *hash, int64_t created_by, int64_t created_ms,
                         int64_t expires_ms, int64_t *id)
{
    return s->ops->join_token_add(s, hash, created_by, created_ms, expires_ms, id);
}

int store_join_tokens(struct store *s, void (*fn)(const struct store_join_token *, void *),
                      void *arg)
{
    return s->ops->join_tokens(s, fn, arg);
}

int store_join_token_revoke(struct store *s, int64_t id)
{
    return s->ops->join_token_revoke(s, id);
}

int store_node_join(struct store *s, const char *join_hash, const char *user_name,
                    const char *cred_hash, int64_t now_ms)
{
    return s->ops->node_join(s, join_hash, user_name, cred_hash, now_ms);
}

int store_session_add(struct store *s, int64_t user_id, const char *hash, int64_t expires_ms,
                      int64_t now_ms)
{
    return s->ops->session_add(s, user_id, hash, expires_ms, now_ms);
}

int store_session_user(struct store *s, const char *hash, int64_t now_ms, struct store_user *out)
{
    return s->ops->session_user(s, hash, now_ms, out);
}

int store_session_delete(struct store *s, const char *hash)
{
    return s->ops->session_delete(s, hash);
}

int store_project_put(struct store *s, const struct store_project *p, char *err, size_t errlen)
{
    return s->ops->project_put(s, p, err, errlen);
}

int store_project_get(struct store *s, const char *name, struct store_project *out)
{
    return s->ops->project_get(s, name, out);
}

int store_projects(struct store *s, void (*fn)(const struct store_project *, void *), void *arg)
{
    return s->ops->projects(s, fn, arg);
}

int store_member_add(struct store *s, const char *project, int64_t user_id)
{
    return s->ops->member_add(s, project, user_id);
}

int store_is_member(struct store *s, const char *project, int64_t user_id)
{
    return s->ops->is_member(s, project, user_id);
}

int store_jobs_add(struct store *s, struct store_job *const *jobs, int n)
{
    return s->ops->jobs_add(s, jobs, n);
}

int store_job_get(struct store *s, int64_t id, struct store_job *out)
{
    return s->ops->job_get(s, id, out);
}

int store_jobs(struct store *s, const struct store_job_filter *f,
               int (*fn)(const struct store_job *, void *), void *arg)
{
    return s->ops->jobs(s, f, fn, arg);
}

int store_job_timeline(struct store *s, int64_t id, json_t **out)
{
    return s->ops->job_timeline(s, id, out);
}

int store_job_transition(struct store *s, int64_t id, unsigned from, enum store_job_state to,
                         const char *reason, int64_t now_ms)
{
    return s->ops->job_transition(s, id, from, to, reason, now_ms);
}

int store_job_assign(struct store *s, int64_t id, const char *node, const char *gpus,
                     int64_t gpu_milli, int64_t alloc_milli, bool borrowed, int64_t now_ms)
{
    return s->ops->job_assign(s, id, node, gpus, gpu_milli, alloc_milli, borrowed, now_ms);
}

int store_job_requeue(struct store *s, int64_t id, const char *reason, int64_t now_ms)
{
    return s->ops->job_requeue(s, id, reason, now_ms);
}

int store_jobs_place(struct store *s, struct store_placement *p, int n, int64_t now_ms)
{
    return n > 0 ? s->ops->jobs_place(s, p, n, now_ms) : 0;
}

int store_job_runs(struct store *s, int64_t id, void (*fn)(const struct store_run *, void *),
                   void *arg)
{
    return s->ops->job_runs(s, id, fn, arg);
}

int store_job_counts(struct store *s, int64_t counts[STORE_JOB_CANCELLED + 1])
{
    return s->ops->job_counts(s, counts);
}

int store_project_holdings(struct store *s, json_t **out)
{
    return s->ops->project_holdings(s, out);
}

int store_usage(struct store *s, const struct store_usage_query *q, json_t **out)
{
    return s->ops->usage(s, q, out);
}

int store_job_swap_want(struct store *s, int64_t id, const char *want, const char *why)
{
    return s->ops->job_swap_want(s, id, want, why);
}

int store_job_swap_report(struct store *s, int64_t id, const char *node, enum store_job_state to,
                          const char *swap)
{
    return s->ops->job_swap_report(s, id, node, to, swap);
}

int store_jobs_report(struct store *s, struct store_report *r, int n, int64_t now_ms)
{
    return n > 0 ? s->ops->jobs_report(s, r, n, now_ms) : 0;
}

int store_job_report(struct store *s, int64_t id, const char *node, int rank,
                     enum store_job_state to, int exit_code, int64_t now_ms)
{
    return s->ops->job_report(s, id, node, rank, to, exit_code, now_ms);
}

int store_job_control(struct store *s, int64_t id, const char *control)
{
    return s->ops->job_control(s, id, control);
}

int store_node_put(struct store *s, const struct store_node *n)
{
    return s->ops->node_put(s, n);
}

int store_node_heartbeat(struct store *s, const char *name, int64_t now_ms, json_t *telemetry)
{
    return s->ops->node_heartbeat(s, name, now_ms, telemetry);
}

int store_node_set_state(struct store *s, const char *name, enum store_node_state st)
{
    return s->ops->node_set_state(s, name, st);
}

int store_nodes(struct store *s, void (*fn)(const struct store_node *, void *), void *arg)
{
    return s->ops->nodes(s, fn, arg);
}

int store_node_get(struct store *s, const char *name, struct store_node *out)
{
    return s->ops->node_get(s, name, out);
}

int store_node_requeue(struct store *s, const char *name, const char *reason, int64_t now_ms)
{
    return s->ops->node_requeue(s, name, reason, now_ms);
}

int store_job_reasons(struct store *s, const int64_t *ids, const char *const *reasons, int n)
{
    return s->ops->job_reasons(s, ids, reasons, n);
}
