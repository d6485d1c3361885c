/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

/*
 * Arrays that grow: GREEDY_REALLOC(v, n + 1) makes room for at least n + 1
 * elements of v (a pointer to the first, NULL for an empty array) and returns
 * v, or NULL with v untouched when memory runs out. The allocation doubles, so
 * appending one element at a time costs amortised O(1); the capacity is what
 * malloc says the block holds, so callers keep only their count.
 */
void *greedy_realloc(void **p, size_t need, size_t size);
#define GREEDY_REALLOC(array, need) greedy_realloc((void **)&(array), (need), sizeof((array)[0]))

/* asprintf(3) that returns the string, NULL when memory runs out. */
char *strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
