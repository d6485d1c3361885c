/* SPDX-License-Identifier: MIT */
/* The persisted state: round trip, missing and corrupt files, atomic replacement, overwrite in place. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "state.h"
#include "timespec.h"
#include "timeutil.h"

static char *make_dir(void)
{
        char tmpl[] = "/tmp/ks-state-test.XXXXXX";
        char *d = mkdtemp(tmpl);

        assert_non_null(d);
        return strdup(d);
}

static void write_file(const char *dir, const char *text)
{
        char path[512];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, STATE_FILE);
        f = fopen(path, "we");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

static void remove_dir(char *dir)
{
        char path[512];

        snprintf(path, sizeof(path), "%s/%s", dir, STATE_FILE);
        unlink(path);
        rmdir(dir);
        free(dir);
}

static void test_round_trip(void **unused)
{
        char *dir = make_dir();
        struct ks_state s, l;

        state_init(&s);
        s.isolated = true;
        s.policy = strdup("isolate");
        s.since_usec = 1795000000ULL * 1000000ULL;
        s.user = strdup("alice");
        s.uid = 1001;
        s.reason = strdup("incident \"42\"\nline two");
        assert_int_equal(state_save(dir, &s), 0);
        assert_int_equal(state_load(dir, &l), 0);
        assert_true(l.isolated);
        assert_string_equal(l.policy, "isolate");
        assert_true(l.since_usec == s.since_usec);
        assert_string_equal(l.user, "alice");
        assert_int_equal(l.uid, 1001);
        assert_string_equal(l.reason, s.reason);
        state_clear(&s);
        state_clear(&l);
        remove_dir(dir);
}

/*
 * The longest schedule the agent takes (a year from now) and the last instant
 * RFC 3339 can write: saved and read back exactly. Beyond it, nothing is
 * written (before, `isolate --confirm 4000000d` wrote a state file that could
 * not be read back, and the agent failed closed with the default policy).
 */
static void test_instant_caps(void **unused)
{
        char *dir = make_dir();
        uint64_t now = now_realtime_usec() / USEC_PER_SEC * USEC_PER_SEC;
        struct ks_state s, l;

        state_init(&s);
        s.isolated = true;
        s.policy = strdup("isolate");
        s.since_usec = now;
        s.restore_at_usec = TIMESPEC_INSTANT_MAX_USEC;
        s.confirm_usec = now + TIMESPEC_SCHEDULE_MAX_USEC;
        s.revert_isolated = false;
        assert_int_equal(state_save(dir, &s), 0);
        assert_int_equal(state_load(dir, &l), 0);
        assert_true(l.restore_at_usec == s.restore_at_usec);
        assert_true(l.confirm_usec == s.confirm_usec);
        assert_true(l.since_usec == now);
        state_clear(&l);
        s.confirm_usec = now + 4000000ULL * 24 * 3600 * USEC_PER_SEC;
        assert_int_equal(state_save(dir, &s), -ERANGE);
        assert_int_equal(state_load(dir, &l), 0);       /* the previous file stays, readable */
        assert_true(l.confirm_usec == now + TIMESPEC_SCHEDULE_MAX_USEC);
        state_clear(&l);
        state_clear(&s);
        remove_dir(dir);
}

/* A pending four-eyes request survives a restart: saved and read back (its boottime twin too, in this boot). */
static void test_request_round_trip(void **unused)
{
        char *dir = make_dir();
        uint64_t now = now_realtime_usec() / USEC_PER_SEC * USEC_PER_SEC;
        struct ks_state s, l;

        state_init(&s);
        s.isolated = true;
        s.policy = strdup("isolate");
        s.since_usec = now;
        s.restore_at_usec = now + 3600 * USEC_PER_SEC;
        s.request_user = strdup("alice");
        s.request_uid = 1001;
        s.request_at_usec = now;
        s.request_until_usec = now + 3600 * USEC_PER_SEC;
        s.request_until_boot_usec = 42;
        s.request_restore_usec = s.restore_at_usec;
        assert_int_equal(state_save(dir, &s), 0);
        assert_int_equal(state_load(dir, &l), 0);
        assert_string_equal(l.request_user, "alice");
        assert_int_equal(l.request_uid, 1001);
        assert_true(l.request_at_usec == now);
        assert_true(l.request_until_usec == s.request_until_usec);
        assert_true(l.request_restore_usec == s.restore_at_usec);
        assert_true(l.request_until_boot_usec == 42);
        state_clear(&l);

        /* None pending: none read back; a request without its deadline is corrupt. */
        free(s.request_user);
        s.request_user = NULL;
        assert_int_equal(state_save(dir, &s), 0);
        assert_int_equal(state_load(dir, &l), 0);
        assert_null(l.request_user);
        assert_int_equal(l.request_uid, -1);
        state_clear(&l);
        write_file(dir, "{\"state\":\"isolated\",\"policy\":\"isolate\",\"restore_request\":{\"user\":\"alice\"}}");
        assert_int_equal(state_load(dir, &l), -EBADMSG);
        state_clear(&s);
        remove_dir(dir);
}

/* The uplinks' ifindexes: saved, read back, copied; absent is none; a bad one is corrupt. */
static void test_uplink_ids_round_trip(void **unused)
{
        const struct ks_uplink_id ids[] = { { "wan0", 3 }, { "wan1", 12 } };
        char *dir = make_dir();
        struct ks_state s, l, c;

        state_init(&s);
        s.isolated = true;
        s.policy = strdup("isolate");
        assert_int_equal(state_set_uplink_ids(&s, ids, 2, "b00t"), 0);
        assert_int_equal(state_save(dir, &s), 0);
        assert_int_equal(state_load(dir, &l), 0);
        assert_int_equal(l.n_uplink_ids, 2);
        assert_string_equal(l.uplink_ids[0].name, "wan0");
        assert_int_equal(l.uplink_ids[0].ifindex, 3);
        assert_string_equal(l.uplink_ids[1].name, "wan1");
        assert_int_equal(l.uplink_ids[1].ifindex, 12);
        assert_string_equal(l.uplinks_boot, "b00t");
        assert_int_equal(state_copy(&l, &c), 0);
        assert_int_equal(c.n_uplink_ids, 2);
        assert_int_equal(c.uplink_ids[1].ifindex, 12);
        state_clear(&c);
        state_clear(&l);

        write_file(dir, "{\"state\":\"isolated\",\"policy\":\"isolate\"}");
        assert_int_equal(state_load(dir, &l), 0);
        assert_int_equal(l.n_uplink_ids, 0);
        state_clear(&l);
        write_file(dir, "{\"state\":\"isolated\",\"uplinks\":[{\"name\":\"wan0\",\"ifindex\":0}]}");
        assert_int_equal(state_load(dir, &l), -EBADMSG);
        write_file(dir, "{\"state\":\"isolated\",\"uplinks\":[{\"name\":\"0123456789abcdef\",\"ifindex\":2}]}");
        assert_int_equal(state_load(dir, &l), -EBADMSG);
        state_clear(&s);
        remove_dir(dir);
}

static void write_boottime(const char *dir, const char *boot)
{
        char text[1024];

        snprintf(text, sizeof(text),
                 "{\"state\":\"isolated\",\"policy\":\"isolate\",\"restore_at\":\"2026-12-01T17:00:00Z\","
                 "\"confirm_deadline\":\"2026-12-01T16:00:00Z\",\"revert\":{\"state\":\"normal\",\"policy\":null},"
                 "\"boottime\":{\"boot\":\"%s\",\"restore_at\":7000000000,\"confirm_deadline\":3400000000,"
                 "\"request_until\":null}}", boot);
        write_file(dir, text);
}

/*
 * The deadlines given as durations keep their CLOCK_BOOTTIME twins across a
 * restart in the same boot (before, only the wall-clock instants were saved:
 * a wall clock stepped forward, then a restart, ended an isolation --for 1h
 * at once). Another boot, or a file of an older agent: the wall clock decides.
 */
static void test_boottime_round_trip(void **unused)
{
        char *dir = make_dir(), boot[BOOT_ID_MAX];
        struct ks_state s, l;

        if (!*boot_id(boot))
                skip();
        state_init(&s);
        s.isolated = true;
        s.policy = strdup("isolate");
        s.restore_at_usec = 1795000000ULL * USEC_PER_SEC;
        s.restore_boot_usec = 7200 * USEC_PER_SEC;
        s.confirm_usec = 1794999000ULL * USEC_PER_SEC;
        s.confirm_boot_usec = 3600 * USEC_PER_SEC;
        assert_int_equal(state_save(dir, &s), 0);
        assert_int_equal(state_load(dir, &l), 0);
        assert_true(l.restore_boot_usec == 7200 * USEC_PER_SEC);
        assert_true(l.confirm_boot_usec == 3600 * USEC_PER_SEC);
        assert_true(l.restore_at_usec == s.restore_at_usec);
        state_clear(&l);

        /* A restore --at (an instant): no twin, none read back. */
        s.restore_boot_usec = 0;
        s.confirm_usec = s.confirm_boot_usec = 0;
        assert_int_equal(state_save(dir, &s), 0);
        assert_int_equal(state_load(dir, &l), 0);
        assert_true(l.restore_boot_usec == 0 && l.confirm_boot_usec == 0);
        state_clear(&l);

        /* The same boot: taken; another boot: dropped (its boottime clock started again). */
        write_boottime(dir, boot);
        assert_int_equal(state_load(dir, &l), 0);
        assert_true(l.restore_boot_usec == 7000000000ULL && l.confirm_boot_usec == 3400000000ULL);
        state_clear(&l);
        write_boottime(dir, "6e0f0c2a-0000-4000-8000-000000000000");
        assert_int_equal(state_load(dir, &l), 0);
        assert_true(l.restore_boot_usec == 0 && l.confirm_boot_usec == 0);
        assert_true(l.restore_at_usec != 0 && l.confirm_usec != 0);
        state_clear(&l);

        /* A twin without its deadline is ignored; a malformed one is corrupt. */
        write_file(dir, "{\"state\":\"isolated\",\"boottime\":{\"boot\":\"x\",\"restore_at\":5}}");
        assert_int_equal(state_load(dir, &l), 0);
        assert_true(l.restore_boot_usec == 0);
        state_clear(&l);
        write_file(dir, "{\"state\":\"isolated\",\"boottime\":{\"restore_at\":5}}");
        assert_int_equal(state_load(dir, &l), -EBADMSG);
        write_file(dir, "{\"state\":\"isolated\",\"boottime\":{\"boot\":\"x\",\"restore_at\":\"soon\"}}");
        assert_int_equal(state_load(dir, &l), -EBADMSG);
        state_clear(&s);
        remove_dir(dir);
}

/*
 * The file stays readable by the previous agent: the keys it reads keep their
 * names and types (restore_at and confirm_deadline are RFC 3339 instants),
 * the twins are an extra key it ignores.
 */
static void test_boottime_compatible(void **unused)
{
        char *dir = make_dir(), path[512];
        struct ks_state s;
        json_error_t jerr;
        json_t *o;

        state_init(&s);
        s.isolated = true;
        s.policy = strdup("isolate");
        s.restore_at_usec = 1795000000ULL * USEC_PER_SEC;
        s.restore_boot_usec = 7200 * USEC_PER_SEC;
        assert_int_equal(state_save(dir, &s), 0);
        snprintf(path, sizeof(path), "%s/%s", dir, STATE_FILE);
        o = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        assert_non_null(o);
        assert_string_equal(json_string_value(json_object_get(o, "restore_at")), "2026-11-18T11:06:40Z");
        assert_true(json_is_null(json_object_get(o, "confirm_deadline")));
        if (json_is_object(json_object_get(o, "boottime")))
                assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "boottime"), "restore_at")),
                                 7200 * USEC_PER_SEC);
        json_decref(o);
        state_clear(&s);
        remove_dir(dir);
}

static void test_normal_nulls(void **unused)
{
        char *dir = make_dir();
        struct ks_state s, l;

        state_init(&s);
        assert_int_equal(state_save(dir, &s), 0);
        assert_int_equal(state_load(dir, &l), 0);
        assert_false(l.isolated);
        assert_null(l.policy);
        assert_null(l.reason);
        assert_int_equal(l.uid, -1);
        assert_true(l.since_usec == 0);
        state_clear(&l);
        remove_dir(dir);
}

static void test_missing(void **unused)
{
        char *dir = make_dir();
        struct ks_state l;

        assert_int_equal(state_load(dir, &l), -ENOENT);
        remove_dir(dir);
}

static void test_corrupt(void **unused)
{
        static const char *bad[] = {
                "", "{", "[]", "{\"state\":\"maybe\"}", "{\"state\":\"isolated\",\"policy\":5}",
                "{\"state\":\"isolated\",\"since\":\"yesterday\"}", "{\"state\":\"normal\",\"state\":\"normal\"}",
        };
        char *dir = make_dir();
        struct ks_state l;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                write_file(dir, bad[i]);
                assert_int_equal(state_load(dir, &l), -EBADMSG);
        }
        remove_dir(dir);
}

/* A save replaces the file by rename: no temporary file stays behind. */
static void test_atomic_replace(void **unused)
{
        char *dir = make_dir();
        char tmp[512];
        struct ks_state s;
        struct stat st;

        state_init(&s);
        write_file(dir, "garbage");
        assert_int_equal(state_save(dir, &s), 0);
        snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, STATE_FILE);
        assert_int_equal(stat(tmp, &st), -1);
        assert_int_equal(state_load(dir, &s), 0);
        state_clear(&s);
        remove_dir(dir);
}

static void stat_state(const char *dir, struct stat *st)
{
        char path[512];

        snprintf(path, sizeof(path), "%s/%s", dir, STATE_FILE);
        assert_int_equal(stat(path, st), 0);
}

/*
 * The first save (over a file of another size) replaces it with one of
 * STATE_FILE_SIZE bytes; the next ones overwrite that file in place (same
 * inode) and each loads back as saved; a state too long for it is written
 * whole by rename, and the next short one pads the file again.
 */
static void test_in_place(void **unused)
{
        char *dir = make_dir(), *reason = malloc(STATE_FILE_SIZE * 2);
        struct ks_state s, l;
        struct stat st1, st2;

        assert_non_null(reason);
        state_init(&s);
        write_file(dir, "garbage");
        assert_int_equal(state_save(dir, &s), 0);
        stat_state(dir, &st1);
        assert_int_equal(st1.st_size, STATE_FILE_SIZE);

        s.isolated = true;
        s.policy = strdup("web");
        s.reason = strdup("in place");
        assert_int_equal(state_save(dir, &s), 0);
        stat_state(dir, &st2);
        assert_int_equal(st2.st_ino, st1.st_ino);
        assert_int_equal(st2.st_size, STATE_FILE_SIZE);
        assert_int_equal(state_load(dir, &l), 0);
        assert_true(l.isolated);
        assert_string_equal(l.policy, "web");
        assert_string_equal(l.reason, "in place");
        state_clear(&l);

        memset(reason, 'x', STATE_FILE_SIZE * 2 - 1);
        reason[STATE_FILE_SIZE * 2 - 1] = '\0';
        free(s.reason);
        s.reason = reason;
        assert_int_equal(state_save(dir, &s), 0);
        stat_state(dir, &st2);
        assert_true(st2.st_size > STATE_FILE_SIZE);
        assert_int_equal(state_load(dir, &l), 0);
        assert_string_equal(l.reason, reason);
        state_clear(&l);

        state_clear(&s);        /* frees reason */
        state_init(&s);
        assert_int_equal(state_save(dir, &s), 0);
        stat_state(dir, &st2);
        assert_int_equal(st2.st_size, STATE_FILE_SIZE);
        assert_int_equal(state_load(dir, &l), 0);
        assert_false(l.isolated);
        state_clear(&l);
        state_clear(&s);
        remove_dir(dir);
}

/*
 * state_write() in two halves: over a file of another size it writes it whole
 * by rename, synced (nothing owed); over a padded file in place, in the page
 * cache only (a restarted agent loads it at once), and state_sync() owes the
 * rest. A state that cannot be written owes nothing.
 */
static void test_write_then_sync(void **unused)
{
        char *dir = make_dir();
        struct ks_state s, l;
        bool owed = true;

        state_init(&s);
        write_file(dir, "garbage");
        assert_int_equal(state_write(dir, &s, &owed), 0);
        assert_false(owed);
        s.isolated = true;
        s.policy = strdup("web");
        assert_int_equal(state_write(dir, &s, &owed), 0);
        assert_true(owed);
        assert_int_equal(state_load(dir, &l), 0);
        assert_true(l.isolated);
        assert_string_equal(l.policy, "web");
        state_clear(&l);
        assert_int_equal(state_sync(dir), 0);
        s.since_usec = TIMESPEC_INSTANT_MAX_USEC + 1;
        owed = true;
        assert_int_equal(state_write(dir, &s, &owed), -ERANGE);
        assert_false(owed);
        assert_true(state_sync("/nonexistent/dir") < 0);
        state_clear(&s);
        remove_dir(dir);
}

static void test_unwritable_dir(void **unused)
{
        struct ks_state s;

        state_init(&s);
        assert_true(state_save("/nonexistent/dir", &s) < 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_instant_caps),
                cmocka_unit_test(test_request_round_trip),
                cmocka_unit_test(test_uplink_ids_round_trip),
                cmocka_unit_test(test_boottime_round_trip),
                cmocka_unit_test(test_boottime_compatible),
                cmocka_unit_test(test_normal_nulls),
                cmocka_unit_test(test_missing),
                cmocka_unit_test(test_corrupt),
                cmocka_unit_test(test_atomic_replace),
                cmocka_unit_test(test_in_place),
                cmocka_unit_test(test_write_then_sync),
                cmocka_unit_test(test_unwritable_dir),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
