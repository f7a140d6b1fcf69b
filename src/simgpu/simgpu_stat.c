/*
 * simgpu-stat: what the simulated GPUs hold, from simgpu's own books: per device its memory and
 * kernel time, per live process its memory and kernel time on each device.  Tests measure what
 * other code did (the preload library's caps and shares) with it, sharing no code with that code.
 *
 *   simgpu-stat        one line per device ("gpu INDEX UUID mem_used=B mem_total=B busy_ns=N")
 *                      and per process and device it used ("proc PID gpu INDEX mem=B busy_ns=N")
 */
#include <stdio.h>

#include "simgpu/state.h"

int main(void)
{
    struct simgpu_shm *s;
    char msg[512];

    if (simgpu_state_open(&s, msg, sizeof(msg)) != 0) {
        fprintf(stderr, "simgpu-stat: %s\n", msg);
        return 1;
    }
    simgpu_lock(s);
    simgpu_reap(s);
    for (int d = 0; d < s->ngpu; d++)
        printf("gpu %d %s mem_used=%llu mem_total=%llu busy_ns=%llu\n", d, s->dev[d].uuid,
               (unsigned long long)s->dev[d].mem_used, (unsigned long long)s->dev[d].mem_total,
               (unsigned long long)s->dev[d].busy_ns);
    for (int i = 0; i < SIMGPU_MAX_PROCS; i++) {
        const struct simgpu_proc *p = &s->proc[i];

        for (int d = 0; p->pid != 0 && d < s->ngpu; d++)
            if (p->mem[d] != 0 || p->busy_ns[d] != 0)
                printf("proc %d gpu %d mem=%llu busy_ns=%llu\n", (int)p->pid, d,
                       (unsigned long long)p->mem[d], (unsigned long long)p->busy_ns[d]);
    }
    simgpu_unlock(s);
    return 0;
}
