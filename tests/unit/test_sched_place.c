/*
 * Placement: whether a pod fits on a node, and which node and GPUs each policy chooses on small
 * clusters where the answer can be worked out by hand.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sched/place.h"

#define GIB ((uint64_t)1 << 30)
#define MAX_NODES 8

/* A node with `ngpu` free GPUs of unknown memory, `cpu` CPU milli and 64 GiB, of model 0. */
static void node_init(struct sched_node *n, int ngpu, int64_t cpu)
{
    memset(n, 0, sizeof(*n));
    n->name = "node";
    n->pool = -1;
    n->model = 0;
    n->cpu_milli = n->cpu_free = cpu;
    n->mem_mib = n->mem_free = 65536;
    n->ngpu = ngpu;
    for (int i = 0; i < ngpu; i++)
        n->gpu[i].free_milli = SCHED_MILLI;
}

/* A small cluster, its ranking (identity unless a test changes it) and a placer over it. */
struct fixture {
    struct sched_node nodes[MAX_NODES];
    struct sched_cluster cluster;
    int rank[MAX_NODES];
    struct sched_rng rng;
    struct sched_placer placer;
};

static const struct sched_typical no_typical = {NULL, 0};

static void fx_init(struct fixture *f, int nnodes, int ngpu)
{
    memset(f, 0, sizeof(*f));
    for (int i = 0; i < nnodes; i++) {
        node_init(&f->nodes[i], ngpu, 32000);
        f->rank[i] = i;
    }
    f->cluster.nodes = f->nodes;
    f->cluster.nnodes = nnodes;
    sched_rng_seed(&f->rng, 1);
}

static void fx_start(struct fixture *f, enum sched_policy policy, const struct sched_typical *t)
{
    assert_int_equal(
        sched_placer_init(&f->placer, policy, &f->cluster, f->rank, t ? t : &no_typical, &f->rng),
        0);
}

/* Place and bind; returns the node. */
static int place_bind(struct fixture *f, const struct sched_pod *pod, struct sched_choice *c)
{
    int node = sched_place(&f->placer, pod, c);
    if (node >= 0)
        sched_placer_bind(&f->placer, node, pod, c);
    return node;
}

/* Every policy that scores nodes (all but random). */
static const enum sched_policy scored[] = {SCHED_POLICY_DOTPROD, SCHED_POLICY_CLUSTERING,
                                           SCHED_POLICY_PACKING, SCHED_POLICY_BESTFIT,
                                           SCHED_POLICY_FGD,    SCHED_POLICY_GPOOL};
#define NSCORED (sizeof(scored) / sizeof(scored[0]))

/* One typical class of whole single GPUs, for fgd. */
static struct sched_typical_class whole_class = {
    .pod = {.cpu_milli = 1000, .num_gpu = 1, .gpu_milli = 1000}, .weight = 1.0};
static const struct sched_typical whole_typical = {&whole_class, 1};

/* ---- sched_fits ---- */

static void fits_model_mask(void **state)
{
    struct sched_node n;
    struct sched_pod pod = {.cpu_milli = 1000, .num_gpu = 1, .gpu_milli = 1000};

    node_init(&n, 2, 8000);
    n.model = 2;
    pod.models = 0;
    assert_true(sched_fits(&n, &pod));
    pod.models = 1 << 2;
    assert_true(sched_fits(&n, &pod));
    pod.models = (1 << 0) | (1 << 2);
    assert_true(sched_fits(&n, &pod));
    pod.models = 1 << 1;
    assert_false(sched_fits(&n, &pod));
    /* A node whose GPUs have no known model only takes pods that allow any model. */
    n.model = -1;
    pod.models = 1 << 2;
    assert_false(sched_fits(&n, &pod));
    pod.models = 0;
    assert_true(sched_fits(&n, &pod));
}

static void fits_cpu_edge(void **state)
{
    struct sched_node n;
    struct sched_pod pod = {.cpu_milli = 4000, .num_gpu = 1, .gpu_milli = 500};

    node_init(&n, 1, 8000);
    n.cpu_free = 4000;
    assert_true(sched_fits(&n, &pod));
    pod.cpu_milli = 4001;
    assert_false(sched_fits(&n, &pod));
    /* The same for a CPU-only pod. */
    pod.num_gpu = 0;
    pod.gpu_milli = 0;
    assert_false(sched_fits(&n, &pod));
    pod.cpu_milli = 4000;
    assert_true(sched_fits(&n, &pod));
}

static void fits_memory_edge(void **state)
{
    struct sched_node n;
    struct sched_pod pod = {.cpu_milli = 100, .mem_mib = 1024, .num_gpu = 1, .gpu_milli = 500};

    node_init(&n, 1, 8000);
    n.mem_free = 1024;
    assert_true(sched_fits(&n, &pod));
    pod.mem_mib = 1025;
    assert_false(sched_fits(&n, &pod));
}

static void fits_multi_gpu(void **state)
{
    struct sched_node n;
    struct sched_pod pod = {.cpu_milli = 1000, .num_gpu = 2, .gpu_milli = 1000};

    node_init(&n, 4, 8000);
    n.gpu[0].free_milli = 0;
    n.gpu[2].free_milli = 999;
    /* Whole GPUs free: 1 and 3. Two fit, three do not. */
    assert_true(sched_fits(&n, &pod));
    pod.num_gpu = 3;
    assert_false(sched_fits(&n, &pod));
    /* More GPUs than the node has. */
    pod.num_gpu = 5;
    assert_false(sched_fits(&n, &pod));
    /* Three GPUs of 999 each: GPUs 1, 2 and 3 have room. */
    pod.num_gpu = 3;
    pod.gpu_milli = 999;
    assert_true(sched_fits(&n, &pod));
    pod.gpu_milli = 1000;
    assert_false(sched_fits(&n, &pod));
}

static void fits_shares_fill_one_gpu(void **state)
{
    struct sched_node n;
    struct sched_pod p600 = {.cpu_milli = 100, .num_gpu = 1, .gpu_milli = 600};
    struct sched_pod p400 = {.cpu_milli = 100, .num_gpu = 1, .gpu_milli = 400};
    struct sched_pod p401 = {.cpu_milli = 100, .num_gpu = 1, .gpu_milli = 401};
    struct sched_pod p1 = {.cpu_milli = 100, .num_gpu = 1, .gpu_milli = 1};
    struct sched_choice c0 = {.ngpu = 1, .gpu = {0}};

    node_init(&n, 1, 8000);
    assert_true(sched_fits(&n, &p600));
    sched_node_bind(&n, &p600, &c0);
    /* 600 + 400 is exactly 1000; 600 + 401 is one milli too many. */
    assert_true(sched_fits(&n, &p400));
    assert_false(sched_fits(&n, &p401));
    sched_node_bind(&n, &p400, &c0);
    assert_int_equal(n.gpu[0].free_milli, 0);
    assert_false(sched_fits(&n, &p1));
}

static void fits_cpu_only_on_gpuless_node(void **state)
{
    struct sched_node n;
    struct sched_pod cpu = {.cpu_milli = 2000, .mem_mib = 100};
    struct sched_pod gpu = {.cpu_milli = 2000, .mem_mib = 100, .num_gpu = 1, .gpu_milli = 100};

    node_init(&n, 0, 8000);
    n.model = -1;
    assert_true(sched_fits(&n, &cpu));
    assert_false(sched_fits(&n, &gpu));
}

static void fits_by_memory(void **state)
{
    struct sched_node n;
    struct sched_pod pod = {.cpu_milli = 100, .num_gpu = 1, .gpu_mem_bytes = 8 * GIB};

    node_init(&n, 1, 8000);
    /* Unknown GPU memory: a request by memory cannot be placed. */
    assert_false(sched_fits(&n, &pod));
    n.gpu[0].mem_bytes = n.gpu[0].mem_free_bytes = 16 * GIB;
    assert_true(sched_fits(&n, &pod));
    pod.gpu_mem_bytes = 16 * GIB + 1;
    assert_false(sched_fits(&n, &pod));
}

/* ---- each policy's choice ---- */

static void bestfit_least_left_over(void **state)
{
    struct fixture f;
    struct sched_pod pod = {.cpu_milli = 1000, .num_gpu = 1, .gpu_milli = 1000};
    struct sched_choice c;

    fx_init(&f, 3, 8);
    /* Node 1 has 2 GPUs free, node 2 one but too little CPU, node 0 all 8 free. */
    for (int i = 0; i < 6; i++)
        f.nodes[1].gpu[i].free_milli = 0;
    for (int i = 0; i < 7; i++)
        f.nodes[2].gpu[i].free_milli = 0;
    f.nodes[2].cpu_free = 999;
    fx_start(&f, SCHED_POLICY_BESTFIT, NULL);
    /*
     * Left over, as a share of 128 CPUs and 8 GPUs, half weight each:
     * node 0: 0.5 * 31000/128000 + 0.5 * 7000/8000 = 0.559 -> score 44;
     * node 1: 0.5 * 31000/128000 + 0.5 * 1000/8000 = 0.184 -> score 81.
     */
    assert_int_equal(sched_place(&f.placer, &pod, &c), 1);
    assert_int_equal(c.ngpu, 1);
    assert_int_equal(c.gpu[0], 6);
    sched_placer_fini(&f.placer);
}

static void bestfit_counts_cpu(void **state)
{
    struct fixture f;
    struct sched_pod pod = {.cpu_milli = 1000};
    struct sched_choice c;

    fx_init(&f, 3, 0);
    f.nodes[0].cpu_free = 20000;
    f.nodes[1].cpu_free = 1500;
    f.nodes[2].cpu_free = 9000;
    fx_start(&f, SCHED_POLICY_BESTFIT, NULL);
    /* Node 1 leaves 500 CPU milli over, the least. */
    assert_int_equal(sched_place(&f.placer, &pod, &c), 1);
    assert_int_equal(c.ngpu, 0);
    sched_placer_fini(&f.placer);
}

static void dotprod_least_free_along_pod(void **state)
{
    struct fixture f;
    struct sched_pod pod = {.cpu_milli = 1000, .num_gpu = 1, .gpu_milli = 1000};
    struct sched_choice c;

    fx_init(&f, 2, 8);
    for (int i = 0; i < 6; i++)
        f.nodes[1].gpu[i].free_milli = 0;
    fx_start(&f, SCHED_POLICY_DOTPROD, NULL);
    /*
     * node 0: dot = 32000/128000 * 1000/128000 + 8000/8000 * 1000/8000 = 0.127 -> 93;
     * node 1: dot = 32000/128000 * 1000/128000 + 2000/8000 * 1000/8000 = 0.033 -> 98.
     */
    assert_int_equal(sched_place(&f.placer, &pod, &c), 1);
    sched_placer_fini(&f.placer);
}

static void packing_prefers_partly_used_gpu(void **state)
{
    struct fixture f;
    struct sched_pod share = {.cpu_milli = 1000, .num_gpu = 1, .gpu_milli = 300};
    struct sched_pod whole = {.cpu_milli = 1000, .num_gpu = 1, .gpu_milli = 1000};
    struct sched_choice c;

    fx_init(&f, 3, 4);
    /* Node 0 empty; node 1 with a partly used GPU 2; node 2 with GPU 0 fully used. */
    f.nodes[1].gpu[2].free_milli = 500;
    f.nodes[2].gpu[0].free_milli = 0;
    fx_start(&f, SCHED_POLICY_PACKING, NULL);
    /* The share goes on the partly used GPU (score 95) rather than an empty node (29). */
    assert_int_equal(sched_place(&f.placer, &share, &c), 1);
    assert_int_equal(c.ngpu, 1);
    assert_int_equal(c.gpu[0], 2);
    /*
     * A whole GPU goes to a partly used node (49) rather than the empty one (29); nodes 1 and 2
     * tie and node 1 is ranked first. It takes node 1's lowest whole GPU, 0.
     */
    assert_int_equal(sched_place(&f.placer, &whole, &c), 1);
    assert_int_equal(c.gpu[0], 0);
    sched_placer_fini(&f.placer);
}

static void clustering_groups_kinds(void **state)
{
    struct fixture f;
    struct sched_pod share = {.cpu_milli = 1000, .num_gpu = 1, .gpu_milli = 500};
    struct sched_pod whole = {.cpu_milli = 1000, .num_gpu = 1, .gpu_milli = 1000};
    struct sched_choice c = {.ngpu = 1, .gpu = {0}};

    fx_init(&f, 2, 8);
    fx_start(&f, SCHED_POLICY_CLUSTERING, NULL);
    /* Node 1 holds one share pod. */
    sched_placer_bind(&f.placer, 1, &share, &c);
    /* Another share joins it: 25 * 500 / 8000 -> 1, + 75 for one kind there; node 0 scores 25. */
    assert_int_equal(sched_place(&f.placer, &share, &c), 1);
    /* A whole GPU is another kind: node 1 scores 1 + 0, empty node 0 scores 0 + 25. */
    assert_int_equal(sched_place(&f.placer, &whole, &c), 0);
    sched_placer_fini(&f.placer);
}

static void fgd_keeps_whole_gpus_whole(void **state)
{
    struct fixture f;
    struct sched_pod pod = {.cpu_milli = 1000, .num_gpu = 1, .gpu_milli = 300};
    struct sched_choice c;

    fx_init(&f, 2, 2);
    /* Node 0: two whole GPUs. Node 1: GPU 0 whole, GPU 1 with 600 free. */
    f.nodes[1].gpu[1].free_milli = 600;
    fx_start(&f, SCHED_POLICY_FGD, &whole_typical);
    /*
     * Against whole-GPU pods:
     * node 0: 0 fragmented before; a share on either GPU leaves 700 unusable: +700 -> 33;
     * node 1 GPU 0: 600 before, 1300 after (no whole GPU left): +700 -> 33;
     * node 1 GPU 1: 600 before, 300 after: -300 -> 57, the best.
     */
    assert_int_equal(sched_place(&f.placer, &pod, &c), 1);
    assert_int_equal(c.ngpu, 1);
    assert_int_equal(c.gpu[0], 1);
    sched_placer_fini(&f.placer);
}

static void fgd_keeps_room_for_typical_share(void **state)
{
    static struct sched_typical_class half = {
        .pod = {.cpu_milli = 1000, .num_gpu = 1, .gpu_milli = 500}, .weight = 1.0};
    const struct sched_typical t = {&half, 1};
    struct fixture f;
    struct sched_pod pod = {.cpu_milli = 1000, .num_gpu = 1, .gpu_milli = 200};
    struct sched_choice c;

    fx_init(&f, 1, 2);
    f.nodes[0].gpu[1].free_milli = 600;
    fx_start(&f, SCHED_POLICY_FGD, &t);
    /*
     * Typical pods take 500. On GPU 1 (600 -> 400) no 500 fits there any more: +400 -> 40.
     * On GPU 0 (1000 -> 800) both GPUs still hold a 500: +0 -> 50. fgd takes GPU 0.
     */
    assert_int_equal(sched_place(&f.placer, &pod, &c), 0);
    assert_int_equal(c.gpu[0], 0);
    sched_placer_fini(&f.placer);

    /* The other policies put a share on the fullest GPU with room: GPU 1. */
    fx_start(&f, SCHED_POLICY_BESTFIT, &t);
    assert_int_equal(sched_place(&f.placer, &pod, &c), 0);
    assert_int_equal(c.gpu[0], 1);
    sched_placer_fini(&f.placer);
}

/*
 * One-GPU nodes; the typical pod takes half a GPU and 2 CPUs. Node 0 has 4 CPUs, node 1 has 100,
 * node 2 has 400 milli free on its GPU (too little for the typical pod) and 1 CPU (too little
 * for the pod placed). A CPU-only pod of 2 CPUs leaves the typical pod room on node 0 or 1 (fgd:
 * equal scores, so the rank decides), but on node 0 it leaves CPU for one typical pod instead of
 * two: half of that GPU could no longer be used. That capacity is scarce (the typical pod can use
 * 2000 of the 2400 free milli), so gpool puts the pod on node 1 whatever the rank.
 */
static void gpool_keeps_scarce_cpu_beside_gpus(void **state)
{
    static struct sched_typical_class half = {
        .pod = {.cpu_milli = 2000, .num_gpu = 1, .gpu_milli = 500}, .weight = 1.0};
    static const struct sched_typical half_typical = {&half, 1};
    const struct sched_pod cpu_only = {.cpu_milli = 2000, .mem_mib = 1024};
    struct fixture f;
    struct sched_choice c;

    (void)state;
    for (int first = 0; first < 2; first++) {
        fx_init(&f, 3, 1);
        f.nodes[0].cpu_milli = f.nodes[0].cpu_free = 4000;
        f.nodes[1].cpu_milli = f.nodes[1].cpu_free = 100000;
        f.nodes[2].cpu_milli = f.nodes[2].cpu_free = 1000;
        f.nodes[2].gpu[0].free_milli = 400;
        f.rank[0] = first;
        f.rank[1] = 1 - first;
        fx_start(&f, SCHED_POLICY_FGD, &half_typical);
        assert_int_equal(sched_place(&f.placer, &cpu_only, &c), first);
        sched_placer_fini(&f.placer);
        fx_start(&f, SCHED_POLICY_GPOOL, &half_typical);
        assert_int_equal(sched_place(&f.placer, &cpu_only, &c), 1);
        sched_placer_fini(&f.placer);
    }
}

/*
 * Nodes 0 and 1 as above, without node 2: the typical pod can use every free GPU, so no
 * capacity is scarce and gpool scores as fgd (fgd's measure already prices capacity that is
 * not scarce): the rank decides.
 */
static void gpool_is_fgd_without_scarcity(void **state)
{
    static struct sched_typical_class half = {
        .pod = {.cpu_milli = 2000, .num_gpu = 1, .gpu_milli = 500}, .weight = 1.0};
    static const struct sched_typical half_typical = {&half, 1};
    const struct sched_pod cpu_only = {.cpu_milli = 2000, .mem_mib = 1024};
    struct fixture f;
    struct sched_choice c;

    (void)state;
    for (int first = 0; first < 2; first++) {
        fx_init(&f, 2, 1);
        f.nodes[0].cpu_milli = f.nodes[0].cpu_free = 4000;
        f.nodes[1].cpu_milli = f.nodes[1].cpu_free = 100000;
        f.rank[0] = first;
        f.rank[1] = 1 - first;
        fx_start(&f, SCHED_POLICY_GPOOL, &half_typical);
        assert_int_equal(sched_place(&f.placer, &cpu_only, &c), first);
        sched_placer_fini(&f.placer);
    }
}

static void whole_gpus_lowest_numbered(void **state)
{
    struct sched_pod pod = {.cpu_milli = 1000, .num_gpu = 2, .gpu_milli = 1000};
    enum sched_policy all[NSCORED + 1];

    memcpy(all, scored, sizeof(scored));
    all[NSCORED] = SCHED_POLICY_RANDOM;
    for (size_t k = 0; k < NSCORED + 1; k++) {
        struct fixture f;
        struct sched_choice c;

        fx_init(&f, 1, 6);
        f.nodes[0].gpu[0].free_milli = 500;
        f.nodes[0].gpu[2].free_milli = 0;
        fx_start(&f, all[k], &whole_typical);
        /* Free GPUs are 1, 3, 4 and 5: the pod takes 1 and 3. */
        assert_int_equal(sched_place(&f.placer, &pod, &c), 0);
        assert_int_equal(c.ngpu, 2);
        assert_int_equal(c.gpu[0], 1);
        assert_int_equal(c.gpu[1], 3);
        sched_placer_fini(&f.placer);
    }
}

static void ties_follow_rank(void **state)
{
    struct sched_pod pods[] = {
        {.cpu_milli = 1000, .num_gpu = 1, .gpu_milli = 1000},
        {.cpu_milli = 1000, .num_gpu = 1, .gpu_milli = 250},
        {.cpu_milli = 1000},
    };

    for (size_t k = 0; k < NSCORED; k++) {
        for (size_t j = 0; j < sizeof(pods) / sizeof(pods[0]); j++) {
            struct fixture f;
            struct sched_choice c;

            /* Three identical nodes: every policy scores them alike. */
            fx_init(&f, 3, 4);
            f.rank[0] = 0, f.rank[1] = 1, f.rank[2] = 2;
            fx_start(&f, scored[k], &whole_typical);
            assert_int_equal(sched_place(&f.placer, &pods[j], &c), 0);
            sched_placer_fini(&f.placer);

            f.rank[0] = 2, f.rank[1] = 0, f.rank[2] = 1;
            fx_start(&f, scored[k], &whole_typical);
            assert_int_equal(sched_place(&f.placer, &pods[j], &c), 2);
            sched_placer_fini(&f.placer);
        }
    }
}

static void fits_nowhere_changes_nothing(void **state)
{
    struct sched_pod pods[] = {
        {.cpu_milli = 1000, .num_gpu = 3, .gpu_milli = 1000}, /* more GPUs than any node */
        {.cpu_milli = 64000},                                 /* more CPU than any node */
        {.cpu_milli = 1000, .num_gpu = 1, .gpu_milli = 600},  /* no GPU with 600 left */
    };
    enum sched_policy all[NSCORED + 1];

    memcpy(all, scored, sizeof(scored));
    all[NSCORED] = SCHED_POLICY_RANDOM;
    for (size_t k = 0; k < NSCORED + 1; k++) {
        for (size_t j = 0; j < sizeof(pods) / sizeof(pods[0]); j++) {
            struct fixture f;
            struct sched_node before[MAX_NODES];
            struct sched_rng rng_before;
            struct sched_choice c;
            double frag_before;

            fx_init(&f, 3, 2);
            for (int i = 0; i < 3; i++)
                f.nodes[i].gpu[0].free_milli = f.nodes[i].gpu[1].free_milli = 500;
            fx_start(&f, all[k], &whole_typical);
            memcpy(before, f.nodes, sizeof(before));
            rng_before = f.rng;
            frag_before = f.placer.frag_total;
            assert_int_equal(sched_place(&f.placer, &pods[j], &c), -1);
            assert_int_equal(c.ngpu, 0);
            assert_memory_equal(before, f.nodes, sizeof(before));
            assert_memory_equal(&rng_before, &f.rng, sizeof(rng_before));
            assert_true(f.placer.frag_total == frag_before);
            sched_placer_fini(&f.placer);
        }
    }
}

/* ---- determinism and what the placer keeps ---- */

static const struct sched_pod workload[] = {
    {.cpu_milli = 2000, .mem_mib = 1024, .num_gpu = 1, .gpu_milli = 1000},
    {.cpu_milli = 1000, .mem_mib = 512, .num_gpu = 1, .gpu_milli = 500},
    {.cpu_milli = 500, .mem_mib = 256, .num_gpu = 1, .gpu_milli = 250},
    {.cpu_milli = 4000, .mem_mib = 2048, .num_gpu = 2, .gpu_milli = 1000},
    {.cpu_milli = 3000, .mem_mib = 128},
    {.cpu_milli = 1000, .mem_mib = 512, .num_gpu = 1, .gpu_milli = 700, .models = 1 << 1},
};
#define NWORKLOAD ((int)(sizeof(workload) / sizeof(workload[0])))

/* Place 24 pods (the workload four times over) on a 5-node cluster, recording each decision. */
static void run_workload(enum sched_policy policy, uint64_t seed, int *node_out,
                         struct sched_choice *choice_out)
{
    struct fixture f;
    struct sched_typical t;
    const struct sched_pod *list[NWORKLOAD];

    for (int i = 0; i < NWORKLOAD; i++)
        list[i] = &workload[i];
    assert_int_equal(sched_typical_build(list, NWORKLOAD, &t), 0);
    fx_init(&f, 5, 4);
    for (int i = 0; i < 5; i++)
        f.nodes[i].model = i % 2;
    sched_rng_seed(&f.rng, seed);
    sched_rng_shuffle(&f.rng, f.rank, 5);
    fx_start(&f, policy, &t);
    for (int i = 0; i < 4 * NWORKLOAD; i++) {
        memset(&choice_out[i], 0, sizeof(choice_out[i]));
        node_out[i] = place_bind(&f, &workload[i % NWORKLOAD], &choice_out[i]);
    }
    sched_placer_fini(&f.placer);
    sched_typical_fini(&t);
}

static void same_seed_same_placements(void **state)
{
    enum sched_policy all[NSCORED + 1];

    memcpy(all, scored, sizeof(scored));
    all[NSCORED] = SCHED_POLICY_RANDOM;
    for (size_t k = 0; k < NSCORED + 1; k++) {
        int a[4 * NWORKLOAD], b[4 * NWORKLOAD];
        struct sched_choice ca[4 * NWORKLOAD], cb[4 * NWORKLOAD];

        run_workload(all[k], 42, a, ca);
        run_workload(all[k], 42, b, cb);
        assert_memory_equal(a, b, sizeof(a));
        assert_memory_equal(ca, cb, sizeof(ca));
    }
}

static void random_seed_matters(void **state)
{
    int a[4 * NWORKLOAD], b[4 * NWORKLOAD];
    struct sched_choice ca[4 * NWORKLOAD], cb[4 * NWORKLOAD];
    bool differ = false;

    run_workload(SCHED_POLICY_RANDOM, 1, a, ca);
    for (uint64_t seed = 2; seed < 6 && !differ; seed++) {
        run_workload(SCHED_POLICY_RANDOM, seed, b, cb);
        differ = memcmp(a, b, sizeof(a)) != 0;
    }
    assert_true(differ);
}

static void frag_total_tracks_nodes(void **state)
{
    enum sched_policy all[NSCORED + 1];

    memcpy(all, scored, sizeof(scored));
    all[NSCORED] = SCHED_POLICY_RANDOM;
    for (size_t k = 0; k < NSCORED + 1; k++) {
        struct fixture f;
        struct sched_typical t;
        const struct sched_pod *list[NWORKLOAD];
        int placed = 0;

        for (int i = 0; i < NWORKLOAD; i++)
            list[i] = &workload[i];
        assert_int_equal(sched_typical_build(list, NWORKLOAD, &t), 0);
        fx_init(&f, 4, 4);
        f.nodes[0].model = 1;
        f.nodes[3].model = -1;
        fx_start(&f, all[k], &t);
        for (int i = 0; i < 3 * NWORKLOAD; i++) {
            struct sched_choice c;
            double sum = 0;

            placed += place_bind(&f, &workload[(i * 5) % NWORKLOAD], &c) >= 0;
            for (int n = 0; n < f.cluster.nnodes; n++) {
                double one = sched_frag_node(&f.nodes[n], &t);
                assert_float_equal(f.placer.frag[n], one, 1e-6);
                sum += one;
            }
            assert_float_equal(f.placer.frag_total, sum, 1e-6);
        }
        /* The check means something only if pods were placed. */
        assert_true(placed > 5);
        sched_placer_fini(&f.placer);
        sched_typical_fini(&t);
    }
}

static void policy_names(void **state)
{
    static const char *const names[] = {"random",  "dotprod", "clustering",
                                        "packing", "bestfit", "fgd"};
    static const enum sched_policy values[] = {SCHED_POLICY_RANDOM,     SCHED_POLICY_DOTPROD,
                                               SCHED_POLICY_CLUSTERING, SCHED_POLICY_PACKING,
                                               SCHED_POLICY_BESTFIT,    SCHED_POLICY_FGD};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        enum sched_policy p = SCHED_POLICY_COUNT;
        assert_int_equal(sched_policy_parse(names[i], &p), 0);
        assert_int_equal(p, values[i]);
        assert_string_equal(sched_policy_name(values[i]), names[i]);
    }
    /* Every policy's name parses back to it, whatever policies are added. */
    for (int i = 0; i < SCHED_POLICY_COUNT; i++) {
        enum sched_policy p = SCHED_POLICY_COUNT;
        assert_int_equal(sched_policy_parse(sched_policy_name((enum sched_policy)i), &p), 0);
        assert_int_equal(p, i);
    }
}

static void policy_bad_name(void **state)
{
    enum sched_policy p = SCHED_POLICY_FGD;

    assert_int_equal(sched_policy_parse("best-fit", &p), -EINVAL);
    assert_int_equal(sched_policy_parse("FGD", &p), -EINVAL);
    assert_int_equal(sched_policy_parse("", &p), -EINVAL);
    assert_int_equal(p, SCHED_POLICY_FGD);
    assert_string_equal(sched_policy_name(SCHED_POLICY_COUNT), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fits_model_mask),
        cmocka_unit_test(fits_cpu_edge),
        cmocka_unit_test(fits_memory_edge),
        cmocka_unit_test(fits_multi_gpu),
        cmocka_unit_test(fits_shares_fill_one_gpu),
        cmocka_unit_test(fits_cpu_only_on_gpuless_node),
        cmocka_unit_test(fits_by_memory),
        cmocka_unit_test(bestfit_least_left_over),
        cmocka_unit_test(bestfit_counts_cpu),
        cmocka_unit_test(dotprod_least_free_along_pod),
        cmocka_unit_test(packing_prefers_partly_used_gpu),
        cmocka_unit_test(clustering_groups_kinds),
        cmocka_unit_test(fgd_keeps_whole_gpus_whole),
        cmocka_unit_test(fgd_keeps_room_for_typical_share),
        cmocka_unit_test(gpool_keeps_scarce_cpu_beside_gpus),
        cmocka_unit_test(gpool_is_fgd_without_scarcity),
        cmocka_unit_test(whole_gpus_lowest_numbered),
        cmocka_unit_test(ties_follow_rank),
        cmocka_unit_test(fits_nowhere_changes_nothing),
        cmocka_unit_test(same_seed_same_placements),
        cmocka_unit_test(random_seed_matters),
        cmocka_unit_test(frag_total_tracks_nodes),
        cmocka_unit_test(policy_names),
        cmocka_unit_test(policy_bad_name),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
