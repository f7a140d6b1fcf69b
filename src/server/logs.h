/*
 * Job logs on the server: what agents ship of each job's stdout and stderr, appended durably to
 * files under the server's log directory and read back for users.  A job's run has its own files,
 *   DIR/ID/RUN.stdout, DIR/ID/RUN.stderr   the bytes, in order
 *   DIR/ID/RUN.stdout.end, ...             present once the agent has sent all of the stream
 * where RUN is the time the run was placed: a job stopped and placed again starts new logs, and
 * the old run's are removed.  Every append names its offset, so a retried append is harmless: the
 * bytes the server has are skipped, and an append past the end is refused with the size it has.
 * A log stops growing at its cap; the bytes past it are dropped and its last line says so.
 */
#ifndef GPOOL_SERVER_LOGS_H
#define GPOOL_SERVER_LOGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum logs_stream { LOGS_STDOUT, LOGS_STDERR };

struct logs {
    char dir[4096];
    int64_t cap; /* bytes per stream of a run */
};

/* Uses (creating it if need be) the log directory dir.  0 or -errno. */
int logs_init(struct logs *l, const char *dir, int64_t cap);
int logs_stream_parse(const char *name, enum logs_stream *out);
const char *logs_stream_name(enum logs_stream st);

/*
 * Appends bytes [offset, offset + len) of a run's stream, synced before it returns.  0 with *next
 * the offset the server wants next, or -1 when it takes no more (the log is at its cap);
 * -ESPIPE when offset is past the bytes it has (*next says how many it has); else -errno.
 */
int logs_append(const struct logs *l, int64_t job, int64_t run, enum logs_stream st,
                int64_t offset, const void *data, size_t len, int64_t *next);
/* The agent has sent all of a run's stream. */
int logs_end(const struct logs *l, int64_t job, int64_t run, enum logs_stream st);
/*
 * Opens a run's stream to read it: *fd (-1 when nothing was sent yet), its *size, and whether the
 * agent said it sent all of it.  0 or -errno.
 */
int logs_open(const struct logs *l, int64_t job, int64_t run, enum logs_stream st, int *fd,
              int64_t *size, bool *ended);

#endif
