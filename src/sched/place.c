/*
 * Placement policies. Each scores the nodes a pod fits on with an integer and the highest
 * score wins; ties go to the node ranked first. The baselines follow the FGD paper's simulator
 * (ATC'23) exactly, since their published results are what gpool is measured against:
 *
 *   random      one fitting node drawn uniformly, a fitting GPU drawn uniformly
 *   dotprod     least free CPU and GPU along the pod's own direction
 *   clustering  nodes that already hold pods of the same kind
 *   packing     partly used GPUs, then partly used nodes, then empty nodes
 *   bestfit     least CPU and GPU left over, half weight each
 *   fgd         least growth of fragmentation against the typical pods
 *
 * and gpool's own:
 *
 *   gpool       fgd's measure, also counting the usable capacity a placement takes from each
 *               typical class, scaled by how scarce that capacity has become
 *
 * Inside a node, a share goes to the fullest GPU that still has room (fgd, gpool: the GPU they
 * score best) and whole GPUs are the lowest-numbered free ones.
 */
#include "place.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Normalisers of the dotprod and bestfit scores: the largest node of the paper's cluster. */
#define SPEC_CPU 128000.0
#define SPEC_GPU 8000.0

static const char *const policy_names[SCHED_POLICY_COUNT] = {
    [SCHED_POLICY_RANDOM] = "random",         [SCHED_POLICY_DOTPROD] = "dotprod",
    [SCHED_POLICY_CLUSTERING] = "clustering", [SCHED_POLICY_PACKING] = "packing",
    [SCHED_POLICY_BESTFIT] = "bestfit",       [SCHED_POLICY_FGD] = "fgd",
    [SCHED_POLICY_GPOOL] = "gpool",
};

const char *sched_policy_name(enum sched_policy p)
{
    return (unsigned)p < SCHED_POLICY_COUNT ? policy_names[p] : "unknown";
}

int sched_policy_parse(const char *name, enum sched_policy *out)
{
    for (int i = 0; i < SCHED_POLICY_COUNT; i++) {
        if (strcmp(name, policy_names[i]) == 0) {
            *out = (enum sched_policy)i;
            return 0;
        }
    }
    return -EINVAL;
}

static bool model_allowed(const struct sched_node *n, sched_models_t models)
{
    return models == 0 || (n->model >= 0 && (models >> n->model & 1));
}

static bool is_share(const struct sched_pod *pod)
{
    return pod->num_gpu == 1 && (pod->gpu_milli < SCHED_MILLI || pod->gpu_mem_bytes != 0);
}

/* Whether GPU g can take the pod's share; *share is what it would take. */
static bool gpu_has_room(const struct sched_pod *pod, const struct sched_gpu *g, int *share)
{
    /* A request in milli is the same share on every GPU: no call for it. */
    *share = pod->gpu_mem_bytes == 0 ? pod->gpu_milli : sched_pod_share_on(pod, g);
    if (*share < 0 || g->free_milli < *share)
        return false;
    return g->mem_bytes == 0 || pod->gpu_mem_bytes <= g->mem_free_bytes;
}

bool sched_fits(const struct sched_node *node, const struct sched_pod *pod)
{
    int room = 0, share;

    if (node->cpu_free < pod->cpu_milli || node->mem_free < pod->mem_mib)
        return false;
    if (pod->num_gpu == 0)
        return true;
    if (node->ngpu < pod->num_gpu || !model_allowed(node, pod->models))
        return false;
    for (int i = 0; i < node->ngpu && room < pod->num_gpu; i++)
        room += gpu_has_room(pod, &node->gpu[i], &share);
    return room >= pod->num_gpu;
}

/* ---- choosing GPUs inside a node ---- */

/*
 * The pod's GPUs in order of least free milli first (lowest index among equals): for a share,
 * the fullest GPU with room; for whole GPUs, the lowest-numbered free ones.
 */
static void choose_tightest(const struct sched_node *n, const struct sched_pod *pod,
                            struct sched_choice *c)
{
    bool taken[SCHED_NODE_MAX_GPUS] = {false};
    int share;

    c->ngpu = 0;
    while (c->ngpu < pod->num_gpu) {
        int best = -1;
        for (int i = 0; i < n->ngpu; i++) {
            if (taken[i] || !gpu_has_room(pod, &n->gpu[i], &share))
                continue;
            if (best < 0 || n->gpu[i].free_milli < n->gpu[best].free_milli)
                best = i;
        }
        if (best < 0)
            return;
        taken[best] = true;
        c->gpu[c->ngpu++] = (uint8_t)best;
    }
}

static void choose_random_share(struct sched_placer *p, const struct sched_node *n,
                                const struct sched_pod *pod, struct sched_choice *c)
{
    int room[SCHED_NODE_MAX_GPUS], nroom = 0, share;

    for (int i = 0; i < n->ngpu; i++)
        if (gpu_has_room(pod, &n->gpu[i], &share))
            room[nroom++] = i;
    c->ngpu = 1;
    c->gpu[0] = (uint8_t)room[sched_rng_below(p->rng, (uint64_t)nroom)];
}

/* ---- the baseline scores ---- */

static int score_dotprod(const struct sched_node *n, const struct sched_pod *pod)
{
    double dot = (double)n->cpu_free / SPEC_CPU * ((double)pod->cpu_milli / SPEC_CPU) +
                 (double)sched_node_free_milli(n) / SPEC_GPU *
                     ((double)sched_pod_gpu_demand(pod) / SPEC_GPU);
    return (int)(100.0 * (1.0 - dot / 2.0));
}

static int affinity_kind(const struct sched_pod *pod)
{
    return is_share(pod) ? 0 : pod->num_gpu;
}

static int score_clustering(const struct sched_placer *p, int node, const struct sched_pod *pod)
{
    const struct sched_node *n = &p->cluster->nodes[node];
    const int *aff = &p->affinity[node * SCHED_AFFINITY_KINDS];
    int64_t base = 25 * (8000 - sched_node_free_milli(n)) / 8000;
    int kinds = 0;

    if (pod->num_gpu == 0)
        return 0;
    for (int k = 0; k < SCHED_AFFINITY_KINDS; k++)
        kinds += aff[k] > 0;
    if (aff[affinity_kind(pod)] > 0)
        return (int)base + (kinds == 1 ? 75 : 50);
    return (int)base + (kinds == 0 ? 25 : 0);
}

static int score_packing(const struct sched_node *n, const struct sched_pod *pod)
{
    struct sched_choice c;
    int whole = sched_node_whole_free(n), used_whole = 0, r = 0;

    if (pod->num_gpu == 0)
        return 0;
    if (whole == n->ngpu)
        return whole > 33 - whole ? whole : 33 - whole;
    choose_tightest(n, pod, &c);
    for (int i = 0; i < c.ngpu; i++) {
        int left = n->gpu[c.gpu[i]].free_milli;
        used_whole += left == SCHED_MILLI;
        r += left * 100 / SCHED_MILLI;
    }
    if (used_whole > 0)
        return 50 - used_whole > 33 ? 50 - used_whole : 33;
    return 100 - r / 10 > 50 ? 100 - r / 10 : 50;
}

static int score_bestfit(const struct sched_node *n, const struct sched_pod *pod)
{
    double raw = 0.5 * (double)(n->cpu_free - pod->cpu_milli) / SPEC_CPU +
                 0.5 * (double)(sched_node_free_milli(n) - sched_pod_gpu_demand(pod)) / SPEC_GPU;
    return (int)((1.0 - raw) * 100.0);
}

/* ---- fgd: fragmentation kept per node and class ---- */

/*
 * GPU milli of a node that pods of one class could still use if only they arrived: as many as
 * its GPUs hold (shares packed per GPU, whole GPUs in groups of num_gpu), capped by its CPU.
 */
static int64_t class_usable(const struct sched_pod *cls, bool ok, int fit, int slots, int64_t cpu)
{
    int64_t pods;

    if (cls->num_gpu == 0 || !ok)
        return 0;
    pods = cls->num_gpu == 1 ? slots : fit / cls->num_gpu;
    if (cls->cpu_milli > 0 && pods * cls->cpu_milli > cpu)
        pods = cpu / cls->cpu_milli;
    return pods * cls->num_gpu * cls->gpu_milli;
}

static void refresh_node(struct sched_placer *p, int node)
{
    const struct sched_typical *t = p->typical;
    const struct sched_node *n = &p->cluster->nodes[node];
    int *count = &p->fit_count[node * t->n], *small = &p->small_free[node * t->n];
    int *slots = &p->slots[node * t->n];

    for (int k = 0; k < t->n; k++) {
        int milli = t->cls[k].pod.gpu_milli;
        count[k] = small[k] = slots[k] = 0;
        for (int i = 0; i < n->ngpu; i++) {
            if (milli > 0)
                slots[k] += p->slots_of[(size_t)k * (SCHED_MILLI + 1) + n->gpu[i].free_milli];
            if (n->gpu[i].free_milli >= milli)
                count[k]++;
            else
                small[k] += n->gpu[i].free_milli;
        }
    }
    for (int k = 0; k < t->n; k++) {
        int64_t u = class_usable(&t->cls[k].pod, p->model_ok[node * t->n + k], count[k], slots[k],
                                 n->cpu_free);
        p->supply[k] += u - p->usable[node * t->n + k];
        p->usable[node * t->n + k] = u;
        /* fgd's measure already prices usable capacity at 1 per milli: this is the premium. */
        p->scarcity[k] = p->supply[k] > 0 ? t->cls[k].weight / (double)p->supply[k] -
                                                t->cls[k].weight / (double)p->idle_total
                                          : 0;
    }
    p->frag_total -= p->frag[node];
    p->frag[node] = sched_frag_node(n, t);
    p->frag_total += p->frag[node];
}

/* A change of one GPU's free milli in a hypothetical placement. */
struct gpu_change {
    int before, after;
};

/*
 * Fragmentation of `node` after its CPU drops to `cpu_after` and its GPUs change as listed:
 * the same measure as sched_frag_node, from the kept per-class figures. With `loss`, also the
 * scarcity loss of the change: what it takes from each typical class's usable capacity, as a
 * share of what the whole cluster still offers that class beyond its share of the free GPU
 * milli, weighted by how often the class occurs
 * (p->scarcity[k] = weight / supply - weight / free GPU milli).
 */
static double frag_after(const struct sched_placer *p, int node, int64_t cpu_after,
                         const struct gpu_change *chg, int nchg, double *loss)
{
    const struct sched_typical *t = p->typical;
    size_t at = (size_t)node * (size_t)t->n;
    int idle = (int)sched_node_free_milli(&p->cluster->nodes[node]);
    double f = 0;

    for (int j = 0; j < nchg; j++)
        idle += chg[j].after - chg[j].before;
    if (loss)
        *loss = 0;
    for (int k = 0; k < t->n; k++) {
        const struct sched_pod *cls = &t->cls[k].pod;
        const uint16_t *per = &p->slots_of[(size_t)k * (SCHED_MILLI + 1)];
        int fit = p->fit_count[at + k], sm = p->small_free[at + k], slots = p->slots[at + k];
        int frag = idle;

        if (cls->num_gpu == 0 || !p->model_ok[at + k] || (!loss && cpu_after < cls->cpu_milli)) {
            f += t->cls[k].weight * frag;
            continue;
        }
        for (int j = 0; j < nchg; j++) {
            int before = chg[j].before, after = chg[j].after;
            fit += (after >= cls->gpu_milli) - (before >= cls->gpu_milli);
            sm += (after < cls->gpu_milli ? after : 0) - (before < cls->gpu_milli ? before : 0);
            if (loss)
                slots += per[after] - per[before];
        }
        if (cpu_after >= cls->cpu_milli && fit >= cls->num_gpu)
            frag = sm;
        f += t->cls[k].weight * frag;
        if (loss)
            *loss += p->scarcity[k] *
                     (double)(p->usable[at + k] - class_usable(cls, true, fit, slots, cpu_after));
    }
    return f;
}

/* GPUs with equal free milli score alike: only the lowest-numbered of them need be tried. */
static bool same_as_earlier_gpu(const struct sched_node *n, const struct sched_pod *pod, int i,
                                int share)
{
    for (int j = 0; j < i; j++)
        if (n->gpu[j].free_milli == n->gpu[i].free_milli &&
            sched_pod_share_on(pod, &n->gpu[j]) == share)
            return true;
    return false;
}

static int fgd_score_of(double gain)
{
    return (int)(100.0 / (1.0 + exp(-gain / 1000.0)));
}

/*
 * fgd's score is a step function of the drop of fragmentation (before - after): 0 to 100.  The
 * least drop that reaches each step is found once, by bisection of the score itself, so that a
 * node's score is a comparison with the step above the best so far (no exp per node and GPU),
 * and the scores, ties included, are the same as the formula's.
 */
static void fgd_steps(double *step)
{
    step[0] = -INFINITY;
    for (int s = 1; s <= 100; s++) {
        double lo = -1e9, hi = 1e9; /* score 0 at lo, 100 at hi */

        for (;;) {
            double mid = lo + (hi - lo) / 2;

            if (mid <= lo || mid >= hi)
                break;
            if (fgd_score_of(mid) >= s)
                hi = mid;
            else
                lo = mid;
        }
        step[s] = hi;
    }
    step[101] = INFINITY;
}

/* The score of a drop: the highest step it reaches. */
static int fgd_score(const struct sched_placer *p, double gain)
{
    int lo = 0, hi = 100;

    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;

        if (gain >= p->fgd_step[mid])
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/*
 * The score of a hypothetical placement: fgd's, by how much it raises the node's fragmentation.
 * With `scarce` (the gpool policy), the usable capacity it takes counts too, each class's share
 * scaled by how scarce that capacity is: the cluster's free GPU milli over the class's supply,
 * less 1. fgd's measure already charges about 1 per milli of usable capacity a placement takes
 * (the growth of the free capacity the class cannot use), so where a class can use every free
 * GPU the premium is 0 and gpool scores as fgd; where only a few nodes still serve it, taking
 * their capacity weighs that much more.
 */
static double measure(const struct sched_placer *p, int node, int64_t cpu_after,
                      const struct gpu_change *chg, int nchg, bool scarce)
{
    double loss = 0, after = frag_after(p, node, cpu_after, chg, nchg, scarce ? &loss : NULL);

    return p->frag[node] - (after + loss * (double)p->idle_total);
}

/*
 * fgd and gpool: whole GPUs as every policy takes them; a share tries every GPU with room.  The
 * score when it is above `beat` (the best of the nodes before), else INT_MIN: only a better
 * node needs its score.
 */
static int score_fragmentation(const struct sched_placer *p, int node, const struct sched_pod *pod,
                               struct sched_choice *c, bool scarce, int beat)
{
    const struct sched_node *n = &p->cluster->nodes[node];
    int64_t cpu_after = n->cpu_free - pod->cpu_milli;
    struct gpu_change chg[SCHED_NODE_MAX_GPUS];
    int best = beat < -1 ? -1 : beat, share;
    double gain;

    if (!is_share(pod)) {
        choose_tightest(n, pod, c);
        for (int i = 0; i < c->ngpu; i++) {
            chg[i].before = n->gpu[c->gpu[i]].free_milli;
            chg[i].after = chg[i].before - sched_pod_share_on(pod, &n->gpu[c->gpu[i]]);
        }
        gain = measure(p, node, cpu_after, chg, c->ngpu, scarce);
        return gain >= p->fgd_step[best + 1] ? fgd_score(p, gain) : INT_MIN;
    }
    for (int i = 0; i < n->ngpu; i++) {
        if (!gpu_has_room(pod, &n->gpu[i], &share) || same_as_earlier_gpu(n, pod, i, share))
            continue;
        chg[0].before = n->gpu[i].free_milli;
        chg[0].after = chg[0].before - share;
        gain = measure(p, node, cpu_after, chg, 1, scarce);
        if (gain >= p->fgd_step[best + 1]) {
            best = fgd_score(p, gain);
            c->ngpu = 1;
            c->gpu[0] = (uint8_t)i;
        }
    }
    return best > beat && best >= 0 ? best : INT_MIN;
}

/* ---- the placer ---- */

void sched_placer_fini(struct sched_placer *p)
{
    free(p->frag);
    free(p->fit_count);
    free(p->small_free);
    free(p->model_ok);
    free(p->slots);
    free(p->usable);
    free(p->supply);
    free(p->scarcity);
    free(p->slots_of);
    free(p->affinity);
    memset(p, 0, sizeof(*p));
}

int sched_placer_init(struct sched_placer *p, enum sched_policy policy,
                      struct sched_cluster *cluster, const int *rank,
                      const struct sched_typical *typical, struct sched_rng *rng)
{
    size_t cells = (size_t)cluster->nnodes * (size_t)(typical->n ? typical->n : 1);

    memset(p, 0, sizeof(*p));
    p->policy = policy;
    p->cluster = cluster;
    p->rank = rank;
    p->typical = typical;
    p->rng = rng;
    fgd_steps(p->fgd_step);
    p->frag = calloc((size_t)cluster->nnodes + 1, sizeof(double));
    p->fit_count = calloc(cells, sizeof(int));
    p->small_free = calloc(cells, sizeof(int));
    p->model_ok = calloc(cells, 1);
    p->slots = calloc(cells, sizeof(int));
    p->usable = calloc(cells, sizeof(int64_t));
    p->supply = calloc((size_t)typical->n + 1, sizeof(int64_t));
    p->scarcity = calloc((size_t)typical->n + 1, sizeof(double));
    p->slots_of = calloc((size_t)(typical->n + 1) * (SCHED_MILLI + 1), sizeof(uint16_t));
    p->affinity = calloc((size_t)cluster->nnodes * SCHED_AFFINITY_KINDS + 1, sizeof(int));
    if (!p->frag || !p->fit_count || !p->small_free || !p->model_ok || !p->affinity || !p->slots ||
        !p->usable || !p->supply) {
        sched_placer_fini(p);
        return -ENOMEM;
    }
    for (int k = 0; k < typical->n; k++)
        for (int m = 0; m <= SCHED_MILLI && typical->cls[k].pod.gpu_milli > 0; m++)
            p->slots_of[(size_t)k * (SCHED_MILLI + 1) + m] =
                (uint16_t)(m / typical->cls[k].pod.gpu_milli);
    for (int i = 0; i < cluster->nnodes; i++)
        p->idle_total += sched_node_free_milli(&cluster->nodes[i]);
    for (int i = 0; i < cluster->nnodes; i++) {
        for (int k = 0; k < typical->n; k++)
            p->model_ok[i * typical->n + k] =
                model_allowed(&cluster->nodes[i], typical->cls[k].pod.models);
        refresh_node(p, i);
    }
    return 0;
}

/* A node's score; fgd and gpool answer INT_MIN unless it beats `beat`. */
static int score_node(struct sched_placer *p, int node, const struct sched_pod *pod,
                      struct sched_choice *c, int beat)
{
    const struct sched_node *n = &p->cluster->nodes[node];

    switch (p->policy) {
    case SCHED_POLICY_DOTPROD:
        return score_dotprod(n, pod);
    case SCHED_POLICY_CLUSTERING:
        return score_clustering(p, node, pod);
    case SCHED_POLICY_PACKING:
        return score_packing(n, pod);
    case SCHED_POLICY_BESTFIT:
        return score_bestfit(n, pod);
    case SCHED_POLICY_FGD:
        return score_fragmentation(p, node, pod, c, false, beat);
    case SCHED_POLICY_GPOOL:
        return score_fragmentation(p, node, pod, c, true, beat);
    default:
        return 0;
    }
}

/* Random: one fitting node drawn uniformly; no draw when only one fits. */
static int place_random(struct sched_placer *p, const struct sched_pod *pod)
{
    int nfit = 0, pick, last = -1;

    for (int i = 0; i < p->cluster->nnodes; i++)
        if (sched_fits(&p->cluster->nodes[p->rank[i]], pod))
            nfit++, last = p->rank[i];
    if (nfit <= 1)
        return last;
    pick = (int)sched_rng_below(p->rng, (uint64_t)nfit);
    for (int i = 0; i < p->cluster->nnodes; i++)
        if (sched_fits(&p->cluster->nodes[p->rank[i]], pod) && pick-- == 0)
            return p->rank[i];
    return -1;
}

int sched_place(struct sched_placer *p, const struct sched_pod *pod, struct sched_choice *choice)
{
    const struct sched_node *nodes = p->cluster->nodes;
    struct sched_choice c = {0};
    int best = -1;
    int best_score = INT_MIN;

    choice->ngpu = 0;
    if (p->policy == SCHED_POLICY_RANDOM) {
        best = place_random(p, pod);
        if (best >= 0 && pod->num_gpu > 0) {
            if (is_share(pod))
                choose_random_share(p, &nodes[best], pod, choice);
            else
                choose_tightest(&nodes[best], pod, choice);
        }
        return best;
    }
    for (int r = 0; r < p->cluster->nnodes; r++) {
        int i = p->rank[r];
        int s;
        if (!sched_fits(&nodes[i], pod))
            continue;
        s = score_node(p, i, pod, &c, best_score);
        if (s > best_score) {
            best_score = s;
            best = i;
            *choice = c;
        }
    }
    if (best >= 0 && p->policy != SCHED_POLICY_FGD && p->policy != SCHED_POLICY_GPOOL &&
        pod->num_gpu > 0)
        choose_tightest(&nodes[best], pod, choice);
    return best;
}

void sched_placer_bind(struct sched_placer *p, int node, const struct sched_pod *pod,
                       const struct sched_choice *choice)
{
    p->idle_total -= sched_pod_gpu_demand(pod);
    sched_node_bind(&p->cluster->nodes[node], pod, choice);
    if (pod->num_gpu > 0)
        p->affinity[node * SCHED_AFFINITY_KINDS + affinity_kind(pod)]++;
    refresh_node(p, node);
}

void sched_placer_unbind(struct sched_placer *p, int node, const struct sched_pod *pod,
                         const struct sched_choice *choice)
{
    p->idle_total += sched_pod_gpu_demand(pod);
    sched_node_unbind(&p->cluster->nodes[node], pod, choice);
    if (pod->num_gpu > 0)
        p->affinity[node * SCHED_AFFINITY_KINDS + affinity_kind(pod)]--;
    refresh_node(p, node);
}

bool sched_choose_gpus(const struct sched_node *node, const struct sched_pod *pod,
                       struct sched_choice *choice)
{
    if (!sched_fits(node, pod))
        return false;
    choose_tightest(node, pod, choice);
    return choice->ngpu == pod->num_gpu;
}

void sched_placer_sync(struct sched_placer *p)
{
    p->idle_total = 0;
    memset(p->affinity, 0, (size_t)p->cluster->nnodes * SCHED_AFFINITY_KINDS * sizeof(int));
    for (int i = 0; i < p->cluster->nnodes; i++) {
        p->idle_total += sched_node_free_milli(&p->cluster->nodes[i]);
        refresh_node(p, i);
    }
}
