/*
 * Tokens: random, shown once, stored only as their SHA-256.
 */
#ifndef GPOOL_SERVER_AUTH_H
#define GPOOL_SERVER_AUTH_H

#include <stddef.h>

#define AUTH_TOKEN_LEN 68 /* "gp_" + 64 hex digits + NUL */
#define AUTH_HASH_LEN 65

/* A new token; 0 or -EIO when the system has no randomness to give. */
int auth_token_new(char token[AUTH_TOKEN_LEN]);
void auth_token_hash(const char *token, char hash[AUTH_HASH_LEN]);

#endif
