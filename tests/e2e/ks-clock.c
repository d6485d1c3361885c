/* SPDX-License-Identifier: MIT */
/*
 * Test-only wall clock steps for killswitchd, loaded with LD_PRELOAD by
 * tests/e2e/test-abuse.sh: CLOCK_REALTIME (clock_gettime, gettimeofday, time)
 * is shifted by the number of seconds in the file named by $KS_CLOCK_FILE,
 * read at every call, as if NTP had stepped the clock. CLOCK_MONOTONIC and
 * CLOCK_BOOTTIME are left alone, as a step leaves them. (libfaketime shifts
 * the absolute times of every timerfd, boottime ones too, by the same offset.)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long long step_seconds(void)
{
        const char *path = getenv("KS_CLOCK_FILE");
        char buf[32] = "";
        long long n = 0;
        int fd;

        if (!path || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
                return 0;
        if (read(fd, buf, sizeof(buf) - 1) > 0)
                n = strtoll(buf, NULL, 10);
        close(fd);
        return n;
}

int clock_gettime(clockid_t clock, struct timespec *ts)
{
        static int (*real)(clockid_t, struct timespec *);
        int r;

        if (!real)
                real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
        r = real(clock, ts);
        if (r == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE))
                ts->tv_sec += step_seconds();
        return r;
}

int gettimeofday(struct timeval *tv, void *tz)
{
        struct timespec ts;

        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return -1;
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
        return 0;
}

time_t time(time_t *t)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        if (t)
                *t = ts.tv_sec;
        return ts.tv_sec;
}
