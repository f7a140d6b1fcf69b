/*
 * The scheduling cycle on small hand-built clusters, one decision path per case: fair share,
 * order, gangs, reclaim, preemption, thin provisioning and swapping, and the reasons people read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sched/cycle.h"
#include "sched/fairshare.h"

#define GiB (1ull << 30)
#define MAXJ 16
#define HOUR 3600

struct fx {
    struct sched_node nodes[4];
    struct sched_cluster cluster;
    struct sched_project projects[4];
    struct sched_job jobs[MAXJ];
    struct sched_binding bind[MAXJ][4];
    int njobs;
    struct sched_cycle_cfg cfg;
    struct sched_cycle cycle;
    struct sched_typical typical;
    struct sched_typical_class cls[1];
};

/* Nodes of 4 GPUs of 16 GiB each, 64 cores and 256 GiB of host memory. */
static void fx_init(struct fx *f, int nnodes, int ngpu)
{
    memset(f, 0, sizeof(*f));
    f->cluster.nodes = f->nodes;
    f->cluster.nnodes = nnodes;
    f->cluster.models[0] = "A";
    f->cluster.models[1] = "B";
    f->cluster.nmodels = 2;
    for (int i = 0; i < nnodes; i++) {
        struct sched_node *n = &f->nodes[i];

        n->name = "node";
        n->model = 0;
        n->cpu_milli = n->cpu_free = 64000;
        n->mem_mib = n->mem_free = 256 * 1024;
        n->ngpu = ngpu;
        for (int g = 0; g < ngpu; g++)
            n->gpu[g] = (struct sched_gpu){SCHED_MILLI, 16 * GiB, 16 * GiB};
    }
    for (int p = 0; p < 4; p++)
        f->projects[p] = (struct sched_project){
            .name = (const char *[]){"alpha", "beta", "gamma", "delta"}[p],
            .parent = -1, .limit_milli = -1, .over_quota_weight = 1};
    f->cfg = (struct sched_cycle_cfg){.placement = SCHED_POLICY_BESTFIT, .fractions = true,
                                      .quotas = true, .reclaim = true, .preempt = true,
                                      .swap = true, .lend = true, .min_runtime = 60,
                                      .idle_window = 300};
    f->cls[0] = (struct sched_typical_class){.pod = {.cpu_milli = 1000, .num_gpu = 1,
                                                     .gpu_milli = SCHED_MILLI},
                                             .weight = 1};
    f->typical = (struct sched_typical){f->cls, 1};
}

static int fx_job(struct fx *f, int project, enum sched_priority prio, int gpus, int milli)
{
    int i = f->njobs++;
    struct sched_job *j = &f->jobs[i];

    *j = (struct sched_job){.id = i + 1, .project = project, .cpu_milli = 1000, .mem_mib = 1024,
                            .replicas = 1, .priority = prio,
                            .preemptible = sched_priority_preemptible_default(prio),
                            .swappable = true, .submitted = i, .state = SCHED_JOB_PENDING,
                            .bind = f->bind[i], .idle_since = -1, .gpu_mem_used = 2 * GiB};
    if (milli > 0)
        j->req = (struct sched_request){.kind = SCHED_REQ_FRACTION, .milli = milli};
    else
        j->req = (struct sched_request){.kind = SCHED_REQ_WHOLE, .gpus = gpus};
    return i;
}

/* Makes job i run on `node`, GPUs first .. first + n - 1 (replica r on node + r). */
static void fx_run(struct fx *f, int i, int node, int first)
{
    struct sched_job *j = &f->jobs[i];
    struct sched_pod pod;

    sched_cycle_pod(&f->cfg, j, &pod);
    for (int r = 0; r < j->replicas; r++) {
        struct sched_binding *b = &j->bind[r];

        b->node = node + r;
        b->choice.ngpu = pod.num_gpu;
        for (int g = 0; g < pod.num_gpu; g++)
            b->choice.gpu[g] = (uint8_t)(first + g);
        sched_node_bind(&f->nodes[b->node], &pod, &b->choice);
    }
    j->state = SCHED_JOB_RUNNING;
    j->started = 0;
}

static void fx_cycle(struct fx *f, int64_t now)
{
    if (f->cycle.act == NULL)
        assert_int_equal(sched_cycle_init(&f->cycle, &f->cfg, &f->cluster, &f->typical, 4, MAXJ),
                         0);
    assert_int_equal(sched_cycle_run(&f->cycle, f->projects, 4, f->jobs, f->njobs, now), 0);
}

static int fx_count(const struct fx *f, enum sched_action_kind kind)
{
    int n = 0;

    for (int i = 0; i < f->cycle.nact; i++)
        n += f->cycle.act[i].kind == kind;
    return n;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;

    sched_cycle_fini(&f->cycle);
    return 0;
}

static int fx_setup(void **state)
{
    static struct fx f;

    memset(&f, 0, sizeof(f));
    *state = &f;
    return 0;
}

/* ---- fair share -------------------------------------------------------------------------- */

static void test_fair_share_deserved_then_weights(void **state)
{
    struct sched_project p[3] = {
        {"a", -1, 4000, -1, 1}, {"b", -1, 2000, -1, 1}, {"c", -1, 0, -1, 2}};
    int64_t demand[3] = {10000, 1000, 10000}, share[3], scratch[3];

    assert_int_equal(sched_fair_share(p, 3, demand, 16000, share, scratch), 0);
    /* b wants less than it deserves; the 11000 left go 1:2 to a and c, all of it. */
    assert_int_equal(share[1], 1000);
    assert_int_equal(share[0] + share[2], 15000);
    assert_in_range(share[2] - 2 * (share[0] - 4000) + 2, 0, 4);
}

static void test_fair_share_limits_and_departments(void **state)
{
    /* Department d deserves 8 GPUs for its two projects; x is limited to 3. */
    struct sched_project p[4] = {{"d", -1, 8000, -1, 1},
                                 {"x", 0, 2000, 3000, 1},
                                 {"y", 0, 2000, -1, 1},
                                 {"z", -1, 0, -1, 1}};
    int64_t demand[4] = {0, 10000, 10000, 10000}, share[4], scratch[4];

    assert_int_equal(sched_fair_share(p, 4, demand, 16000, share, scratch), 0);
    assert_int_equal(share[1], 3000); /* capped by its limit */
    assert_int_equal(share[0], share[1] + share[2]);
    assert_true(share[0] >= 8000);
    assert_int_equal(share[0] + share[3], 16000);
    /* A cycle in the tree is refused. */
    p[0].parent = 1;
    assert_int_equal(sched_fair_share(p, 4, demand, 16000, share, scratch), -22);
}

/* ---- allocation -------------------------------------------------------------------------- */

static void test_gang_is_all_or_nothing(void **state)
{
    struct fx *f = *state;
    int busy, gang;

    fx_init(f, 2, 2);
    f->projects[0].deserved_milli = 4000;
    busy = fx_job(f, 0, SCHED_PRIO_INFERENCE, 1, 0);
    fx_run(f, busy, 0, 0);
    gang = fx_job(f, 0, SCHED_PRIO_TRAIN, 2, 0);
    f->jobs[gang].replicas = 2;
    fx_cycle(f, HOUR);
    assert_int_equal(f->jobs[gang].state, SCHED_JOB_PENDING);
    assert_int_equal(fx_count(f, SCHED_ACT_START), 0);
    assert_int_equal(sched_node_free_milli(&f->nodes[1]), 2000); /* nothing half-placed */
    assert_non_null(strstr(f->cycle.reason[gang], "gang of 2 replicas"));
    /* With both nodes free it starts whole. */
    f->jobs[busy].state = SCHED_JOB_DONE;
    f->nodes[0].gpu[0].free_milli = SCHED_MILLI;
    f->nodes[0].cpu_free = f->nodes[0].cpu_milli;
    f->nodes[0].mem_free = f->nodes[0].mem_mib;
    fx_cycle(f, HOUR);
    assert_int_equal(f->jobs[gang].state, SCHED_JOB_RUNNING);
    assert_int_equal(sched_node_free_milli(&f->nodes[0]) + sched_node_free_milli(&f->nodes[1]), 0);
}

static void test_model_constraint_is_kept(void **state)
{
    struct fx *f = *state;
    int full, j;

    fx_init(f, 2, 1);
    f->nodes[1].model = 1; /* B */
    f->projects[0].deserved_milli = 2000;
    full = fx_job(f, 1, SCHED_PRIO_INFERENCE, 1, 0);
    f->projects[1].deserved_milli = 1000;
    fx_run(f, full, 0, 0);
    j = fx_job(f, 0, SCHED_PRIO_TRAIN, 1, 0);
    f->jobs[j].req.models = 1; /* model A only */
    f->jobs[full].preemptible = false;
    f->jobs[full].swappable = false;
    fx_cycle(f, HOUR);
    assert_int_equal(f->jobs[j].state, SCHED_JOB_PENDING);
    assert_int_equal(sched_node_free_milli(&f->nodes[1]), SCHED_MILLI);
    assert_non_null(strstr(f->cycle.reason[j], "of model A"));
}

static void test_fractions_share_a_gpu_or_round_up(void **state)
{
    struct fx *f = *state;
    int a, b;

    fx_init(f, 1, 1);
    f->projects[0].deserved_milli = 1000;
    a = fx_job(f, 0, SCHED_PRIO_TRAIN, 1, 500);
    b = fx_job(f, 0, SCHED_PRIO_TRAIN, 1, 500);
    fx_cycle(f, 0);
    assert_int_equal(f->jobs[a].state, SCHED_JOB_RUNNING);
    assert_int_equal(f->jobs[b].state, SCHED_JOB_RUNNING);
    sched_cycle_fini(&f->cycle);
    /* Without fractions, each takes the whole GPU: one waits. */
    fx_init(f, 1, 1);
    f->cfg.fractions = false;
    f->projects[0].deserved_milli = 1000;
    a = fx_job(f, 0, SCHED_PRIO_TRAIN, 1, 500);
    b = fx_job(f, 0, SCHED_PRIO_TRAIN, 1, 500);
    fx_cycle(f, 0);
    assert_int_equal(f->jobs[a].state, SCHED_JOB_RUNNING);
    assert_int_equal(f->jobs[b].state, SCHED_JOB_PENDING);
}

static void test_limit_and_deserved_rules_keep_jobs_waiting(void **state)
{
    struct fx *f = *state;
    int np, lim;

    fx_init(f, 1, 4);
    f->projects[0].deserved_milli = 1000;
    np = fx_job(f, 0, SCHED_PRIO_INTERACTIVE, 2, 0); /* not preemptible: 2 > 1 deserved */
    f->projects[1].limit_milli = 1000;
    lim = fx_job(f, 1, SCHED_PRIO_TRAIN, 2, 0);
    fx_cycle(f, 0);
    assert_int_equal(f->jobs[np].state, SCHED_JOB_PENDING);
    assert_non_null(strstr(f->cycle.reason[np], "deserved quota of project alpha"));
    assert_int_equal(f->jobs[lim].state, SCHED_JOB_PENDING);
    assert_non_null(strstr(f->cycle.reason[lim], "project beta is at its limit of 1.0 GPUs"));
    assert_int_equal(sched_node_free_milli(&f->nodes[0]), 4000);
}

static void test_project_furthest_below_fair_share_goes_first(void **state)
{
    struct fx *f = *state;
    int held, a, b;

    fx_init(f, 1, 2);
    f->projects[0].deserved_milli = 1000;
    f->projects[1].deserved_milli = 1000;
    held = fx_job(f, 0, SCHED_PRIO_TRAIN, 1, 0);
    fx_run(f, held, 0, 0);
    a = fx_job(f, 0, SCHED_PRIO_TRAIN, 1, 0); /* alpha already holds its share */
    b = fx_job(f, 1, SCHED_PRIO_TRAIN, 1, 0); /* submitted later */
    f->cfg.reclaim = f->cfg.preempt = false;
    fx_cycle(f, 0);
    assert_int_equal(f->jobs[b].state, SCHED_JOB_RUNNING);
    assert_int_equal(f->jobs[a].state, SCHED_JOB_PENDING);
    assert_non_null(strstr(f->cycle.reason[a], "no node has 1 whole GPU free"));
}

/* ---- reclaim and preemption -------------------------------------------------------------- */

static void test_project_below_deserved_does_not_wait(void **state)
{
    struct fx *f = *state;
    int j;

    fx_init(f, 1, 4);
    f->projects[0].deserved_milli = 2000;
    f->projects[1].deserved_milli = 2000;
    for (int g = 0; g < 4; g++)
        fx_run(f, fx_job(f, 1, SCHED_PRIO_TRAIN, 1, 0), 0, g); /* beta runs 4, above its 2 */
    j = fx_job(f, 0, SCHED_PRIO_TRAIN, 1, 0);
    fx_cycle(f, HOUR);
    assert_int_equal(f->jobs[j].state, SCHED_JOB_RUNNING);
    assert_int_equal(fx_count(f, SCHED_ACT_SWAP_OUT) + fx_count(f, SCHED_ACT_PREEMPT), 1);
    assert_string_equal(f->cycle.reason[j], "");
    assert_int_equal(f->cycle.allocated[1], 3000);
}

static void test_reclaim_takes_fewest_victims(void **state)
{
    struct fx *f = *state;
    int small1, small2, big, j;

    fx_init(f, 2, 2);
    f->projects[0].deserved_milli = 2000;
    f->projects[1].deserved_milli = 0;
    small1 = fx_job(f, 1, SCHED_PRIO_TRAIN, 1, 0);
    small2 = fx_job(f, 1, SCHED_PRIO_TRAIN, 1, 0);
    big = fx_job(f, 1, SCHED_PRIO_TRAIN, 2, 0);
    fx_run(f, small1, 0, 0);
    fx_run(f, small2, 0, 1);
    fx_run(f, big, 1, 0);
    j = fx_job(f, 0, SCHED_PRIO_TRAIN, 2, 0);
    fx_cycle(f, HOUR);
    assert_int_equal(f->jobs[j].state, SCHED_JOB_RUNNING);
    assert_int_equal(f->cycle.nact, 2); /* one victim, one start */
    assert_int_not_equal(f->jobs[big].state, SCHED_JOB_RUNNING);
    assert_int_equal(f->jobs[small1].state, SCHED_JOB_RUNNING);
    assert_int_equal(f->jobs[small2].state, SCHED_JOB_RUNNING);
}

static void test_non_preemptible_work_is_never_stopped(void **state)
{
    struct fx *f = *state;
    int owner, j;

    fx_init(f, 1, 1);
    f->projects[0].deserved_milli = 2000;
    owner = fx_job(f, 0, SCHED_PRIO_INTERACTIVE, 1, 0);
    fx_run(f, owner, 0, 0);
    j = fx_job(f, 0, SCHED_PRIO_INFERENCE, 1, 0);
    f->cfg.lend = false;
    fx_cycle(f, HOUR);
    assert_int_equal(f->jobs[owner].state, SCHED_JOB_RUNNING);
    assert_int_equal(f->cycle.nact, 0);
    assert_int_equal(f->jobs[j].state, SCHED_JOB_PENDING);
    /* Idle past the window, it may be swapped out (not stopped): it comes back on next use. */
    f->jobs[owner].idle_since = HOUR - 600;
    fx_cycle(f, HOUR);
    assert_int_equal(f->jobs[owner].state, SCHED_JOB_SWAPPED);
    assert_int_equal(fx_count(f, SCHED_ACT_PREEMPT), 0);
    assert_int_equal(f->jobs[j].state, SCHED_JOB_RUNNING);
}

static void test_priority_preempts_inside_a_project(void **state)
{
    struct fx *f = *state;
    int low, high;

    fx_init(f, 1, 1);
    f->projects[0].deserved_milli = 1000;
    low = fx_job(f, 0, SCHED_PRIO_TRAIN, 1, 0);
    fx_run(f, low, 0, 0);
    high = fx_job(f, 0, SCHED_PRIO_INFERENCE, 1, 0);
    f->cfg.swap = false;
    fx_cycle(f, 30); /* before the minimum runtime */
    assert_int_equal(f->jobs[low].state, SCHED_JOB_RUNNING);
    assert_int_equal(f->jobs[high].state, SCHED_JOB_PENDING);
    fx_cycle(f, HOUR);
    assert_int_equal(f->jobs[low].state, SCHED_JOB_PENDING);
    assert_int_equal(f->cycle.act[0].kind, SCHED_ACT_PREEMPT);
    assert_int_equal(f->cycle.act[0].for_job, high);
    assert_int_equal(f->jobs[high].state, SCHED_JOB_RUNNING);
}

static void test_swap_never_overcommits_host_memory(void **state)
{
    struct fx *f = *state;
    int victim, idle_np, j;

    fx_init(f, 1, 2);
    f->projects[0].deserved_milli = 2000;
    victim = fx_job(f, 1, SCHED_PRIO_TRAIN, 1, 0);
    idle_np = fx_job(f, 1, SCHED_PRIO_INTERACTIVE, 1, 0);
    fx_run(f, victim, 0, 0);
    fx_run(f, idle_np, 0, 1);
    f->jobs[victim].gpu_mem_used = 12 * GiB;
    f->jobs[idle_np].gpu_mem_used = 12 * GiB;
    f->jobs[idle_np].idle_since = 0;
    f->nodes[0].mem_free = 8 * 1024; /* 8 GiB of host memory left */
    j = fx_job(f, 0, SCHED_PRIO_TRAIN, 2, 0);
    fx_cycle(f, HOUR);
    /* The training job cannot be swapped (12 GiB > 8 GiB), so it is stopped; the idle
     * interactive one can be neither: the job waits, and host memory never goes negative. */
    assert_int_equal(f->jobs[victim].state, SCHED_JOB_RUNNING);
    assert_int_equal(f->jobs[idle_np].state, SCHED_JOB_RUNNING);
    assert_int_equal(f->jobs[j].state, SCHED_JOB_PENDING);
    assert_true(f->nodes[0].mem_free >= 0);
    /* With room for one swap, both go: one swapped, one stopped. */
    f->nodes[0].mem_free = 16 * 1024;
    fx_cycle(f, HOUR);
    assert_int_equal(f->jobs[j].state, SCHED_JOB_RUNNING);
    assert_int_equal(f->jobs[idle_np].state, SCHED_JOB_SWAPPED);
    assert_int_equal(f->jobs[victim].state, SCHED_JOB_PENDING);
    assert_true(f->nodes[0].mem_free >= 0);
}

static void test_swapped_job_resumes_where_its_memory_is(void **state)
{
    struct fx *f = *state;
    int j;

    fx_init(f, 2, 1);
    f->projects[0].deserved_milli = 2000;
    j = fx_job(f, 0, SCHED_PRIO_TRAIN, 1, 0);
    f->jobs[j].state = SCHED_JOB_SWAPPED;
    f->jobs[j].bind[0] = (struct sched_binding){.node = 1, .choice = {1, {0}}};
    f->nodes[1].mem_free -= 1024 + 2048; /* its host memory and its 2 GiB of GPU memory */
    fx_cycle(f, HOUR);
    assert_int_equal(f->jobs[j].state, SCHED_JOB_RUNNING);
    assert_int_equal(f->cycle.act[0].kind, SCHED_ACT_RESUME);
    assert_int_equal(f->cycle.act[0].bytes, 2 * GiB);
    assert_int_equal(f->jobs[j].bind[0].node, 1);
    assert_int_equal(f->nodes[1].mem_free, f->nodes[1].mem_mib - 1024);
}

/* Live, a swapped process stays bound to its GPUs: it resumes there, or waits. */
static void test_swapped_job_resumes_in_place_when_asked(void **state)
{
    struct fx *f = *state;
    int j, other;

    fx_init(f, 2, 2);
    f->cfg.swap_in_place = true;
    f->projects[0].deserved_milli = 4000;
    j = fx_job(f, 0, SCHED_PRIO_TRAIN, 1, 0);
    other = fx_job(f, 0, SCHED_PRIO_TRAIN, 1, 0);
    fx_run(f, other, 0, 1);
    f->jobs[j].state = SCHED_JOB_SWAPPED;
    f->jobs[j].bind[0] = (struct sched_binding){.node = 0, .choice = {1, {1}}};
    f->nodes[0].mem_free -= 1024 + 2048;
    /* GPU 0 of its node and all of node 1 are free, but its GPU is taken. */
    fx_cycle(f, HOUR);
    assert_int_equal(f->jobs[j].state, SCHED_JOB_SWAPPED);
    assert_int_equal(fx_count(f, SCHED_ACT_RESUME), 0);
    assert_non_null(strstr(f->cycle.reason[j], "swapped out"));
    /* Its GPU is free again: it resumes there. */
    f->jobs[other].state = SCHED_JOB_PENDING;
    f->jobs[other].submitted = 100;
    sched_node_unbind(&f->nodes[0], &f->cycle.pod[other], &f->jobs[other].bind[0].choice);
    f->jobs[other].bind[0] = (struct sched_binding){0};
    fx_cycle(f, HOUR);
    assert_int_equal(f->jobs[j].state, SCHED_JOB_RUNNING);
    assert_int_equal(f->jobs[j].bind[0].node, 0);
    assert_int_equal(f->jobs[j].bind[0].choice.gpu[0], 1);
    assert_int_equal(f->cycle.act[0].kind, SCHED_ACT_RESUME);
}

/* Each priority class may have its own minimum runtime. */
static void test_class_minimum_runtime(void **state)
{
    struct fx *f = *state;
    int low, high;

    fx_init(f, 1, 1);
    f->cfg.min_runtime = 0;
    f->cfg.class_min_runtime[SCHED_PRIO_TRAIN] = 600;
    f->cfg.class_min_set = 1u << SCHED_PRIO_TRAIN;
    f->projects[0].deserved_milli = 1000;
    low = fx_job(f, 0, SCHED_PRIO_TRAIN, 1, 0);
    fx_run(f, low, 0, 0);
    high = fx_job(f, 0, SCHED_PRIO_BUILD, 1, 0);
    fx_cycle(f, 300); /* the train job ran 300 s of its class's 600 */
    assert_int_equal(f->jobs[low].state, SCHED_JOB_RUNNING);
    assert_int_equal(f->jobs[high].state, SCHED_JOB_PENDING);
    fx_cycle(f, 601);
    assert_int_equal(f->jobs[low].state, SCHED_JOB_SWAPPED);
    assert_int_equal(f->jobs[high].state, SCHED_JOB_RUNNING);
}

/* ---- thin provisioning ------------------------------------------------------------------- */

/* A project (or class) that does not lend keeps its idle GPUs; one that does not borrow waits. */
static void test_lend_and_borrow_policy(void **state)
{
    struct fx *f = *state;
    int owner, b;

    fx_init(f, 1, 1);
    f->projects[0].deserved_milli = 1000;
    owner = fx_job(f, 0, SCHED_PRIO_INTERACTIVE, 1, 0);
    fx_run(f, owner, 0, 0);
    f->jobs[owner].idle_since = 0;
    f->jobs[owner].no_lend = true;
    b = fx_job(f, 1, SCHED_PRIO_TRAIN, 1, 0);
    fx_cycle(f, HOUR);
    assert_int_equal(f->jobs[b].state, SCHED_JOB_PENDING);
    f->jobs[owner].no_lend = false;
    f->jobs[b].no_borrow = true;
    fx_cycle(f, HOUR);
    assert_int_equal(f->jobs[b].state, SCHED_JOB_PENDING);
    f->jobs[b].no_borrow = false;
    fx_cycle(f, HOUR);
    assert_int_equal(f->jobs[b].state, SCHED_JOB_RUNNING);
    assert_true(f->jobs[b].borrowed);
}

static void test_borrower_runs_on_idle_gpu_and_yields_when_owner_needs_memory(void **state)
{
    struct fx *f = *state;
    int owner, b;

    fx_init(f, 1, 1);
    f->projects[0].deserved_milli = 1000;
    owner = fx_job(f, 0, SCHED_PRIO_INTERACTIVE, 1, 0);
    fx_run(f, owner, 0, 0);
    b = fx_job(f, 1, SCHED_PRIO_TRAIN, 1, 0);
    f->jobs[b].gpu_mem_used = 8 * GiB;
    fx_cycle(f, HOUR);
    assert_int_equal(f->jobs[b].state, SCHED_JOB_PENDING); /* the owner is active */
    f->jobs[owner].idle_since = HOUR - 60;
    fx_cycle(f, HOUR);
    assert_int_equal(f->jobs[b].state, SCHED_JOB_PENDING); /* not idle for the window yet */
    f->jobs[owner].idle_since = HOUR - 600;
    fx_cycle(f, HOUR);
    assert_int_equal(f->jobs[b].state, SCHED_JOB_RUNNING);
    assert_true(f->jobs[b].borrowed);
    assert_true(f->cycle.act[0].borrowed);
    /* The owner wakes and needs 12 GiB: the borrower's 8 GiB no longer fit, it is swapped out. */
    f->jobs[owner].idle_since = -1;
    f->jobs[owner].gpu_mem_used = 12 * GiB;
    fx_cycle(f, HOUR + 60);
    assert_int_equal(f->jobs[b].state, SCHED_JOB_SWAPPED);
    assert_int_equal(f->cycle.act[0].kind, SCHED_ACT_SWAP_OUT);
    assert_int_equal(f->cycle.act[0].bytes, 8 * GiB);
    assert_int_equal(f->jobs[owner].state, SCHED_JOB_RUNNING);
}

static void test_borrower_keeps_running_while_memory_fits(void **state)
{
    struct fx *f = *state;
    int owner, b;

    fx_init(f, 1, 1);
    f->projects[0].deserved_milli = 1000;
    owner = fx_job(f, 0, SCHED_PRIO_INTERACTIVE, 1, 0);
    fx_run(f, owner, 0, 0);
    f->jobs[owner].idle_since = 0;
    b = fx_job(f, 1, SCHED_PRIO_TRAIN, 1, 0);
    fx_cycle(f, HOUR);
    assert_true(f->jobs[b].borrowed);
    /* Awake with 4 GiB: the borrower only yields compute, which is the executor's part. */
    f->jobs[owner].idle_since = -1;
    f->jobs[owner].gpu_mem_used = 4 * GiB;
    fx_cycle(f, HOUR + 60);
    assert_int_equal(f->jobs[b].state, SCHED_JOB_RUNNING);
    assert_int_equal(f->cycle.nact, 0);
}

/* ---- consolidation ----------------------------------------------------------------------- */

static void test_consolidation_moves_a_share_to_free_whole_gpus(void **state)
{
    struct fx *f = *state;
    int a, b, j;

    fx_init(f, 2, 2);
    f->cfg.lend = false;
    f->cfg.consolidate = true;
    f->projects[0].deserved_milli = 4000;
    a = fx_job(f, 0, SCHED_PRIO_TRAIN, 1, 500);
    b = fx_job(f, 0, SCHED_PRIO_TRAIN, 1, 500);
    fx_run(f, a, 0, 0);
    fx_run(f, b, 1, 0);
    j = fx_job(f, 0, SCHED_PRIO_TRAIN, 2, 0); /* two whole GPUs: each node has one free */
    f->jobs[j].priority = SCHED_PRIO_TRAIN;
    f->cfg.preempt = false;
    fx_cycle(f, HOUR);
    assert_int_equal(f->jobs[j].state, SCHED_JOB_RUNNING);
    assert_int_equal(fx_count(f, SCHED_ACT_MOVE), 1);
    assert_int_equal(fx_count(f, SCHED_ACT_PREEMPT) + fx_count(f, SCHED_ACT_SWAP_OUT), 0);
    /* The two shares now sit on one GPU, the waiting job on the other node's two. */
    assert_int_equal(f->jobs[a].state, SCHED_JOB_RUNNING);
    assert_int_equal(f->jobs[b].state, SCHED_JOB_RUNNING);
    assert_int_equal(f->jobs[a].bind[0].node, f->jobs[b].bind[0].node);
    assert_int_not_equal(f->jobs[j].bind[0].node, f->jobs[a].bind[0].node);
    assert_int_equal(sched_node_free_milli(&f->nodes[0]) + sched_node_free_milli(&f->nodes[1]),
                     1000);
}

static void test_consolidation_moves_only_swappable_jobs(void **state)
{
    struct fx *f = *state;
    int a, b, j;

    fx_init(f, 2, 2);
    f->cfg.lend = false;
    f->cfg.consolidate = true;
    f->cfg.preempt = false;
    f->projects[0].deserved_milli = 4000;
    a = fx_job(f, 0, SCHED_PRIO_TRAIN, 1, 500);
    b = fx_job(f, 0, SCHED_PRIO_TRAIN, 1, 500);
    f->jobs[a].swappable = f->jobs[b].swappable = false;
    fx_run(f, a, 0, 0);
    fx_run(f, b, 1, 0);
    j = fx_job(f, 0, SCHED_PRIO_TRAIN, 2, 0);
    fx_cycle(f, HOUR);
    assert_int_equal(f->jobs[j].state, SCHED_JOB_PENDING);
    assert_int_equal(f->cycle.nact, 0);
    assert_non_null(strstr(f->cycle.reason[j], "no node has 2 whole GPUs free"));
}

/* ---- the snapshot ------------------------------------------------------------------------ */

static void test_same_snapshot_same_actions(void **state)
{
    struct fx *f = *state;
    static struct fx g;
    int j;

    fx_init(f, 2, 2);
    f->projects[0].deserved_milli = 2000;
    for (int k = 0; k < 4; k++)
        fx_run(f, fx_job(f, 1, SCHED_PRIO_TRAIN, 1, 0), k / 2, k % 2);
    j = fx_job(f, 0, SCHED_PRIO_TRAIN, 2, 0);
    memcpy(&g, f, sizeof(g));
    for (int i = 0; i < g.njobs; i++)
        g.jobs[i].bind = g.bind[i];
    g.cluster.nodes = g.nodes;
    memset(&g.cycle, 0, sizeof(g.cycle));
    g.typical.cls = g.cls;
    fx_cycle(f, HOUR);
    fx_cycle(&g, HOUR);
    assert_int_equal(f->cycle.nact, g.cycle.nact);
    for (int i = 0; i < f->cycle.nact; i++) {
        assert_int_equal(f->cycle.act[i].kind, g.cycle.act[i].kind);
        assert_int_equal(f->cycle.act[i].job, g.cycle.act[i].job);
    }
    assert_int_equal(f->jobs[j].state, SCHED_JOB_RUNNING);
    sched_cycle_fini(&g.cycle);
}

static void test_bad_snapshot_is_refused(void **state)
{
    struct fx *f = *state;

    fx_init(f, 1, 1);
    fx_job(f, 0, SCHED_PRIO_TRAIN, 1, 0);
    f->jobs[0].project = 9;
    assert_int_equal(sched_cycle_init(&f->cycle, &f->cfg, &f->cluster, &f->typical, 4, MAXJ), 0);
    assert_int_equal(sched_cycle_run(&f->cycle, f->projects, 4, f->jobs, 1, 0), -22);
    assert_int_equal(sched_cycle_run(&f->cycle, f->projects, 4, f->jobs, MAXJ + 1, 0), -28);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fair_share_deserved_then_weights),
        cmocka_unit_test(test_fair_share_limits_and_departments),
        T(test_gang_is_all_or_nothing),
        T(test_model_constraint_is_kept),
        T(test_fractions_share_a_gpu_or_round_up),
        T(test_limit_and_deserved_rules_keep_jobs_waiting),
        T(test_project_furthest_below_fair_share_goes_first),
        T(test_project_below_deserved_does_not_wait),
        T(test_reclaim_takes_fewest_victims),
        T(test_non_preemptible_work_is_never_stopped),
        T(test_priority_preempts_inside_a_project),
        T(test_swap_never_overcommits_host_memory),
        T(test_swapped_job_resumes_where_its_memory_is),
        T(test_swapped_job_resumes_in_place_when_asked),
        T(test_class_minimum_runtime),
        T(test_lend_and_borrow_policy),
        T(test_borrower_runs_on_idle_gpu_and_yields_when_owner_needs_memory),
        T(test_borrower_keeps_running_while_memory_fits),
        T(test_consolidation_moves_a_share_to_free_whole_gpus),
        T(test_consolidation_moves_only_swappable_jobs),
        T(test_same_snapshot_same_actions),
        T(test_bad_snapshot_is_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
