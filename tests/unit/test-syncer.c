/* SPDX-License-Identifier: MIT */
/* fsync and replace off the event loop (agent/syncer.c): asked again while one runs, freed while one runs. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fileio.h"
#include "syncer.h"

struct fixture {
        char dir[64];
        char path[128];
        sd_event *event;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        strcpy(f->dir, "/tmp/ks-syncer-test.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->path, sizeof(f->path), "%s/file", f->dir);
        assert_int_equal(sd_event_new(&f->event), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;

        unlink(f->path);
        rmdir(f->dir);
        sd_event_unref(f->event);
        free(f);
        return 0;
}

/* Kicks while one runs, some loop turns in between, then freed with one maybe running and one asked for. */
static void test_kicks(void **state)
{
        struct fixture *f = *state;
        struct ks_syncer *s = NULL;

        assert_int_equal(syncer_new(f->event, f->dir, "file", "the test file", &s), 0);
        for (unsigned i = 0; i < 30; i++) {
                char text[32];

                snprintf(text, sizeof(text), "round %u\n", i);
                assert_int_equal(write_file_atomic(f->dir, "file", text, 0600), 0);
                syncer_kick(s, i % 2 == 0);
                syncer_kick(s, false);
                for (unsigned j = 0; j < i % 3; j++)
                        assert_true(sd_event_run(f->event, 1000) >= 0);
        }
        assert_null(syncer_free(s));
}

static char *file_text(const char *path)
{
        static char buf[64];
        FILE *fp = fopen(path, "re");
        size_t n;

        assert_non_null(fp);
        n = fread(buf, 1, sizeof(buf) - 1, fp);
        fclose(fp);
        buf[n] = '\0';
        return buf;
}

/*
 * Replacements: the file keeps its old text until the thread renames the new
 * one over it; asked for while one runs, the newest text is the one that
 * follows; freed with one asked for, that one is written first.
 */
static void test_replace(void **state)
{
        struct fixture *f = *state;
        struct ks_syncer *s = NULL;
        struct stat st;

        assert_int_equal(write_file_atomic(f->dir, "file", "old\n", 0600), 0);
        assert_int_equal(syncer_new(f->event, f->dir, "file", "the test file", &s), 0);
        syncer_replace(s, strdup("first\n"), 0600);
        syncer_replace(s, strdup("skipped\n"), 0600);
        syncer_replace(s, strdup("second\n"), 0640);
        for (unsigned j = 0; j < 20 && strcmp(file_text(f->path), "second\n") != 0; j++)
                assert_true(sd_event_run(f->event, 100000) >= 0);
        assert_string_equal(file_text(f->path), "second\n");
        assert_int_equal(stat(f->path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0640);      /* the mode asked with that text */
        syncer_replace(s, strdup("third\n"), 0600);
        syncer_replace(s, strdup("last\n"), 0600);
        assert_null(syncer_free(s));
        assert_string_equal(file_text(f->path), "last\n");
}

/* syncer_save(): the syncer is made on first use and kept; the file is replaced off the caller. */
static void test_save(void **state)
{
        struct fixture *f = *state;
        struct ks_syncer *s = NULL, *first;

        syncer_save(&s, f->event, f->dir, "file", "the test file", strdup("one\n"), 0640);
        assert_non_null(s);
        first = s;
        syncer_save(&s, f->event, f->dir, "file", "the test file", strdup("two\n"), 0640);
        assert_ptr_equal(s, first);
        for (unsigned j = 0; j < 20 && (access(f->path, F_OK) < 0 || strcmp(file_text(f->path), "two\n") != 0); j++)
                assert_true(sd_event_run(f->event, 100000) >= 0);
        assert_string_equal(file_text(f->path), "two\n");
        assert_null(syncer_free(s));
}

/* A file that is gone: the fsync fails, is logged, and nothing else happens. */
static void test_missing_file(void **state)
{
        struct fixture *f = *state;
        struct ks_syncer *s = NULL;

        assert_int_equal(syncer_new(f->event, f->dir, "file", "the missing file", &s), 0);
        syncer_kick(s, true);
        syncer_kick(s, true);
        for (unsigned j = 0; j < 5; j++)
                assert_true(sd_event_run(f->event, 10000) >= 0);
        assert_null(syncer_free(s));
        assert_null(syncer_free(NULL));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_kicks, setup, teardown),
                cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
                cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
                cmocka_unit_test_setup_teardown(test_save, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
