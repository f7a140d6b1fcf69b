/* A fact about a CUDA type or constant, as one translation unit sees it. */
#ifndef GPOOL_TEST_CUDA_DECL_FACTS_H
#define GPOOL_TEST_CUDA_DECL_FACTS_H

#include <stddef.h>
#include <stdint.h>

struct decl_fact {
    const char *what;
    long long value;
};

#define SIZE(t) {"sizeof(" #t ")", (long long)sizeof(t)},
#define OFFSET(t, f) {"offsetof(" #t ", " #f ")", (long long)offsetof(t, f)},
#define VALUE(v) {#v, (long long)(v)},

extern const struct decl_fact decl_facts_ours[], decl_facts_cuda[];
extern const size_t decl_nfacts_ours, decl_nfacts_cuda;

#endif
