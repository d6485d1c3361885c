/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "timespec.h"

static const struct {
        const char *name;
        uint64_t usec;
} units[] = {
        { "us", 1 }, { "usec", 1 },
        { "ms", USEC_PER_MSEC }, { "msec", USEC_PER_MSEC },
        { "s", USEC_PER_SEC }, { "sec", USEC_PER_SEC },
        { "second", USEC_PER_SEC }, { "seconds", USEC_PER_SEC },
        { "m", USEC_PER_MIN }, { "min", USEC_PER_MIN }, { "minute", USEC_PER_MIN }, { "minutes", USEC_PER_MIN },
        { "h", USEC_PER_HOUR }, { "hr", USEC_PER_HOUR }, { "hour", USEC_PER_HOUR }, { "hours", USEC_PER_HOUR },
        { "d", USEC_PER_DAY }, { "day", USEC_PER_DAY }, { "days", USEC_PER_DAY },
        { "w", 7 * USEC_PER_DAY }, { "week", 7 * USEC_PER_DAY }, { "weeks", 7 * USEC_PER_DAY },
};

static int unit_usec(const char *name, size_t len, uint64_t *ret)
{
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
                if (strlen(units[i].name) == len && strncmp(units[i].name, name, len) == 0) {
                        *ret = units[i].usec;
                        return 0;
                }
        return -EINVAL;
}

/* The fraction digits at s ("5" of "1.5h") in µs of `unit`, rounded down to the µs. */
static uint64_t fraction(const char *s, uint64_t unit)
{
        uint64_t frac = 0;

        for (; isdigit((unsigned char)*s); s++) {
                unit /= 10;
                frac += unit * (uint64_t)(*s - '0');
        }
        return frac;
}

/*
 * The duration s, or why it is not one: *ret_unit (may be NULL) points to an
 * unknown unit then, with its length in *ret_len.
 */
static int parse_duration(const char *s, uint64_t *ret_usec, const char **ret_unit, size_t *ret_len)
{
        uint64_t total = 0;
        bool any = false, bare = false;

        if (!s)
                return -EINVAL;
        for (;;) {
                uint64_t n = 0, unit = USEC_PER_SEC, frac = 0;
                const char *u, *f = NULL;

                while (isspace((unsigned char)*s))
                        s++;
                if (*s == '\0')
                        break;
                if (!isdigit((unsigned char)*s))
                        return -EINVAL;
                for (; isdigit((unsigned char)*s); s++) {
                        if (n > (UINT64_MAX - 9) / 10)
                                return -ERANGE;
                        n = n * 10 + (uint64_t)(*s - '0');
                }
                /* "1.5h", as systemd.time(7) takes it: the digits after the point, in the unit that follows. */
                if (*s == '.') {
                        if (!isdigit((unsigned char)s[1]))
                                return -EINVAL;
                        for (f = ++s; isdigit((unsigned char)*s); s++)
                                ;
                }
                while (*s == ' ')
                        s++;
                for (u = s; isalpha((unsigned char)*s); s++)
                        ;
                if (s > u && unit_usec(u, (size_t)(s - u), &unit) < 0) {
                        if (ret_unit) {
                                *ret_unit = u;
                                *ret_len = (size_t)(s - u);
                        }
                        return -EINVAL;
                }
                /* A bare number only alone: "90" is 90 s, "1h30" is refused (30 s? 30 min?). */
                if (bare || (s == u && any))
                        return -EINVAL;
                bare = s == u;
                if (f)
                        frac = fraction(f, unit);
                if (frac > UINT64_MAX - total || n > (UINT64_MAX - total - frac) / unit)
                        return -ERANGE;
                total += n * unit + frac;
                any = true;
        }
        if (!any)
                return -EINVAL;
        *ret_usec = total;
        return 0;
}

int timespec_parse_duration(const char *s, uint64_t *ret_usec)
{
        return parse_duration(s, ret_usec, NULL, NULL);
}

const char *timespec_duration_problem(const char *s, char *buf, size_t size)
{
        const char *unit = NULL;
        size_t len = 0;
        uint64_t usec;
        int r = parse_duration(s, &usec, &unit, &len);

        if (r == -ERANGE)
                snprintf(buf, size, "too long");
        else if (r < 0 && unit)
                snprintf(buf, size, "unknown unit \"%.*s\"", (int)(len < 16 ? len : 16), unit);
        else if (r < 0)
                snprintf(buf, size, "not a duration");
        else
                return NULL;
        return buf;
}

/* Exactly `digits` digits into *ret; returns the position after them, or NULL. */
static const char *parse_digits(const char *s, int digits, int *ret)
{
        int v = 0;

        for (int i = 0; i < digits; i++, s++) {
                if (!isdigit((unsigned char)*s))
                        return NULL;
                v = v * 10 + (*s - '0');
        }
        *ret = v;
        return s;
}

/* "HH:MM" or "HH:MM:SS"; returns the position after it, or NULL. */
static const char *parse_clock(const char *s, struct tm *tm)
{
        int h, m, sec = 0;

        if (!(s = parse_digits(s, 2, &h)) || *s++ != ':' || !(s = parse_digits(s, 2, &m)))
                return NULL;
        if (*s == ':' && !(s = parse_digits(s + 1, 2, &sec)))
                return NULL;
        if (h > 23 || m > 59 || sec > 59)
                return NULL;
        tm->tm_hour = h;
        tm->tm_min = m;
        tm->tm_sec = sec;
        return s;
}

/* "YYYY-MM-DD"; returns the position after it, or NULL. */
static const char *parse_date(const char *s, struct tm *tm)
{
        int y, mo, d;

        if (!(s = parse_digits(s, 4, &y)) || *s++ != '-' || !(s = parse_digits(s, 2, &mo)) || *s++ != '-' ||
            !(s = parse_digits(s, 2, &d)))
                return NULL;
        if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31)
                return NULL;
        tm->tm_year = y - 1900;
        tm->tm_mon = mo - 1;
        tm->tm_mday = d;
        return s;
}

/* "Z", "+HH:MM" or "-HH:MM" to seconds east of UTC; 1 if found, 0 if s is empty, -EINVAL. */
static int parse_offset(const char *s, long *ret)
{
        int h, m;
        const char *p;

        if (*s == '\0')
                return 0;
        if ((s[0] == 'Z' || s[0] == 'z') && s[1] == '\0') {
                *ret = 0;
                return 1;
        }
        if ((s[0] != '+' && s[0] != '-') || !(p = parse_digits(s + 1, 2, &h)) || *p++ != ':' ||
            !(p = parse_digits(p, 2, &m)) || *p != '\0' || h > 23 || m > 59)
                return -EINVAL;
        *ret = (s[0] == '-' ? -1L : 1L) * (h * 3600L + m * 60L);
        return 1;
}

static bool days_in_month_ok(const struct tm *tm)
{
        static const int days[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        int y = tm->tm_year + 1900;
        bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

        if (tm->tm_mon == 1 && tm->tm_mday == 29)
                return leap;
        return tm->tm_mday <= days[tm->tm_mon];
}

/* Local broken-down time to an instant; tm_isdst = -1 lets the zone decide. */
static int local_to_usec(struct tm tm, uint64_t *ret)
{
        time_t t;

        tm.tm_isdst = -1;
        t = mktime(&tm);
        if (t == (time_t)-1 || t < 0)
                return -ERANGE;
        *ret = (uint64_t)t * USEC_PER_SEC;
        return 0;
}

/*
 * The local HH:MM[:SS] nearest now on one side (a calendar day apart, not 24 h): the next one strictly after
 * now (today's, or tomorrow's) if `step` is 1, the last one at or before now (today's, or yesterday's) if -1.
 */
static int near_clock(const struct tm *clock, uint64_t now_usec, int step, uint64_t *ret)
{
        time_t now = (time_t)(now_usec / USEC_PER_SEC);
        struct tm tm;
        uint64_t t;
        int r;

        if (!localtime_r(&now, &tm))
                return -ERANGE;
        for (int day = 0; day < 3; day++) {
                struct tm want = tm;

                want.tm_mday += step * day;
                want.tm_hour = clock->tm_hour;
                want.tm_min = clock->tm_min;
                want.tm_sec = clock->tm_sec;
                r = local_to_usec(want, &t);
                if (r < 0)
                        return r;
                if (step > 0 ? t > now_usec : t <= now_usec) {
                        *ret = t;
                        return 0;
                }
        }
        return -ERANGE;
}

int timespec_parse_rfc3339(const char *s, uint64_t *ret_usec)
{
        struct tm tm = {};
        const char *p;
        long offset = 0;
        time_t t;

        if (!s || !(p = parse_date(s, &tm)) || (*p != 'T' && *p != 't' && *p != ' ') ||
            !(p = parse_clock(p + 1, &tm)) || p[-3] != ':' || p - s != 19)
                return -EINVAL;
        if (*p == '.') {
                if (!isdigit((unsigned char)p[1]))
                        return -EINVAL;
                for (p++; isdigit((unsigned char)*p); p++)
                        ;
        }
        if (parse_offset(p, &offset) != 1 || !days_in_month_ok(&tm))
                return -EINVAL;
        t = timegm(&tm);
        if (t == (time_t)-1 || t - offset < 0)
                return -ERANGE;
        *ret_usec = (uint64_t)(t - offset) * USEC_PER_SEC;
        return 0;
}

static int parse_time(const char *s, uint64_t now_usec, int step, uint64_t *ret_usec)
{
        struct tm tm = {};
        const char *p;
        long offset;
        uint64_t t;
        int r;

        if (!s)
                return -EINVAL;
        while (isspace((unsigned char)*s))
                s++;
        /* HH:MM[:SS]: the next occurrence, or the last one. */
        p = parse_clock(s, &tm);
        if (p && *p == '\0')
                return near_clock(&tm, now_usec, step, ret_usec);
        if (timespec_parse_rfc3339(s, ret_usec) == 0)
                return 0;
        /* YYYY-MM-DD[ T]HH:MM[:SS], local time. */
        if (!(p = parse_date(s, &tm)) || (*p != ' ' && *p != 'T' && *p != 't'))
                return -EINVAL;
        while (*p == ' ')
                p++;
        if (*p == 'T' || *p == 't')
                p++;
        if (!(p = parse_clock(p, &tm)) || !days_in_month_ok(&tm))
                return -EINVAL;
        r = parse_offset(p, &offset);
        if (r != 0)     /* an offset with HH:MM only, or trailing garbage */
                return r < 0 ? r : -EINVAL;
        r = local_to_usec(tm, &t);
        if (r < 0)
                return r;
        *ret_usec = t;
        return 0;
}

int timespec_parse_time(const char *s, uint64_t now_usec, uint64_t *ret_usec)
{
        return parse_time(s, now_usec, 1, ret_usec);
}

int timespec_parse_time_past(const char *s, uint64_t now_usec, uint64_t *ret_usec)
{
        return parse_time(s, now_usec, -1, ret_usec);
}

char *timespec_format_rfc3339(uint64_t usec, char *buf, size_t size)
{
        time_t t = (time_t)(usec / USEC_PER_SEC);
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, size, "invalid");
        return buf;
}

char *timespec_format_span(uint64_t usec, char *buf, size_t size)
{
        static const struct {
                const char *suffix;
                uint64_t usec;
        } u[] = {
                { "d", USEC_PER_DAY }, { "h", USEC_PER_HOUR }, { "min", USEC_PER_MIN },
                { "s", USEC_PER_SEC }, { "ms", USEC_PER_MSEC },
        };
        size_t i = 0, n = sizeof(u) / sizeof(u[0]);
        uint64_t rest;

        if (usec < USEC_PER_MSEC) {
                snprintf(buf, size, "0s");
                return buf;
        }
        while (i + 1 < n && usec < u[i].usec)
                i++;
        rest = usec % u[i].usec;
        if (i + 1 < n && u[i].usec > USEC_PER_SEC && rest / u[i + 1].usec > 0)
                snprintf(buf, size, "%" PRIu64 "%s %" PRIu64 "%s", usec / u[i].usec, u[i].suffix,
                         rest / u[i + 1].usec, u[i + 1].suffix);
        else
                snprintf(buf, size, "%" PRIu64 "%s", usec / u[i].usec, u[i].suffix);
        return buf;
}

char *timespec_format_local(const char *rfc3339, char *buf, size_t size)
{
        uint64_t usec = 0;
        struct tm tm;
        time_t t;

        if (rfc3339 && timespec_parse_rfc3339(rfc3339, &usec) == 0) {
                t = (time_t)(usec / USEC_PER_SEC);
                if (localtime_r(&t, &tm) && strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm) > 0)
                        return buf;
        }
        snprintf(buf, size, "%s", rfc3339 ?: "-");
        return buf;
}
