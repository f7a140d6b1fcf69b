/*
 * simgpu's driver, part one: initialisation, devices, contexts, streams and
 * events.  Time on a simulated GPU is real time: work queued on a stream
 * completes at a computed moment, and synchronising sleeps until then.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "simgpu/driver.h"

struct simgpu_driver simgpu__drv = {.init_mu = PTHREAD_MUTEX_INITIALIZER};
#define drv simgpu__drv

#define CTX_STACK 16
static __thread struct CUctx_st *ctx_stack[CTX_STACK];
static __thread int ctx_depth;

static void after_fork_child(void)
{
    /* A child does not inherit the parent's driver: it starts again with cuInit. */
    drv.ready = false;
    pthread_mutex_init(&drv.init_mu, NULL);
    ctx_depth = 0;
}

static long env_long(const char *name)
{
    const char *v = getenv(name);

    return v != NULL ? strtol(v, NULL, 10) : 0;
}

/* The simulated device a CUDA_VISIBLE_DEVICES entry names (an index or a UUID, or a unique
 * prefix of one), or -1. */
static int device_named(const char *e, size_t len)
{
    char *end;
    long i = strtol(e, &end, 10);
    int found = -1;

    if (len > 0 && (size_t)(end - e) == len)
        return i >= 0 && i < drv.shm->ngpu ? (int)i : -1;
    for (int d = 0; d < drv.shm->ngpu; d++)
        if (len >= 4 && strncmp(drv.shm->dev[d].uuid, e, len) == 0) {
            if (found >= 0)
                return -1; /* ambiguous */
            found = d;
        }
    return found;
}

/* As the real driver: the devices CUDA_VISIBLE_DEVICES lists, in its order, up to the first entry
 * that names none or one already listed; all of them when it is unset. */
static void visible_devices(void)
{
    const char *v = getenv("CUDA_VISIBLE_DEVICES");

    drv.nvisible = 0;
    if (v == NULL) {
        for (int d = 0; d < drv.shm->ngpu; d++)
            drv.visible[drv.nvisible++] = d;
        return;
    }
    while (*v != '\0' && drv.nvisible < drv.shm->ngpu) {
        size_t len = strcspn(v, ",");
        int d = device_named(v, len);

        for (int k = 0; d >= 0 && k < drv.nvisible; k++)
            if (drv.visible[k] == d)
                d = -1;
        if (d < 0)
            break;
        drv.visible[drv.nvisible++] = d;
        v += len + (v[len] == ',');
    }
}

static CUresult driver_init(void)
{
    char msg[256];
    pthread_rwlockattr_t ra;
    uint64_t span = 1ull << 30;

    if (simgpu_state_open(&drv.shm, msg, sizeof(msg)) != 0) {
        simgpu_say_once("init", "%s", msg);
        return CUDA_ERROR_INVALID_VALUE;
    }
    drv.pid = getpid();
    simgpu_lock(drv.shm);
    drv.slot = simgpu_proc_slot(drv.shm, drv.pid, true);
    for (int i = 0; i < drv.shm->ngpu; i++)
        span += drv.shm->dev[i].mem_total * 2;
    simgpu_unlock(drv.shm);
    if (drv.slot == NULL) {
        simgpu_say_once("slots", "more than %d processes use the simulated GPUs",
                        SIMGPU_MAX_PROCS);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (simgpu_mem_init(&drv.mem, span) != 0)
        return CUDA_ERROR_OUT_OF_MEMORY;
    pthread_rwlockattr_init(&ra);
    /* A waiting checkpoint lock must not be starved by a stream of calls. */
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&drv.gate, &ra);
    pthread_rwlockattr_destroy(&ra);
    memset(drv.primary, 0, sizeof(drv.primary));
    drv.flip_after = env_long("SIMGPU_FAULT_FLIP_AFTER");
    visible_devices();
    drv.launches = 0;
    if (simgpu__ckpt_start() != 0)
        return CUDA_ERROR_OPERATING_SYSTEM;
    return CUDA_SUCCESS;
}

SIMGPU_EXPORT CUresult cuInit(unsigned int flags)
{
    static bool atfork;
    CUresult rc = CUDA_SUCCESS;

    if (flags != 0)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&drv.init_mu);
    if (!atfork) {
        pthread_atfork(NULL, NULL, after_fork_child);
        atfork = true;
    }
    if (!drv.ready) {
        rc = driver_init();
        drv.ready = rc == CUDA_SUCCESS;
    }
    pthread_mutex_unlock(&drv.init_mu);
    return rc;
}

CUresult simgpu__enter(void)
{
    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    pthread_rwlock_rdlock(&drv.gate);
    return CUDA_SUCCESS;
}

void simgpu__leave(void)
{
    pthread_rwlock_unlock(&drv.gate);
}

SIMGPU_EXPORT CUresult cuDriverGetVersion(int *version)
{
    if (version == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *version = GCUDA_API_VERSION;
    return CUDA_SUCCESS;
}

static const struct {
    CUresult code;
    const char *name, *text;
} errors[] = {
    {CUDA_SUCCESS, "CUDA_SUCCESS", "no error"},
    {CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {CUDA_ERROR_NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {CUDA_ERROR_INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {CUDA_ERROR_INVALID_IMAGE, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {CUDA_ERROR_INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {CUDA_ERROR_INVALID_PTX, "CUDA_ERROR_INVALID_PTX", "a PTX JIT compilation failed"},
    {CUDA_ERROR_INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {CUDA_ERROR_ILLEGAL_STATE, "CUDA_ERROR_ILLEGAL_STATE", "the operation is not permitted "
                                                           "in the current state"},
    {CUDA_ERROR_NOT_FOUND, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {CUDA_ERROR_NOT_READY, "CUDA_ERROR_NOT_READY", "device not ready"},
    {CUDA_ERROR_ILLEGAL_ADDRESS, "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was "
                                                               "encountered"},
    {CUDA_ERROR_NOT_PERMITTED, "CUDA_ERROR_NOT_PERMITTED", "operation not permitted"},
    {CUDA_ERROR_NOT_SUPPORTED, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported"},
    {CUDA_ERROR_TIMEOUT, "CUDA_ERROR_TIMEOUT", "wait operation timed out"},
    {CUDA_ERROR_OPERATING_SYSTEM, "CUDA_ERROR_OPERATING_SYSTEM", "OS call failed"},
    {CUDA_ERROR_UNKNOWN, "CUDA_ERROR_UNKNOWN", "unknown error"},
};

/* The name (or the sentence) of an error code, as cuGetErrorName (cuGetErrorString) give it. */
static CUresult error_text(CUresult error, bool name, const char **str)
{
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
        if (errors[i].code == error) {
            *str = name ? errors[i].name : errors[i].text;
            return CUDA_SUCCESS;
        }
    }
    *str = NULL;
    return CUDA_ERROR_INVALID_VALUE;
}

SIMGPU_EXPORT CUresult cuGetErrorString(CUresult error, const char **str)
{
    return error_text(error, false, str);
}

SIMGPU_EXPORT CUresult cuGetErrorName(CUresult error, const char **str)
{
    return error_text(error, true, str);
}

/* A device handle is the simulated device's index; only visible ones are valid. */
static CUresult check_dev(CUdevice dev)
{
    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    for (int k = 0; k < drv.nvisible; k++)
        if (drv.visible[k] == dev)
            return CUDA_SUCCESS;
    return CUDA_ERROR_INVALID_DEVICE;
}

SIMGPU_EXPORT CUresult cuDeviceGetCount(int *count)
{
    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (count == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *count = drv.nvisible;
    return CUDA_SUCCESS;
}

SIMGPU_EXPORT CUresult cuDeviceGet(CUdevice *device, int ordinal)
{
    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (ordinal < 0 || ordinal >= drv.nvisible)
        return CUDA_ERROR_INVALID_DEVICE;
    if (device == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *device = drv.visible[ordinal];
    return CUDA_SUCCESS;
}

SIMGPU_EXPORT CUresult cuDeviceGetName(char *name, int len, CUdevice dev)
{
    CUresult rc = check_dev(dev);

    if (rc != CUDA_SUCCESS)
        return rc;
    if (name == NULL || len <= 0)
        return CUDA_ERROR_INVALID_VALUE;
    snprintf(name, (size_t)len, "%s", drv.shm->dev[dev].name);
    return CUDA_SUCCESS;
}

SIMGPU_EXPORT CUresult cuDeviceGetUuid_v2(CUuuid *uuid, CUdevice dev)
{
    CUresult rc = check_dev(dev);
    const char *s;
    int n = 0;

    if (rc != CUDA_SUCCESS)
        return rc;
    if (uuid == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    /* The bytes of the "GPU-xxxxxxxx-..." text form. */
    for (s = drv.shm->dev[dev].uuid + 4; *s != '\0' && n < 16; s++) {
        unsigned v;

        if (*s == '-' || sscanf(s, "%2x", &v) != 1)
            continue;
        uuid->bytes[n++] = (char)v;
        s++;
    }
    return CUDA_SUCCESS;
}

SIMGPU_EXPORT CUresult cuDeviceGetUuid(CUuuid *uuid, CUdevice dev)
{
    return cuDeviceGetUuid_v2(uuid, dev);
}

SIMGPU_EXPORT CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
{
    CUresult rc = check_dev(dev);

    if (rc == CUDA_SUCCESS && bytes == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (rc == CUDA_SUCCESS)
        *bytes = drv.shm->dev[dev].mem_total;
    return rc;
}

static int attribute(CUdevice_attribute a, const struct simgpu_dev *d)
{
    switch (a) {
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK: return 1024;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK: return 49152;
    case CU_DEVICE_ATTRIBUTE_WARP_SIZE: return 32;
    case CU_DEVICE_ATTRIBUTE_CLOCK_RATE: return 1980000;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: return d->sms;
    case CU_DEVICE_ATTRIBUTE_INTEGRATED: return 0;
    case CU_DEVICE_ATTRIBUTE_PCI_BUS_ID: return (int)(d - drv.shm->dev) + 1;
    case CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE: return 2619000;
    case CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH: return 5120;
    case CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING: return 1;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: return 9;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: return 0;
    case CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED: return 1;
    case CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED: return 0;
    }
    return -1;
}

SIMGPU_EXPORT CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev)
{
    CUresult rc = check_dev(dev);
    int v;

    if (rc != CUDA_SUCCESS)
        return rc;
    if (pi == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    v = attribute(attrib, &drv.shm->dev[dev]);
    if (v < 0) {
        simgpu_say_once("attr", "device attribute %d is not simulated; it reads as 0",
                        (int)attrib);
        v = 0;
    }
    *pi = v;
    return CUDA_SUCCESS;
}

/* A context takes device memory of its own (SIMGPU_CONTEXT_MEMORY) while it lives. */
static CUresult ctx_open(struct CUctx_st *c, int dev, bool primary)
{
    int rc;

    simgpu_lock(drv.shm);
    rc = simgpu_charge(drv.shm, drv.slot, dev, drv.shm->ctx_bytes);
    simgpu_unlock(drv.shm);
    if (rc != 0)
        return CUDA_ERROR_OUT_OF_MEMORY;
    memset(c, 0, sizeof(*c));
    c->dev = dev;
    c->primary = primary;
    c->live = true;
    c->refs = 1;
    c->legacy.ctx = c;
    return CUDA_SUCCESS;
}

static void ctx_close(struct CUctx_st *c)
{
    simgpu_sleep_until(c->busy_until_ns);
    simgpu_lock(drv.shm);
    simgpu_uncharge(drv.shm, drv.slot, c->dev, drv.shm->ctx_bytes);
    simgpu_unlock(drv.shm);
    c->live = false;
}

SIMGPU_EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
    CUresult rc = check_dev(dev);
    struct CUctx_st *c;

    if (rc != CUDA_SUCCESS)
        return rc;
    if (pctx == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&drv.init_mu);
    c = &drv.primary[dev];
    if (c->live)
        c->refs++;
    else
        rc = ctx_open(c, dev, true);
    pthread_mutex_unlock(&drv.init_mu);
    if (rc == CUDA_SUCCESS)
        *pctx = c;
    return rc;
}

SIMGPU_EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
    CUresult rc = check_dev(dev);
    struct CUctx_st *c;

    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&drv.init_mu);
    c = &drv.primary[dev];
    if (!c->live)
        rc = CUDA_ERROR_INVALID_CONTEXT;
    else if (--c->refs == 0)
        ctx_close(c);
    pthread_mutex_unlock(&drv.init_mu);
    return rc;
}

SIMGPU_EXPORT CUresult cuDevicePrimaryCtxRelease(CUdevice dev)
{
    return cuDevicePrimaryCtxRelease_v2(dev);
}

SIMGPU_EXPORT CUresult cuDevicePrimaryCtxGetState(CUdevice dev, unsigned int *flags, int *active)
{
    CUresult rc = check_dev(dev);

    if (rc != CUDA_SUCCESS)
        return rc;
    if (flags == NULL || active == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *flags = 0;
    *active = drv.primary[dev].live;
    return CUDA_SUCCESS;
}

static void ctx_push(struct CUctx_st *c)
{
    if (ctx_depth < CTX_STACK)
        ctx_stack[ctx_depth++] = c;
}

SIMGPU_EXPORT CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
    CUresult rc = check_dev(dev);
    struct CUctx_st *c;

    if (rc != CUDA_SUCCESS)
        return rc;
    if (pctx == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (ctx_depth == CTX_STACK)
        return CUDA_ERROR_INVALID_CONTEXT;
    c = malloc(sizeof(*c));
    if (c == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    rc = ctx_open(c, dev, false);
    if (rc != CUDA_SUCCESS) {
        free(c);
        return rc;
    }
    ctx_push(c);
    *pctx = c;
    return CUDA_SUCCESS;
}

/* CUDA 13's form; simgpu takes no creation parameters. */
SIMGPU_EXPORT CUresult cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *params,
                                      unsigned int flags, CUdevice dev)
{
    if (params != NULL) {
        simgpu_say_once("ctxparams", "cuCtxCreate_v4 with creation parameters is not supported");
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    return cuCtxCreate_v2(pctx, flags, dev);
}

SIMGPU_EXPORT CUresult cuCtxDestroy_v2(CUcontext ctx)
{
    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (ctx == NULL || ctx->primary || !ctx->live)
        return CUDA_ERROR_INVALID_CONTEXT;
    for (int i = 0; i < ctx_depth; i++)
        if (ctx_stack[i] == ctx)
            ctx_stack[i] = NULL;
    while (ctx_depth > 0 && ctx_stack[ctx_depth - 1] == NULL)
        ctx_depth--;
    ctx_close(ctx);
    free(ctx);
    return CUDA_SUCCESS;
}

struct CUctx_st *simgpu__ctx(void)
{
    return ctx_depth > 0 ? ctx_stack[ctx_depth - 1] : NULL;
}

SIMGPU_EXPORT CUresult cuCtxSetCurrent(CUcontext ctx)
{
    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (ctx == NULL) {
        if (ctx_depth > 0)
            ctx_depth--;
        return CUDA_SUCCESS;
    }
    if (!ctx->live)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (ctx_depth == 0)
        ctx_depth = 1;
    ctx_stack[ctx_depth - 1] = ctx;
    return CUDA_SUCCESS;
}

SIMGPU_EXPORT CUresult cuCtxGetCurrent(CUcontext *pctx)
{
    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (pctx == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *pctx = simgpu__ctx();
    return CUDA_SUCCESS;
}

SIMGPU_EXPORT CUresult cuCtxPushCurrent_v2(CUcontext ctx)
{
    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (ctx == NULL || !ctx->live || ctx_depth == CTX_STACK)
        return CUDA_ERROR_INVALID_CONTEXT;
    ctx_push(ctx);
    return CUDA_SUCCESS;
}

SIMGPU_EXPORT CUresult cuCtxPopCurrent_v2(CUcontext *pctx)
{
    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (ctx_depth == 0)
        return CUDA_ERROR_INVALID_CONTEXT;
    ctx_depth--;
    if (pctx != NULL)
        *pctx = ctx_stack[ctx_depth];
    return CUDA_SUCCESS;
}

SIMGPU_EXPORT CUresult cuCtxGetDevice(CUdevice *device)
{
    struct CUctx_st *c = simgpu__ctx();

    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (c == NULL)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (device == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *device = c->dev;
    return CUDA_SUCCESS;
}

SIMGPU_EXPORT CUresult cuCtxSynchronize(void)
{
    struct CUctx_st *c = simgpu__ctx();
    CUresult rc = simgpu__enter();

    if (rc != CUDA_SUCCESS)
        return rc;
    if (c == NULL)
        rc = CUDA_ERROR_INVALID_CONTEXT;
    else
        simgpu_sleep_until(c->busy_until_ns);
    simgpu__leave();
    return rc;
}

struct CUstream_st *simgpu__stream(CUstream s, struct CUctx_st *ctx)
{
    if (s == NULL || s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD)
        return ctx != NULL ? &ctx->legacy : NULL;
    return s;
}

int64_t simgpu__enqueue(struct CUstream_st *st, int64_t duration_ns)
{
    int64_t now = simgpu_now_ns();
    int64_t start = st->ready_ns > now ? st->ready_ns : now;

    st->ready_ns = start + duration_ns;
    if (st->ctx->busy_until_ns < st->ready_ns)
        st->ctx->busy_until_ns = st->ready_ns;
    return st->ready_ns;
}

int64_t simgpu__link_ns(uint64_t bytes)
{
    return (int64_t)((double)bytes / (double)drv.shm->link_bps * 1e9);
}

SIMGPU_EXPORT CUresult cuStreamCreate(CUstream *phStream, unsigned int Flags)
{
    struct CUctx_st *c = simgpu__ctx();
    struct CUstream_st *st;

    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (c == NULL)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (phStream == NULL || (Flags & ~(unsigned)CU_STREAM_NON_BLOCKING) != 0)
        return CUDA_ERROR_INVALID_VALUE;
    st = calloc(1, sizeof(*st));
    if (st == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    st->ctx = c;
    st->flags = Flags;
    *phStream = st;
    return CUDA_SUCCESS;
}

SIMGPU_EXPORT CUresult cuStreamDestroy_v2(CUstream hStream)
{
    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (hStream == NULL || hStream == CU_STREAM_LEGACY || hStream == CU_STREAM_PER_THREAD)
        return CUDA_ERROR_INVALID_HANDLE;
    /* Work already queued completes on its own; the handle goes now. */
    free(hStream);
    return CUDA_SUCCESS;
}

SIMGPU_EXPORT CUresult cuStreamSynchronize(CUstream hStream)
{
    CUresult rc = simgpu__enter();
    struct CUstream_st *st;

    if (rc != CUDA_SUCCESS)
        return rc;
    st = simgpu__stream(hStream, simgpu__ctx());
    if (st == NULL)
        rc = CUDA_ERROR_INVALID_CONTEXT;
    else
        simgpu_sleep_until(st->ready_ns);
    simgpu__leave();
    return rc;
}

SIMGPU_EXPORT CUresult cuStreamQuery(CUstream hStream)
{
    struct CUstream_st *st;

    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    st = simgpu__stream(hStream, simgpu__ctx());
    if (st == NULL)
        return CUDA_ERROR_INVALID_CONTEXT;
    return simgpu_now_ns() >= st->ready_ns ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

SIMGPU_EXPORT CUresult cuStreamWaitEvent(CUstream hStream, CUevent hEvent, unsigned int Flags)
{
    struct CUstream_st *st;

    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    st = simgpu__stream(hStream, simgpu__ctx());
    if (st == NULL)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (hEvent == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if (hEvent->recorded && hEvent->t_ns > st->ready_ns)
        st->ready_ns = hEvent->t_ns;
    return CUDA_SUCCESS;
}

SIMGPU_EXPORT CUresult cuEventCreate(CUevent *phEvent, unsigned int Flags)
{
    struct CUevent_st *e;

    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (phEvent == NULL || (Flags & ~3u) != 0)
        return CUDA_ERROR_INVALID_VALUE;
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    e->flags = Flags;
    *phEvent = e;
    return CUDA_SUCCESS;
}

SIMGPU_EXPORT CUresult cuEventDestroy_v2(CUevent hEvent)
{
    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (hEvent == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    free(hEvent);
    return CUDA_SUCCESS;
}

SIMGPU_EXPORT CUresult cuEventRecord(CUevent hEvent, CUstream hStream)
{
    struct CUstream_st *st;
    int64_t now = simgpu_now_ns();

    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (hEvent == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    st = simgpu__stream(hStream, simgpu__ctx());
    if (st == NULL)
        return CUDA_ERROR_INVALID_CONTEXT;
    hEvent->t_ns = st->ready_ns > now ? st->ready_ns : now;
    hEvent->recorded = true;
    return CUDA_SUCCESS;
}

SIMGPU_EXPORT CUresult cuEventSynchronize(CUevent hEvent)
{
    CUresult rc = simgpu__enter();

    if (rc != CUDA_SUCCESS)
        return rc;
    if (hEvent == NULL)
        rc = CUDA_ERROR_INVALID_HANDLE;
    else if (hEvent->recorded)
        simgpu_sleep_until(hEvent->t_ns);
    simgpu__leave();
    return rc;
}

SIMGPU_EXPORT CUresult cuEventQuery(CUevent hEvent)
{
    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (hEvent == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    return !hEvent->recorded || simgpu_now_ns() >= hEvent->t_ns ? CUDA_SUCCESS
                                                                 : CUDA_ERROR_NOT_READY;
}

SIMGPU_EXPORT CUresult cuEventElapsedTime_v2(float *pMilliseconds, CUevent hStart, CUevent hEnd)
{
    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (pMilliseconds == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (hStart == NULL || hEnd == NULL || !hStart->recorded || !hEnd->recorded ||
        ((hStart->flags | hEnd->flags) & CU_EVENT_DISABLE_TIMING) != 0)
        return CUDA_ERROR_INVALID_HANDLE;
    if (simgpu_now_ns() < hStart->t_ns || simgpu_now_ns() < hEnd->t_ns)
        return CUDA_ERROR_NOT_READY;
    *pMilliseconds = (float)((double)(hEnd->t_ns - hStart->t_ns) / 1e6);
    return CUDA_SUCCESS;
}

/* The name before CUDA 12.8; the same call. */
SIMGPU_EXPORT CUresult cuEventElapsedTime(float *pMilliseconds, CUevent hStart, CUevent hEnd)
{
    return cuEventElapsedTime_v2(pMilliseconds, hStart, hEnd);
}
