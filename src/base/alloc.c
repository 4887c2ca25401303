/* alloc.c: the allocation funnel. Every allocation of the library goes through a pool's
 * tp_allocator (or malloc/free), so tests can fail the Nth one and count what is live. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"

void *tp__malloc(const tp_allocator *a, size_t size)
{
    if (a == NULL || a->malloc == NULL)
        return malloc(size);
    return a->malloc(a->ud, size);
}

void *tp__calloc(const tp_allocator *a, size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    void *p = tp__malloc(a, n * size);
    if (p != NULL)
        memset(p, 0, n * size);
    return p;
}

void tp__free(const tp_allocator *a, void *ptr)
{
    if (ptr == NULL)
        return;
    /* A custom free must not clobber errno, which error paths may still report. */
    int saved = errno;
    if (a == NULL || a->free == NULL)
        free(ptr);
    else
        a->free(a->ud, ptr);
    errno = saved;
}
