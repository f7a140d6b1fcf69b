/*
 * HTTP for gpool's clients (the commands and the agent), on libcurl: JSON requests and answers,
 * and raw ones for what is not JSON (job logs).
 */
#ifndef GPOOL_COMMON_HTTP_H
#define GPOOL_COMMON_HTTP_H

#include <jansson.h>
#include <stddef.h>

/* An answer as it came: status, body and headers.  http_answer_fini frees it. */
struct http_answer {
    long status;
    char *body; /* NUL-terminated (the NUL is not counted in len); NULL when empty */
    size_t len;
    char *headers; /* the header lines as received */
    size_t hlen;
};

/*
 * One request to server + path with a bearer token (server: a URL, or several separated by
 * commas, tried in turn while one cannot be reached or stands by) and an optional body of len bytes, sent with
 * content_type.  Returns 0 with the answer in *out, or -1 with a message in err when the server
 * cannot be reached.  timeout_s bounds the whole request.
 */
int http_raw(const char *server, const char *token, const char *method, const char *path,
             const void *body, size_t len, const char *content_type, long timeout_s,
             struct http_answer *out, char *err, size_t errlen);
/* The value of header `name` (case-insensitive) copied into buf, or NULL when absent. */
const char *http_answer_header(const struct http_answer *a, const char *name, char *buf,
                               size_t len);
void http_answer_fini(struct http_answer *a);

/*
 * One request with an optional JSON body.  Returns 0 with the HTTP status in *status and the
 * answer in *out (NULL if it is not JSON), or -1 with a message in err when the server cannot be
 * reached.  timeout_s bounds the whole request.
 */
int http_json(const char *server, const char *token, const char *method, const char *path,
              json_t *body, long timeout_s, long *status, json_t **out, char *err, size_t errlen);

#endif
