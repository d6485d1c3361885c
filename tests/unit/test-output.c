/* SPDX-License-Identifier: MIT */
/*
 * What killswitchctl prints of the agent's or a remote host's strings: nothing that drives or fools a terminal.
 * And what it says a Restore or a repeated Isolate did: never "Restored" while the reply says isolated.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "output.h"

static void check(const char *in, const char *out)
{
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);

        assert_non_null(f);
        fputs_safe(in, f);
        fclose(f);
        assert_string_equal(text, out);
        free(text);
}

static void test_plain(void **state)
{
        check("INCIDENT-4711: mail relay only", "INCIDENT-4711: mail relay only");
        check("Grüße, 東京", "Grüße, 東京");
        assert_int_equal(width_safe("Grüße"), 5);
}

static void test_c0_c1(void **state)
{
        check("a\x1b[2Jb", "a\\x1b[2Jb");
        check("a\x7f", "a\\x7f");
        check("csi\xc2\x9b" "31m", "csi\\u009b31m");              /* U+009B, the 8-bit CSI */
        check("osc\xc2\x9d", "osc\\u009d");
        assert_int_equal(width_safe("\xc2\x9b"), strlen("\\u009b"));
}

static void test_bidi_and_format(void **state)
{
        check("evil\xe2\x80\xae" "txt.exe", "evil\\u202etxt.exe");  /* RIGHT-TO-LEFT OVERRIDE */
        check("\xe2\x80\xaa\xe2\x80\xab\xe2\x80\xac\xe2\x80\xad", "\\u202a\\u202b\\u202c\\u202d");
        check("\xe2\x81\xa6" "x" "\xe2\x81\xa9", "\\u2066x\\u2069"); /* isolates */
        check("\xe2\x80\x8e\xe2\x80\x8f\xd8\x9c", "\\u200e\\u200f\\u061c");
        check("zero\xe2\x80\x8bwidth\xef\xbb\xbf", "zero\\u200bwidth\\ufeff");
        check("line\xe2\x80\xa8sep", "line\\u2028sep");
        check("tag\xf3\xa0\x80\x81", "tag\\U000e0001");
}

static void test_invalid_utf8(void **state)
{
        check("\xff\xfe", "\\xff\\xfe");
        check("\xc0\xaf", "\\xc0\\xaf");                /* overlong "/" */
        check("\xed\xa0\x80", "\\xed\\xa0\\x80");       /* a surrogate */
        check("cut\xe2\x80", "cut\\xe2\\x80");
}

/* What output_restored() prints for a Restore reply (JSON text), and whether output_restore_done() holds. */
static void check_restored(const char *reply, bool asked_schedule, bool done, const char *starts)
{
        json_t *status = json_loads(reply, 0, NULL);
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);

        assert_non_null(status);
        assert_non_null(f);
        output_restored(f, status, asked_schedule);
        fclose(f);
        assert_int_equal(output_restore_done(status), done);
        assert_int_equal(strncmp(text, starts, strlen(starts)), 0);
        free(text);
        json_decref(status);
}

static void test_restored(void **state)
{
        check_restored("{\"state\":\"normal\",\"restore_at\":null}", false, true, "Restored: uplinks open.");
        check_restored("{\"state\":\"isolated\",\"restore_at\":\"2030-01-01T00:00:00Z\"}", true, true,
                       "Restore scheduled: ");
        /* A second person approved a scheduled request: scheduled, not restored. */
        check_restored("{\"state\":\"isolated\",\"restore_at\":\"2030-01-01T00:00:00Z\"}", false, true,
                       "Approved: the restore is scheduled for ");
        /* Still isolated, nothing scheduled (audit H1 with an older agent): nothing printed, not done. */
        check_restored("{\"state\":\"isolated\",\"policy\":\"x\",\"restore_at\":null}", false, false, "");
}

static void test_isolated_again(void **state)
{
        json_t *status = json_loads("{\"state\":\"isolated\",\"policy\":\"mail-only\",\"since\":\"2026-12-02T08:07:28Z\","
                                    "\"user\":\"root\",\"reason\":\"INC-1 start\",\"repeated\":true,"
                                    "\"dropped_restore_at\":\"2026-12-02T10:00:00Z\",\"dropped_request\":null}", 0, NULL);
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);

        assert_non_null(status);
        output_isolated(f, status);
        fclose(f);
        assert_non_null(strstr(text, "Already isolated with policy mail-only since "));
        assert_non_null(strstr(text, "(by root: INC-1 start)"));
        assert_non_null(strstr(text, "The scheduled restore at "));
        assert_non_null(strstr(text, " was dropped: this isolation has no end."));
        assert_null(strstr(text, "Isolated with policy"));
        free(text);
        json_decref(status);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_plain),
                cmocka_unit_test(test_c0_c1),
                cmocka_unit_test(test_bidi_and_format),
                cmocka_unit_test(test_invalid_utf8),
                cmocka_unit_test(test_restored),
                cmocka_unit_test(test_isolated_again),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
