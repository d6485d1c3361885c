/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define USEC_PER_SEC 1000000ULL

uint64_t now_realtime_usec(void);
uint64_t now_monotonic_usec(void);

/* "2026-11-27T05:30:12Z" (UTC, second precision); buf at least 32 bytes. */
char *format_rfc3339(uint64_t usec, char *buf, size_t size);

/* Parse the format above (and "+00:00" offsets); -EINVAL if malformed. */
int parse_rfc3339(const char *s, uint64_t *ret_usec);
