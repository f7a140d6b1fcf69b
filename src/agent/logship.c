/*
 * Job output to the server, by offset, in chunks under the server's body limit.
 */
#include "agent/logship.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/http.h"

#define CHUNK (512 * 1024)
/* What one call sends of a running job's stream at most, so that one loud job cannot hold up
 * the agent's loop; an ended job's stream is sent whole. */
#define PASS_BUDGET (4 * CHUNK)
#define DONE INT64_MAX /* the server takes no more of this stream */

struct ship {
    const char *server, *token, *node, *dir, *stream;
    int64_t id;
};

static int64_t read_sent(const struct ship *s)
{
    char path[4400];
    long long v = 0;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s.sent", s->dir, s->stream);
    if ((f = fopen(path, "r")) != NULL) {
        if (fscanf(f, "%lld", &v) != 1 || v < 0)
            v = 0;
        fclose(f);
    }
    return v;
}

static void write_sent(const struct ship *s, int64_t v)
{
    char path[4400], tmp[4400];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s.sent", s->dir, s->stream);
    snprintf(tmp, sizeof(tmp), "%s/.%s.sent.tmp", s->dir, s->stream);
    if ((f = fopen(tmp, "w")) == NULL)
        return;
    fprintf(f, "%" PRId64 "\n", v);
    if (fclose(f) == 0)
        rename(tmp, path);
}

enum { REFUSED, TAKEN, GAP };

/*
 * One append of len bytes at offset (and the end of the stream, with `end`).  TAKEN, or GAP (the
 * server has less than offset), with *next the offset it wants next (DONE: no more); REFUSED when
 * the server refuses this job's logs; -1 when it could not take them.
 */
static int append(const struct ship *s, int64_t offset, const char *data, size_t len, bool end,
                  int64_t *next)
{
    char path[512], err[256];
    struct http_answer a;
    json_t *body, *n;
    int rc = -1;

    snprintf(path, sizeof(path),
             "/api/v1/agent/logs?node=%s&job=%" PRId64 "&stream=%s&offset=%" PRId64 "%s",
             s->node, s->id, s->stream, offset, end ? "&end=1" : "");
    if (http_raw(s->server, s->token, "POST", path, data, len, "application/octet-stream", 30,
                 &a, err, sizeof(err)) != 0) {
        fprintf(stderr, "gpool agent: job %" PRId64 " %s: %s\n", s->id, s->stream, err);
        return -1;
    }
    body = json_loadb(a.body ? a.body : "", a.len, 0, NULL);
    n = json_object_get(body, "next");
    if ((a.status == 200 || a.status == 409) && (json_is_integer(n) || json_is_null(n))) {
        *next = json_is_null(n) ? DONE : json_integer_value(n);
        rc = a.status == 200 ? TAKEN : GAP;
    } else if (a.status < 500) {
        fprintf(stderr, "gpool agent: job %" PRId64 " %s: the server refuses its log (HTTP %ld)\n",
                s->id, s->stream, a.status);
        rc = REFUSED;
    }
    json_decref(body);
    http_answer_fini(&a);
    return rc;
}

/* Sends what the stream has past what the server has; when the job has ended, all of it and then
 * the end.  0, or -1 when the server could not take it. */
static int ship_stream(const struct ship *s, bool ended)
{
    int64_t sent = read_sent(s), start = sent, next, size;
    char path[4400], *buf = NULL;
    int fd, rc = TAKEN, ends = 0;
    struct stat sb;

    snprintf(path, sizeof(path), "%s/%s", s->dir, s->stream);
    fd = open(path, O_RDONLY | O_CLOEXEC); /* none when the workload never started */
    while (rc > 0) {
        size = fd >= 0 && fstat(fd, &sb) == 0 ? sb.st_size : 0;
        if (sent != DONE && sent < size && (ended || sent - start < PASS_BUDGET)) {
            ssize_t got;

            if (buf == NULL && (buf = malloc(CHUNK)) == NULL)
                break;
            if ((got = pread(fd, buf, (size_t)(size - sent < CHUNK ? size - sent : CHUNK),
                             sent)) <= 0)
                break;
            rc = append(s, sent, buf, (size_t)got, false, &next);
        } else if (ended && ends++ < 3) {
            /* A gap found now (the server lost bytes) sends them again, then the end. */
            if ((rc = append(s, sent == DONE ? 0 : sent, "", 0, true, &next)) == TAKEN)
                break;
        } else {
            break;
        }
        if (rc > 0 && next != sent)
            write_sent(s, sent = next);
    }
    if (fd >= 0)
        close(fd);
    free(buf);
    return rc < 0 ? -1 : 0;
}

int agent_logs_ship(const char *server, const char *token, const char *node, int64_t id,
                    const char *dir, bool ended)
{
    struct ship s = {server, token, node, dir, "stdout", id};
    int rc = ship_stream(&s, ended);

    s.stream = "stderr";
    return ship_stream(&s, ended) < 0 || rc < 0 ? -1 : 0;
}
