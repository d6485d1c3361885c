/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "alloc.h"
#include "cleanup.h"
#include "fileio.h"
#include "state.h"
#include "timespec.h"
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
        *s = (struct ks_state){ .uid = -1, .request_uid = -1 };
}

static void fired_free(char **fired, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(fired[i]);
        free(fired);
}

void state_clear(struct ks_state *s)
{
        free(s->policy);
        free(s->user);
        free(s->reason);
        free(s->trigger);
        free(s->revert_policy);
        free(s->request_user);
        fired_free(s->fired, s->n_fired);
        free(s->uplink_ids);
        free(s->uplinks_boot);
        state_init(s);
}

bool state_fired(const struct ks_state *s, const char *trigger)
{
        for (size_t i = 0; i < s->n_fired; i++)
                if (strcmp(s->fired[i], trigger) == 0)
                        return true;
        return false;
}

int state_add_fired(struct ks_state *s, const char *trigger)
{
        char **f;

        if (state_fired(s, trigger))
                return 0;
        f = GREEDY_REALLOC(s->fired, s->n_fired + 1);
        if (!f)
                return -ENOMEM;
        if (!(f[s->n_fired] = strdup(trigger)))
                return -ENOMEM;
        s->n_fired++;
        return 0;
}

int state_copy(const struct ks_state *from, struct ks_state *to)
{
        struct ks_state c = *from;

        c.policy = c.user = c.reason = c.trigger = c.revert_policy = c.request_user = NULL;
        c.fired = NULL;
        c.n_fired = 0;
        c.uplink_ids = NULL;
        c.n_uplink_ids = 0;
        c.uplinks_boot = NULL;
        if (dup_str(from->policy, &c.policy) < 0 || dup_str(from->user, &c.user) < 0 ||
            dup_str(from->reason, &c.reason) < 0 || dup_str(from->trigger, &c.trigger) < 0 ||
            dup_str(from->revert_policy, &c.revert_policy) < 0 || dup_str(from->request_user, &c.request_user) < 0)
                goto fail;
        for (size_t i = 0; i < from->n_fired; i++)
                if (state_add_fired(&c, from->fired[i]) < 0)
                        goto fail;
        if (state_set_uplink_ids(&c, from->uplink_ids, from->n_uplink_ids, from->uplinks_boot) < 0)
                goto fail;
        *to = c;
        return 0;
fail:
        state_clear(&c);
        return -ENOMEM;
}

int state_set_uplink_ids(struct ks_state *s, const struct ks_uplink_id *ids, size_t n, const char *boot)
{
        struct ks_uplink_id *v = NULL;
        char *b = NULL;

        if (dup_str(boot, &b) < 0)
                return -ENOMEM;
        free(s->uplinks_boot);
        s->uplinks_boot = b;
        if (n > 0) {
                v = calloc(n, sizeof(*v));
                if (!v)
                        return -ENOMEM;
                memcpy(v, ids, n * sizeof(*v));
        }
        free(s->uplink_ids);
        s->uplink_ids = v;
        s->n_uplink_ids = n;
        return 0;
}

static json_t *uplink_ids_to_json(const struct ks_state *s)
{
        json_t *a = json_array();

        for (size_t i = 0; a && i < s->n_uplink_ids; i++)
                json_array_append_new(a, json_pack("{s:s, s:i}", "name", s->uplink_ids[i].name, "ifindex",
                                                   s->uplink_ids[i].ifindex));
        return a;
}

static int get_opt_string(json_t *o, const char *key, char **ret);

/* "uplinks": [{"name": N, "ifindex": I}, ...]; absent in older files. */
static int uplink_ids_from_json(json_t *o, struct ks_state *s)
{
        json_t *a = json_object_get(o, "uplinks"), *v;
        _cleanup_free_ struct ks_uplink_id *ids = NULL;
        _cleanup_free_ char *boot = NULL;
        size_t i;
        int r;

        if (!a || json_is_null(a))
                return 0;
        if (!json_is_array(a))
                return -EBADMSG;
        ids = calloc(json_array_size(a) + 1, sizeof(*ids));
        if (!ids)
                return -ENOMEM;
        json_array_foreach(a, i, v) {
                const char *name = json_string_value(json_object_get(v, "name"));
                json_t *idx = json_object_get(v, "ifindex");

                if (!name || name[0] == '\0' || strlen(name) >= IFNAMSIZ || !json_is_integer(idx) ||
                    json_integer_value(idx) <= 0 || json_integer_value(idx) > INT_MAX)
                        return -EBADMSG;
                snprintf(ids[i].name, sizeof(ids[i].name), "%s", name);
                ids[i].ifindex = (int)json_integer_value(idx);
        }
        if ((r = get_opt_string(o, "uplinks_boot", &boot)) < 0)
                return r;
        return state_set_uplink_ids(s, ids, json_array_size(a), boot);
}

static json_t *opt_string(const char *s)
{
        return s ? json_string(s) : json_null();
}

static json_t *opt_instant(uint64_t usec)
{
        char buf[32];

        return usec ? json_string(timespec_format_rfc3339(usec, buf, sizeof(buf))) : json_null();
}

/* The pending four-eyes request, or null. */
static json_t *request_to_json(const struct ks_state *s)
{
        if (!s->request_user)
                return json_null();
        return json_pack("{s:s, s:o, s:o, s:o, s:o}", "user", s->request_user,
                         "uid", s->request_uid >= 0 ? json_integer(s->request_uid) : json_null(),
                         "at", opt_instant(s->request_at_usec), "until", opt_instant(s->request_until_usec),
                         "restore_at", opt_instant(s->request_restore_usec));
}

static json_t *opt_usec(uint64_t usec)
{
        return usec ? json_integer((json_int_t)usec) : json_null();
}

/*
 * The deadlines given as durations, on CLOCK_BOOTTIME, with the boot they
 * count in: an agent restarted in the same boot keeps counting on that clock,
 * so a step of the wall clock while it was down neither ends an isolation
 * early nor late. null without any, or if the boot is unknown.
 */
static json_t *boottime_to_json(const struct ks_state *s)
{
        char boot[BOOT_ID_MAX];

        if ((!s->restore_boot_usec && !s->confirm_boot_usec && !s->request_until_boot_usec) || !*boot_id(boot))
                return json_null();
        return json_pack("{s:s, s:o, s:o, s:o}", "boot", boot, "restore_at", opt_usec(s->restore_boot_usec),
                         "confirm_deadline", opt_usec(s->confirm_boot_usec),
                         "request_until", opt_usec(s->request_until_boot_usec));
}

static json_t *state_to_json(const struct ks_state *s)
{
        json_t *fired = json_array(), *o;

        for (size_t i = 0; fired && i < s->n_fired; i++)
                json_array_append_new(fired, json_string(s->fired[i]));
        o = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                         "state", s->isolated ? "isolated" : "normal",
                         "policy", opt_string(s->policy),
                         "since", opt_instant(s->since_usec),
                         "user", opt_string(s->user),
                         "uid", s->uid >= 0 ? json_integer(s->uid) : json_null(),
                         "reason", opt_string(s->reason),
                         "trigger", opt_string(s->trigger),
                         "restore_at", opt_instant(s->restore_at_usec),
                         "confirm_deadline", opt_instant(s->confirm_usec),
                         "revert", s->confirm_usec ? json_pack("{s:s, s:o}", "state",
                                                               s->revert_isolated ? "isolated" : "normal",
                                                               "policy", opt_string(s->revert_policy))
                                                   : json_null(),
                         "fired", fired);
        if (o && (json_object_set_new(o, "restore_request", request_to_json(s)) < 0 ||
                  json_object_set_new(o, "uplinks", uplink_ids_to_json(s)) < 0 ||
                  json_object_set_new(o, "uplinks_boot", opt_string(s->uplinks_boot)) < 0 ||
                  json_object_set_new(o, "boottime", boottime_to_json(s)) < 0)) {
                json_decref(o);
                return NULL;
        }
        return o;
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

static int get_instant(json_t *o, const char *key, uint64_t *ret)
{
        json_t *v = json_object_get(o, key);

        *ret = 0;
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_string(v) || timespec_parse_rfc3339(json_string_value(v), ret) < 0)
                return -EBADMSG;
        return 0;
}

/* A four-eyes request; absent in older files. A request without user, times or deadline is corrupt. */
static int request_from_json(json_t *o, struct ks_state *s)
{
        json_t *req = json_object_get(o, "restore_request"), *uid;
        int r;

        if (!req || json_is_null(req))
                return 0;
        if (!json_is_object(req))
                return -EBADMSG;
        if ((r = get_opt_string(req, "user", &s->request_user)) < 0 ||
            (r = get_instant(req, "at", &s->request_at_usec)) < 0 ||
            (r = get_instant(req, "until", &s->request_until_usec)) < 0 ||
            (r = get_instant(req, "restore_at", &s->request_restore_usec)) < 0)
                return r;
        if (!s->request_user || !s->request_at_usec || !s->request_until_usec)
                return -EBADMSG;
        uid = json_object_get(req, "uid");
        s->request_uid = json_is_integer(uid) ? json_integer_value(uid) : -1;
        return 0;
}

/* The schedule and the fired triggers; written by newer agents, absent in older files. */
static int schedule_from_json(json_t *o, struct ks_state *s)
{
        json_t *revert = json_object_get(o, "revert"), *fired = json_object_get(o, "fired"), *v;
        const char *st;
        size_t i;
        int r;

        if ((r = get_opt_string(o, "trigger", &s->trigger)) < 0 ||
            (r = get_instant(o, "restore_at", &s->restore_at_usec)) < 0 ||
            (r = get_instant(o, "confirm_deadline", &s->confirm_usec)) < 0)
                return r;
        if (s->confirm_usec) {
                st = json_string_value(json_object_get(revert, "state"));
                if (!json_is_object(revert) || !st || (strcmp(st, "normal") != 0 && strcmp(st, "isolated") != 0))
                        return -EBADMSG;
                s->revert_isolated = strcmp(st, "isolated") == 0;
                if ((r = get_opt_string(revert, "policy", &s->revert_policy)) < 0)
                        return r;
        }
        if (fired && !json_is_array(fired))
                return -EBADMSG;
        json_array_foreach(fired, i, v) {
                if (!json_is_string(v))
                        return -EBADMSG;
                if ((r = state_add_fired(s, json_string_value(v))) < 0)
                        return r;
        }
        return 0;
}

static int get_usec(json_t *o, const char *key, uint64_t *ret)
{
        json_t *v = json_object_get(o, key);

        *ret = 0;
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) <= 0)
                return -EBADMSG;
        *ret = (uint64_t)json_integer_value(v);
        return 0;
}

/*
 * The boottime twins of the deadlines (boottime_to_json()), absent in older
 * files: taken in the same boot only, and for a deadline that is still set.
 * Otherwise the wall-clock instants decide, as after a reboot.
 */
static int boottime_from_json(json_t *o, struct ks_state *s)
{
        json_t *b = json_object_get(o, "boottime");
        const char *saved = json_string_value(json_object_get(b, "boot"));
        uint64_t restore, confirm, request;
        char boot[BOOT_ID_MAX];
        int r;

        if (!b || json_is_null(b))
                return 0;
        if (!json_is_object(b) || !saved)
                return -EBADMSG;
        if ((r = get_usec(b, "restore_at", &restore)) < 0 || (r = get_usec(b, "confirm_deadline", &confirm)) < 0 ||
            (r = get_usec(b, "request_until", &request)) < 0)
                return r;
        if (!*boot_id(boot) || strcmp(boot, saved) != 0)
                return 0;
        s->restore_boot_usec = s->restore_at_usec ? restore : 0;
        s->confirm_boot_usec = s->confirm_usec ? confirm : 0;
        s->request_until_boot_usec = s->request_user ? request : 0;
        return 0;
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
                r = timespec_parse_rfc3339(json_string_value(v), &s->since_usec);
                if (r < 0)
                        return -EBADMSG;
        }
        v = json_object_get(o, "uid");
        s->uid = json_is_integer(v) ? json_integer_value(v) : -1;
        if ((r = get_opt_string(o, "policy", &s->policy)) < 0 ||
            (r = get_opt_string(o, "user", &s->user)) < 0 ||
            (r = get_opt_string(o, "reason", &s->reason)) < 0)
                return r;
        if ((r = request_from_json(o, s)) < 0 || (r = uplink_ids_from_json(o, s)) < 0)
                return r;
        if ((r = schedule_from_json(o, s)) < 0)
                return r;
        return boottime_from_json(o, s);
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

int state_write(const char *dir, const struct ks_state *s, bool *owed)
{
        _cleanup_(json_decrefp) json_t *o = state_to_json(s);
        _cleanup_free_ char *text = NULL, *line = NULL;

        *owed = false;
        /* What could not be read back is not written: a state file must always load. */
        if (s->since_usec > TIMESPEC_INSTANT_MAX_USEC || s->restore_at_usec > TIMESPEC_INSTANT_MAX_USEC ||
            s->confirm_usec > TIMESPEC_INSTANT_MAX_USEC)
                return -ERANGE;
        if (!o || !(text = json_dumps(o, JSON_INDENT(2))))
                return -ENOMEM;
        /* Padded to STATE_FILE_SIZE if it fits: this save and the next can then overwrite it in place. */
        if (asprintf(&line, "%-*s\n", STATE_FILE_SIZE - 1, text) < 0)
                return -ENOMEM;
        *owed = write_file_in_place(dir, STATE_FILE, line, false) == 0;
        return *owed ? 0 : write_file_atomic(dir, STATE_FILE, line, 0644);
}

int state_sync(const char *dir)
{
        return fdatasync_file(dir, STATE_FILE);
}

int state_save(const char *dir, const struct ks_state *s)
{
        bool owed = false;
        int r = state_write(dir, s, &owed);

        return r < 0 || !owed ? r : state_sync(dir);
}
