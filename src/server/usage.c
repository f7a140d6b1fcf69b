/*
 * Usage over a period.  Allocated GPU-hours are each run's allocation (the GPU fraction it was
 * given, on all of its GPUs) times the part of its run inside the period.  Used GPU-hours come from
 * the agents' heartbeats: each GPU's measured utilization, shared among the jobs running on it by
 * their allocation, is kept per job and per hour (store_node_heartbeat); an hour the period cuts
 * counts pro rata.  Measured GPU-hours are the allocated GPU-hours that had measures at all, so
 * that a reader can tell "idle" from "not measured".
 */
#include "server/usage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS (86400LL * 1000)

static int time_arg(const char *v, const char *field, int64_t dflt, int64_t *out,
                    struct api_error *e)
{
    char *end;

    *out = dflt;
    if (v == NULL)
        return 0;
    *out = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0' || *out < 0) {
        api_error_set(e, 400, "invalid_field", field,
                      "%s: expected a time in milliseconds since 1970, not '%s'", field, v);
        return -1;
    }
    return 0;
}

static json_t *rows_of(json_t *by_key, const char *key_name)
{
    json_t *rows = json_array(), *v;
    const char *key;

    json_object_foreach(by_key, key, v) {
        json_t *row = json_pack("{s:s, s:f, s:f, s:f, s:I}", key_name, key,
                                "allocated_gpu_hours",
                                json_number_value(json_object_get(v, "allocated_gpu_hours")),
                                "used_gpu_hours",
                                json_number_value(json_object_get(v, "used_gpu_hours")),
                                "measured_gpu_hours",
                                json_number_value(json_object_get(v, "measured_gpu_hours")),
                                "jobs", json_integer_value(json_object_get(v, "jobs")));

        json_array_append_new(rows, row);
    }
    return rows;
}

int usage_report(struct store *s, const struct store_user *u, const char *since,
                 const char *until, const char *by, int64_t now_ms, json_t **out,
                 struct api_error *e)
{
    struct store_usage_query q = {.now_ms = now_ms,
                                  .user_id = u->role == STORE_ROLE_ADMIN ? 0 : u->id};
    json_t *by_key;

    if (time_arg(until, "until", now_ms, &q.until_ms, e) != 0 ||
        time_arg(since, "since", q.until_ms - DAY_MS, &q.since_ms, e) != 0)
        return -1;
    if (q.since_ms >= q.until_ms) {
        api_error_set(e, 400, "invalid_field", "since", "since must be before until");
        return -1;
    }
    if (by != NULL && strcmp(by, "project") != 0 && strcmp(by, "user") != 0) {
        api_error_set(e, 400, "invalid_field", "by", "by must be project or user, not '%s'", by);
        return -1;
    }
    q.by_user = by != NULL && strcmp(by, "user") == 0;
    if (store_usage(s, &q, &by_key) != 0) {
        json_decref(by_key);
        api_error_set(e, 503, "store", "", "the store could not be read");
        return -1;
    }
    *out = json_pack("{s:I, s:I, s:s, s:o}", "since_ms", (json_int_t)q.since_ms, "until_ms",
                     (json_int_t)q.until_ms, "by", q.by_user ? "user" : "project", "rows",
                     rows_of(by_key, q.by_user ? "user" : "project"));
    json_decref(by_key);
    return 0;
}
