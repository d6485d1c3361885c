/* SPDX-License-Identifier: MIT */
/* libkscommon (agent/shared/): arrays that grow, string vectors, the cleanup hand-offs, local times. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alloc.h"
#include "cleanup.h"
#include "siphash.h"
#include "strv.h"
#include "timespec.h"

struct item {
        int a, b;
};

/* Appending one at a time keeps every element, and the block is reallocated only now and then. */
static void test_greedy_realloc(void **state)
{
        _cleanup_free_ struct item *v = NULL;
        size_t moves = 0;

        for (size_t n = 0; n < 10000; n++) {
                struct item *before = v;

                assert_non_null(GREEDY_REALLOC(v, n + 1));
                moves += v != before;
                v[n] = (struct item){ .a = (int) n, .b = -(int) n };
        }
        for (size_t n = 0; n < 10000; n++)
                assert_true(v[n].a == (int) n && v[n].b == -(int) n);
        assert_true(moves < 100);
        /* Room already there: the same block. */
        assert_ptr_equal(GREEDY_REALLOC(v, 10), v);
}

static void test_greedy_realloc_overflow(void **state)
{
        _cleanup_free_ struct item *v = NULL;

        assert_non_null(GREEDY_REALLOC(v, 1));
        v[0].a = 7;
        assert_null(GREEDY_REALLOC(v, SIZE_MAX / 2));
        /* Failure leaves the array as it was. */
        assert_non_null(v);
        assert_int_equal(v[0].a, 7);
}

static void test_strdup_printf(void **state)
{
        _cleanup_free_ char *s = strdup_printf("%s/%d", "dir", 42);

        assert_string_equal(s, "dir/42");
}

static void test_strv(void **state)
{
        _cleanup_strv_ char **l = NULL;

        assert_int_equal(strv_length(l), 0);
        for (int i = 0; i < 100; i++) {
                char word[16];

                snprintf(word, sizeof(word), "w%d", i);
                assert_int_equal(strv_push(&l, word), 0);
        }
        assert_int_equal(strv_length(l), 100);
        assert_null(l[100]);
        assert_string_equal(l[99], "w99");
        assert_true(strv_contains(l, "w42"));
        assert_false(strv_contains(l, "w100"));
        assert_int_equal(strv_consume(&l, NULL), -ENOMEM);
        assert_int_equal(strv_length(l), 100);
}

static void test_take(void **state)
{
        _cleanup_free_ char *p = strdup("x");
        _cleanup_close_ int fd = 5;
        char *q = TAKE_PTR(p);
        struct item s = { 1, 2 }, t = TAKE_STRUCT(s);

        assert_null(p);
        assert_string_equal(q, "x");
        free(q);
        assert_int_equal(TAKE_FD(fd), 5);
        assert_int_equal(fd, -1);
        assert_true(s.a == 0 && s.b == 0 && t.a == 1 && t.b == 2);
}

static void test_format_local(void **state)
{
        char buf[TIMESPEC_LOCAL_MAX];

        setenv("TZ", "UTC", 1);
        assert_string_equal(timespec_format_local("2026-12-01T17:00:00Z", buf, sizeof(buf)), "2026-12-01 17:00:00");
        assert_string_equal(timespec_format_local("2026-12-01T17:00:00+01:00", buf, sizeof(buf)),
                            "2026-12-01 16:00:00");
        assert_string_equal(timespec_format_local("yesterday", buf, sizeof(buf)), "yesterday");
        assert_string_equal(timespec_format_local(NULL, buf, sizeof(buf)), "-");
}

/* The reference vectors of the SipHash paper: key 00..0f, messages 00..(len-1). */
static void test_siphash(void **state)
{
        const struct siphash_key key = { .k0 = 0x0706050403020100ULL, .k1 = 0x0f0e0d0c0b0a0908ULL };
        uint8_t msg[64];

        for (size_t i = 0; i < sizeof(msg); i++)
                msg[i] = (uint8_t)i;
        assert_true(siphash24(&key, msg, 0) == 0x726fdb47dd0e0e31ULL);
        assert_true(siphash24(&key, msg, 15) == 0xa129ca6149be45e5ULL);
        /* Every length is hashed apart, including a whole number of words. */
        assert_true(siphash24(&key, msg, 8) != siphash24(&key, msg, 16));
        assert_true(siphash24(&key, msg, 15) != siphash24(&(struct siphash_key){ 1, 2 }, msg, 15));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_greedy_realloc),
                cmocka_unit_test(test_greedy_realloc_overflow),
                cmocka_unit_test(test_strdup_printf),
                cmocka_unit_test(test_strv),
                cmocka_unit_test(test_take),
                cmocka_unit_test(test_format_local),
                cmocka_unit_test(test_siphash),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
