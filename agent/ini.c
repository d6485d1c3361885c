/* SPDX-License-Identifier: MIT */
/*
 * The INI tokenizer of policies and killswitch.conf (ini.h).
 *
 * Hand-written rather than libinih: a diagnostic must carry the line it is
 * about, and values may end in a "# comment", neither of which inih gives us.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1   /* asprintf, vasprintf, open_memstream */
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "cleanup.h"
#include "ini.h"

void diags_clear(struct ks_diags *d)
{
        if (!d)
                return;
        for (size_t i = 0; i < d->n; i++)
                free(d->msgs[i]);
        free(d->msgs);
        d->msgs = NULL;
        d->n = 0;
}

static int diags_addv(struct ks_diags *d, const char *file, unsigned line, const char *fmt, va_list ap)
        __attribute__((format(printf, 4, 0)));
static int diags_addv(struct ks_diags *d, const char *file, unsigned line, const char *fmt, va_list ap)
{
        _cleanup_free_ char *msg = NULL;
        char *s, **m;
        int r;

        if (!d)
                return 0;
        if (vasprintf(&msg, fmt, ap) < 0)
                return -ENOMEM;
        if (line > 0)
                r = asprintf(&s, "%s:%u: %s", file, line, msg);
        else
                r = asprintf(&s, "%s: %s", file, msg);
        if (r < 0)
                return -ENOMEM;
        m = GREEDY_REALLOC(d->msgs, d->n + 1);
        if (!m) {
                free(s);
                return -ENOMEM;
        }
        m[d->n++] = s;
        return 0;
}

int diags_add(struct ks_diags *d, const char *file, unsigned line, const char *fmt, ...)
{
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = diags_addv(d, file, line, fmt, ap);
        va_end(ap);
        return r;
}

int ini_error(struct ini *ini, unsigned line, const char *fmt, ...)
{
        va_list ap;
        int r;

        ini->n_errors++;
        ini->section_errors++;
        if (ini->n_errors > INI_DIAGS_MAX)
                return 0;       /* counted: ini_parse() says how many more */
        va_start(ap, fmt);
        r = diags_addv(ini->diags, ini->file, line, fmt, ap);
        va_end(ap);
        return r;
}

/* After the first INI_DIAGS_MAX: how many more there were. */
static int report_rest(struct ini *ini)
{
        unsigned n = ini->n_errors - INI_DIAGS_MAX;

        if (ini->n_errors <= INI_DIAGS_MAX)
                return 0;
        return diags_add(ini->diags, ini->file, 0, "... and %u more problem%s; fix the ones above first (is this "
                         "the right file?)", n, n == 1 ? "" : "s");
}

/*
 * A piece of a line for a message, cut after INI_QUOTE_MAX bytes (at a
 * character's start): a file that is no policy at all (a link to a file of
 * secrets) must not come back whole in the errors that every user can read.
 */
const char *ini_quote(const char *s, char *buf, size_t size)
{
        size_t n = strlen(s);

        if (n <= INI_QUOTE_MAX || size < INI_QUOTE_MAX + sizeof("..."))
                return s;
        n = INI_QUOTE_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
                n--;
        snprintf(buf, size, "%.*s...", (int)n, s);
        return buf;
}

/* ---- Words ------------------------------------------------------------- */

static bool is_blank(char c)
{
        return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static char *strip(char *s)
{
        size_t n;

        while (is_blank(*s))
                s++;
        n = strlen(s);
        while (n > 0 && is_blank(s[n - 1]))
                s[--n] = '\0';
        return s;
}

/* An inline comment starts at a '#' that follows a blank. */
static void cut_inline_comment(char *s)
{
        for (size_t i = 1; s[i]; i++)
                if (s[i] == '#' && is_blank(s[i - 1])) {
                        s[i] = '\0';
                        return;
                }
}

char *ini_next_word(char **s)
{
        char *w = *s;

        while (is_blank(*w))
                w++;
        if (*w == '\0')
                return NULL;
        *s = w;
        while (**s && !is_blank(**s))
                (*s)++;
        if (**s)
                *(*s)++ = '\0';
        return w;
}

int ini_boolean(const char *v)
{
        static const char *const yes[] = { "1", "yes", "y", "true", "t", "on" };
        static const char *const no[] = { "0", "no", "n", "false", "f", "off" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (strcasecmp(v, yes[i]) == 0)
                        return 1;
                if (strcasecmp(v, no[i]) == 0)
                        return 0;
        }
        return -EINVAL;
}

int ini_parse_bool(struct ini *ini, const char *key, int ltype, char *value, void *data)
{
        int b = ini_boolean(value);

        if (b < 0)
                return ini_error(ini, ini->line, "%s: \"%s\": not a boolean; use yes or no", key, value);
        *(bool *)data = b;
        return 0;
}

/* ---- Tables ------------------------------------------------------------ */

static const char *section_keys(const struct ini_section *s)
{
        return s->keys ? s->keys : s->name;
}

static size_t n_sections(const struct ini_format *f)
{
        size_t n = 0;

        while (f->sections[n].name)
                n++;
        return n;
}

static size_t n_keys(const struct ini_format *f)
{
        size_t n = 0;

        while (f->keys[n].key)
                n++;
        return n;
}

/* The section named by the n bytes at name. */
static const struct ini_section *section_find(const struct ini_format *f, const char *name, size_t n)
{
        for (const struct ini_section *s = f->sections; s->name; s++)
                if (strlen(s->name) == n && strncmp(s->name, name, n) == 0)
                        return s;
        return NULL;
}

static const struct ini_key *key_find(const struct ini_format *f, const char *group, const char *key)
{
        for (const struct ini_key *k = f->keys; k->key; k++)
                if (strcmp(k->section, group) == 0 && strcmp(k->key, key) == 0)
                        return k;
        return NULL;
}

/* The separator before item i of n in a hint: "A, B or C". */
static const char *hint_sep(size_t i, size_t n)
{
        return i == 0 ? "" : i + 1 == n ? " or " : ", ";
}

/* Close the memstream of *s: the text, or NULL. */
static char *hint_close(FILE *f, char **s)
{
        if (fclose(f) != 0) {
                free(*s);
                return NULL;
        }
        return *s;
}

/* "[Policy], [Uplinks] or [Gateway NAME]": the sections of the format. */
static char *hint_sections(const struct ini_format *fmt)
{
        size_t size = 0, n = n_sections(fmt);
        char *s = NULL;
        FILE *f = open_memstream(&s, &size);

        if (!f)
                return NULL;
        for (size_t i = 0; i < n; i++)
                fprintf(f, "%s[%s%s]", hint_sep(i, n), fmt->sections[i].name,
                        fmt->sections[i].flags & INI_SECTION_NAMED ? " NAME" : "");
        return hint_close(f, &s);
}

/* "Address=, Ports= or Ping=": the keys of a section. */
static char *hint_keys(const struct ini_format *fmt, const char *group)
{
        size_t size = 0, n = 0, i = 0;
        char *s = NULL;
        FILE *f;

        for (const struct ini_key *k = fmt->keys; k->key; k++)
                n += strcmp(k->section, group) == 0;
        f = open_memstream(&s, &size);
        if (!f)
                return NULL;
        for (const struct ini_key *k = fmt->keys; k->key; k++)
                if (strcmp(k->section, group) == 0)
                        fprintf(f, "%s%s=", hint_sep(i++, n), k->key);
        return hint_close(f, &s);
}

/* ---- Sections ---------------------------------------------------------- */

static int section_end(struct ini *ini)
{
        int r = 0;

        if (ini->begun && ini->section->end)
                r = ini->section->end(ini, ini->object);
        ini->begun = false;
        ini->section = NULL;
        ini->name = NULL;
        ini->object = NULL;
        ini->section_errors = 0;
        return r;
}

/* Whether a section's name fits its row; reported if not. 1: yes; 0: no. */
static int section_name_fits(struct ini *ini, const struct ini_section *s, const char *name)
{
        int r;

        if ((s->flags & INI_SECTION_NAMED) && *name == '\0')
                r = ini_error(ini, ini->line, "[%s] needs a name: [%s NAME]", s->name, s->name);
        else if (!(s->flags & INI_SECTION_NAMED) && *name != '\0')
                r = ini_error(ini, ini->line, "[%s] takes no name; remove \"%s\"", s->name, name);
        else
                return 1;
        return r < 0 ? r : 0;
}

static int section_begin(struct ini *ini, const struct ini_section *s, char *name)
{
        unsigned *first = &ini->section_first[2 * (size_t)(s - ini->format->sections)];
        int r;

        r = section_name_fits(ini, s, name);
        if (r <= 0)
                return r;
        ini->section = s;
        ini->section_line = ini->line;
        ini->name = (s->flags & INI_SECTION_NAMED) ? name : NULL;
        if ((s->flags & INI_SECTION_ONCE) && first[0] > 0) {
                /* The same section again: keys given twice are reported as such. */
                ini->instance = first[1];
                r = ini_error(ini, ini->line, "duplicate [%s] section (first on line %u); %s has one",
                              s->name, first[0], ini->format->what);
                if (r < 0)
                        return r;
        } else {
                ini->instance = ini->instances++;
                first[0] = ini->line;
                first[1] = ini->instance;
        }
        ini->begun = true;
        return s->begin(ini, ini->name, &ini->object);
}

static int parse_header(struct ini *ini, char *l)
{
        _cleanup_free_ char *hint = NULL;
        const struct ini_section *s;
        size_t n = strlen(l), word;
        char q[INI_QUOTE_SIZE];
        char *inner;
        int r;

        ini->headed = true;
        if (n < 2 || l[n - 1] != ']') {
                /* Still in the section before: for killswitch.conf, that one is broken. */
                r = ini_error(ini, ini->line, "%s: section header must end with \"]\"",
                              ini_quote(l, q, sizeof(q)));
                if (r < 0)
                        return r;
                return section_end(ini);
        }
        r = section_end(ini);
        if (r < 0)
                return r;
        l[n - 1] = '\0';
        inner = strip(l + 1);
        word = strcspn(inner, " \t\r\v\f");
        s = section_find(ini->format, inner, word);
        if (!s) {
                hint = hint_sections(ini->format);
                if (!hint)
                        return -ENOMEM;
                return ini_error(ini, ini->line, "unknown section [%s]; expected %s",
                                 ini_quote(inner, q, sizeof(q)), hint);
        }
        return section_begin(ini, s, strip(inner + word));
}

/* KEY=VALUE in the current section. */
static int parse_assignment(struct ini *ini, const char *key, char *value)
{
        _cleanup_free_ char *hint = NULL;
        const struct ini_key *k;
        char q[INI_QUOTE_SIZE];
        unsigned *seen;
        int r;

        if (!ini->headed) {
                hint = hint_sections(ini->format);
                if (!hint)
                        return -ENOMEM;
                return ini_error(ini, ini->line, "%s= outside a section; put it under %s",
                                 ini_quote(key, q, sizeof(q)), hint);
        }
        if (!ini->object)
                return 0;
        k = key_find(ini->format, section_keys(ini->section), key);
        if (!k) {
                hint = hint_keys(ini->format, section_keys(ini->section));
                if (!hint)
                        return -ENOMEM;
                return ini_error(ini, ini->line, "unknown key \"%s\" in [%s%s%s]; expected %s",
                                 ini_quote(key, q, sizeof(q)),
                                 ini->section->name, ini->name ? " " : "", ini->name ? ini->name : "", hint);
        }
        if (*value == '\0')
                return ini_error(ini, ini->line, "%s= has an empty value", key);
        seen = &ini->key_seen[2 * (size_t)(k - ini->format->keys)];
        if (seen[0] == ini->instance && (k->flags & INI_KEY_ONCE))
                return ini_error(ini, ini->line, "%s= given twice (first on line %u)", key, seen[1]);
        if (seen[0] != ini->instance) {
                seen[0] = ini->instance;
                seen[1] = ini->line;
        }
        r = k->parse(ini, k->key, k->ltype, value, (char *)ini->object + k->offset);
        return r < 0 ? r : 0;
}

static int parse_line(struct ini *ini, char *l)
{
        char q[INI_QUOTE_SIZE];
        char *eq, *key;

        l = strip(l);
        if (*l == '\0' || *l == '#' || *l == ';')
                return 0;
        cut_inline_comment(l);
        l = strip(l);
        if (*l == '[')
                return parse_header(ini, l);
        eq = strchr(l, '=');
        if (!eq) {
                if (ini->headed && !ini->object)
                        return 0;
                return ini_error(ini, ini->line, "\"%s\": line without \"=\"; expected KEY=VALUE",
                                 ini_quote(l, q, sizeof(q)));
        }
        *eq = '\0';
        key = strip(l);
        if (*key == '\0')
                return ini_error(ini, ini->line, "missing key before \"=\"; expected KEY=VALUE");
        return parse_assignment(ini, key, strip(eq + 1));
}

static int parse_text(struct ini *ini, char *text)
{
        char *l = text, *nl;
        int r;

        for (ini->line = 1; l; ini->line++) {
                nl = strchr(l, '\n');
                if (nl)
                        *nl = '\0';
                r = parse_line(ini, l);
                if (r < 0)
                        return r;
                l = nl ? nl + 1 : NULL;
        }
        ini->line--;
        r = section_end(ini);
        if (r >= 0 && ini->format->finish)
                r = ini->format->finish(ini);
        return r < 0 ? r : report_rest(ini);
}

int ini_parse(struct ini *ini, const char *text)
{
        _cleanup_free_ unsigned *section_first = NULL, *key_seen = NULL;
        _cleanup_free_ char *copy = NULL;
        int r;

        if (!ini || !ini->format || !ini->file || !text)
                return -EINVAL;
        copy = strdup(text);
        section_first = calloc(2 * n_sections(ini->format) + 1, sizeof(unsigned));
        key_seen = calloc(2 * n_keys(ini->format) + 1, sizeof(unsigned));
        if (!copy || !section_first || !key_seen)
                return -ENOMEM;
        ini->section_first = section_first;
        ini->key_seen = key_seen;
        ini->instances = 1;
        r = parse_text(ini, copy);
        ini->section_first = ini->key_seen = NULL;
        ini->section = NULL;
        ini->begun = false;
        return r;
}

unsigned ini_key_line(const struct ini *ini, const char *key)
{
        const struct ini_key *k;
        const unsigned *seen;

        if (!ini->section || !ini->key_seen)
                return 0;
        k = key_find(ini->format, section_keys(ini->section), key);
        if (!k)
                return 0;
        seen = &ini->key_seen[2 * (size_t)(k - ini->format->keys)];
        return seen[0] == ini->instance ? seen[1] : 0;
}

int ini_require_key(struct ini *ini, const char *key, const char *example)
{
        if (ini->section_errors > 0 || ini_key_line(ini, key) > 0)
                return 0;
        return ini_error(ini, ini->section_line, "[%s%s%s] needs %s=%s%s", ini->section->name,
                         ini->name ? " " : "", ini->name ? ini->name : "", key,
                         example ? ", e.g. " : "", example ? example : "");
}

/* ---- Files ------------------------------------------------------------- */

static int read_all(int fd, char **ret, size_t *ret_len)
{
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap = 0;
        ssize_t n;

        for (;;) {
                if (cap - len < 4096) {
                        char *b;

                        if (cap >= INI_FILE_MAX)
                                return -EFBIG;
                        cap = cap ? cap * 2 : 16384;
                        b = realloc(buf, cap + 1);
                        if (!b)
                                return -ENOMEM;
                        buf = b;
                }
                n = read(fd, buf + len, cap - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        buf[len] = '\0';
        *ret_len = len;
        *ret = TAKE_PTR(buf);
        return 0;
}

static const char *file_type(mode_t mode)
{
        return S_ISDIR(mode) ? "a directory" : S_ISFIFO(mode) ? "a FIFO" : S_ISSOCK(mode) ? "a socket" :
               S_ISCHR(mode) ? "a character device" : S_ISBLK(mode) ? "a block device" : "not a file";
}

/* Only a regular file is read (then blocking again): a FIFO or a device could block the reader forever. */
static int regular_file(int fd, const char *path, struct ks_diags *diags)
{
        struct stat st;
        int flags, r;

        if (fstat(fd, &st) < 0)
                goto fail;
        if (!S_ISREG(st.st_mode))
                return diags_add(diags, path, 0, "not a regular file (%s); only regular text files are read: "
                                 "remove it or move it out of the directory", file_type(st.st_mode)) < 0 ?
                       -ENOMEM : -EINVAL;
        flags = fcntl(fd, F_GETFL);
        if (flags >= 0 && fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) >= 0)
                return 0;
fail:
        r = -errno;
        return diags_add(diags, path, 0, "cannot read: %s", strerror(-r)) < 0 ? -ENOMEM : r;
}

int ini_read_file(const char *path, unsigned flags, char **ret, struct ks_diags *diags)
{
        _cleanup_free_ char *text = NULL;
        _cleanup_close_ int fd = -1;
        size_t len = 0;
        int r;

        /* O_NONBLOCK: opening a FIFO must not wait for a writer (the agent would hang at start). */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                r = -errno;
                if (r == -ENOENT && (flags & INI_READ_MISSING_OK))
                        return r;
                return diags_add(diags, path, 0, "cannot open: %s", strerror(-r)) < 0 ? -ENOMEM : r;
        }
        r = regular_file(fd, path, diags);
        if (r < 0)
                return r;
        r = read_all(fd, &text, &len);
        if (r == -EFBIG)
                return diags_add(diags, path, 0, "larger than %u MiB; is this the right file?",
                                 INI_FILE_MAX >> 20) < 0 ? -ENOMEM : r;
        if (r < 0)
                return diags_add(diags, path, 0, "cannot read: %s", strerror(-r)) < 0 ? -ENOMEM : r;
        if (strlen(text) != len)
                return diags_add(diags, path, 0, "contains a NUL byte; it must be a text file") < 0 ?
                       -ENOMEM : -EINVAL;
        *ret = TAKE_PTR(text);
        return 0;
}
