/*
 * The OpenAPI document of the API (docs/openapi.json), built into the binary.
 */
#ifndef GPOOL_SERVER_OPENAPI_H
#define GPOOL_SERVER_OPENAPI_H

#include <stddef.h>

extern const char gpool_openapi_json[];
extern const size_t gpool_openapi_json_len;

#endif
