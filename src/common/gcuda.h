/*
 * The CUDA driver API as gpool declares it: types and prototypes, with no
 * dependency on the CUDA toolkit.  Programs that load the real driver with
 * dlopen use the types and take the functions' addresses by name.
 */
#ifndef GPOOL_GCUDA_H
#define GPOOL_GCUDA_H

#include "gcuda_types.h"
#include "gcuda_api.h"

#endif
