/*
 * The loop's queue: the specs of the live jobs, parsed once, in an array indexed by an
 * open-addressing table of job ids.
 */
#include "server/queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

/* What the loop uses of a spec; name and project are the row's. */
struct entry {
    int64_t id;
    unsigned seen; /* the read that last found it live */
    bool ok;       /* false: its spec did not parse (the job is left out) */
    struct sched_request req;
    int64_t cpu_milli, mem_mib, walltime_s;
    int replicas, retries;
    enum sched_priority priority;
    bool preemptible, swappable;
};

struct queue {
    struct entry *e;
    int n, cap;
    int *slot; /* [hash]: index in e + 1, 0 when empty */
    size_t nslots;
    unsigned gen;
};

struct queue *queue_new(void)
{
    return xcalloc(1, sizeof(struct queue));
}

void queue_free(struct queue *q)
{
    if (q == NULL)
        return;
    free(q->e);
    free(q->slot);
    free(q);
}

int queue_size(const struct queue *q)
{
    return q->n;
}

static size_t hash_id(int64_t id, size_t nslots)
{
    return (size_t)(((uint64_t)id * 0x9E3779B97F4A7C15ull) >> 17) & (nslots - 1);
}

static struct entry *find(const struct queue *q, int64_t id)
{
    if (q->nslots == 0)
        return NULL;
    for (size_t h = hash_id(id, q->nslots);; h = (h + 1) & (q->nslots - 1)) {
        int k = q->slot[h];

        if (k == 0)
            return NULL;
        if (q->e[k - 1].id == id)
            return &q->e[k - 1];
    }
}

/* The table again, for n entries at most half full. */
static void reindex(struct queue *q)
{
    size_t want = 64;

    while (want < (size_t)q->cap * 2)
        want *= 2;
    if (want != q->nslots) {
        free(q->slot);
        q->slot = xcalloc(want, sizeof(*q->slot));
        q->nslots = want;
    } else {
        memset(q->slot, 0, q->nslots * sizeof(*q->slot));
    }
    for (int i = 0; i < q->n; i++) {
        size_t h = hash_id(q->e[i].id, q->nslots);

        while (q->slot[h] != 0)
            h = (h + 1) & (q->nslots - 1);
        q->slot[h] = i + 1;
    }
}

static struct entry *add(struct queue *q, const struct store_job *j)
{
    struct jobspec spec;
    struct api_error err;
    struct entry *e;
    size_t h;

    if (q->n == q->cap) {
        q->cap = q->cap ? 2 * q->cap : 1024;
        q->e = xreallocarray(q->e, (size_t)q->cap, sizeof(*q->e));
        reindex(q);
    }
    e = &q->e[q->n];
    *e = (struct entry){.id = j->id, .seen = q->gen};
    if (j->spec != NULL && jobspec_parse(j->spec, &spec, &err) == 0)
        *e = (struct entry){.id = j->id,
                            .seen = q->gen,
                            .ok = true,
                            .req = spec.req,
                            .cpu_milli = spec.cpu_milli,
                            .mem_mib = spec.mem_mib,
                            .walltime_s = spec.walltime_s,
                            .replicas = spec.replicas,
                            .retries = spec.retries,
                            .priority = spec.priority,
                            .preemptible = spec.preemptible,
                            .swappable = spec.swappable};
    for (h = hash_id(j->id, q->nslots); q->slot[h] != 0; h = (h + 1) & (q->nslots - 1))
        ;
    q->slot[h] = ++q->n;
    return e;
}

/* Forgets the jobs the last read did not find live. */
static void sweep(struct queue *q)
{
    int kept = 0;

    for (int i = 0; i < q->n; i++)
        if (q->e[i].seen == q->gen)
            q->e[kept++] = q->e[i];
    if (kept == q->n)
        return;
    q->n = kept;
    reindex(q);
}

struct reading {
    struct queue *q;
    int (*fn)(const struct store_job *, void *);
    void *arg;
    int64_t first_new; /* the lowest id of a job the queue did not know; 0: none */
};

/* The light read, up to the first job the queue does not know. */
static int known(const struct store_job *j, void *arg)
{
    struct reading *r = arg;
    struct entry *e = find(r->q, j->id);

    if (e == NULL) {
        r->first_new = j->id;
        return 1;
    }
    e->seen = r->q->gen;
    return r->fn(j, r->arg);
}

/* From the first new job on, rows with their specs: the new ones are parsed and kept. */
static int from_first_new(const struct store_job *j, void *arg)
{
    struct reading *r = arg;
    struct entry *e = find(r->q, j->id);

    if (e == NULL)
        add(r->q, j);
    else
        e->seen = r->q->gen;
    return r->fn(j, r->arg);
}

int queue_read(struct queue *q, struct store *st, unsigned states,
               int (*fn)(const struct store_job *, void *), void *arg)
{
    struct store_job_filter f = {.state = -1, .states = states, .light = true};
    struct reading r = {q, fn, arg, 0};
    int rc;

    q->gen++;
    if ((rc = store_jobs(st, &f, known, &r)) != 0)
        return rc;
    /* New jobs mostly have the highest ids: the rest of the read, specs and all, from the first
     * of them (after a restart, every job). */
    if (r.first_new > 0) {
        f.light = false;
        f.after_id = r.first_new - 1;
        if ((rc = store_jobs(st, &f, from_first_new, &r)) != 0)
            return rc;
    }
    sweep(q);
    return 0;
}

int queue_spec(struct queue *q, const struct store_job *j, struct jobspec *out)
{
    const struct entry *e = q != NULL ? find(q, j->id) : NULL;
    struct api_error err;

    if (e == NULL)
        return q == NULL && j->spec != NULL ? jobspec_parse(j->spec, out, &err) : -1;
    if (!e->ok)
        return -1;
    memset(out, 0, sizeof(*out));
    out->req = e->req;
    out->cpu_milli = e->cpu_milli;
    out->mem_mib = e->mem_mib;
    out->walltime_s = e->walltime_s;
    out->replicas = e->replicas;
    out->retries = e->retries;
    out->priority = e->priority;
    out->preemptible = e->preemptible;
    out->swappable = e->swappable;
    return 0;
}
