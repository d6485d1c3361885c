/* SPDX-License-Identifier: MIT */
/* killswitchctl report as Markdown (report.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "report.h"

#define TOP_ROWS 10

static const char *str(json_t *o, const char *key)
{
        return json_string_value(json_object_get(o, key));
}

static uint64_t uint_of(json_t *o, const char *key)
{
        json_int_t v = json_integer_value(json_object_get(o, key));

        return v > 0 ? (uint64_t)v : 0;
}

/* A table cell: "|" escaped, line breaks as spaces, the rest as fputs_safe prints it; "-" if empty. */
static void cell(FILE *f, const char *s)
{
        _cleanup_free_ char *c = NULL;
        size_t j = 0;

        if (!s || !*s) {
                fputs(" - |", f);
                return;
        }
        c = malloc(2 * strlen(s) + 1);
        if (!c) {
                fputs(" ? |", f);
                return;
        }
        for (const char *p = s; *p; p++) {
                if (*p == '|')
                        c[j++] = '\\';
                c[j++] = *p == '\n' || *p == '\r' ? ' ' : *p;
        }
        c[j] = '\0';
        fputc(' ', f);
        fputs_safe(c, f);
        fputs(" |", f);
}

static void cell_u64(FILE *f, uint64_t v)
{
        fprintf(f, " %" PRIu64 " |", v);
}

static void who(json_t *e, char *buf, size_t size)
{
        json_t *uid = json_object_get(e, "uid");

        if (json_is_integer(uid))
                snprintf(buf, size, "%s (uid %" JSON_INTEGER_FORMAT ")", str(e, "user") ?: "?", json_integer_value(uid));
        else
                snprintf(buf, size, "%s", str(e, "user") ?: "killswitchd");
}

/* Where it came from: the SSH client, a remote killswitchctl -H, else what made it (a trigger, the agent). */
static void from(json_t *e, char *buf, size_t size)
{
        const char *ssh = str(e, "ssh_client") ?: str(e, "claimed_ssh_client");
        const char *trigger = str(e, "trigger");

        if (ssh || str(e, "origin"))
                snprintf(buf, size, "%s%s%s", ssh ?: "", ssh && str(e, "origin") ? ", for " : "",
                         str(e, "origin") ?: "");
        else
                snprintf(buf, size, "%s", trigger && strcmp(trigger, "ctl") != 0 ? trigger : "local");
}

static void print_header(FILE *f, json_t *r, const struct output_flags *flags)
{
        char host[256] = "?", span[FORMAT_TIMESPAN_MAX];
        time_t since = 0, until = flags->now;

        gethostname(host, sizeof(host) - 1);
        fputs("# Incident report: ", f);
        fputs_safe(host, f);
        fputs("\n\n", f);
        fputs("- Policy: ", f);
        fputs_safe(str(r, "policy") ?: "-", f);
        fputs("\n- From: ", f);
        fputs_safe(str(r, "since") ?: "-", f);
        fputs("\n- Until: ", f);
        if (json_is_true(json_object_get(r, "ongoing")))
                fputs("ongoing (still isolated)", f);
        else
                fputs_safe(str(r, "until") ?: "-", f);
        if (str(r, "since") && parse_rfc3339(str(r, "since"), &since) == 0 &&
            (!str(r, "until") || parse_rfc3339(str(r, "until"), &until) == 0) && until >= since)
                fprintf(f, "\n- Duration: %s", format_timespan((uint64_t)(until - since), span, sizeof(span)));
        fputs("\n\n", f);
}

static void print_timeline(FILE *f, json_t *r)
{
        json_t *timeline = json_object_get(r, "timeline"), *e, *ref = json_object_get(r, "refusals"), *u;
        char w[256], fr[256];
        size_t i;

        fputs("## Timeline\n\n| Time (UTC) | Event | Who | From | Why | Details |\n|---|---|---|---|---|---|\n", f);
        json_array_foreach(timeline, i, e) {
                who(e, w, sizeof(w));
                from(e, fr, sizeof(fr));
                fputc('|', f);
                cell(f, str(e, "time"));
                cell(f, str(e, "action"));
                cell(f, w);
                cell(f, fr);
                cell(f, str(e, "reason"));
                cell(f, str(e, "message"));
                fputc('\n', f);
        }
        fprintf(f, "\nRefused requests: %" PRIu64, uint_of(ref, "count"));
        if (uint_of(ref, "count") > 0) {
                fputs(" (from ", f);
                json_array_foreach(json_object_get(ref, "users"), i, u) {
                        fputs(i ? ", " : "", f);
                        fputs_safe(json_string_value(u) ?: "?", f);
                }
                fputs("; first ", f);
                fputs_safe(str(ref, "first") ?: "?", f);
                fputs(", last ", f);
                fputs_safe(str(ref, "last") ?: "?", f);
                fputs(")", f);
        }
        fputs(".\n\n", f);
}

static void print_counter_rows(FILE *f, json_t *list, const char *kind)
{
        json_t *c;
        size_t i;

        json_array_foreach(list, i, c) {
                fputc('|', f);
                cell(f, kind);
                cell(f, str(c, "name"));
                cell_u64(f, uint_of(c, "packets"));
                cell_u64(f, uint_of(c, "bytes"));
                fputc('\n', f);
        }
}

static void print_kept(FILE *f, json_t *kept)
{
        fputs("## What was kept\n\n", f);
        if (!json_is_object(kept)) {
                fputs("Not known: the counters of this isolation were not saved (an agent older than the "
                      "report, or a window without an isolation's end).\n\n", f);
                return;
        }
        fprintf(f, "Counted by the kernel (%s).\n\n", strcmp(str(kept, "source") ?: "", "live") == 0
                ? "live, the isolation is in force" : "as saved when the isolation was lifted");
        fputs("| Kind | Name | Packets | Bytes |\n|---|---|---|---|\n", f);
        print_counter_rows(f, json_object_get(kept, "gateways"), "gateway");
        print_counter_rows(f, json_object_get(kept, "services"), "service");
        fputs("\n", f);
}

/* The top sources or destinations (key): the tuples' packets summed per address. */
static void print_top(FILE *f, json_t *tuples, const char *key, const char *title)
{
        _cleanup_(json_decrefp) json_t *sum = json_object();
        const char *k;
        json_t *t, *v;
        size_t i, n = 0;

        if (!sum)
                return;
        json_array_foreach(tuples, i, t) {
                const char *d = str(t, key);
                uint64_t total;

                if (!d)
                        continue;
                v = json_object_get(sum, d);
                total = uint_of(t, "packets") + (v ? (uint64_t)json_integer_value(v) : 0);
                json_object_set_new(sum, d, json_integer((json_int_t)total));
        }
        fprintf(f, "\nTop %ss:\n\n| %s | Packets |\n|---|---|\n", key, title);
        /* Few rows: pick the largest TOP_ROWS times. */
        while (n++ < TOP_ROWS && json_object_size(sum) > 0) {
                const char *best = NULL;
                json_int_t max = -1;

                json_object_foreach(sum, k, v)
                        if (json_integer_value(v) > max) {
                                max = json_integer_value(v);
                                best = k;
                        }
                fputc('|', f);
                cell(f, best);
                cell_u64(f, (uint64_t)max);
                fputc('\n', f);
                json_object_del(sum, best);
        }
}

static void print_cut(FILE *f, json_t *kept, json_t *drops, const char *note)
{
        json_t *d = json_object_get(kept, "dropped"), *tuples = json_object_get(drops, "drops"), *t;
        char port[24];
        size_t i;

        fputs("## What was cut\n\n", f);
        if (json_is_object(d))
                fprintf(f, "Dropped on the uplinks (the counters of the policy in force at the end, since it "
                        "was applied): %" PRIu64 " packets, %" PRIu64 " bytes.\n\n",
                        uint_of(d, "packets"), uint_of(d, "bytes"));
        if (!json_is_object(drops)) {
                fputs("Inside hosts that tried to get out: not available (", f);
                fputs_safe(note ?: "no drop sensor", f);
                fputs(").\n", f);
                return;
        }
        fprintf(f, "Inside hosts that tried to get out (drop sensor): %" PRIu64 " sources, %" PRIu64
                " tuples, %" PRIu64 " packets, %" PRIu64 " bytes; %" PRIu64 " packets did not fit the table.\n\n",
                uint_of(drops, "sources"), uint_of(drops, "tuples"), uint_of(drops, "packets"),
                uint_of(drops, "bytes"), uint_of(drops, "overflow"));
        fputs("The tuples with the most packets:\n\n"
              "| Source | Destination | Protocol | Port | Packets | Bytes | First seen | Last seen |\n"
              "|---|---|---|---|---|---|---|---|\n", f);
        json_array_foreach(tuples, i, t) {
                if (i >= TOP_ROWS)
                        break;
                snprintf(port, sizeof(port), "%" PRIu64, uint_of(t, "port"));
                fputc('|', f);
                cell(f, str(t, "source"));
                cell(f, str(t, "destination"));
                cell(f, str(t, "protocol"));
                cell(f, json_is_integer(json_object_get(t, "port")) ? port : NULL);
                cell_u64(f, uint_of(t, "packets"));
                cell_u64(f, uint_of(t, "bytes"));
                cell(f, str(t, "first_seen"));
                cell(f, str(t, "last_seen"));
                fputc('\n', f);
        }
        print_top(f, tuples, "source", "Inside host");
        print_top(f, tuples, "destination", "Destination");
}

int output_report(FILE *f, json_t *report, json_t *drops, const char *drops_note, const struct output_flags *flags)
{
        print_header(f, report, flags);
        print_timeline(f, report);
        print_kept(f, json_object_get(report, "kept"));
        print_cut(f, json_object_get(report, "kept"), drops, drops_note);
        return ferror(f) ? -EIO : 0;
}
