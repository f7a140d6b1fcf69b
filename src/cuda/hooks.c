/*
 * libgpool-cuda's entry points: the driver calls it enforces, and the three ways a program reaches
 * them.  A program linked against libcuda.so.1 calls these symbols directly (LD_PRELOAD puts them
 * first); one that loads the driver with dlopen gets them from the hooked dlsym; the CUDA runtime
 * asks cuGetProcAddress by name, version and flags, and gets the hook of whatever entry point the
 * real driver answered (found by address, so _v2, _ptsz and _ptds variants map to their own
 * hooks).  Anything else, cuGetExportTable included, goes to the driver untouched.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "cuda/lib.h"

#define lib gpc__lib

extern void *(*gpc__dlsym)(void *, const char *);

/* Every hooked call: its symbol, the hook, and the real entry point once resolved. */
struct hook {
    const char *name;
    void *ours;
    void *real;
};

#define HOOKED(X)                                                                                  \
    X(cuGetProcAddress) X(cuGetProcAddress_v2) X(cuMemAlloc_v2) X(cuMemAllocPitch_v2)            \
    X(cuMemAllocManaged) X(cuMemAllocAsync) X(cuMemAllocAsync_ptsz) X(cuMemAllocFromPoolAsync)   \
    X(cuMemAllocFromPoolAsync_ptsz) X(cuMemFree_v2) X(cuMemFreeAsync) X(cuMemFreeAsync_ptsz)     \
    X(cuMemCreate) X(cuMemRelease) X(cuMemGetInfo_v2) X(cuDevicePrimaryCtxRetain)                \
    X(cuCtxCreate_v2) X(cuCtxCreate_v4) X(cuLaunchKernel) X(cuLaunchKernel_ptsz)                 \
    X(cuLaunchKernelEx) X(cuLaunchKernelEx_ptsz) X(cuLaunchCooperativeKernel)                    \
    X(cuLaunchCooperativeKernel_ptsz) X(cuGraphLaunch) X(cuGraphLaunch_ptsz)                     \
    X(cuMemcpyHtoD_v2) X(cuMemcpyDtoH_v2) X(cuMemcpyDtoD_v2) X(cuMemcpyHtoDAsync_v2)              \
    X(cuMemcpyDtoHAsync_v2) X(cuMemsetD8_v2) X(cuMemsetD32_v2)                                    \
    X(nvmlDeviceGetMemoryInfo) X(nvmlDeviceGetMemoryInfo_v2)

/* The per-thread-default-stream variants share their base call's prototype. */
CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream hStream);
CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
                                      CUstream hStream);
CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream);
CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                             unsigned by, unsigned bz, unsigned shmem, CUstream s, void **params,
                             void **extra);
CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *config, CUfunction f, void **kernelParams,
                               void **extra);
CUresult cuLaunchCooperativeKernel_ptsz(CUfunction f, unsigned gx, unsigned gy, unsigned gz,
                                        unsigned bx, unsigned by, unsigned bz, unsigned shmem,
                                        CUstream s, void **params);
CUresult cuGraphLaunch_ptsz(CUgraphExec hGraphExec, CUstream hStream);
CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags);
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory);

enum {
#define ENUM(n) H_##n,
    HOOKED(ENUM)
#undef ENUM
        H_COUNT
};

static struct hook hooks[H_COUNT] = {
#define ENTRY(n) [H_##n] = {#n, (void *)n, NULL},
    HOOKED(ENTRY)
#undef ENTRY
};

static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

static void resolve_hooks(void)
{
    gpc__init();
    for (int i = 0; i < H_COUNT; i++)
        if (strncmp(hooks[i].name, "nvml", 4) != 0)
            hooks[i].real = gpc__real(hooks[i].name);
}

/* The real entry point of hook h; NULL when the driver has none. */
static void *real(int h)
{
    pthread_once(&hooks_once, resolve_hooks);
    if (hooks[h].real == NULL && strncmp(hooks[h].name, "nvml", 4) == 0)
        hooks[h].real = gpc__real_nvml(hooks[h].name);
    return hooks[h].real;
}

#define CALL(h, type, ...)                                                                         \
    (real(H_##h) == NULL ? CUDA_ERROR_NOT_SUPPORTED : ((type)hooks[H_##h].real)(__VA_ARGS__))

/* dlsym: the real one comes from libc by version (it moved into libc proper in glibc 2.34). */
static __thread int in_dlsym;

static void find_real_dlsym(void)
{
    if (gpc__dlsym == NULL)
        gpc__dlsym = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
    if (gpc__dlsym == NULL)
        gpc__dlsym = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5");
}

__attribute__((constructor)) static void gpc_constructor(void)
{
    find_real_dlsym();
}

/* The hook for a driver or NVML symbol; any other lookup is the real dlsym's. */
static void *hooked_dlsym(void *handle, const char *symbol)
{
    void *p = gpc__dlsym(handle, symbol);

    if (p == NULL || in_dlsym)
        return p;
    in_dlsym = 1;
    for (int i = 0; i < H_COUNT; i++)
        if (strcmp(symbol, hooks[i].name) == 0) {
            /* Only the driver's own entry point is replaced, never another library's symbol. */
            if (p == hooks[i].ours || p == real(i))
                p = hooks[i].ours;
            break;
        }
    in_dlsym = 0;
    return p;
}

/* RTLD_NEXT means "after the caller": the real dlsym finds the caller by its return address, so
 * every lookup that is not ours ends in a tail call, which leaves the caller's address in place
 * (sanitizer runtimes and other interposers look up RTLD_NEXT while they start). */
__attribute__((optimize("optimize-sibling-calls"))) GPC_EXPORT void *dlsym(void *handle,
                                                                          const char *symbol)
{
    if (gpc__dlsym == NULL)
        find_real_dlsym();
    if (handle == RTLD_NEXT || !((symbol[0] == 'c' && symbol[1] == 'u') ||
                                 strncmp(symbol, "nvml", 4) == 0))
        return gpc__dlsym(handle, symbol);
    return hooked_dlsym(handle, symbol);
}

static int hook_named(const char *name)
{
    for (int i = 0; i < H_COUNT; i++)
        if (strcmp(hooks[i].name, name) == 0)
            return i;
    return -1;
}

/* The hook of the entry point the driver answered: by its address, or, should a driver hand out
 * addresses other than its exported symbols', by the name the caller asked for with the suffix
 * its version and flags select. */
static void swap_for_hook(const char *symbol, int version, cuuint64_t flags, void **pfn)
{
    char name[128];
    int h = -1;

    pthread_once(&hooks_once, resolve_hooks);
    if (*pfn == NULL)
        return;
    for (int i = 0; i < H_COUNT && h < 0; i++)
        if (hooks[i].real == *pfn)
            h = i;
    if (h < 0 && (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) &&
        snprintf(name, sizeof(name), "%s_ptsz", symbol) < (int)sizeof(name))
        h = hook_named(name);
    if (h < 0 && version >= 3020 && snprintf(name, sizeof(name), "%s_v2", symbol) < (int)sizeof(name))
        h = hook_named(name);
    if (h < 0 && (h = hook_named(symbol)) >= 0 && strcmp(symbol, "cuCtxCreate") == 0)
        h = -1; /* cuCtxCreate without a suffix is the old form, never hooked */
    if (h >= 0 && hooks[h].real != NULL)
        *pfn = hooks[h].ours;
}

GPC_EXPORT CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion,
                                        cuuint64_t flags,
                                        CUdriverProcAddressQueryResult *symbolStatus)
{
    CUresult rc = CALL(cuGetProcAddress_v2,
                       CUresult(*)(const char *, void **, int, cuuint64_t,
                                   CUdriverProcAddressQueryResult *),
                       symbol, pfn, cudaVersion, flags, symbolStatus);

    if (rc == CUDA_SUCCESS && pfn != NULL && symbol != NULL)
        swap_for_hook(symbol, cudaVersion, flags, pfn);
    return rc;
}

GPC_EXPORT CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion,
                                     cuuint64_t flags)
{
    CUresult rc = CALL(cuGetProcAddress, CUresult(*)(const char *, void **, int, cuuint64_t),
                       symbol, pfn, cudaVersion, flags);

    if (rc == CUDA_SUCCESS && pfn != NULL && symbol != NULL)
        swap_for_hook(symbol, cudaVersion, flags, pfn);
    return rc;
}

/* ---- memory ---- */

static CUresult over_cap(struct gpc_gpu *g, uint64_t bytes)
{
    gpc__say_once("cap", "%s: %llu bytes more would pass the job's cap of %llu bytes", g->uuid,
                  (unsigned long long)bytes, (unsigned long long)gpc__cap(g));
    return CUDA_ERROR_OUT_OF_MEMORY;
}

/* The driver found the GPU full for an allocation within the job's cap: if borrowers hold the
 * memory and can be swapped out, they are, and the call is made once more. */
#define RECLAIMED(g, rc, call) ((rc) == CUDA_ERROR_OUT_OF_MEMORY && gpc__reclaim(g) ? (call) : (rc))

/* An allocation of size bytes through call: charged first, given back if the driver refuses. */
#define CHARGED_ALLOC(g, dptr, size, call)                                                         \
    do {                                                                                           \
        uint64_t b_ = gpc__round(g, size);                                                         \
        CUresult rc_;                                                                              \
        if (!gpc__charge(g, b_))                                                                   \
            return over_cap(g, b_);                                                                \
        rc_ = (call);                                                                              \
        rc_ = RECLAIMED(g, rc_, call);                                                             \
        if (rc_ != CUDA_SUCCESS)                                                                   \
            gpc__uncharge(g, b_);                                                                  \
        else                                                                                       \
            gpc__track(*(dptr), g, b_);                                                            \
        return rc_;                                                                                \
    } while (0)

typedef CUresult (*alloc_fn)(CUdeviceptr *, size_t);
typedef CUresult (*alloc_async_fn)(CUdeviceptr *, size_t, CUstream);
typedef CUresult (*alloc_pool_fn)(CUdeviceptr *, size_t, CUmemoryPool, CUstream);
typedef CUresult (*free_fn)(CUdeviceptr);
typedef CUresult (*free_async_fn)(CUdeviceptr, CUstream);

/* With swapping inside the library, allocations go through the virtual memory API. */
#define SWAPPABLE_ALLOC(g, dptr, bytesize)                                                         \
    CHARGED_ALLOC(g, dptr, bytesize,                                                               \
                  gpc__vmm_alloc(g, gpc__dev(g), dptr, gpc__round(g, bytesize)))

GPC_EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
{
    struct gpc_gpu *g = gpc__current();

    if (g == NULL || dptr == NULL || bytesize == 0)
        return CALL(cuMemAlloc_v2, alloc_fn, dptr, bytesize);
    if (gpc__swap_enabled())
        SWAPPABLE_ALLOC(g, dptr, bytesize);
    CHARGED_ALLOC(g, dptr, bytesize, CALL(cuMemAlloc_v2, alloc_fn, dptr, bytesize));
}

GPC_EXPORT CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags)
{
    struct gpc_gpu *g = gpc__current();

    if (g == NULL || dptr == NULL || bytesize == 0)
        return CALL(cuMemAllocManaged, CUresult(*)(CUdeviceptr *, size_t, unsigned), dptr,
                    bytesize, flags);
    /* Managed memory may live on the device: it counts as if it all did.  The library cannot swap
     * it (the driver migrates its pages behind the program's back). */
    if (gpc__swap_enabled())
        gpc__mark_unswappable(g, GPR_UNSWAPPABLE_MANAGED);
    CHARGED_ALLOC(g, dptr, bytesize,
                  CALL(cuMemAllocManaged, CUresult(*)(CUdeviceptr *, size_t, unsigned), dptr,
                       bytesize, flags));
}

GPC_EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pPitch, size_t WidthInBytes,
                                       size_t Height, unsigned int ElementSizeBytes)
{
    typedef CUresult (*pitch_fn)(CUdeviceptr *, size_t *, size_t, size_t, unsigned);
    struct gpc_gpu *g = gpc__current();
    uint64_t guess, got;
    CUresult rc;

    if (g == NULL || dptr == NULL || pPitch == NULL || Height == 0 ||
        WidthInBytes > UINT64_MAX / Height)
        return CALL(cuMemAllocPitch_v2, pitch_fn, dptr, pPitch, WidthInBytes, Height,
                    ElementSizeBytes);
    if (gpc__swap_enabled())
        gpc__mark_unswappable(g, GPR_UNSWAPPABLE_PITCHED);
    /* The pitch is the driver's choice: charge the width, then what it really took. */
    guess = gpc__round(g, (uint64_t)WidthInBytes * Height);
    if (!gpc__charge(g, guess))
        return over_cap(g, guess);
    rc = CALL(cuMemAllocPitch_v2, pitch_fn, dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
    rc = RECLAIMED(
        g, rc,
        CALL(cuMemAllocPitch_v2, pitch_fn, dptr, pPitch, WidthInBytes, Height, ElementSizeBytes));
    if (rc != CUDA_SUCCESS) {
        gpc__uncharge(g, guess);
        return rc;
    }
    got = gpc__round(g, (uint64_t)*pPitch * Height);
    if (got > guess && !gpc__charge(g, got - guess)) {
        CALL(cuMemFree_v2, free_fn, *dptr);
        gpc__uncharge(g, guess);
        return over_cap(g, got);
    }
    gpc__track(*dptr, g, got > guess ? got : guess);
    return CUDA_SUCCESS;
}

static CUresult alloc_async(int h, CUdeviceptr *dptr, size_t bytesize, CUstream s)
{
    alloc_async_fn f = (alloc_async_fn)real(h);
    struct gpc_gpu *g = gpc__current();

    if (f == NULL)
        return CUDA_ERROR_NOT_SUPPORTED;
    if (g == NULL || dptr == NULL || bytesize == 0)
        return f(dptr, bytesize, s);
    /* A stream-ordered allocation counts from the call, as if it were made at once. */
    if (gpc__swap_enabled())
        SWAPPABLE_ALLOC(g, dptr, bytesize);
    CHARGED_ALLOC(g, dptr, bytesize, f(dptr, bytesize, s));
}

GPC_EXPORT CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
{
    return alloc_async(H_cuMemAllocAsync, dptr, bytesize, hStream);
}

GPC_EXPORT CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
{
    return alloc_async(H_cuMemAllocAsync_ptsz, dptr, bytesize, hStream);
}

static CUresult alloc_pool(int h, CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
                           CUstream s)
{
    alloc_pool_fn f = (alloc_pool_fn)real(h);
    struct gpc_gpu *g = gpc__current();

    if (f == NULL)
        return CUDA_ERROR_NOT_SUPPORTED;
    if (g == NULL || dptr == NULL || bytesize == 0)
        return f(dptr, bytesize, pool, s);
    if (gpc__swap_enabled())
        SWAPPABLE_ALLOC(g, dptr, bytesize);
    CHARGED_ALLOC(g, dptr, bytesize, f(dptr, bytesize, pool, s));
}

GPC_EXPORT CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytesize,
                                            CUmemoryPool pool, CUstream hStream)
{
    return alloc_pool(H_cuMemAllocFromPoolAsync, dptr, bytesize, pool, hStream);
}

GPC_EXPORT CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytesize,
                                                 CUmemoryPool pool, CUstream hStream)
{
    return alloc_pool(H_cuMemAllocFromPoolAsync_ptsz, dptr, bytesize, pool, hStream);
}

/* Gives back what key was charged once the driver has taken the free. */
static CUresult credited(uint64_t key, CUresult rc)
{
    struct gpc_gpu *g;
    uint64_t bytes;

    if (rc == CUDA_SUCCESS && gpc__untrack(key, &g, &bytes))
        gpc__uncharge(g, bytes);
    return rc;
}

/* A pointer of the library's swap path: freed by it (after the stream's work, for a
 * stream-ordered free); CUDA_ERROR_NOT_FOUND when the driver made it. */
static CUresult vmm_free(CUdeviceptr dptr, CUstream s, bool ordered)
{
    CUresult rc;

    if (!gpc__swap_enabled())
        return CUDA_ERROR_NOT_FOUND;
    gpc__gate_enter();
    if (ordered) {
        CUresult (*sync)(CUstream) = (CUresult(*)(CUstream))gpc__real("cuStreamSynchronize");

        if (sync != NULL)
            sync(s);
    }
    rc = gpc__vmm_free(dptr);
    gpc__gate_leave();
    return rc;
}

GPC_EXPORT CUresult cuMemFree_v2(CUdeviceptr dptr)
{
    CUresult rc = vmm_free(dptr, NULL, false);

    return credited(dptr, rc != CUDA_ERROR_NOT_FOUND ? rc : CALL(cuMemFree_v2, free_fn, dptr));
}

GPC_EXPORT CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream)
{
    CUresult rc = vmm_free(dptr, hStream, true);

    return credited(dptr, rc != CUDA_ERROR_NOT_FOUND
                              ? rc
                              : CALL(cuMemFreeAsync, free_async_fn, dptr, hStream));
}

GPC_EXPORT CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream)
{
    CUresult rc = vmm_free(dptr, hStream, true);

    return credited(dptr, rc != CUDA_ERROR_NOT_FOUND
                              ? rc
                              : CALL(cuMemFreeAsync_ptsz, free_async_fn, dptr, hStream));
}

/* ---- copies and sets: they wait while the process is swapped out ---- */

#define GATED(h, type, ...)                                                                        \
    do {                                                                                           \
        bool gate_ = gpc__swap_enabled();                                                          \
        CUresult rc_;                                                                              \
        if (gate_)                                                                                 \
            gpc__gate_enter();                                                                     \
        rc_ = CALL(h, type, __VA_ARGS__);                                                          \
        if (gate_)                                                                                 \
            gpc__gate_leave();                                                                     \
        return rc_;                                                                                \
    } while (0)

GPC_EXPORT CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n)
{
    GATED(cuMemcpyHtoD_v2, CUresult(*)(CUdeviceptr, const void *, size_t), dst, src, n);
}

GPC_EXPORT CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n)
{
    GATED(cuMemcpyDtoH_v2, CUresult(*)(void *, CUdeviceptr, size_t), dst, src, n);
}

GPC_EXPORT CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t n)
{
    GATED(cuMemcpyDtoD_v2, CUresult(*)(CUdeviceptr, CUdeviceptr, size_t), dst, src, n);
}

GPC_EXPORT CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, CUstream s)
{
    GATED(cuMemcpyHtoDAsync_v2, CUresult(*)(CUdeviceptr, const void *, size_t, CUstream), dst,
          src, n, s);
}

GPC_EXPORT CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, CUstream s)
{
    GATED(cuMemcpyDtoHAsync_v2, CUresult(*)(void *, CUdeviceptr, size_t, CUstream), dst, src, n,
          s);
}

GPC_EXPORT CUresult cuMemsetD8_v2(CUdeviceptr dst, unsigned char v, size_t n)
{
    GATED(cuMemsetD8_v2, CUresult(*)(CUdeviceptr, unsigned char, size_t), dst, v, n);
}

GPC_EXPORT CUresult cuMemsetD32_v2(CUdeviceptr dst, unsigned int v, size_t n)
{
    GATED(cuMemsetD32_v2, CUresult(*)(CUdeviceptr, unsigned int, size_t), dst, v, n);
}

/* Handles of physical memory are tracked apart from pointers by their top bit. */
#define HANDLE_KEY(h) ((uint64_t)(h) | (1ull << 63))

GPC_EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size,
                                const CUmemAllocationProp *prop, unsigned long long flags)
{
    typedef CUresult (*create_fn)(CUmemGenericAllocationHandle *, size_t,
                                  const CUmemAllocationProp *, unsigned long long);
    struct gpc_gpu *g = NULL;
    uint64_t b;
    CUresult rc;

    if (prop != NULL && prop->location.type == CU_MEM_LOCATION_TYPE_DEVICE) {
        gpc__init();
        g = gpc__gpu(prop->location.id);
    }
    if (g == NULL || handle == NULL || size == 0)
        return CALL(cuMemCreate, create_fn, handle, size, prop, flags);
    b = gpc__round(g, size);
    if (!gpc__charge(g, b))
        return over_cap(g, b);
    rc = CALL(cuMemCreate, create_fn, handle, size, prop, flags);
    rc = RECLAIMED(g, rc, CALL(cuMemCreate, create_fn, handle, size, prop, flags));
    if (rc != CUDA_SUCCESS)
        gpc__uncharge(g, b);
    else
        gpc__track(HANDLE_KEY(*handle), g, b);
    return rc;
}

GPC_EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle handle)
{
    return credited(HANDLE_KEY(handle),
                    CALL(cuMemRelease, CUresult(*)(CUmemGenericAllocationHandle), handle));
}

/* The job's cap is the total it sees, and its own use what is not free. */
static void capped_info(struct gpc_gpu *g, uint64_t *free_bytes, uint64_t *total)
{
    uint64_t cap = gpc__cap(g), used;

    if (cap == 0)
        return;
    used = gpc__job_mem(g);
    *total = cap;
    if (*free_bytes > (used >= cap ? 0 : cap - used))
        *free_bytes = used >= cap ? 0 : cap - used;
}

GPC_EXPORT CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total)
{
    CUresult rc = CALL(cuMemGetInfo_v2, CUresult(*)(size_t *, size_t *), free_bytes, total);
    struct gpc_gpu *g;

    if (rc == CUDA_SUCCESS && free_bytes != NULL && total != NULL &&
        (g = gpc__current()) != NULL) {
        uint64_t f = *free_bytes, t = *total;

        capped_info(g, &f, &t);
        *free_bytes = f;
        *total = t;
    }
    return rc;
}

/* ---- contexts: the memory a context takes counts against the cap ---- */

static CUresult with_context(CUresult rc, CUdevice dev)
{
    struct gpc_gpu *g;

    gpc__init();
    if (rc == CUDA_SUCCESS && (g = gpc__gpu(dev)) != NULL)
        gpc__charge_context(g);
    return rc;
}

GPC_EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
    return with_context(
        CALL(cuDevicePrimaryCtxRetain, CUresult(*)(CUcontext *, CUdevice), pctx, dev), dev);
}

GPC_EXPORT CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
    return with_context(
        CALL(cuCtxCreate_v2, CUresult(*)(CUcontext *, unsigned, CUdevice), pctx, flags, dev),
        dev);
}

GPC_EXPORT CUresult cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *ctxCreateParams,
                                   unsigned int flags, CUdevice dev)
{
    return with_context(CALL(cuCtxCreate_v4,
                             CUresult(*)(CUcontext *, CUctxCreateParams *, unsigned, CUdevice),
                             pctx, ctxCreateParams, flags, dev),
                        dev);
}

/* ---- kernel launches: paced to the job's share of the GPU ---- */

typedef CUresult (*launch_fn)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                              unsigned, unsigned, CUstream, void **, void **);
typedef CUresult (*launch_ex_fn)(const CUlaunchConfig *, CUfunction, void **, void **);
typedef CUresult (*launch_coop_fn)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                                   unsigned, unsigned, CUstream, void **);
typedef CUresult (*graph_fn)(CUgraphExec, CUstream);

/* A borrower that must yield waits outside the gate, so that it can be swapped out meanwhile. */
#define PACED(stream, call)                                                                        \
    do {                                                                                           \
        struct gpc_ticket t_;                                                                      \
        bool gate_ = gpc__swap_enabled();                                                          \
        CUresult rc_;                                                                              \
        for (;;) {                                                                                 \
            if (gate_)                                                                             \
                gpc__gate_enter();                                                                 \
            if (gpc__pace_before(stream, &t_))                                                     \
                break;                                                                             \
            if (gate_)                                                                             \
                gpc__gate_leave();                                                                 \
            gpc__pace_yield(&t_);                                                                  \
        }                                                                                          \
        rc_ = (call);                                                                              \
        gpc__pace_after(&t_, rc_);                                                                 \
        if (gate_)                                                                                 \
            gpc__gate_leave();                                                                     \
        return rc_;                                                                                \
    } while (0)

static CUresult launch(int h, CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                       unsigned by, unsigned bz, unsigned shmem, CUstream s, void **params,
                       void **extra)
{
    launch_fn fn = (launch_fn)real(h);

    if (fn == NULL)
        return CUDA_ERROR_NOT_SUPPORTED;
    PACED(s, fn(f, gx, gy, gz, bx, by, bz, shmem, s, params, extra));
}

GPC_EXPORT CUresult cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                                   unsigned int gridDimZ, unsigned int blockDimX,
                                   unsigned int blockDimY, unsigned int blockDimZ,
                                   unsigned int sharedMemBytes, CUstream hStream,
                                   void **kernelParams, void **extra)
{
    return launch(H_cuLaunchKernel, f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY,
                  blockDimZ, sharedMemBytes, hStream, kernelParams, extra);
}

GPC_EXPORT CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned gx, unsigned gy, unsigned gz,
                                        unsigned bx, unsigned by, unsigned bz, unsigned shmem,
                                        CUstream s, void **params, void **extra)
{
    return launch(H_cuLaunchKernel_ptsz, f, gx, gy, gz, bx, by, bz, shmem, s, params, extra);
}

static CUresult launch_ex(int h, const CUlaunchConfig *config, CUfunction f, void **params,
                          void **extra)
{
    launch_ex_fn fn = (launch_ex_fn)real(h);

    if (fn == NULL)
        return CUDA_ERROR_NOT_SUPPORTED;
    if (config == NULL)
        return fn(config, f, params, extra);
    PACED(config->hStream, fn(config, f, params, extra));
}

GPC_EXPORT CUresult cuLaunchKernelEx(const CUlaunchConfig *config, CUfunction f,
                                     void **kernelParams, void **extra)
{
    return launch_ex(H_cuLaunchKernelEx, config, f, kernelParams, extra);
}

GPC_EXPORT CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *config, CUfunction f,
                                          void **kernelParams, void **extra)
{
    return launch_ex(H_cuLaunchKernelEx_ptsz, config, f, kernelParams, extra);
}

static CUresult launch_coop(int h, CUfunction f, unsigned gx, unsigned gy, unsigned gz,
                            unsigned bx, unsigned by, unsigned bz, unsigned shmem, CUstream s,
                            void **params)
{
    launch_coop_fn fn = (launch_coop_fn)real(h);

    if (fn == NULL)
        return CUDA_ERROR_NOT_SUPPORTED;
    PACED(s, fn(f, gx, gy, gz, bx, by, bz, shmem, s, params));
}

GPC_EXPORT CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned int gridDimX,
                                              unsigned int gridDimY, unsigned int gridDimZ,
                                              unsigned int blockDimX, unsigned int blockDimY,
                                              unsigned int blockDimZ,
                                              unsigned int sharedMemBytes, CUstream hStream,
                                              void **kernelParams)
{
    return launch_coop(H_cuLaunchCooperativeKernel, f, gridDimX, gridDimY, gridDimZ, blockDimX,
                       blockDimY, blockDimZ, sharedMemBytes, hStream, kernelParams);
}

GPC_EXPORT CUresult cuLaunchCooperativeKernel_ptsz(CUfunction f, unsigned gx, unsigned gy,
                                                   unsigned gz, unsigned bx, unsigned by,
                                                   unsigned bz, unsigned shmem, CUstream s,
                                                   void **params)
{
    return launch_coop(H_cuLaunchCooperativeKernel_ptsz, f, gx, gy, gz, bx, by, bz, shmem, s,
                       params);
}

static CUresult graph_launch(int h, CUgraphExec exec, CUstream s)
{
    graph_fn fn = (graph_fn)real(h);

    if (fn == NULL)
        return CUDA_ERROR_NOT_SUPPORTED;
    PACED(s, fn(exec, s));
}

GPC_EXPORT CUresult cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream)
{
    return graph_launch(H_cuGraphLaunch, hGraphExec, hStream);
}

GPC_EXPORT CUresult cuGraphLaunch_ptsz(CUgraphExec hGraphExec, CUstream hStream)
{
    return graph_launch(H_cuGraphLaunch_ptsz, hGraphExec, hStream);
}

/* ---- NVML: memory queries show the cap as the total ---- */

static void nvml_capped(nvmlDevice_t device, unsigned long long *total,
                        unsigned long long *free_bytes, unsigned long long *used)
{
    char uuid[GPR_UUID_MAX];
    struct gpc_gpu *g;
    nvmlReturn_t (*get_uuid)(nvmlDevice_t, char *, unsigned) =
        (nvmlReturn_t(*)(nvmlDevice_t, char *, unsigned))gpc__real_nvml("nvmlDeviceGetUUID");
    uint64_t cap;

    if (get_uuid == NULL || get_uuid(device, uuid, sizeof(uuid)) != NVML_SUCCESS ||
        (g = gpc__gpu_by_uuid(uuid)) == NULL || (cap = gpc__cap(g)) == 0)
        return;
    *used = gpc__job_mem(g);
    *total = cap;
    *free_bytes = *used >= cap ? 0 : cap - *used;
}

GPC_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
    nvmlReturn_t (*f)(nvmlDevice_t, nvmlMemory_t *) =
        (nvmlReturn_t(*)(nvmlDevice_t, nvmlMemory_t *))real(H_nvmlDeviceGetMemoryInfo);
    nvmlReturn_t rc = f == NULL ? NVML_ERROR_UNINITIALIZED : f(device, memory);

    if (rc == NVML_SUCCESS)
        nvml_capped(device, &memory->total, &memory->free, &memory->used);
    return rc;
}

GPC_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory)
{
    nvmlReturn_t (*f)(nvmlDevice_t, nvmlMemory_v2_t *) =
        (nvmlReturn_t(*)(nvmlDevice_t, nvmlMemory_v2_t *))real(H_nvmlDeviceGetMemoryInfo_v2);
    nvmlReturn_t rc = f == NULL ? NVML_ERROR_UNINITIALIZED : f(device, memory);

    if (rc == NVML_SUCCESS)
        nvml_capped(device, &memory->total, &memory->free, &memory->used);
    return rc;
}
