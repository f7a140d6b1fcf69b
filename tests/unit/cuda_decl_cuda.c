/*
 * The facts as the toolkit's cuda.h gives them.  Including gpool's function
 * declarations after cuda.h makes the compiler check every prototype: a
 * declaration that disagrees with cuda.h's is a build error.
 */
#include <cuda.h>

#include "common/gcuda_api.h"
#include "cuda_decl_facts.h"

const struct decl_fact decl_facts_cuda[] = {
#include "cuda_decl_facts.inc"
};
const size_t decl_nfacts_cuda = sizeof(decl_facts_cuda) / sizeof(decl_facts_cuda[0]);
