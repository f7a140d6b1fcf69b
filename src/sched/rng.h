/*
 * A seeded random number generator (xoshiro256**) whose whole state is a value the caller owns:
 * the scheduling core never draws randomness of its own, so a seed replays a decision exactly.
 */
#ifndef GPOOL_SCHED_RNG_H
#define GPOOL_SCHED_RNG_H

#include <stdint.h>

struct sched_rng {
    uint64_t s[4];
};

void sched_rng_seed(struct sched_rng *r, uint64_t seed);
uint64_t sched_rng_next(struct sched_rng *r);
/* Uniform in [0, n); n > 0. */
uint64_t sched_rng_below(struct sched_rng *r, uint64_t n);
/* Fisher-Yates shuffle of n ints. */
void sched_rng_shuffle(struct sched_rng *r, int *a, int n);

#endif
