/*
 * What libgpool-cuda adds to the calls it hooks: the host time of cuLaunchKernel (an empty
 * kernel, launched asynchronously) and of a cuMemAlloc + cuMemFree pair.  Run it once plainly and
 * once with LD_PRELOAD=libgpool-cuda.so (as a job alone on its GPU, where no pacing is needed);
 * the difference is the library's cost.  Works on simgpu and on a real GPU.
 *
 *   gpool-bench-preload [LAUNCHES] [ALLOCS]
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/gcuda.h"

static const char ptx[] = ".version 7.0\n.target sm_70\n.address_size 64\n"
                          ".visible .entry gpool_nop()\n{\n\tret;\n}\n";

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

#define SYM(f, name)                                                                               \
    if ((*(void **)&f = dlsym(lib, name)) == NULL) {                                               \
        fprintf(stderr, "gpool-bench-preload: no %s\n", name);                                     \
        return 3;                                                                                  \
    }

int main(int argc, char **argv)
{
    long launches = argc > 1 ? atol(argv[1]) : 200000, allocs = argc > 2 ? atol(argv[2]) : 20000;
    void *lib = dlopen("libcuda.so.1", RTLD_NOW);
    CUresult (*init)(unsigned), (*dev_get)(CUdevice *, int), (*retain)(CUcontext *, CUdevice),
        (*set)(CUcontext), (*load)(CUmodule *, const void *),
        (*getfn)(CUfunction *, CUmodule, const char *), (*sync)(void),
        (*launch)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                  CUstream, void **, void **),
        (*alloc)(CUdeviceptr *, size_t), (*mfree)(CUdeviceptr);
    CUdevice d;
    CUcontext c;
    CUmodule m;
    CUfunction f;
    CUdeviceptr p;
    double t0, launch_ns, alloc_ns;

    if (lib == NULL) {
        fprintf(stderr, "gpool-bench-preload: %s\n", dlerror());
        return 3;
    }
    SYM(init, "cuInit") SYM(dev_get, "cuDeviceGet") SYM(retain, "cuDevicePrimaryCtxRetain")
    SYM(set, "cuCtxSetCurrent") SYM(load, "cuModuleLoadData") SYM(getfn, "cuModuleGetFunction")
    SYM(sync, "cuCtxSynchronize") SYM(launch, "cuLaunchKernel") SYM(alloc, "cuMemAlloc_v2")
    SYM(mfree, "cuMemFree_v2")
    if (init(0) || dev_get(&d, 0) || retain(&c, d) || set(c) || load(&m, ptx) ||
        getfn(&f, m, "gpool_nop")) {
        fprintf(stderr, "gpool-bench-preload: no usable GPU\n");
        return 3;
    }
    for (int i = 0; i < 1000; i++) /* warm up */
        launch(f, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL);
    sync();
    /* Only the time inside the launch calls counts; the queue is drained every 256 launches,
     * outside the clock, so that a full queue never blocks a launch. */
    launch_ns = 0;
    for (long i = 0; i < launches; i += 256) {
        t0 = now_s();
        for (long k = i; k < i + 256 && k < launches; k++)
            if (launch(f, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL) != CUDA_SUCCESS) {
                fprintf(stderr, "gpool-bench-preload: launch failed\n");
                return 3;
            }
        launch_ns += (now_s() - t0) * 1e9;
        sync();
    }
    launch_ns /= (double)launches;
    t0 = now_s();
    for (long i = 0; i < allocs; i++)
        if (alloc(&p, 2 << 20) != CUDA_SUCCESS || mfree(p) != CUDA_SUCCESS) {
            fprintf(stderr, "gpool-bench-preload: allocation failed\n");
            return 3;
        }
    alloc_ns = (now_s() - t0) * 1e9 / (double)allocs;
    printf("launch_ns %.1f alloc_free_ns %.1f launches %ld allocs %ld\n", launch_ns, alloc_ns,
           launches, allocs);
    return 0;
}
