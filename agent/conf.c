/* SPDX-License-Identifier: MIT */
/*
 * killswitch.conf(5): the sections and keys (conf_sections, conf_keys) and
 * their values; the tokenizer (ini.c) reads the lines. A section is read into
 * the parser's staging copy and kept only if it had no problem.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "cleanup.h"
#include "conf.h"
#include "ini.h"
#include "timespec.h"

#define PATH_MAX_LEN 4095

/* The section being read: kept only if it has no problem. */
struct parser {
        struct ks_conf *c;
        struct ks_conf_path path;
        struct ks_conf_heartbeat heartbeat;
        struct ks_conf_tripwire tripwire;
        struct ks_conf_restore restore;
        unsigned *policy_line;          /* of the section being read */
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

static int parse_policy(struct ini *ini, const char *key, int ltype, char *value, void *data)
{
        struct parser *p = ini->userdata;
        char **policy = data;

        if (policy_name_valid(value) < 0 || strlen(value) > POLICY_NAME_MAX)
                return ini_error(ini, ini->line, "%s: \"%s\": not a policy name (letters, digits, '_' and '-', "
                                 "starting with a letter, at most %d characters)", key, value, POLICY_NAME_MAX);
        free(*policy);
        *policy = strdup(value);
        *p->policy_line = ini->line;
        return *policy ? 0 : -ENOMEM;
}

/* From 1 s to a year, as isolate --for and --confirm: a deadline never overflows the clock. */
static int parse_duration(struct ini *ini, const char *key, int ltype, char *value, void *data)
{
        uint64_t usec;
        int r = timespec_parse_duration(value, &usec);

        if (r == -ERANGE || (r == 0 && usec > TIMESPEC_SCHEDULE_MAX_USEC))
                return ini_error(ini, ini->line, "%s: \"%s\": too long; at most a year (366d)", key, value);
        if (r < 0)
                return ini_error(ini, ini->line, "%s: \"%s\": %s; %s", key, value,
                                 timespec_duration_problem(value, (char[TIMESPEC_PROBLEM_MAX]){}, TIMESPEC_PROBLEM_MAX)
                                         ?: "not a duration", TIMESPEC_DURATION_HELP);
        if (usec < TIMESPEC_USEC_PER_SEC)
                return ini_error(ini, ini->line, "%s: \"%s\": must be at least 1s", key, value);
        *(uint64_t *)data = usec;
        return 0;
}

static int parse_path(struct ini *ini, const char *key, int ltype, char *value, void *data)
{
        struct parser *p = ini->userdata;
        char **path = data;

        if (path_valid(value) < 0)
                return ini_error(ini, ini->line, "%s: \"%s\": must be an absolute file name without \".\", "
                                 "\"..\" or a trailing \"/\", e.g. /run/killswitch/panic", key, value);
        free(*path);
        *path = strdup(value);
        p->path.path_line = ini->line;
        return *path ? 0 : -ENOMEM;
}

static int parse_rate(struct ini *ini, const char *key, int ltype, char *value, void *data)
{
        uint64_t *rate = data;
        int r = conf_parse_rate(value, rate);

        if (r == -ERANGE)
                return ini_error(ini, ini->line, "%s: \"%s\": out of range (more than 0, at most %llu bytes/s)",
                                 key, value, (unsigned long long)UINT32_MAX);
        if (r < 0 || *rate > UINT32_MAX)
                return ini_error(ini, ini->line, "%s: \"%s\": not a rate; bytes per second with K, M or G "
                                 "(powers of 1000), or bits with \"bit\", e.g. 50M or 400Mbit%s", key, value,
                                 r == 0 ? " (at most 4G bytes/s)" : "");
        return 0;
}

static int parse_log_group(struct ini *ini, const char *key, int ltype, char *value, void *data)
{
        char *end;
        long v;

        errno = 0;
        v = strtol(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0' || v < 1 || v > 65535)
                return ini_error(ini, ini->line, "%s: \"%s\": must be a number from 1 to 65535", key, value);
        *(uint16_t *)data = (uint16_t)v;
        return 0;
}

/* A bad value counts as the strictest (see conf.h): it never opens with fewer persons than meant. */
static int parse_approvals(struct ini *ini, const char *key, int ltype, char *value, void *data)
{
        unsigned *approvals = data;

        if (strcmp(value, "1") == 0 || strcmp(value, "2") == 0) {
                *approvals = (unsigned)(value[0] - '0');
                return 0;
        }
        *approvals = CONF_MAX_APPROVALS;
        return ini_error(ini, ini->line, "%s: \"%s\": must be 1 or 2 (the distinct persons a restore needs); "
                         "counted as 2 until fixed", key, value);
}

/* ---- Sections ---------------------------------------------------------- */

static int begin_path(struct ini *ini, const char *name, void **ret_object)
{
        struct parser *p = ini->userdata;
        int r = 0;

        /* A section with a problem is read on (its keys are checked too), then left out. */
        *ret_object = &p->path;
        p->policy_line = &p->path.policy_line;
        p->path.line = ini->line;
        if (policy_name_valid(name) < 0 || strlen(name) > CONF_NAME_MAX)
                return ini_error(ini, ini->line, "[PathTrigger NAME]: \"%s\": a name of letters, digits, '_' and "
                                 "'-', starting with a letter, is needed, e.g. [PathTrigger panic]", name);
        for (size_t i = 0; i < p->c->n_paths && r == 0; i++)
                if (strcmp(p->c->paths[i].name, name) == 0)
                        r = ini_error(ini, ini->line,
                                      "[PathTrigger %s]: duplicate name (first on line %u); rename one",
                                      name, p->c->paths[i].line);
        if (r == 0 && p->c->n_paths >= CONF_MAX_PATH_TRIGGERS)
                r = ini_error(ini, ini->line, "more than %d [PathTrigger] sections; merge some",
                              CONF_MAX_PATH_TRIGGERS);
        if (r < 0 || ini->section_errors > 0)
                return r;
        p->path.name = strdup(name);
        return p->path.name ? 0 : -ENOMEM;
}

static int begin_heartbeat(struct ini *ini, const char *name, void **ret_object)
{
        struct parser *p = ini->userdata;

        *ret_object = &p->heartbeat;
        p->policy_line = &p->heartbeat.policy_line;
        p->heartbeat.line = ini->line;
        return 0;
}

static int begin_tripwire(struct ini *ini, const char *name, void **ret_object)
{
        struct parser *p = ini->userdata;

        *ret_object = &p->tripwire;
        p->policy_line = &p->tripwire.policy_line;
        p->tripwire.line = ini->line;
        return 0;
}

static int begin_restore(struct ini *ini, const char *name, void **ret_object)
{
        struct parser *p = ini->userdata;

        *ret_object = &p->restore;
        p->restore.line = ini->line;
        return 0;
}

/* Kept even with a problem: the bad value was replaced by the strict one (parse_approvals). */
static int end_restore(struct ini *ini, void *object)
{
        struct parser *p = ini->userdata;

        p->c->restore = p->restore;
        return 0;
}

/* A section without Policy= isolates with the default policy. */
static int default_policy(struct ini *ini, char **policy, unsigned *policy_line)
{
        if (*policy)
                return 0;
        *policy = strdup(DEFAULT_TRIGGER_POLICY);
        *policy_line = ini->section_line;
        return *policy ? 0 : -ENOMEM;
}

static int end_path(struct ini *ini, void *object)
{
        struct parser *p = ini->userdata;
        struct ks_conf_path *n;
        int r;

        r = ini_require_key(ini, "Path", NULL);
        if (r >= 0 && ini->section_errors == 0)
                r = default_policy(ini, &p->path.policy, &p->path.policy_line);
        if (r >= 0 && ini->section_errors == 0) {
                n = GREEDY_REALLOC(p->c->paths, p->c->n_paths + 1);
                if (!n)
                        r = -ENOMEM;
                else {
                        n[p->c->n_paths++] = p->path;
                        p->path = (struct ks_conf_path){};
                }
        }
        path_clear(&p->path);
        return r;
}

static int end_heartbeat(struct ini *ini, void *object)
{
        struct parser *p = ini->userdata;
        int r;

        r = ini_require_key(ini, "Timeout", "Timeout=5min");
        if (r >= 0 && ini->section_errors == 0)
                r = default_policy(ini, &p->heartbeat.policy, &p->heartbeat.policy_line);
        if (r >= 0 && ini->section_errors == 0) {
                p->heartbeat.enabled = true;
                p->c->heartbeat = p->heartbeat;
                p->heartbeat = (struct ks_conf_heartbeat){};
        }
        free(p->heartbeat.policy);
        p->heartbeat = (struct ks_conf_heartbeat){};
        return r;
}

static int end_tripwire(struct ini *ini, void *object)
{
        struct parser *p = ini->userdata;
        int r;

        r = ini_require_key(ini, "Rate", "Rate=50M");
        if (r >= 0)
                r = ini_require_key(ini, "For", "For=30s");
        if (r >= 0 && ini->section_errors == 0)
                r = default_policy(ini, &p->tripwire.policy, &p->tripwire.policy_line);
        if (r >= 0 && ini->section_errors == 0) {
                p->tripwire.enabled = true;
                if (!p->tripwire.log_group)
                        p->tripwire.log_group = CONF_DEFAULT_LOG_GROUP;
                p->c->tripwire = p->tripwire;
                p->tripwire = (struct ks_conf_tripwire){};
        }
        free(p->tripwire.policy);
        p->tripwire = (struct ks_conf_tripwire){};
        return r;
}

/* ---- Tables ------------------------------------------------------------ */

static const struct ini_section conf_sections[] = {
        { .name = "PathTrigger",    .flags = INI_SECTION_NAMED, .begin = begin_path,      .end = end_path },
        { .name = "Heartbeat",      .flags = INI_SECTION_ONCE,  .begin = begin_heartbeat, .end = end_heartbeat },
        { .name = "EgressTripwire", .flags = INI_SECTION_ONCE,  .begin = begin_tripwire,  .end = end_tripwire },
        { .name = "Restore",        .flags = INI_SECTION_ONCE,  .begin = begin_restore,   .end = end_restore },
        {}
};

static const struct ini_key conf_keys[] = {
        /* section          key         parse            ltype  offset (in the section's object)           flags */
        { "PathTrigger",    "Path",     parse_path,      0, offsetof(struct ks_conf_path, path), 0 },
        { "PathTrigger",    "Policy",   parse_policy,    0, offsetof(struct ks_conf_path, policy), 0 },
        { "Heartbeat",      "Timeout",  parse_duration,  0, offsetof(struct ks_conf_heartbeat, timeout_usec), 0 },
        { "Heartbeat",      "Policy",   parse_policy,    0, offsetof(struct ks_conf_heartbeat, policy), 0 },
        { "EgressTripwire", "Rate",     parse_rate,      0, offsetof(struct ks_conf_tripwire, rate), 0 },
        { "EgressTripwire", "For",      parse_duration,  0, offsetof(struct ks_conf_tripwire, for_usec), 0 },
        { "EgressTripwire", "Policy",   parse_policy,    0, offsetof(struct ks_conf_tripwire, policy), 0 },
        { "EgressTripwire", "LogGroup", parse_log_group, 0, offsetof(struct ks_conf_tripwire, log_group), 0 },
        { "Restore",  "Approvals",       parse_approvals, 0, offsetof(struct ks_conf_restore, approvals), 0 },
        { "Restore",  "ApprovalTimeout", parse_duration,  0, offsetof(struct ks_conf_restore, approval_timeout_usec), 0 },
        {}
};

static const struct ini_format conf_format = {
        .what = "killswitch.conf",
        .sections = conf_sections,
        .keys = conf_keys,
};

static void parser_clear(struct parser *p)
{
        path_clear(&p->path);
        free(p->heartbeat.policy);
        free(p->tripwire.policy);
}

int conf_parse_string(const char *text, const char *file, struct ks_conf *c, struct ks_diags *diags)
{
        struct parser p = { .c = c };
        struct ini ini = INI_INIT(&conf_format, file, diags, &p);
        int r;

        *c = (struct ks_conf){};
        c->file = strdup(file);
        if (!c->file)
                return -ENOMEM;
        r = ini_parse(&ini, text);
        parser_clear(&p);
        if (r < 0) {
                conf_clear(c);
                return r;
        }
        return 0;
}

int conf_parse_file(const char *path, struct ks_conf *c, struct ks_diags *diags)
{
        _cleanup_free_ char *text = NULL;
        int r;

        r = ini_read_file(path, INI_READ_MISSING_OK, &text, diags);
        if (r < 0)
                return r;
        return conf_parse_string(text, path, c, diags);
}
