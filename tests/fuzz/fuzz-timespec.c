/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness: durations and points in time (timespec.c). The first byte
 * picks the parser, the rest is the text. Parsed values are formatted back;
 * an RFC 3339 instant formatted and parsed again must give the same second.
 * Local time is a POSIX TZ string with DST (no tzdata needed), so that
 * non-existent and ambiguous local times are exercised.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "timespec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* 2026-03-29 00:30 UTC: the night Europe moves its clocks forward. */
#define FUZZ_NOW_USEC (1774744200ULL * TIMESPEC_USEC_PER_SEC)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);
        tzset();
        return 0;
}

static void check_result(int r)
{
        if (r != 0 && r != -EINVAL && r != -ERANGE)
                abort();
}

static void format_back(uint64_t usec)
{
        char rfc[TIMESPEC_RFC3339_MAX], span[TIMESPEC_SPAN_MAX];
        uint64_t again = 0;

        if (timespec_format_span(usec, span, sizeof(span)) && !memchr(span, '\0', sizeof(span)))
                abort();
        if (!timespec_format_rfc3339(usec, rfc, sizeof(rfc)))
                return;         /* not representable (beyond year 9999): allowed to refuse */
        if (!memchr(rfc, '\0', sizeof(rfc)))
                abort();
        if (timespec_parse_rfc3339(rfc, &again) == 0 &&
            again != usec - usec % TIMESPEC_USEC_PER_SEC)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        uint64_t usec = 0;
        char *s;
        int r;

        if (size < 1)
                return 0;
        s = malloc(size);
        if (!s)
                return 0;
        memcpy(s, data + 1, size - 1);
        s[size - 1] = '\0';
        switch (data[0] % 4) {
        case 0:
                r = timespec_parse_duration(s, &usec);
                break;
        case 1:
                r = timespec_parse_time(s, FUZZ_NOW_USEC, &usec);
                if (r == 0 && !strchr(s, 'T') && !strchr(s, '-') && usec <= FUZZ_NOW_USEC)
                        abort();        /* a bare clock time is the next one, strictly after now */
                break;
        case 2:
                r = timespec_parse_rfc3339(s, &usec);
                break;
        default:
                /* Formatting any value, including the extremes. */
                memcpy(&usec, data + 1, size - 1 < sizeof(usec) ? size - 1 : sizeof(usec));
                r = 0;
                break;
        }
        check_result(r);
        if (r == 0)
                format_back(usec);
        free(s);
        return 0;
}
