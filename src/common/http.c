/*
 * JSON requests with libcurl.
 */
#include "common/http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int http_json(const char *server, const char *token, const char *method, const char *path,
              json_t *body, long timeout_s, long *status, json_t **out, char *err, size_t errlen)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = NULL;
    struct buf b = {0};
    char url[2048], auth[256], *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    CURLcode rc;

    *out = NULL;
    *status = 0;
    if (h == NULL) {
        snprintf(err, errlen, "out of memory");
        free(text);
        return -1;
    }
    snprintf(url, sizeof(url), "%s%s", server, path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    hdr = curl_slist_append(hdr, auth);
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (text != NULL)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    free(text);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "cannot reach %s: %s", server, curl_easy_strerror(rc));
        free(b.data);
        return -1;
    }
    *out = json_loads(b.data ? b.data : "null", JSON_DECODE_ANY, NULL);
    free(b.data);
    return 0;
}
