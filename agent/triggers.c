/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


#include "cleanup.h"
#include "compile.h"
#include "compile-tripwire.h"
#include "log.h"
#include "nflog.h"
#include "nft.h"
#include "summary.h"
#include "timespec.h"
#include "timeutil.h"
#include "triggers.h"

#define TRIGGER_ID_MAX (sizeof("path:") + CONF_NAME_MAX)
/* A second without an over-rate event ends a streak (events come at up to 10 a second while over). */
#define TRIPWIRE_GAP_USEC (1500ULL * 1000ULL)
/* How often a path trigger whose directory went away looks for it again. */
#define REWATCH_USEC (1000ULL * 1000ULL)

struct path_watch {
        struct ks_triggers *t;
        const struct ks_conf_path *conf;        /* in t->conf */
        char id[TRIGGER_ID_MAX];                /* "path:NAME" */
        char *dir;
        char *base;
        sd_event_source *source;                /* NULL: disarmed, its directory went away (rewatch) */
        char refused[PATH_MAX + 64];            /* why the last rewatch was refused, logged once */
};

struct ks_triggers {
        struct triggers_context ctx;
        struct ks_conf conf;
        struct ks_diags problems;               /* of killswitch.conf: the triggers they concern are disarmed */
        struct path_watch *watches;
        size_t n_watches;
        sd_event_source *recheck;               /* defer: fire for files that are there */
        sd_event_source *rewatch;               /* timer: watch again the directories that went away */

        sd_event_source *heartbeat;             /* CLOCK_BOOTTIME */
        uint64_t heartbeat_deadline;            /* boottime; 0 when not armed */
        uint64_t heartbeat_last;                /* realtime of the last heartbeat, 0 if none */

        struct ks_nflog *nflog;                 /* the trip-wire's kernel events */
        bool tripwire_ok;                       /* listening: the table may be installed */
        bool tripwire_installed;
        uint64_t streak_start, last_event;      /* monotonic */
        uint64_t events;                        /* over-rate events since start */
};

/* ---- checking the configuration ---- */

static void drop_path(struct ks_conf *c, size_t i)
{
        free(c->paths[i].name);
        free(c->paths[i].path);
        free(c->paths[i].policy);
        memmove(&c->paths[i], &c->paths[i + 1], (c->n_paths - i - 1) * sizeof(c->paths[0]));
        c->n_paths--;
}

static int check_policy(struct ks_store *store, const char *file, unsigned line, const char *policy,
                        struct ks_diags *diags)
{
        struct ks_policy_entry *en = store_find(store, policy);

        if (en && en->policy)
                return 0;
        diags_add(diags, file, line, "Policy: \"%s\": %s", policy,
                  en ? "the policy failed to load (see 'killswitchctl policies')" : "no such policy");
        return -ENOENT;
}

/*
 * Could someone other than root make the trigger file appear? Every component
 * of its directory is lstat-ed from /: a symbolic link, a directory not owned
 * by root or writable by group or others is refused, but for a sticky one above
 * the last (/tmp: others cannot rename what root owns there). Returns 0, or
 * -EPERM with why (the offending directory) filled in.
 */
static int path_only_root_writes(const char *path, char *why, size_t size)
{
        const char *end = strrchr(path, '/');

        for (const char *p = path; p && p <= end; p = p < end ? strchr(p + 1, '/') : NULL) {
                _cleanup_free_ char *dir = strndup(path, p == path ? 1 : (size_t)(p - path));  /* "/", "/a", ... */
                bool last = p == end;
                struct stat st;

                if (!dir)
                        return -ENOMEM;
                if (lstat(dir, &st) < 0)
                        return 0;       /* missing: reported as such by the caller */
                if (S_ISLNK(st.st_mode))
                        snprintf(why, size, "%s is a symbolic link", dir);
                else if (st.st_uid != 0)
                        snprintf(why, size, "%s is owned by uid %u", dir, (unsigned)st.st_uid);
                else if ((st.st_mode & (S_IWGRP | S_IWOTH)) && (last || !(st.st_mode & S_ISVTX)))
                        snprintf(why, size, "%s is writable by %s (mode %04o)", dir,
                                 st.st_mode & S_IWOTH ? "everyone" : "its group", (unsigned)(st.st_mode & 07777));
                else
                        continue;
                return -EPERM;
        }
        return 0;
}

int triggers_check(const char *config_dir, struct ks_store *store, struct ks_conf *c, struct ks_diags *diags)
{
        _cleanup_free_ char *file = NULL;
        size_t before = diags->n;
        int r;

        if (asprintf(&file, "%s/%s", config_dir, CONF_FILE) < 0)
                return -ENOMEM;
        r = conf_parse_file(file, c, diags);
        if (r == -ENOENT)
                return 0;
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return (int)(diags->n - before);
        for (size_t i = 0; i < c->n_paths;) {
                _cleanup_free_ char *copy = strdup(c->paths[i].path);
                char why[PATH_MAX + 64];
                struct stat st;
                bool bad = check_policy(store, c->file, c->paths[i].policy_line, c->paths[i].policy, diags) < 0;

                if (!copy)
                        return -ENOMEM;
                if (stat(dirname(copy), &st) < 0 || !S_ISDIR(st.st_mode)) {
                        diags_add(diags, c->file, c->paths[i].path_line, "Path: \"%s\": the directory %s %s; it must "
                                  "exist when killswitchd starts", c->paths[i].path, copy,
                                  errno == ENOENT ? "does not exist" : "cannot be watched");
                        bad = true;
                } else if (path_only_root_writes(c->paths[i].path, why, sizeof(why)) < 0) {
                        diags_add(diags, c->file, c->paths[i].path_line, "Path: \"%s\": %s: others could create the "
                                  "file and isolate the machine; use a directory only root can write (and no "
                                  "symbolic links), e.g. /run/killswitch/triggers", c->paths[i].path, why);
                        bad = true;
                }
                if (bad)
                        drop_path(c, i);
                else
                        i++;
        }
        if (c->heartbeat.enabled &&
            check_policy(store, c->file, c->heartbeat.policy_line, c->heartbeat.policy, diags) < 0)
                c->heartbeat.enabled = false;
        if (c->tripwire.enabled) {
                const struct ks_policy *p = store_get(store, c->tripwire.policy);

                if (check_policy(store, c->file, c->tripwire.policy_line, c->tripwire.policy, diags) < 0) {
                        c->tripwire.enabled = false;
                } else if (p->n_uplinks == 0) {
                        diags_add(diags, c->file, c->tripwire.policy_line, "Policy: \"%s\": has no uplinks to "
                                  "watch", c->tripwire.policy);
                        c->tripwire.enabled = false;
                }
        }
        return (int)(diags->n - before);
}

/* ---- firing ---- */

/* The state in force (the owner's). */
static const struct ks_state *state(struct ks_triggers *t)
{
        return t->ctx.state(t->ctx.userdata);
}

/* Isolate with `policy`, once per incident; the reason says what happened. */
static void fire(struct ks_triggers *t, const char *id, const char *policy, const char *why)
{
        if (state_fired(state(t), id)) {
                log_debug("Trigger %s: already fired for this incident", id);
                return;
        }
        t->ctx.fire(t->ctx.userdata, id, policy, why);
}

/* ---- path triggers ---- */

static void check_path(struct path_watch *w, const char *how)
{
        char why[4200];

        if (access(w->conf->path, F_OK) < 0)
                return;
        snprintf(why, sizeof(why), "%s %s", w->conf->path, how);
        fire(w->t, w->id, w->conf->policy, why);
}

static int on_recheck(sd_event_source *s, void *userdata)
{
        struct ks_triggers *t = userdata;

        t->recheck = sd_event_source_disable_unref(t->recheck);
        for (size_t i = 0; i < t->n_watches; i++)
                if (t->watches[i].source && (!state(t)->isolated || !state_fired(state(t), t->watches[i].id)))
                        check_path(&t->watches[i], "exists");
        return 0;
}

static void schedule_recheck(struct ks_triggers *t)
{
        if (t->n_watches > 0 && !t->recheck &&
            sd_event_add_defer(t->ctx.event, &t->recheck, on_recheck, t) < 0)
                log_error("Cannot check the path triggers' files");
}

static void schedule_rewatch(struct ks_triggers *t);

static int on_inotify(sd_event_source *s, const struct inotify_event *ev, void *userdata)
{
        struct path_watch *w = userdata;

        if (ev->mask & IN_Q_OVERFLOW) {
                schedule_recheck(w->t);
                return 0;
        }
        /* The directory is gone (or renamed: the watch would follow it): watch the path again once it is back. */
        if (ev->mask & (IN_IGNORED | IN_MOVE_SELF)) {
                log_error("Path trigger %s: directory %s was %s; the trigger is disarmed until it is back",
                          w->conf->name, w->dir, ev->mask & IN_IGNORED ? "removed" : "renamed");
                w->source = sd_event_source_disable_unref(w->source);
                w->refused[0] = '\0';
                schedule_rewatch(w->t);
                return 0;
        }
        if (ev->len > 0 && strcmp(ev->name, w->base) == 0)
                check_path(w, "appeared");
        return 0;
}

/* Watch w's directory; the checks of triggers_check() again, as at a reload (refused: -EPERM, why in w->refused). */
static int watch_dir(struct ks_triggers *t, struct path_watch *w)
{
        struct stat st;

        if (stat(w->dir, &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        if (path_only_root_writes(w->conf->path, w->refused, sizeof(w->refused)) < 0)
                return -EPERM;
        return sd_event_add_inotify(t->ctx.event, &w->source, w->dir, IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE |
                                    IN_ATTRIB | IN_ONLYDIR | IN_MOVE_SELF, on_inotify, w);
}

static int on_rewatch(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct ks_triggers *t = userdata;
        bool again = false;

        for (size_t i = 0; i < t->n_watches; i++) {
                struct path_watch *w = &t->watches[i];
                char before[sizeof(w->refused)];
                int r;

                if (w->source)
                        continue;
                memcpy(before, w->refused, sizeof(before));
                r = watch_dir(t, w);
                if (r == -EPERM && strcmp(before, w->refused) != 0)
                        log_error("Path trigger %s: %s is back, but %s: others could create the file; the trigger "
                                  "stays disarmed", w->conf->name, w->dir, w->refused);
                again = again || r < 0;
                if (r >= 0)
                        log_info("Path trigger %s: %s is back; armed again", w->conf->name, w->dir);
        }
        if (again)
                schedule_rewatch(t);
        /* The file may have come with its directory. */
        schedule_recheck(t);
        return 0;
}

static void schedule_rewatch(struct ks_triggers *t)
{
        uint64_t at = now_monotonic_usec() + REWATCH_USEC;
        int r;

        if (t->rewatch) {
                r = sd_event_source_set_time(t->rewatch, at);
                if (r >= 0)
                        r = sd_event_source_set_enabled(t->rewatch, SD_EVENT_ONESHOT);
        } else {
                r = sd_event_add_time(t->ctx.event, &t->rewatch, CLOCK_MONOTONIC, at, 100 * 1000, on_rewatch, t);
        }
        if (r < 0)
                log_error_errno(r, "Cannot watch for the path triggers' directories: %m");
}

static int watch_path(struct ks_triggers *t, const struct ks_conf_path *p, struct path_watch *w)
{
        _cleanup_free_ char *d = strdup(p->path), *b = strdup(p->path);
        int r;

        if (!d || !b)
                return -ENOMEM;
        *w = (struct path_watch){ .t = t, .conf = p };
        snprintf(w->id, sizeof(w->id), "path:%s", p->name);
        w->dir = strdup(dirname(d));
        w->base = strdup(basename(b));
        if (!w->dir || !w->base)
                return -ENOMEM;
        r = watch_dir(t, w);
        if (r < 0)
                return r;
        log_info("Path trigger %s: isolating with policy %s when %s appears", p->name, p->policy, p->path);
        return 0;
}

/* ---- heartbeat ---- */

static int on_heartbeat_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct ks_triggers *t = userdata;
        char why[128], span[TIMESPEC_SPAN_MAX];

        t->heartbeat_deadline = 0;
        snprintf(why, sizeof(why), "no heartbeat for %s (dead man's switch)",
                 timespec_format_span(t->conf.heartbeat.timeout_usec, span, sizeof(span)));
        fire(t, "heartbeat", t->conf.heartbeat.policy, why);
        return 0;
}

static int heartbeat_arm(struct ks_triggers *t)
{
        uint64_t at = now_boottime_usec() + t->conf.heartbeat.timeout_usec;
        int r;

        if (t->heartbeat) {
                r = sd_event_source_set_time(t->heartbeat, at);
                if (r >= 0)
                        r = sd_event_source_set_enabled(t->heartbeat, SD_EVENT_ONESHOT);
        } else {
                r = sd_event_add_time(t->ctx.event, &t->heartbeat, CLOCK_BOOTTIME, at, 1000, on_heartbeat_timeout, t);
        }
        if (r < 0)
                return log_error_errno(r, "Cannot arm the heartbeat timer: %m");
        t->heartbeat_deadline = at;
        return 0;
}

int triggers_heartbeat(struct ks_triggers *t, const char *config_dir, uint64_t *ret_deadline_usec,
                       struct ks_error *e)
{
        int r;

        if (!t || !t->conf.heartbeat.enabled)
                return ks_error_set(e, -ENOENT, KS_ERR_NOT_CONFIGURED,
                                    "No heartbeat is configured: add [Heartbeat] Timeout=... to %s/%s and run "
                                    "'killswitchctl reload'", config_dir, CONF_FILE);
        t->heartbeat_last = now_realtime_usec();
        if (state_fired(state(t), "heartbeat")) {
                *ret_deadline_usec = 0;
                return 0;       /* fired for this incident: re-armed by the restore */
        }
        r = heartbeat_arm(t);
        if (r < 0)
                return ks_error_set(e, r, KS_ERR_INTERNAL, "Cannot arm the heartbeat timer: %s", strerror(-r));
        *ret_deadline_usec = t->heartbeat_last + t->conf.heartbeat.timeout_usec;
        return 0;
}

/* ---- egress trip-wire ---- */

/* The table that the policy's uplinks and [EgressTripwire] make. */
static int tripwire_compile(struct ks_triggers *t, struct ks_ruleset **ret)
{
        const struct ks_policy *p = store_get(t->ctx.store, t->conf.tripwire.policy);
        struct tripwire_spec spec;

        if (!p)
                return -ENOENT;
        spec = (struct tripwire_spec){ .uplinks = (const char (*)[16])p->uplinks, .n_uplinks = p->n_uplinks,
                                       .rate = t->conf.tripwire.rate, .log_group = t->conf.tripwire.log_group };
        return compile_tripwire(&spec, ret);
}

/* The kernel's table has the shape of what was sent (like inet killswitch's read-back). 0 or -EPROTO (diff). */
static int tripwire_readback(struct ks_triggers *t, const struct ks_ruleset *rs, char *diff, size_t size)
{
        struct ks_summary want = {}, have = {};
        int r;

        r = ruleset_summarize(rs, &want);
        if (r == 0)
                r = nft_table_summary(t->ctx.nft, TRIPWIRE_TABLE, true, &have);
        if (r == 0)
                r = summary_diff(&want, &have, true, diff, size);
        else
                snprintf(diff, size, "%s", strerror(-r));
        summary_clear(&want);
        summary_clear(&have);
        return r;
}

/* The table only while normal and armed; dropped otherwise (if it is there). */
static void tripwire_sync(struct ks_triggers *t)
{
        _cleanup_(ruleset_freep) struct ks_ruleset *rs = NULL;
        bool want = t->tripwire_ok && !state(t)->isolated && !state_fired(state(t), "tripwire") &&
                    store_get(t->ctx.store, t->conf.tripwire.policy);
        struct ks_error e = {};
        char diff[256];
        int r;

        if (!t->ctx.nft)
                return;
        if (!want && !t->tripwire_installed && nft_exists(t->ctx.nft, TRIPWIRE_TABLE, NULL) <= 0)
                return;
        r = want ? tripwire_compile(t, &rs) : 0;
        if (r < 0)
                ks_error_set(&e, r, KS_ERR_INTERNAL, "Could not build the nftables transaction: %s", strerror(-r));
        else if (want)
                r = nft_replace_table(t->ctx.nft, TRIPWIRE_TABLE, 0, rs, NULL, &e);
        else
                r = nft_delete_table(t->ctx.nft, TRIPWIRE_TABLE, NULL, &e);
        if (r < 0) {
                log_error("Could not %s the egress trip-wire (table inet %s): %s", want ? "install" : "remove",
                          TRIPWIRE_TABLE, e.msg);
                return;
        }
        if (want && tripwire_readback(t, rs, diff, sizeof(diff)) < 0)
                log_error("The egress trip-wire's table inet %s does not read back as it was sent: %s",
                          TRIPWIRE_TABLE, diff);
        t->tripwire_installed = want;
        t->streak_start = t->last_event = 0;
}

static void tripwire_event(struct ks_triggers *t)
{
        uint64_t now = now_monotonic_usec();
        char why[256], rate[32], span[TIMESPEC_SPAN_MAX];

        t->events++;
        if (!t->last_event || now - t->last_event > TRIPWIRE_GAP_USEC)
                t->streak_start = now;
        t->last_event = now;
        if (now - t->streak_start < t->conf.tripwire.for_usec || !t->tripwire_installed)
                return;
        snprintf(rate, sizeof(rate), "%llu", (unsigned long long)t->conf.tripwire.rate);
        snprintf(why, sizeof(why), "egress over %s bytes/s on the uplinks of policy %s for %s (exfiltration?)",
                 rate, t->conf.tripwire.policy, timespec_format_span(now - t->streak_start, span, sizeof(span)));
        t->streak_start = t->last_event = 0;
        fire(t, "tripwire", t->conf.tripwire.policy, why);
}

static void on_tripwire_event(void *userdata)
{
        tripwire_event(userdata);
}

static int tripwire_listen(struct ks_triggers *t)
{
        return nflog_new(t->ctx.event, t->conf.tripwire.log_group, on_tripwire_event, t, &t->nflog);
}

/* ---- setup ---- */

struct ks_triggers *triggers_free(struct ks_triggers *t)
{
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_watches; i++) {
                sd_event_source_disable_unref(t->watches[i].source);
                free(t->watches[i].dir);
                free(t->watches[i].base);
        }
        free(t->watches);
        sd_event_source_disable_unref(t->recheck);
        sd_event_source_disable_unref(t->rewatch);
        diags_clear(&t->problems);
        sd_event_source_disable_unref(t->heartbeat);
        nflog_free(t->nflog);
        conf_clear(&t->conf);
        free(t);
        return NULL;
}

static void setup(struct ks_triggers *t)
{
        struct ks_conf *c = &t->conf;
        int r;

        t->watches = calloc(c->n_paths ? c->n_paths : 1, sizeof(*t->watches));
        for (size_t i = 0; t->watches && i < c->n_paths; i++) {
                r = watch_path(t, &c->paths[i], &t->watches[t->n_watches]);
                if (r < 0) {
                        log_error_errno(r, "%s:%u: [PathTrigger %s]: cannot watch %s: %m", c->file, c->paths[i].path_line,
                                        c->paths[i].name, c->paths[i].path);
                        sd_event_source_disable_unref(t->watches[t->n_watches].source);
                        free(t->watches[t->n_watches].dir);
                        free(t->watches[t->n_watches].base);
                        continue;
                }
                t->n_watches++;
        }
        if (c->heartbeat.enabled && !state_fired(state(t), "heartbeat") && heartbeat_arm(t) == 0) {
                char span[TIMESPEC_SPAN_MAX];

                log_info("Heartbeat: isolating with policy %s unless 'killswitchctl heartbeat' comes every %s",
                         c->heartbeat.policy, timespec_format_span(c->heartbeat.timeout_usec, span, sizeof(span)));
        }
        if (c->tripwire.enabled) {
                r = tripwire_listen(t);
                if (r < 0)
                        log_error_errno(r, "%s:%u: [EgressTripwire]: cannot receive NFLOG group %u: %m (another "
                                        "program uses it? set LogGroup=); the trip-wire is disarmed", c->file,
                                        c->tripwire.line, c->tripwire.log_group);
                t->tripwire_ok = r >= 0;
        }
        tripwire_sync(t);
        schedule_recheck(t);
}

void triggers_load(struct ks_triggers **old, const struct triggers_context *ctx)
{
        struct ks_triggers *t = calloc(1, sizeof(*t));
        int r;

        if (!t) {
                log_error("Out of memory: triggers not loaded");
                return;
        }
        t->ctx = *ctx;
        r = triggers_check(ctx->config_dir, ctx->store, &t->conf, &t->problems);
        for (size_t i = 0; i < t->problems.n; i++)
                log_error("%s (the trigger is disarmed)", t->problems.msgs[i]);
        if (r < 0)
                log_error_errno(r, "Cannot load %s/%s: %m", ctx->config_dir, CONF_FILE);
        /* The old triggers go first: the NFLOG group can only be bound once. */
        *old = triggers_free(*old);
        *old = t;
        setup(t);
}

void triggers_restore_conf(struct ks_triggers *t, unsigned *ret_approvals, uint64_t *ret_timeout_usec)
{
        const struct ks_conf_restore *r = t ? &t->conf.restore : NULL;

        *ret_approvals = r && r->approvals ? r->approvals : 1;
        *ret_timeout_usec = r && r->approval_timeout_usec ? r->approval_timeout_usec
                                                          : CONF_DEFAULT_APPROVAL_TIMEOUT_USEC;
}

void triggers_reassert(struct ks_triggers *t)
{
        if (t)
                tripwire_sync(t);
}

void triggers_state_changed(struct ks_triggers *t)
{
        if (!t)
                return;
        tripwire_sync(t);
        if (state(t)->isolated)
                return;
        /* A restore re-arms: a new incident. */
        if (t->conf.heartbeat.enabled && !t->heartbeat_deadline)
                heartbeat_arm(t);
        schedule_recheck(t);
}

const struct ks_diags *triggers_problems(const struct ks_triggers *t)
{
        static const struct ks_diags none = {};

        return t ? &t->problems : &none;
}

json_t *triggers_json(struct ks_triggers *t)
{
        json_t *paths = json_array(), *hb = json_null(), *tw = json_null(), *problems = json_array();
        char buf[TIMESPEC_RFC3339_MAX];

        for (size_t i = 0; t && i < t->n_watches; i++) {
                const struct path_watch *w = &t->watches[i];

                json_array_append_new(paths, json_pack("{s:s, s:s, s:s, s:b, s:b}", "name", w->conf->name, "path",
                                                       w->conf->path, "policy", w->conf->policy, "armed",
                                                       w->source != NULL, "fired", state_fired(state(t), w->id)));
        }
        if (t && t->conf.heartbeat.enabled) {
                uint64_t now = now_boottime_usec(), left = t->heartbeat_deadline > now ? t->heartbeat_deadline - now : 0;

                json_decref(hb);
                hb = json_pack("{s:I, s:s, s:b, s:o, s:o}", "timeout_usec",
                               (json_int_t)t->conf.heartbeat.timeout_usec, "policy", t->conf.heartbeat.policy,
                               "fired", state_fired(state(t), "heartbeat"), "deadline",
                               t->heartbeat_deadline ? json_string(timespec_format_rfc3339(now_realtime_usec() + left,
                                                                                           buf, sizeof(buf)))
                                                     : json_null(),
                               "last", t->heartbeat_last ? json_string(timespec_format_rfc3339(t->heartbeat_last, buf,
                                                                                               sizeof(buf)))
                                                         : json_null());
        }
        if (t && t->conf.tripwire.enabled) {
                json_decref(tw);
                tw = json_pack("{s:I, s:I, s:i, s:s, s:b, s:b, s:I}", "rate", (json_int_t)t->conf.tripwire.rate,
                               "for_usec", (json_int_t)t->conf.tripwire.for_usec, "log_group",
                               (int)t->conf.tripwire.log_group, "policy", t->conf.tripwire.policy, "armed",
                               t->tripwire_installed, "fired", state_fired(state(t), "tripwire"), "events",
                               (json_int_t)t->events);
        }
        for (size_t i = 0; t && i < t->problems.n; i++)
                json_array_append_new(problems, json_string(t->problems.msgs[i]));
        return json_pack("{s:o, s:o, s:o, s:o}", "paths", paths, "heartbeat", hb, "tripwire", tw, "problems",
                         problems);
}
