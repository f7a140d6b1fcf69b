/*
 * What a node has: CPUs and memory from the system, GPUs from NVML (libnvidia-ml.so.1, loaded
 * with dlopen: the real one, or simgpu's).  A node without NVML registers with no GPUs.
 */
#include <stdio.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/nvml.h"

static json_t *gpus(char *err, size_t errlen)
{
    json_t *arr = json_array();
    const struct agent_nvml *n = agent_nvml();
    unsigned count = 0;

    if (n == NULL || n->GetCount(&count) != NVML_SUCCESS)
        return arr;
    for (unsigned i = 0; i < count && i < 16; i++) {
        nvmlDevice_t d;
        nvmlMemory_t m;
        char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE], uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE];

        if (n->GetHandle(i, &d) != NVML_SUCCESS || n->GetName(d, name, sizeof(name)) ||
            n->GetUUID(d, uuid, sizeof(uuid)) || n->GetMemory(d, &m)) {
            snprintf(err, errlen, "NVML could not describe GPU %u", i);
            json_decref(arr);
            return NULL;
        }
        json_array_append_new(arr, json_pack("{s:s, s:s, s:I}", "uuid", uuid, "model", name,
                                             "memory_bytes", (json_int_t)m.total));
    }
    return arr;
}

json_t *agent_discover(const char *name, char *err, size_t errlen)
{
    char host[256];
    struct sysinfo si;
    json_t *g;

    if (name == NULL) {
        if (gethostname(host, sizeof(host)) != 0)
            snprintf(host, sizeof(host), "node");
        host[sizeof(host) - 1] = '\0';
        name = host;
    }
    if (sysinfo(&si) != 0 || (g = gpus(err, errlen)) == NULL)
        return NULL;
    return json_pack("{s:s, s:I, s:I, s:o}", "name", name, "cpu_milli",
                     (json_int_t)sysconf(_SC_NPROCESSORS_ONLN) * 1000, "mem_mib",
                     (json_int_t)((uint64_t)si.totalram * si.mem_unit >> 20), "gpus", g);
}
