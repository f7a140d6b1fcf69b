/*
 * The fill experiment, as the FGD paper's simulator runs it: pods sorted by name, shuffled by the
 * seed, inflated (or cut) to a fixed multiple of the cluster's GPU capacity, then placed one at a
 * time. Ties between nodes go to the best place in a ranking that each seed draws once.
 */
#include "fill.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "sched/rng.h"

const char *fill_policy_name(int policy)
{
    return policy == FILL_OFFLINE_FFD ? "offline-ffd"
                                      : sched_policy_name((enum sched_policy)policy);
}

int fill_policy_parse(const char *name, int *out)
{
    enum sched_policy p;

    if (strcmp(name, "offline-ffd") == 0) {
        *out = FILL_OFFLINE_FFD;
        return 0;
    }
    if (sched_policy_parse(name, &p) < 0)
        return -EINVAL;
    *out = (int)p;
    return 0;
}

static int by_name_cmp(const void *a, const void *b, void *data)
{
    const struct trace_pods *pods = data;
    int r = strcmp(pods->pods[*(const int *)a].name, pods->pods[*(const int *)b].name);
    return r ? r : *(const int *)a - *(const int *)b;
}

int fill_setup_init(struct fill_setup *s, const struct trace_nodes *nodes,
                    const struct trace_pods *pods, double inflate, char *err, size_t errlen)
{
    const struct sched_pod **list;
    int64_t demand = 0;

    memset(s, 0, sizeof(*s));
    for (int i = 0; i < nodes->cluster.nnodes; i++)
        s->capacity_milli += (int64_t)nodes->cluster.nodes[i].ngpu * SCHED_MILLI;
    for (int i = 0; i < pods->npods; i++)
        demand += sched_pod_gpu_demand(&pods->pods[i].pod);
    /* Arrived demand is measured against the GPU capacity, and the list grows by GPU demand. */
    if (s->capacity_milli == 0 || demand == 0) {
        snprintf(err, errlen, "%s",
                 s->capacity_milli == 0 ? "the node list has no GPUs"
                                        : "the pod list asks for no GPUs");
        return -1;
    }
    s->nodes = nodes;
    s->pods = pods;
    s->inflate = inflate;
    list = xcalloc((size_t)pods->npods, sizeof(*list));
    s->by_name = xcalloc((size_t)pods->npods, sizeof(int));
    for (int i = 0; i < pods->npods; i++)
        s->by_name[i] = i;
    qsort_r(s->by_name, (size_t)pods->npods, sizeof(int), by_name_cmp, (void *)pods);
    for (int i = 0; i < pods->npods; i++)
        list[i] = &pods->pods[i].pod;
    if (sched_typical_build(list, pods->npods, &s->typical) < 0)
        fatalx("out of memory");
    free(list);
    return 0;
}

void fill_setup_fini(struct fill_setup *s)
{
    free(s->by_name);
    sched_typical_fini(&s->typical);
    memset(s, 0, sizeof(*s));
}

static int64_t pod_demand(const struct fill_setup *s, int i)
{
    return sched_pod_gpu_demand(&s->pods->pods[i].pod);
}

/*
 * The arrival order of one seed: the pods by name, shuffled, then grown by copies drawn at
 * random until the next copy would pass the target demand, or cut by removing random pods
 * while the demand is above it.
 */
static int *arrivals(const struct fill_setup *s, struct sched_rng *rng, int *count)
{
    int n = s->pods->npods, cap = n;
    int *order = xcalloc((size_t)cap, sizeof(int));
    int64_t demand = 0, target = (int64_t)llround(s->inflate * (double)s->capacity_milli);

    memcpy(order, s->by_name, (size_t)n * sizeof(int));
    sched_rng_shuffle(rng, order, n);
    for (int i = 0; i < n; i++)
        demand += pod_demand(s, order[i]);
    while (demand > target && n > 0) {
        int k = (int)sched_rng_below(rng, (uint64_t)n);
        demand -= pod_demand(s, order[k]);
        memmove(&order[k], &order[k + 1], (size_t)(n - k - 1) * sizeof(int));
        n--;
    }
    for (;;) {
        int k = (int)sched_rng_below(rng, (uint64_t)s->pods->npods);
        if (demand + pod_demand(s, k) > target)
            break;
        if (n == cap) {
            cap *= 2;
            order = xreallocarray(order, (size_t)cap, sizeof(int));
        }
        order[n++] = k;
        demand += pod_demand(s, k);
    }
    *count = n;
    return order;
}

static double round2(double x)
{
    return round(x * 100.0) / 100.0;
}

/* Bucket sums to means; an empty bucket takes its nearest filled neighbour's value. */
static void finish_curve(struct fill_curve *c, const int *hits)
{
    int first = -1;

    for (int b = 0; b < FILL_BUCKETS; b++) {
        if (hits[b] == 0)
            continue;
        c->alloc_pct[b] /= hits[b];
        c->frag_pct[b] /= hits[b];
        if (first < 0)
            first = b;
    }
    for (int b = 0; b < FILL_BUCKETS; b++) {
        int from = hits[b] ? b : (b < first || first < 0 ? first : b - 1);
        if (from < 0) {
            c->alloc_pct[b] = c->frag_pct[b] = 0;
        } else if (from != b) {
            c->alloc_pct[b] = c->alloc_pct[from];
            c->frag_pct[b] = c->frag_pct[from];
        }
    }
}

/* A fresh copy of the empty cluster; free its nodes with free(c->nodes). */
static void cluster_copy(const struct fill_setup *s, struct sched_cluster *c)
{
    const struct sched_cluster *tmpl = &s->nodes->cluster;

    *c = *tmpl;
    c->nodes = xcalloc((size_t)c->nnodes, sizeof(*c->nodes));
    memcpy(c->nodes, tmpl->nodes, (size_t)c->nnodes * sizeof(*c->nodes));
}

static int bucket_of(const struct fill_setup *s, int64_t arrived)
{
    int b = (int)lround((double)arrived * 100.0 / (double)s->capacity_milli);
    return b < FILL_BUCKETS ? b : FILL_BUCKETS - 1;
}

/* Pods arrive in `order` and are placed by `policy` as they come. */
static void run_online(const struct fill_setup *s, enum sched_policy policy, struct sched_rng *rng,
                       const int *rank, const int *order, int norder, struct fill_result *out)
{
    struct sched_cluster c;
    struct sched_placer placer;
    int hits[FILL_BUCKETS] = {0};
    int64_t arrived = 0, alloc = 0;
    double cap = (double)s->capacity_milli;

    cluster_copy(s, &c);
    if (sched_placer_init(&placer, policy, &c, rank, &s->typical, rng) < 0)
        fatalx("out of memory");
    for (int i = 0; i < norder; i++) {
        const struct sched_pod *pod = &s->pods->pods[order[i]].pod;
        struct sched_choice choice;
        int node, b;

        arrived += sched_pod_gpu_demand(pod);
        node = sched_place(&placer, pod, &choice);
        if (node >= 0) {
            sched_placer_bind(&placer, node, pod, &choice);
            alloc += sched_pod_gpu_demand(pod);
        } else {
            out->pods_failed++;
        }
        b = bucket_of(s, arrived);
        out->curve.alloc_pct[b] += round2((double)alloc * 100.0 / cap);
        out->curve.frag_pct[b] += round2(placer.frag_total * 100.0 / cap);
        hits[b]++;
    }
    finish_curve(&out->curve, hits);
    sched_placer_fini(&placer);
    free(c.nodes);
}

/*
 * The points of arrived demand (%) where offline-ffd packs: each packing costs about as much as
 * a whole online run, so there are few, and the curve is interpolated between them.
 */
static const int offline_points[] = {0, 50, 100, 130};

struct packing {
    int64_t alloc;
    double frag;
    int failed;
};

/* Largest GPU demand first, then most CPU, then arrival order. */
static int by_size_desc(const void *a, const void *b, void *data)
{
    const struct fill_setup *s = data;
    const struct sched_pod *x = &s->pods->pods[*(const int *)a].pod;
    const struct sched_pod *y = &s->pods->pods[*(const int *)b].pod;
    int64_t dx = sched_pod_gpu_demand(x), dy = sched_pod_gpu_demand(y);

    if (dx != dy)
        return dx < dy ? 1 : -1;
    if (x->cpu_milli != y->cpu_milli)
        return x->cpu_milli < y->cpu_milli ? 1 : -1;
    return 0;
}

/* Pods restricted to some GPU models first, then as by_size_desc. */
static int by_constraint_then_size(const void *a, const void *b, void *data)
{
    const struct fill_setup *s = data;
    bool cx = s->pods->pods[*(const int *)a].pod.models != 0;
    bool cy = s->pods->pods[*(const int *)b].pod.models != 0;

    if (cx != cy)
        return cx ? -1 : 1;
    return by_size_desc(a, b, data);
}

/*
 * The packings offline-ffd tries, an order and a score each; it keeps the best. A NULL order
 * keeps the arrival order, so that the online gpool and fgd placements are among them.
 */
static const struct offline_packing {
    int (*order)(const void *, const void *, void *);
    enum sched_policy score;
} offline_packings[] = {
    {by_size_desc, SCHED_POLICY_GPOOL},
    {by_size_desc, SCHED_POLICY_BESTFIT},
    {by_constraint_then_size, SCHED_POLICY_GPOOL},
    {NULL, SCHED_POLICY_GPOOL},
    {NULL, SCHED_POLICY_FGD},
};

static void pack(const struct fill_setup *s, enum sched_policy policy, struct sched_rng *rng,
                 const int *rank, const int *pods, int n, struct packing *out)
{
    struct sched_cluster c;
    struct sched_placer placer;

    cluster_copy(s, &c);
    if (sched_placer_init(&placer, policy, &c, rank, &s->typical, rng) < 0)
        fatalx("out of memory");
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < n; i++) {
        const struct sched_pod *pod = &s->pods->pods[pods[i]].pod;
        struct sched_choice choice;
        int node = sched_place(&placer, pod, &choice);
        if (node >= 0) {
            sched_placer_bind(&placer, node, pod, &choice);
            out->alloc += sched_pod_gpu_demand(pod);
        } else {
            out->failed++;
        }
    }
    out->frag = placer.frag_total;
    sched_placer_fini(&placer);
    free(c.nodes);
}

/* The best of offline_packings for a set of pods. */
static void pack_best(const struct fill_setup *s, struct sched_rng *rng, const int *rank,
                      const int *pods, int n, int *work, struct packing *best)
{
    best->alloc = -1;
    for (size_t k = 0; k < sizeof(offline_packings) / sizeof(offline_packings[0]); k++) {
        const struct offline_packing *op = &offline_packings[k];
        struct packing p;

        memcpy(work, pods, (size_t)n * sizeof(int));
        if (op->order)
            qsort_r(work, (size_t)n, sizeof(int), op->order, (void *)s);
        pack(s, op->score, rng, rank, work, n, &p);
        if (p.alloc > best->alloc)
            *best = p;
    }
}

/*
 * offline-ffd: at each of offline_points, the pods arrived so far are packed from scratch in
 * each of offline_packings, and the best packing is kept. With the whole list known in advance
 * it shows what packing is achievable (it is not a bound: a better one may exist).
 */
static void run_offline(const struct fill_setup *s, struct sched_rng *rng, const int *rank,
                        const int *order, int norder, struct fill_result *out)
{
    int *work = xcalloc((size_t)norder + 1, sizeof(int));
    double cap = (double)s->capacity_milli;
    int64_t arrived = 0;
    int m = 0, last_m = 0, prev = 0;
    struct packing best = {0};

    for (size_t k = 0; k < sizeof(offline_points) / sizeof(offline_points[0]); k++) {
        int b = offline_points[k];
        struct packing p;

        while (m < norder &&
               bucket_of(s, arrived + sched_pod_gpu_demand(&s->pods->pods[order[m]].pod)) <= b)
            arrived += sched_pod_gpu_demand(&s->pods->pods[order[m++]].pod);
        pack_best(s, rng, rank, order, m, work, &p);
        /* Packing from scratch can place less than the previous point did; that packing still
         * stands for the larger set (the pods arrived since simply not placed). */
        if (p.alloc >= best.alloc)
            best = p;
        else
            best.failed += m - last_m;
        last_m = m;
        out->curve.alloc_pct[b] = round2((double)best.alloc * 100.0 / cap);
        out->curve.frag_pct[b] = round2(best.frag * 100.0 / cap);
        out->pods_failed = best.failed;
        for (int x = prev + 1; x < b; x++) {
            double t = (double)(x - prev) / (b - prev);
            struct fill_curve *c = &out->curve;
            c->alloc_pct[x] =
                round2(c->alloc_pct[prev] + (c->alloc_pct[b] - c->alloc_pct[prev]) * t);
            c->frag_pct[x] = round2(c->frag_pct[prev] + (c->frag_pct[b] - c->frag_pct[prev]) * t);
        }
        prev = b;
    }
    free(work);
}

void fill_run(const struct fill_setup *s, int policy, uint64_t seed, struct fill_result *out)
{
    int nnodes = s->nodes->cluster.nnodes;
    struct sched_rng rng;
    int *rank, *order, norder;

    memset(out, 0, sizeof(*out));
    out->seed = seed;
    sched_rng_seed(&rng, seed);
    order = arrivals(s, &rng, &norder);
    rank = xcalloc((size_t)nnodes + 1, sizeof(int));
    for (int i = 0; i < nnodes; i++)
        rank[i] = i;
    sched_rng_shuffle(&rng, rank, nnodes);
    out->pods_arrived = norder;
    if (policy == FILL_OFFLINE_FFD)
        run_offline(s, &rng, rank, order, norder, out);
    else
        run_online(s, (enum sched_policy)policy, &rng, rank, order, norder, out);
    free(rank);
    free(order);
}

struct seed_work {
    const struct fill_setup *s;
    int policy;
    uint64_t first;
    int n;
    atomic_int next;
    struct fill_result *out;
};

static void *seed_worker(void *arg)
{
    struct seed_work *w = arg;
    int i;

    while ((i = atomic_fetch_add(&w->next, 1)) < w->n)
        fill_run(w->s, w->policy, w->first + (uint64_t)i, &w->out[i]);
    return NULL;
}

void fill_run_seeds(const struct fill_setup *s, int policy, uint64_t first, int n, int jobs,
                    struct fill_result *out)
{
    struct seed_work w = {.s = s, .policy = policy, .first = first, .n = n, .out = out};
    pthread_t *t;
    int started = 0;

    atomic_init(&w.next, 0);
    if (jobs > n)
        jobs = n;
    if (jobs <= 1) {
        seed_worker(&w);
        return;
    }
    t = xcalloc((size_t)jobs, sizeof(*t));
    for (int i = 0; i < jobs; i++)
        if (pthread_create(&t[started], NULL, seed_worker, &w) == 0)
            started++;
    if (started == 0)
        seed_worker(&w);
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    free(t);
}

void fill_mean(const struct fill_result *r, int n, struct fill_curve *mean)
{
    memset(mean, 0, sizeof(*mean));
    for (int i = 0; i < n; i++) {
        for (int b = 0; b < FILL_BUCKETS; b++) {
            mean->alloc_pct[b] += r[i].curve.alloc_pct[b] / n;
            mean->frag_pct[b] += r[i].curve.frag_pct[b] / n;
        }
    }
}
