/* SPDX-License-Identifier: MIT */
/* The incident report (methods-report.h): the history of one isolation and its counters. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "cleanup.h"
#include "log.h"
#include "manager.h"
#include "methods.h"
#include "methods-report.h"
#include "syncer.h"
#include "timespec.h"
#include "timeutil.h"

#define REFUSAL_USERS_MAX 8

static json_t *opt_instant(uint64_t usec)
{
        char buf[TIMESPEC_RFC3339_MAX];

        return usec ? json_string(timespec_format_rfc3339(usec, buf, sizeof(buf))) : json_null();
}

/* {"gateways", "services", "dropped", "dropped_by_uplink"} of the policy in force, as the kernel counts. */
static json_t *live_counters(struct ks_manager *m)
{
        json_t *o = json_object();

        if (o)
                methods_add_counters(m, o);
        return o;
}

void report_save_last(struct ks_manager *m)
{
        _cleanup_(json_decrefp) json_t *o = NULL;
        _cleanup_free_ char *text = NULL;

        if (!m->state.isolated)
                return;
        o = live_counters(m);
        if (!o || json_object_set_new(o, "policy", m->state.policy ? json_string(m->state.policy) : json_null()) < 0 ||
            json_object_set_new(o, "since", opt_instant(m->state.since_usec)) < 0 ||
            json_object_set_new(o, "until", opt_instant(now_realtime_usec())) < 0 ||
            !(text = json_dumps(o, JSON_COMPACT))) {
                log_warning("Out of memory: the counters of this isolation are not kept for its report");
                return;
        }
        /* The report reads them from memory; the file, replaced on a thread, is for after a restart. */
        free(m->report_last);
        m->report_last = strdup(text);
        syncer_save(&m->report_syncer, m->event, m->state_dir, REPORT_LAST_FILE,
                    "the counters of this isolation for its report", TAKE_PTR(text), 0640);
}

/* The counters saved last: by this process, or in the file (a previous one's). */
static json_t *load_saved(struct ks_manager *m)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -1;

        if (m->report_last)
                return json_loads(m->report_last, JSON_REJECT_DUPLICATES, NULL);
        if (asprintf(&path, "%s/%s", m->state_dir, REPORT_LAST_FILE) < 0)
                return NULL;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        return json_loadfd(fd, JSON_REJECT_DUPLICATES, NULL);
}

/* The saved counters of the last isolation, if they belong to [since, until]; NULL otherwise. */
static json_t *saved_counters(struct ks_manager *m, uint64_t since, uint64_t until)
{
        json_t *o = load_saved(m);
        uint64_t end = 0;

        if (!json_is_object(o) || !json_is_string(json_object_get(o, "until")) ||
            timespec_parse_rfc3339(json_string_value(json_object_get(o, "until")), &end) < 0 ||
            end < since || end > until + 5 * USEC_PER_SEC) {
                json_decref(o);
                return NULL;
        }
        json_object_del(o, "policy");
        json_object_del(o, "since");
        json_object_del(o, "until");
        return o;
}

static const char *entry_action(json_t *e)
{
        return json_string_value(json_object_get(e, "action")) ?: "";
}

static uint64_t entry_time(json_t *e)
{
        uint64_t t = 0;

        timespec_parse_rfc3339(json_string_value(json_object_get(e, "time")) ?: "", &t);
        return t;
}

static bool starts_isolation(json_t *e)
{
        return strcmp(entry_action(e), "isolate") == 0 || strcmp(entry_action(e), "fail-closed") == 0;
}

/*
 * The current or the last isolation in entries: [*first, *last] (the trigger
 * that caused it included; its restore included, if any). -ENOENT if none.
 */
static int last_isolation(json_t *entries, size_t *first, size_t *last, bool *ongoing)
{
        size_t n = json_array_size(entries), i, j;

        for (i = n; i > 0 && !starts_isolation(json_array_get(entries, i - 1)); i--)
                ;
        if (i == 0)
                return -ENOENT;
        *first = i - 1;
        if (*first > 0 && strcmp(entry_action(json_array_get(entries, *first - 1)), "trigger") == 0)
                (*first)--;
        for (j = i; j < n && strcmp(entry_action(json_array_get(entries, j)), "restore") != 0; j++)
                ;
        *ongoing = j == n;
        *last = j < n ? j : n - 1;
        return 0;
}

/* Refusals are summed up: how many, first and last, whose (at most REFUSAL_USERS_MAX names). */
static void add_refusal(json_t *sum, json_t *e)
{
        json_t *users = json_object_get(sum, "users"), *u = json_object_get(e, "user"), *v;
        size_t i;

        json_object_set_new(sum, "count", json_integer(json_integer_value(json_object_get(sum, "count")) + 1));
        if (json_is_null(json_object_get(sum, "first")))
                json_object_set(sum, "first", json_object_get(e, "time"));
        json_object_set(sum, "last", json_object_get(e, "time"));
        if (!json_is_string(u) || json_array_size(users) >= REFUSAL_USERS_MAX)
                return;
        json_array_foreach(users, i, v)
                if (json_equal(v, u))
                        return;
        json_array_append(users, u);
}

static json_t *window_entries(json_t *entries, size_t first, size_t last, json_t *refusals)
{
        json_t *timeline = json_array(), *e;

        for (size_t i = first; timeline && i <= last && i < json_array_size(entries); i++) {
                e = json_array_get(entries, i);
                if (strcmp(entry_action(e), "refused") == 0)
                        add_refusal(refusals, e);
                else
                        json_array_append(timeline, e);
        }
        return timeline;
}

/* The entries within [since, until], as indexes. false if none. */
static bool entries_between(json_t *entries, uint64_t since, uint64_t until, size_t *first, size_t *last)
{
        bool found = false;

        for (size_t i = 0; i < json_array_size(entries); i++) {
                uint64_t t = entry_time(json_array_get(entries, i));

                if (t < since || t > until)
                        continue;
                if (!found)
                        *first = i;
                *last = i;
                found = true;
        }
        return found;
}

int report_build(struct ks_manager *m, uint64_t since, uint64_t until, json_t **ret, struct ks_error *e)
{
        _cleanup_(json_decrefp) json_t *entries = NULL, *refusals = NULL;
        uint64_t now = now_realtime_usec();
        size_t first = 0, last = 0;
        bool ongoing = false, any = true;
        json_t *start, *kept;
        int r;

        r = audit_history(m->audit, AUDIT_HISTORY_MAX, &entries);
        if (r < 0)
                return ks_error_set(e, r, KS_ERR_INTERNAL, "Could not read the history in %s/%s: %s",
                                    m->state_dir, AUDIT_HISTORY_FILE, strerror(-r));
        if (!since) {
                if (last_isolation(entries, &first, &last, &ongoing) < 0)
                        return ks_error_set(e, -ENOENT, KS_ERR_NOT_ISOLATED,
                                            "No isolation in the history (%s/%s): nothing to report; give --since "
                                            "and --until for a window", m->state_dir, AUDIT_HISTORY_FILE);
                ongoing = ongoing && m->state.isolated;
                since = entry_time(json_array_get(entries, first));
                until = ongoing ? 0 : entry_time(json_array_get(entries, last));
        } else {
                any = entries_between(entries, since, until ? until : now, &first, &last);
                ongoing = !until && m->state.isolated;
        }
        refusals = json_pack("{s:i, s:n, s:n, s:[]}", "count", 0, "first", "last", "users");
        if (!refusals)
                return ks_error_set(e, -ENOMEM, KS_ERR_INTERNAL, "Out of memory");
        start = any ? json_array_get(entries, first) : NULL;
        kept = ongoing ? live_counters(m) : saved_counters(m, since, until ? until : now);
        if (kept)
                json_object_set_new(kept, "source", json_string(ongoing ? "live" : "saved"));
        *ret = json_pack("{s:o, s:o, s:b, s:o, s:o, s:O, s:o}",
                         "since", opt_instant(since), "until", opt_instant(until), "ongoing", ongoing,
                         "policy", start && json_is_string(json_object_get(start, "policy"))
                                   ? json_incref(json_object_get(start, "policy")) : json_null(),
                         "timeline", any ? window_entries(entries, first, last, refusals) : json_array(),
                         "refusals", refusals,
                         "kept", kept ? kept : json_null());
        if (!*ret)
                return ks_error_set(e, -ENOMEM, KS_ERR_INTERNAL, "Out of memory");
        return 0;
}
