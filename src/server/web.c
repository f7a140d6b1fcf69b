/*
 * Serving the embedded dashboard.  The files are few and small, so they are looked up by a walk
 * of the table and sent from the binary's own memory.  Every answer carries the security headers,
 * errors included; a file is revalidated on each load (no-cache) and answered 304 when its ETag
 * matches, so a new server's files are picked up at once and an unchanged one costs no bytes.
 */
#include "server/web.h"

#include <stdbool.h>
#include <string.h>

#define WEB_CSP                                                                                    \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "                    \
    "form-action 'self'; frame-ancestors 'none'"

const struct web_asset *web_find(const char *path)
{
    if (strcmp(path, "/") == 0)
        path = "/index.html";
    for (size_t i = 0; i < web_nassets; i++)
        if (strcmp(web_assets[i].path, path) == 0)
            return &web_assets[i];
    return NULL;
}

/* A path that climbs out (a ".." segment, after the server has decoded %2e) or is not plain. */
static bool web_path_bad(const char *path)
{
    return path[0] != '/' || strstr(path, "/../") != NULL || strstr(path, "//") != NULL ||
           strchr(path, '\\') != NULL ||
           (strlen(path) >= 3 && strcmp(path + strlen(path) - 3, "/..") == 0);
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, struct MHD_Response *resp,
                              const char *type)
{
    enum MHD_Result ret;

    if (resp == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", type);
    MHD_add_response_header(resp, "Content-Security-Policy", WEB_CSP);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result refuse(struct MHD_Connection *c, unsigned status, const char *text)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);

    if (resp != NULL && status == 405)
        MHD_add_response_header(resp, "Allow", "GET, HEAD");
    return answer(c, status, resp, "text/plain; charset=utf-8");
}

enum MHD_Result web_serve(struct MHD_Connection *c, const char *url, const char *method)
{
    const char *match = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
    const struct web_asset *f;
    struct MHD_Response *resp;

    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return refuse(c, 405, "405: the dashboard's files are read with GET\n");
    if (web_path_bad(url))
        return refuse(c, 400, "400: a path must not climb out of the dashboard\n");
    if ((f = web_find(url)) == NULL)
        return refuse(c, 404, "404: no such page (the API is under /api/v1)\n");
    if (match != NULL && strcmp(match, f->etag) == 0)
        resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    else
        resp = MHD_create_response_from_buffer(f->len, (void *)f->data, MHD_RESPMEM_PERSISTENT);
    if (resp == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, "ETag", f->etag);
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    return answer(c, match != NULL && strcmp(match, f->etag) == 0 ? 304 : 200, resp, f->type);
}
