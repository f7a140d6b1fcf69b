/*
 * libFuzzer target: job files (gpool submit -f).  A file is refused with a message, or read into
 * an object that gpool submit sends as it was read: the server reads the same JSON back, and
 * decodes it (jobspec_decode) without harm.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/jobfile.h"
#include "server/jobspec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void broken(const char *what)
{
    fprintf(stderr, "fuzz_jobfile: %s\n", what);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512] = "";
    struct jobspec spec;
    struct api_error e;
    json_t *job = jobfile_parse((const char *)data, size, "job.json", err, sizeof(err)), *back;
    char *text;

    if (job == NULL) {
        if (strncmp(err, "job.json:", 9) != 0 || err[9] == '\0')
            broken("a refusal without the file's name and a reason");
        return 0;
    }
    if (!json_is_object(job))
        broken("a job file read as something else than an object");
    /* What gpool submit sends (http_json: JSON_COMPACT). */
    if ((text = json_dumps(job, JSON_COMPACT)) == NULL)
        broken("a job that cannot be written back");
    back = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    if (back == NULL || !json_equal(job, back))
        broken("the server would not read back what was read");
    json_decref(jobspec_decode(text, strlen(text), &spec, &e));
    json_decref(back);
    free(text);
    json_decref(job);
    return 0;
}
