/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The clocks, in microseconds. Parsing and formatting times: timespec.h. */

#define USEC_PER_MSEC 1000ULL
#define USEC_PER_SEC  1000000ULL
#define USEC_PER_MIN  (60ULL * USEC_PER_SEC)
#define USEC_PER_HOUR (60ULL * USEC_PER_MIN)
#define USEC_PER_DAY  (24ULL * USEC_PER_HOUR)

#include <time.h>

/* Any clock: CLOCK_THREAD_CPUTIME_ID for the CPU time a thread used. */
uint64_t now_usec(clockid_t clock);
uint64_t now_realtime_usec(void);
uint64_t now_monotonic_usec(void);
/* Monotonic, and counting while the machine is suspended. */
uint64_t now_boottime_usec(void);

#define BOOT_ID_MAX 64
/*
 * This boot's id (/proc/sys/kernel/random/boot_id) into buf, "" if unknown:
 * CLOCK_BOOTTIME and ifindexes mean something only until the next reboot.
 * Returns buf.
 */
char *boot_id(char buf[static BOOT_ID_MAX]);
