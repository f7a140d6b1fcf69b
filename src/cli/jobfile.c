/*
 * Reading job files.
 */
#include "cli/jobfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *jobfile_parse(const char *text, size_t len, const char *name, char *err, size_t errlen)
{
    json_error_t e;
    json_t *job;

    if (len > JOBFILE_MAX) {
        snprintf(err, errlen, "%s: over 1 MiB, more than the server takes", name);
        return NULL;
    }
    /* Duplicate keys are refused, as the server refuses them: which one would count? */
    if ((job = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e)) == NULL) {
        snprintf(err, errlen, "%s:%d: %s", name, e.line, e.text);
        return NULL;
    }
    if (!json_is_object(job)) {
        snprintf(err, errlen, "%s: a job file holds one JSON object, {\"project\": ..., "
                              "\"command\": [...], ...}", name);
        json_decref(job);
        return NULL;
    }
    return job;
}

json_t *jobfile_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *text;
    size_t len;
    json_t *job;

    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    /* One byte more than the cap, to tell a file over it. */
    if ((text = malloc(JOBFILE_MAX + 1)) == NULL) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    len = fread(text, 1, JOBFILE_MAX + 1, f);
    if (ferror(f)) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        free(text);
        fclose(f);
        return NULL;
    }
    fclose(f);
    job = jobfile_parse(text, len, path, err, errlen);
    free(text);
    return job;
}
