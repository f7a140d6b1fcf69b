/*
 * Loading the CUDA driver for gpool-burn.  The library is found the way the
 * CUDA runtime finds it (libcuda.so.1 on the loader's path), so pointing
 * LD_LIBRARY_PATH at simgpu runs the same binary on simulated GPUs.
 */
#include <dlfcn.h>
#include <stdio.h>

#include "burn/burn.h"

#define SYM(field, name)                                                                           \
    do {                                                                                           \
        *(void **)&cu->field = dlsym(cu->lib, name);                                               \
        if (cu->field == NULL) {                                                                   \
            snprintf(err, errlen, "the CUDA driver has no %s", name);                              \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

int burn_cuda_load(struct burn_cuda *cu, char *err, size_t errlen)
{
    cu->lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (cu->lib == NULL) {
        snprintf(err, errlen, "cannot load the CUDA driver: %s", dlerror());
        return -1;
    }
    SYM(Init, "cuInit");
    SYM(GetErrorName, "cuGetErrorName");
    SYM(DeviceGet, "cuDeviceGet");
    SYM(DeviceGetName, "cuDeviceGetName");
    SYM(DeviceGetAttribute, "cuDeviceGetAttribute");
    SYM(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    SYM(CtxSetCurrent, "cuCtxSetCurrent");
    SYM(CtxSynchronize, "cuCtxSynchronize");
    SYM(MemGetInfo, "cuMemGetInfo_v2");
    SYM(MemAlloc, "cuMemAlloc_v2");
    SYM(MemFree, "cuMemFree_v2");
    SYM(MemcpyHtoD, "cuMemcpyHtoD_v2");
    SYM(MemcpyDtoH, "cuMemcpyDtoH_v2");
    SYM(ModuleLoadDataEx, "cuModuleLoadDataEx");
    SYM(ModuleGetFunction, "cuModuleGetFunction");
    SYM(LaunchKernel, "cuLaunchKernel");
    return 0;
}

const char *burn_cuda_error(const struct burn_cuda *cu, CUresult rc)
{
    const char *name = NULL;

    if (cu->GetErrorName == NULL || cu->GetErrorName(rc, &name) != CUDA_SUCCESS || name == NULL)
        return "unknown CUDA error";
    return name;
}
