/* SPDX-License-Identifier: MIT */
/*
 * A reload's scan applied to the store (agent/store.c): the versions it
 * replaces or drops are freed, or handed to the caller (retired) while a
 * thread may still read them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fileio.h"
#include "store.h"

struct fixture {
        char dir[64];
        struct ks_store store;
};

static const char *policy_text(const char *address)
{
        static char buf[256];

        snprintf(buf, sizeof(buf), "[Uplinks]\nInterface=wan0\n\n[Gateway relay]\nAddress=%s\nPorts=tcp:25\n",
                 address);
        return buf;
}

/* No policy here names a host: a resolver that is called fails the test. */
static int no_resolver(const char *name, struct ks_prefix **ret, size_t *ret_n, char **ret_error, void *userdata)
{
        fail_msg("resolver called for %s", name);
        return -EINVAL;
}

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        strcpy(f->dir, "/tmp/ks-store-test.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        assert_int_equal(write_file_atomic(f->dir, "a.policy", policy_text("192.0.2.1"), 0600), 0);
        assert_int_equal(write_file_atomic(f->dir, "b.policy", policy_text("192.0.2.2"), 0600), 0);
        assert_int_equal(write_file_atomic(f->dir, "c.policy", policy_text("192.0.2.3"), 0600), 0);
        assert_int_equal(store_load_dir(&f->store, f->dir, NULL, NULL), 0);
        assert_int_equal(f->store.n, 3);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        char path[128];

        store_clear(&f->store);
        for (const char *c = "abc"; *c; c++) {
                snprintf(path, sizeof(path), "%s/%c.policy", f->dir, *c);
                unlink(path);
        }
        rmdir(f->dir);
        free(f);
        return 0;
}

/* a changed, b gone, c unchanged: a's old version and b's are retired, c's stays in the store. */
static void test_retired(void **state)
{
        struct fixture *f = *state;
        const struct ks_policy *old_a = store_get(&f->store, "a"), *old_b = store_get(&f->store, "b");
        const struct ks_policy *old_c = store_get(&f->store, "c");
        struct store_retired retired = {};
        struct store_scan scan = {};
        char path[128];
        size_t failed = 99;

        assert_int_equal(write_file_atomic(f->dir, "a.policy", policy_text("192.0.2.11"), 0600), 0);
        snprintf(path, sizeof(path), "%s/b.policy", f->dir);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(store_scan_dir(f->dir, &f->store, no_resolver, NULL, &scan), 0);
        assert_int_equal(store_apply_scan(&f->store, &scan, NULL, &failed, &retired), 0);
        store_scan_clear(&scan);
        assert_int_equal(failed, 0);
        assert_int_equal(f->store.n, 2);
        assert_non_null(store_get(&f->store, "a"));
        assert_ptr_not_equal(store_get(&f->store, "a"), old_a);
        assert_null(store_get(&f->store, "b"));
        assert_ptr_equal(store_get(&f->store, "c"), old_c);
        assert_int_equal(retired.n, 2);
        assert_true((retired.v[0] == old_a && retired.v[1] == old_b) ||
                    (retired.v[0] == old_b && retired.v[1] == old_a));
        store_retired_clear(&retired);
        assert_int_equal(retired.n, 0);
        assert_null(retired.v);
}

/* The policy in force stays when its file is gone: nothing of it is retired. */
static void test_keep(void **state)
{
        struct fixture *f = *state;
        const struct ks_policy *old_b = store_get(&f->store, "b");
        struct store_retired retired = {};
        struct store_scan scan = {};
        char path[128];
        size_t failed = 0;

        snprintf(path, sizeof(path), "%s/b.policy", f->dir);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(store_scan_dir(f->dir, &f->store, no_resolver, NULL, &scan), 0);
        assert_int_equal(store_apply_scan(&f->store, &scan, "b", &failed, &retired), 0);
        store_scan_clear(&scan);
        assert_int_equal(failed, 1);
        assert_ptr_equal(store_get(&f->store, "b"), old_b);
        assert_int_equal(retired.n, 0);
        store_retired_clear(&retired);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_retired, setup, teardown),
                cmocka_unit_test_setup_teardown(test_keep, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
