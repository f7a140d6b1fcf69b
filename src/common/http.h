/*
 * JSON over HTTP for gpool's clients (the commands and the agent), on libcurl.
 */
#ifndef GPOOL_COMMON_HTTP_H
#define GPOOL_COMMON_HTTP_H

#include <jansson.h>

/*
 * One request to server + path with a bearer token and an optional JSON body.  Returns 0 with the
 * HTTP status in *status and the answer in *out (NULL if it is not JSON), or -1 with a message in
 * err when the server cannot be reached.  timeout_s bounds the whole request.
 */
int http_json(const char *server, const char *token, const char *method, const char *path,
              json_t *body, long timeout_s, long *status, json_t **out, char *err, size_t errlen);

#endif
