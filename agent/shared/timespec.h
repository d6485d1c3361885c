/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

/*
 * Durations and points in time as admins type them, for schedules and
 * triggers. Pure: no I/O; local time is the time zone of the process (TZ).
 * Shared by killswitchd (killswitch.conf, the protocol) and killswitchctl
 * (which turns local times into absolute instants before sending them).
 *
 * All functions return 0, -EINVAL for malformed input or -ERANGE for a value
 * out of range, and never write *ret_usec on failure. Callers put the HELP
 * strings below in their error messages.
 */

#include "timeutil.h"

#define TIMESPEC_USEC_PER_SEC USEC_PER_SEC

#define TIMESPEC_DURATION_HELP \
        "a duration is a number with a unit (ms, s, min, h, d, w; m = min), e.g. 90s, 15m, 2h, 1h30m, 1.5h, 1d"
#define TIMESPEC_TIME_HELP                                                                                    \
        "a time is HH:MM[:SS] (the next such time), YYYY-MM-DD HH:MM[:SS] (local time) or RFC 3339 with Z or " \
        "an offset, e.g. 18:00, 2026-12-01 18:00, 2026-12-01T17:00:00Z"
#define TIMESPEC_PAST_TIME_HELP                                                                                \
        "a time is HH:MM[:SS] (the last such time), YYYY-MM-DD HH:MM[:SS] (local time) or RFC 3339 with Z or " \
        "an offset, e.g. 07:00, 2026-12-01 07:00, 2026-12-01T06:00:00Z; a duration (10m, 2h) means that long ago"

/*
 * "90s", "15m", "15min", "2h", "1h30m", "1h 30min", "1.5h", "1d", "2 hours",
 * "500ms"; a bare number is seconds, as in systemd.time(7), and a fraction is
 * one of its unit (rounded down to the µs). Units: us usec, ms msec, s sec
 * second seconds, m min minute minutes, h hr hour hours, d day days, w week
 * weeks.
 */
int timespec_parse_duration(const char *s, uint64_t *ret_usec);

#define TIMESPEC_PROBLEM_MAX 48
/*
 * Why timespec_parse_duration() refuses s, for an error message: `unknown unit
 * "y"`, "too long" or "not a duration"; NULL if it takes it.
 */
const char *timespec_duration_problem(const char *s, char *buf, size_t size);

/*
 * A point in time, as realtime microseconds: "18:00" or "18:00:30" (the next
 * such local time strictly after now_usec: today, or tomorrow if it has passed),
 * "2026-12-01 18:00[:30]" or "2026-12-01T18:00[:30]" (local time), RFC 3339
 * with "Z" or "+HH:MM"/"-HH:MM" (fractions of a second are dropped). A local
 * time that does not exist (skipped by a DST change) is moved forward as
 * mktime(3) does; an ambiguous one takes the first occurrence.
 */
int timespec_parse_time(const char *s, uint64_t now_usec, uint64_t *ret_usec);

/*
 * The same, for the start or end of a window that has already begun: "18:00"
 * is the last such local time at or before now_usec (today, or yesterday if it
 * is still ahead). The other forms are read as above.
 */
int timespec_parse_time_past(const char *s, uint64_t now_usec, uint64_t *ret_usec);

/* RFC 3339 with "Z" or an offset only: what the protocol carries. */
int timespec_parse_rfc3339(const char *s, uint64_t *ret_usec);

#define TIMESPEC_RFC3339_MAX 32
/* The last instant RFC 3339 can write with a 4-digit year: 9999-12-31T23:59:59Z. */
#define TIMESPEC_INSTANT_MAX_USEC (253402300799ULL * 1000000ULL)
/* The longest --for, --confirm, restore --in the agent takes. */
#define TIMESPEC_SCHEDULE_MAX_USEC (366ULL * 24ULL * 3600ULL * 1000000ULL)
/* "2026-12-01T17:00:00Z" (UTC, seconds). */
char *timespec_format_rfc3339(uint64_t usec, char *buf, size_t size);

#define TIMESPEC_SPAN_MAX 64
/* "2h 13min", "45s", "1d 2h": at most two adjacent units, rounded down. */
char *timespec_format_span(uint64_t usec, char *buf, size_t size);

#define TIMESPEC_LOCAL_MAX 64
/*
 * An RFC 3339 time as "2026-12-01 18:00:00" in local time, for tables; the
 * text as it is if it does not parse, "-" for NULL. Returns buf.
 */
char *timespec_format_local(const char *rfc3339, char *buf, size_t size);
