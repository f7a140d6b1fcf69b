/*
 * Reservations, physical allocations and mappings of one process's simulated
 * device memory, and translation of device addresses to their bytes.  The
 * caller holds the lock around every call.
 */
#include "simgpu/mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "simgpu/state.h"

int simgpu_mem_init(struct simgpu_mem *m, size_t span)
{
    void *p;

    memset(m, 0, sizeof(*m));
    pthread_mutex_init(&m->mu, NULL);
    span = (span + SIMGPU_GRANULARITY - 1) / SIMGPU_GRANULARITY * SIMGPU_GRANULARITY;
    /* One extra granule so that the range can be aligned to the granularity. */
    p = mmap(NULL, span + SIMGPU_GRANULARITY, PROT_NONE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    m->base = ((uint64_t)(uintptr_t)p + SIMGPU_GRANULARITY - 1) / SIMGPU_GRANULARITY *
              SIMGPU_GRANULARITY;
    m->span = span;
    m->next_handle = 1;
    return 0;
}

void simgpu_mem_advise(void *data, size_t size)
{
    /* Huge pages: a simulated GPU's gigabytes would otherwise take a page fault per 4 KiB. */
    madvise(data, size, MADV_HUGEPAGE);
}

void simgpu_mem_lock(struct simgpu_mem *m)
{
    pthread_mutex_lock(&m->mu);
}

void simgpu_mem_unlock(struct simgpu_mem *m)
{
    pthread_mutex_unlock(&m->mu);
}

static bool grow(void **arr, size_t n, size_t size)
{
    void *p;

    /* Grows by powers of two: n is the count before the insertion. */
    if (n != 0 && (n & (n - 1)) != 0)
        return true;
    p = realloc(*arr, (n == 0 ? 8 : n * 2) * size);
    if (p == NULL)
        return false;
    *arr = p;
    return true;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

/* The lowest aligned gap of size bytes, at or after hint when the hint is free. */
static int find_gap(struct simgpu_mem *m, size_t size, size_t align, uint64_t hint, uint64_t *va,
                    size_t *at)
{
    uint64_t end = m->base + m->span;
    uint64_t cur = align_up(m->base, align);

    if (hint != 0) {
        size_t i = 0;

        while (i < m->nresv && m->resv[i].va + m->resv[i].size <= hint)
            i++;
        if (hint % align == 0 && hint >= m->base && hint + size <= end &&
            (i == m->nresv || m->resv[i].va >= hint + size)) {
            *va = hint;
            *at = i;
            return 0;
        }
    }
    for (size_t i = 0; i <= m->nresv; i++) {
        uint64_t next = i < m->nresv ? m->resv[i].va : end;

        if (cur + size <= next) {
            *va = cur;
            *at = i;
            return 0;
        }
        if (i < m->nresv)
            cur = align_up(m->resv[i].va + m->resv[i].size, align);
    }
    return -ENOMEM;
}

int simgpu_mem_reserve(struct simgpu_mem *m, size_t size, size_t align, uint64_t hint, bool alloc,
                       uint64_t *va)
{
    size_t at;

    if (size == 0 || size % SIMGPU_GRANULARITY != 0)
        return -EINVAL;
    if (align < SIMGPU_GRANULARITY)
        align = SIMGPU_GRANULARITY;
    if ((align & (align - 1)) != 0)
        return -EINVAL;
    if (find_gap(m, size, align, hint, va, &at) != 0)
        return -ENOMEM;
    if (!grow((void **)&m->resv, m->nresv, sizeof(*m->resv)))
        return -ENOMEM;
    memmove(&m->resv[at + 1], &m->resv[at], (m->nresv - at) * sizeof(*m->resv));
    m->resv[at] = (struct simgpu_resv){.va = *va, .size = size, .alloc = alloc};
    m->nresv++;
    return 0;
}

static size_t resv_index(struct simgpu_mem *m, uint64_t va)
{
    size_t lo = 0, hi = m->nresv;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (m->resv[mid].va + m->resv[mid].size <= va)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < m->nresv && m->resv[lo].va <= va ? lo : m->nresv;
}

const struct simgpu_resv *simgpu_mem_find_resv(struct simgpu_mem *m, uint64_t va)
{
    size_t i = resv_index(m, va);

    return i < m->nresv ? &m->resv[i] : NULL;
}

static size_t map_index(struct simgpu_mem *m, uint64_t va)
{
    size_t lo = 0, hi = m->nmap;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (m->map[mid].va + m->map[mid].size <= va)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int simgpu_mem_unreserve(struct simgpu_mem *m, uint64_t va, size_t size)
{
    size_t i = resv_index(m, va);
    size_t j = map_index(m, va);

    if (i == m->nresv || m->resv[i].va != va || m->resv[i].size != size)
        return -EINVAL;
    if (j < m->nmap && m->map[j].va < va + size)
        return -EBUSY;
    memmove(&m->resv[i], &m->resv[i + 1], (m->nresv - i - 1) * sizeof(*m->resv));
    m->nresv--;
    return 0;
}

int simgpu_mem_create(struct simgpu_mem *m, int dev, size_t size, struct simgpu_phys **out)
{
    struct simgpu_phys *p;

    if (size == 0 || size % SIMGPU_GRANULARITY != 0)
        return -EINVAL;
    if (!grow((void **)&m->phys, m->nphys, sizeof(*m->phys)))
        return -ENOMEM;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    /* Pages are committed when first written, as the simulated device needs them. */
    p->data = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p->data == MAP_FAILED) {
        free(p);
        return -ENOMEM;
    }
    simgpu_mem_advise(p->data, size);
    p->handle = m->next_handle++;
    p->dev = dev;
    p->size = size;
    m->phys[m->nphys++] = p;
    *out = p;
    return 0;
}

struct simgpu_phys *simgpu_mem_phys(struct simgpu_mem *m, uint64_t handle)
{
    for (size_t i = 0; i < m->nphys; i++)
        if (m->phys[i]->handle == handle && !m->phys[i]->released)
            return m->phys[i];
    return NULL;
}

static void phys_destroy(struct simgpu_mem *m, struct simgpu_phys *p)
{
    for (size_t i = 0; i < m->nphys; i++) {
        if (m->phys[i] == p) {
            m->phys[i] = m->phys[--m->nphys];
            break;
        }
    }
    if (p->data != NULL)
        munmap(p->data, p->size);
    if (p->saved != NULL)
        munmap(p->saved, p->size);
    free(p);
}

bool simgpu_mem_release(struct simgpu_mem *m, struct simgpu_phys *p)
{
    p->released = true;
    if (p->nmaps > 0)
        return false;
    phys_destroy(m, p);
    return true;
}

int simgpu_mem_map(struct simgpu_mem *m, uint64_t va, size_t size, size_t offset,
                   struct simgpu_phys *p)
{
    size_t i = resv_index(m, va);
    size_t j = map_index(m, va);

    if (size == 0 || size % SIMGPU_GRANULARITY != 0 || offset % SIMGPU_GRANULARITY != 0 ||
        offset + size > p->size)
        return -EINVAL;
    if (i == m->nresv || va + size > m->resv[i].va + m->resv[i].size)
        return -EINVAL; /* not inside one reservation */
    if (j < m->nmap && m->map[j].va < va + size)
        return -EEXIST;
    if (!grow((void **)&m->map, m->nmap, sizeof(*m->map)))
        return -ENOMEM;
    memmove(&m->map[j + 1], &m->map[j], (m->nmap - j) * sizeof(*m->map));
    m->map[j] = (struct simgpu_map){.va = va, .size = size, .offset = offset, .phys = p};
    m->nmap++;
    p->nmaps++;
    return 0;
}

int simgpu_mem_unmap(struct simgpu_mem *m, uint64_t va, size_t size,
                     void (*gone)(struct simgpu_phys *, void *), void *arg)
{
    size_t j = map_index(m, va), k = j;

    if (j == m->nmap || m->map[j].va != va)
        return -EINVAL;
    while (k < m->nmap && m->map[k].va + m->map[k].size <= va + size)
        k++;
    if (k == j || (k < m->nmap && m->map[k].va < va + size) ||
        m->map[k - 1].va + m->map[k - 1].size != va + size)
        return -EINVAL; /* the range must cover whole mappings */
    for (size_t x = j; x < k; x++) {
        struct simgpu_phys *p = m->map[x].phys;

        if (--p->nmaps == 0 && p->released) {
            if (gone != NULL)
                gone(p, arg);
            phys_destroy(m, p);
        }
    }
    memmove(&m->map[j], &m->map[k], (m->nmap - k) * sizeof(*m->map));
    m->nmap -= k - j;
    return 0;
}

unsigned char *simgpu_mem_host(struct simgpu_mem *m, uint64_t va, size_t *avail)
{
    size_t j = map_index(m, va);
    const struct simgpu_map *mp;

    if (j == m->nmap || m->map[j].va > va)
        return NULL;
    mp = &m->map[j];
    if (mp->phys->data == NULL)
        return NULL;
    *avail = mp->size - (va - mp->va);
    return mp->phys->data + mp->offset + (va - mp->va);
}

void simgpu_mem_each(struct simgpu_mem *m, void (*fn)(struct simgpu_phys *, void *), void *arg)
{
    for (size_t i = 0; i < m->nphys; i++)
        fn(m->phys[i], arg);
}
