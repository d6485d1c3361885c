/* SPDX-License-Identifier: MIT */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1   /* strptime(), timegm() */
#endif

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "cleanup.h"
#include "timespec.h"
#include "output.h"

#define LABEL_WIDTH 11   /* strlen("Description") */

#define ANSI_GREEN  "\x1b[0;1;32m"
#define ANSI_RED    "\x1b[0;1;31m"
#define ANSI_NORMAL "\x1b[0m"

char *format_bytes(uint64_t bytes, char *buf, size_t size)
{
        static const char suffixes[] = "KMGTPE";
        uint64_t factor = 1024;
        size_t i = 0;

        if (bytes < 1024) {
                snprintf(buf, size, "%" PRIu64 "B", bytes);
                return buf;
        }
        while (i + 1 < sizeof(suffixes) - 1 && bytes / factor >= 1024) {
                factor *= 1024;
                i++;
        }
        snprintf(buf, size, "%" PRIu64 ".%" PRIu64 "%c",
                 bytes / factor, (bytes % factor) * 10 / factor, suffixes[i]);
        return buf;
}

char *format_timespan(uint64_t sec, char *buf, size_t size)
{
        return timespec_format_span(sec * TIMESPEC_USEC_PER_SEC, buf, size);
}

int parse_rfc3339(const char *s, time_t *ret)
{
        uint64_t usec;
        int r = timespec_parse_rfc3339(s, &usec);

        if (r < 0)
                return r;
        *ret = (time_t)(usec / TIMESPEC_USEC_PER_SEC);
        return 0;
}

char *format_timestamp(const char *rfc3339, time_t now, char *buf, size_t size)
{
        char span[FORMAT_TIMESPAN_MAX], date[64];
        struct tm tm;
        time_t t;

        if (parse_rfc3339(rfc3339, &t) < 0 || !localtime_r(&t, &tm) ||
            strftime(date, sizeof(date), "%a %Y-%m-%d %H:%M:%S %Z", &tm) == 0) {
                snprintf(buf, size, "%s", rfc3339);
                return buf;
        }
        if (t <= now)
                snprintf(buf, size, "%s; %s ago", date,
                         format_timespan((uint64_t) (now - t), span, sizeof(span)));
        else
                snprintf(buf, size, "%s; in %s", date,
                         format_timespan((uint64_t) (t - now), span, sizeof(span)));
        return buf;
}

/*
 * The next character of s: its code point, or -1 for a byte that does not
 * start a valid UTF-8 sequence (overlong, surrogate, beyond U+10FFFF,
 * truncated); *ret_len is how many bytes it takes (1 for an invalid byte).
 */
static int32_t utf8_next(const unsigned char *s, size_t *ret_len)
{
        static const int32_t min[] = { 0, 0, 0x80, 0x800, 0x10000 };
        size_t len = s[0] < 0x80 ? 1 : (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3
                   : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
        int32_t c = len == 1 ? s[0] : len == 2 ? s[0] & 0x1f : len == 3 ? s[0] & 0x0f : s[0] & 0x07;

        *ret_len = 1;
        if (len == 0)
                return -1;
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return -1;
                c = (c << 6) | (s[i] & 0x3f);
        }
        if (c < min[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
                return -1;
        *ret_len = len;
        return c;
}

/*
 * Can c go to a terminal as it is? Not the C0 and C1 controls (U+009B is an
 * 8-bit CSI), nor the invisible format characters that reorder or hide text:
 * bidi embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069), marks
 * (U+200E/F, U+061C), zero-width and other format characters, line and
 * paragraph separators, tags, noncharacters.
 */
static bool printable(int32_t c)
{
        return c >= 0x20 && c != 0x7f && !(c >= 0x80 && c <= 0x9f) && c != 0xad && c != 0x61c &&
               !(c >= 0x600 && c <= 0x605) && c != 0x6dd && c != 0x70f && c != 0x180e &&
               !(c >= 0x200b && c <= 0x200f) && !(c >= 0x2028 && c <= 0x202e) &&
               !(c >= 0x2060 && c <= 0x206f) && c != 0xfeff && !(c >= 0xfff9 && c <= 0xfffb) &&
               !(c >= 0xfdd0 && c <= 0xfdef) && (c & 0xfffe) != 0xfffe && !(c >= 0xe0000 && c <= 0xe0fff) &&
               !(c >= 0x1d173 && c <= 0x1d17a) && c != 0x110bd && c != 0x110cd;
}

/* What is printed for the character at s (of len bytes, code point c): itself or an escape. */
static size_t escape_char(const char *s, size_t len, int32_t c, char *buf, size_t size)
{
        if (c >= 0 && printable(c))
                return (size_t)snprintf(buf, size, "%.*s", (int)len, s);
        if (c < 0 || c < 0x80)
                return (size_t)snprintf(buf, size, "\\x%02x", (unsigned char)*s);
        if (c <= 0xffff)
                return (size_t)snprintf(buf, size, "\\u%04x", (unsigned)c);
        return (size_t)snprintf(buf, size, "\\U%08x", (unsigned)c);
}

size_t width_safe(const char *s)
{
        size_t n = 0, len;
        char buf[16];

        for (; *s; s += len) {
                int32_t c = utf8_next((const unsigned char *)s, &len);

                n += c >= 0 && printable(c) ? 1 : escape_char(s, len, c, buf, sizeof(buf));
        }
        return n;
}

void fputs_safe(const char *s, FILE *f)
{
        size_t len;
        char buf[16];

        for (; *s; s += len) {
                int32_t c = utf8_next((const unsigned char *)s, &len);

                escape_char(s, len, c, buf, sizeof(buf));
                fputs(buf, f);
        }
}

static void fputs_padded(const char *s, size_t width, FILE *f)
{
        fputs_safe(s, f);
        for (size_t n = width_safe(s); n < width; n++)
                fputc(' ', f);
}

struct table {
        size_t n_columns;
        size_t n_cells;      /* the header row included */
        const char **cells;  /* row-major, borrowed */
};

struct table *table_new(size_t n_columns, const char *const headers[])
{
        struct table *t;

        t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        t->n_columns = n_columns;
        if (table_add_row(t, headers) < 0)
                return table_free(t);
        return t;
}

struct table *table_free(struct table *t)
{
        if (t)
                free(t->cells);
        free(t);
        return NULL;
}

int table_add_row(struct table *t, const char *const cells[])
{
        if (!GREEDY_REALLOC(t->cells, t->n_cells + t->n_columns))
                return -ENOMEM;
        for (size_t i = 0; i < t->n_columns; i++)
                t->cells[t->n_cells++] = cells[i] ? cells[i] : "-";
        return 0;
}

size_t table_rows(const struct table *t)
{
        return t->n_cells / t->n_columns - 1;
}

static size_t table_width(const struct table *t, size_t column, size_t first)
{
        size_t width = 0, len;

        for (size_t i = first + column; i < t->n_cells; i += t->n_columns) {
                len = width_safe(t->cells[i]);
                if (len > width)
                        width = len;
        }
        return width;
}

/* Every column but the last is padded; no trailing blanks. */
void table_print(const struct table *t, FILE *f, bool legend)
{
        size_t first = legend ? 0 : t->n_columns;
        size_t column;

        for (size_t i = first; i < t->n_cells; i++) {
                column = i % t->n_columns;
                if (column + 1 < t->n_columns) {
                        fputs_padded(t->cells[i], table_width(t, column, first), f);
                        fputc(' ', f);
                } else {
                        fputs_safe(t->cells[i], f);
                        fputc('\n', f);
                }
        }
}

/* On a terminal, \uXXXX for all but ASCII: C1 controls and bidi overrides stay inert there too. */
void output_json(FILE *f, json_t *v, enum json_mode mode)
{
        size_t flags = mode == JSON_SHORT ? JSON_COMPACT : JSON_INDENT(2);

        json_dumpf(v, f, flags | (isatty(fileno(f)) ? JSON_ENSURE_ASCII : 0));
        fputc('\n', f);
}

static uint64_t json_uint(json_t *object, const char *key)
{
        json_int_t v = json_integer_value(json_object_get(object, key));

        return v > 0 ? (uint64_t) v : 0;
}

static const char *json_str(json_t *object, const char *key)
{
        return json_string_value(json_object_get(object, key));
}

static void field(FILE *f, const char *label)
{
        fprintf(f, "%*s: ", LABEL_WIDTH, label);
}

static void print_line(FILE *f, const char *label, const char *value)
{
        if (!value)
                return;
        field(f, label);
        fputs_safe(value, f);
        fputc('\n', f);
}

static void print_counters(FILE *f, json_t *counters)
{
        char bytes[FORMAT_BYTES_MAX];
        uint64_t packets = json_uint(counters, "packets");

        fprintf(f, "%" PRIu64 " %s, %s\n", packets, packets == 1 ? "packet" : "packets",
                format_bytes(json_uint(counters, "bytes"), bytes, sizeof(bytes)));
}

static void print_state(FILE *f, json_t *status, bool color)
{
        const char *state = json_str(status, "state") ?: "unknown";
        const char *policy = json_str(status, "policy");
        const char *on = "", *off = "";

        if (color && strcmp(state, "normal") == 0)
                on = ANSI_GREEN, off = ANSI_NORMAL;
        else if (color && strcmp(state, "isolated") == 0)
                on = ANSI_RED, off = ANSI_NORMAL;

        field(f, "State");
        fputs(on, f);
        fputs_safe(state, f);
        fputs(off, f);
        if (policy) {
                fputs(" (policy ", f);
                fputs_safe(policy, f);
                fputc(')', f);
        }
        fputc('\n', f);
}

static void print_timestamp(FILE *f, const char *label, const char *rfc3339, time_t now)
{
        char buf[FORMAT_TIMESTAMP_MAX];

        if (!rfc3339)
                return;
        print_line(f, label, format_timestamp(rfc3339, now, buf, sizeof(buf)));
}

static void print_by(FILE *f, json_t *status)
{
        const char *user = json_str(status, "user");
        json_t *uid = json_object_get(status, "uid");
        char uid_name[32];

        if (!json_is_integer(uid)) {
                print_line(f, "By", user);
                return;
        }
        snprintf(uid_name, sizeof(uid_name), "uid %" JSON_INTEGER_FORMAT, json_integer_value(uid));
        if (!user || strcmp(user, uid_name) == 0) {
                print_line(f, "By", uid_name);
                return;
        }
        field(f, "By");
        fputs_safe(user, f);
        fprintf(f, " (%s)\n", uid_name);
}

/* Elements of a string array, or the "name" of each object in it, joined by sep. */
static void print_names(FILE *f, json_t *array, const char *sep)
{
        size_t i;
        json_t *v;

        json_array_foreach(array, i, v) {
                if (i > 0)
                        fputs(sep, f);
                fputs_safe(json_string_value(json_is_object(v) ? json_object_get(v, "name") : v) ?: "?", f);
        }
}

static void print_uplinks(FILE *f, json_t *uplinks)
{
        if (json_array_size(uplinks) == 0)
                return;
        field(f, "Uplinks");
        print_names(f, uplinks, " ");
        fputc('\n', f);
}

static void print_gateways(FILE *f, json_t *gateways, const char *label)
{
        size_t i, width = 0;
        const char *name;
        json_t *g;

        json_array_foreach(gateways, i, g) {
                name = json_str(g, "name") ?: "?";
                if (width_safe(name) > width)
                        width = width_safe(name);
        }
        json_array_foreach(gateways, i, g) {
                if (i == 0)
                        field(f, label);
                else
                        fprintf(f, "%*s", LABEL_WIDTH + 2, "");
                fputs_padded(json_str(g, "name") ?: "?", width, f);
                fputs("  ", f);
                print_counters(f, g);
        }
}

/* "Resolved: mail.example.org = 203.0.113.25, 2001:db8::25 (gateway mail)", one line per name. */
static void print_resolved(FILE *f, json_t *resolved)
{
        size_t i, k;
        json_t *r, *addr;

        json_array_foreach(resolved, i, r) {
                if (i == 0)
                        field(f, "Resolved");
                else
                        fprintf(f, "%*s", LABEL_WIDTH + 2, "");
                fputs_safe(json_str(r, "name") ?: "?", f);
                fputs(" =", f);
                json_array_foreach(json_object_get(r, "addresses"), k, addr) {
                        fputs(k ? ", " : " ", f);
                        fputs_safe(json_string_value(addr) ?: "?", f);
                }
                fputs(json_str(r, "service") ? " (service " : " (gateway ", f);
                fputs_safe(json_str(r, "service") ?: json_str(r, "gateway") ?: "?", f);
                fputs(")\n", f);
        }
}

/* Drops per uplink and direction: "wan0 in 12 packets, 1.1K". */
static void print_drops_by_uplink(FILE *f, json_t *drops)
{
        size_t i;
        json_t *d;

        json_array_foreach(drops, i, d) {
                fprintf(f, "%*s", LABEL_WIDTH + 2, "");
                fputs_safe(json_str(d, "uplink") ?: "?", f);
                fprintf(f, " %-3s  ", strcmp(json_str(d, "direction") ?: "", "in") == 0 ? "in" : "out");
                print_counters(f, d);
        }
}

/* The drop sensor in one line: "3 inside hosts, 21 packets cut; most: 10.0.1.7 (9 packets)". */
static void print_tried_out(FILE *f, json_t *drops)
{
        uint64_t sources = json_uint(drops, "sources");

        if (!json_is_object(drops) || sources == 0)
                return;
        field(f, "Tried out");
        fprintf(f, "%" PRIu64 " inside host%s, %" PRIu64 " packets cut; most: ", sources, sources == 1 ? "" : "s",
                json_uint(drops, "packets") + json_uint(drops, "overflow"));
        fputs_safe(json_str(drops, "top_source") ?: "?", f);
        fprintf(f, " (%" PRIu64 " packets); see killswitchctl drops\n", json_uint(drops, "top_source_packets"));
}

/* What cuts the uplinks now: "inet hooks, netdev ingress+egress on wan0 wan1, link tracking". */
static void print_layers(FILE *f, json_t *status)
{
        json_t *layers = json_object_get(status, "layers"), *v;
        char buf[512] = "";
        size_t i, k = 0;

        if (!json_is_array(layers) || json_array_size(layers) == 0)
                return;
        json_array_foreach(layers, i, v)
                if (json_is_string(v) && k < sizeof(buf))
                        k += (size_t)snprintf(buf + k, sizeof(buf) - k, "%s%s", i ? ", " : "", json_string_value(v));
        print_line(f, "Layers", buf);
}

/* Which protection the table has, and (while isolated) how often it had to be put back. */
static void print_protection(FILE *f, json_t *status)
{
        const char *protection = json_str(status, "protection");
        bool isolated = strcmp(json_str(status, "state") ?: "", "isolated") == 0;
        uint64_t n = json_uint(status, "reassertions");
        char buf[256];
        int k;

        if (!protection)
                return;
        k = snprintf(buf, sizeof(buf), "%s", protection);
        if (isolated && k > 0)
                k += snprintf(buf + k, sizeof(buf) - (size_t)k, "; %" PRIu64 " re-assertion%s since the isolation "
                              "began", n, n == 1 ? "" : "s");
        if (json_is_true(json_object_get(status, "rate_limited")) && k > 0 && (size_t)k < sizeof(buf))
                snprintf(buf + k, sizeof(buf) - (size_t)k, "; RATE LIMITED: another process keeps changing the "
                         "table");
        print_line(f, "Protection", buf);
        print_layers(f, status);
}

/* "Fri 2026-11-27 18:00:00 CET (in 2h 13min)" */
static char *format_deadline(const char *rfc3339, time_t now, char *buf, size_t size)
{
        char span[FORMAT_TIMESPAN_MAX], date[64];
        struct tm tm;
        time_t t;

        if (parse_rfc3339(rfc3339, &t) < 0 || !localtime_r(&t, &tm) ||
            strftime(date, sizeof(date), "%a %Y-%m-%d %H:%M:%S %Z", &tm) == 0)
                snprintf(buf, size, "%s", rfc3339);
        else if (t > now)
                snprintf(buf, size, "%s (in %s)", date, format_timespan((uint64_t) (t - now), span, sizeof(span)));
        else
                snprintf(buf, size, "%s (due now)", date);
        return buf;
}

/* What made the last change, unless a person with killswitchctl did. */
static void print_trigger(FILE *f, const char *trigger)
{
        if (trigger && strcmp(trigger, "ctl") != 0)
                print_line(f, "Trigger", trigger);
}

/* One trigger's word: "fired" (in this incident), "armed", or "NOT ARMED". */
static const char *trigger_word(json_t *t, bool armed)
{
        if (json_is_true(json_object_get(t, "fired")))
                return "fired";
        return armed ? "armed" : "NOT ARMED";
}

/*
 * "Triggers: path panic: armed; heartbeat: armed; tripwire: NOT ARMED", then
 * killswitch.conf's problems, one a line: the triggers they concern are disarmed.
 * Nothing if killswitch.conf has neither triggers nor problems.
 */
static void print_triggers(FILE *f, json_t *status)
{
        json_t *triggers = json_object_get(status, "triggers");
        bool isolated = strcmp(json_str(status, "state") ?: "", "isolated") == 0;
        json_t *paths = json_object_get(triggers, "paths"), *problems = json_object_get(triggers, "problems");
        json_t *hb = json_object_get(triggers, "heartbeat"), *tw = json_object_get(triggers, "tripwire"), *v;
        size_t i, n = 0;

        if (json_array_size(paths) == 0 && !json_is_object(hb) && !json_is_object(tw) &&
            json_array_size(problems) == 0)
                return;
        field(f, "Triggers");
        json_array_foreach(paths, i, v) {
                /* An agent without "armed" arms every listed one. */
                bool armed = !json_is_false(json_object_get(v, "armed"));

                fprintf(f, "%spath ", n++ ? "; " : "");
                fputs_safe(json_str(v, "name") ?: "?", f);
                fprintf(f, ": %s%s", trigger_word(v, armed), armed ? "" : " (its directory is gone; armed again "
                        "once it is back)");
        }
        if (json_is_object(hb))
                fprintf(f, "%sheartbeat: %s", n++ ? "; " : "", trigger_word(hb, json_str(hb, "deadline") != NULL));
        /* The trip-wire's table is there only while normal. */
        if (json_is_object(tw))
                fprintf(f, "%stripwire: %s", n++ ? "; " : "",
                        isolated && !json_is_true(json_object_get(tw, "fired")) ? "paused while isolated" :
                        trigger_word(tw, json_is_true(json_object_get(tw, "armed"))));
        if (n == 0)
                fputs("none armed", f);
        fputc('\n', f);
        json_array_foreach(problems, i, v) {
                fprintf(f, "%*sdisarmed: ", LABEL_WIDTH + 2, "");
                fputs_safe(json_string_value(v) ?: "?", f);
                fputc('\n', f);
        }
}

/* Four eyes: "Approval: restore requested by alice at ...; waiting for a second person until ...". */
static void print_request(FILE *f, json_t *req, time_t now)
{
        char buf[2 * FORMAT_TIMESTAMP_MAX + 256], at[FORMAT_TIMESTAMP_MAX], until[FORMAT_TIMESTAMP_MAX];
        const char *t;

        if (!json_is_object(req))
                return;
        t = json_str(req, "at");
        snprintf(buf, sizeof(buf), "restore %s requested by %s at %s; waiting for a second person until %s",
                 json_str(req, "restore_at") ? "as scheduled" : "now", json_str(req, "user") ?: "?",
                 t ? format_timestamp(t, now, at, sizeof(at)) : "?",
                 json_str(req, "until") ? format_deadline(json_str(req, "until"), now, until, sizeof(until)) : "?");
        print_line(f, "Approval", buf);
}

/* "Restore: Fri ... (in 2h 13min)" and the commit-confirmed revert. */
static void print_pending(FILE *f, json_t *status, time_t now)
{
        const char *restore_at = json_str(status, "restore_at");
        const char *confirm = json_str(status, "confirm_deadline");
        json_t *pending = json_object_get(status, "pending");
        char buf[FORMAT_TIMESTAMP_MAX + 128], when[FORMAT_TIMESTAMP_MAX];

        if (restore_at)
                print_line(f, "Restore", format_deadline(restore_at, now, buf, sizeof(buf)));
        print_request(f, json_object_get(status, "restore_request"), now);
        if (confirm) {
                const char *to = json_str(pending, "revert_to");

                snprintf(buf, sizeof(buf), "%s unless confirmed, to %s%s", format_deadline(confirm, now, when,
                         sizeof(when)), to ? "policy " : "normal", to ? to : "");
                print_line(f, "Revert", buf);
        }
}

void output_confirmed(FILE *f, json_t *status)
{
        fputs("Confirmed: policy ", f);
        fputs_safe(json_str(status, "policy") ?: "?", f);
        fputs(" stays in force.\n", f);
}

void output_heartbeat(FILE *f, json_t *reply, time_t now)
{
        const char *deadline = json_str(reply, "deadline");
        char buf[FORMAT_TIMESTAMP_MAX];

        if (deadline)
                fprintf(f, "Heartbeat received; isolation unless the next one comes by %s.\n",
                        format_deadline(deadline, now, buf, sizeof(buf)));
        else
                fputs("Heartbeat received; the dead man's switch fired for this isolation and is re-armed by "
                      "a restore.\n", f);
}

bool output_status_applied(json_t *status)
{
        return !json_is_false(json_object_get(status, "applied"));
}

void output_status(FILE *f, json_t *status, const struct output_flags *flags)
{
        const char *state = json_str(status, "state") ?: "";
        json_t *dropped = json_object_get(status, "dropped");

        print_state(f, status, flags->color);
        if (!output_status_applied(status))
                fprintf(f, "%sWARNING: THE UPLINKS ARE OPEN: the state says isolated, but no cut could be applied "
                        "(see 'killswitchctl history'). Fix the policies, then run 'killswitchctl isolate'.%s\n",
                        flags->color ? ANSI_RED : "", flags->color ? ANSI_NORMAL : "");
        print_line(f, "Description", json_str(status, "description"));
        print_timestamp(f, "Since", json_str(status, "since"), flags->now);
        print_by(f, status);
        print_line(f, "Reason", json_str(status, "reason"));
        print_trigger(f, json_str(status, "trigger"));
        print_pending(f, status, flags->now);
        print_uplinks(f, json_object_get(status, "uplinks"));
        print_gateways(f, json_object_get(status, "gateways"), "Gateways");
        print_gateways(f, json_object_get(status, "services"), "Services");
        print_resolved(f, json_object_get(status, "resolved"));
        if (json_is_object(dropped) && (strcmp(state, "isolated") == 0 || json_uint(dropped, "packets") > 0)) {
                field(f, "Dropped");
                print_counters(f, dropped);
                print_drops_by_uplink(f, json_object_get(status, "dropped_by_uplink"));
        }
        print_tried_out(f, json_object_get(status, "drops"));
        print_triggers(f, status);
        print_protection(f, status);
}

/* "Already isolated with policy X since T (by alice: reason)." — a repeat changes nothing. */
static void print_already(FILE *f, json_t *status)
{
        const char *since = json_str(status, "since"), *user = json_str(status, "user");
        const char *reason = json_str(status, "reason");
        char buf[FORMAT_TIMESTAMP_MAX];

        fputs("Already isolated with policy ", f);
        fputs_safe(json_str(status, "policy") ?: "?", f);
        fprintf(f, " since %s", since ? format_timestamp(since, time(NULL), buf, sizeof(buf)) : "?");
        if (user) {
                fputs(" (by ", f);
                fputs_safe(user, f);
                if (reason) {
                        fputs(": ", f);
                        fputs_safe(reason, f);
                }
                fputc(')', f);
        }
        fputs(".\n", f);
}

/* What a change dropped (dropped_restore_at, dropped_request of Isolate and Cancel), or nothing. */
static void print_dropped(FILE *f, json_t *reply, const char *how)
{
        const char *at = json_str(reply, "dropped_restore_at");
        json_t *req = json_object_get(reply, "dropped_request");
        char buf[FORMAT_TIMESTAMP_MAX];

        if (at)
                fprintf(f, "The scheduled restore at %s was %s.\n", format_deadline(at, time(NULL), buf, sizeof(buf)),
                        how);
        if (json_is_object(req)) {
                fprintf(f, "The restore %s requested by ", json_str(req, "restore_at") ? "as scheduled" : "now");
                fputs_safe(json_str(req, "user") ?: "?", f);
                fprintf(f, " (waiting for a second person) was %s.\n", how);
        }
}

void output_isolated(FILE *f, json_t *status)
{
        json_t *uplinks = json_object_get(status, "uplinks");
        json_t *gateways = json_object_get(status, "gateways");
        json_t *services = json_object_get(status, "services");

        if (json_is_true(json_object_get(status, "repeated"))) {
                print_already(f, status);
                print_dropped(f, status, "dropped: this isolation has no end");
                print_pending(f, status, time(NULL));
                return;
        }
        fputs("Isolated with policy ", f);
        fputs_safe(json_str(status, "policy") ?: "?", f);
        fputs(" (", f);
        if (json_array_size(uplinks) > 0) {
                fputs(json_array_size(uplinks) == 1 ? "uplink " : "uplinks ", f);
                print_names(f, uplinks, " ");
                fputs(" cut; ", f);
        } else
                fputs("no uplink cut; ", f);
        if (json_array_size(gateways) > 0) {
                fputs(json_array_size(gateways) == 1 ? "gateway " : "gateways ", f);
                print_names(f, gateways, ", ");
        } else if (json_array_size(services) == 0)
                fputs("no gateway", f);
        if (json_array_size(services) > 0) {
                fputs(json_array_size(gateways) > 0 ? "; " : "", f);
                fputs(json_array_size(services) == 1 ? "service " : "services ", f);
                print_names(f, services, ", ");
        }
        fputs(" kept).\n", f);
        print_dropped(f, status, "dropped: this isolation has no end");
        print_pending(f, status, time(NULL));
}

bool output_restore_done(json_t *status)
{
        return strcmp(json_str(status, "state") ?: "", "isolated") != 0 || json_str(status, "restore_at");
}

void output_restored(FILE *f, json_t *status, bool asked_schedule)
{
        const char *at = json_str(status, "restore_at");
        char buf[FORMAT_TIMESTAMP_MAX];

        if (strcmp(json_str(status, "state") ?: "", "isolated") != 0)
                fputs("Restored: uplinks open.\n", f);
        else if (at && asked_schedule)
                fprintf(f, "Restore scheduled: %s.\n", format_deadline(at, time(NULL), buf, sizeof(buf)));
        else if (at)
                fprintf(f, "Approved: the restore is scheduled for %s, as requested; the uplinks stay cut until "
                        "then.\n", format_deadline(at, time(NULL), buf, sizeof(buf)));
}

void output_cancelled(FILE *f, json_t *status)
{
        if (!json_str(status, "dropped_restore_at") && !json_is_object(json_object_get(status, "dropped_request"))) {
                fputs("Scheduled restore cancelled: the isolation stays in force.\n", f);      /* an older agent */
                return;
        }
        print_dropped(f, status, "cancelled");
        fputs("The isolation stays in force.\n", f);
}

/* A policy that failed to reload but has an earlier good version is in both lists. */
static bool policy_loaded(json_t *policies, const char *name)
{
        size_t i;
        json_t *p;

        json_array_foreach(policies, i, p)
                if (strcmp(json_str(p, "name") ?: "", name) == 0)
                        return true;
        return false;
}

void output_failed(FILE *f, json_t *failed, json_t *policies, bool headings)
{
        const char *name, *file;
        size_t i, j;
        json_t *p, *e;

        json_array_foreach(failed, i, p) {
                name = json_str(p, "name") ?: "?";
                file = json_str(p, "file") ?: name;
                if (headings) {
                        fputs("Failed to load ", f);
                        fputs_safe(name, f);
                        fputs(" (", f);
                        fputs_safe(file, f);
                        fputs(policy_loaded(policies, name) ? "); the previous version stays in use:\n" : "):\n", f);
                }
                json_array_foreach(json_object_get(p, "errors"), j, e) {
                        fputs_safe(json_string_value(e) ?: "?", f);
                        fputc('\n', f);
                }
                if (json_array_size(json_object_get(p, "errors")) == 0) {
                        fputs_safe(file, f);
                        fputs(": failed to load\n", f);
                }
        }
}

static int add_policy_rows(struct table *t, json_t *policies)
{
        size_t i;
        json_t *p;

        json_array_foreach(policies, i, p) {
                const char *cells[] = {
                        json_str(p, "name"),
                        json_is_true(json_object_get(p, "active")) ? "yes" : "no",
                        json_str(p, "description"),
                };
                if (table_add_row(t, cells) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* Returns the number of rows printed. */
static int print_policy_table(FILE *f, json_t *policies, bool legend)
{
        static const char *const headers[] = { "NAME", "ACTIVE", "DESCRIPTION" };
        struct table *t;
        int r;

        t = table_new(ELEMENTSOF(headers), headers);
        if (!t)
                return -ENOMEM;
        r = add_policy_rows(t, policies);
        if (r >= 0) {
                table_print(t, f, legend && table_rows(t) > 0);
                r = (int) table_rows(t);
        }
        table_free(t);
        return r;
}

int output_policies(FILE *f, FILE *err_f, json_t *reply, const struct output_flags *flags)
{
        json_t *policies = json_object_get(reply, "policies");
        json_t *failed = json_object_get(reply, "failed");
        int n;

        n = print_policy_table(f, policies, flags->legend);
        if (n < 0)
                return n;
        if (!flags->legend) {
                /* Keep stdout a plain table for scripts. */
                fflush(f);
                output_failed(err_f, failed, policies, true);
                return 0;
        }
        if (n == 0)
                fputs("No policies loaded.\n", f);
        else
                fprintf(f, "\n%d %s loaded.\n", n, n == 1 ? "policy" : "policies");
        if (json_array_size(failed) > 0)
                fputc('\n', f);
        output_failed(f, failed, policies, true);
        return 0;
}

void output_ruleset(FILE *f, json_t *reply)
{
        const char *ruleset = json_str(reply, "ruleset") ?: "";
        size_t len = strlen(ruleset);

        fputs(ruleset, f);
        if (len > 0 && ruleset[len - 1] != '\n')
                fputc('\n', f);
}

void output_loaded(FILE *f, json_t *reply)
{
        json_t *loaded = json_object_get(reply, "loaded");

        if (json_array_size(loaded) == 0) {
                fputs("No policies loaded.\n", f);
                return;
        }
        fputs("Loaded: ", f);
        print_names(f, loaded, " ");
        fputc('\n', f);
}

/* Reload's warnings, one "FILE:LINE: warning: ..." a line (escaped: they quote the policy files). */
void output_warnings(FILE *f, json_t *reply)
{
        json_t *w = json_object_get(reply, "warnings");

        for (size_t i = 0; i < json_array_size(w); i++)
                if (json_is_string(json_array_get(w, i))) {
                        fputs_safe(json_string_value(json_array_get(w, i)), f);
                        fputc('\n', f);
                }
}

struct history_row {
        char time[64];
        char *policy;   /* "OLD->NEW" for a switch */
        char *user;     /* the user, else "COMMAND[PID]" */
};

static void history_rows_free(struct history_row *rows, size_t n)
{
        for (size_t i = 0; rows && i < n; i++) {
                free(rows[i].policy);
                free(rows[i].user);
        }
        free(rows);
}

static int history_row(json_t *e, struct history_row *row)
{
        const char *policy = json_str(e, "policy"), *previous = json_str(e, "previous_policy");
        const char *user = json_str(e, "user"), *command = json_str(e, "command");
        json_t *pid = json_object_get(e, "pid");

        timespec_format_local(json_str(e, "time"), row->time, sizeof(row->time));
        if (policy && previous && strcmp(json_str(e, "action") ?: "", "switch") == 0)
                row->policy = strdup_printf("%s->%s", previous, policy);
        else if (policy || previous)
                row->policy = strdup(policy ?: previous);
        if (user)
                row->user = strdup(user);
        else if (command && json_is_integer(pid))
                row->user = strdup_printf("%s[%" JSON_INTEGER_FORMAT "]", command, json_integer_value(pid));
        else if (command)
                row->user = strdup(command);
        if (((policy || previous) && !row->policy) || ((user || command) && !row->user))
                return -ENOMEM;
        return 0;
}

static int add_history_rows(struct table *t, json_t *entries, struct history_row *rows)
{
        const char *cells[6];
        size_t i;
        json_t *e;

        json_array_foreach(entries, i, e) {
                if (history_row(e, &rows[i]) < 0)
                        return -ENOMEM;
                cells[0] = rows[i].time;
                cells[1] = json_str(e, "action");
                cells[2] = rows[i].policy;
                cells[3] = rows[i].user;
                cells[4] = json_str(e, "ssh_client") ?: json_str(e, "trigger");
                cells[5] = json_str(e, "reason") ?: json_str(e, "message");
                if (table_add_row(t, cells) < 0)
                        return -ENOMEM;
        }
        return 0;
}

int output_history(FILE *f, json_t *entries, const struct output_flags *flags)
{
        static const char *const headers[] = { "TIME", "ACTION", "POLICY", "USER", "FROM", "REASON" };
        size_t n = json_array_size(entries);
        struct history_row *rows;
        struct table *t;
        int r = -ENOMEM;

        rows = calloc(n + 1, sizeof(*rows));
        t = table_new(ELEMENTSOF(headers), headers);
        if (rows && t)
                r = add_history_rows(t, entries, rows);
        if (r >= 0) {
                table_print(t, f, flags->legend && n > 0);
                if (flags->legend && n == 0)
                        fputs("No history recorded.\n", f);
                else if (flags->legend)
                        fprintf(f, "\n%zu %s.\n", n, n == 1 ? "entry" : "entries");
        }
        table_free(t);
        history_rows_free(rows, n);
        return r;
}
