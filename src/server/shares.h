/*
 * Each project's share of the pool, as the dashboard's projects view shows it: what it deserves,
 * its fair share at the last scheduling cycle, what its jobs hold and what they use.
 */
#ifndef GPOOL_SERVER_SHARES_H
#define GPOOL_SERVER_SHARES_H

#include <jansson.h>

#include "server/store.h"

/*
 * {"projects": [{"name", "parent", "deserved_gpus", "limit_gpus", "weight", "fair_share_gpus",
 * "allocated_gpus", "used_gpus"}]}, in name order.  alloc is loop_allocations, fair
 * loop_shares.  A GPU's measured use is split among its jobs by their allocations.
 */
json_t *shares_json(struct store *s, json_t *alloc, json_t *fair);

#endif
