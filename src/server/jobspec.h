/*
 * A job as users submit it: a JSON object, checked whole before anything is stored.  Every field
 * is named and typed; an unknown field, a wrong type or an impossible request is refused with the
 * field it concerns.
 *
 *   {"name": "train-1", "project": "vision", "command": ["python", "train.py"],
 *    "env": {"SEED": "1"}, "workdir": "/home/ana/run", "gpus": 2 | "gpu": 0.5 |
 *    "gpu_memory": "20GiB", "gpu_limit": 1.0, "cpu": 4, "memory": "16GiB", "replicas": 1,
 *    "priority": "train", "preemptible": true, "swappable": true, "walltime_seconds": 7200,
 *    "retries": 2}
 */
#ifndef GPOOL_SERVER_JOBSPEC_H
#define GPOOL_SERVER_JOBSPEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "sched/model.h"

#define JOBSPEC_NAME_MAX 128
#define JOBSPEC_REPLICAS_MAX 1024
#define JOBSPEC_WALLTIME_MAX (366 * 86400)
#define JOBSPEC_RETRIES_MAX 100

/* An error a client can act on: a code, a sentence, and the field it concerns ("" for none). */
struct api_error {
    int status; /* HTTP status */
    char code[32];
    char message[256];
    char field[64];
};

void api_error_set(struct api_error *e, int status, const char *code, const char *field,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

struct jobspec {
    char name[JOBSPEC_NAME_MAX + 1];
    char project[JOBSPEC_NAME_MAX + 1];
    struct sched_request req;
    int64_t cpu_milli;
    int64_t mem_mib;
    int replicas;
    enum sched_priority priority;
    bool preemptible, swappable;
    int64_t walltime_s; /* 0: none; past it a running job is stopped and fails */
    int retries;        /* how often a failed run is queued again */
};

/*
 * Checks a submitted job and fills spec; the JSON stays the caller's (what is stored is the
 * checked object).  0, or -1 with e filled.
 */
int jobspec_parse(json_t *obj, struct jobspec *spec, struct api_error *e);

/*
 * A submission's body as the server takes it: JSON (duplicate keys refused) checked by
 * jobspec_parse.  Returns the checked object (the caller's) with spec filled, or NULL with e
 * filled.
 */
json_t *jobspec_decode(const char *body, size_t len, struct jobspec *spec, struct api_error *e);

#endif
