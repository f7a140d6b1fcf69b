/*
 * cuda-probe: a driver-API program that does what its arguments say and prints each call's
 * result, for the tests of libgpool-cuda.  It reaches the driver one of three ways, as programs
 * do: --via dlsym (dlopen and dlsym, the default), --via procaddr (cuGetProcAddress by name and
 * version, as the CUDA runtime does), or linked against libcuda.so.1 (the cuda-probe-linked
 * build).
 *
 *   cuda-probe [--via dlsym|procaddr] [--device N] COMMAND ...
 *   commands: alloc SIZE | pitch WIDTH HEIGHT | managed SIZE | async SIZE | create SIZE |
 *             free I | release I | info | nvml | hold | churn SIZE
 * Allocations are numbered from 0 in the order made; free and release take that number.
 */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/gcuda.h"
#include "common/gnvml.h"
#include "common/units.h"

struct api {
    CUresult (*init)(unsigned);
    CUresult (*device_get)(CUdevice *, int);
    CUresult (*retain)(CUcontext *, CUdevice);
    CUresult (*set_current)(CUcontext);
    CUresult (*error_name)(CUresult, const char **);
    CUresult (*alloc)(CUdeviceptr *, size_t);
    CUresult (*pitch)(CUdeviceptr *, size_t *, size_t, size_t, unsigned);
    CUresult (*managed)(CUdeviceptr *, size_t, unsigned);
    CUresult (*alloc_async)(CUdeviceptr *, size_t, CUstream);
    CUresult (*free)(CUdeviceptr);
    CUresult (*create)(CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *,
                       unsigned long long);
    CUresult (*release)(CUmemGenericAllocationHandle);
    CUresult (*info)(size_t *, size_t *);
};

static struct api api;
static CUdevice device;

#ifdef PROBE_LINKED
static const char *resolve(void)
{
    api = (struct api){cuInit,           cuDeviceGet,     cuDevicePrimaryCtxRetain,
                       cuCtxSetCurrent,  cuGetErrorName,  cuMemAlloc_v2,
                       cuMemAllocPitch_v2, cuMemAllocManaged, cuMemAllocAsync,
                       cuMemFree_v2,     cuMemCreate,     cuMemRelease,
                       cuMemGetInfo_v2};
    return NULL;
}
#else
static const char *names[][2] = {
    /* symbol for dlsym, name for cuGetProcAddress */
    {"cuInit", "cuInit"},
    {"cuDeviceGet", "cuDeviceGet"},
    {"cuDevicePrimaryCtxRetain", "cuDevicePrimaryCtxRetain"},
    {"cuCtxSetCurrent", "cuCtxSetCurrent"},
    {"cuGetErrorName", "cuGetErrorName"},
    {"cuMemAlloc_v2", "cuMemAlloc"},
    {"cuMemAllocPitch_v2", "cuMemAllocPitch"},
    {"cuMemAllocManaged", "cuMemAllocManaged"},
    {"cuMemAllocAsync", "cuMemAllocAsync"},
    {"cuMemFree_v2", "cuMemFree"},
    {"cuMemCreate", "cuMemCreate"},
    {"cuMemRelease", "cuMemRelease"},
    {"cuMemGetInfo_v2", "cuMemGetInfo"},
};

static const char *resolve_by(const char *via)
{
    void *lib = dlopen("libcuda.so.1", RTLD_NOW);
    void **slots = (void **)&api;
    CUresult (*gpa)(const char *, void **, int, cuuint64_t, CUdriverProcAddressQueryResult *);

    if (lib == NULL)
        return dlerror();
    gpa = (CUresult(*)(const char *, void **, int, cuuint64_t,
                       CUdriverProcAddressQueryResult *))dlsym(lib, "cuGetProcAddress_v2");
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(via, "procaddr") == 0) {
            CUdriverProcAddressQueryResult st;
            /* Stream-ordered calls as a per-thread-default-stream program asks for them. */
            cuuint64_t flags = strstr(names[i][1], "Async") != NULL
                                   ? CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM
                                   : CU_GET_PROC_ADDRESS_DEFAULT;

            if (gpa == NULL || gpa(names[i][1], &slots[i], 12000, flags, &st) != CUDA_SUCCESS)
                return names[i][1];
        } else if ((slots[i] = dlsym(lib, names[i][0])) == NULL) {
            return names[i][0];
        }
    }
    return NULL;
}
#endif

static const char *errname(CUresult rc)
{
    const char *s = "CUDA_ERROR_?";

    api.error_name(rc, &s);
    return s;
}

static void nvml_info(void)
{
    void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW);
    nvmlReturn_t (*init)(void), (*handle)(unsigned, nvmlDevice_t *),
        (*mem)(nvmlDevice_t, nvmlMemory_t *);
    nvmlDevice_t d;
    nvmlMemory_t m;

    if (lib == NULL || (init = (nvmlReturn_t(*)(void))dlsym(lib, "nvmlInit_v2")) == NULL ||
        (handle = (nvmlReturn_t(*)(unsigned, nvmlDevice_t *))dlsym(
             lib, "nvmlDeviceGetHandleByIndex_v2")) == NULL ||
        (mem = (nvmlReturn_t(*)(nvmlDevice_t, nvmlMemory_t *))dlsym(
             lib, "nvmlDeviceGetMemoryInfo")) == NULL ||
        init() != NVML_SUCCESS || handle((unsigned)device, &d) != NVML_SUCCESS ||
        mem(d, &m) != NVML_SUCCESS) {
        printf("nvml failed\n");
        return;
    }
    printf("nvml total=%llu used=%llu free=%llu\n", m.total, m.used, m.free);
}

#define MAX_ALLOCS 4096
static unsigned long long allocs[MAX_ALLOCS];
static int nallocs;

static void remember(unsigned long long p)
{
    if (nallocs < MAX_ALLOCS)
        allocs[nallocs] = p;
    nallocs++;
}

static int size_arg(const char *s, uint64_t *out)
{
    if (units_parse_bytes(s, out) != 0) {
        fprintf(stderr, "cuda-probe: %s: expected a size\n", s);
        return -1;
    }
    return 0;
}

/* Runs one command at argv[0]; returns how many arguments it took, or -1. */
static int command(int argc, char **argv)
{
    const char *c = argv[0];
    uint64_t n = 0, h = 0;
    CUdeviceptr p = 0;
    CUresult rc;

    if (strcmp(c, "info") == 0) {
        size_t f = 0, t = 0;

        rc = api.info(&f, &t);
        printf("info %s free=%zu total=%zu\n", errname(rc), f, t);
        return 1;
    }
    if (strcmp(c, "nvml") == 0)
        return nvml_info(), 1;
    if (strcmp(c, "hold") == 0) {
        printf("holding\n");
        fflush(stdout);
        pause();
        return 1;
    }
    if (argc < 2)
        return -1;
    if (strcmp(c, "free") == 0 || strcmp(c, "release") == 0) {
        int i = atoi(argv[1]);

        if (i < 0 || i >= nallocs || i >= MAX_ALLOCS)
            return -1;
        rc = c[0] == 'f' ? api.free(allocs[i]) : api.release(allocs[i]);
        printf("%s %d %s\n", c, i, errname(rc));
        return 2;
    }
    if (strcmp(c, "pitch") == 0) {
        size_t pitch = 0;

        if (argc < 3 || size_arg(argv[1], &n) != 0 || size_arg(argv[2], &h) != 0)
            return -1;
        rc = api.pitch(&p, &pitch, n, h, 4);
        printf("pitch %s %s %s\n", argv[1], argv[2], errname(rc));
        if (rc == CUDA_SUCCESS)
            remember(p);
        return 3;
    }
    if (size_arg(argv[1], &n) != 0)
        return -1;
    if (strcmp(c, "alloc") == 0) {
        rc = api.alloc(&p, n);
    } else if (strcmp(c, "managed") == 0) {
        rc = api.managed(&p, n, CU_MEM_ATTACH_GLOBAL);
    } else if (strcmp(c, "async") == 0) {
        rc = api.alloc_async(&p, n, NULL);
    } else if (strcmp(c, "create") == 0) {
        CUmemAllocationProp prop = {.type = CU_MEM_ALLOCATION_TYPE_PINNED,
                                    .location = {CU_MEM_LOCATION_TYPE_DEVICE, device}};
        CUmemGenericAllocationHandle mh = 0;

        rc = api.create(&mh, n, &prop, 0);
        p = mh;
    } else if (strcmp(c, "churn") == 0) {
        /* Allocates and frees without end: the test kills it somewhere in between. */
        printf("churning\n");
        fflush(stdout);
        for (;;)
            if (api.alloc(&p, n) == CUDA_SUCCESS)
                api.free(p);
    } else {
        return -1;
    }
    printf("%s %s %s\n", c, argv[1], errname(rc));
    if (rc == CUDA_SUCCESS)
        remember(p);
    return 2;
}

int main(int argc, char **argv)
{
    const char *via = "dlsym", *bad;
    CUcontext ctx;
    int i = 1;

    setvbuf(stdout, NULL, _IOLBF, 0);
    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (strcmp(argv[i], "--via") == 0)
            via = argv[i + 1];
        else if (strcmp(argv[i], "--device") == 0)
            device = atoi(argv[i + 1]);
        else
            break;
    }
#ifdef PROBE_LINKED
    bad = resolve();
    (void)via;
#else
    bad = resolve_by(via);
#endif
    if (bad != NULL) {
        fprintf(stderr, "cuda-probe: cannot resolve %s\n", bad);
        return 3;
    }
    if (api.init(0) != CUDA_SUCCESS || api.device_get(&device, device) != CUDA_SUCCESS ||
        api.retain(&ctx, device) != CUDA_SUCCESS || api.set_current(ctx) != CUDA_SUCCESS) {
        fprintf(stderr, "cuda-probe: no device\n");
        return 3;
    }
    while (i < argc) {
        int used = command(argc - i, argv + i);

        if (used < 0) {
            fprintf(stderr, "cuda-probe: bad command at '%s'\n", argv[i]);
            return 2;
        }
        i += used;
    }
    return 0;
}
