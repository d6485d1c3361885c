/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "strv.h"

char **strv_free(char **l)
{
        for (char **p = l; p && *p; p++)
                free(*p);
        free(l);
        return NULL;
}

size_t strv_length(char *const *l)
{
        size_t n = 0;

        while (l && l[n])
                n++;
        return n;
}

int strv_consume(char ***l, char *s)
{
        size_t n = strv_length(*l);
        char **p;

        if (!s)
                return -ENOMEM;
        p = GREEDY_REALLOC(*l, n + 2);
        if (!p) {
                free(s);
                return -ENOMEM;
        }
        p[n] = s;
        p[n + 1] = NULL;
        return 0;
}

int strv_push(char ***l, const char *s)
{
        return strv_consume(l, strdup(s));
}

int strv_contains(char *const *l, const char *s)
{
        for (; l && *l; l++)
                if (strcmp(*l, s) == 0)
                        return 1;
        return 0;
}
