/* SPDX-License-Identifier: MIT */
/*
 * The INI tokenizer shared by policies and killswitch.conf (agent/ini.c), on a
 * format of its own: comments, blanks, headers, key tables, the messages and
 * their hints, the problem cap, the file reader's limits.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "cleanup.h"
#include "ini.h"

/* What the format below reads into: a [Box] and any number of [Item NAME]. */
struct item {
        char name[16];
        bool on;
        int words;
        unsigned line;
};

struct sink {
        bool box_on;
        char box_text[64];
        struct item items[8];
        size_t n_items;
        char log[256];          /* begin/end calls, in order */
};

static void logf_(struct sink *s, const char *what)
{
        strncat(s->log, what, sizeof(s->log) - strlen(s->log) - 1);
}

static int parse_text(struct ini *ini, const char *key, int ltype, char *value, void *data)
{
        snprintf(data, 64, "%s", value);
        return 0;
}

static int parse_words(struct ini *ini, const char *key, int ltype, char *value, void *data)
{
        while (ini_next_word(&value))
                (*(int *)data)++;
        return 0;
}

static int begin_box(struct ini *ini, const char *name, void **ret_object)
{
        struct sink *s = ini->userdata;

        logf_(s, "B");
        *ret_object = s;
        return 0;
}

static int begin_item(struct ini *ini, const char *name, void **ret_object)
{
        struct sink *s = ini->userdata;
        struct item *it;

        logf_(s, "I");
        if (!name)
                name = "alias";
        if (strcmp(name, "bad") == 0)
                return ini_error(ini, ini->line, "[Item %s]: a bad name", name);  /* keys skipped */
        it = &s->items[s->n_items++];
        snprintf(it->name, sizeof(it->name), "%s", name);
        it->line = ini->line;
        *ret_object = it;
        return 0;
}

static int end_item(struct ini *ini, void *object)
{
        logf_(ini->userdata, object ? "e" : "x");
        return object ? ini_require_key(ini, "On", "On=yes") : 0;
}

static const struct ini_section ini_test_sections[] = {
        { .name = "Box",   .flags = INI_SECTION_ONCE,  .begin = begin_box },
        { .name = "Item",  .flags = INI_SECTION_NAMED, .begin = begin_item, .end = end_item },
        { .name = "Alias", .keys = "Item",             .begin = begin_item, .end = end_item },
        {}
};

static const struct ini_key ini_test_keys[] = {
        { "Box",  "On",    ini_parse_bool, 0, offsetof(struct sink, box_on),    INI_KEY_ONCE },
        { "Box",  "Text",  parse_text,     0, offsetof(struct sink, box_text),  0 },
        { "Item", "On",    ini_parse_bool, 0, offsetof(struct item, on),        INI_KEY_ONCE },
        { "Item", "Words", parse_words,    0, offsetof(struct item, words),     0 },
        {}
};

static const struct ini_format ini_test_format = {
        .what = "a test file",
        .sections = ini_test_sections,
        .keys = ini_test_keys,
};

/* Parse text; the problems, one a line, into want (compared by the caller). */
static unsigned parse(const char *text, struct sink *s, char **ret_problems)
{
        struct ks_diags d = {};
        struct ini ini = INI_INIT(&ini_test_format, "t.ini", &d, s);
        size_t size = 0;
        FILE *f;

        memset(s, 0, sizeof(*s));
        assert_int_equal(ini_parse(&ini, text), 0);
        f = open_memstream(ret_problems, &size);
        assert_non_null(f);
        for (size_t i = 0; i < d.n; i++)
                fprintf(f, "%s\n", d.msgs[i]);
        fclose(f);
        diags_clear(&d);
        return ini.n_errors;
}

static void parse_expect(const char *text, struct sink *s, const char *want)
{
        _cleanup_free_ char *got = NULL;

        parse(text, s, &got);
        assert_string_equal(got, want);
}

static void test_comments_and_blanks(void **state)
{
        struct sink s;

        parse_expect("# comment\n"
                     "; comment\n"
                     "  \t# indented\n"
                     "\t; indented\n"
                     "[ Box ]   # after a header\r\n"
                     " Text =  keep#this and ; this\t# not this\r\n"
                     "\v\fOn=yes\f\n", &s, "");
        assert_string_equal(s.box_text, "keep#this and ; this");
        assert_true(s.box_on);

        /* ';' is a comment only at the start of a line. */
        parse_expect("[Box] ; no\n", &s, "t.ini:1: [Box] ; no: section header must end with \"]\"\n");
}

static void test_headers(void **state)
{
        struct sink s;

        parse_expect("[Item\ta]\nOn=1\n[Item   b ]\nOn=0\nWords=x y\tz\n", &s, "");
        assert_int_equal(s.n_items, 2);
        assert_string_equal(s.items[0].name, "a");
        assert_string_equal(s.items[1].name, "b");
        assert_int_equal(s.items[1].words, 3);
        assert_string_equal(s.log, "IeIe");

        parse_expect("[Box\n"
                     "[box]\n"
                     "[Boxes x]\n"
                     "[]\n"
                     "[Item]\n"
                     "[Box x]\n"
                     "[Item bad]\n"
                     "Junk\n"
                     "On=maybe\n", &s,
                     "t.ini:1: [Box: section header must end with \"]\"\n"
                     "t.ini:2: unknown section [box]; expected [Box], [Item NAME] or [Alias]\n"
                     "t.ini:3: unknown section [Boxes x]; expected [Box], [Item NAME] or [Alias]\n"
                     "t.ini:4: unknown section []; expected [Box], [Item NAME] or [Alias]\n"
                     "t.ini:5: [Item] needs a name: [Item NAME]\n"
                     "t.ini:6: [Box] takes no name; remove \"x\"\n"
                     "t.ini:7: [Item bad]: a bad name\n");
        /* Only the sections that began end. */
        assert_string_equal(s.log, "Ix");
}

static void test_keys(void **state)
{
        struct sink s;

        parse_expect("On=yes\n"
                     "[Box]\n"
                     "On=yes\n"
                     "On=no\n"
                     "Nope=1\n"
                     "Text=\n"
                     "=x\n"
                     "just words\n"
                     "[Item a]\n"
                     "On=yes\n"
                     "[Item b]\n"
                     "On=yes\n"
                     "Text=x\n"
                     "[Box]\n"
                     "On=no\n"
                     "[Alias]\n"
                     "On=t\n"
                     "Size=2\n", &s,
                     "t.ini:1: On= outside a section; put it under [Box], [Item NAME] or [Alias]\n"
                     "t.ini:4: On= given twice (first on line 3)\n"
                     "t.ini:5: unknown key \"Nope\" in [Box]; expected On= or Text=\n"
                     "t.ini:6: Text= has an empty value\n"
                     "t.ini:7: missing key before \"=\"; expected KEY=VALUE\n"
                     "t.ini:8: \"just words\": line without \"=\"; expected KEY=VALUE\n"
                     "t.ini:13: unknown key \"Text\" in [Item b]; expected On= or Words=\n"
                     "t.ini:14: duplicate [Box] section (first on line 2); a test file has one\n"
                     "t.ini:15: On= given twice (first on line 3)\n"
                     "t.ini:18: unknown key \"Size\" in [Alias]; expected On= or Words=\n");
        /* Once per section: each [Item] and the [Alias] sharing its keys has its own On=. */
        assert_int_equal(s.n_items, 3);
        assert_true(s.items[0].on && s.items[1].on && s.items[2].on);
        assert_true(s.box_on);
}

static void test_required_and_lines(void **state)
{
        struct sink s;

        parse_expect("[Item a]\nWords=x\n\n[Item b]\nOn=bogus\n[Item c]\n", &s,
                     "t.ini:1: [Item a] needs On=, e.g. On=yes\n"
                     "t.ini:5: On: \"bogus\": not a boolean; use yes or no\n"
                     "t.ini:6: [Item c] needs On=, e.g. On=yes\n");
        /* No newline at the end, CRLF, an empty text. */
        parse_expect("[Box]\r\nOn=off", &s, "");
        parse_expect("", &s, "");
}

static void test_cap(void **state)
{
        _cleanup_free_ char *text = NULL, *got = NULL;
        size_t n = 3000;

        text = calloc(n, 4);
        assert_non_null(text);
        for (size_t i = 0; i < n; i++)
                strcat(text, "x=\n");
        {
                struct sink s;

                assert_int_equal(parse(text, &s, &got), n);
        }
        assert_non_null(strstr(got, "t.ini:20: x= outside a section"));
        assert_null(strstr(got, "t.ini:21:"));
        assert_non_null(strstr(got, "t.ini: ... and 2980 more problems; fix the ones above first (is this the right "
                                "file?)\n"));
}

static void test_booleans(void **state)
{
        static const char *const yes[] = { "1", "yes", "Y", "true", "T", "on", "YES" };
        static const char *const no[] = { "0", "no", "N", "false", "f", "OFF" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                assert_int_equal(ini_boolean(yes[i]), 1);
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                assert_int_equal(ini_boolean(no[i]), 0);
        assert_int_equal(ini_boolean("2"), -EINVAL);
        assert_int_equal(ini_boolean(""), -EINVAL);
        assert_int_equal(ini_boolean("yes no"), -EINVAL);
}

static char *write_file(const char *dir, const char *name, const char *data, size_t len)
{
        char *path;
        int fd;

        assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, len), (ssize_t)len);
        close(fd);
        return path;
}

static void test_read_file(void **state)
{
        char dir[] = "/tmp/test-ini.XXXXXX";
        _cleanup_free_ char *good = NULL, *nul = NULL, *big = NULL, *missing = NULL;
        struct ks_diags d = {};
        char *text = NULL;
        int fd;

        assert_non_null(mkdtemp(dir));
        good = write_file(dir, "good", "[Box]\n", 6);
        nul = write_file(dir, "nul", "[Box]\0", 6);
        big = write_file(dir, "big", "", 0);
        assert_true(asprintf(&missing, "%s/missing", dir) > 0);
        fd = open(big, O_WRONLY | O_CLOEXEC);
        assert_int_equal(ftruncate(fd, INI_FILE_MAX + 1), 0);
        close(fd);

        assert_int_equal(ini_read_file(good, 0, &text, &d), 0);
        assert_string_equal(text, "[Box]\n");
        free(text);
        text = NULL;
        assert_int_equal(ini_read_file(missing, INI_READ_MISSING_OK, &text, &d), -ENOENT);
        assert_int_equal(d.n, 0);
        assert_int_equal(ini_read_file(missing, 0, &text, &d), -ENOENT);
        assert_int_equal(ini_read_file(nul, 0, &text, &d), -EINVAL);
        assert_int_equal(ini_read_file(big, 0, &text, &d), -EFBIG);
        assert_null(text);
        assert_int_equal(d.n, 3);
        assert_non_null(strstr(d.msgs[0], "/missing: cannot open: No such file or directory"));
        assert_non_null(strstr(d.msgs[1], "/nul: contains a NUL byte; it must be a text file"));
        assert_non_null(strstr(d.msgs[2], "/big: larger than 64 MiB"));
        diags_clear(&d);
        unlink(good);
        unlink(nul);
        unlink(big);
        rmdir(dir);
}

/* A FIFO (or a directory) named like a policy: refused at once, never waited on for a writer. */
static void test_read_not_regular(void **state)
{
        char dir[] = "/tmp/test-ini.XXXXXX";
        _cleanup_free_ char *fifo = NULL, *sub = NULL;
        struct ks_diags d = {};
        char *text = NULL;

        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&fifo, "%s/pipe.policy", dir) > 0);
        assert_true(asprintf(&sub, "%s/dir.policy", dir) > 0);
        assert_int_equal(mkfifo(fifo, 0600), 0);
        assert_int_equal(mkdir(sub, 0700), 0);
        /* Without a writer, a blocking open() would never return: the test would hang, not fail. */
        alarm(10);
        assert_int_equal(ini_read_file(fifo, 0, &text, &d), -EINVAL);
        assert_int_equal(ini_read_file(sub, 0, &text, &d), -EINVAL);
        alarm(0);
        assert_null(text);
        assert_int_equal(d.n, 2);
        assert_non_null(strstr(d.msgs[0], "/pipe.policy: not a regular file (a FIFO); only regular text files are "
                                          "read: remove it or move it out of the directory"));
        assert_non_null(strstr(d.msgs[1], "/dir.policy: not a regular file (a directory)"));
        diags_clear(&d);
        unlink(fifo);
        rmdir(sub);
        rmdir(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_comments_and_blanks),
                cmocka_unit_test(test_headers),
                cmocka_unit_test(test_keys),
                cmocka_unit_test(test_required_and_lines),
                cmocka_unit_test(test_cap),
                cmocka_unit_test(test_booleans),
                cmocka_unit_test(test_read_file),
                cmocka_unit_test(test_read_not_regular),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
