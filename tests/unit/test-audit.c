/* SPDX-License-Identifier: MIT */
/* The audit history: append, read back, n limits, bounds and rotation, corrupt lines, no journal. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <systemd/sd-event.h>

#include "audit.h"

struct fixture {
        char dir[64];
        char path[128];
        struct ks_audit *audit;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "/tmp/ks-audit-test.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, AUDIT_HISTORY_FILE);
        assert_int_equal(audit_new(f->dir, &f->audit), 0);
        audit_set_journal(f->audit, false);   /* never write test entries to the host's journal */
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        char tmp[160];

        audit_free(f->audit);
        snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", f->dir, AUDIT_HISTORY_FILE);
        unlink(tmp);
        unlink(f->path);
        rmdir(f->dir);
        free(f);
        return 0;
}

static size_t count_lines(const char *path)
{
        FILE *f = fopen(path, "re");
        size_t n = 0;
        int c;

        if (!f)
                return 0;
        while ((c = getc(f)) != EOF)
                n += c == '\n';
        fclose(f);
        return n;
}

static void append_rawn(const char *path, const char *text, size_t len)
{
        FILE *f = fopen(path, "ae");

        assert_non_null(f);
        assert_int_equal(fwrite(text, 1, len, f), len);
        fclose(f);
}

static void append_raw(const char *path, const char *text)
{
        append_rawn(path, text, strlen(text));
}

/* A restore by "op" with reason "rN": numbered, so that order and rotation can be checked. */
static void log_numbered(struct ks_audit *a, unsigned i)
{
        char reason[32];

        snprintf(reason, sizeof(reason), "r%u", i);
        audit_log(a, &(struct audit_event){ .kind = AUDIT_RESTORE, .reason = reason, .user = "op", .uid = 1000,
                                            .trigger = "ctl", .since_usec = 1795000000ULL * 1000000ULL });
}

static json_t *history(struct ks_audit *a, size_t n)
{
        json_t *entries = NULL;

        assert_int_equal(audit_history(a, n, &entries), 0);
        assert_true(json_is_array(entries));
        return entries;
}

static const char *field(json_t *entries, size_t i, const char *key)
{
        return json_string_value(json_object_get(json_array_get(entries, i), key));
}

static void test_empty(void **state)
{
        struct fixture *f = *state;
        json_t *e = history(f->audit, 20);

        assert_int_equal(json_array_size(e), 0);
        json_decref(e);
}

static void test_round_trip(void **state)
{
        struct fixture *f = *state;
        json_t *e, *o;

        audit_log(f->audit, &(struct audit_event){
                .kind = AUDIT_ISOLATE, .policy = "isolate", .reason = "incident \"42\"\nline two",
                .user = "alice", .uid = 1001, .pid = 4242, .command = "killswitchctl",
                .ssh_client = "192.0.2.7 51234 198.51.100.1 22", .trigger = "ctl",
                .since_usec = 1795000000ULL * 1000000ULL });
        audit_log(f->audit, &(struct audit_event){
                .kind = AUDIT_SWITCH, .policy = "mail-only", .previous_policy = "isolate", .user = "bob",
                .uid = 1002, .pid = 1, .command = "sh", .trigger = "ctl", .message = "Switched." });
        audit_log(f->audit, &(struct audit_event){
                .kind = AUDIT_APPLY_FAILED, .policy = "isolate", .uid = -1, .trigger = "startup",
                .error = ENOBUFS });

        e = history(f->audit, 20);
        assert_int_equal(json_array_size(e), 3);
        o = json_array_get(e, 0);
        assert_string_equal(field(e, 0, "time"), "2026-11-18T11:06:40Z");
        assert_string_equal(field(e, 0, "action"), "isolate");
        assert_string_equal(field(e, 0, "policy"), "isolate");
        assert_true(json_is_null(json_object_get(o, "previous_policy")));
        assert_string_equal(field(e, 0, "reason"), "incident \"42\"\nline two");
        assert_string_equal(field(e, 0, "user"), "alice");
        assert_int_equal(json_integer_value(json_object_get(o, "uid")), 1001);
        assert_int_equal(json_integer_value(json_object_get(o, "pid")), 4242);
        assert_string_equal(field(e, 0, "command"), "killswitchctl");
        assert_string_equal(field(e, 0, "ssh_client"), "192.0.2.7");
        assert_string_equal(field(e, 0, "trigger"), "ctl");
        assert_true(json_is_null(json_object_get(o, "error")));
        /* The standard sentence names the policy, the caller and the reason. */
        assert_non_null(strstr(field(e, 0, "message"), "Isolated with policy isolate by alice (uid 1001"));
        assert_non_null(strstr(field(e, 0, "message"), "from 192.0.2.7: incident"));

        assert_string_equal(field(e, 1, "action"), "switch");
        assert_string_equal(field(e, 1, "previous_policy"), "isolate");
        assert_string_equal(field(e, 1, "message"), "Switched.");

        o = json_array_get(e, 2);
        assert_string_equal(field(e, 2, "action"), "apply-failed");
        assert_true(json_is_null(json_object_get(o, "user")));
        assert_true(json_is_null(json_object_get(o, "uid")));
        assert_true(json_is_null(json_object_get(o, "pid")));
        assert_true(json_is_null(json_object_get(o, "command")));
        assert_int_equal(json_integer_value(json_object_get(o, "error")), ENOBUFS);
        assert_non_null(strstr(field(e, 2, "message"), strerror(ENOBUFS)));
        json_decref(e);
        assert_int_equal(count_lines(f->path), 3);
}

/* Every kind but reload is a history entry; each has a name. */
static void test_kinds(void **state)
{
        struct fixture *f = *state;
        json_t *e;

        for (int k = 0; k < _AUDIT_KIND_MAX; k++) {
                assert_non_null(audit_kind_to_string(k));
                audit_log(f->audit, &(struct audit_event){ .kind = k, .uid = -1, .trigger = "monitor" });
        }
        assert_null(audit_kind_to_string(_AUDIT_KIND_MAX));
        e = history(f->audit, 100);
        assert_int_equal(json_array_size(e), _AUDIT_KIND_MAX - 1);
        for (size_t i = 0; i < json_array_size(e); i++) {
                assert_string_not_equal(field(e, i, "action"), "reload");
                assert_true(strlen(field(e, i, "message")) > 0);
        }
        json_decref(e);
}

static void test_n_limits(void **state)
{
        struct fixture *f = *state;
        json_t *e;

        for (unsigned i = 0; i < 5; i++)
                log_numbered(f->audit, i);
        e = history(f->audit, 2);     /* the newest, oldest first */
        assert_int_equal(json_array_size(e), 2);
        assert_string_equal(field(e, 0, "reason"), "r3");
        assert_string_equal(field(e, 1, "reason"), "r4");
        json_decref(e);
        e = history(f->audit, 0);
        assert_int_equal(json_array_size(e), 0);
        json_decref(e);
        e = history(f->audit, 1000);
        assert_int_equal(json_array_size(e), 5);
        assert_string_equal(field(e, 0, "reason"), "r0");
        json_decref(e);
}

/* Garbage, wrong shapes, a huge line and a torn last line are skipped; what follows is intact. */
static void test_corrupt_lines(void **state)
{
        struct fixture *f = *state;
        char *huge = malloc(100001);
        json_t *e;

        assert_non_null(huge);
        memset(huge, 'x', 100000);
        huge[100000] = '\0';
        log_numbered(f->audit, 0);
        append_raw(f->path, "not json\n\n[1,2]\n{\"time\":\"t\"}\n{\"action\":\"isolate\",\"time\":5}\n");
        append_raw(f->path, "{\"time\":\"t\",\"action\":\"a\",\"action\":\"b\"}\n");
        append_rawn(f->path, "{\"time\":\"t\",\"action\":\"x\"}\0garbage\n", 34);
        append_raw(f->path, huge);
        append_raw(f->path, "\n");
        log_numbered(f->audit, 1);
        append_raw(f->path, "{\"time\":\"2026-11-18T20:26:40Z\",\"act");   /* a crash mid-write */
        log_numbered(f->audit, 2);
        free(huge);

        e = history(f->audit, 20);
        assert_int_equal(json_array_size(e), 3);
        assert_string_equal(field(e, 0, "reason"), "r0");
        assert_string_equal(field(e, 1, "reason"), "r1");
        assert_string_equal(field(e, 2, "reason"), "r2");
        json_decref(e);
}

/* Bytes that are not UTF-8 (a process may name itself so) are kept readable, not dropped. */
static void test_invalid_utf8(void **state)
{
        struct fixture *f = *state;
        json_t *e;

        audit_log(f->audit, &(struct audit_event){ .kind = AUDIT_TAMPER, .uid = -1, .pid = 99,
                                                   .command = "n\xff\xfe", .trigger = "monitor" });
        audit_log(f->audit, &(struct audit_event){ .kind = AUDIT_TAMPER, .uid = -1, .pid = 777,
                                                   .command = "nft", .trigger = "monitor" });
        e = history(f->audit, 20);
        assert_int_equal(json_array_size(e), 2);
        assert_string_equal(field(e, 0, "command"), "n??");
        assert_string_equal(field(e, 1, "message"), "Foreign change to the killswitch table by nft (pid 777)");
        json_decref(e);
}

/* The default bounds: the 1001st line rewrites the file with the newest 500. */
static void test_rotation_default(void **state)
{
        struct fixture *f = *state;
        FILE *file = fopen(f->path, "we");
        struct stat st;
        char tmp[160];
        json_t *e;

        assert_non_null(file);
        for (unsigned i = 0; i < AUDIT_HISTORY_MAX; i++)
                fprintf(file, "{\"time\":\"2026-11-18T20:26:40Z\",\"action\":\"restore\",\"reason\":\"old%u\"}\n", i);
        fclose(file);
        log_numbered(f->audit, 1000);
        assert_int_equal(count_lines(f->path), AUDIT_HISTORY_KEEP);
        e = history(f->audit, AUDIT_HISTORY_MAX);
        assert_int_equal(json_array_size(e), AUDIT_HISTORY_KEEP);
        assert_string_equal(field(e, 0, "reason"), "old501");
        assert_string_equal(field(e, AUDIT_HISTORY_KEEP - 1, "reason"), "r1000");
        json_decref(e);
        snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", f->dir, AUDIT_HISTORY_FILE);
        assert_int_equal(stat(tmp, &st), -1);
        assert_int_equal(errno, ENOENT);
}

/* Small bounds: rotation repeats, the count carries on across it, corrupt lines count and go. */
static void test_rotation_repeated(void **state)
{
        struct fixture *f = *state;
        json_t *e;

        audit_set_history_bounds(f->audit, 10, 4);
        append_raw(f->path, "garbage\n");
        for (unsigned i = 0; i < 9; i++)
                log_numbered(f->audit, i);
        assert_int_equal(count_lines(f->path), 10);
        log_numbered(f->audit, 9);
        assert_int_equal(count_lines(f->path), 4);
        for (unsigned i = 10; i < 16; i++)
                log_numbered(f->audit, i);
        assert_int_equal(count_lines(f->path), 10);
        log_numbered(f->audit, 16);
        assert_int_equal(count_lines(f->path), 4);
        e = history(f->audit, 20);
        assert_int_equal(json_array_size(e), 4);
        assert_string_equal(field(e, 0, "reason"), "r13");
        assert_string_equal(field(e, 3, "reason"), "r16");
        json_decref(e);
}

/* A fresh audit object (an agent restart) counts the lines it finds. */
static void test_restart(void **state)
{
        struct fixture *f = *state;
        struct ks_audit *b;
        json_t *e;

        audit_set_history_bounds(f->audit, 10, 4);
        for (unsigned i = 0; i < 10; i++)
                log_numbered(f->audit, i);
        assert_int_equal(audit_new(f->dir, &b), 0);
        audit_set_journal(b, false);
        audit_set_history_bounds(b, 10, 4);
        log_numbered(b, 10);
        assert_int_equal(count_lines(f->path), 4);
        e = history(b, 20);
        assert_string_equal(field(e, 3, "reason"), "r10");
        json_decref(e);
        audit_free(b);
}

/* No state directory: recording fails quietly, reading is an empty history. */
static void test_no_state_dir(void **state)
{
        struct ks_audit *a;
        json_t *e;

        assert_int_equal(audit_new("/nonexistent/ks-audit-test", &a), 0);
        audit_set_journal(a, false);
        log_numbered(a, 0);
        e = history(a, 20);
        assert_int_equal(json_array_size(e), 0);
        json_decref(e);
        audit_free(a);
        audit_log(NULL, &(struct audit_event){ .kind = AUDIT_RELOAD, .uid = -1 });
        assert_null(audit_free(NULL));
}

/* With the journal on where there is none, audit_log goes on with the history. */
static void test_no_journal(void **state)
{
        struct fixture *f = *state;
        json_t *e;

        if (access("/run/systemd/journal/socket", F_OK) == 0)
                skip();
        audit_set_journal(f->audit, true);
        log_numbered(f->audit, 0);
        e = history(f->audit, 20);
        assert_int_equal(json_array_size(e), 1);
        json_decref(e);
}

static void log_refused(struct ks_audit *a, bool unprivileged, uid_t uid)
{
        audit_log(a, &(struct audit_event){ .kind = AUDIT_REFUSED, .policy = "\x01\x02", .user = "nobody",
                                            .uid = uid, .pid = 42, .command = "python3", .trigger = "ctl",
                                            .ssh_client = "203.0.113.66 4711 10.0.0.1 22",
                                            .message = "Permission denied", .error = 1,
                                            .unprivileged = unprivileged });
}

static size_t count_action(json_t *e, const char *action)
{
        size_t n = 0;

        for (size_t i = 0; i < json_array_size(e); i++)
                n += strcmp(field(e, i, "action"), action) == 0;
        return n;
}

/*
 * 1,001 refusals of an unprivileged caller right after root's isolation: a few
 * one by one, the rest in one summary; the isolation stays; the claimed ssh
 * address is recorded as a claim, not as where the caller came from.
 */
static void test_refusals_aggregated(void **state)
{
        struct fixture *f = *state;
        json_t *e;

        audit_log(f->audit, &(struct audit_event){ .kind = AUDIT_ISOLATE, .policy = "isolate", .user = "root",
                                                   .uid = 0, .reason = "INCIDENT-4711", .trigger = "ctl" });
        for (unsigned i = 0; i < 1001; i++)
                log_refused(f->audit, true, 65534);
        e = history(f->audit, AUDIT_HISTORY_MAX);
        assert_int_equal(count_action(e, "refused"), AUDIT_REFUSED_BURST);
        assert_string_equal(field(e, 0, "reason"), "INCIDENT-4711");
        assert_null(field(e, 1, "ssh_client"));
        assert_string_equal(field(e, 1, "claimed_ssh_client"), "203.0.113.66");
        json_decref(e);
        /* The window ends (here: the agent stops): one summary with the count. */
        audit_free(f->audit);
        assert_int_equal(audit_new(f->dir, &f->audit), 0);
        audit_set_journal(f->audit, false);
        e = history(f->audit, AUDIT_HISTORY_MAX);
        assert_int_equal(count_action(e, "refused"), AUDIT_REFUSED_BURST + 1);
        assert_non_null(strstr(field(e, json_array_size(e) - 1, "message"), "Refused 996 more requests"));
        assert_non_null(strstr(field(e, json_array_size(e) - 1, "message"), "uid 65534)"));
        json_decref(e);
}

/* Does the history file (not History, which would flush the window) have a line containing s? */
static bool file_has(const char *path, const char *s)
{
        char line[4096];
        bool found = false;
        FILE *f = fopen(path, "re");

        while (f && !found && fgets(line, sizeof(line), f))
                found = strstr(line, s) != NULL;
        if (f)
                fclose(f);
        return found;
}

/* The summary is written when the window is over, by the event loop, with nothing else happening. */
static void test_refusals_summary_timer(void **state)
{
        struct fixture *f = *state;
        sd_event *event = NULL;

        assert_int_equal(sd_event_new(&event), 0);
        assert_int_equal(audit_attach_event(f->audit, event), 0);
        audit_set_refusals_window(f->audit, 1000000);
        for (unsigned i = 0; i < AUDIT_REFUSED_BURST + 3; i++)
                log_refused(f->audit, true, 65534);
        assert_false(file_has(f->path, "Refused 3 more requests"));
        /* Generous: the window is 1 s, the timer's accuracy 1 s more. */
        for (unsigned i = 0; i < 100 && !file_has(f->path, "Refused 3 more requests"); i++)
                assert_true(sd_event_run(event, 100000) >= 0);
        assert_true(file_has(f->path, "Refused 3 more requests"));
        assert_int_equal(count_lines(f->path), AUDIT_REFUSED_BURST + 1);
        audit_free(f->audit);
        f->audit = NULL;
        sd_event_unref(event);
}

/*
 * With an event loop the fsync of the history runs on a thread once the loop
 * is idle; lines written meanwhile are synced by another round, and freeing
 * the audit while a round runs waits for it. Nothing is lost or doubled.
 */
static void test_history_sync_thread(void **state)
{
        struct fixture *f = *state;
        sd_event *event = NULL;

        assert_int_equal(sd_event_new(&event), 0);
        assert_int_equal(audit_attach_event(f->audit, event), 0);
        for (unsigned round = 0; round < 20; round++) {
                log_numbered(f->audit, round * 2);
                assert_true(sd_event_run(event, 0) >= 0);       /* starts a sync (or asks for another) */
                log_numbered(f->audit, round * 2 + 1);
                for (unsigned i = 0; i < round % 3; i++)
                        assert_true(sd_event_run(event, 1000) >= 0);
        }
        audit_free(f->audit);   /* a sync may still run, another may be asked for */
        f->audit = NULL;
        sd_event_unref(event);
        assert_int_equal(count_lines(f->path), 40);
}

/* Refusals of trusted callers are each recorded, but a rotation never drops a state change for them. */
static void test_refusals_never_rotate_state(void **state)
{
        struct fixture *f = *state;
        json_t *e;

        audit_set_history_bounds(f->audit, 20, 10);
        log_numbered(f->audit, 1);
        for (unsigned i = 0; i < 200; i++)
                log_refused(f->audit, false, 0);
        e = history(f->audit, 20);
        assert_int_equal(count_action(e, "restore"), 1);
        assert_string_equal(field(e, 0, "reason"), "r1");
        assert_true(count_action(e, "refused") <= 10);
        json_decref(e);
}

/* History answers from memory, at most AUDIT_HISTORY_REPLY_MAX bytes of JSON (escapes counted). */
static void test_history_bytes(void **state)
{
        struct fixture *f = *state;
        char reason[1001];
        size_t size;
        char *text;
        json_t *e;

        for (size_t i = 0; i < sizeof(reason) - 1; i++)
                reason[i] = (char)(1 + i % 30);
        reason[sizeof(reason) - 1] = '\0';
        for (unsigned i = 0; i < AUDIT_HISTORY_MAX - 1; i++)
                audit_log(f->audit, &(struct audit_event){ .kind = AUDIT_RESTORE, .reason = reason, .uid = 0,
                                                           .trigger = "ctl" });
        log_numbered(f->audit, 7);
        e = history(f->audit, AUDIT_HISTORY_MAX);
        text = json_dumps(e, JSON_COMPACT);
        size = strlen(text);
        free(text);
        assert_true(json_array_size(e) > 10 && json_array_size(e) < AUDIT_HISTORY_MAX - 1);
        assert_true(size <= AUDIT_HISTORY_REPLY_MAX);
        assert_string_equal(field(e, json_array_size(e) - 1, "reason"), "r7");
        json_decref(e);
        /* Served from memory: the file gone, the answer stays. */
        unlink(f->path);
        e = history(f->audit, 1);
        assert_string_equal(field(e, 0, "reason"), "r7");
        json_decref(e);
}

/*
 * Under the unit's ProtectProc=invisible the agent may not see a caller's
 * /proc/PID/comm: the name the client sent is kept, as claimed_command; where
 * /proc tells, /proc wins and the claim is dropped.
 */
static void test_claimed_command(void **state)
{
        struct fixture *f = *state;
        json_t *e;

        audit_log(f->audit, &(struct audit_event){ .kind = AUDIT_RESTORE, .user = "op", .uid = 1000,
                                                   .pid = 0x3ffffffe, .trigger = "ctl",
                                                   .claimed_command = "killswitchctl" });
        audit_log(f->audit, &(struct audit_event){ .kind = AUDIT_RESTORE, .user = "op", .uid = 1000,
                                                   .pid = getpid(), .trigger = "ctl",
                                                   .claimed_command = "not-me" });
        e = history(f->audit, 2);
        assert_null(field(e, 0, "command"));
        assert_string_equal(field(e, 0, "claimed_command"), "killswitchctl");
        assert_non_null(strstr(field(e, 0, "message"), "claims killswitchctl"));
        assert_non_null(field(e, 1, "command"));
        assert_null(field(e, 1, "claimed_command"));
        json_decref(e);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
                cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
                cmocka_unit_test_setup_teardown(test_kinds, setup, teardown),
                cmocka_unit_test_setup_teardown(test_n_limits, setup, teardown),
                cmocka_unit_test_setup_teardown(test_corrupt_lines, setup, teardown),
                cmocka_unit_test_setup_teardown(test_invalid_utf8, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rotation_default, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rotation_repeated, setup, teardown),
                cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
                cmocka_unit_test(test_no_state_dir),
                cmocka_unit_test_setup_teardown(test_no_journal, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refusals_aggregated, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refusals_never_rotate_state, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refusals_summary_timer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_history_sync_thread, setup, teardown),
                cmocka_unit_test_setup_teardown(test_history_bytes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_claimed_command, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
