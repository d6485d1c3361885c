/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "timeutil.h"

uint64_t now_usec(clockid_t id)
{
        struct timespec ts;

        clock_gettime(id, &ts);
        return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t now_realtime_usec(void)
{
        return now_usec(CLOCK_REALTIME);
}

uint64_t now_monotonic_usec(void)
{
        return now_usec(CLOCK_MONOTONIC);
}

uint64_t now_boottime_usec(void)
{
        return now_usec(CLOCK_BOOTTIME);
}

char *boot_id(char buf[static BOOT_ID_MAX])
{
        _cleanup_fclose_ FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");

        if (!f || !fgets(buf, BOOT_ID_MAX, f))
                buf[0] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        return buf;
}
