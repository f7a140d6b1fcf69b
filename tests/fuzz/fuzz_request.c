/*
 * libFuzzer target: a submission's body as the server decodes it (jobspec_decode).  Whatever the
 * bytes, the answer is a 4xx error with a message, or a job within the bounds the rest of the
 * server counts on.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "server/jobspec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void broken(const char *what)
{
    fprintf(stderr, "fuzz_request: %s\n", what);
    abort();
}

static void check_spec(const struct jobspec *s)
{
    const struct sched_request *r = &s->req;

    if (s->project[0] == '\0')
        broken("a job without a project");
    if (s->replicas < 1 || s->replicas > JOBSPEC_REPLICAS_MAX)
        broken("replicas out of bounds");
    if (s->retries < 0 || s->retries > JOBSPEC_RETRIES_MAX)
        broken("retries out of bounds");
    if (s->walltime_s < 0 || s->walltime_s > JOBSPEC_WALLTIME_MAX)
        broken("walltime out of bounds");
    if (s->cpu_milli < 1 || s->cpu_milli > 1024 * 1000 || s->mem_mib < 1)
        broken("cpu or memory out of bounds");
    switch (r->kind) {
    case SCHED_REQ_NONE: break;
    case SCHED_REQ_WHOLE:
        if (r->gpus < 1 || r->gpus > SCHED_NODE_MAX_GPUS)
            broken("whole GPUs out of bounds");
        break;
    case SCHED_REQ_FRACTION:
        if (r->milli < 1 || r->milli > SCHED_MILLI)
            broken("a fraction out of (0, 1]");
        if (r->limit_milli != 0 && (r->limit_milli < r->milli || r->limit_milli > SCHED_MILLI))
            broken("a limit below the fraction or above 1");
        break;
    case SCHED_REQ_MEMORY:
        if (r->mem_bytes == 0)
            broken("no GPU memory asked");
        break;
    default: broken("an unknown request kind");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct jobspec spec;
    struct api_error e = {0};
    json_t *obj = jobspec_decode((const char *)data, size, &spec, &e);

    if (obj == NULL) {
        if (e.status < 400 || e.status > 499 || e.message[0] == '\0' || e.code[0] == '\0')
            broken("a refusal without a 4xx status, a code and a message");
        return 0;
    }
    if (!json_is_object(obj))
        broken("a job that is not an object");
    check_spec(&spec);
    json_decref(obj);
    return 0;
}
