/*
 * NVML for the agent's parts (discovery, caps, telemetry, swapping): libnvidia-ml.so.1 loaded
 * with dlopen (the real one, or simgpu's) and initialised once.  Needs libc and libdl only.
 */
#ifndef GPOOL_AGENT_NVML_H
#define GPOOL_AGENT_NVML_H

#include "common/gnvml.h"

struct agent_nvml {
    __typeof__(nvmlDeviceGetCount_v2) *GetCount;
    __typeof__(nvmlDeviceGetHandleByIndex_v2) *GetHandle;
    __typeof__(nvmlDeviceGetName) *GetName;
    __typeof__(nvmlDeviceGetUUID) *GetUUID;
    __typeof__(nvmlDeviceGetMemoryInfo) *GetMemory;
    __typeof__(nvmlDeviceGetUtilizationRates) *GetUtilization;         /* may be NULL */
    __typeof__(nvmlDeviceGetComputeRunningProcesses_v3) *GetProcesses; /* may be NULL */
    __typeof__(nvmlDeviceGetProcessUtilization) *GetProcessUtilization; /* may be NULL */
};

/* NVML, loaded and initialised on first use; NULL when this node has none. */
const struct agent_nvml *agent_nvml(void);

#endif
