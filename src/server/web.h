/*
 * The web dashboard's files (web/), embedded in the binary at build time (embed_web.py writes
 * them as byte arrays) and served at every path outside /api/, with a strict
 * Content-Security-Policy: the pages load scripts, styles and data from this server only.
 */
#ifndef GPOOL_SERVER_WEB_H
#define GPOOL_SERVER_WEB_H

#include <microhttpd.h>
#include <stddef.h>

struct web_asset {
    const char *path; /* "/index.html" */
    const char *type; /* its Content-Type */
    const char *etag; /* a quoted hash of its bytes */
    const unsigned char *data;
    size_t len;
};

extern const struct web_asset web_assets[];
extern const size_t web_nassets;

/* The asset at path ("/" is "/index.html"), or NULL. */
const struct web_asset *web_find(const char *path);
/* Answers a request for a path outside /api/: a file (GET, HEAD), 304, 400, 404 or 405. */
enum MHD_Result web_serve(struct MHD_Connection *c, const char *url, const char *method);

#endif
