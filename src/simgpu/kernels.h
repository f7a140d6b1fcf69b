/*
 * Kernels on simulated GPUs.  A kernel found in a loaded PTX module runs
 * for a time computed from its launch, and, when simgpu has a host
 * implementation registered under its name, also does its work on the
 * device memory, so that programs can check their results.
 *
 * Run time convention: a kernel with a host implementation says its own
 * time from its parameters (gpool_burn_step: its spin time, or the time to
 * read and write its buffer at the device's memory bandwidth if longer).
 * Any other kernel takes 10 microseconds per wave, a wave being as many
 * blocks as the device has SMs.
 */
#ifndef GPOOL_SIMGPU_KERNELS_H
#define GPOOL_SIMGPU_KERNELS_H

#include <stdint.h>

#include "simgpu/mem.h"

struct simgpu_launch {
    unsigned grid[3];
    unsigned block[3];
    unsigned shmem;
    void **params;
    int sms;
    uint64_t membw_bps;
};

struct simgpu_kernel_impl {
    const char *name;
    /* Does the kernel's work; 0, or a CUresult (an illegal address).  mem is locked. */
    int (*run)(const struct simgpu_launch *l, struct simgpu_mem *mem);
    int64_t (*duration_ns)(const struct simgpu_launch *l);
};

/* The host implementation of the kernel called name, or NULL. */
const struct simgpu_kernel_impl *simgpu_kernel_find(const char *name);
/* The run time of a launch by the default convention. */
int64_t simgpu_kernel_default_ns(const struct simgpu_launch *l);

/* Finds the .entry names of a PTX text; returns how many (at most max), or -1 when the text
 * is not PTX. */
int simgpu_ptx_entries(const char *ptx, char (*names)[128], int max);

#endif
