/*
 * HTTP requests with libcurl.  A server may be a list of URLs separated by commas (the replicas
 * of a server on one PostgreSQL store): a request goes to the one that answered last, and to
 * the next when one cannot be reached or answers as a standby (503 with X-Gpool-Leader or a
 * "standby" error).
 */
#include "common/http.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct buf {
    char *data;
    size_t len;
};

static size_t collect(void *p, size_t size, size_t n, void *arg)
{
    struct buf *b = arg;
    char *nb = realloc(b->data, b->len + size * n + 1);

    if (nb == NULL)
        return 0;
    memcpy(nb + b->len, p, size * n);
    b->data = nb;
    b->len += size * n;
    b->data[b->len] = '\0';
    return size * n;
}

/* One request to one server; *unsent says, on failure, that the request never left. */
static int http_one(const char *server, const char *token, const char *method, const char *path,
                    const void *body, size_t len, const char *content_type, long timeout_s,
                    struct http_answer *out, bool *unsent, char *err, size_t errlen)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = NULL;
    struct buf b = {0}, hb = {0};
    char url[2048], auth[256], type[128];
    CURLcode rc;

    memset(out, 0, sizeof(*out));
    *unsent = true;
    if (h == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(url, sizeof(url), "%s%s", server, path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    snprintf(type, sizeof(type), "Content-Type: %s", content_type ? content_type : "text/plain");
    hdr = curl_slist_append(hdr, auth);
    hdr = curl_slist_append(hdr, type);
    hdr = curl_slist_append(hdr, "Expect:"); /* no 100-continue round trip for larger bodies */
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &hb);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    out->body = b.data;
    out->len = b.len;
    out->headers = hb.data;
    out->hlen = hb.len;
    *unsent = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST;
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "cannot reach %s: %s", server, curl_easy_strerror(rc));
        http_answer_fini(out);
        return -1;
    }
    return 0;
}

const char *http_answer_header(const struct http_answer *a, const char *name, char *buf,
                               size_t len)
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

/* Whether an answer comes from a standby server (another one leads). */
static bool standby(const struct http_answer *a)
{
    char buf[8];

    return a->status == 503 && (http_answer_header(a, "X-Gpool-Leader", buf, sizeof(buf)) ||
                                (a->body && strstr(a->body, "\"code\":\"standby\"")));
}

/* Which URL of a list answered last: the first one tried next time. */
static int last_good;

int http_raw(const char *server, const char *token, const char *method, const char *path,
             const void *body, size_t len, const char *content_type, long timeout_s,
             struct http_answer *out, char *err, size_t errlen)
{
    char urls[8][512];
    int n = 0, first, rc = -1;

    for (const char *p = server; n < 8;) {
        size_t l = strcspn(p, ",");

        snprintf(urls[n++], sizeof(urls[0]), "%.*s", (int)l, p);
        if (p[l] == '\0')
            break;
        p += l + 1;
    }
    first = __atomic_load_n(&last_good, __ATOMIC_RELAXED);
    first = first < n ? first : 0;
    for (int k = 0; k < n; k++) {
        int i = (first + k) % n;
        bool unsent;

        if (k > 0)
            http_answer_fini(out);
        rc = http_one(urls[i], token, method, path, body, len, content_type, timeout_s, out,
                      &unsent, err, errlen);
        if (rc == 0 && (!standby(out) || k == n - 1)) {
            __atomic_store_n(&last_good, i, __ATOMIC_RELAXED);
            return 0;
        }
        /* A request that may have reached a server is sent again only when it changes nothing. */
        if (rc != 0 && !unsent && strcmp(method, "GET") != 0)
            return rc;
    }
    return rc;
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
