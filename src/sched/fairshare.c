/*
 * Hierarchical water-filling of GPU capacity over the project tree.
 */
#include "sched/fairshare.h"

#include <errno.h>
#include <string.h>

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* The most child i may be given: its subtree's demand, capped by its limit. */
static int64_t cap_of(const struct sched_project *p, const int64_t *subtree, int i)
{
    return p[i].limit_milli >= 0 ? min64(subtree[i], p[i].limit_milli) : subtree[i];
}

/*
 * Splits `amount` among the children of `parent` (-1: the roots), writing each child's share
 * into share[]: deserved first, then water-filling by weight.
 */
static void split(const struct sched_project *p, int n, const int64_t *subtree, int parent,
                  int64_t amount, int64_t *share)
{
    int64_t left = amount;
    int open;

    for (int i = 0; i < n; i++) {
        if (p[i].parent != parent)
            continue;
        share[i] = min64(min64(p[i].deserved_milli, cap_of(p, subtree, i)), left);
        left -= share[i];
    }
    /* Water-filling: each round gives every child that still wants more its weighted part. */
    do {
        int64_t weights = 0, given = 0;

        open = 0;
        for (int i = 0; i < n; i++)
            if (p[i].parent == parent && share[i] < cap_of(p, subtree, i)) {
                weights += p[i].over_quota_weight > 0 ? p[i].over_quota_weight : 0;
                open++;
            }
        if (open == 0 || left <= 0 || weights == 0)
            break;
        for (int i = 0; i < n; i++) {
            int64_t want, part;

            if (p[i].parent != parent || share[i] >= cap_of(p, subtree, i) ||
                p[i].over_quota_weight <= 0)
                continue;
            want = cap_of(p, subtree, i) - share[i];
            part = min64(want, left * p[i].over_quota_weight / weights);
            if (part == 0 && given == 0)
                part = min64(want, 1); /* rounding must not stall the loop */
            share[i] += part;
            given += part;
        }
        left -= given;
        if (given == 0)
            break;
    } while (left > 0);
}

static int depth_of(const struct sched_project *p, int n, int i)
{
    int d = 0;

    for (int j = p[i].parent; j >= 0; j = p[j].parent)
        if (j >= n || ++d > n)
            return -1;
    return d;
}

int sched_fair_share(const struct sched_project *projects, int n, const int64_t *demand,
                     int64_t capacity, int64_t *share, int64_t *subtree)
{
    int maxdepth = 0;

    memset(subtree, 0, (size_t)n * sizeof(*subtree));
    for (int i = 0; i < n; i++) {
        int d = depth_of(projects, n, i);

        if (d < 0)
            return -EINVAL;
        maxdepth = d > maxdepth ? d : maxdepth;
        for (int j = i; j >= 0; j = projects[j].parent)
            subtree[j] += demand[i];
    }
    memset(share, 0, (size_t)n * sizeof(*share));
    split(projects, n, subtree, -1, capacity, share);
    /* Then each level, top down, splits what its parents were given. */
    for (int d = 0; d < maxdepth; d++)
        for (int i = 0; i < n; i++)
            if (depth_of(projects, n, i) == d) {
                int64_t own = min64(demand[i], share[i]);
                bool has_children = false;

                for (int c = 0; c < n && !has_children; c++)
                    has_children = projects[c].parent == i;
                if (has_children)
                    split(projects, n, subtree, i, share[i] - own, share);
            }
    return 0;
}
