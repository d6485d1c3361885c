/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

#include "cleanup.h"

/*
 * NULL-terminated vectors of strings that own their elements, as argv is laid
 * out. A NULL vector is an empty one. strv_free(NULL) is fine.
 */
char **strv_free(char **l);
size_t strv_length(char *const *l);
/* Append a copy of s; -ENOMEM leaves *l as it was. */
int strv_push(char ***l, const char *s);
/* Append s itself, which the vector then owns (freed on failure too). */
int strv_consume(char ***l, char *s);
int strv_contains(char *const *l, const char *s);

static inline void strv_freep(char ***l)
{
        strv_free(*l);
}
#define _cleanup_strv_ _cleanup_(strv_freep)
