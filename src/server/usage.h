/*
 * GET /api/v1/usage: GPU-hours allocated and used over a period, by project or by user.
 */
#ifndef GPOOL_SERVER_USAGE_H
#define GPOOL_SERVER_USAGE_H

#include <jansson.h>
#include <stdint.h>

#include "server/jobspec.h"
#include "server/store.h"

/*
 * The report for the query's since, until (epoch milliseconds, as text; NULL: the last 24 hours
 * up to now) and by ("project", the default, or "user").  A user sees only their own jobs' usage,
 * an admin everyone's.  0 with *out, or -1 with e filled.
 */
int usage_report(struct store *s, const struct store_user *u, const char *since,
                 const char *until, const char *by, int64_t now_ms, json_t **out,
                 struct api_error *e);

#endif
