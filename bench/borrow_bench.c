/*
 * Borrowing, measured from the owner's side through libgpool-cuda's region: how soon a borrower's
 * compute is off the GPU after the owner wakes, and how long the owner's allocation waits while
 * the borrowers that hold its memory are swapped out.  Run it preloaded as the owner's job
 * (GPOOL_JOB_ID, GPOOL_REGION_DIR, LD_PRELOAD=libgpool-cuda.so), beside a borrower job; works on
 * simgpu and on a real GPU (bench/borrow.sh drives it).
 *
 *   gpool-bench-borrow wake BORROWER_JOB WAKES [IDLE_MS] [BURST_MS] [KERNEL_MS]
 *       WAKES times: idles IDLE_MS (default 300), then launches kernels of KERNEL_MS (default 2)
 *       for BURST_MS (default 100), and reads from the region when it woke (its first launch),
 *       when the borrower stopped launching (yielded_at) and when its kernels in flight were
 *       done (drained_at).  Prints each delay's p50, p99 and maximum.
 *   gpool-bench-borrow alloc BORROWER_JOB HELD_MIB LINK_GBPS
 *       allocates what is free plus half of HELD_MIB, which a borrower holds: the time of that
 *       one call, the borrowers' swap out as the region tells it, and HELD_MIB over the link.
 *   gpool-bench-borrow hold MIB
 *       allocates MIB, writes it, says "holding" and waits to be killed (a borrower's memory).
 *   gpool-bench-borrow uuid | link MIB
 *       device 0's UUID; the host link's speed, device to host, pinned (GB/s).
 */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "burn/burn.h"
#include "cuda/region.h"

static struct burn_cuda cu;
static CUdevice dev;

static int fail(const char *what, CUresult rc)
{
    fprintf(stderr, "gpool-bench-borrow: %s: %s\n", what, burn_cuda_error(&cu, rc));
    return 3;
}

static int setup(void)
{
    char err[256];
    CUcontext ctx;
    CUresult rc;

    if (burn_cuda_load(&cu, err, sizeof(err)) != 0) {
        fprintf(stderr, "gpool-bench-borrow: %s\n", err);
        return 3;
    }
    if ((rc = cu.Init(0)) != CUDA_SUCCESS || (rc = cu.DeviceGet(&dev, 0)) != CUDA_SUCCESS ||
        (rc = cu.DevicePrimaryCtxRetain(&ctx, dev)) != CUDA_SUCCESS ||
        (rc = cu.CtxSetCurrent(ctx)) != CUDA_SUCCESS)
        return fail("device 0", rc);
    return 0;
}

/* Device 0's UUID, as NVML and the regions name it; -1 when the driver does not say. */
static int device_uuid(char *out, size_t len)
{
    CUresult (*get_uuid)(CUuuid *, CUdevice) =
        (CUresult(*)(CUuuid *, CUdevice))dlsym(cu.lib, "cuDeviceGetUuid_v2");
    const unsigned char *b;
    CUuuid u;

    if (get_uuid == NULL)
        get_uuid = (CUresult(*)(CUuuid *, CUdevice))dlsym(cu.lib, "cuDeviceGetUuid");
    if (get_uuid == NULL || get_uuid(&u, dev) != CUDA_SUCCESS)
        return -1;
    b = (const unsigned char *)u.bytes;
    snprintf(out, len, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
    return 0;
}

/* The region of device 0, found by its UUID in $GPOOL_REGION_DIR. */
static struct gpr_region *region(void)
{
    const char *dir = getenv("GPOOL_REGION_DIR");
    char uuid[64], path[4096], err[512];
    struct gpr_region *r;

    if (dir == NULL || device_uuid(uuid, sizeof(uuid)) != 0) {
        fprintf(stderr, "gpool-bench-borrow: no region (GPOOL_REGION_DIR) or no GPU UUID\n");
        return NULL;
    }
    if (gpr_path(path, sizeof(path), dir, uuid) != 0 ||
        (r = gpr_open(path, err, sizeof(err))) == NULL) {
        fprintf(stderr, "gpool-bench-borrow: %s\n", err);
        return NULL;
    }
    return r;
}

static void sleep_ms(double ms)
{
    struct timespec ts = {(time_t)(ms / 1000),
                          (long)((ms - (double)(time_t)(ms / 1000) * 1000) * 1e6)};

    nanosleep(&ts, NULL);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static void summary(const char *what, double *v, int n)
{
    if (n == 0) {
        printf("%-44s no samples\n", what);
        return;
    }
    qsort(v, (size_t)n, sizeof(*v), cmp);
    printf("%-44s p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms  (%d wakes)\n", what, v[n / 2],
           v[(n * 99 + 99) / 100 - 1], v[n - 1], n);
}

static int wake(const char *borrower, int wakes, double idle_ms, double burst_ms, double kernel_ms)
{
    struct gpr_region *r = region();
    const char *me = getenv("GPOOL_JOB_ID");
    double *yield = calloc((size_t)wakes, sizeof(double)),
           *off = calloc((size_t)wakes, sizeof(double)),
           *first = calloc((size_t)wakes, sizeof(double));
    unsigned long long spin = (unsigned long long)(kernel_ms * 1e6);
    uint64_t nwords = 1 << 18;
    uint32_t iter = 0;
    int a, b, n = 0, missed = 0;
    CUmodule mod;
    CUfunction fn;
    CUdeviceptr buf;
    CUresult rc;

    if (r == NULL || yield == NULL || off == NULL || first == NULL)
        return 3;
    if (me == NULL || (a = gpr_job_find(r, me)) < 0 || (b = gpr_job_find(r, borrower)) < 0) {
        fprintf(stderr,
                "gpool-bench-borrow: the owner's job ($GPOOL_JOB_ID) and job %s must be "
                "in the region\n",
                borrower);
        return 2;
    }
    if ((rc = cu.ModuleLoadDataEx(&mod, burn_ptx, 0, NULL, NULL)) != CUDA_SUCCESS ||
        (rc = cu.ModuleGetFunction(&fn, mod, "gpool_burn_step")) != CUDA_SUCCESS ||
        (rc = cu.MemAlloc(&buf, nwords * 4)) != CUDA_SUCCESS)
        return fail("the kernel", rc);
    for (int w = 0; w < wakes; w++) {
        void *params[] = {&buf, &nwords, &iter, &spin};
        int64_t start, done_first = 0, woke, yielded, drained;

        sleep_ms(idle_ms);
        start = gpr_now();
        while (gpr_now() - start < (int64_t)(burst_ms * 1e6)) {
            if ((rc = cu.LaunchKernel(fn, 64, 1, 1, 256, 1, 1, 0, NULL, params, NULL)) !=
                    CUDA_SUCCESS ||
                (rc = cu.CtxSynchronize()) != CUDA_SUCCESS)
                return fail("the owner's kernel", rc);
            if (done_first == 0)
                done_first = gpr_now();
            iter++;
        }
        woke = atomic_load(&r->jobs[a].woke_at);
        yielded = atomic_load(&r->jobs[b].yielded_at);
        drained = atomic_load(&r->jobs[b].drained_at);
        if (woke < start || yielded < woke) {
            missed++; /* the borrower launched nothing while the owner ran */
            continue;
        }
        yield[n] = (double)(yielded - woke) / 1e6;
        off[n] = (double)((drained > yielded ? drained : yielded) - woke) / 1e6;
        first[n] = (double)(done_first - woke) / 1e6;
        n++;
    }
    printf("owner: %d wakes, idle %.0f ms, bursts of %.0f ms of %.1f ms kernels\n", wakes, idle_ms,
           burst_ms, kernel_ms);
    summary("wake -> the borrower stops launching", yield, n);
    summary("wake -> the borrower's compute is off the GPU", off, n);
    summary("wake -> the owner's first kernel is done", first, n);
    if (missed > 0)
        printf("%d wakes found the borrower not launching (not counted)\n", missed);
    return 0;
}

static int alloc(const char *borrower, double held_mib, double link_gbps)
{
    struct gpr_region *r = region();
    size_t free_b = 0, total = 0, want;
    uint64_t moved = 0, swap_ns = 0, copy_ns = 0;
    CUdeviceptr p;
    int64_t t0, t1;
    CUresult rc;
    int b;

    if (r == NULL)
        return 3;
    if ((b = gpr_job_find(r, borrower)) < 0) {
        fprintf(stderr, "gpool-bench-borrow: job %s is not in the region\n", borrower);
        return 2;
    }
    if ((rc = cu.MemGetInfo(&free_b, &total)) != CUDA_SUCCESS)
        return fail("cuMemGetInfo", rc);
    want = (free_b + (size_t)(held_mib * 1048576 / 2)) / (2u << 20) * (2u << 20);
    t0 = gpr_now();
    rc = cu.MemAlloc(&p, want);
    t1 = gpr_now();
    if (rc != CUDA_SUCCESS)
        return fail("the owner's allocation", rc);
    for (int i = 0; i < GPR_PROCS; i++) {
        struct gpr_proc *s = &r->procs[i];

        if (atomic_load(&s->job) == b && atomic_load(&s->reclaimed) && gpr_proc_alive(s)) {
            moved += atomic_load(&s->swap_bytes);
            swap_ns = atomic_load(&s->swap_ns) > swap_ns ? atomic_load(&s->swap_ns) : swap_ns;
            copy_ns += atomic_load(&s->swap_copy_ns);
        }
    }
    printf("%8.2f GiB held  %9.1f ms owner's allocation  %9.1f ms swap out  %9.1f ms copying"
           "  %6.1f GB/s  %9.1f ms = bytes / link (%.1f GB/s)\n",
           held_mib / 1024, (t1 - t0) / 1e6, swap_ns / 1e6, copy_ns / 1e6,
           copy_ns > 0 ? moved / (copy_ns / 1e9) / 1e9 : 0.0,
           held_mib * 1048576 / (link_gbps * 1e9) * 1e3, link_gbps);
    return 0;
}

static int hold(double mib)
{
    size_t n = (size_t)(mib * 1048576), chunk = 16u << 20;
    unsigned char *h = malloc(chunk);
    CUdeviceptr p;
    CUresult rc;

    if (h == NULL)
        return 3;
    if ((rc = cu.MemAlloc(&p, n)) != CUDA_SUCCESS)
        return fail("allocating", rc);
    memset(h, 0x5a, chunk);
    for (size_t o = 0; o < n; o += chunk)
        if ((rc = cu.MemcpyHtoD(p + o, h, n - o < chunk ? n - o : chunk)) != CUDA_SUCCESS)
            return fail("writing", rc);
    printf("holding\n");
    fflush(stdout);
    for (;;)
        pause();
}

static int link_speed(double mib)
{
    CUresult (*halloc)(void **, size_t) =
        (CUresult(*)(void **, size_t))dlsym(cu.lib, "cuMemAllocHost_v2");
    size_t n = (size_t)(mib * 1048576);
    CUdeviceptr p;
    void *h;
    int64_t t;
    CUresult rc;

    if (halloc == NULL || (rc = halloc(&h, n)) != CUDA_SUCCESS || (rc = cu.MemAlloc(&p, n)))
        return fail("pinned host memory", halloc == NULL ? CUDA_ERROR_NOT_SUPPORTED : rc);
    memset(h, 1, n);
    cu.MemcpyHtoD(p, h, n);
    t = gpr_now();
    if ((rc = cu.MemcpyDtoH(h, p, n)) != CUDA_SUCCESS)
        return fail("copying", rc);
    printf("%.1f\n", (double)n / ((double)(gpr_now() - t) / 1e9) / 1e9);
    return 0;
}

int main(int argc, char **argv)
{
    int rc;

    if (argc == 2 && strcmp(argv[1], "uuid") == 0) {
        char uuid[64];

        if ((rc = setup()) != 0)
            return rc;
        if (device_uuid(uuid, sizeof(uuid)) != 0)
            return 3;
        printf("%s\n", uuid);
        return 0;
    }
    if (argc < 3 || (strcmp(argv[1], "wake") == 0 && argc < 4) ||
        (strcmp(argv[1], "alloc") == 0 && argc != 5)) {
        fprintf(stderr, "usage: gpool-bench-borrow wake BORROWER_JOB WAKES [IDLE_MS] [BURST_MS] "
                        "[KERNEL_MS]\n"
                        "       gpool-bench-borrow alloc BORROWER_JOB HELD_MIB LINK_GBPS\n"
                        "       gpool-bench-borrow hold MIB\n"
                        "       gpool-bench-borrow uuid | link MIB\n");
        return 2;
    }
    if ((rc = setup()) != 0)
        return rc;
    if (strcmp(argv[1], "wake") == 0)
        return wake(argv[2], atoi(argv[3]), argc > 4 ? atof(argv[4]) : 300,
                    argc > 5 ? atof(argv[5]) : 100, argc > 6 ? atof(argv[6]) : 2);
    if (strcmp(argv[1], "alloc") == 0)
        return alloc(argv[2], atof(argv[3]), atof(argv[4]));
    if (strcmp(argv[1], "hold") == 0)
        return hold(atof(argv[2]));
    if (strcmp(argv[1], "link") == 0)
        return link_speed(atof(argv[2]));
    fprintf(stderr, "gpool-bench-borrow: unknown command %s\n", argv[1]);
    return 2;
}
