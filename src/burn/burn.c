/*
 * gpool-burn: allocate GPU memory, run kernels at a chosen duty cycle and
 * kernel length, verify the data, print progress.  It exercises what gpool
 * shares and swaps: memory held, compute used, and bytes that must survive.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "burn/burn.h"
#include "burn/burn_math.h"
#include "common/units.h"

enum { EXIT_MISMATCH = 1, EXIT_USAGE = 2, EXIT_CUDA = 3 };

#define CHUNK_WORDS (4u << 20) /* 16 MiB of words per copy */
#define WINDOW_WORDS (256u << 10)
#define THREADS 256

struct burn_opts {
    int device;
    uint64_t memory;
    double seconds;
    unsigned long iterations;
    double kernel_ms;
    double duty;
    double check_every;
    uint32_t seed;
    bool quiet;
};

struct burn {
    struct burn_opts o;
    struct burn_cuda cu;
    CUdeviceptr buf;
    uint64_t nwords;
    CUfunction fn;
    int sms;
    struct burn_affine f; /* what the buffer holds now, as a function of the initial words */
    uint32_t iter;
    double busy_s;
    uint64_t verified_words;
    uint32_t *host;
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};

    if (s > 0)
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
}

static void usage(FILE *out)
{
    fputs("usage: gpool-burn [options]\n"
          "  -d, --device N        GPU ordinal (default 0)\n"
          "  -m, --memory SIZE     device memory to hold and verify (default 256MiB)\n"
          "  -t, --seconds S       run for S seconds (default 10)\n"
          "  -n, --iterations N    run N kernels instead\n"
          "  -k, --kernel-ms MS    length of one kernel (default 10)\n"
          "  -u, --duty PCT        percent of the time kernels run (default 100)\n"
          "  -c, --check-every S   verify a sample of the data every S seconds (default 1)\n"
          "  -s, --seed N          seed of the data (default 1)\n"
          "  -q, --quiet           print only the summary\n"
          "      --print-ptx       print the kernel's PTX and exit\n"
          "  -h, --help            this text\n"
          "exit status: 0 data verified, 1 data mismatch, 2 bad usage, 3 CUDA error\n",
          out);
}

static int bad(const char *opt, const char *arg, const char *want)
{
    fprintf(stderr, "gpool-burn: %s %s: %s\n", opt, arg, want);
    return -1;
}

static int parse_num(const char *opt, const char *arg, double lo, double hi, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(arg, &end);
    if (errno != 0 || end == arg || *end != '\0' || !(v >= lo && v <= hi)) {
        char want[80];

        snprintf(want, sizeof(want), "expected a number from %g to %g", lo, hi);
        return bad(opt, arg, want);
    }
    *out = v;
    return 0;
}

static int parse_opt(struct burn_opts *o, int c, const char *arg)
{
    double v;

    switch (c) {
    case 'd':
        if (parse_num("--device", arg, 0, 1023, &v) != 0 || v != (int)v)
            return bad("--device", arg, "expected a GPU ordinal");
        o->device = (int)v;
        return 0;
    case 'm':
        if (units_parse_bytes(arg, &o->memory) != 0 || o->memory < 4096)
            return bad("--memory", arg, "expected a size of at least 4KiB, such as 1GiB");
        return 0;
    case 't': return parse_num("--seconds", arg, 0.001, 1e7, &o->seconds);
    case 'n':
        if (parse_num("--iterations", arg, 1, 4e9, &v) != 0 || v != (double)(unsigned long)v)
            return bad("--iterations", arg, "expected a whole number");
        o->iterations = (unsigned long)v;
        return 0;
    case 'k': return parse_num("--kernel-ms", arg, 0, 60000, &o->kernel_ms);
    case 'u': return parse_num("--duty", arg, 1, 100, &o->duty);
    case 'c': return parse_num("--check-every", arg, 0.01, 1e6, &o->check_every);
    case 's':
        if (parse_num("--seed", arg, 0, 4294967295.0, &v) != 0 || v != (uint32_t)v)
            return bad("--seed", arg, "expected a whole number");
        o->seed = (uint32_t)v;
        return 0;
    case 'q': o->quiet = true; return 0;
    }
    return -1;
}

/* Returns -1 to run, or the exit status. */
static int parse_args(struct burn_opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"device", required_argument, NULL, 'd'},      {"memory", required_argument, NULL, 'm'},
        {"seconds", required_argument, NULL, 't'},     {"iterations", required_argument, NULL, 'n'},
        {"kernel-ms", required_argument, NULL, 'k'},   {"duty", required_argument, NULL, 'u'},
        {"check-every", required_argument, NULL, 'c'}, {"seed", required_argument, NULL, 's'},
        {"quiet", no_argument, NULL, 'q'},             {"print-ptx", no_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},              {NULL, 0, NULL, 0},
    };
    int c;

    *o = (struct burn_opts){.memory = 256u << 20, .seconds = 10, .kernel_ms = 10, .duty = 100,
                            .check_every = 1, .seed = 1};
    while ((c = getopt_long(argc, argv, "d:m:t:n:k:u:c:s:qh", longopts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c == 'P') {
            fputs(burn_ptx, stdout);
            return 0;
        }
        if (c == '?' || parse_opt(o, c, optarg) != 0) {
            if (c == '?')
                usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "gpool-burn: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    return -1;
}

#define CU_TRY(b, call, what)                                                                      \
    do {                                                                                           \
        CUresult rc_ = (call);                                                                     \
        if (rc_ != CUDA_SUCCESS) {                                                                 \
            fprintf(stderr, "gpool-burn: %s: %s\n", what, burn_cuda_error(&(b)->cu, rc_));        \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

static int setup_device(struct burn *b)
{
    CUdevice dev;
    CUcontext ctx;
    CUmodule mod;
    char name[128], log[4096] = "";
    CUjit_option opts[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
    void *vals[] = {log, (void *)(uintptr_t)sizeof(log)};

    CU_TRY(b, b->cu.Init(0), "cuInit");
    CU_TRY(b, b->cu.DeviceGet(&dev, b->o.device), "device");
    CU_TRY(b, b->cu.DeviceGetName(name, sizeof(name), dev), "device name");
    CU_TRY(b, b->cu.DeviceGetAttribute(&b->sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev),
           "SM count");
    CU_TRY(b, b->cu.DevicePrimaryCtxRetain(&ctx, dev), "context");
    CU_TRY(b, b->cu.CtxSetCurrent(ctx), "context");
    if (b->cu.ModuleLoadDataEx(&mod, burn_ptx, 2, opts, vals) != CUDA_SUCCESS) {
        fprintf(stderr, "gpool-burn: the kernel does not load: %s\n", log);
        return -1;
    }
    CU_TRY(b, b->cu.ModuleGetFunction(&b->fn, mod, "gpool_burn_step"), "kernel");
    b->nwords = b->o.memory / 4;
    CU_TRY(b, b->cu.MemAlloc(&b->buf, b->nwords * 4), "allocating device memory");
    if (!b->o.quiet)
        printf("gpool-burn: %s (device %d, %d SMs): %.2f GiB, kernels of %g ms at %g%% duty\n",
               name, b->o.device, b->sms, (double)b->nwords * 4 / (1 << 30), b->o.kernel_ms,
               b->o.duty);
    return 0;
}

static int fill(struct burn *b)
{
    for (uint64_t i = 0; i < b->nwords; i += CHUNK_WORDS) {
        uint64_t n = b->nwords - i < CHUNK_WORDS ? b->nwords - i : CHUNK_WORDS;

        for (uint64_t k = 0; k < n; k++)
            b->host[k] = burn_init(i + k, b->o.seed);
        CU_TRY(b, b->cu.MemcpyHtoD(b->buf + i * 4, b->host, n * 4), "copying to the device");
    }
    b->f = (struct burn_affine){.a = 1, .b = 0, .c = 0};
    return 0;
}

/* Verifies words [from, from + n): 0, 1 on a mismatch, -1 on a driver error. */
static int verify(struct burn *b, uint64_t from, uint64_t n)
{
    for (uint64_t i = from; i < from + n; i += CHUNK_WORDS) {
        uint64_t m = from + n - i < CHUNK_WORDS ? from + n - i : CHUNK_WORDS;

        CU_TRY(b, b->cu.MemcpyDtoH(b->host, b->buf + i * 4, m * 4), "copying from the device");
        for (uint64_t k = 0; k < m; k++) {
            uint32_t want = burn_expect(&b->f, i + k, b->o.seed);

            if (b->host[k] != want) {
                fprintf(stderr,
                        "gpool-burn: data mismatch at word %llu (byte %llu) after %u kernels: "
                        "read 0x%08x, expected 0x%08x\n",
                        (unsigned long long)(i + k), (unsigned long long)(i + k) * 4, b->iter,
                        b->host[k], want);
                return 1;
            }
        }
    }
    b->verified_words += n;
    return 0;
}

static int step(struct burn *b)
{
    unsigned long long spin = (unsigned long long)(b->o.kernel_ms * 1e6);
    void *params[] = {&b->buf, &b->nwords, &b->iter, &spin};
    double t0 = now_s();

    CU_TRY(b, b->cu.LaunchKernel(b->fn, (unsigned)b->sms * 4, 1, 1, THREADS, 1, 1, 0, NULL,
                                 params, NULL),
           "launching the kernel");
    CU_TRY(b, b->cu.CtxSynchronize(), "running the kernel");
    b->busy_s += now_s() - t0;
    burn_affine_next(&b->f, b->iter);
    b->iter++;
    if (b->o.duty < 100)
        sleep_s((now_s() - t0) * (100 - b->o.duty) / b->o.duty);
    return 0;
}

static void progress(const struct burn *b, double elapsed, const char *what)
{
    printf("gpool-burn: %s%.1f s, %u kernels, busy %.1f%%, %.1f MiB verified\n", what, elapsed,
           b->iter, elapsed > 0 ? 100 * b->busy_s / elapsed : 0,
           (double)b->verified_words * 4 / (1 << 20));
    fflush(stdout);
}

static int run(struct burn *b)
{
    double start = now_s(), next_check = start + b->o.check_every, next_report = start + 1;
    int rc;

    while (b->o.iterations != 0 ? b->iter < b->o.iterations : now_s() - start < b->o.seconds) {
        if (step(b) != 0)
            return EXIT_CUDA;
        if (now_s() >= next_check) {
            uint64_t n = b->nwords < WINDOW_WORDS ? b->nwords : WINDOW_WORDS;
            uint64_t from = (uint64_t)b->iter * 2654435761u % (b->nwords - n + 1);

            if ((rc = verify(b, from, n)) != 0)
                return rc < 0 ? EXIT_CUDA : EXIT_MISMATCH;
            next_check = now_s() + b->o.check_every;
        }
        if (!b->o.quiet && now_s() >= next_report) {
            progress(b, now_s() - start, "");
            next_report += 1;
        }
    }
    if ((rc = verify(b, 0, b->nwords)) != 0)
        return rc < 0 ? EXIT_CUDA : EXIT_MISMATCH;
    progress(b, now_s() - start, "done: ");
    printf("gpool-burn: data ok: all %.1f MiB verified after %u kernels\n",
           (double)b->nwords * 4 / (1 << 20), b->iter);
    return 0;
}

int main(int argc, char **argv)
{
    static struct burn b;
    char err[512];
    int rc = parse_args(&b.o, argc, argv);

    if (rc >= 0)
        return rc;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (burn_cuda_load(&b.cu, err, sizeof(err)) != 0) {
        fprintf(stderr, "gpool-burn: %s\n", err);
        return EXIT_CUDA;
    }
    b.host = malloc((size_t)CHUNK_WORDS * 4);
    if (b.host == NULL) {
        fprintf(stderr, "gpool-burn: out of host memory\n");
        return EXIT_CUDA;
    }
    if (setup_device(&b) != 0 || fill(&b) != 0)
        rc = EXIT_CUDA;
    else
        rc = run(&b);
    if (b.buf != 0)
        b.cu.MemFree(b.buf);
    free(b.host);
    return rc;
}
