/*
 * What gpool-burn's kernel computes, for the host: the initial value of each
 * word and one step of the kernel.  A step is affine in the word's value,
 * so k steps compose into value * a + b + index * c, which lets the checker
 * verify any word after any number of steps in constant time.  The PTX
 * kernel (burn_ptx.c) and simgpu's host implementation compute the same.
 */
#ifndef GPOOL_BURN_MATH_H
#define GPOOL_BURN_MATH_H

#include <stdint.h>

#define BURN_MUL 0x85ebca6bu
#define BURN_ADD 0x9e3779b9u

static inline uint32_t burn_init(uint64_t i, uint32_t seed)
{
    return (uint32_t)i * 0x27d4eb2fu ^ seed;
}

static inline uint32_t burn_step(uint32_t x, uint64_t i, uint32_t iter)
{
    return x * BURN_MUL + iter * BURN_ADD + (uint32_t)i;
}

/* Steps 0 .. k-1 together: x_k = a * x_0 + b + c * i (mod 2^32). */
struct burn_affine {
    uint32_t a, b, c;
};

static inline void burn_affine_next(struct burn_affine *f, uint32_t iter)
{
    f->a *= BURN_MUL;
    f->b = f->b * BURN_MUL + iter * BURN_ADD;
    f->c = f->c * BURN_MUL + 1;
}

static inline uint32_t burn_expect(const struct burn_affine *f, uint64_t i, uint32_t seed)
{
    return f->a * burn_init(i, seed) + f->b + f->c * (uint32_t)i;
}

#endif
