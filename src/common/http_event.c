/*
 * HTTP for the short-lived `gpool` command, with libevent's evhttp: plain http:// to one server.
 * Loading libcurl and the libraries it pulls in costs a command more than its whole request
 * (docs/server.md, "The `gpool` executable and gpool-core"), so the command links this instead;
 * what it cannot do (https://, several servers) http_supports() says, and the command hands it to
 * gpool-core, whose client is on libcurl (http.c).
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "common/http.h"

/* One request's outcome, filled by the callbacks. */
struct exchange {
    struct event_base *base;
    struct http_answer *out;
    bool done;
    const char *error; /* why no answer came */
};

bool http_supports(const char *server)
{
    struct evhttp_uri *u;
    bool ok;

    if (strncmp(server, "http://", 7) != 0 || strpbrk(server, ", \t") != NULL)
        return false;
    if ((u = evhttp_uri_parse(server)) == NULL)
        return false;
    ok = evhttp_uri_get_host(u) != NULL && evhttp_uri_get_userinfo(u) == NULL &&
         evhttp_uri_get_query(u) == NULL && evhttp_uri_get_fragment(u) == NULL;
    evhttp_uri_free(u);
    return ok;
}

void http_set_ca(const char *path)
{
    /* https:// is gpool-core's (http_supports): nothing to trust here. */
}

static char *copy_buffer(struct evbuffer *b, size_t *len)
{
    size_t n = evbuffer_get_length(b);
    char *s;

    *len = n;
    if (n == 0)
        return NULL;
    if ((s = malloc(n + 1)) == NULL)
        return NULL;
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    return s;
}

/* The header lines as http.c gives them: "Name: value\r\n" each. */
static char *header_lines(struct evkeyvalq *h, size_t *len)
{
    struct evbuffer *b = evbuffer_new();
    struct evkeyval *kv;
    char *s;

    if (b == NULL)
        return NULL;
    TAILQ_FOREACH(kv, h, next)
    evbuffer_add_printf(b, "%s: %s\r\n", kv->key, kv->value);
    s = copy_buffer(b, len);
    evbuffer_free(b);
    return s;
}

static void answered(struct evhttp_request *req, void *arg)
{
    struct exchange *x = arg;

    x->done = true;
    if (req == NULL || evhttp_request_get_response_code(req) == 0) {
        if (x->error == NULL)
            x->error = "connection failed";
    } else {
        x->out->status = evhttp_request_get_response_code(req);
        x->out->body = copy_buffer(evhttp_request_get_input_buffer(req), &x->out->len);
        x->out->headers = header_lines(evhttp_request_get_input_headers(req), &x->out->hlen);
    }
    event_base_loopbreak(x->base);
}

static void failed(enum evhttp_request_error e, void *arg)
{
    struct exchange *x = arg;

    x->error = e == EVREQ_HTTP_TIMEOUT          ? "timed out"
               : e == EVREQ_HTTP_EOF            ? "connection refused or closed"
               : e == EVREQ_HTTP_INVALID_HEADER ? "invalid answer"
                                                : "connection failed";
}

static void expired(evutil_socket_t fd, short what, void *arg)
{
    struct exchange *x = arg;

    x->error = "timed out";
    event_base_loopbreak(x->base);
}

static int method_of(const char *m, enum evhttp_cmd_type *t)
{
    static const struct {
        const char *name;
        enum evhttp_cmd_type type;
    } methods[] = {{"GET", EVHTTP_REQ_GET},     {"POST", EVHTTP_REQ_POST},
                   {"PUT", EVHTTP_REQ_PUT},     {"DELETE", EVHTTP_REQ_DELETE},
                   {"PATCH", EVHTTP_REQ_PATCH}, {"HEAD", EVHTTP_REQ_HEAD}};

    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strcmp(m, methods[i].name) == 0) {
            *t = methods[i].type;
            return 0;
        }
    return -1;
}

int http_raw(const char *server, const char *token, const char *method, const char *path,
             const void *body, size_t len, const char *content_type, long timeout_s,
             struct http_answer *out, char *err, size_t errlen)
{
    struct evhttp_uri *u = NULL;
    struct evhttp_connection *conn = NULL;
    struct evhttp_request *req;
    struct evkeyvalq *h;
    struct exchange x = {.out = out};
    enum evhttp_cmd_type type;
    struct timeval tv = {.tv_sec = timeout_s};
    char uri[2048], host[300], auth[256], clen[32];
    const char *prefix;
    int port, rc = -1;

    memset(out, 0, sizeof(*out));
    if (!http_supports(server) || method_of(method, &type) != 0 ||
        (u = evhttp_uri_parse(server)) == NULL) {
        snprintf(err, errlen, "cannot reach %s: not a plain http:// server URL", server);
        return -1;
    }
    port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 80;
    prefix = evhttp_uri_get_path(u) ? evhttp_uri_get_path(u) : "";
    snprintf(uri, sizeof(uri), "%s%s", prefix, path);
    snprintf(host, sizeof(host), "%s:%d", evhttp_uri_get_host(u), port);
    if ((x.base = event_base_new()) == NULL ||
        (conn = evhttp_connection_base_new(x.base, NULL, evhttp_uri_get_host(u),
                                           (unsigned short)port)) == NULL ||
        (req = evhttp_request_new(answered, &x)) == NULL) {
        snprintf(err, errlen, "cannot reach %s: out of memory", server);
        goto done;
    }
    evhttp_connection_set_timeout(conn, (int)timeout_s);
    evhttp_request_set_error_cb(req, failed);
    h = evhttp_request_get_output_headers(req);
    snprintf(auth, sizeof(auth), "Bearer %s", token);
    evhttp_add_header(h, "Host", host);
    evhttp_add_header(h, "Authorization", auth);
    evhttp_add_header(h, "Content-Type", content_type ? content_type : "text/plain");
    if (body != NULL) {
        snprintf(clen, sizeof(clen), "%zu", len);
        evhttp_add_header(h, "Content-Length", clen);
        evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
    }
    if (evhttp_make_request(conn, req, type, uri) != 0) {
        snprintf(err, errlen, "cannot reach %s: connection failed", server);
        goto done;
    }
    event_base_once(x.base, -1, EV_TIMEOUT, expired, &x, &tv);
    event_base_dispatch(x.base);
    if (!x.done || x.error != NULL || out->status == 0) {
        snprintf(err, errlen, "cannot reach %s: %s", server, x.error ? x.error : "no answer");
        http_answer_fini(out);
        goto done;
    }
    rc = 0;
done:
    if (conn != NULL)
        evhttp_connection_free(conn);
    if (x.base != NULL)
        event_base_free(x.base);
    evhttp_uri_free(u);
    return rc;
}
