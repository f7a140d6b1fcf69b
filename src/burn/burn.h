/*
 * gpool-burn: a small CUDA driver API workload that holds GPU memory, runs
 * kernels at a chosen duty cycle and verifies its data.  It loads the
 * driver with dlopen, so the same binary runs on simgpu and on a real GPU.
 */
#ifndef GPOOL_BURN_H
#define GPOOL_BURN_H

#include "common/gcuda.h"

extern const char burn_ptx[];

/* The driver calls gpool-burn makes, taken from libcuda.so.1 by name. */
struct burn_cuda {
    void *lib;
    __typeof__(cuInit) *Init;
    __typeof__(cuGetErrorName) *GetErrorName;
    __typeof__(cuDeviceGet) *DeviceGet;
    __typeof__(cuDeviceGetName) *DeviceGetName;
    __typeof__(cuDeviceGetAttribute) *DeviceGetAttribute;
    __typeof__(cuDevicePrimaryCtxRetain) *DevicePrimaryCtxRetain;
    __typeof__(cuCtxSetCurrent) *CtxSetCurrent;
    __typeof__(cuCtxSynchronize) *CtxSynchronize;
    __typeof__(cuMemGetInfo_v2) *MemGetInfo;
    __typeof__(cuMemAlloc_v2) *MemAlloc;
    __typeof__(cuMemFree_v2) *MemFree;
    __typeof__(cuMemcpyHtoD_v2) *MemcpyHtoD;
    __typeof__(cuMemcpyDtoH_v2) *MemcpyDtoH;
    __typeof__(cuModuleLoadDataEx) *ModuleLoadDataEx;
    __typeof__(cuModuleGetFunction) *ModuleGetFunction;
    __typeof__(cuLaunchKernel) *LaunchKernel;
};

/* Loads the driver; 0, or -1 with a message in err. */
int burn_cuda_load(struct burn_cuda *cu, char *err, size_t errlen);
/* The name of a driver error, for messages. */
const char *burn_cuda_error(const struct burn_cuda *cu, CUresult rc);

#endif
