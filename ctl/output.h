/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <jansson.h>

/*
 * Everything killswitchctl shows to a human: small formatters, a plain text
 * table, and one printer per kind of reply. The printers take the reply's
 * parameters object as the agent sent it and tolerate missing fields.
 */

enum json_mode {
        JSON_OFF,
        JSON_PRETTY,
        JSON_SHORT,
};

struct output_flags {
        bool color;   /* ANSI colours on the state */
        bool legend;  /* column headers and summary lines */
        time_t now;   /* reference for "3min ago" */
};

/*
 * Text from the agent or a remote host (a reason, a description, a policy
 * name) is printed with C0 controls and invalid UTF-8 bytes as "\xNN", and C1
 * controls and invisible format characters (bidi overrides and isolates,
 * zero-width characters, ...) as "\uNNNN", so that whoever set it can neither
 * drive nor fool the terminal of whoever reads it. width_safe() is the number
 * of columns that takes (one per other character).
 */
void fputs_safe(const char *s, FILE *f);
size_t width_safe(const char *s);

#define FORMAT_BYTES_MAX 32
/* 512 → "512B", 1229 → "1.2K" (powers of 1024, one truncated decimal). */
char *format_bytes(uint64_t bytes, char *buf, size_t size);

#define FORMAT_TIMESPAN_MAX 64
/* At most two adjacent units: "45s", "3min 2s", "2h 5min", "3d 1h". */
char *format_timespan(uint64_t sec, char *buf, size_t size);

/* "2026-11-27T05:30:12Z", fractions and "+HH:MM" offsets accepted; -EINVAL if malformed. */
int parse_rfc3339(const char *s, time_t *ret);

#define FORMAT_TIMESTAMP_MAX 128
/* "Fri 2026-11-27 05:30:12 UTC; 3min 2s ago" in local time; the input as is if it does not parse. */
char *format_timestamp(const char *rfc3339, time_t now, char *buf, size_t size);

/* A table of borrowed strings, printed with padded columns; NULL cells print as "-". */
struct table;
struct table *table_new(size_t n_columns, const char *const headers[]);
struct table *table_free(struct table *t);
int table_add_row(struct table *t, const char *const cells[]);
size_t table_rows(const struct table *t);
void table_print(const struct table *t, FILE *f, bool legend);

void output_json(FILE *f, json_t *v, enum json_mode mode);

/* io.killswitch.Status, systemctl status style. */
void output_status(FILE *f, json_t *status, const struct output_flags *flags);
/* False if the status object says isolated, but no cut is in force ("applied": false). */
bool output_status_applied(json_t *status);
/*
 * One-line confirmations of Isolate, Restore and Cancel, from the status object, with what the
 * change dropped (dropped_restore_at, dropped_request) and, for a repeated isolate, the isolation
 * that stays.
 */
void output_isolated(FILE *f, json_t *status);
void output_cancelled(FILE *f, json_t *status);
/*
 * Did the Restore reply open the uplinks or schedule the restore? If not, nothing changed: still
 * isolated and nothing scheduled, and output_restored() prints nothing (the caller says so and fails).
 */
bool output_restore_done(json_t *status);
/* asked_schedule: the call gave --in/--at; otherwise a schedule in the reply is an approved request's. */
void output_restored(FILE *f, json_t *status, bool asked_schedule);
/* io.killswitch.Confirm and io.killswitch.Heartbeat. */
void output_confirmed(FILE *f, json_t *status);
void output_heartbeat(FILE *f, json_t *reply, time_t now);
/* io.killswitch.Policies. Failures go to stdout, or to err_f without legend. */
int output_policies(FILE *f, FILE *err_f, json_t *reply, const struct output_flags *flags);
/* io.killswitch.Show: the ruleset verbatim. */
void output_ruleset(FILE *f, json_t *reply);
/* io.killswitch.Reload: the loaded policies. */
void output_loaded(FILE *f, json_t *reply);
/* Reload's "warnings", one a line. */
void output_warnings(FILE *f, json_t *reply);
/* The "failed" array of Policies and Reload: "FILE:LINE: message" lines. */
void output_failed(FILE *f, json_t *failed, json_t *policies, bool headings);
/*
 * io.killswitch.History: a table of TIME (local), ACTION, POLICY, USER, FROM
 * (SSH client, else the trigger) and REASON (else the agent's message).
 */
int output_history(FILE *f, json_t *entries, const struct output_flags *flags);
