/* SPDX-License-Identifier: MIT */
/*
 * A reload's scan applied to the store (agent/store.c): the versions it
 * replaces or drops are freed, or handed to the caller (retired) while a
 * thread may still read them. The last good copies (agent/lastgood.c): saved
 * when a file loads, not rewritten while unchanged, used at start when a file
 * fails (or, for the policy in force, is gone), removed with a dropped policy.
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
#include <ftw.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "cleanup.h"
#include "fileio.h"
#include "lastgood.h"
#include "store.h"

struct fixture {
        char dir[64];
        char state[64];
        char lastgood[96];      /* state/last-good, created by the store */
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
        strcpy(f->state, "/tmp/ks-store-state.XXXXXX");
        assert_non_null(mkdtemp(f->state));
        snprintf(f->lastgood, sizeof(f->lastgood), "%s/last-good", f->state);
        assert_int_equal(store_load_dir(&f->store, f->dir, NULL, NULL, NULL), 0);
        assert_int_equal(f->store.n, 3);
        *state = f;
        return 0;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;

        store_clear(&f->store);
        nftw(f->dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
        nftw(f->state, remove_one, 8, FTW_DEPTH | FTW_PHYS);
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
        assert_int_equal(store_scan_dir(f->dir, &f->store, NULL, no_resolver, NULL, &scan), 0);
        assert_int_equal(store_apply_scan(&f->store, &scan, NULL, NULL, &failed, &retired), 0);
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
        assert_int_equal(store_scan_dir(f->dir, &f->store, NULL, no_resolver, NULL, &scan), 0);
        assert_int_equal(store_apply_scan(&f->store, &scan, "b", NULL, &failed, &retired), 0);
        store_scan_clear(&scan);
        assert_int_equal(failed, 1);
        assert_ptr_equal(store_get(&f->store, "b"), old_b);
        assert_int_equal(retired.n, 0);
        store_retired_clear(&retired);
}

/* The text of file `name` in dir (NULL if there is none). */
static char *slurp(const char *dir, const char *name)
{
        char path[160], *text = NULL;
        size_t len = 0;
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "re");
        if (!f)
                return NULL;
        assert_int_equal(getdelim(&text, &len, '\0', f) > 0, 1);
        fclose(f);
        return text;
}

static mode_t mode_of(const char *dir, const char *name)
{
        char path[160];
        struct stat st;

        snprintf(path, sizeof(path), "%s%s%s", dir, name ? "/" : "", name ? name : "");
        assert_int_equal(stat(path, &st), 0);
        return st.st_mode & 07777;
}

static ino_t inode_of(const char *dir, const char *name)
{
        char path[160];
        struct stat st;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        assert_int_equal(stat(path, &st), 0);
        return st.st_ino;
}

/* A fresh store, as at start: every file, keep, the copies in f->lastgood. */
static int load_fresh(struct fixture *f, const char *dir, const char *keep)
{
        store_clear(&f->store);
        return store_load_dir(&f->store, dir, keep, f->lastgood, NULL);
}

/* A reload on the fixture's store, copies saved and dropped as the agent's reload does. */
static void reload(struct fixture *f, const char *keep)
{
        struct store_scan scan = {};

        assert_int_equal(store_scan_dir(f->dir, &f->store, f->lastgood, no_resolver, NULL, &scan), 0);
        assert_int_equal(store_apply_scan(&f->store, &scan, keep, f->lastgood, NULL, NULL), 0);
        store_scan_clear(&scan);
}

static void break_file(struct fixture *f, const char *name)
{
        char file[64];

        snprintf(file, sizeof(file), "%s.policy", name);
        assert_int_equal(write_file_atomic(f->dir, file, "[Uplinks]\nInterface=wan0\n\n[Gateway relay]\n"
                                           "Address=192.0.2.9\nPort=tcp:25\n", 0600), 0);
}

/* Each file that loads leaves its exact text, root's only; an unchanged one is not rewritten. */
static void test_copies_saved(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *copy = NULL, *again = NULL;
        const char *edited = "# a comment changes the text, not the rules\n[Uplinks]\nInterface=wan0\n\n"
                             "[Gateway relay]\nAddress=192.0.2.1\nPorts=tcp:25\n";
        ino_t ino;

        assert_int_equal(load_fresh(f, f->dir, NULL), 0);
        assert_int_equal(mode_of(f->lastgood, NULL), 0700);
        for (const char *c = "abc"; *c; c++) {
                char name[16];
                _cleanup_free_ char *text = NULL, *saved = NULL;

                snprintf(name, sizeof(name), "%c.policy", *c);
                text = slurp(f->dir, name);
                saved = slurp(f->lastgood, name);
                assert_non_null(saved);
                assert_string_equal(saved, text);
                assert_int_equal(mode_of(f->lastgood, name), 0600);
        }
        ino = inode_of(f->lastgood, "a.policy");
        reload(f, NULL);
        assert_int_equal(inode_of(f->lastgood, "a.policy"), ino);        /* same text: not rewritten */
        assert_int_equal(write_file_atomic(f->dir, "a.policy", edited, 0600), 0);
        reload(f, NULL);
        copy = slurp(f->lastgood, "a.policy");
        assert_string_equal(copy, edited);
        /* A broken file leaves the copy alone. */
        break_file(f, "a");
        reload(f, NULL);
        again = slurp(f->lastgood, "a.policy");
        assert_string_equal(again, edited);
}

/* At start a broken file falls back to its copy; the entry keeps the file's errors. */
static void test_broken_falls_back(void **state)
{
        struct fixture *f = *state;
        const struct ks_policy_entry *e;

        assert_int_equal(load_fresh(f, f->dir, NULL), 0);
        break_file(f, "b");
        assert_int_equal(load_fresh(f, f->dir, NULL), 0);
        e = store_find(&f->store, "b");
        assert_non_null(e);
        assert_non_null(e->policy);
        assert_true(e->lastgood_usec > 0);
        assert_true(e->errors.n > 0);
        assert_non_null(strstr(e->errors.msgs[0], "b.policy:6:"));
        assert_int_equal(store_find(&f->store, "a")->lastgood_usec, 0);
        /* Fixed: the file's version again, no longer the copy's. */
        assert_int_equal(write_file_atomic(f->dir, "b.policy", policy_text("192.0.2.2"), 0600), 0);
        reload(f, NULL);
        e = store_find(&f->store, "b");
        assert_int_equal(e->lastgood_usec, 0);
        assert_int_equal(e->errors.n, 0);
        /* Without a copy a broken file has no version, as before. */
        break_file(f, "b");
        assert_int_equal(lastgood_remove(f->lastgood, "b"), 0);
        assert_int_equal(load_fresh(f, f->dir, NULL), 0);
        assert_null(store_get(&f->store, "b"));
}

/* The policy in force comes from its copy even without a file or a readable directory; others do not. */
static void test_keep_without_file(void **state)
{
        struct fixture *f = *state;
        const struct ks_policy_entry *e;
        char path[128], nodir[128];

        assert_int_equal(load_fresh(f, f->dir, NULL), 0);
        snprintf(path, sizeof(path), "%s/c.policy", f->dir);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(load_fresh(f, f->dir, "c"), 0);
        e = store_find(&f->store, "c");
        assert_non_null(e);
        assert_non_null(e->policy);
        assert_true(e->lastgood_usec > 0);
        assert_non_null(strstr(e->errors.msgs[0], "file is gone"));
        snprintf(nodir, sizeof(nodir), "%s/nowhere", f->dir);
        assert_int_equal(load_fresh(f, nodir, "a"), -ENOENT);
        assert_int_equal(f->store.n, 1);
        e = store_find(&f->store, "a");
        assert_non_null(e->policy);
        assert_non_null(strstr(e->errors.msgs[0], "cannot read the policy directory"));
        /* The default policy, on demand. */
        assert_int_equal(store_fall_back(&f->store, nodir, "b", f->lastgood, "gone"), 0);
        assert_non_null(store_get(&f->store, "b"));
        assert_int_equal(store_fall_back(&f->store, nodir, "zz", f->lastgood, "gone"), -ENOENT);
}

/* A file deleted: its copy goes with the policy, unless the policy stays in force. */
static void test_drop_removes_copy(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *b = NULL, *c = NULL;
        char path[128];

        assert_int_equal(load_fresh(f, f->dir, NULL), 0);
        snprintf(path, sizeof(path), "%s/b.policy", f->dir);
        assert_int_equal(unlink(path), 0);
        snprintf(path, sizeof(path), "%s/c.policy", f->dir);
        assert_int_equal(unlink(path), 0);
        reload(f, "c");
        b = slurp(f->lastgood, "b.policy");
        c = slurp(f->lastgood, "c.policy");
        assert_null(b);
        assert_non_null(c);
        assert_non_null(store_get(&f->store, "c"));
}

/*
 * A file deleted while the agent was down: the next start (the policy not in
 * force) forgets its copy, and a broken file of that name later has no version.
 */
static void test_start_prunes_copy(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *c = NULL, *a = NULL;
        char path[128];

        assert_int_equal(load_fresh(f, f->dir, NULL), 0);
        snprintf(path, sizeof(path), "%s/c.policy", f->dir);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(load_fresh(f, f->dir, NULL), 0);
        assert_null(store_find(&f->store, "c"));
        c = slurp(f->lastgood, "c.policy");
        assert_null(c);
        a = slurp(f->lastgood, "a.policy");
        assert_non_null(a);                             /* the others' copies stay */
        break_file(f, "c");
        assert_int_equal(load_fresh(f, f->dir, NULL), 0);
        assert_null(store_get(&f->store, "c"));
}

/* A policy built in memory (the built-in cut) goes into the store under its name. */
static void test_put(void **state)
{
        struct fixture *f = *state;
        struct ks_policy *p = NULL;
        struct ks_diags d = {};
        unsigned gen = 0;

        assert_int_equal(policy_parse_string("[Uplinks]\nInterface=wan0 wan1\n", "(built-in)", "builtin-cut", &p,
                                             &d), 0);
        assert_int_equal(store_put(&f->store, "builtin-cut", "(built-in)", p), 0);
        assert_int_equal(f->store.n, 4);
        assert_ptr_equal(store_get(&f->store, "builtin-cut"), p);
        gen = store_find(&f->store, "builtin-cut")->generation;
        assert_int_equal(policy_parse_string("[Uplinks]\nInterface=wan0\n", "(built-in)", "builtin-cut", &p, &d),
                         0);
        assert_int_equal(store_put(&f->store, "builtin-cut", "(built-in)", p), 0);
        assert_int_equal(f->store.n, 4);
        assert_true(store_find(&f->store, "builtin-cut")->generation > gen);
        /* In force, a reload keeps it without an error (it has no file to miss); then it goes. */
        reload(f, "builtin-cut");
        assert_ptr_equal(store_get(&f->store, "builtin-cut"), p);
        assert_int_equal(store_find(&f->store, "builtin-cut")->errors.n, 0);
        reload(f, NULL);
        assert_null(store_find(&f->store, "builtin-cut"));
        assert_int_equal(f->store.n, 3);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_retired, setup, teardown),
                cmocka_unit_test_setup_teardown(test_keep, setup, teardown),
                cmocka_unit_test_setup_teardown(test_copies_saved, setup, teardown),
                cmocka_unit_test_setup_teardown(test_broken_falls_back, setup, teardown),
                cmocka_unit_test_setup_teardown(test_keep_without_file, setup, teardown),
                cmocka_unit_test_setup_teardown(test_drop_removes_copy, setup, teardown),
                cmocka_unit_test_setup_teardown(test_start_prunes_copy, setup, teardown),
                cmocka_unit_test_setup_teardown(test_put, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
