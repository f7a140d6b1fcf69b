/*
 * The host implementations of the kernels simgpu knows by name, the default
 * run time of the others, and finding the kernels of a PTX module.
 */
#include "simgpu/kernels.h"

#include <ctype.h>
#include <string.h>

#include "burn/burn_math.h"
#include "common/gcuda.h"

#define WAVE_NS 10000

int64_t simgpu_kernel_default_ns(const struct simgpu_launch *l)
{
    uint64_t blocks = (uint64_t)l->grid[0] * l->grid[1] * l->grid[2];
    uint64_t waves = (blocks + (uint64_t)l->sms - 1) / (uint64_t)l->sms;

    return (int64_t)(waves == 0 ? 1 : waves) * WAVE_NS;
}

/* gpool_burn_step(unsigned int *buf, unsigned long long nwords, unsigned int iter,
 *                 unsigned long long spin_ns) */
static int burn_run(const struct simgpu_launch *l, struct simgpu_mem *mem)
{
    uint64_t va = *(uint64_t *)l->params[0];
    uint64_t n = *(uint64_t *)l->params[1];
    uint32_t iter = *(uint32_t *)l->params[2];
    uint64_t i = 0;

    while (i < n) {
        size_t avail;
        uint32_t *w = (uint32_t *)simgpu_mem_host(mem, va + i * 4, &avail);
        uint64_t m = avail / 4;

        if (w == NULL || m == 0)
            return CUDA_ERROR_ILLEGAL_ADDRESS;
        m = m < n - i ? m : n - i;
        for (uint64_t k = 0; k < m; k++)
            w[k] = burn_step(w[k], i + k, iter);
        i += m;
    }
    return 0;
}

static int64_t burn_duration(const struct simgpu_launch *l)
{
    uint64_t n = *(uint64_t *)l->params[1];
    int64_t spin = (int64_t) * (uint64_t *)l->params[3];
    /* Each word is read and written once. */
    int64_t pass = (int64_t)((double)n * 8 / (double)l->membw_bps * 1e9);

    return spin > pass ? spin : pass;
}

static const struct simgpu_kernel_impl kernels[] = {
    {"gpool_burn_step", burn_run, burn_duration},
};

const struct simgpu_kernel_impl *simgpu_kernel_find(const char *name)
{
    for (size_t i = 0; i < sizeof(kernels) / sizeof(kernels[0]); i++)
        if (strcmp(kernels[i].name, name) == 0)
            return &kernels[i];
    return NULL;
}

int simgpu_ptx_entries(const char *ptx, char (*names)[128], int max)
{
    const char *p = ptx;
    int n = 0;

    if (strstr(ptx, ".version") == NULL || strstr(ptx, ".target") == NULL)
        return -1;
    while ((p = strstr(p, ".entry")) != NULL) {
        size_t len = 0;

        p += strlen(".entry");
        if (!isspace((unsigned char)*p))
            continue;
        while (isspace((unsigned char)*p))
            p++;
        while (p[len] != '\0' && (isalnum((unsigned char)p[len]) || p[len] == '_' ||
                                  p[len] == '$' || p[len] == '.'))
            len++;
        if (len == 0 || len >= sizeof(names[0]))
            continue;
        if (n < max) {
            memcpy(names[n], p, len);
            names[n][len] = '\0';
        }
        n++;
        p += len;
    }
    return n < max ? n : max;
}
