/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/*
 * The one INI tokenizer, for killswitch.policy(5) and killswitch.conf(5): the
 * same rules for blanks, comments, headers and KEY=VALUE, one size limit, one
 * message style ("FILE:LINE: what; what to do"). A format is two tables, in
 * the style of systemd's ConfigTableItem: its sections (name, flags, begin,
 * end) and its keys (section, key, parser, ltype, offset), each key declared
 * once. Adding a section is a row and a begin function; adding a key is a row
 * and, unless an ini_parse_* fits, a parser function.
 *
 * Lines: blanks (space, tab, CR, VT, FF) around keys, values and section names
 * are ignored. A line whose first non-blank character is '#' or ';' is a
 * comment; a '#' that follows a blank starts a comment up to the end of the
 * line (after a value or a header); a '#' inside a word and a ';' after the
 * start of a line are text.
 *
 * The tokenizer reports every problem and carries on, so that an admin fixes a
 * file in one go: after a section header it cannot use, the keys up to the next
 * header are skipped (the header was reported). Pure: no I/O but ini_read_file().
 */

/* Problems found while parsing, each "FILE:LINE: message" (or "FILE: message"). */
struct ks_diags {
        char **msgs;
        size_t n;
};

void diags_clear(struct ks_diags *d);
int diags_add(struct ks_diags *d, const char *file, unsigned line, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* A policy or killswitch.conf is a short text; anything bigger is a mistake. */
#define INI_FILE_MAX (64u * 1024 * 1024)
/*
 * Problems listed per file, then "... and N more": enough to fix a file in a go
 * or two, few enough that a file that is no policy at all (a binary, a link to
 * a file of secrets) floods neither a terminal nor the Policies reply.
 */
#define INI_DIAGS_MAX 20
/* Bytes of a line quoted in a message (ini_quote()), and a buffer for it. */
#define INI_QUOTE_MAX 40
#define INI_QUOTE_SIZE (INI_QUOTE_MAX + sizeof("..."))

struct ini;

/*
 * Parse `value` (blanks stripped, not empty) of `key` into `data` (the section's
 * object + the key's offset). Report a bad value with ini_error() and return 0;
 * < 0 only for -ENOMEM.
 */
typedef int (*ini_parse_t)(struct ini *ini, const char *key, int ltype, char *value, void *data);

enum {
        INI_KEY_ONCE = 1 << 0,          /* single-valued: a second one in the section is reported */
};

struct ini_key {
        const char *section;            /* a section's name, or the .keys it shares */
        const char *key;
        ini_parse_t parse;
        int ltype;                      /* for the parser */
        size_t offset;                  /* of its field in the section's object */
        unsigned flags;
};

enum {
        INI_SECTION_ONCE = 1 << 0,      /* one per file: another is reported, and reads into the same object */
        INI_SECTION_NAMED = 1 << 1,     /* [Section NAME]; without, a name is reported */
};

/*
 * A section starts: set *ret_object to what the keys' offsets point into; NULL
 * skips the keys (after reporting why). `name` is NAME of [Section NAME] or NULL.
 */
typedef int (*ini_begin_t)(struct ini *ini, const char *name, void **ret_object);
/* The section ends (the next header or the end of the file); ini->section_errors says if it is good. */
typedef int (*ini_end_t)(struct ini *ini, void *object);

struct ini_section {
        const char *name;
        unsigned flags;
        const char *keys;               /* share another section's keys; NULL: its own */
        ini_begin_t begin;
        ini_end_t end;                  /* may be NULL */
};

struct ini_format {
        const char *what;               /* "a policy": "duplicate [X] section (...); a policy has one" */
        const struct ini_section *sections;     /* in the order hints list them; ends with { NULL } */
        const struct ini_key *keys;             /* ends with { NULL } */
        int (*finish)(struct ini *ini);         /* checks of the whole file, after the last section; may be NULL */
};

struct ini {
        /* Set by the caller (INI_INIT). */
        const struct ini_format *format;
        const char *file;
        struct ks_diags *diags;
        void *userdata;
        /* Read-only for the callbacks. */
        unsigned line;                          /* being read */
        const struct ini_section *section;      /* NULL before the first header */
        const char *name;                       /* NAME of [Section NAME] */
        unsigned section_line;
        void *object;                           /* NULL: the keys are skipped */
        unsigned n_errors;                      /* in the file */
        unsigned section_errors;                /* since the section's header, inclusive */
        /* Private. */
        bool headed;                            /* a header was seen */
        bool begun;                             /* of the section, end() is due */
        unsigned instance, instances;           /* of sections: a key's "given twice" is per instance */
        unsigned *section_first;                /* per section row: line, instance of the first */
        unsigned *key_seen;                     /* per key row: instance, line */
};

#define INI_INIT(f, file_, diags_, userdata_) \
        ((struct ini){ .format = (f), .file = (file_), .diags = (diags_), .userdata = (userdata_) })

/* Report a problem at `line` (0: the file as a whole). Returns 0 or -ENOMEM. */
int ini_error(struct ini *ini, unsigned line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * Tokenize text, calling the format's begin, parsers, end and finish. Problems go
 * to ini->diags (count them in ini->n_errors), the first INI_DIAGS_MAX of them and
 * how many more. Returns 0, or -ENOMEM.
 */
int ini_parse(struct ini *ini, const char *text);

/* The line of `key` in the current section, 0 if it was not given (for required keys). */
unsigned ini_key_line(const struct ini *ini, const char *key);

/*
 * For an end(): report "[Section NAME] needs KEY=, e.g. EXAMPLE" at the header if
 * key was not given, unless the section has problems already (one at a time).
 */
int ini_require_key(struct ini *ini, const char *key, const char *example);

/* s, or its first INI_QUOTE_MAX bytes and "..." in buf (of INI_QUOTE_SIZE): for quoting lines. */
const char *ini_quote(const char *s, char *buf, size_t size);

/* Next blank-separated word of *s, NUL-terminated in place; NULL at the end. */
char *ini_next_word(char **s);

/* systemd's parse_boolean(): 1 yes y true t on, 0 no n false f off, any case. -EINVAL else. */
int ini_boolean(const char *v);
/* Parsers for ini_key rows: a boolean (data: bool *). */
int ini_parse_bool(struct ini *ini, const char *key, int ltype, char *value, void *data);

enum {
        INI_READ_MISSING_OK = 1 << 0,   /* no file: -ENOENT, not reported */
};

/* Read a text file of at most INI_FILE_MAX bytes without NUL bytes into *ret; problems in diags. */
int ini_read_file(const char *path, unsigned flags, char **ret, struct ks_diags *diags);
