/*
 * Token generation and hashing, with GnuTLS (which libmicrohttpd already brings).
 */
#include "server/auth.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <string.h>

static void hex(const unsigned char *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

int auth_token_new(char token[AUTH_TOKEN_LEN])
{
    unsigned char r[32];

    if (gnutls_rnd(GNUTLS_RND_KEY, r, sizeof(r)) != 0)
        return -EIO;
    memcpy(token, "gp_", 3);
    hex(r, sizeof(r), token + 3);
    return 0;
}

void auth_token_hash(const char *token, char hash[AUTH_HASH_LEN])
{
    unsigned char d[32];

    gnutls_hash_fast(GNUTLS_DIG_SHA256, token, strlen(token), d);
    hex(d, sizeof(d), hash);
}
