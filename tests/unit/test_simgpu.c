/*
 * simgpu as programs see it: several processes on one simulated GPU, through
 * the driver (libcuda.so.1) and NVML (libnvidia-ml.so.1) that simgpu builds.
 * Each case forks the processes it needs; they talk to the test over pipes.
 * The libraries are loaded with dlopen from SIMGPU_LIB_DIR, as gpool loads
 * the real ones.
 */
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "burn/burn.h"
#include "burn/burn_math.h"
#include "common/gcuda.h"
#include "common/gnvml.h"

#define GiB (1ull << 30)
#define MiB (1ull << 20)
#define DEV_MEMORY (4 * GiB)

/* The driver and NVML calls the tests make, resolved from simgpu's libraries. */
#define CUDA_CALLS(X)                                                                              \
    X(cuInit) X(cuDevicePrimaryCtxRetain) X(cuCtxSetCurrent) X(cuCtxSynchronize)                   \
    X(cuMemAlloc_v2) X(cuMemFree_v2) X(cuMemGetInfo_v2) X(cuMemcpyHtoD_v2) X(cuMemcpyDtoH_v2)      \
    X(cuMemsetD32_v2) X(cuModuleLoadData) X(cuModuleGetFunction) X(cuLaunchKernel)                 \
    X(cuMemAddressReserve) X(cuMemAddressFree) X(cuMemCreate) X(cuMemRelease) X(cuMemMap)          \
    X(cuMemUnmap) X(cuMemSetAccess) X(cuGetProcAddress_v2) X(cuCheckpointProcessLock)              \
    X(cuCheckpointProcessCheckpoint) X(cuCheckpointProcessRestore) X(cuCheckpointProcessUnlock)    \
    X(cuCheckpointProcessGetState) X(cuDeviceGet) X(cuDeviceGetCount) X(cuDeviceGetUuid_v2)
#define NVML_CALLS(X)                                                                              \
    X(nvmlInit_v2) X(nvmlDeviceGetHandleByIndex_v2) X(nvmlDeviceGetMemoryInfo)                     \
    X(nvmlDeviceGetComputeRunningProcesses_v3) X(nvmlDeviceGetProcessUtilization)                  \
    X(nvmlDeviceGetUUID) X(nvmlDeviceGetName)

#define DECLARE(f) static __typeof__(f) *p_##f;
CUDA_CALLS(DECLARE)
NVML_CALLS(DECLARE)
#undef DECLARE

static void *libcuda, *libnvml;
static nvmlDevice_t gpu0;

/* ---- child processes ---------------------------------------------------------------------- */

struct child {
    pid_t pid;
    FILE *in;  /* what the child says */
    FILE *out; /* what the test tells it */
};

typedef void (*child_fn)(FILE *in, FILE *out, void *arg);

static void child_start(struct child *c, child_fn fn, void *arg)
{
    int up[2], down[2];

    assert_int_equal(pipe(up), 0);
    assert_int_equal(pipe(down), 0);
    fflush(NULL);
    c->pid = fork();
    assert_true(c->pid >= 0);
    if (c->pid == 0) {
        FILE *in = fdopen(down[0], "r"), *out = fdopen(up[1], "w");

        close(up[0]);
        close(down[1]);
        setvbuf(out, NULL, _IOLBF, 0);
        fn(in, out, arg);
        _exit(0);
    }
    close(up[1]);
    close(down[0]);
    c->in = fdopen(up[0], "r");
    c->out = fdopen(down[1], "w");
    setvbuf(c->out, NULL, _IOLBF, 0);
}

/* Reads the child's next line, failing the test after 60 s of silence. */
static void child_says(struct child *c, char *line, size_t len)
{
    struct pollfd pfd = {.fd = fileno(c->in), .events = POLLIN};

    if (poll(&pfd, 1, 60000) != 1 || fgets(line, (int)len, c->in) == NULL)
        fail_msg("process %d said nothing", (int)c->pid);
    line[strcspn(line, "\n")] = '\0';
    if (strncmp(line, "fail ", 5) == 0)
        fail_msg("process %d: %s", (int)c->pid, line + 5);
}

static void child_tell(struct child *c, const char *what)
{
    fprintf(c->out, "%s\n", what);
}

static int child_end(struct child *c)
{
    int status;

    fclose(c->out);
    fclose(c->in);
    assert_int_equal(waitpid(c->pid, &status, 0), c->pid);
    return status;
}

static void await(FILE *in)
{
    char line[64];

    if (fgets(line, sizeof(line), in) == NULL)
        _exit(3);
}

#define CHILD_CHECK(out, cond)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(out, "fail %s:%d: %s\n", __FILE__, __LINE__, #cond);                           \
            _exit(1);                                                                              \
        }                                                                                          \
    } while (0)

static void child_init(FILE *out)
{
    CUcontext ctx;

    CHILD_CHECK(out, p_cuInit(0) == CUDA_SUCCESS);
    CHILD_CHECK(out, p_cuDevicePrimaryCtxRetain(&ctx, 0) == CUDA_SUCCESS);
    CHILD_CHECK(out, p_cuCtxSetCurrent(ctx) == CUDA_SUCCESS);
}

/* ---- what NVML says ----------------------------------------------------------------------- */

static unsigned long long nvml_used(void)
{
    nvmlMemory_t m;

    assert_int_equal(p_nvmlDeviceGetMemoryInfo(gpu0, &m), NVML_SUCCESS);
    assert_int_equal(m.total, DEV_MEMORY);
    assert_int_equal(m.used + m.free, m.total);
    return m.used;
}

static unsigned long long nvml_process_memory(pid_t pid)
{
    nvmlProcessInfo_t infos[64];
    unsigned n = 64;

    assert_int_equal(p_nvmlDeviceGetComputeRunningProcesses_v3(gpu0, &n, infos), NVML_SUCCESS);
    for (unsigned i = 0; i < n; i++)
        if (infos[i].pid == (unsigned)pid)
            return infos[i].usedGpuMemory;
    return 0;
}

/* ---- memory ------------------------------------------------------------------------------- */

struct hold {
    size_t bytes;
};

static void hold_memory(FILE *in, FILE *out, void *arg)
{
    const struct hold *h = arg;
    CUdeviceptr p;
    size_t free_b, total;

    child_init(out);
    CHILD_CHECK(out, p_cuMemAlloc_v2(&p, h->bytes) == CUDA_SUCCESS);
    CHILD_CHECK(out, p_cuMemGetInfo_v2(&free_b, &total) == CUDA_SUCCESS);
    fprintf(out, "free %zu\n", free_b);
    await(in);
    CHILD_CHECK(out, p_cuMemFree_v2(p) == CUDA_SUCCESS);
}

static void test_processes_share_memory(void **state)
{
    struct hold a = {1 * GiB}, b = {512 * MiB};
    struct child ca, cb;
    unsigned long long before = nvml_used();
    char line[128];

    child_start(&ca, hold_memory, &a);
    child_says(&ca, line, sizeof(line));
    child_start(&cb, hold_memory, &b);
    child_says(&cb, line, sizeof(line));
    /* The second process sees the first one's memory as used. */
    assert_int_equal(strtoull(line + 5, NULL, 10), DEV_MEMORY - before - a.bytes - b.bytes);
    assert_int_equal(nvml_used(), before + a.bytes + b.bytes);
    assert_int_equal(nvml_process_memory(ca.pid), a.bytes);
    assert_int_equal(nvml_process_memory(cb.pid), b.bytes);
    child_tell(&ca, "go");
    child_tell(&cb, "go");
    assert_int_equal(child_end(&ca), 0);
    assert_int_equal(child_end(&cb), 0);
    assert_int_equal(nvml_used(), before);
}

static void test_killed_process_memory_comes_back(void **state)
{
    struct hold a = {1 * GiB};
    struct child ca;
    unsigned long long before = nvml_used();
    char line[128];
    int status;

    child_start(&ca, hold_memory, &a);
    child_says(&ca, line, sizeof(line));
    assert_int_equal(nvml_used(), before + a.bytes);
    kill(ca.pid, SIGKILL);
    status = child_end(&ca);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(nvml_used(), before);
    assert_int_equal(nvml_process_memory(ca.pid), 0);
}

static void over_capacity(FILE *in, FILE *out, void *arg)
{
    CUdeviceptr p, q;
    size_t free_b, total;

    child_init(out);
    CHILD_CHECK(out, p_cuMemAlloc_v2(&p, 3 * GiB) == CUDA_SUCCESS);
    CHILD_CHECK(out, p_cuMemAlloc_v2(&q, 2 * GiB) == CUDA_ERROR_OUT_OF_MEMORY);
    CHILD_CHECK(out, p_cuMemGetInfo_v2(&free_b, &total) == CUDA_SUCCESS);
    CHILD_CHECK(out, total == DEV_MEMORY && free_b == DEV_MEMORY - 3 * GiB);
    CHILD_CHECK(out, p_cuMemAlloc_v2(&q, free_b) == CUDA_SUCCESS);
    CHILD_CHECK(out, p_cuMemFree_v2(q) == CUDA_SUCCESS);
    CHILD_CHECK(out, p_cuMemFree_v2(p) == CUDA_SUCCESS);
    CHILD_CHECK(out, p_cuMemFree_v2(p) == CUDA_ERROR_INVALID_VALUE);
    fprintf(out, "ok\n");
}

static void test_allocation_over_capacity_fails_cleanly(void **state)
{
    struct child c;
    char line[128];

    child_start(&c, over_capacity, NULL);
    child_says(&c, line, sizeof(line));
    assert_string_equal(line, "ok");
    assert_int_equal(child_end(&c), 0);
}

static void read_device_pointer(FILE *in, FILE *out, void *arg)
{
    CUdeviceptr p;

    signal(SIGSEGV, SIG_DFL); /* the test runner's handler must not catch it */
    child_init(out);
    CHILD_CHECK(out, p_cuMemAlloc_v2(&p, 4096) == CUDA_SUCCESS);
    CHILD_CHECK(out, p_cuMemsetD32_v2(p, 7, 1024) == CUDA_SUCCESS);
    fprintf(out, "read\n");
    fprintf(out, "got %d\n", *(volatile int *)(uintptr_t)p);
}

static void test_host_read_of_device_pointer_faults(void **state)
{
    struct child c;
    char line[128];
    int status;

    child_start(&c, read_device_pointer, NULL);
    child_says(&c, line, sizeof(line));
    assert_string_equal(line, "read");
    status = child_end(&c);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSEGV);
}

/* ---- kernels and busy time ---------------------------------------------------------------- */

static CUfunction load_burn(FILE *out)
{
    CUmodule mod;
    CUfunction fn;

    CHILD_CHECK(out, p_cuModuleLoadData(&mod, burn_ptx) == CUDA_SUCCESS);
    CHILD_CHECK(out, p_cuModuleGetFunction(&fn, mod, "gpool_burn_step") == CUDA_SUCCESS);
    return fn;
}

static CUresult launch_burn(CUfunction fn, CUdeviceptr buf, unsigned long long n, unsigned iter,
                            unsigned long long spin_ns)
{
    void *params[] = {&buf, &n, &iter, &spin_ns};

    return p_cuLaunchKernel(fn, 4, 1, 1, 128, 1, 1, 0, NULL, params, NULL);
}

#define KERNELS 10
#define KERNEL_NS 20000000ull

static void busy_kernels(FILE *in, FILE *out, void *arg)
{
    CUfunction fn;
    CUdeviceptr buf;

    child_init(out);
    fn = load_burn(out);
    CHILD_CHECK(out, p_cuMemAlloc_v2(&buf, 4096) == CUDA_SUCCESS);
    fprintf(out, "ready\n");
    await(in);
    for (unsigned i = 0; i < KERNELS; i++) {
        CHILD_CHECK(out, launch_burn(fn, buf, 1024, i, KERNEL_NS) == CUDA_SUCCESS);
        CHILD_CHECK(out, p_cuCtxSynchronize() == CUDA_SUCCESS);
    }
    fprintf(out, "done\n");
    await(in);
}

static double wall_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned long long wall_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (unsigned long long)ts.tv_sec * 1000000 + (unsigned long long)ts.tv_nsec / 1000;
}

static unsigned sm_util(const nvmlProcessUtilizationSample_t *s, unsigned n, pid_t pid)
{
    for (unsigned i = 0; i < n; i++)
        if (s[i].pid == (unsigned)pid)
            return s[i].smUtil;
    return 0;
}

static void test_processes_time_slice_the_device(void **state)
{
    struct child c[2];
    nvmlProcessUtilizationSample_t s[64];
    unsigned n = 64;
    unsigned long long since;
    double t0, wall, alone = KERNELS * KERNEL_NS / 1e9;
    char line[64];

    for (int i = 0; i < 2; i++) {
        child_start(&c[i], busy_kernels, NULL);
        child_says(&c[i], line, sizeof(line));
    }
    since = wall_us();
    t0 = wall_now();
    for (int i = 0; i < 2; i++)
        child_tell(&c[i], "go");
    for (int i = 0; i < 2; i++)
        child_says(&c[i], line, sizeof(line));
    wall = wall_now() - t0;
    /* Kernels of two processes never overlap: together they take at least the sum. */
    assert_true(wall >= 2 * alone);
    assert_int_equal(p_nvmlDeviceGetProcessUtilization(gpu0, s, &n, since), NVML_SUCCESS);
    for (int i = 0; i < 2; i++) {
        double busy = sm_util(s, n, c[i].pid) / 100.0 * (wall_now() - t0);

        /* Each process's own kernel time, within the rounding of a percentage. */
        if (busy < alone * 0.9 || busy > alone * 1.1)
            fail_msg("process %d: busy %.3f s, ran %.3f s of kernels", (int)c[i].pid, busy, alone);
    }
    for (int i = 0; i < 2; i++) {
        child_tell(&c[i], "go");
        assert_int_equal(child_end(&c[i]), 0);
    }
}

static void kernel_effects(FILE *in, FILE *out, void *arg)
{
    CUfunction fn;
    CUdeviceptr buf;
    uint32_t host[1000];
    struct burn_affine f = {1, 0, 0};
    CUmodule mod;

    child_init(out);
    fn = load_burn(out);
    CHILD_CHECK(out, p_cuMemAlloc_v2(&buf, sizeof(host)) == CUDA_SUCCESS);
    for (unsigned i = 0; i < 1000; i++)
        host[i] = burn_init(i, 5);
    CHILD_CHECK(out, p_cuMemcpyHtoD_v2(buf, host, sizeof(host)) == CUDA_SUCCESS);
    for (unsigned it = 0; it < 3; it++) {
        CHILD_CHECK(out, launch_burn(fn, buf, 1000, it, 0) == CUDA_SUCCESS);
        burn_affine_next(&f, it);
    }
    CHILD_CHECK(out, p_cuMemcpyDtoH_v2(host, buf, sizeof(host)) == CUDA_SUCCESS);
    for (unsigned i = 0; i < 1000; i++)
        CHILD_CHECK(out, host[i] == burn_expect(&f, i, 5));
    /* A kernel that reaches past its buffer is an illegal address, not a crash. */
    CHILD_CHECK(out, launch_burn(fn, buf, 1u << 30, 0, 0) == CUDA_ERROR_ILLEGAL_ADDRESS);
    CHILD_CHECK(out, p_cuModuleLoadData(&mod, "\x7f" "ELF not ptx") == CUDA_ERROR_INVALID_IMAGE);
    CHILD_CHECK(out, p_cuModuleGetFunction(&fn, mod = NULL, "x") == CUDA_ERROR_INVALID_VALUE);
    CHILD_CHECK(out, p_cuModuleLoadData(&mod, burn_ptx) == CUDA_SUCCESS);
    CHILD_CHECK(out, p_cuModuleGetFunction(&fn, mod, "no_such_kernel") == CUDA_ERROR_NOT_FOUND);
    fprintf(out, "ok\n");
}

static void test_kernels_do_their_work(void **state)
{
    struct child c;
    char line[128];

    child_start(&c, kernel_effects, NULL);
    child_says(&c, line, sizeof(line));
    assert_string_equal(line, "ok");
    assert_int_equal(child_end(&c), 0);
}

/* ---- checkpoint and restore --------------------------------------------------------------- */

#define SWAP_BYTES (3 * GiB)

static void swappable(FILE *in, FILE *out, void *arg)
{
    CUdeviceptr p;
    uint32_t *host = malloc(64 * MiB);
    uint64_t words = SWAP_BYTES / 4, chunk = 64 * MiB / 4;

    CHILD_CHECK(out, host != NULL);
    child_init(out);
    CHILD_CHECK(out, p_cuMemAlloc_v2(&p, SWAP_BYTES) == CUDA_SUCCESS);
    for (uint64_t i = 0; i < words; i += chunk) {
        for (uint64_t k = 0; k < chunk; k++)
            host[k] = burn_init(i + k, 9);
        CHILD_CHECK(out, p_cuMemcpyHtoD_v2(p + i * 4, host, chunk * 4) == CUDA_SUCCESS);
    }
    fprintf(out, "ptr %llu\n", (unsigned long long)p);
    await(in);
    /* After the restore: the same pointer holds the same bytes. */
    for (uint64_t i = 0; i < words; i += chunk) {
        CHILD_CHECK(out, p_cuMemcpyDtoH_v2(host, p + i * 4, chunk * 4) == CUDA_SUCCESS);
        for (uint64_t k = 0; k < chunk; k++)
            CHILD_CHECK(out, host[k] == burn_init(i + k, 9));
    }
    fprintf(out, "verified %llu\n", (unsigned long long)p);
    CHILD_CHECK(out, p_cuMemFree_v2(p) == CUDA_SUCCESS);
    free(host);
}

static void try_allocate(FILE *in, FILE *out, void *arg)
{
    CUdeviceptr p;
    CUresult rc;

    child_init(out);
    rc = p_cuMemAlloc_v2(&p, *(size_t *)arg);
    fprintf(out, "alloc %d\n", (int)rc);
    await(in);
}

static int try_in_other_process(size_t bytes, struct child *c)
{
    char line[64];

    child_start(c, try_allocate, &bytes);
    child_says(c, line, sizeof(line));
    return atoi(line + 6);
}

static CUprocessState proc_state(pid_t pid)
{
    CUprocessState s;

    assert_int_equal(p_cuCheckpointProcessGetState(pid, &s), CUDA_SUCCESS);
    return s;
}

static void test_checkpoint_releases_and_restore_brings_back(void **state)
{
    struct child a, b;
    CUcheckpointLockArgs lock = {.timeoutMs = 10000};
    char line[128], ptr[128];

    child_start(&a, swappable, NULL);
    child_says(&a, line, sizeof(line));
    snprintf(ptr, sizeof(ptr), "%s", line + 4);
    /* While the process holds its memory, another cannot have it. */
    assert_int_equal(try_in_other_process(2 * GiB, &b), CUDA_ERROR_OUT_OF_MEMORY);
    child_tell(&b, "go");
    assert_int_equal(child_end(&b), 0);

    assert_int_equal(proc_state(a.pid), CU_PROCESS_STATE_RUNNING);
    assert_int_equal(p_cuCheckpointProcessCheckpoint(a.pid, NULL), CUDA_ERROR_ILLEGAL_STATE);
    assert_int_equal(p_cuCheckpointProcessLock(a.pid, &lock), CUDA_SUCCESS);
    assert_int_equal(proc_state(a.pid), CU_PROCESS_STATE_LOCKED);
    assert_int_equal(p_cuCheckpointProcessCheckpoint(a.pid, NULL), CUDA_SUCCESS);
    assert_int_equal(proc_state(a.pid), CU_PROCESS_STATE_CHECKPOINTED);
    assert_int_equal(nvml_process_memory(a.pid), 0);

    /* The memory is free for a third process; restoring while it is taken fails cleanly. */
    assert_int_equal(try_in_other_process(2 * GiB, &b), CUDA_SUCCESS);
    assert_int_equal(p_cuCheckpointProcessRestore(a.pid, NULL), CUDA_ERROR_OUT_OF_MEMORY);
    assert_int_equal(proc_state(a.pid), CU_PROCESS_STATE_CHECKPOINTED);
    child_tell(&b, "go");
    assert_int_equal(child_end(&b), 0);

    assert_int_equal(p_cuCheckpointProcessRestore(a.pid, NULL), CUDA_SUCCESS);
    assert_int_equal(nvml_process_memory(a.pid), SWAP_BYTES);
    assert_int_equal(p_cuCheckpointProcessUnlock(a.pid, NULL), CUDA_SUCCESS);
    assert_int_equal(proc_state(a.pid), CU_PROCESS_STATE_RUNNING);
    child_tell(&a, "go");
    child_says(&a, line, sizeof(line));
    assert_string_equal(line + 9, ptr);
    assert_int_equal(child_end(&a), 0);
}

static void lockable(FILE *in, FILE *out, void *arg)
{
    CUfunction fn;
    CUdeviceptr buf;

    child_init(out);
    fn = load_burn(out);
    CHILD_CHECK(out, p_cuMemAlloc_v2(&buf, 4096) == CUDA_SUCCESS);
    double t = wall_now();

    CHILD_CHECK(out, launch_burn(fn, buf, 16, 0, 300000000ull) == CUDA_SUCCESS);
    fprintf(out, "launched at %.6f\n", t);
    await(in);
    CHILD_CHECK(out, p_cuMemsetD32_v2(buf, 1, 16) == CUDA_SUCCESS);
    fprintf(out, "called\n");
    await(in);
}

static bool says_within(struct child *c, int ms)
{
    struct pollfd pfd = {.fd = fileno(c->in), .events = POLLIN};

    return poll(&pfd, 1, ms) == 1;
}

static void test_lock_waits_for_kernels_and_holds_calls(void **state)
{
    struct child a;
    char line[64];
    double launched;

    child_start(&a, lockable, NULL);
    child_says(&a, line, sizeof(line));
    launched = strtod(line + strlen("launched at "), NULL);
    assert_int_equal(p_cuCheckpointProcessLock(a.pid, NULL), CUDA_SUCCESS);
    /* The 300 ms kernel queued before the lock had to finish first. */
    assert_true(wall_now() >= launched + 0.3);
    /* A call made while the process is locked waits for the unlock. */
    child_tell(&a, "go");
    assert_false(says_within(&a, 300));
    assert_int_equal(p_cuCheckpointProcessUnlock(a.pid, NULL), CUDA_SUCCESS);
    child_says(&a, line, sizeof(line));
    assert_string_equal(line, "called");
    child_tell(&a, "go");
    assert_int_equal(child_end(&a), 0);
}

static void test_checkpoint_of_unknown_process_is_refused(void **state)
{
    CUprocessState s;

    assert_int_equal(p_cuCheckpointProcessLock(999999, NULL), CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(p_cuCheckpointProcessGetState(999999, &s), CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(p_cuCheckpointProcessLock(getpid(), NULL), CUDA_ERROR_NOT_SUPPORTED);
}

/* ---- the virtual memory API --------------------------------------------------------------- */

static void test_virtual_memory_maps_several_handles(void **state)
{
    CUmemAllocationProp prop = {.type = CU_MEM_ALLOCATION_TYPE_PINNED,
                                .location = {CU_MEM_LOCATION_TYPE_DEVICE, 0}};
    CUmemAccessDesc access = {.location = {CU_MEM_LOCATION_TYPE_DEVICE, 0},
                              .flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
    CUmemGenericAllocationHandle h[2];
    CUdeviceptr va, other;
    size_t g = 2 * MiB;
    static unsigned char in[4 * MiB], out[4 * MiB];
    unsigned long long before = nvml_used();

    assert_int_equal(p_cuMemAddressReserve(&va, 4 * g, 0, 0, 0), CUDA_SUCCESS);
    assert_int_equal(p_cuMemCreate(&h[0], g, &prop, 0), CUDA_SUCCESS);
    assert_int_equal(p_cuMemCreate(&h[1], g, &prop, 0), CUDA_SUCCESS);
    assert_int_equal(nvml_used(), before + 2 * g);
    assert_int_equal(p_cuMemMap(va, g, 0, h[0], 0), CUDA_SUCCESS);
    assert_int_equal(p_cuMemMap(va + g, g, 0, h[1], 0), CUDA_SUCCESS);
    assert_int_equal(p_cuMemMap(va, g, 0, h[1], 0), CUDA_ERROR_ALREADY_MAPPED);
    assert_int_equal(p_cuMemSetAccess(va, 2 * g, &access, 1), CUDA_SUCCESS);
    assert_int_equal(p_cuMemSetAccess(va, 3 * g, &access, 1), CUDA_ERROR_INVALID_VALUE);
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (unsigned char)(i * 31 + 7);
    /* One copy across the two physical allocations. */
    assert_int_equal(p_cuMemcpyHtoD_v2(va, in, sizeof(in)), CUDA_SUCCESS);
    assert_int_equal(p_cuMemcpyDtoH_v2(out, va, sizeof(out)), CUDA_SUCCESS);
    assert_memory_equal(in, out, sizeof(in));
    /* Releasing a mapped handle keeps its memory until it is unmapped. */
    assert_int_equal(p_cuMemRelease(h[0]), CUDA_SUCCESS);
    assert_int_equal(p_cuMemRelease(h[1]), CUDA_SUCCESS);
    assert_int_equal(nvml_used(), before + 2 * g);
    assert_int_equal(p_cuMemFree_v2(va), CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(p_cuMemUnmap(va, g / 2), CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(p_cuMemAddressFree(va, 4 * g), CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(p_cuMemUnmap(va, 2 * g), CUDA_SUCCESS);
    assert_int_equal(nvml_used(), before);
    assert_int_equal(p_cuMemAddressFree(va, 4 * g), CUDA_SUCCESS);
    /* The range can be reserved again at the same address. */
    assert_int_equal(p_cuMemAddressReserve(&other, 4 * g, 0, va, 0), CUDA_SUCCESS);
    assert_int_equal(other, va);
    assert_int_equal(p_cuMemAddressFree(other, 4 * g), CUDA_SUCCESS);
}

/* ---- how programs find the driver's calls ------------------------------------------------- */

static void test_get_proc_address_answers_by_version(void **state)
{
    CUdriverProcAddressQueryResult st;
    void *fn;

    assert_int_equal(p_cuGetProcAddress_v2("cuMemAlloc", &fn, 12000, 0, &st), CUDA_SUCCESS);
    assert_ptr_equal(fn, dlsym(libcuda, "cuMemAlloc_v2"));
    assert_int_equal(st, CU_GET_PROC_ADDRESS_SUCCESS);
    assert_int_equal(p_cuGetProcAddress_v2("cuGetProcAddress", &fn, 12000, 0, &st), CUDA_SUCCESS);
    assert_ptr_equal(fn, dlsym(libcuda, "cuGetProcAddress_v2"));
    assert_int_equal(p_cuGetProcAddress_v2("cuGetProcAddress", &fn, 11030, 0, &st), CUDA_SUCCESS);
    assert_ptr_equal(fn, dlsym(libcuda, "cuGetProcAddress"));
    assert_int_equal(p_cuGetProcAddress_v2("cuMemcpyHtoD", &fn, 12000,
                                           CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, &st),
                     CUDA_SUCCESS);
    assert_ptr_equal(fn, dlsym(libcuda, "cuMemcpyHtoD_v2"));
    assert_int_equal(p_cuGetProcAddress_v2("cuCheckpointProcessLock", &fn, 11000, 0, &st),
                     CUDA_ERROR_NOT_FOUND);
    assert_int_equal(st, CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
    assert_int_equal(p_cuGetProcAddress_v2("cuNoSuchCall", &fn, 12000, 0, &st),
                     CUDA_ERROR_NOT_FOUND);
    assert_int_equal(st, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
    assert_null(fn);
    assert_int_equal(p_cuGetProcAddress_v2("cuMemAlloc", &fn, 12000, 1u << 7, &st),
                     CUDA_ERROR_INVALID_VALUE);
}

static void call_unsupported(FILE *in, FILE *out, void *arg)
{
    CUresult (*host_alloc)(void **, size_t, unsigned);
    void *p;

    child_init(out);
    dup2(fileno(out), 2); /* what the driver says on stderr comes to the test */
    CHILD_CHECK(out, p_cuGetProcAddress_v2("cuMemHostAlloc", (void **)&host_alloc, 12000, 0,
                                           NULL) == CUDA_SUCCESS);
    CHILD_CHECK(out, host_alloc(&p, 4096, 0) == CUDA_ERROR_NOT_SUPPORTED);
    CHILD_CHECK(out, host_alloc(&p, 4096, 0) == CUDA_ERROR_NOT_SUPPORTED);
    fprintf(out, "end\n");
}

static void test_unsupported_call_says_so_once(void **state)
{
    struct child c;
    char line[256];

    child_start(&c, call_unsupported, NULL);
    child_says(&c, line, sizeof(line));
    assert_non_null(strstr(line, "cuMemHostAlloc is not supported"));
    child_says(&c, line, sizeof(line));
    assert_string_equal(line, "end");
    assert_int_equal(child_end(&c), 0);
}

static void bad_config(FILE *in, FILE *out, void *arg)
{
    dup2(fileno(out), 2);
    setenv("SIMGPU_MEMORY", "lots", 1);
    CHILD_CHECK(out, p_cuInit(0) == CUDA_ERROR_INVALID_VALUE);
    fprintf(out, "end\n");
}

static void test_bad_configuration_is_refused_with_a_message(void **state)
{
    struct child c;
    char line[256];

    child_start(&c, bad_config, NULL);
    child_says(&c, line, sizeof(line));
    assert_non_null(strstr(line, "SIMGPU_MEMORY=lots"));
    child_says(&c, line, sizeof(line));
    assert_string_equal(line, "end");
    assert_int_equal(child_end(&c), 0);
}

/* Says how many devices CUDA shows under the CUDA_VISIBLE_DEVICES given, and which simulated
 * device (by NVML index) is ordinal 0. */
static void visible(FILE *in, FILE *out, void *arg)
{
    CUdevice d;
    CUuuid u;
    char want[96];
    int n = -1, which = -1;

    setenv("CUDA_VISIBLE_DEVICES", arg, 1);
    CHILD_CHECK(out, p_cuInit(0) == CUDA_SUCCESS);
    CHILD_CHECK(out, p_cuDeviceGetCount(&n) == CUDA_SUCCESS);
    if (n > 0 && p_cuDeviceGet(&d, 0) == CUDA_SUCCESS &&
        p_cuDeviceGetUuid_v2(&u, d) == CUDA_SUCCESS) {
        for (unsigned i = 0; i < 2; i++) {
            nvmlDevice_t g;
            char got[96];
            const unsigned char *b = (const unsigned char *)u.bytes;

            p_nvmlDeviceGetHandleByIndex_v2(i, &g);
            p_nvmlDeviceGetUUID(g, want, sizeof(want));
            snprintf(got, sizeof(got),
                     "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                     b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
                     b[12], b[13], b[14], b[15]);
            if (strcmp(got, want) == 0)
                which = (int)i;
        }
    }
    CHILD_CHECK(out, n <= 0 || p_cuDeviceGet(&d, n) == CUDA_ERROR_INVALID_DEVICE);
    fprintf(out, "%d %d\n", n, which);
}

static void test_visible_devices_as_the_driver_reads_them(void **state)
{
    char uuid1[96], prefix[16], list[160], line[64];
    nvmlDevice_t gpu1;
    const struct {
        const char *v;
        const char *want;
    } cases[] = {{"1", "1 1"}, {"1,0", "2 1"}, {"0,0", "1 0"}, {"7", "0 -1"},
                 {"0,x,1", "1 0"}, {"", "0 -1"}, {prefix, "1 1"}, {list, "2 1"}};

    assert_int_equal(p_nvmlDeviceGetHandleByIndex_v2(1, &gpu1), NVML_SUCCESS);
    assert_int_equal(p_nvmlDeviceGetUUID(gpu1, uuid1, sizeof(uuid1)), NVML_SUCCESS);
    snprintf(prefix, sizeof(prefix), "%.12s", uuid1);
    snprintf(list, sizeof(list), "%s,0", uuid1);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct child c;

        child_start(&c, visible, (void *)cases[i].v);
        child_says(&c, line, sizeof(line));
        if (strcmp(line, cases[i].want) != 0)
            fail_msg("CUDA_VISIBLE_DEVICES=%s: got '%s', want '%s'", cases[i].v, line,
                     cases[i].want);
        assert_int_equal(child_end(&c), 0);
    }
}

static void test_nvml_names_the_devices(void **state)
{
    char name[96], uuid0[96], uuid1[96];
    nvmlDevice_t gpu1;

    assert_int_equal(p_nvmlDeviceGetHandleByIndex_v2(1, &gpu1), NVML_SUCCESS);
    assert_int_equal(p_nvmlDeviceGetName(gpu0, name, sizeof(name)), NVML_SUCCESS);
    assert_string_equal(name, "Test GPU");
    assert_int_equal(p_nvmlDeviceGetUUID(gpu0, uuid0, sizeof(uuid0)), NVML_SUCCESS);
    assert_int_equal(p_nvmlDeviceGetUUID(gpu1, uuid1, sizeof(uuid1)), NVML_SUCCESS);
    assert_true(strncmp(uuid0, "GPU-", 4) == 0);
    assert_string_not_equal(uuid0, uuid1);
    assert_int_equal(p_nvmlDeviceGetUUID(gpu0, uuid0, 8), NVML_ERROR_INSUFFICIENT_SIZE);
    assert_int_equal(p_nvmlDeviceGetHandleByIndex_v2(2, &gpu1), NVML_ERROR_INVALID_ARGUMENT);
}

/* ---- setup -------------------------------------------------------------------------------- */

static char state_dir[] = "/tmp/gpool-simgpu-XXXXXX";

static void *open_lib(const char *dir, const char *name)
{
    char path[4096];
    void *h;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        fprintf(stderr, "%s\n", dlerror());
        exit(1);
    }
    return h;
}

static int setup(void **state)
{
    const char *dir = getenv("SIMGPU_LIB_DIR");
    char path[64];
    CUcontext ctx;

    if (dir == NULL || mkdtemp(state_dir) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/state", state_dir);
    setenv("SIMGPU_STATE", path, 1);
    setenv("SIMGPU_COUNT", "2", 1);
    setenv("SIMGPU_MEMORY", "4GiB", 1);
    setenv("SIMGPU_MODEL", "Test GPU", 1);
    setenv("SIMGPU_HOST_LINK_GBPS", "100", 1);
    libcuda = open_lib(dir, "libcuda.so.1");
    libnvml = open_lib(dir, "libnvidia-ml.so.1");
#define LOAD_CUDA(f) *(void **)&p_##f = dlsym(libcuda, #f);
#define LOAD_NVML(f) *(void **)&p_##f = dlsym(libnvml, #f);
    CUDA_CALLS(LOAD_CUDA)
    NVML_CALLS(LOAD_NVML)
    if (p_cuInit(0) != CUDA_SUCCESS || p_cuDevicePrimaryCtxRetain(&ctx, 0) != CUDA_SUCCESS ||
        p_cuCtxSetCurrent(ctx) != CUDA_SUCCESS || p_nvmlInit_v2() != NVML_SUCCESS ||
        p_nvmlDeviceGetHandleByIndex_v2(0, &gpu0) != NVML_SUCCESS)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    char path[64];

    snprintf(path, sizeof(path), "%s/state", state_dir);
    unlink(path);
    rmdir(state_dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_processes_share_memory),
        cmocka_unit_test(test_killed_process_memory_comes_back),
        cmocka_unit_test(test_allocation_over_capacity_fails_cleanly),
        cmocka_unit_test(test_host_read_of_device_pointer_faults),
        cmocka_unit_test(test_processes_time_slice_the_device),
        cmocka_unit_test(test_kernels_do_their_work),
        cmocka_unit_test(test_checkpoint_releases_and_restore_brings_back),
        cmocka_unit_test(test_lock_waits_for_kernels_and_holds_calls),
        cmocka_unit_test(test_checkpoint_of_unknown_process_is_refused),
        cmocka_unit_test(test_virtual_memory_maps_several_handles),
        cmocka_unit_test(test_get_proc_address_answers_by_version),
        cmocka_unit_test(test_unsupported_call_says_so_once),
        cmocka_unit_test(test_bad_configuration_is_refused_with_a_message),
        cmocka_unit_test(test_nvml_names_the_devices),
        cmocka_unit_test(test_visible_devices_as_the_driver_reads_them),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, setup, teardown);
}
