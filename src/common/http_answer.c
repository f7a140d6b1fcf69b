/*
 * What both HTTP clients share (http.c on libcurl, http_event.c on libevent): reading an
 * answer's headers, freeing it, and JSON requests on top of http_raw.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/http.h"
#include "common/log.h"

const char *http_answer_header(const struct http_answer *a, const char *name, char *buf, size_t len)
{
    size_t n = strlen(name);

    for (const char *line = a->headers; line != NULL && *line != '\0';) {
        const char *eol = strchr(line, '\n');
        size_t ll = eol ? (size_t)(eol - line) : strlen(line);

        if (ll > n && strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;

            while (*v == ' ' || *v == '\t')
                v++;
            ll -= (size_t)(v - line);
            while (ll > 0 && (v[ll - 1] == '\r' || v[ll - 1] == ' '))
                ll--;
            snprintf(buf, len, "%.*s", (int)ll, v);
            return buf;
        }
        line = eol ? eol + 1 : NULL;
    }
    return NULL;
}

void http_answer_fini(struct http_answer *a)
{
    free(a->body);
    free(a->headers);
    memset(a, 0, sizeof(*a));
}

int http_json(const char *server, const char *token, const char *method, const char *path,
              json_t *body, long timeout_s, long *status, json_t **out, char *err, size_t errlen)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct http_answer a;
    int rc = http_raw(server, token, method, path, text, text ? strlen(text) : 0,
                      "application/json", timeout_s, &a, err, errlen);

    free(text);
    *out = NULL;
    *status = a.status;
    if (rc != 0)
        return -1;
    *out = json_loadb(a.body ? a.body : "null", a.body ? a.len : 4, JSON_DECODE_ANY, NULL);
    http_answer_fini(&a);
    return 0;
}

char *http_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *e = xcalloc(3, strlen(s) + 1), *p = e;

    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;

        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            *p++ = (char)ch;
        } else {
            *p++ = '%';
            *p++ = hex[ch >> 4];
            *p++ = hex[ch & 15];
        }
    }
    *p = '\0';
    return e;
}
