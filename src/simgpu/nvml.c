/*
 * simgpu's NVML (libnvidia-ml.so.1): what the simulated GPUs report to the
 * agent.  Memory and busy time come from the shared state, so they add up
 * over every process using a device.  Utilisation is measured over the
 * last second of the device's kernel timeline.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/gnvml.h"
#include "simgpu/state.h"

#define SIMGPU_EXPORT __attribute__((visibility("default")))
#define WINDOW_NS 1000000000ll

static struct simgpu_shm *shm;
static pthread_mutex_t init_mu = PTHREAD_MUTEX_INITIALIZER;

/* A device handle is its index plus one, so that no handle is NULL. */
static int dev_of(nvmlDevice_t d)
{
    long i = (long)(uintptr_t)d - 1;

    return shm != NULL && i >= 0 && i < shm->ngpu ? (int)i : -1;
}

SIMGPU_EXPORT nvmlReturn_t nvmlInit_v2(void)
{
    char msg[256];
    nvmlReturn_t rc = NVML_SUCCESS;

    pthread_mutex_lock(&init_mu);
    if (shm == NULL && simgpu_state_open(&shm, msg, sizeof(msg)) != 0) {
        simgpu_say_once("init", "%s", msg);
        rc = NVML_ERROR_UNKNOWN;
    }
    pthread_mutex_unlock(&init_mu);
    return rc;
}

SIMGPU_EXPORT nvmlReturn_t nvmlInit(void)
{
    return nvmlInit_v2();
}

SIMGPU_EXPORT nvmlReturn_t nvmlShutdown(void)
{
    /* The mapping stays: other threads may still hold device handles. */
    return shm != NULL ? NVML_SUCCESS : NVML_ERROR_UNINITIALIZED;
}

SIMGPU_EXPORT const char *nvmlErrorString(nvmlReturn_t result)
{
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    default: return "Unknown Error";
    }
}

SIMGPU_EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
    if (shm == NULL)
        return NVML_ERROR_UNINITIALIZED;
    if (version == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    if ((size_t)snprintf(version, length, "simgpu-%d", 1) >= length)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    return NVML_SUCCESS;
}

SIMGPU_EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count)
{
    if (shm == NULL)
        return NVML_ERROR_UNINITIALIZED;
    if (count == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    *count = (unsigned)shm->ngpu;
    return NVML_SUCCESS;
}

SIMGPU_EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
    if (shm == NULL)
        return NVML_ERROR_UNINITIALIZED;
    if (device == NULL || index >= (unsigned)shm->ngpu)
        return NVML_ERROR_INVALID_ARGUMENT;
    *device = (nvmlDevice_t)(uintptr_t)(index + 1);
    return NVML_SUCCESS;
}

SIMGPU_EXPORT nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index)
{
    int d = dev_of(device);

    if (shm == NULL)
        return NVML_ERROR_UNINITIALIZED;
    if (d < 0 || index == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    *index = (unsigned)d;
    return NVML_SUCCESS;
}

static nvmlReturn_t copy_text(const char *s, char *out, unsigned int length)
{
    if (out == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(s) >= length)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(out, s, strlen(s) + 1);
    return NVML_SUCCESS;
}

SIMGPU_EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
    int d = dev_of(device);

    if (shm == NULL)
        return NVML_ERROR_UNINITIALIZED;
    return d < 0 ? NVML_ERROR_INVALID_ARGUMENT : copy_text(shm->dev[d].name, name, length);
}

SIMGPU_EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)
{
    int d = dev_of(device);

    if (shm == NULL)
        return NVML_ERROR_UNINITIALIZED;
    return d < 0 ? NVML_ERROR_INVALID_ARGUMENT : copy_text(shm->dev[d].uuid, uuid, length);
}

SIMGPU_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
    int d = dev_of(device);

    if (shm == NULL)
        return NVML_ERROR_UNINITIALIZED;
    if (d < 0 || memory == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    simgpu_lock(shm);
    simgpu_reap(shm);
    memory->total = shm->dev[d].mem_total;
    memory->used = shm->dev[d].mem_used;
    memory->free = memory->total - memory->used;
    simgpu_unlock(shm);
    return NVML_SUCCESS;
}

static unsigned percent(int64_t part, int64_t whole)
{
    return whole > 0 ? (unsigned)((part * 100 + whole / 2) / whole) : 0;
}

SIMGPU_EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device,
                                                         nvmlUtilization_t *utilization)
{
    int d = dev_of(device);
    int64_t now = simgpu_now_ns();

    if (shm == NULL)
        return NVML_ERROR_UNINITIALIZED;
    if (d < 0 || utilization == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    simgpu_lock(shm);
    utilization->gpu = percent(simgpu_busy_between(shm, d, 0, now - WINDOW_NS, now), WINDOW_NS);
    simgpu_unlock(shm);
    utilization->memory = 0;
    return NVML_SUCCESS;
}

SIMGPU_EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device,
                                                                   unsigned int *infoCount,
                                                                   nvmlProcessInfo_t *infos)
{
    int d = dev_of(device);
    unsigned n = 0;
    nvmlReturn_t rc = NVML_SUCCESS;

    if (shm == NULL)
        return NVML_ERROR_UNINITIALIZED;
    if (d < 0 || infoCount == NULL || (infos == NULL && *infoCount != 0))
        return NVML_ERROR_INVALID_ARGUMENT;
    simgpu_lock(shm);
    simgpu_reap(shm);
    for (int i = 0; i < SIMGPU_MAX_PROCS; i++) {
        const struct simgpu_proc *p = &shm->proc[i];

        if (p->pid == 0 || p->mem[d] == 0)
            continue;
        if (n < *infoCount)
            infos[n] = (nvmlProcessInfo_t){.pid = (unsigned)p->pid,
                                           .usedGpuMemory = p->mem[d],
                                           .gpuInstanceId = ~0u,
                                           .computeInstanceId = ~0u};
        else
            rc = NVML_ERROR_INSUFFICIENT_SIZE;
        n++;
    }
    simgpu_unlock(shm);
    *infoCount = n;
    return rc;
}

static unsigned long long wall_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (unsigned long long)ts.tv_sec * 1000000 + (unsigned long long)ts.tv_nsec / 1000;
}

/*
 * One sample per process with kernel time on the device, over the time since lastSeenTimeStamp
 * (microseconds of the wall clock, as NVML's), or over the last second when it is 0 or older
 * than the timeline simgpu keeps.
 */
SIMGPU_EXPORT nvmlReturn_t nvmlDeviceGetProcessUtilization(
    nvmlDevice_t device, nvmlProcessUtilizationSample_t *utilization,
    unsigned int *processSamplesCount, unsigned long long lastSeenTimeStamp)
{
    int d = dev_of(device);
    unsigned long long now_us = wall_us();
    int64_t now = simgpu_now_ns(), span = WINDOW_NS;
    unsigned n = 0;
    nvmlReturn_t rc = NVML_SUCCESS;

    if (shm == NULL)
        return NVML_ERROR_UNINITIALIZED;
    if (d < 0 || processSamplesCount == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (lastSeenTimeStamp != 0 && lastSeenTimeStamp < now_us)
        span = (int64_t)(now_us - lastSeenTimeStamp) * 1000;
    simgpu_lock(shm);
    for (int i = 0; i < SIMGPU_MAX_PROCS; i++) {
        const struct simgpu_proc *p = &shm->proc[i];
        int64_t busy;

        if (p->pid == 0)
            continue;
        busy = simgpu_busy_between(shm, d, p->pid, now - span, now);
        if (busy == 0)
            continue;
        if (utilization != NULL && n < *processSamplesCount)
            utilization[n] = (nvmlProcessUtilizationSample_t){
                .pid = (unsigned)p->pid, .timeStamp = now_us, .smUtil = percent(busy, span)};
        else
            rc = NVML_ERROR_INSUFFICIENT_SIZE;
        n++;
    }
    simgpu_unlock(shm);
    *processSamplesCount = n;
    return n == 0 && rc == NVML_SUCCESS ? NVML_ERROR_NOT_FOUND : rc;
}
