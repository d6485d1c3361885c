/* SPDX-License-Identifier: MIT */
/* What killswitchctl prints of the agent's or a remote host's strings: nothing that drives or fools a terminal. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
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

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_plain),
                cmocka_unit_test(test_c0_c1),
                cmocka_unit_test(test_bidi_and_format),
                cmocka_unit_test(test_invalid_utf8),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
