/*
 * ckpt-probe: swaps a running CUDA process out and back in through the driver's process
 * checkpoint API (lock, checkpoint, restore, unlock), timing each step and printing the process
 * state after it.  The target should verify its own data afterwards (gpool-burn does).  A driver
 * without the API is a result ("CUDA_ERROR_NOT_SUPPORTED"), not a failure.
 *
 *   ckpt-probe PID [HOLD_SECONDS]
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "common/gcuda.h"

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    void *lib = dlopen("libcuda.so.1", RTLD_NOW);
    CUresult (*init)(unsigned), (*name)(CUresult, const char **),
        (*state)(int, CUprocessState *), (*lock)(int, CUcheckpointLockArgs *),
        (*ckpt)(int, CUcheckpointCheckpointArgs *), (*restore)(int, CUcheckpointRestoreArgs *),
        (*unlock)(int, CUcheckpointUnlockArgs *);
    int pid = argc > 1 ? atoi(argv[1]) : 0;
    double hold = argc > 2 ? atof(argv[2]) : 1.0, t;
    CUprocessState st = CU_PROCESS_STATE_FAILED;
    CUresult rc;
    const char *s;

    if (lib == NULL || pid <= 0) {
        fprintf(stderr, "usage: ckpt-probe PID [HOLD_SECONDS] (%s)\n", lib ? "" : dlerror());
        return 2;
    }
    *(void **)&init = dlsym(lib, "cuInit");
    *(void **)&name = dlsym(lib, "cuGetErrorName");
    *(void **)&state = dlsym(lib, "cuCheckpointProcessGetState");
    *(void **)&lock = dlsym(lib, "cuCheckpointProcessLock");
    *(void **)&ckpt = dlsym(lib, "cuCheckpointProcessCheckpoint");
    *(void **)&restore = dlsym(lib, "cuCheckpointProcessRestore");
    *(void **)&unlock = dlsym(lib, "cuCheckpointProcessUnlock");
    if (state == NULL || lock == NULL || ckpt == NULL || restore == NULL || unlock == NULL) {
        printf("checkpoint: CUDA_ERROR_NOT_SUPPORTED (the driver has no checkpoint API)\n");
        return 0;
    }
    if ((rc = init(0)) != CUDA_SUCCESS) {
        printf("cuInit failed: %d\n", rc);
        return 1;
    }
#define STEP(what, call)                                                                           \
    t = now_s();                                                                                   \
    rc = (call);                                                                                   \
    t = now_s() - t;                                                                               \
    s = "?";                                                                                       \
    name(rc, &s);                                                                                  \
    state(pid, &st);                                                                               \
    printf("%-10s %-28s %8.1f ms  state %d\n", what, s, t * 1e3, (int)st);                         \
    fflush(stdout);                                                                                \
    if (rc != CUDA_SUCCESS)                                                                        \
        return rc == CUDA_ERROR_NOT_SUPPORTED ? 0 : 1;

    CUcheckpointLockArgs la = {.timeoutMs = 10000};
    CUcheckpointCheckpointArgs ca = {{0}};
    CUcheckpointRestoreArgs ra = {0};
    CUcheckpointUnlockArgs ua = {{0}};

    STEP("lock", lock(pid, &la));
    STEP("checkpoint", ckpt(pid, &ca));
    usleep((useconds_t)(hold * 1e6));
    STEP("restore", restore(pid, &ra));
    STEP("unlock", unlock(pid, &ua));
    return 0;
}
