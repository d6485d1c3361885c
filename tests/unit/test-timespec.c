/* SPDX-License-Identifier: MIT */
/* Durations and times as admins type them: every format, bad input, the next occurrence across DST. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "timespec.h"

#define SEC 1000000ULL

static uint64_t dur(const char *s)
{
        uint64_t v = 12345;

        assert_int_equal(timespec_parse_duration(s, &v), 0);
        return v;
}

static void dur_bad(const char *s, int err)
{
        uint64_t v = 12345;

        assert_int_equal(timespec_parse_duration(s, &v), err);
        assert_int_equal(v, 12345);     /* untouched on failure */
}

static void test_duration(void **unused)
{
        assert_int_equal(dur("90s"), 90 * SEC);
        assert_int_equal(dur("90"), 90 * SEC);
        assert_int_equal(dur("15m"), 15 * 60 * SEC);
        assert_int_equal(dur("15min"), 15 * 60 * SEC);
        assert_int_equal(dur("15 minutes"), 15 * 60 * SEC);
        assert_int_equal(dur("2h"), 2 * 3600 * SEC);
        assert_int_equal(dur("2 hours"), 2 * 3600 * SEC);
        assert_int_equal(dur("1hr"), 3600 * SEC);
        assert_int_equal(dur("1h30m"), 5400 * SEC);
        assert_int_equal(dur("1h 30min"), 5400 * SEC);
        assert_int_equal(dur("1d"), 86400 * SEC);
        assert_int_equal(dur("2days"), 2 * 86400 * SEC);
        assert_int_equal(dur("1w"), 7 * 86400 * SEC);
        assert_int_equal(dur("10sec"), 10 * SEC);
        assert_int_equal(dur("1second"), SEC);
        assert_int_equal(dur("500ms"), 500000);
        assert_int_equal(dur("7us"), 7);
        assert_int_equal(dur("1h30m15s"), 5415 * SEC);
        assert_int_equal(dur(" 5s "), 5 * SEC);
        assert_int_equal(dur("0s"), 0);
        /* Fractions of the unit that follows, as systemd.time(7) reads them. */
        assert_int_equal(dur("1.5h"), 5400 * SEC);
        assert_int_equal(dur("1.5 hours"), 5400 * SEC);
        assert_int_equal(dur("0.25s"), 250000);
        assert_int_equal(dur("2.5"), 2500000);
        assert_int_equal(dur("1h 0.5m"), 3630 * SEC);
        assert_int_equal(dur("1.0000001s"), SEC);       /* below the µs: dropped */
}

static void test_duration_bad(void **unused)
{
        dur_bad("", -EINVAL);
        dur_bad("   ", -EINVAL);
        dur_bad("s", -EINVAL);
        dur_bad("5parsecs", -EINVAL);
        dur_bad("1h30", -EINVAL);       /* a bare number only last and alone... */
        dur_bad("-5s", -EINVAL);
        dur_bad("1.h", -EINVAL);
        dur_bad(".5h", -EINVAL);
        dur_bad("1.5.5h", -EINVAL);
        dur_bad("1y", -EINVAL);
        dur_bad("5 s x", -EINVAL);
        dur_bad("99999999999999999999s", -ERANGE);
        dur_bad("999999999999d", -ERANGE);
        assert_int_equal(timespec_parse_duration(NULL, &(uint64_t){0}), -EINVAL);
}

static void problem(const char *s, const char *want)
{
        char buf[TIMESPEC_PROBLEM_MAX];

        if (want)
                assert_string_equal(timespec_duration_problem(s, buf, sizeof(buf)), want);
        else
                assert_null(timespec_duration_problem(s, buf, sizeof(buf)));
}

/* The error names the unit it does not know, not the minimum or the format as a whole. */
static void test_duration_problem(void **unused)
{
        problem("1y", "unknown unit \"y\"");
        problem("1H", "unknown unit \"H\"");
        problem("1month", "unknown unit \"month\"");
        problem("5 fortnights", "unknown unit \"fortnights\"");
        problem("1h 2parsecs", "unknown unit \"parsecs\"");
        problem("PT1H", "not a duration");
        problem("soon", "not a duration");
        problem("1h30", "not a duration");
        problem("99999999999999999999s", "too long");
        problem("1.5h", NULL);
        problem("90", NULL);
}

static void set_tz(const char *tz)
{
        setenv("TZ", tz, 1);
        tzset();
}

static uint64_t utc(int y, int mo, int d, int h, int mi, int s)
{
        struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s };

        return (uint64_t)timegm(&tm) * SEC;
}

static uint64_t when(const char *s, uint64_t now)
{
        uint64_t v = 12345;

        assert_int_equal(timespec_parse_time(s, now, &v), 0);
        return v;
}

static void time_bad(const char *s)
{
        uint64_t v = 12345;

        assert_int_not_equal(timespec_parse_time(s, utc(2026, 11, 27, 12, 0, 0), &v), 0);
        assert_int_equal(v, 12345);
}

static void test_time_absolute(void **unused)
{
        uint64_t now = utc(2026, 11, 27, 12, 0, 0);

        set_tz("Europe/Berlin");        /* CET in winter: UTC+1; CEST in summer: UTC+2 */
        assert_int_equal(when("2026-12-01 18:00", now), utc(2026, 12, 1, 17, 0, 0));
        assert_int_equal(when("2026-12-01 18:00:30", now), utc(2026, 12, 1, 17, 0, 30));
        assert_int_equal(when("2026-12-01T18:00", now), utc(2026, 12, 1, 17, 0, 0));
        assert_int_equal(when("2026-07-01 18:00", now), utc(2026, 7, 1, 16, 0, 0));
        assert_int_equal(when("2026-12-01T17:00:00Z", now), utc(2026, 12, 1, 17, 0, 0));
        assert_int_equal(when("2026-12-01T17:00:00z", now), utc(2026, 12, 1, 17, 0, 0));
        assert_int_equal(when("2026-12-01T18:00:00+01:00", now), utc(2026, 12, 1, 17, 0, 0));
        assert_int_equal(when("2026-12-01T12:30:00-04:30", now), utc(2026, 12, 1, 17, 0, 0));
        assert_int_equal(when("2026-12-01T17:00:00.123456Z", now), utc(2026, 12, 1, 17, 0, 0));
        assert_int_equal(when("2028-02-29 00:00", now), utc(2028, 2, 28, 23, 0, 0));

        set_tz("UTC");
        assert_int_equal(when("2026-12-01 18:00", now), utc(2026, 12, 1, 18, 0, 0));
        set_tz("America/New_York");
        assert_int_equal(when("2026-12-01 18:00", now), utc(2026, 12, 1, 23, 0, 0));
}

static void test_time_bad(void **unused)
{
        set_tz("Europe/Berlin");
        time_bad("");
        time_bad("tomorrow");
        time_bad("25:00");
        time_bad("18:60");
        time_bad("18:00:61");
        time_bad("18");
        time_bad("1800");
        time_bad("8:00");
        time_bad("2026-13-01 18:00");
        time_bad("2026-02-30 18:00");
        time_bad("2027-02-29 18:00");
        time_bad("2026-12-01");
        time_bad("2026-12-01 18:00 +01:00");
        time_bad("2026-12-01T18:00+01:00");     /* an offset needs seconds (RFC 3339) */
        time_bad("2026-12-01T17:00:00+25:00");
        time_bad("2026-12-01T17:00:00Zjunk");
        time_bad("2026-12-01T17:00:00.Z");
        time_bad("18:00 tomorrow");
        assert_int_equal(timespec_parse_rfc3339("2026-12-01 18:00:00", &(uint64_t){0}), -EINVAL);
}

static void test_time_next(void **unused)
{
        set_tz("Europe/Berlin");
        /* 12:00 UTC = 13:00 local: 18:00 is today, 09:00 tomorrow, 13:00 itself is tomorrow. */
        assert_int_equal(when("18:00", utc(2026, 11, 27, 12, 0, 0)), utc(2026, 11, 27, 17, 0, 0));
        assert_int_equal(when("09:00", utc(2026, 11, 27, 12, 0, 0)), utc(2026, 11, 28, 8, 0, 0));
        assert_int_equal(when("13:00", utc(2026, 11, 27, 12, 0, 0)), utc(2026, 11, 28, 12, 0, 0));
        assert_int_equal(when("13:00:01", utc(2026, 11, 27, 12, 0, 0)), utc(2026, 11, 27, 12, 0, 1));
        /* Across midnight and the end of the year. */
        assert_int_equal(when("00:30", utc(2026, 12, 31, 23, 45, 0)), utc(2026, 12, 31, 23, 30, 0) + 24 * 3600 * SEC);
        /* DST starts 2026-03-29 02:00 CET -> 03:00 CEST: "tomorrow 18:00" is 23 h later, not 24. */
        assert_int_equal(when("18:00", utc(2026, 3, 28, 18, 0, 0)), utc(2026, 3, 29, 16, 0, 0));
        /* DST ends 2026-10-25 03:00 CEST -> 02:00 CET. */
        assert_int_equal(when("18:00", utc(2026, 10, 24, 18, 0, 0)), utc(2026, 10, 25, 17, 0, 0));
        /* 02:30 does not exist on 2026-03-29: moved forward by an hour, still after now. */
        assert_true(when("02:30", utc(2026, 3, 28, 23, 0, 0)) > utc(2026, 3, 28, 23, 0, 0));
        assert_int_equal(when("02:30", utc(2026, 3, 28, 23, 0, 0)), utc(2026, 3, 29, 1, 30, 0));
        set_tz("UTC");
        assert_int_equal(when("18:00", utc(2026, 11, 27, 12, 0, 0)), utc(2026, 11, 27, 18, 0, 0));
}

static uint64_t past(const char *s, uint64_t now)
{
        uint64_t v = 12345;

        assert_int_equal(timespec_parse_time_past(s, now, &v), 0);
        return v;
}

/* --since 07:00 at 08:05 is today's 07:00 (issue: it was tomorrow's, and "Nothing cut"). */
static void test_time_past(void **unused)
{
        uint64_t v = 12345;

        set_tz("Europe/Berlin");
        /* 12:00 UTC = 13:00 local: 07:00 is today, 18:00 yesterday, 13:00 itself now. */
        assert_int_equal(past("07:00", utc(2026, 11, 27, 12, 0, 0)), utc(2026, 11, 27, 6, 0, 0));
        assert_int_equal(past("18:00", utc(2026, 11, 27, 12, 0, 0)), utc(2026, 11, 26, 17, 0, 0));
        assert_int_equal(past("13:00", utc(2026, 11, 27, 12, 0, 0)), utc(2026, 11, 27, 12, 0, 0));
        assert_int_equal(past("13:00:01", utc(2026, 11, 27, 12, 0, 0)), utc(2026, 11, 26, 12, 0, 1));
        /* Across midnight and the start of the year: at 00:15 on Jan 1, the last 23:30 is on Dec 31. */
        assert_int_equal(past("23:30", utc(2026, 12, 31, 23, 15, 0)), utc(2026, 12, 31, 22, 30, 0));
        /* DST starts 2026-03-29: "yesterday 18:00" is 23 h earlier, not 24. */
        assert_int_equal(past("18:00", utc(2026, 3, 29, 15, 0, 0)), utc(2026, 3, 28, 17, 0, 0));
        /* The other forms are what they say, past or not. */
        assert_int_equal(past("2026-12-01 18:00", utc(2026, 11, 27, 12, 0, 0)), utc(2026, 12, 1, 17, 0, 0));
        assert_int_equal(past("2026-12-01T17:00:00Z", utc(2026, 11, 27, 12, 0, 0)), utc(2026, 12, 1, 17, 0, 0));
        assert_int_not_equal(timespec_parse_time_past("25:00", utc(2026, 11, 27, 12, 0, 0), &v), 0);
        assert_int_equal(v, 12345);
}

static void test_format(void **unused)
{
        char buf[TIMESPEC_SPAN_MAX];
        uint64_t v;

        assert_string_equal(timespec_format_rfc3339(utc(2026, 12, 1, 17, 0, 0), buf, sizeof(buf)),
                            "2026-12-01T17:00:00Z");
        assert_int_equal(timespec_parse_rfc3339(buf, &v), 0);
        assert_int_equal(v, utc(2026, 12, 1, 17, 0, 0));
        assert_string_equal(timespec_format_span((2 * 3600 + 13 * 60 + 5) * SEC, buf, sizeof(buf)), "2h 13min");
        assert_string_equal(timespec_format_span(45 * SEC, buf, sizeof(buf)), "45s");
        assert_string_equal(timespec_format_span(5 * 60 * SEC, buf, sizeof(buf)), "5min");
        assert_string_equal(timespec_format_span((86400 + 7200) * SEC, buf, sizeof(buf)), "1d 2h");
        assert_string_equal(timespec_format_span(1500, buf, sizeof(buf)), "1ms");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_duration),
                cmocka_unit_test(test_duration_bad),
                cmocka_unit_test(test_time_absolute),
                cmocka_unit_test(test_time_bad),
                cmocka_unit_test(test_time_next),
                cmocka_unit_test(test_time_past),
                cmocka_unit_test(test_duration_problem),
                cmocka_unit_test(test_format),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
