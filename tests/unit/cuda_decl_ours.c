/* The facts as gpool's own declarations give them. */
#include "common/gcuda.h"
#include "cuda_decl_facts.h"

const struct decl_fact decl_facts_ours[] = {
#include "cuda_decl_facts.inc"
};
const size_t decl_nfacts_ours = sizeof(decl_facts_ours) / sizeof(decl_facts_ours[0]);
