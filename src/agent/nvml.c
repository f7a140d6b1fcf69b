/*
 * NVML loaded once for all of the agent (see nvml.h).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>

#include "agent/nvml.h"

static struct agent_nvml nvml;
static bool loaded;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
    void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    __typeof__(nvmlInit_v2) *init;

    if (lib == NULL)
        return;
    *(void **)&init = dlsym(lib, "nvmlInit_v2");
    *(void **)&nvml.GetCount = dlsym(lib, "nvmlDeviceGetCount_v2");
    *(void **)&nvml.GetHandle = dlsym(lib, "nvmlDeviceGetHandleByIndex_v2");
    *(void **)&nvml.GetName = dlsym(lib, "nvmlDeviceGetName");
    *(void **)&nvml.GetUUID = dlsym(lib, "nvmlDeviceGetUUID");
    *(void **)&nvml.GetMemory = dlsym(lib, "nvmlDeviceGetMemoryInfo");
    *(void **)&nvml.GetUtilization = dlsym(lib, "nvmlDeviceGetUtilizationRates");
    *(void **)&nvml.GetProcesses = dlsym(lib, "nvmlDeviceGetComputeRunningProcesses_v3");
    *(void **)&nvml.GetProcessUtilization = dlsym(lib, "nvmlDeviceGetProcessUtilization");
    loaded = init != NULL && nvml.GetCount != NULL && nvml.GetHandle != NULL &&
             nvml.GetName != NULL && nvml.GetUUID != NULL && nvml.GetMemory != NULL &&
             init() == NVML_SUCCESS;
}

const struct agent_nvml *agent_nvml(void)
{
    pthread_once(&once, load);
    return loaded ? &nvml : NULL;
}
