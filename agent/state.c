/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cleanup.h"
#include "state.h"
#include "timeutil.h"

static int dup_str(const char *s, char **ret)
{
        char *c = NULL;

        if (s && !(c = strdup(s)))
                return -ENOMEM;
        *ret = c;
        return 0;
}

void state_init(struct ks_state *s)
{
        *s = (struct ks_state){ .uid = -1 };
}

void state_clear(struct ks_state *s)
{
        free(s->policy);
        free(s->user);
        free(s->reason);
        state_init(s);
}

int state_copy(const struct ks_state *from, struct ks_state *to)
{
        struct ks_state c = *from;

        c.policy = c.user = c.reason = NULL;
        if (dup_str(from->policy, &c.policy) < 0 || dup_str(from->user, &c.user) < 0 ||
            dup_str(from->reason, &c.reason) < 0) {
                state_clear(&c);
                return -ENOMEM;
        }
        *to = c;
        return 0;
}

static json_t *opt_string(const char *s)
{
        return s ? json_string(s) : json_null();
}

static json_t *state_to_json(const struct ks_state *s)
{
        char since[32];

        return json_pack("{s:s, s:o, s:o, s:o, s:o, s:o}",
                         "state", s->isolated ? "isolated" : "normal",
                         "policy", opt_string(s->policy),
                         "since", s->since_usec ? json_string(format_rfc3339(s->since_usec, since, sizeof(since)))
                                                : json_null(),
                         "user", opt_string(s->user),
                         "uid", s->uid >= 0 ? json_integer(s->uid) : json_null(),
                         "reason", opt_string(s->reason));
}

static int get_opt_string(json_t *o, const char *key, char **ret)
{
        json_t *v = json_object_get(o, key);

        if (!v || json_is_null(v)) {
                *ret = NULL;
                return 0;
        }
        if (!json_is_string(v))
                return -EBADMSG;
        return dup_str(json_string_value(v), ret);
}

static int state_from_json(json_t *o, struct ks_state *s)
{
        const char *st;
        json_t *v;
        int r;

        st = json_string_value(json_object_get(o, "state"));
        if (!st || (strcmp(st, "normal") != 0 && strcmp(st, "isolated") != 0))
                return -EBADMSG;
        s->isolated = strcmp(st, "isolated") == 0;
        v = json_object_get(o, "since");
        if (json_is_string(v)) {
                r = parse_rfc3339(json_string_value(v), &s->since_usec);
                if (r < 0)
                        return -EBADMSG;
        }
        v = json_object_get(o, "uid");
        s->uid = json_is_integer(v) ? json_integer_value(v) : -1;
        if ((r = get_opt_string(o, "policy", &s->policy)) < 0 ||
            (r = get_opt_string(o, "user", &s->user)) < 0 ||
            (r = get_opt_string(o, "reason", &s->reason)) < 0)
                return r;
        return 0;
}

int state_load(const char *dir, struct ks_state *ret)
{
        _cleanup_(json_decrefp) json_t *o = NULL;
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -1;
        struct ks_state s;
        json_error_t jerr;
        int r;

        if (asprintf(&path, "%s/%s", dir, STATE_FILE) < 0)
                return -ENOMEM;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        o = json_loadfd(fd, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(o))
                return -EBADMSG;
        state_init(&s);
        r = state_from_json(o, &s);
        if (r < 0) {
                state_clear(&s);
                return r;
        }
        *ret = s;
        return 0;
}

static int write_all(int fd, const char *buf, size_t len)
{
        while (len > 0) {
                ssize_t n = write(fd, buf, len);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                buf += n;
                len -= (size_t)n;
        }
        return 0;
}

static int fsync_dir(const char *dir)
{
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0 || fsync(fd) < 0)
                return -errno;
        return 0;
}

int state_save(const char *dir, const struct ks_state *s)
{
        _cleanup_(json_decrefp) json_t *o = state_to_json(s);
        _cleanup_free_ char *text = NULL, *path = NULL, *tmp = NULL;
        _cleanup_close_ int fd = -1;
        int r;

        if (!o || !(text = json_dumps(o, JSON_INDENT(2))))
                return -ENOMEM;
        if (asprintf(&path, "%s/%s", dir, STATE_FILE) < 0 || asprintf(&tmp, "%s/.%s.tmp", dir, STATE_FILE) < 0)
                return -ENOMEM;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
                return -errno;
        r = write_all(fd, text, strlen(text));
        if (r == 0)
                r = write_all(fd, "\n", 1);
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                return r;
        }
        return fsync_dir(dir);
}
