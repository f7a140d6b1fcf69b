/*
 * libgpool-cuda: kernel pacing.  A job alone on its GPU, or beside idle neighbours, launches
 * freely up to its gpu_limit: that is lending, and costs a clock read and a few loads per launch.
 * When other jobs want the GPU too, the jobs take turns: the turn goes to the waiting job with the
 * least virtual time (its measured kernel time divided by its share), so that over time each gets
 * the GPU in proportion to its share, and a turn ends after GPR_TURN_NS or as soon as its holder
 * stops launching.  Kernel time is measured with events around each paced launch, at most
 * GPC_RING in flight; since only the holder's kernels run during a turn, what the events see is
 * its own time.  Every wait is bounded, so a process that dies holding a turn stops nobody.
 *
 * A borrower (a job placed on capacity that idle jobs lend) takes turns only with the other
 * borrowers, and stops launching as soon as any other job of the GPU is active: every launch of a
 * borrower looks, so the first launch of a waking lender stops it at its next launch.  Its
 * kernels in flight, at most GPC_RING since a borrower is always paced, drain; it waits, outside
 * the swap gate, until every lender has been idle for GPR_ACTIVE_NS, and at least that long after
 * its drain.  Lenders never wait for borrowers: they neither count them as contenders nor hand
 * them turns.
 */
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cuda/lib.h"

#define lib gpc__lib

#define CHECK_NS 1000000ll     /* how often a process looks at the other jobs */
#define IDLE_GAP_NS 2000000ll  /* a holder that launched nothing for this long gives way */
#define WANT_NS 3000000ll      /* a waiter's mark outlives its longest sleep */
#define WAIT_MAX_NS 2000000ll  /* the longest a waiter sleeps before looking again */
#define BURST_NS 5000000ll     /* the gpu_limit bucket holds this much kernel time */
#define YIELD_SLEEP_NS 5000000ll /* the longest a yielding borrower sleeps before looking again */

void gpc__futex_wait(_Atomic uint32_t *w, uint32_t seen, int64_t ns)
{
    struct timespec ts = {ns / 1000000000ll, ns % 1000000000ll};

    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, seen, &ts, NULL, 0);
}

void gpc__futex_wake(_Atomic uint32_t *w)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {ns / 1000000000ll, ns % 1000000000ll};

    nanosleep(&ts, NULL);
}

/* Until then, no GPU of this process needs pacing: launches only count themselves.  Read with a
 * coarse clock, which never leaves user space (a precise one may, in a virtual machine). */
static _Atomic int64_t fast_until;
static _Atomic uint64_t fast_launches;

static int64_t coarse_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

void gpc__pace_reset(struct gpc_gpu *g)
{
    atomic_store(&fast_until, 0);
    g->count = g->head = g->nspare = 0;
    g->next_check = g->last_mark = 0;
    g->pending_launches = 0;
    g->tokens_ns = g->refill_at = 0;
    g->looked_at = 0;
}

/* Publishes, at most every CHECK_NS, that the job is launching, and its launch counts. */
static void publish(struct gpc_gpu *g, struct gpr_job *j, int64_t now)
{
    if (now - g->last_mark < CHECK_NS)
        return;
    if (atomic_load(&j->active_until) < now) {
        /* The first launch after a pause: the owner wakes. */
        atomic_store(&j->woke_at, now);
        atomic_store(&j->idle_since, 0);
    }
    atomic_store(&j->active_until, now + GPR_ACTIVE_NS);
    atomic_store(&g->slot->last_launch, now);
    atomic_fetch_add(&g->slot->launches, g->pending_launches);
    atomic_fetch_add(&j->launches, g->pending_launches);
    g->pending_launches = 0;
    g->last_mark = now;
}

static bool is_borrower(struct gpr_region *r, int job)
{
    return atomic_load_explicit(&r->jobs[job].borrower, memory_order_relaxed) != 0;
}

/* Until when the lenders of the GPU (its jobs that are not borrowers) are active, the latest
 * active_until of any: <= now when none is.  woke: the latest moment one of them woke. */
static int64_t lenders_until(struct gpr_region *r, int me, int64_t *woke)
{
    int64_t until = 0, w = 0;

    for (int k = 0; k < GPR_JOBS; k++) {
        struct gpr_job *j = &r->jobs[k];
        int64_t a;

        if (k == me || !atomic_load_explicit(&j->used, memory_order_relaxed) || is_borrower(r, k))
            continue;
        if ((a = atomic_load(&j->active_until)) > until)
            until = a;
        if (woke != NULL && atomic_load(&j->woke_at) > w)
            w = atomic_load(&j->woke_at);
    }
    if (woke != NULL)
        *woke = w;
    return until;
}

/* Must a borrower stop launching on g?  While a lender is active, and when a lender launched
 * since the borrower last looked, even if that was more than GPR_ACTIVE_NS ago: a lender whose
 * launch or kernel waited behind the borrower's may look idle by now. */
static bool must_yield(struct gpc_gpu *g, int64_t now)
{
    int64_t until = lenders_until(g->r, g->job, NULL);

    return until > now || until - GPR_ACTIVE_NS > g->looked_at;
}

/* At most every CHECK_NS: does another job want this GPU, and what is this job's limit?  Jobs
 * contend only with their own kind: lenders with lenders, borrowers with borrowers. */
static void look_around(struct gpc_gpu *g, int64_t now)
{
    bool contended = false, mine;

    if (now < g->next_check)
        return;
    g->next_check = now + CHECK_NS;
    mine = is_borrower(g->r, g->job);
    for (int k = 0; k < GPR_JOBS && !contended; k++)
        contended = k != g->job && atomic_load(&g->r->jobs[k].used) &&
                    is_borrower(g->r, k) == mine && atomic_load(&g->r->jobs[k].active_until) > now;
    g->contended = contended;
    g->borrower = mine;
    g->limit_milli = atomic_load(&g->r->jobs[g->job].limit_milli);
    if (g->limit_milli == 0 || g->limit_milli > 1000)
        g->limit_milli = 1000;
}

static void charge_busy(struct gpc_gpu *g, int64_t ns)
{
    struct gpr_job *j = &g->r->jobs[g->job];
    unsigned share = atomic_load(&j->share_milli);

    if (ns <= 0)
        return;
    atomic_fetch_add(&j->busy_ns, (uint64_t)ns);
    atomic_fetch_add(&j->vtime_ns, (uint64_t)ns * 1000 / (share == 0 ? 1 : share));
    atomic_fetch_add(&g->slot->busy_ns, (uint64_t)ns);
    g->tokens_ns -= ns;
    g->est_kernel_ns = g->est_kernel_ns == 0 ? ns : (3 * g->est_kernel_ns + ns) / 4;
}

static void put_event(struct gpc_gpu *g, CUevent e)
{
    if (g->nspare < 2 * GPC_RING)
        g->spare[g->nspare++] = e;
    else if (lib.real.event_destroy != NULL)
        lib.real.event_destroy(e);
}

/* Charges the paced kernels that are done; with wait, waits for the oldest first.  g->mu held. */
static void harvest(struct gpc_gpu *g, bool wait)
{
    while (g->count > 0) {
        struct gpc_flight *f = &g->ring[g->head];
        float ms = 0;

        if (wait)
            lib.real.event_sync(f->end);
        else if (lib.real.event_query(f->end) != CUDA_SUCCESS)
            break;
        wait = false;
        if (lib.real.event_elapsed(&ms, f->start, f->end) == CUDA_SUCCESS)
            charge_busy(g, (int64_t)((double)ms * 1e6));
        put_event(g, f->start);
        put_event(g, f->end);
        g->head = (g->head + 1) % GPC_RING;
        g->count--;
    }
}

static bool take_event(struct gpc_gpu *g, CUevent *e)
{
    if (g->nspare > 0) {
        *e = g->spare[--g->nspare];
        return true;
    }
    return lib.real.event_create(e, CU_EVENT_DEFAULT) == CUDA_SUCCESS;
}

static bool holds_turn(struct gpr_region *r, int job, int64_t now)
{
    return atomic_load(&r->turn_job) == job && now < atomic_load(&r->turn_end);
}

/* Has the holder h stopped using its turn: gone, or nothing launched and nothing queued for
 * IDLE_GAP_NS?  The region is locked. */
static bool holder_idle(struct gpr_region *r, int h, int64_t now)
{
    int64_t start = atomic_load(&r->turn_end) - GPR_TURN_NS, drain;

    if (h < 0 || h >= GPR_JOBS || !atomic_load(&r->jobs[h].used))
        return true;
    drain = atomic_load(&r->jobs[h].drain_until);
    return now > (drain > start ? drain : start) + IDLE_GAP_NS;
}

/* May the turn change hands?  A lender never waits for a borrower's turn.  The region is
 * locked. */
static bool turn_free(struct gpr_region *r, int me, int h, int64_t now)
{
    return now >= atomic_load(&r->turn_end) || holder_idle(r, h, now) ||
           (h >= 0 && h < GPR_JOBS && is_borrower(r, h) && !is_borrower(r, me));
}

/* Of the jobs of its own kind that wait, and the holder while it still uses the GPU, the one
 * with the least virtual time; one that comes back from idling starts at most one turn behind,
 * so that idling banks no credit.  The region is locked. */
static int pick(struct gpr_region *r, int me, int h, int64_t now)
{
    uint64_t vclock = atomic_load(&r->vclock_ns), floor, best_v = 0;
    bool mine = is_borrower(r, me);
    int best = -1;

    floor = vclock > GPR_TURN_NS ? vclock - GPR_TURN_NS : 0;
    for (int k = 0; k < GPR_JOBS; k++) {
        struct gpr_job *j = &r->jobs[k];
        uint64_t v;

        if (!atomic_load(&j->used) || is_borrower(r, k) != mine ||
            (k != me && atomic_load(&j->want_until) <= now && (k != h || holder_idle(r, h, now))))
            continue;
        v = atomic_load(&j->vtime_ns);
        if (v < floor)
            atomic_store(&j->vtime_ns, v = floor);
        if (best < 0 || v < best_v)
            best = k, best_v = v;
    }
    return best;
}

static void give_turn(struct gpr_region *r, int job, int64_t now)
{
    uint64_t v = atomic_load(&r->jobs[job].vtime_ns);

    atomic_store(&r->turn_job, job);
    atomic_store(&r->turn_end, now + GPR_TURN_NS);
    if (v > atomic_load(&r->vclock_ns))
        atomic_store(&r->vclock_ns, v);
    atomic_fetch_add(&r->turn_seq, 1);
}

/* Waits for the job's turn: true when it holds it, false when it is a borrower and a lender has
 * become active meanwhile. */
static bool wait_turn(struct gpc_gpu *g)
{
    struct gpr_region *r = g->r;
    struct gpr_job *j = &r->jobs[g->job];

    for (;;) {
        int64_t now = gpr_now();
        uint32_t seq = atomic_load(&r->turn_seq);
        int h;

        if (holds_turn(r, g->job, now))
            return true;
        if (g->borrower && lenders_until(r, g->job, NULL) > now)
            return false;
        /* A job that waits for its turn still wants the GPU: the holder keeps taking turns. */
        atomic_store(&j->want_until, now + WANT_NS);
        atomic_store(&j->active_until, now + GPR_ACTIVE_NS);
        if (atomic_load(&r->turn_job) == g->job) {
            /* Ours ran out: let our kernels finish before another job's start. */
            pthread_mutex_lock(&g->mu);
            harvest(g, true);
            harvest(g, false);
            pthread_mutex_unlock(&g->mu);
        }
        gpr_lock(r);
        h = atomic_load(&r->turn_job);
        if (turn_free(r, g->job, h, now)) {
            int best = pick(r, g->job, h, now);

            give_turn(r, best, now);
            gpr_unlock(r);
            gpc__futex_wake(&r->turn_seq);
            if (best == g->job)
                return true;
            continue;
        }
        gpr_unlock(r);
        int64_t left = atomic_load(&r->turn_end) - now;

        gpc__futex_wait(&r->turn_seq, seq,
                   left < 100000 ? 100000 : left > WAIT_MAX_NS ? WAIT_MAX_NS : left);
    }
}

/* Keeps the job under its gpu_limit: kernel time may not run ahead of limit x wall time. */
static void wait_limit(struct gpc_gpu *g)
{
    int64_t now = gpr_now();

    if (g->refill_at == 0)
        g->refill_at = now, g->tokens_ns = BURST_NS;
    g->tokens_ns += (now - g->refill_at) * (int64_t)g->limit_milli / 1000;
    g->refill_at = now;
    if (g->tokens_ns > BURST_NS)
        g->tokens_ns = BURST_NS;
    if (g->tokens_ns < 0) {
        int64_t ns = -g->tokens_ns * 1000 / (int64_t)g->limit_milli;

        sleep_ns(ns);
        g->tokens_ns = 0;
        g->refill_at = gpr_now();
    }
}

/* Publishes activity and looks around on every GPU the process uses; true when none of them
 * needs pacing. */
static bool survey(int64_t now)
{
    uint64_t launches = atomic_exchange(&fast_launches, 0);
    bool calm = true;

    for (int d = 0; d < GPC_MAX_GPUS; d++) {
        struct gpc_gpu *g = &lib.gpus[d];

        if (!__atomic_load_n(&g->probed, __ATOMIC_ACQUIRE) || g->r == NULL || g->job < 0)
            continue;
        pthread_mutex_lock(&g->mu);
        g->pending_launches += launches;
        launches = 0;
        publish(g, &g->r->jobs[g->job], now);
        look_around(g, now);
        harvest(g, false);
        calm &= !g->contended && g->limit_milli >= 1000 && !g->borrower;
        pthread_mutex_unlock(&g->mu);
    }
    return calm;
}

bool gpc__pace_before(CUstream s, struct gpc_ticket *t)
{
    struct gpc_gpu *g;
    int64_t now;
    bool paced;

    t->g = NULL;
    if (!lib.active)
        return true;
    if (coarse_now() < atomic_load_explicit(&fast_until, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&fast_launches, 1, memory_order_relaxed);
        return true;
    }
    if ((g = gpc__current()) == NULL || g->job < 0)
        return true;
    now = gpr_now();
    if (survey(now)) {
        atomic_fetch_add(&fast_launches, 1);
        atomic_store(&fast_until, coarse_now() + CHECK_NS);
        return true;
    }
    /* A borrower looks at every launch whether a lender is active. */
    if (g->borrower) {
        if (g->looked_at == 0)
            g->looked_at = now;
        if (must_yield(g, now)) {
            t->g = g;
            return false;
        }
        g->looked_at = now;
    }
    pthread_mutex_lock(&g->mu);
    paced = g->contended || g->limit_milli < 1000 || g->borrower;
    if (!paced) {
        pthread_mutex_unlock(&g->mu);
        atomic_fetch_add(&fast_launches, 1);
        return true;
    }
    harvest(g, false);
    while (g->count == GPC_RING)
        harvest(g, true);
    if (g->limit_milli < 1000)
        wait_limit(g);
    pthread_mutex_unlock(&g->mu);
    if (g->contended && !wait_turn(g)) {
        t->g = g;
        return false;
    }
    atomic_fetch_add(&fast_launches, 1);
    pthread_mutex_lock(&g->mu);
    if (g->count < GPC_RING && take_event(g, &t->start)) {
        if (lib.real.event_record(t->start, s) == CUDA_SUCCESS) {
            t->g = g;
            t->stream = s;
        } else {
            put_event(g, t->start);
        }
    }
    pthread_mutex_unlock(&g->mu);
    return true;
}

void gpc__pace_yield(struct gpc_ticket *t)
{
    struct gpc_gpu *g = t->g;
    struct gpr_region *r;
    struct gpr_job *j;
    int64_t now, until, woke, y, done;
    bool first = false, drained = false;

    if (g == NULL)
        return;
    r = g->r;
    j = &r->jobs[g->job];
    now = gpr_now();
    if (!must_yield(g, now))
        return;
    /* The first of the job's processes to stop after a lender woke says when. */
    lenders_until(r, g->job, &woke);
    y = atomic_load(&j->yielded_at);
    if (y <= woke && atomic_compare_exchange_strong(&j->yielded_at, &y, now)) {
        atomic_fetch_add(&j->yields, 1);
        first = true;
    }
    /* The kernels it has in flight run to their end; then its compute is off the GPU. */
    pthread_mutex_lock(&g->mu);
    while (g->count > 0) {
        harvest(g, true);
        drained = true;
    }
    pthread_mutex_unlock(&g->mu);
    done = gpr_now();
    if (first || drained) {
        int64_t d = atomic_load(&j->drained_at);

        while (d < done && !atomic_compare_exchange_weak(&j->drained_at, &d, done))
            ;
    }
    /* Until every lender has been idle for GPR_ACTIVE_NS, counted at the earliest from the drain
     * (what a lender queued behind it runs then), in bounded sleeps: a lender that dies simply
     * stops being active. */
    for (;;) {
        int64_t resume;

        now = gpr_now();
        until = lenders_until(r, g->job, NULL);
        resume = until > done + GPR_ACTIVE_NS ? until : done + GPR_ACTIVE_NS;
        if (!atomic_load(&j->used) || !is_borrower(r, g->job) || now >= resume)
            break;
        sleep_ns(resume - now < YIELD_SLEEP_NS ? resume - now : YIELD_SLEEP_NS);
    }
    /* Looks around afresh at the next launch. */
    pthread_mutex_lock(&g->mu);
    g->next_check = 0;
    g->looked_at = now;
    pthread_mutex_unlock(&g->mu);
}

void gpc__pace_after(struct gpc_ticket *t, CUresult rc)
{
    struct gpc_gpu *g = t->g;
    struct gpr_job *j;
    CUevent end;
    int64_t now, drain;

    if (g == NULL)
        return;
    j = &g->r->jobs[g->job];
    pthread_mutex_lock(&g->mu);
    if (rc != CUDA_SUCCESS || g->count == GPC_RING || !take_event(g, &end) ||
        lib.real.event_record(end, t->stream) != CUDA_SUCCESS) {
        put_event(g, t->start);
        pthread_mutex_unlock(&g->mu);
        return;
    }
    g->ring[(g->head + g->count) % GPC_RING] = (struct gpc_flight){t->start, end};
    g->count++;
    now = gpr_now();
    drain = atomic_load(&j->drain_until);
    atomic_store(&j->drain_until, (drain > now ? drain : now) + g->est_kernel_ns);
    pthread_mutex_unlock(&g->mu);
}
