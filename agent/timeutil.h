/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define USEC_PER_SEC 1000000ULL

uint64_t now_realtime_usec(void);
uint64_t now_monotonic_usec(void);

/* RFC 3339 formatting and parsing: timespec.h. */
