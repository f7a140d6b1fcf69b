/*
 * One scheduling cycle over a large snapshot: 10,000 GPUs (1,250 nodes of 8), 90% of them held
 * by running jobs, and 100,000 pending jobs in 8 projects (whole GPUs, fractions, gangs). Prints
 * the time of each cycle and what it decided.  Usage: gpool-bench-cycle [PENDING] [NODES] [RUNS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sched/cycle.h"
#include "sched/rng.h"

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void make_job(struct sched_job *j, int i, struct sched_rng *rng, struct sched_binding *b)
{
    static const int milli[] = {250, 500, 1000, 1000, 1000};
    int kind = (int)sched_rng_below(rng, 10);

    *j = (struct sched_job){.id = i, .project = (int)sched_rng_below(rng, 8), .cpu_milli = 4000,
                            .mem_mib = 16384, .replicas = 1, .submitted = i, .bind = b,
                            .idle_since = -1, .swappable = true, .gpu_mem_used = 8ull << 30};
    j->priority = (enum sched_priority)sched_rng_below(rng, 4);
    j->preemptible = sched_priority_preemptible_default(j->priority);
    if (kind < 5)
        j->req = (struct sched_request){.kind = SCHED_REQ_FRACTION,
                                        .milli = milli[sched_rng_below(rng, 2)]};
    else
        j->req = (struct sched_request){.kind = SCHED_REQ_WHOLE,
                                        .gpus = 1 << sched_rng_below(rng, 3)};
    if (kind == 9)
        j->replicas = 2;
}

int main(int argc, char **argv)
{
    int npending = argc > 1 ? atoi(argv[1]) : 100000, nnodes = argc > 2 ? atoi(argv[2]) : 1250;
    int runs = argc > 3 ? atoi(argv[3]) : 5, njobs = 0, cap = npending + nnodes * 8 * 2;
    struct sched_node *nodes = calloc((size_t)nnodes, sizeof(*nodes));
    struct sched_cluster cl = {.nodes = nodes, .nnodes = nnodes, .models = {"H100"}, .nmodels = 1};
    struct sched_job *jobs = calloc((size_t)cap, sizeof(*jobs));
    struct sched_binding *binds = calloc((size_t)cap * 2, sizeof(*binds));
    struct sched_project projects[8];
    struct sched_typical_class cls = {.pod = {.cpu_milli = 4000, .num_gpu = 1, .gpu_milli = 1000},
                                      .weight = 1};
    struct sched_typical typical = {&cls, 1};
    struct sched_cycle_cfg cfg = {.placement = SCHED_POLICY_GPOOL, .fractions = true,
                                  .quotas = true, .reclaim = true, .preempt = true, .swap = true,
                                  .lend = true, .consolidate = true, .min_runtime = 600,
                                  .idle_window = 300};
    struct sched_rng rng;
    struct sched_cycle c;

    sched_rng_seed(&rng, 7);
    for (int p = 0; p < 8; p++)
        projects[p] = (struct sched_project){"p", -1, (int64_t)nnodes * 8 * 1000 / 8, -1, 1};
    for (int i = 0; i < nnodes; i++) {
        nodes[i] = (struct sched_node){.name = "n", .model = 0, .cpu_milli = 224000,
                                       .cpu_free = 224000, .mem_mib = 2 << 20,
                                       .mem_free = 2 << 20, .ngpu = 8};
        for (int g = 0; g < 8; g++)
            nodes[i].gpu[g] = (struct sched_gpu){1000, 80ull << 30, 80ull << 30};
    }
    /* Fill 90% of the GPUs with running single-GPU jobs. */
    for (int i = 0; i < nnodes; i++)
        for (int g = 0; g < 8; g++) {
            if ((i * 8 + g) % 10 == 9)
                continue;
            struct sched_job *j = &jobs[njobs];
            struct sched_pod pod;

            make_job(j, njobs, &rng, &binds[2 * njobs]);
            j->replicas = 1;
            j->req = (struct sched_request){.kind = SCHED_REQ_WHOLE, .gpus = 1};
            j->state = SCHED_JOB_RUNNING;
            j->bind[0] = (struct sched_binding){.node = i, .choice = {1, {(uint8_t)g}}};
            sched_job_pod(j, &pod);
            sched_node_bind(&nodes[i], &pod, &j->bind[0].choice);
            njobs++;
        }
    int running = njobs;
    for (int k = 0; k < npending; k++, njobs++)
        make_job(&jobs[njobs], njobs, &rng, &binds[2 * njobs]);
    if (sched_cycle_init(&c, &cfg, &cl, &typical, 8, njobs) != 0)
        return 1;
    printf("cycle: %d GPUs on %d nodes, %d running jobs, %d pending jobs, 8 projects\n",
           nnodes * 8, nnodes, running, npending);
    for (int r = 0; r < runs; r++) {
        /* Each run starts from the same snapshot: undo what the previous one decided. */
        struct sched_job *copy = malloc((size_t)njobs * sizeof(*copy));
        struct sched_node *ncopy = malloc((size_t)nnodes * sizeof(*ncopy));
        struct sched_binding *bcopy = malloc((size_t)cap * 2 * sizeof(*bcopy));
        double t0;

        memcpy(copy, jobs, (size_t)njobs * sizeof(*copy));
        memcpy(ncopy, nodes, (size_t)nnodes * sizeof(*ncopy));
        memcpy(bcopy, binds, (size_t)cap * 2 * sizeof(*bcopy));
        t0 = now();
        if (sched_cycle_run(&c, projects, 8, jobs, njobs, 0) != 0)
            return 1;
        printf("run %d: %.1f ms, %d actions\n", r + 1, (now() - t0) * 1000, c.nact);
        memcpy(jobs, copy, (size_t)njobs * sizeof(*copy));
        memcpy(nodes, ncopy, (size_t)nnodes * sizeof(*ncopy));
        memcpy(binds, bcopy, (size_t)cap * 2 * sizeof(*bcopy));
        free(copy);
        free(ncopy);
        free(bcopy);
    }
    sched_cycle_fini(&c);
    free(nodes);
    free(jobs);
    free(binds);
    return 0;
}
