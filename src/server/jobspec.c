/*
 * Checking submitted jobs field by field.
 */
#include "server/jobspec.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/units.h"

void api_error_set(struct api_error *e, int status, const char *code, const char *field,
                   const char *fmt, ...)
{
    va_list ap;

    e->status = status;
    snprintf(e->code, sizeof(e->code), "%s", code);
    snprintf(e->field, sizeof(e->field), "%s", field ? field : "");
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

static const char *const known_fields[] = {
    "name",   "project", "command",  "env",      "workdir",  "gpus",        "gpu",
    "gpu_memory", "gpu_limit", "cpu", "memory", "replicas", "priority", "preemptible",
    "swappable", "walltime_seconds", "retries",
};

static int bad(struct api_error *e, const char *field, const char *msg)
{
    api_error_set(e, 400, "invalid_field", field, "%s: %s", field, msg);
    return -1;
}

static int check_known(json_t *obj, struct api_error *e)
{
    const char *key;
    json_t *v;

    json_object_foreach(obj, key, v) {
        bool known = false;

        for (size_t i = 0; i < sizeof(known_fields) / sizeof(known_fields[0]) && !known; i++)
            known = strcmp(key, known_fields[i]) == 0;
        if (!known) {
            api_error_set(e, 400, "unknown_field", key, "unknown field '%s'", key);
            return -1;
        }
    }
    return 0;
}

static int get_name(json_t *obj, const char *field, char *out, bool required,
                    struct api_error *e)
{
    json_t *v = json_object_get(obj, field);
    const char *s;

    if (v == NULL) {
        out[0] = '\0';
        return required ? bad(e, field, "is required") : 0;
    }
    if (!json_is_string(v))
        return bad(e, field, "must be a string");
    s = json_string_value(v);
    if (*s == '\0' || strlen(s) > JOBSPEC_NAME_MAX)
        return bad(e, field, "must be 1 to 128 characters");
    for (const char *p = s; *p; p++)
        if (!(*p == '-' || *p == '_' || *p == '.' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return bad(e, field, "may hold only letters, digits, '-', '_' and '.'");
    memcpy(out, s, strlen(s) + 1);
    return 0;
}

static int check_command(json_t *obj, struct api_error *e)
{
    json_t *cmd = json_object_get(obj, "command"), *v, *env;
    size_t i;
    const char *key;

    if (cmd == NULL)
        return bad(e, "command", "is required");
    if (!json_is_array(cmd) || json_array_size(cmd) == 0 || json_array_size(cmd) > 4096)
        return bad(e, "command", "must be a list of 1 to 4096 strings");
    json_array_foreach(cmd, i, v) {
        if (!json_is_string(v))
            return bad(e, "command", "must be a list of strings");
    }
    env = json_object_get(obj, "env");
    if (env != NULL && !json_is_object(env))
        return bad(e, "env", "must be an object of strings");
    json_object_foreach(env, key, v) {
        if (!json_is_string(v) || *key == '\0' || strchr(key, '=') != NULL)
            return bad(e, "env", "must map names (no '=') to strings");
    }
    v = json_object_get(obj, "workdir");
    if (v != NULL && (!json_is_string(v) || json_string_value(v)[0] != '/'))
        return bad(e, "workdir", "must be an absolute path");
    return 0;
}

/* A number of the field in [lo, hi] (lo excluded when open_lo). */
static int get_number(json_t *obj, const char *field, double lo, double hi, bool open_lo,
                      double *out, struct api_error *e)
{
    json_t *v = json_object_get(obj, field);
    char msg[96];

    if (v == NULL)
        return 1;
    if (!json_is_number(v))
        return bad(e, field, "must be a number");
    *out = json_number_value(v);
    if (!isfinite(*out) || (open_lo ? *out <= lo : *out < lo) || *out > hi) {
        snprintf(msg, sizeof(msg), "must be in %s%g, %g]", open_lo ? "(" : "[", lo, hi);
        return bad(e, field, msg);
    }
    return 0;
}

static int get_size(json_t *obj, const char *field, uint64_t *out, struct api_error *e)
{
    json_t *v = json_object_get(obj, field);

    if (v == NULL)
        return 1;
    if (json_is_integer(v) && json_integer_value(v) > 0) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    if (!json_is_string(v) || units_parse_bytes(json_string_value(v), out) != 0 || *out == 0)
        return bad(e, field, "must be a size such as \"20GiB\" or a number of bytes");
    return 0;
}

static int get_gpu_request(json_t *obj, struct jobspec *s, struct api_error *e)
{
    double gpus = 0, gpu = 0, limit = 0;
    uint64_t mem = 0;
    int has_gpus, has_gpu, has_mem, has_limit;

    if ((has_gpus = get_number(obj, "gpus", 1, SCHED_NODE_MAX_GPUS, false, &gpus, e)) < 0 ||
        (has_gpu = get_number(obj, "gpu", 0, 1, true, &gpu, e)) < 0 ||
        (has_mem = get_size(obj, "gpu_memory", &mem, e)) < 0 ||
        (has_limit = get_number(obj, "gpu_limit", 0, 1, true, &limit, e)) < 0)
        return -1;
    if ((has_gpus == 0) + (has_gpu == 0) + (has_mem == 0) > 1)
        return bad(e, has_gpus == 0 ? "gpus" : "gpu",
                   "give one of gpus (whole GPUs), gpu (a fraction) or gpu_memory");
    if (has_gpus == 0 && gpus != floor(gpus))
        return bad(e, "gpus", "must be a whole number (use gpu for a fraction)");
    s->req = (struct sched_request){.kind = SCHED_REQ_NONE};
    if (has_gpus == 0)
        s->req = (struct sched_request){.kind = SCHED_REQ_WHOLE, .gpus = (int)gpus};
    else if (has_gpu == 0 && gpu >= 1)
        s->req = (struct sched_request){.kind = SCHED_REQ_WHOLE, .gpus = 1};
    else if (has_gpu == 0)
        s->req = (struct sched_request){.kind = SCHED_REQ_FRACTION,
                                        .milli = (int)ceil(gpu * SCHED_MILLI)};
    else if (has_mem == 0)
        s->req = (struct sched_request){.kind = SCHED_REQ_MEMORY, .mem_bytes = mem};
    if (has_limit == 0) {
        if (s->req.kind != SCHED_REQ_FRACTION)
            return bad(e, "gpu_limit", "applies only to a fraction (gpu)");
        if (limit * SCHED_MILLI < s->req.milli)
            return bad(e, "gpu_limit", "must be at least gpu");
        s->req.limit_milli = (int)ceil(limit * SCHED_MILLI);
    }
    return 0;
}

static int get_resources(json_t *obj, struct jobspec *s, struct api_error *e)
{
    double cpu = 1, replicas = 1;
    uint64_t mem = 1ull << 30;

    if (get_number(obj, "cpu", 0, 1024, true, &cpu, e) < 0 ||
        get_size(obj, "memory", &mem, e) < 0 ||
        get_number(obj, "replicas", 1, JOBSPEC_REPLICAS_MAX, false, &replicas, e) < 0)
        return -1;
    if (replicas != floor(replicas))
        return bad(e, "replicas", "must be a whole number");
    s->cpu_milli = (int64_t)ceil(cpu * 1000);
    /* Rounded up to whole MiB without adding to mem: near 2^64 bytes, that wrapped to 0 MiB. */
    s->mem_mib = (int64_t)((mem >> 20) + ((mem & ((1 << 20) - 1)) != 0));
    s->replicas = (int)replicas;
    return 0;
}

static int get_policy(json_t *obj, struct jobspec *s, struct api_error *e)
{
    json_t *v = json_object_get(obj, "priority");

    s->priority = SCHED_PRIO_TRAIN;
    if (v != NULL && (!json_is_string(v) || sched_priority_parse(json_string_value(v),
                                                                 &s->priority) != 0))
        return bad(e, "priority", "must be one of train, build, interactive, inference");
    s->preemptible = sched_priority_preemptible_default(s->priority);
    s->swappable = true;
    v = json_object_get(obj, "preemptible");
    if (v != NULL && !json_is_boolean(v))
        return bad(e, "preemptible", "must be true or false");
    if (v != NULL)
        s->preemptible = json_is_true(v);
    v = json_object_get(obj, "swappable");
    if (v != NULL && !json_is_boolean(v))
        return bad(e, "swappable", "must be true or false");
    if (v != NULL)
        s->swappable = json_is_true(v);
    return 0;
}

/* A whole number of the field in [lo, hi]; 1 when it is absent. */
static int get_whole(json_t *obj, const char *field, int64_t lo, int64_t hi, int64_t *out,
                     struct api_error *e)
{
    json_t *v = json_object_get(obj, field);
    char msg[96];

    if (v == NULL)
        return 1;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        snprintf(msg, sizeof(msg), "must be a whole number from %lld to %lld", (long long)lo,
                 (long long)hi);
        return bad(e, field, msg);
    }
    *out = json_integer_value(v);
    return 0;
}

static int get_limits(json_t *obj, struct jobspec *s, struct api_error *e)
{
    int64_t retries = 0;

    if (get_whole(obj, "walltime_seconds", 1, JOBSPEC_WALLTIME_MAX, &s->walltime_s, e) < 0 ||
        get_whole(obj, "retries", 0, JOBSPEC_RETRIES_MAX, &retries, e) < 0)
        return -1;
    s->retries = (int)retries;
    return 0;
}

int jobspec_parse(json_t *obj, struct jobspec *spec, struct api_error *e)
{
    memset(spec, 0, sizeof(*spec));
    if (!json_is_object(obj)) {
        api_error_set(e, 400, "bad_request", "", "a job is a JSON object");
        return -1;
    }
    if (check_known(obj, e) < 0 || get_name(obj, "name", spec->name, false, e) < 0 ||
        get_name(obj, "project", spec->project, true, e) < 0 || check_command(obj, e) < 0 ||
        get_gpu_request(obj, spec, e) < 0 || get_resources(obj, spec, e) < 0 ||
        get_policy(obj, spec, e) < 0 || get_limits(obj, spec, e) < 0)
        return -1;
    return 0;
}

json_t *jobspec_decode(const char *body, size_t len, struct jobspec *spec, struct api_error *e)
{
    json_error_t jerr;
    json_t *obj = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);

    if (obj == NULL) {
        api_error_set(e, 400, "bad_json", "", "the body is not JSON: %s (line %d)", jerr.text,
                      jerr.line);
        return NULL;
    }
    if (jobspec_parse(obj, spec, e) != 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}
