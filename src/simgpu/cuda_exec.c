/*
 * simgpu's driver, part three: modules and kernel launches.  A launch runs
 * the kernel's host implementation at once (when simgpu has one) and takes
 * its place on the device's shared timeline, after the kernels of every
 * process queued before it: that is how processes time-slice a GPU.
 */
#include <stdlib.h>
#include <string.h>

#include "simgpu/driver.h"
#include "simgpu/kernels.h"

#define drv simgpu__drv
#define MAX_KERNELS 256

struct CUfunc_st {
    char name[128];
    const struct simgpu_kernel_impl *impl;
};

struct CUmod_st {
    int nfn;
    struct CUfunc_st fn[];
};

SIMGPU_EXPORT CUresult cuModuleLoadData(CUmodule *module, const void *image)
{
    static char names[MAX_KERNELS][128];
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    struct CUmod_st *m;
    int n;

    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (simgpu__ctx() == NULL)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (module == NULL || image == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&mu);
    n = simgpu_ptx_entries(image, names, MAX_KERNELS);
    if (n < 0) {
        pthread_mutex_unlock(&mu);
        simgpu_say_once("image", "simgpu loads PTX text only; cubin and fatbin images are "
                                 "not supported");
        return CUDA_ERROR_INVALID_IMAGE;
    }
    m = calloc(1, sizeof(*m) + (size_t)n * sizeof(m->fn[0]));
    if (m == NULL) {
        pthread_mutex_unlock(&mu);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    m->nfn = n;
    for (int i = 0; i < n; i++) {
        memcpy(m->fn[i].name, names[i], sizeof(names[i]));
        m->fn[i].impl = simgpu_kernel_find(names[i]);
    }
    pthread_mutex_unlock(&mu);
    *module = m;
    return CUDA_SUCCESS;
}

SIMGPU_EXPORT CUresult cuModuleLoadDataEx(CUmodule *module, const void *image,
                                          unsigned int numOptions, CUjit_option *options,
                                          void **optionValues)
{
    /* JIT options only tune compilation and logs; simgpu compiles nothing. */
    return cuModuleLoadData(module, image);
}

SIMGPU_EXPORT CUresult cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod, const char *name)
{
    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (hfunc == NULL || hmod == NULL || name == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    for (int i = 0; i < hmod->nfn; i++) {
        if (strcmp(hmod->fn[i].name, name) == 0) {
            *hfunc = &hmod->fn[i];
            if (hmod->fn[i].impl == NULL)
                simgpu_say_once(name, "kernel %s has no host implementation: it takes time "
                                      "but changes no memory", name);
            return CUDA_SUCCESS;
        }
    }
    return CUDA_ERROR_NOT_FOUND;
}

SIMGPU_EXPORT CUresult cuModuleUnload(CUmodule hmod)
{
    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (hmod == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    free(hmod);
    return CUDA_SUCCESS;
}

static void flip_one(struct simgpu_phys *p, void *arg)
{
    struct simgpu_phys **largest = arg;

    if (p->data != NULL && (*largest == NULL || p->size > (*largest)->size))
        *largest = p;
}

void simgpu__maybe_flip(void)
{
    struct simgpu_phys *p = NULL;

    if (drv.flip_after <= 0 || ++drv.launches != drv.flip_after)
        return;
    simgpu_mem_lock(&drv.mem);
    simgpu_mem_each(&drv.mem, flip_one, &p);
    if (p != NULL) {
        p->data[p->size / 2 + 1] ^= 0x10;
        simgpu_say_once("flip", "SIMGPU_FAULT_FLIP_AFTER: flipped a bit of device memory");
    }
    simgpu_mem_unlock(&drv.mem);
}

/*
 * The host implementation runs during the call; the kernel's time on the device counts from the
 * call, so a host implementation slower than the kernel only makes the kernel that much longer.
 */
static CUresult launch(CUfunction f, const struct simgpu_launch *l, struct CUstream_st *st)
{
    int64_t called = simgpu_now_ns(), dur, ready;
    CUresult rc = CUDA_SUCCESS;

    if (f->impl != NULL) {
        simgpu_mem_lock(&drv.mem);
        rc = (CUresult)f->impl->run(l, &drv.mem);
        simgpu_mem_unlock(&drv.mem);
        dur = f->impl->duration_ns(l);
    } else {
        dur = simgpu_kernel_default_ns(l);
    }
    if (rc != CUDA_SUCCESS)
        return rc;
    ready = st->ready_ns > called ? st->ready_ns : called;
    if (ready + dur < simgpu_now_ns())
        dur = simgpu_now_ns() - ready;
    simgpu_lock(drv.shm);
    st->ready_ns = simgpu_schedule(drv.shm, st->ctx->dev, drv.pid, ready, dur);
    simgpu_unlock(drv.shm);
    if (st->ctx->busy_until_ns < st->ready_ns)
        st->ctx->busy_until_ns = st->ready_ns;
    simgpu__maybe_flip();
    return CUDA_SUCCESS;
}

SIMGPU_EXPORT CUresult cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                                      unsigned int gridDimZ, unsigned int blockDimX,
                                      unsigned int blockDimY, unsigned int blockDimZ,
                                      unsigned int sharedMemBytes, CUstream hStream,
                                      void **kernelParams, void **extra)
{
    struct CUctx_st *c = simgpu__ctx();
    struct CUstream_st *st = simgpu__stream(hStream, c);
    struct simgpu_launch l = {
        .grid = {gridDimX, gridDimY, gridDimZ},
        .block = {blockDimX, blockDimY, blockDimZ},
        .shmem = sharedMemBytes,
        .params = kernelParams,
    };
    CUresult rc = simgpu__enter();

    if (rc != CUDA_SUCCESS)
        return rc;
    if (st == NULL)
        rc = CUDA_ERROR_INVALID_CONTEXT;
    else if (f == NULL)
        rc = CUDA_ERROR_INVALID_HANDLE;
    else if (gridDimX * gridDimY * gridDimZ == 0 ||
             (unsigned long)blockDimX * blockDimY * blockDimZ - 1 >= 1024)
        rc = CUDA_ERROR_INVALID_VALUE;
    else if (extra != NULL || (kernelParams == NULL && f->impl != NULL)) {
        simgpu_say_once("extra", "cuLaunchKernel with packed parameters (extra) is not supported");
        rc = CUDA_ERROR_NOT_SUPPORTED;
    }
    if (rc == CUDA_SUCCESS) {
        l.sms = drv.shm->dev[st->ctx->dev].sms;
        l.membw_bps = drv.shm->membw_bps;
        rc = launch(f, &l, st);
    }
    simgpu__leave();
    return rc;
}

SIMGPU_EXPORT CUresult cuLaunchKernelEx(const CUlaunchConfig *config, CUfunction f,
                                        void **kernelParams, void **extra)
{
    if (config == NULL)
        return drv.ready ? CUDA_ERROR_INVALID_VALUE : CUDA_ERROR_NOT_INITIALIZED;
    /* Launch attributes (clusters, priorities, ...) change nothing on a simulated GPU. */
    return cuLaunchKernel(f, config->gridDimX, config->gridDimY, config->gridDimZ,
                          config->blockDimX, config->blockDimY, config->blockDimZ,
                          config->sharedMemBytes, config->hStream, kernelParams, extra);
}

SIMGPU_EXPORT CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned int gridDimX,
                                                 unsigned int gridDimY, unsigned int gridDimZ,
                                                 unsigned int blockDimX, unsigned int blockDimY,
                                                 unsigned int blockDimZ,
                                                 unsigned int sharedMemBytes, CUstream hStream,
                                                 void **kernelParams)
{
    return cuLaunchKernel(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ,
                          sharedMemBytes, hStream, kernelParams, NULL);
}
