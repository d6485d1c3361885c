/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "conf.h"
#include "timespec.h"

#define LINE_MAX_LEN 4096
#define PATH_MAX_LEN 4095

enum section {
        SECTION_NONE,
        SECTION_PATH,
        SECTION_HEARTBEAT,
        SECTION_TRIPWIRE,
        SECTION_UNKNOWN,
};

/* The section being read: kept only if it has no problem. */
struct parser {
        struct ks_conf *c;
        struct ks_diags *diags;
        const char *file;
        enum section section;
        unsigned section_line;
        unsigned errors;        /* in this section */
        struct ks_conf_path path;
        struct ks_conf_heartbeat heartbeat;
        struct ks_conf_tripwire tripwire;
        bool seen_heartbeat, seen_tripwire;
        bool has_path, has_timeout, has_rate, has_for;
};

static void path_clear(struct ks_conf_path *p)
{
        free(p->name);
        free(p->path);
        free(p->policy);
        *p = (struct ks_conf_path){};
}

void conf_clear(struct ks_conf *c)
{
        for (size_t i = 0; i < c->n_paths; i++)
                path_clear(&c->paths[i]);
        free(c->paths);
        free(c->heartbeat.policy);
        free(c->tripwire.policy);
        free(c->file);
        *c = (struct ks_conf){};
}

static int problem(struct parser *p, unsigned line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int problem(struct parser *p, unsigned line, const char *fmt, ...)
{
        _cleanup_free_ char *msg = NULL;
        va_list ap;
        int r;

        p->errors++;
        va_start(ap, fmt);
        r = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        return diags_add(p->diags, p->file, line, "%s", msg) < 0 ? -ENOMEM : 0;
}

int conf_parse_rate(const char *s, uint64_t *ret)
{
        static const struct {
                const char *prefix;
                uint64_t factor;
        } prefixes[] = {
                { "Ki", 1024ULL }, { "Mi", 1024ULL * 1024 }, { "Gi", 1024ULL * 1024 * 1024 },
                { "K", 1000ULL }, { "k", 1000ULL }, { "M", 1000000ULL }, { "G", 1000000000ULL },
                { "T", 1000000000000ULL },
        };
        uint64_t whole = 0, frac = 0, frac_div = 1, factor = 1, v;
        bool bits = false;
        const char *p = s;

        if (!s || !isdigit((unsigned char)*p))
                return -EINVAL;
        for (; isdigit((unsigned char)*p); p++) {
                if (whole > UINT64_MAX / 10 - 1)
                        return -ERANGE;
                whole = whole * 10 + (uint64_t)(*p - '0');
        }
        if (*p == '.') {
                if (!isdigit((unsigned char)*++p))
                        return -EINVAL;
                for (; isdigit((unsigned char)*p); p++)
                        if (frac_div < 1000000000ULL) {
                                frac = frac * 10 + (uint64_t)(*p - '0');
                                frac_div *= 10;
                        }
        }
        for (size_t i = 0; i < ELEMENTSOF(prefixes); i++)
                if (strncmp(p, prefixes[i].prefix, strlen(prefixes[i].prefix)) == 0) {
                        factor = prefixes[i].factor;
                        p += strlen(prefixes[i].prefix);
                        break;
                }
        if (strncmp(p, "bits", 4) == 0)
                bits = true, p += 4;
        else if (strncmp(p, "bit", 3) == 0)
                bits = true, p += 3;
        else if (*p == 'B')
                p++;
        if (strcmp(p, "/s") == 0)
                p += 2;
        if (*p != '\0')
                return -EINVAL;
        if (whole > UINT64_MAX / factor)
                return -ERANGE;
        v = whole * factor + frac * factor / frac_div;
        if (bits)
                v /= 8;
        if (v == 0)
                return -ERANGE;
        *ret = v;
        return 0;
}

/* An absolute path without "." or ".." components, "//" or a trailing "/". */
static int path_valid(const char *s)
{
        const char *c;

        if (s[0] != '/' || strlen(s) > PATH_MAX_LEN || s[1] == '\0' || s[strlen(s) - 1] == '/' || strstr(s, "//"))
                return -EINVAL;
        for (c = s; c; c = strchr(c + 1, '/'))
                if (strncmp(c, "/./", 3) == 0 || strcmp(c, "/.") == 0 || strncmp(c, "/../", 4) == 0 ||
                    strcmp(c, "/..") == 0)
                        return -EINVAL;
        return 0;
}

static int set_policy(struct parser *p, unsigned line, const char *value, char **policy, unsigned *policy_line)
{
        if (policy_name_valid(value) < 0 || strlen(value) > POLICY_NAME_MAX)
                return problem(p, line, "Policy: \"%s\": not a policy name (letters, digits, '_' and '-', "
                               "starting with a letter, at most %d characters)", value, POLICY_NAME_MAX);
        free(*policy);
        *policy = strdup(value);
        *policy_line = line;
        return *policy ? 0 : -ENOMEM;
}

static int set_duration(struct parser *p, unsigned line, const char *key, const char *value, uint64_t *ret)
{
        uint64_t usec;

        if (timespec_parse_duration(value, &usec) < 0)
                return problem(p, line, "%s: \"%s\": not a duration; %s", key, value, TIMESPEC_DURATION_HELP);
        if (usec < TIMESPEC_USEC_PER_SEC)
                return problem(p, line, "%s: \"%s\": must be at least 1s", key, value);
        *ret = usec;
        return 0;
}

static int key_path(struct parser *p, unsigned line, const char *key, const char *value)
{
        if (strcmp(key, "Path") == 0) {
                p->has_path = true;
                if (path_valid(value) < 0)
                        return problem(p, line, "Path: \"%s\": must be an absolute file name without \".\", "
                                       "\"..\" or a trailing \"/\", e.g. /run/killswitch/panic", value);
                free(p->path.path);
                p->path.path = strdup(value);
                p->has_path = true;
                return p->path.path ? 0 : -ENOMEM;
        }
        if (strcmp(key, "Policy") == 0)
                return set_policy(p, line, value, &p->path.policy, &p->path.policy_line);
        return problem(p, line, "Unknown key %s in [PathTrigger]; known: Path, Policy", key);
}

static int key_heartbeat(struct parser *p, unsigned line, const char *key, const char *value)
{
        if (strcmp(key, "Timeout") == 0) {
                p->has_timeout = true;
                return set_duration(p, line, key, value, &p->heartbeat.timeout_usec);
        }
        if (strcmp(key, "Policy") == 0)
                return set_policy(p, line, value, &p->heartbeat.policy, &p->heartbeat.policy_line);
        return problem(p, line, "Unknown key %s in [Heartbeat]; known: Timeout, Policy", key);
}

static int key_tripwire(struct parser *p, unsigned line, const char *key, const char *value)
{
        if (strcmp(key, "Rate") == 0) {
                int r = conf_parse_rate(value, &p->tripwire.rate);

                p->has_rate = true;
                if (r == -ERANGE)
                        return problem(p, line, "Rate: \"%s\": out of range (more than 0, at most %llu bytes/s)",
                                       value, (unsigned long long)UINT32_MAX);
                if (r < 0 || p->tripwire.rate > UINT32_MAX)
                        return problem(p, line, "Rate: \"%s\": not a rate; bytes per second with K, M or G "
                                       "(powers of 1000), or bits with \"bit\", e.g. 50M or 400Mbit%s", value,
                                       r == 0 ? " (at most 4G bytes/s)" : "");
                return 0;
        }
        if (strcmp(key, "For") == 0) {
                p->has_for = true;
                return set_duration(p, line, key, value, &p->tripwire.for_usec);
        }
        if (strcmp(key, "LogGroup") == 0) {
                char *end;
                long v;

                errno = 0;
                v = strtol(value, &end, 10);
                if (errno != 0 || end == value || *end != '\0' || v < 1 || v > 65535)
                        return problem(p, line, "LogGroup: \"%s\": must be a number from 1 to 65535", value);
                p->tripwire.log_group = (uint16_t)v;
                return 0;
        }
        if (strcmp(key, "Policy") == 0)
                return set_policy(p, line, value, &p->tripwire.policy, &p->tripwire.policy_line);
        return problem(p, line, "Unknown key %s in [EgressTripwire]; known: Rate, For, Policy, LogGroup", key);
}

/* Missing keys, defaults; then keep the section if nothing was wrong with it. */
static int section_end(struct parser *p)
{
        struct ks_conf *c = p->c;
        int r = 0;

        /* Missing keys only matter in a section that is otherwise fine: one problem at a time. */
        switch (p->errors ? SECTION_NONE : p->section) {
        case SECTION_PATH:
                if (!p->has_path)
                        r = problem(p, p->section_line, "[PathTrigger %s] needs Path=", p->path.name);
                break;
        case SECTION_HEARTBEAT:
                if (!p->has_timeout)
                        r = problem(p, p->section_line, "[Heartbeat] needs Timeout=, e.g. Timeout=5min");
                break;
        case SECTION_TRIPWIRE:
                if (!p->has_rate)
                        r = problem(p, p->section_line, "[EgressTripwire] needs Rate=, e.g. Rate=50M");
                if (r == 0 && !p->has_for)
                        r = problem(p, p->section_line, "[EgressTripwire] needs For=, e.g. For=30s");
                break;
        case SECTION_NONE:
        case SECTION_UNKNOWN:
                break;
        }
        if (r < 0)
                return r;
        if (p->errors == 0) {
                char **policy = p->section == SECTION_PATH ? &p->path.policy
                              : p->section == SECTION_HEARTBEAT ? &p->heartbeat.policy
                              : p->section == SECTION_TRIPWIRE ? &p->tripwire.policy : NULL;
                unsigned *pl = p->section == SECTION_PATH ? &p->path.policy_line
                             : p->section == SECTION_HEARTBEAT ? &p->heartbeat.policy_line
                             : &p->tripwire.policy_line;

                if (policy && !*policy) {
                        *policy = strdup(DEFAULT_TRIGGER_POLICY);
                        *pl = p->section_line;
                        if (!*policy)
                                return -ENOMEM;
                }
                if (p->section == SECTION_PATH) {
                        struct ks_conf_path *n = reallocarray(c->paths, c->n_paths + 1, sizeof(*n));

                        if (!n)
                                return -ENOMEM;
                        c->paths = n;
                        c->paths[c->n_paths++] = p->path;
                        p->path = (struct ks_conf_path){};
                } else if (p->section == SECTION_HEARTBEAT) {
                        p->heartbeat.enabled = true;
                        c->heartbeat = p->heartbeat;
                        p->heartbeat = (struct ks_conf_heartbeat){};
                } else if (p->section == SECTION_TRIPWIRE) {
                        p->tripwire.enabled = true;
                        if (!p->tripwire.log_group)
                                p->tripwire.log_group = CONF_DEFAULT_LOG_GROUP;
                        c->tripwire = p->tripwire;
                        p->tripwire = (struct ks_conf_tripwire){};
                }
        }
        path_clear(&p->path);
        free(p->heartbeat.policy);
        free(p->tripwire.policy);
        p->heartbeat = (struct ks_conf_heartbeat){};
        p->tripwire = (struct ks_conf_tripwire){};
        p->has_path = p->has_timeout = p->has_rate = p->has_for = false;
        p->errors = 0;
        p->section = SECTION_NONE;
        return 0;
}

static int section_begin(struct parser *p, unsigned line, char *head)
{
        char *name = strchr(head, ' ');
        int r;

        r = section_end(p);
        if (r < 0)
                return r;
        p->section_line = line;
        if (name) {
                *name++ = '\0';
                name += strspn(name, " \t");
        }
        if (strcmp(head, "PathTrigger") == 0) {
                p->section = SECTION_PATH;
                if (!name || !*name || policy_name_valid(name) < 0 || strlen(name) > CONF_NAME_MAX)
                        return problem(p, line, "[PathTrigger NAME]: \"%s\": a name of letters, digits, '_' and "
                                       "'-', starting with a letter, is needed, e.g. [PathTrigger panic]",
                                       name ? name : "");
                for (size_t i = 0; i < p->c->n_paths; i++)
                        if (strcmp(p->c->paths[i].name, name) == 0)
                                return problem(p, line, "[PathTrigger %s]: duplicate name (first on line %u)",
                                               name, p->c->paths[i].line);
                if (p->c->n_paths >= CONF_MAX_PATH_TRIGGERS)
                        return problem(p, line, "More than %d [PathTrigger] sections", CONF_MAX_PATH_TRIGGERS);
                p->path.line = line;
                p->path.name = strdup(name);
                return p->path.name ? 0 : -ENOMEM;
        }
        if (strcmp(head, "Heartbeat") == 0) {
                p->section = SECTION_HEARTBEAT;
                p->heartbeat.line = line;
                if (name)
                        return problem(p, line, "[%s] takes no name", head);
                if (p->seen_heartbeat)
                        return problem(p, line, "[Heartbeat] given twice");
                p->seen_heartbeat = true;
                return 0;
        }
        if (strcmp(head, "EgressTripwire") == 0) {
                p->section = SECTION_TRIPWIRE;
                p->tripwire.line = line;
                if (name)
                        return problem(p, line, "[%s] takes no name", head);
                if (p->seen_tripwire)
                        return problem(p, line, "[EgressTripwire] given twice");
                p->seen_tripwire = true;
                return 0;
        }
        p->section = SECTION_UNKNOWN;
        return problem(p, line, "Unknown section [%s]; known: [PathTrigger NAME], [Heartbeat], [EgressTripwire]",
                       head);
}

static char *strip(char *s)
{
        char *e;

        s += strspn(s, " \t");
        e = s + strlen(s);
        while (e > s && isspace((unsigned char)e[-1]))
                *--e = '\0';
        return s;
}

static int parse_line(struct parser *p, unsigned line, char *s)
{
        char *hash, *eq, *key, *value;

        /* "#" starts a comment at the start of a line or after a blank. */
        for (hash = s; (hash = strchr(hash, '#')); hash++)
                if (hash == s || hash[-1] == ' ' || hash[-1] == '\t') {
                        *hash = '\0';
                        break;
                }
        s = strip(s);
        if (*s == '\0' || *s == ';')
                return 0;
        if (*s == '[') {
                char *end = strchr(s, ']');

                if (!end || strip(end + 1)[0] != '\0')
                        return problem(p, line, "Malformed section header: \"%s\", e.g. [Heartbeat]", s);
                *end = '\0';
                return section_begin(p, line, strip(s + 1));
        }
        eq = strchr(s, '=');
        if (!eq)
                return problem(p, line, "Expected KEY=VALUE or [Section], got \"%s\"", s);
        *eq = '\0';
        key = strip(s);
        value = strip(eq + 1);
        if (p->section == SECTION_UNKNOWN)
                return 0;       /* already reported */
        if (p->section == SECTION_NONE)
                return problem(p, line, "%s= outside of a section", key);
        if (!*value)
                return problem(p, line, "%s: empty value", key);
        switch (p->section) {
        case SECTION_PATH: return key_path(p, line, key, value);
        case SECTION_HEARTBEAT: return key_heartbeat(p, line, key, value);
        case SECTION_TRIPWIRE: return key_tripwire(p, line, key, value);
        case SECTION_NONE:
        case SECTION_UNKNOWN:
                break;
        }
        return 0;
}

int conf_parse_string(const char *text, const char *file, struct ks_conf *c, struct ks_diags *diags)
{
        struct parser p = { .c = c, .diags = diags, .file = file };
        unsigned line = 0;
        int r = 0;

        *c = (struct ks_conf){};
        c->file = strdup(file);
        if (!c->file)
                return -ENOMEM;
        while (*text && r >= 0) {
                size_t len = strcspn(text, "\n");
                _cleanup_free_ char *copy = NULL;

                line++;
                if (len > LINE_MAX_LEN) {
                        r = problem(&p, line, "Line longer than %d bytes", LINE_MAX_LEN);
                } else if (memchr(text, '\0', len)) {
                        r = problem(&p, line, "NUL byte in line");
                } else {
                        copy = strndup(text, len);
                        r = copy ? parse_line(&p, line, copy) : -ENOMEM;
                }
                text += len;
                if (*text == '\n')
                        text++;
        }
        if (r >= 0)
                r = section_end(&p);
        if (r < 0) {
                section_end(&p);
                conf_clear(c);
                return r;
        }
        return 0;
}

int conf_parse_file(const char *path, struct ks_conf *c, struct ks_diags *diags)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        _cleanup_free_ char *text = NULL;
        size_t len = 0, n;
        char buf[4096];

        if (!f) {
                int r = -errno;

                if (r != -ENOENT)
                        diags_add(diags, path, 0, "cannot read: %s", strerror(-r));
                return r;
        }
        while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
                char *t;

                if (len + n > 1024 * 1024) {
                        diags_add(diags, path, 0, "larger than 1 MiB");
                        return -EFBIG;
                }
                t = realloc(text, len + n + 1);
                if (!t)
                        return -ENOMEM;
                text = t;
                memcpy(text + len, buf, n);
                len += n;
        }
        if (ferror(f)) {
                diags_add(diags, path, 0, "cannot read: %s", strerror(EIO));
                return -EIO;
        }
        if (!text && !(text = strdup("")))
                return -ENOMEM;
        text[len] = '\0';
        if (strlen(text) != len) {
                diags_add(diags, path, 0, "contains a NUL byte");
                return -EBADMSG;
        }
        return conf_parse_string(text, path, c, diags);
}
