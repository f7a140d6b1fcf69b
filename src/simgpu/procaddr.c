/*
 * cuGetProcAddress, the way the CUDA runtime has found every driver call
 * since CUDA 11.3, and the calls simgpu knows but does not simulate: each of
 * those returns CUDA_ERROR_NOT_SUPPORTED and says so once on stderr.
 */
#include <string.h>

#include "simgpu/driver.h"

/* The calls simgpu does not simulate.  Their arguments are never read. */
#define SIMGPU_UNSUPPORTED(X)                                                                      \
    X(cuMemHostAlloc) X(cuMemHostRegister_v2)                                                      \
    X(cuMemHostUnregister) X(cuMemPoolCreate) X(cuMemcpy)                                          \
    X(cuMemcpyAsync) X(cuMemcpyPeer) X(cuMemcpy2D_v2) X(cuMemcpy3D_v2) X(cuMemsetD16_v2)          \
    X(cuMemsetD8Async) X(cuMemsetD32Async) X(cuMemPrefetchAsync) X(cuMemAdvise)                   \
    X(cuPointerGetAttribute) X(cuPointerGetAttributes) X(cuIpcGetMemHandle)                       \
    X(cuIpcOpenMemHandle_v2) X(cuIpcCloseMemHandle) X(cuStreamAddCallback) X(cuLaunchHostFunc)    \
    X(cuFuncGetAttribute) X(cuFuncSetAttribute)                                                    \
    X(cuFuncSetCacheConfig) X(cuOccupancyMaxActiveBlocksPerMultiprocessor) X(cuModuleGetGlobal_v2)\
    X(cuModuleLoad) X(cuModuleLoadFatBinary) X(cuLibraryLoadData) X(cuLibraryGetKernel)           \
    X(cuLibraryUnload) X(cuLinkCreate_v2) X(cuGraphCreate)                                         \
    X(cuStreamBeginCapture_v2) X(cuStreamEndCapture) X(cuDeviceCanAccessPeer)                     \
    X(cuCtxEnablePeerAccess) X(cuDeviceGetPCIBusId) X(cuDeviceGetByPCIBusId)                      \
    X(cuCtxGetApiVersion) X(cuCtxSetLimit) X(cuCtxGetLimit) X(cuDevicePrimaryCtxSetFlags_v2)      \
    X(cuDevicePrimaryCtxReset_v2) X(cuGetExportTable) X(cuDeviceGetLuid)                          \
    X(cuStreamCreateWithPriority) X(cuStreamGetPriority) X(cuDeviceGetDefaultMemPool)             \
    X(cuEventRecordWithFlags) X(cuStreamGetCtx) X(cuCheckpointProcessGetRestoreThreadId)

#define STUB(name)                                                                                 \
    CUresult name(void);                                                                           \
    SIMGPU_EXPORT CUresult name(void)                                                              \
    {                                                                                              \
        simgpu_say_once(#name, "%s is not supported by the simulated driver", #name);              \
        return CUDA_ERROR_NOT_SUPPORTED;                                                           \
    }
SIMGPU_UNSUPPORTED(STUB)
#undef STUB

/* Known calls with their real prototypes that simgpu does not simulate: memory pools (no pool
 * can be made) and graphs. */
SIMGPU_EXPORT CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytesize,
                                               CUmemoryPool pool, CUstream hStream)
{
    (void)dptr, (void)bytesize, (void)pool, (void)hStream;
    simgpu_say_once("cuMemAllocFromPoolAsync", "memory pools are not supported by the simulated driver");
    return CUDA_ERROR_NOT_SUPPORTED;
}

SIMGPU_EXPORT CUresult cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream)
{
    (void)hGraphExec, (void)hStream;
    simgpu_say_once("cuGraphLaunch", "graphs are not supported by the simulated driver");
    return CUDA_ERROR_NOT_SUPPORTED;
}

CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags);

struct proc {
    const char *name; /* the name without version suffix, as the runtime asks for it */
    int since;        /* the first CUDA version whose callers get this entry point */
    void *fn;
};

#define P(name, since, fn) {#name, since, (void *)fn}
/* Newest first, so that the first match whose version the caller has is the right one. */
static const struct proc procs[] = {
    P(cuInit, 2000, cuInit),
    P(cuDriverGetVersion, 2020, cuDriverGetVersion),
    P(cuGetErrorString, 6000, cuGetErrorString),
    P(cuGetErrorName, 6000, cuGetErrorName),
    P(cuGetProcAddress, 12000, cuGetProcAddress_v2),
    P(cuGetProcAddress, 11030, cuGetProcAddress),
    P(cuDeviceGet, 2000, cuDeviceGet),
    P(cuDeviceGetCount, 2000, cuDeviceGetCount),
    P(cuDeviceGetName, 2000, cuDeviceGetName),
    P(cuDeviceGetUuid, 11040, cuDeviceGetUuid_v2),
    P(cuDeviceGetUuid, 9020, cuDeviceGetUuid),
    P(cuDeviceTotalMem, 3020, cuDeviceTotalMem_v2),
    P(cuDeviceGetAttribute, 2000, cuDeviceGetAttribute),
    P(cuDevicePrimaryCtxRetain, 7000, cuDevicePrimaryCtxRetain),
    P(cuDevicePrimaryCtxRelease, 11000, cuDevicePrimaryCtxRelease_v2),
    P(cuDevicePrimaryCtxRelease, 7000, cuDevicePrimaryCtxRelease),
    P(cuDevicePrimaryCtxGetState, 7000, cuDevicePrimaryCtxGetState),
    P(cuCtxCreate, 12050, cuCtxCreate_v4),
    P(cuCtxCreate, 3020, cuCtxCreate_v2),
    P(cuCtxDestroy, 4000, cuCtxDestroy_v2),
    P(cuCtxSetCurrent, 4000, cuCtxSetCurrent),
    P(cuCtxGetCurrent, 4000, cuCtxGetCurrent),
    P(cuCtxGetDevice, 2000, cuCtxGetDevice),
    P(cuCtxSynchronize, 2000, cuCtxSynchronize),
    P(cuCtxPushCurrent, 4000, cuCtxPushCurrent_v2),
    P(cuCtxPopCurrent, 4000, cuCtxPopCurrent_v2),
    P(cuMemGetInfo, 3020, cuMemGetInfo_v2),
    P(cuMemAlloc, 3020, cuMemAlloc_v2),
    P(cuMemFree, 3020, cuMemFree_v2),
    P(cuMemAllocPitch, 3020, cuMemAllocPitch_v2),
    P(cuMemAllocHost, 3020, cuMemAllocHost_v2),
    P(cuMemFreeHost, 2000, cuMemFreeHost),
    P(cuMemAllocManaged, 6000, cuMemAllocManaged),
    P(cuMemAllocAsync, 11020, cuMemAllocAsync),
    P(cuMemAllocFromPoolAsync, 11020, cuMemAllocFromPoolAsync),
    P(cuMemFreeAsync, 11020, cuMemFreeAsync),
    P(cuMemGetAddressRange, 3020, cuMemGetAddressRange_v2),
    P(cuMemcpyHtoD, 3020, cuMemcpyHtoD_v2),
    P(cuMemcpyDtoH, 3020, cuMemcpyDtoH_v2),
    P(cuMemcpyDtoD, 3020, cuMemcpyDtoD_v2),
    P(cuMemcpyHtoDAsync, 3020, cuMemcpyHtoDAsync_v2),
    P(cuMemcpyDtoHAsync, 3020, cuMemcpyDtoHAsync_v2),
    P(cuMemsetD8, 3020, cuMemsetD8_v2),
    P(cuMemsetD32, 3020, cuMemsetD32_v2),
    P(cuMemAddressReserve, 10020, cuMemAddressReserve),
    P(cuMemAddressFree, 10020, cuMemAddressFree),
    P(cuMemCreate, 10020, cuMemCreate),
    P(cuMemRelease, 10020, cuMemRelease),
    P(cuMemMap, 10020, cuMemMap),
    P(cuMemUnmap, 10020, cuMemUnmap),
    P(cuMemSetAccess, 10020, cuMemSetAccess),
    P(cuMemGetAllocationGranularity, 10020, cuMemGetAllocationGranularity),
    P(cuStreamCreate, 2000, cuStreamCreate),
    P(cuStreamDestroy, 4000, cuStreamDestroy_v2),
    P(cuStreamSynchronize, 2000, cuStreamSynchronize),
    P(cuStreamQuery, 2000, cuStreamQuery),
    P(cuStreamWaitEvent, 3020, cuStreamWaitEvent),
    P(cuEventCreate, 2000, cuEventCreate),
    P(cuEventDestroy, 4000, cuEventDestroy_v2),
    P(cuEventRecord, 2000, cuEventRecord),
    P(cuEventSynchronize, 2000, cuEventSynchronize),
    P(cuEventQuery, 2000, cuEventQuery),
    P(cuEventElapsedTime, 12080, cuEventElapsedTime_v2),
    P(cuEventElapsedTime, 2000, cuEventElapsedTime),
    P(cuModuleLoadData, 2000, cuModuleLoadData),
    P(cuModuleLoadDataEx, 2010, cuModuleLoadDataEx),
    P(cuModuleGetFunction, 2000, cuModuleGetFunction),
    P(cuModuleUnload, 2000, cuModuleUnload),
    P(cuLaunchKernel, 4000, cuLaunchKernel),
    P(cuLaunchKernelEx, 11060, cuLaunchKernelEx),
    P(cuLaunchCooperativeKernel, 9000, cuLaunchCooperativeKernel),
    P(cuGraphLaunch, 10000, cuGraphLaunch),
    P(cuCheckpointProcessGetState, 12080, cuCheckpointProcessGetState),
    P(cuCheckpointProcessLock, 12080, cuCheckpointProcessLock),
    P(cuCheckpointProcessCheckpoint, 12080, cuCheckpointProcessCheckpoint),
    P(cuCheckpointProcessRestore, 12080, cuCheckpointProcessRestore),
    P(cuCheckpointProcessUnlock, 12080, cuCheckpointProcessUnlock),
#define UNSUPPORTED_ENTRY(name) {#name, 0, (void *)name},
    SIMGPU_UNSUPPORTED(UNSUPPORTED_ENTRY)
#undef UNSUPPORTED_ENTRY
};
#undef P

/* The runtime may ask for a name with its version suffix; the table holds names without. */
static bool same_call(const char *want, const char *name)
{
    size_t n = strlen(name);

    if (strcmp(want, name) == 0)
        return true;
    if (strncmp(want, name, n) != 0)
        return false;
    want += n;
    return strcmp(want, "_v2") == 0 || strcmp(want, "_v3") == 0 || strcmp(want, "_v4") == 0 ||
           strcmp(want, "_ptsz") == 0 || strcmp(want, "_ptds") == 0 ||
           strcmp(want, "_v2_ptsz") == 0 || strcmp(want, "_v2_ptds") == 0;
}

static bool unsupported_name(const char *name, const char *entry)
{
    size_t n = strlen(entry);

    /* The stubs carry their suffix ("cuMemAllocHost_v2"); callers ask without it. */
    return strcmp(name, entry) == 0 ||
           (n > 3 && strncmp(entry + n - 3, "_v2", 3) == 0 && strlen(name) == n - 3 &&
            strncmp(name, entry, n - 3) == 0);
}

static CUresult lookup(const char *symbol, void **pfn, int version,
                       CUdriverProcAddressQueryResult *status)
{
    bool seen = false;

    for (size_t i = 0; i < sizeof(procs) / sizeof(procs[0]); i++) {
        const struct proc *p = &procs[i];
        bool match = p->since == 0 ? unsupported_name(symbol, p->name) : same_call(symbol, p->name);

        if (!match)
            continue;
        seen = true;
        if (version >= p->since) {
            *pfn = p->fn;
            *status = CU_GET_PROC_ADDRESS_SUCCESS;
            return CUDA_SUCCESS;
        }
    }
    *pfn = NULL;
    *status = seen ? CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT
                   : CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    return CUDA_ERROR_NOT_FOUND;
}

SIMGPU_EXPORT CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion,
                                           cuuint64_t flags,
                                           CUdriverProcAddressQueryResult *symbolStatus)
{
    CUdriverProcAddressQueryResult status;

    if (symbol == NULL || pfn == NULL ||
        (flags & ~(cuuint64_t)(CU_GET_PROC_ADDRESS_LEGACY_STREAM |
                               CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM)) != 0)
        return CUDA_ERROR_INVALID_VALUE;
    /* Per-thread and legacy default streams behave alike on simulated GPUs. */
    CUresult rc = lookup(symbol, pfn, cudaVersion, &status);

    if (symbolStatus != NULL)
        *symbolStatus = status;
    return rc;
}

SIMGPU_EXPORT CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion,
                                        cuuint64_t flags)
{
    return cuGetProcAddress_v2(symbol, pfn, cudaVersion, flags, NULL);
}
