/*
 * simgpu's driver, part two: device memory.  Every allocation is charged to
 * the process on the shared state, so that all processes on a simulated GPU
 * see the same free memory, and copies take the time of the host link.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "simgpu/driver.h"

#define drv simgpu__drv

CUresult simgpu__mem_error(int rc)
{
    switch (rc) {
    case 0: return CUDA_SUCCESS;
    case -ENOMEM: return CUDA_ERROR_OUT_OF_MEMORY;
    case -EEXIST: return CUDA_ERROR_ALREADY_MAPPED;
    default: return CUDA_ERROR_INVALID_VALUE;
    }
}

static size_t granular(size_t n)
{
    return (n + SIMGPU_GRANULARITY - 1) / SIMGPU_GRANULARITY * SIMGPU_GRANULARITY;
}

static void uncharge_phys(struct simgpu_phys *p, void *arg)
{
    simgpu_lock(drv.shm);
    simgpu_uncharge(drv.shm, drv.slot, p->dev, p->size);
    simgpu_unlock(drv.shm);
}

/* A physical allocation charged to this process; the mem lock is held. */
static int phys_new(int dev, size_t size, struct simgpu_phys **out)
{
    int rc;

    simgpu_lock(drv.shm);
    rc = simgpu_charge(drv.shm, drv.slot, dev, size);
    simgpu_unlock(drv.shm);
    if (rc != 0)
        return rc;
    rc = simgpu_mem_create(&drv.mem, dev, size, out);
    if (rc != 0)
        uncharge_phys(&(struct simgpu_phys){.dev = dev, .size = size}, NULL);
    return rc;
}

static int alloc_locked(int dev, size_t size, uint64_t *va)
{
    struct simgpu_phys *p;
    int rc = simgpu_mem_reserve(&drv.mem, size, 0, 0, true, va);

    if (rc != 0)
        return rc;
    rc = phys_new(dev, size, &p);
    if (rc != 0) {
        simgpu_mem_unreserve(&drv.mem, *va, size);
        return rc;
    }
    simgpu_mem_map(&drv.mem, *va, size, 0, p);
    simgpu_mem_release(&drv.mem, p); /* freed with its mapping */
    return 0;
}

SIMGPU_EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
{
    struct CUctx_st *c = simgpu__ctx();
    CUresult rc = simgpu__enter();
    uint64_t va;

    if (rc != CUDA_SUCCESS)
        return rc;
    if (c == NULL)
        rc = CUDA_ERROR_INVALID_CONTEXT;
    else if (dptr == NULL || bytesize == 0)
        rc = CUDA_ERROR_INVALID_VALUE;
    if (rc == CUDA_SUCCESS) {
        simgpu_mem_lock(&drv.mem);
        rc = simgpu__mem_error(alloc_locked(c->dev, granular(bytesize), &va));
        simgpu_mem_unlock(&drv.mem);
        if (rc == CUDA_SUCCESS)
            *dptr = va;
    }
    simgpu__leave();
    return rc;
}

/* Page-locked host memory: on simulated GPUs, plain host memory (copies take the link's time
 * either way). */
SIMGPU_EXPORT CUresult cuMemAllocHost_v2(void **pp, size_t bytesize)
{
    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (pp == NULL || bytesize == 0)
        return CUDA_ERROR_INVALID_VALUE;
    return posix_memalign(pp, 4096, bytesize) == 0 ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

SIMGPU_EXPORT CUresult cuMemFreeHost(void *p)
{
    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    free(p);
    return CUDA_SUCCESS;
}

/* Rows padded to 512 bytes, as the driver's texture alignment asks. */
#define PITCH_ALIGN 512

SIMGPU_EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pPitch, size_t WidthInBytes,
                                          size_t Height, unsigned int ElementSizeBytes)
{
    size_t pitch;

    if (pPitch == NULL || WidthInBytes == 0 || Height == 0 ||
        (ElementSizeBytes != 4 && ElementSizeBytes != 8 && ElementSizeBytes != 16))
        return drv.ready ? CUDA_ERROR_INVALID_VALUE : CUDA_ERROR_NOT_INITIALIZED;
    pitch = (WidthInBytes + PITCH_ALIGN - 1) / PITCH_ALIGN * PITCH_ALIGN;
    if (Height > SIZE_MAX / pitch)
        return CUDA_ERROR_OUT_OF_MEMORY;
    CUresult rc = cuMemAlloc_v2(dptr, pitch * Height);

    if (rc == CUDA_SUCCESS)
        *pPitch = pitch;
    return rc;
}

/* Managed memory lives on the device of the current context: simgpu does not migrate pages. */
SIMGPU_EXPORT CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags)
{
    if (flags != CU_MEM_ATTACH_GLOBAL && flags != CU_MEM_ATTACH_HOST)
        return drv.ready ? CUDA_ERROR_INVALID_VALUE : CUDA_ERROR_NOT_INITIALIZED;
    return cuMemAlloc_v2(dptr, bytesize);
}

/* Stream-ordered allocation: simulated kernels touch memory when they are launched, so the memory
 * is taken and given back at once. */
SIMGPU_EXPORT CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
{
    if (drv.ready && simgpu__stream(hStream, simgpu__ctx()) == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    return cuMemAlloc_v2(dptr, bytesize);
}

SIMGPU_EXPORT CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream)
{
    if (drv.ready && simgpu__stream(hStream, simgpu__ctx()) == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    return cuMemFree_v2(dptr);
}

SIMGPU_EXPORT CUresult cuMemFree_v2(CUdeviceptr dptr)
{
    CUresult rc = simgpu__enter();
    const struct simgpu_resv *r;

    if (rc != CUDA_SUCCESS)
        return rc;
    simgpu_mem_lock(&drv.mem);
    r = simgpu_mem_find_resv(&drv.mem, dptr);
    if (r == NULL || r->va != dptr || !r->alloc) {
        rc = CUDA_ERROR_INVALID_VALUE;
    } else {
        size_t size = r->size;

        simgpu_mem_unmap(&drv.mem, dptr, size, uncharge_phys, NULL);
        simgpu_mem_unreserve(&drv.mem, dptr, size);
    }
    simgpu_mem_unlock(&drv.mem);
    simgpu__leave();
    return rc;
}

SIMGPU_EXPORT CUresult cuMemGetAddressRange_v2(CUdeviceptr *pbase, size_t *psize,
                                               CUdeviceptr dptr)
{
    CUresult rc = simgpu__enter();
    const struct simgpu_resv *r;

    if (rc != CUDA_SUCCESS)
        return rc;
    simgpu_mem_lock(&drv.mem);
    r = simgpu_mem_find_resv(&drv.mem, dptr);
    if (r == NULL) {
        rc = CUDA_ERROR_NOT_FOUND;
    } else {
        if (pbase != NULL)
            *pbase = r->va;
        if (psize != NULL)
            *psize = r->size;
    }
    simgpu_mem_unlock(&drv.mem);
    simgpu__leave();
    return rc;
}

SIMGPU_EXPORT CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total)
{
    struct CUctx_st *c = simgpu__ctx();
    const struct simgpu_dev *d;

    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (c == NULL)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (free_bytes == NULL || total == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    simgpu_lock(drv.shm);
    simgpu_reap(drv.shm);
    d = &drv.shm->dev[c->dev];
    *total = d->mem_total;
    *free_bytes = d->mem_total - d->mem_used;
    simgpu_unlock(drv.shm);
    return CUDA_SUCCESS;
}

enum dir { TO_DEV, TO_HOST, DEV_TO_DEV };

/* Copies n bytes between host memory and device addresses that may span several mappings. */
static int copy_bytes(enum dir dir, uint64_t dst, uint64_t src, size_t n)
{
    while (n > 0) {
        size_t a = n, b = n;
        unsigned char *d = dir == TO_HOST ? (unsigned char *)(uintptr_t)dst
                                          : simgpu_mem_host(&drv.mem, dst, &a);
        unsigned char *s = dir == TO_DEV ? (unsigned char *)(uintptr_t)src
                                         : simgpu_mem_host(&drv.mem, src, &b);
        size_t k = n < a ? n : a;

        if (d == NULL || s == NULL)
            return -EFAULT;
        k = k < b ? k : b;
        memmove(d, s, k);
        dst += k;
        src += k;
        n -= k;
    }
    return 0;
}

static CUresult copy(enum dir dir, uint64_t dst, uint64_t src, size_t n, CUstream stream,
                     bool sync)
{
    struct CUctx_st *c = simgpu__ctx();
    struct CUstream_st *st = simgpu__stream(stream, c);
    CUresult rc = simgpu__enter();
    int64_t t;

    if (rc != CUDA_SUCCESS)
        return rc;
    if (st == NULL) {
        simgpu__leave();
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    /* A synchronous copy starts after the work queued before it. */
    if (sync)
        simgpu_sleep_until(st->ctx->busy_until_ns);
    simgpu_mem_lock(&drv.mem);
    rc = copy_bytes(dir, dst, src, n) == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
    simgpu_mem_unlock(&drv.mem);
    if (rc == CUDA_SUCCESS) {
        t = simgpu__enqueue(st, dir == DEV_TO_DEV
                                    ? (int64_t)((double)n * 2 / (double)drv.shm->membw_bps * 1e9)
                                    : simgpu__link_ns(n));
        if (sync)
            simgpu_sleep_until(t);
    }
    simgpu__leave();
    return rc;
}

SIMGPU_EXPORT CUresult cuMemcpyHtoD_v2(CUdeviceptr dstDevice, const void *srcHost,
                                       size_t ByteCount)
{
    return copy(TO_DEV, dstDevice, (uint64_t)(uintptr_t)srcHost, ByteCount, NULL, true);
}

SIMGPU_EXPORT CUresult cuMemcpyDtoH_v2(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount)
{
    return copy(TO_HOST, (uint64_t)(uintptr_t)dstHost, srcDevice, ByteCount, NULL, true);
}

SIMGPU_EXPORT CUresult cuMemcpyDtoD_v2(CUdeviceptr dstDevice, CUdeviceptr srcDevice,
                                       size_t ByteCount)
{
    return copy(DEV_TO_DEV, dstDevice, srcDevice, ByteCount, NULL, true);
}

SIMGPU_EXPORT CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dstDevice, const void *srcHost,
                                            size_t ByteCount, CUstream hStream)
{
    return copy(TO_DEV, dstDevice, (uint64_t)(uintptr_t)srcHost, ByteCount, hStream, false);
}

SIMGPU_EXPORT CUresult cuMemcpyDtoHAsync_v2(void *dstHost, CUdeviceptr srcDevice,
                                            size_t ByteCount, CUstream hStream)
{
    return copy(TO_HOST, (uint64_t)(uintptr_t)dstHost, srcDevice, ByteCount, hStream, false);
}

static CUresult memset_words(uint64_t dst, const void *value, size_t width, size_t count)
{
    CUresult rc = simgpu__enter();
    size_t i = 0;

    if (rc != CUDA_SUCCESS)
        return rc;
    simgpu_mem_lock(&drv.mem);
    while (i < count) {
        size_t avail;
        unsigned char *d = simgpu_mem_host(&drv.mem, dst + i * width, &avail);
        size_t k = avail / width;

        if (d == NULL || k == 0) {
            rc = CUDA_ERROR_INVALID_VALUE;
            break;
        }
        k = k < count - i ? k : count - i;
        for (size_t j = 0; j < k; j++)
            memcpy(d + j * width, value, width);
        i += k;
    }
    simgpu_mem_unlock(&drv.mem);
    simgpu__leave();
    return rc;
}

SIMGPU_EXPORT CUresult cuMemsetD8_v2(CUdeviceptr dstDevice, unsigned char uc, size_t N)
{
    return memset_words(dstDevice, &uc, 1, N);
}

SIMGPU_EXPORT CUresult cuMemsetD32_v2(CUdeviceptr dstDevice, unsigned int ui, size_t N)
{
    if (dstDevice % 4 != 0)
        return CUDA_ERROR_INVALID_VALUE;
    return memset_words(dstDevice, &ui, 4, N);
}

/* The virtual memory API: reserve, create, map, set access, unmap, release. */

SIMGPU_EXPORT CUresult cuMemGetAllocationGranularity(size_t *granularity,
                                                     const CUmemAllocationProp *prop,
                                                     CUmemAllocationGranularity_flags option)
{
    if (!drv.ready)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (granularity == NULL || prop == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *granularity = SIMGPU_GRANULARITY;
    return CUDA_SUCCESS;
}

SIMGPU_EXPORT CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t alignment,
                                           CUdeviceptr addr, unsigned long long flags)
{
    CUresult rc = simgpu__enter();
    uint64_t va;

    if (rc != CUDA_SUCCESS)
        return rc;
    if (ptr == NULL || flags != 0) {
        simgpu__leave();
        return CUDA_ERROR_INVALID_VALUE;
    }
    simgpu_mem_lock(&drv.mem);
    rc = simgpu__mem_error(simgpu_mem_reserve(&drv.mem, size, alignment, addr, false, &va));
    simgpu_mem_unlock(&drv.mem);
    if (rc == CUDA_SUCCESS)
        *ptr = va;
    simgpu__leave();
    return rc;
}

SIMGPU_EXPORT CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size)
{
    CUresult rc = simgpu__enter();
    const struct simgpu_resv *r;

    if (rc != CUDA_SUCCESS)
        return rc;
    simgpu_mem_lock(&drv.mem);
    r = simgpu_mem_find_resv(&drv.mem, ptr);
    if (r == NULL || r->alloc)
        rc = CUDA_ERROR_INVALID_VALUE;
    else
        rc = simgpu__mem_error(simgpu_mem_unreserve(&drv.mem, ptr, size));
    simgpu_mem_unlock(&drv.mem);
    simgpu__leave();
    return rc;
}

SIMGPU_EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size,
                                   const CUmemAllocationProp *prop, unsigned long long flags)
{
    CUresult rc = simgpu__enter();
    struct simgpu_phys *p;

    if (rc != CUDA_SUCCESS)
        return rc;
    if (handle == NULL || prop == NULL || flags != 0 ||
        prop->type != CU_MEM_ALLOCATION_TYPE_PINNED ||
        prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE || prop->location.id < 0 ||
        prop->location.id >= drv.shm->ngpu || size == 0 || size % SIMGPU_GRANULARITY != 0) {
        simgpu__leave();
        return CUDA_ERROR_INVALID_VALUE;
    }
    simgpu_mem_lock(&drv.mem);
    rc = simgpu__mem_error(phys_new(prop->location.id, size, &p));
    simgpu_mem_unlock(&drv.mem);
    if (rc == CUDA_SUCCESS)
        *handle = p->handle;
    simgpu__leave();
    return rc;
}

SIMGPU_EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle handle)
{
    CUresult rc = simgpu__enter();
    struct simgpu_phys *p;

    if (rc != CUDA_SUCCESS)
        return rc;
    simgpu_mem_lock(&drv.mem);
    p = simgpu_mem_phys(&drv.mem, handle);
    if (p == NULL) {
        rc = CUDA_ERROR_INVALID_VALUE;
    } else {
        struct simgpu_phys gone = *p;

        /* The memory goes back when its last mapping goes. */
        if (simgpu_mem_release(&drv.mem, p))
            uncharge_phys(&gone, NULL);
    }
    simgpu_mem_unlock(&drv.mem);
    simgpu__leave();
    return rc;
}

SIMGPU_EXPORT CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset,
                                CUmemGenericAllocationHandle handle, unsigned long long flags)
{
    CUresult rc = simgpu__enter();
    struct simgpu_phys *p;

    if (rc != CUDA_SUCCESS)
        return rc;
    simgpu_mem_lock(&drv.mem);
    p = simgpu_mem_phys(&drv.mem, handle);
    if (p == NULL || flags != 0)
        rc = CUDA_ERROR_INVALID_VALUE;
    else
        rc = simgpu__mem_error(simgpu_mem_map(&drv.mem, ptr, size, offset, p));
    simgpu_mem_unlock(&drv.mem);
    simgpu__leave();
    return rc;
}

SIMGPU_EXPORT CUresult cuMemUnmap(CUdeviceptr ptr, size_t size)
{
    CUresult rc = simgpu__enter();
    const struct simgpu_resv *r;

    if (rc != CUDA_SUCCESS)
        return rc;
    simgpu_mem_lock(&drv.mem);
    r = simgpu_mem_find_resv(&drv.mem, ptr);
    if (r == NULL || r->alloc)
        rc = CUDA_ERROR_INVALID_VALUE;
    else
        rc = simgpu__mem_error(simgpu_mem_unmap(&drv.mem, ptr, size, uncharge_phys, NULL));
    simgpu_mem_unlock(&drv.mem);
    simgpu__leave();
    return rc;
}

SIMGPU_EXPORT CUresult cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc *desc,
                                      size_t count)
{
    CUresult rc = simgpu__enter();
    size_t avail;

    if (rc != CUDA_SUCCESS)
        return rc;
    if (desc == NULL || count == 0)
        rc = CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; rc == CUDA_SUCCESS && i < count; i++)
        if (desc[i].location.type != CU_MEM_LOCATION_TYPE_DEVICE || desc[i].location.id < 0 ||
            desc[i].location.id >= drv.shm->ngpu)
            rc = CUDA_ERROR_INVALID_DEVICE;
    simgpu_mem_lock(&drv.mem);
    /* Only mapped memory takes access rights; the range may span several mappings. */
    for (size_t done = 0; rc == CUDA_SUCCESS && done < size; done += avail)
        if (simgpu_mem_host(&drv.mem, ptr + done, &avail) == NULL)
            rc = CUDA_ERROR_INVALID_VALUE;
    simgpu_mem_unlock(&drv.mem);
    simgpu__leave();
    return rc;
}
