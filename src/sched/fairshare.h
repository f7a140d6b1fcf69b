/*
 * Fair share: how much GPU capacity each project should hold now, given what every project asks
 * for.  Each level of the project tree is given its share from its parent: every child first gets
 * its deserved quota (or its demand, if smaller), then what is left is split by over-quota weight
 * among the children that want more (water-filling), never past a child's limit or demand.
 */
#ifndef GPOOL_SCHED_FAIRSHARE_H
#define GPOOL_SCHED_FAIRSHARE_H

#include <stdint.h>

#include "sched/model.h"

/*
 * demand[i]: GPU milli project i asks for (held and wanted), its own jobs only; a department's
 * demand is the sum over its subtree.  share[i] receives each project's fair share in milli;
 * scratch holds nprojects values.  Returns 0, or -EINVAL when the parents do not form a tree.
 */
int sched_fair_share(const struct sched_project *projects, int nprojects, const int64_t *demand,
                     int64_t capacity, int64_t *share, int64_t *scratch);

#endif
