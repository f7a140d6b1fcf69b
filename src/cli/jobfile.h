/*
 * Job files, `gpool submit -f FILE`: one JSON object, the job as the API takes it
 * (docs/server.md).  Read and checked as JSON here; the server checks the job itself.
 */
#ifndef GPOOL_CLI_JOBFILE_H
#define GPOOL_CLI_JOBFILE_H

#include <jansson.h>
#include <stddef.h>

/* Larger than this, the server refuses a submission's body. */
#define JOBFILE_MAX (1 << 20)

/* The job in text (len bytes, from a file called name): a new reference, or NULL with a message
 * ("NAME:LINE: why") in err. */
json_t *jobfile_parse(const char *text, size_t len, const char *name, char *err, size_t errlen);
/* The same, read from path. */
json_t *jobfile_load(const char *path, char *err, size_t errlen);

#endif
