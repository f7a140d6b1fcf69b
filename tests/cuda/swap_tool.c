/*
 * swap-tool: `gpool swap` where gpool itself is not built (the real-GPU checks, gcc alone), and a
 * measure of the host link for reference.
 *
 *   swap-tool out|in PID [auto|driver|library]   swaps as gpool swap does (regions from
 *                                                $GPOOL_REGION_DIR, no host reserve)
 *   swap-tool link SIZE_MIB                      pinned copies device->host and host->device: GB/s
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/swap.h"
#include "common/gcuda.h"

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int link_speed(size_t mib)
{
    void *h = dlopen("libcuda.so.1", RTLD_NOW);
    CUresult (*init)(unsigned), (*dev_get)(CUdevice *, int), (*retain)(CUcontext *, CUdevice),
        (*set)(CUcontext), (*alloc)(CUdeviceptr *, size_t), (*halloc)(void **, size_t),
        (*dtoh)(void *, CUdeviceptr, size_t), (*htod)(CUdeviceptr, const void *, size_t);
    size_t n = mib << 20;
    CUdevice d;
    CUcontext c;
    CUdeviceptr p;
    void *hp;
    double t;

    if (h == NULL)
        return 3;
    *(void **)&init = dlsym(h, "cuInit");
    *(void **)&dev_get = dlsym(h, "cuDeviceGet");
    *(void **)&retain = dlsym(h, "cuDevicePrimaryCtxRetain");
    *(void **)&set = dlsym(h, "cuCtxSetCurrent");
    *(void **)&alloc = dlsym(h, "cuMemAlloc_v2");
    *(void **)&halloc = dlsym(h, "cuMemAllocHost_v2");
    *(void **)&dtoh = dlsym(h, "cuMemcpyDtoH_v2");
    *(void **)&htod = dlsym(h, "cuMemcpyHtoD_v2");
    if (init(0) || dev_get(&d, 0) || retain(&c, d) || set(c) || alloc(&p, n))
        return 3;
    double t0 = now_s();

    if (halloc(&hp, n))
        return 3;
    printf("cuMemAllocHost of %zu MiB: %.3f s\n", mib, now_s() - t0);
    memset(hp, 1, n);
    htod(p, hp, n); /* warm up */
    t = now_s();
    dtoh(hp, p, n);
    printf("link device->host %.1f GB/s", n / (now_s() - t) / 1e9);
    t = now_s();
    htod(p, hp, n);
    printf(", host->device %.1f GB/s (pinned, %zu MiB)\n", n / (now_s() - t) / 1e9, mib);
    /* Pageable memory, faulted in by the copy itself, for comparison. */
    void *pg = malloc(n);

    t = now_s();
    dtoh(pg, p, n);
    printf("pageable device->host (first touch) %.1f GB/s", n / (now_s() - t) / 1e9);
    t = now_s();
    dtoh(pg, p, n);
    printf(", again %.1f GB/s\n", n / (now_s() - t) / 1e9);
    return 0;
}

int main(int argc, char **argv)
{
    struct swap_opts o = {.via = argc > 3 ? argv[3] : "auto", .timeout_s = 60};
    struct swap_result r;
    bool out;

    if (argc == 3 && strcmp(argv[1], "link") == 0)
        return link_speed((size_t)atol(argv[2]));
    if (argc < 3 || (strcmp(argv[1], "out") != 0 && strcmp(argv[1], "in") != 0)) {
        fprintf(stderr, "usage: swap-tool out|in PID [auto|driver|library] | link SIZE_MIB\n");
        return 2;
    }
    out = strcmp(argv[1], "out") == 0;
    if (out)
        o.bytes_hint = swap_nvml_bytes((pid_t)atoi(argv[2]));
    o.regions = getenv("GPOOL_REGION_DIR") ? getenv("GPOOL_REGION_DIR") : ".";
    if (swap_process(&o, (pid_t)atoi(argv[2]), out, &r) != 0) {
        fprintf(stderr, "swap-tool: %s\n", r.msg);
        return 1;
    }
    if (!out && r.bytes == 0)
        r.bytes = swap_nvml_bytes((pid_t)atoi(argv[2]));
    printf("swapped %s via %s: %.2f GiB in %.3f s (%.1f GB/s; copying %.3f s, %.1f GB/s)\n",
           argv[1], r.via, r.bytes / 1073741824.0, r.seconds,
           r.seconds > 0 ? r.bytes / r.seconds / 1e9 : 0.0, r.copy_seconds,
           r.copy_seconds > 0 ? r.bytes / r.copy_seconds / 1e9 : 0.0);
    return 0;
}
