/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "alloc.h"

/*
 * Tell the compiler (and _FORTIFY_SOURCE, UBSan's object-size check) that the
 * whole block may be used, not only the size asked of realloc.
 */
static void *__attribute__((noinline, alloc_size(2))) usable(void *p, size_t size)
{
        return p;
}

void *greedy_realloc(void **p, size_t need, size_t size)
{
        size_t have = *p ? malloc_usable_size(*p) : 0, n = need < 4 ? 4 : need;
        void *q;

        if (size == 0 || need > SIZE_MAX / size)
                return NULL;
        if (have >= need * size)
                return usable(*p, have);
        if (n <= SIZE_MAX / 2 / size)
                n *= 2;
        q = realloc(*p, n * size);
        if (!q)
                return NULL;
        *p = usable(q, malloc_usable_size(q));
        return *p;
}

char *strdup_printf(const char *fmt, ...)
{
        va_list ap;
        char *s;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        return r < 0 ? NULL : s;
}
