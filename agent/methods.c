/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager-approve.h"
#include "audit.h"
#include "cleanup.h"
#include "compile.h"
#include "config.h"
#include "error.h"
#include "idl.h"
#include "log.h"
#include "manager.h"
#include "manager-read.h"
#include "methods.h"
#include "methods-drops.h"
#include "nft.h"
#include "methods-report.h"
#include "schedule.h"
#include "timespec.h"
#include "timeutil.h"
#include "triggers.h"

#define REASON_MAX 1024

static json_t *opt_string(const char *s)
{
        return s ? json_string(s) : json_null();
}

/*
 * The reply for an error the manager decided, with the fields its declaration in
 * io.killswitch.varlink promises: `policy` for NoSuchPolicy, `parameter` for
 * InvalidParameter (the one the call used), `errno` where the kernel had a say.
 */
static json_t *reply_from_error(const struct ks_error *e, const char *policy, const char *parameter)
{
        const char *id = e->id ? e->id : KS_ERR_INTERNAL;
        json_t *extra = json_object();

        if (!extra)
                return NULL;
        if (strcmp(id, KS_ERR_NO_POLICY) == 0)
                json_object_set_new(extra, "policy", json_string(policy ? policy : DEFAULT_POLICY));
        else if (strcmp(id, KS_ERR_PARAM) == 0)
                json_object_set_new(extra, "parameter", json_string(parameter ? parameter : "parameters"));
        else if (e->error && (strcmp(id, KS_ERR_APPLY) == 0 || strcmp(id, KS_ERR_STATE) == 0 ||
                              strcmp(id, KS_ERR_INTERNAL) == 0))
                json_object_set_new(extra, "errno", json_integer(e->error));
        return reply_error(id, extra, "%s", e->msg);
}

static json_t *string_array(char (*items)[16], size_t n)
{
        json_t *a = json_array();

        for (size_t i = 0; a && i < n; i++)
                json_array_append_new(a, json_string(items[i]));
        return a;
}

static const struct nft_counter *counter_find(const struct nft_counter *c, size_t n, const char *name)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(c[i].name, name) == 0)
                        return &c[i];
        return NULL;
}

static json_t *counter_json(const char *name, uint64_t packets, uint64_t bytes)
{
        return json_pack("{s:s, s:I, s:I}", "name", name, "packets", (json_int_t)packets, "bytes",
                         (json_int_t)bytes);
}

/* A drop counter "dropped_in[/UPLINK]" or "dropped_out[/UPLINK]": add it up, per uplink too. */
static bool add_drop_counter(const struct nft_counter *c, const char *rest, uint64_t sum[2], json_t *per_uplink)
{
        const char *dir = strncmp(rest, COUNTER_DROPPED_IN, strlen(COUNTER_DROPPED_IN)) == 0 ? "in"
                        : strncmp(rest, COUNTER_DROPPED_OUT, strlen(COUNTER_DROPPED_OUT)) == 0 ? "out" : NULL;
        const char *uplink;

        if (!dir)
                return false;
        sum[0] += c->packets;
        sum[1] += c->bytes;
        uplink = strchr(rest, '/');
        if (uplink)
                json_array_append_new(per_uplink, json_pack("{s:s, s:s, s:I, s:I}", "uplink", uplink + 1,
                                                            "direction", dir, "packets", (json_int_t)c->packets,
                                                            "bytes", (json_int_t)c->bytes));
        return true;
}

/* Gateway and drop counters of the policy in force, as the kernel counts them. */
static void status_add_counters(struct ks_manager *m, json_t *o)
{
        const struct ks_policy *p = manager_active_policy(m);
        const char *policy = m->state.isolated ? m->state.policy : NULL;
        json_t *gws = json_array(), *svcs = json_array(), *per_uplink = json_array();
        struct nft_counter *c = NULL;
        char prefix[POLICY_NAME_MAX + 2];
        uint64_t sum[2] = {};
        size_t n = 0;

        if (policy && nft_read_counters(m->nft, TABLE_NAME, &c, &n) < 0)
                log_warning("Could not read the counters of table inet %s", TABLE_NAME);
        snprintf(prefix, sizeof(prefix), "%s%s", policy ? policy : "", COMPILE_NAME_SEP);
        for (size_t i = 0; i < n; i++) {
                const char *rest = c[i].name + strlen(prefix);

                if (strncmp(c[i].name, prefix, strlen(prefix)) != 0 || add_drop_counter(&c[i], rest, sum, per_uplink))
                        continue;
                /* Without the policy (adopted from the kernel), list gateways in the kernel's order. */
                if (!p && strncmp(rest, COUNTER_GATEWAY_PREFIX, strlen(COUNTER_GATEWAY_PREFIX)) == 0)
                        json_array_append_new(gws, counter_json(rest + strlen(COUNTER_GATEWAY_PREFIX),
                                                                c[i].packets, c[i].bytes));
                if (!p && strncmp(rest, COUNTER_SERVICE_PREFIX, strlen(COUNTER_SERVICE_PREFIX)) == 0)
                        json_array_append_new(svcs, counter_json(rest + strlen(COUNTER_SERVICE_PREFIX),
                                                                 c[i].packets, c[i].bytes));
        }
        for (size_t i = 0; p && i < p->n_gateways; i++) {
                char name[COMPILE_NAME_SIZE];
                const struct nft_counter *k = NULL;

                if (compile_gateway_counter_name(name, sizeof(name), p->name, p->gateways[i].name) == 0)
                        k = counter_find(c, n, name);
                json_array_append_new(gws, counter_json(p->gateways[i].name, k ? k->packets : 0, k ? k->bytes : 0));
        }
        for (size_t i = 0; p && i < p->n_services; i++) {
                char name[COMPILE_NAME_SIZE];
                const struct nft_counter *k = NULL;

                if (compile_service_counter_name(name, sizeof(name), p->name, p->services[i].name) == 0)
                        k = counter_find(c, n, name);
                json_array_append_new(svcs, counter_json(p->services[i].name, k ? k->packets : 0, k ? k->bytes : 0));
        }
        json_object_set_new(o, "gateways", gws);
        json_object_set_new(o, "services", svcs);
        json_object_set_new(o, "dropped", json_pack("{s:I, s:I}", "packets", (json_int_t)sum[0], "bytes",
                                                    (json_int_t)sum[1]));
        json_object_set_new(o, "dropped_by_uplink", per_uplink);
        nft_counters_free(c, n);
}

static const char *prefix_str(const struct ks_prefix *px, char *buf, size_t size)
{
        char addr[INET6_ADDRSTRLEN];
        unsigned full = px->family == AF_INET ? 32 : 128;

        if (!inet_ntop(px->family, px->addr, addr, sizeof(addr)))
                snprintf(addr, sizeof(addr), "?");
        if (px->len == full)
                snprintf(buf, size, "%s", addr);
        else
                snprintf(buf, size, "%s/%u", addr, px->len);
        return buf;
}

/* {"gateway"|"service": OWNER, "name": NAME, "addresses": [...]} per host name. */
static void hostnames_add(json_t *a, const char *kind, const char *owner, const struct ks_hostname *hs, size_t n)
{
        for (size_t j = 0; a && j < n; j++) {
                const struct ks_hostname *h = &hs[j];
                json_t *addrs = json_array();
                char buf[INET6_ADDRSTRLEN + 8];

                for (size_t k = 0; k < h->n_addrs; k++)
                        json_array_append_new(addrs, json_string(prefix_str(&h->addrs[k], buf, sizeof(buf))));
                json_array_append_new(a, json_pack("{s:o, s:o, s:s, s:o}", "gateway",
                                                   strcmp(kind, "gateway") == 0 ? json_string(owner) : json_null(),
                                                   "service",
                                                   strcmp(kind, "service") == 0 ? json_string(owner) : json_null(),
                                                   "name", h->name, "addresses", addrs));
        }
}

/* What each host name in Address= (and From=) resolved to when the policy was loaded (pinned since). */
static json_t *hostnames_json(const struct ks_policy *p)
{
        json_t *a = json_array();

        for (size_t i = 0; a && p && i < p->n_gateways; i++)
                hostnames_add(a, "gateway", p->gateways[i].name, p->gateways[i].hostnames, p->gateways[i].n_hostnames);
        for (size_t i = 0; a && p && i < p->n_services; i++) {
                const struct ks_service *s = &p->services[i];

                hostnames_add(a, "service", s->name, s->hostnames, s->n_hostnames);
                hostnames_add(a, "service", s->name, s->from_hostnames, s->n_from_hostnames);
        }
        return a;
}

/* The same as comment lines for `show`: "# gateway mail: mail.example.org = 192.0.2.25, ...". */
static char *hostnames_comment(const struct ks_policy *p)
{
        _cleanup_(json_decrefp) json_t *a = hostnames_json(p);
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        size_t i;
        json_t *h;

        if (!f)
                return NULL;
        json_array_foreach(a, i, h) {
                size_t k;
                json_t *addr;

                const char *kind = json_is_string(json_object_get(h, "service")) ? "service" : "gateway";

                fprintf(f, "# %s %s: %s =", kind, json_string_value(json_object_get(h, kind)),
                        json_string_value(json_object_get(h, "name")));
                json_array_foreach(json_object_get(h, "addresses"), k, addr)
                        fprintf(f, "%s %s", k ? "," : "", json_string_value(addr));
                fputs(" (resolved at load, pinned)\n", f);
        }
        fclose(f);
        return text;
}

static json_t *opt_instant(uint64_t usec)
{
        char buf[TIMESPEC_RFC3339_MAX];

        return usec ? json_string(timespec_format_rfc3339(usec, buf, sizeof(buf))) : json_null();
}

/* The deadlines as they will come (transition_deadline_shown), 0 if none or not isolated. */
struct shown_deadlines {
        uint64_t restore_at, confirm;
};

static struct shown_deadlines shown_deadlines(const struct ks_state *s)
{
        uint64_t now = now_realtime_usec(), now_boot = now_boottime_usec();

        if (!s->isolated)
                return (struct shown_deadlines){};
        return (struct shown_deadlines){
                .restore_at = transition_deadline_shown(s->restore_at_usec, s->restore_boot_usec, now, now_boot),
                .confirm = transition_deadline_shown(s->confirm_usec, s->confirm_boot_usec, now, now_boot),
        };
}

/* The next thing the agent will do by itself: {action, at, confirm, revert_to}, or null. */
static json_t *pending_json(const struct ks_state *s, const struct shown_deadlines *d)
{
        bool revert;

        if (!d->restore_at && !d->confirm)
                return json_null();
        revert = d->confirm && (!d->restore_at || d->confirm <= d->restore_at);
        return json_pack("{s:s, s:o, s:b, s:o}",
                         "action", revert ? (s->revert_isolated ? "switch" : "restore") : "restore",
                         "at", opt_instant(revert ? d->confirm : d->restore_at),
                         "confirm", revert,
                         "revert_to", revert && s->revert_isolated ? opt_string(s->revert_policy) : json_null());
}

/* What cuts the uplinks now (manager_layers), e.g. ["inet hooks", "netdev ingress+egress on wan0", ...]. */
static json_t *layers_json(struct ks_manager *m)
{
        char **v = manager_layers(m);
        json_t *a = json_array();

        for (size_t i = 0; v && v[i]; i++) {
                json_array_append_new(a, json_string(v[i]));
                free(v[i]);
        }
        free(v);
        return a;
}

void methods_add_counters(struct ks_manager *m, json_t *o)
{
        status_add_counters(m, o);
}

static json_t *status_json(struct ks_manager *m)
{
        const struct ks_policy *p = manager_active_policy(m);
        const struct ks_state *s = &m->state;
        struct shown_deadlines d = shown_deadlines(s);
        char since[32];
        json_t *o;

        o = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                      "state", s->isolated ? "isolated" : "normal",
                      "policy", opt_string(s->isolated ? s->policy : NULL),
                      "description", opt_string(p ? p->description : NULL),
                      "since", s->since_usec ? json_string(timespec_format_rfc3339(s->since_usec, since, sizeof(since)))
                                             : json_null(),
                      "user", opt_string(s->user),
                      "uid", s->uid >= 0 ? json_integer(s->uid) : json_null(),
                      "reason", opt_string(s->reason),
                      "restore_at", opt_instant(d.restore_at),
                      "uplinks", p ? string_array(p->uplinks, p->n_uplinks) : json_array(),
                      "apply_usec", m->has_last_apply ? json_integer((json_int_t)m->last_apply_usec)
                                                      : json_null());
        if (o) {
                json_object_set_new(o, "reassertions", json_integer(m->reassertions));
                json_object_set_new(o, "rate_limited", json_boolean(m->rate_limited));
                json_object_set_new(o, "applied", json_boolean(manager_applied(m)));
                json_object_set_new(o, "protection", json_string(manager_protection(m)));
                json_object_set_new(o, "layers", layers_json(m));
                json_object_set_new(o, "resolved", hostnames_json(p));
                json_object_set_new(o, "trigger", opt_string(s->trigger));
                json_object_set_new(o, "pending", pending_json(s, &d));
                json_object_set_new(o, "confirm_deadline", opt_instant(d.confirm));
                json_object_set_new(o, "restore_request", approve_request_json(m));
                json_object_set_new(o, "triggers", triggers_json(m->triggers));
                status_add_counters(m, o);
                json_object_set_new(o, "drops", drops_summary_json(m));
        }
        return o;
}

static json_t *method_status(struct ks_manager *m, const struct ks_actor *a, json_t *params)
{
        return reply_ok(status_json(m));
}

/* An optional string parameter; NULL reply on success, an error reply otherwise. */
static json_t *get_string_param(json_t *params, const char *key, size_t max, const char **ret)
{
        json_t *v = json_object_get(params, key);

        *ret = NULL;
        if (!v || json_is_null(v))
                return NULL;
        if (!json_is_string(v) || json_string_length(v) > max || strlen(json_string_value(v)) != json_string_length(v))
                return reply_error(KS_ERR_PARAM, json_pack("{s:s}", "parameter", key),
                                   "Parameter '%s' must be a string of at most %zu bytes", key, max);
        *ret = json_string_value(v);
        return NULL;
}

#define TIME_PARAM_MAX 64

static json_t *bad_param(const char *key, const char *value, const char *what)
{
        return reply_error(KS_ERR_PARAM, json_pack("{s:s}", "parameter", key), "Parameter '%s': \"%s\" is not %s",
                           key, value, what);
}

/* An optional duration parameter ("90s", "1h30m"), from 1 s to a year; *ret 0 if absent. */
static json_t *get_duration_param(json_t *params, const char *key, uint64_t *ret)
{
        const char *v;
        json_t *bad;

        *ret = 0;
        if ((bad = get_string_param(params, key, TIME_PARAM_MAX, &v)) || !v)
                return bad;
        if (timespec_parse_duration(v, ret) < 0 || *ret < USEC_PER_SEC)
                return bad_param(key, v, "a duration of at least 1s; " TIMESPEC_DURATION_HELP);
        if (*ret > TIMESPEC_SCHEDULE_MAX_USEC)
                return bad_param(key, v, "a duration of at most a year (366d)");
        return NULL;
}

/*
 * The restore instant of "restore_at" (RFC 3339 with Z or an offset: local
 * times are the caller's business, killswitchctl converts them) or
 * "restore_in" (a duration from now, on the agent's clock); 0 if neither.
 */
static json_t *get_restore_param(json_t *params, uint64_t *ret, uint64_t *ret_boot)
{
        uint64_t in = 0, now = now_realtime_usec();
        const char *at;
        char when[TIMESPEC_RFC3339_MAX];
        json_t *bad;

        *ret = 0;
        *ret_boot = 0;
        if ((bad = get_string_param(params, "restore_at", TIME_PARAM_MAX, &at)) ||
            (bad = get_duration_param(params, "restore_in", &in)))
                return bad;
        if (at && in)
                return reply_error(KS_ERR_PARAM, json_pack("{s:s}", "parameter", "restore_in"),
                                   "Give 'restore_at' or 'restore_in', not both");
        if (at && timespec_parse_rfc3339(at, ret) < 0)
                return bad_param("restore_at", at, "an RFC 3339 instant with Z or an offset, e.g. "
                                 "2026-12-01T17:00:00Z");
        if (at && *ret <= now)
                return reply_error(KS_ERR_PARAM, json_pack("{s:s}", "parameter", "restore_at"),
                                   "The restore time %s has already passed", at);
        *ret_boot = in ? schedule_now_boottime() + in : 0;  /* a duration counts on the agent's clock */
        if (in)
                *ret = now + in;
        if (*ret && *ret - now > 366ULL * 24 * 3600 * USEC_PER_SEC)
                return reply_error(KS_ERR_PARAM, json_pack("{s:s}", "parameter", at ? "restore_at" : "restore_in"),
                                   "The restore time %s is more than a year away",
                                   timespec_format_rfc3339(*ret, when, sizeof(when)));
        return NULL;
}

/* Which of the two names the restore instant, for an InvalidParameter the manager decides. */
static const char *restore_param(json_t *params)
{
        return json_object_get(params, "restore_in") ? "restore_in" : "restore_at";
}

/* What pended before a change (the scheduled restore as shown, a four-eyes request), to say what it dropped. */
struct pending_before {
        uint64_t restore_at;
        json_t *request;
};

static struct pending_before pending_before(struct ks_manager *m)
{
        return (struct pending_before){ .restore_at = shown_deadlines(&m->state).restore_at,
                                        .request = approve_request_json(m) };
}

/*
 * The reply of a change that may drop what pended: the status, with dropped_restore_at (the scheduled
 * restore that is gone, not replaced) and dropped_request (the four-eyes request that is gone).
 */
static json_t *reply_dropped(struct ks_manager *m, struct pending_before *before, json_t *extra)
{
        json_t *o = status_json(m), *now = approve_request_json(m);
        bool request_gone = !json_is_null(before->request) &&
                            (json_is_null(now) || !json_equal(json_object_get(now, "at"),
                                                              json_object_get(before->request, "at")));

        if (o) {
                json_object_set_new(o, "dropped_restore_at", opt_instant(m->state.isolated && m->state.restore_at_usec
                                                                         ? 0 : before->restore_at));
                json_object_set(o, "dropped_request", request_gone ? before->request : json_null());
                if (extra)
                        json_object_update(o, extra);
        }
        json_decref(now);
        json_decref(extra);
        json_decref(before->request);
        return reply_ok(o);
}

static json_t *method_isolate(struct ks_manager *m, const struct ks_actor *a, json_t *params)
{
        struct ks_isolate_opts o = {};
        struct pending_before before;
        const char *policy, *reason;
        struct ks_error e = {};
        json_t *bad, *force = json_object_get(params, "force");
        bool repeat;

        if ((bad = get_string_param(params, "policy", POLICY_NAME_MAX, &policy)) ||
            (bad = get_string_param(params, "reason", REASON_MAX, &reason)) ||
            (bad = get_restore_param(params, &o.restore_at_usec, &o.restore_boot_usec)) ||
            (bad = get_duration_param(params, "confirm_in", &o.confirm_usec)))
                return bad;
        if (force && !json_is_boolean(force))
                return reply_error(KS_ERR_PARAM, json_pack("{s:s}", "parameter", "force"),
                                   "Parameter 'force' must be a boolean");
        o.force = json_is_true(force);
        o.approvals = approve_needed(m);
        repeat = transition_repeat(&m->state, policy ? policy : DEFAULT_POLICY);
        before = pending_before(m);
        if (manager_isolate(m, policy, a, reason, &o, &e) < 0) {
                json_decref(before.request);
                return reply_from_error(&e, policy, restore_param(params));
        }
        return reply_dropped(m, &before, json_pack("{s:b}", "repeated", repeat));
}

/* Restore now, or with restore_at/restore_in: schedule it. */
static json_t *method_restore(struct ks_manager *m, const struct ks_actor *a, json_t *params)
{
        struct ks_error e = {};
        const char *reason;
        uint64_t at = 0, boot = 0;
        json_t *bad, *force = json_object_get(params, "force");

        if ((bad = get_string_param(params, "reason", REASON_MAX, &reason)) ||
            (bad = get_restore_param(params, &at, &boot)))
                return bad;
        if (force && !json_is_boolean(force))
                return reply_error(KS_ERR_PARAM, json_pack("{s:s}", "parameter", "force"),
                                   "Parameter 'force' must be a boolean");
        if (approve_restore(m, a, at, boot, reason, json_is_true(force), &e) < 0) {
                /* Four eyes: say who asked and until when it waits. */
                if (e.id && strcmp(e.id, KS_ERR_WAITING) == 0)
                        return reply_error(KS_ERR_WAITING, json_pack("{s:o}", "request", approve_request_json(m)),
                                           "%s", e.msg);
                return reply_from_error(&e, NULL, restore_param(params));
        }
        return reply_ok(status_json(m));
}

static json_t *method_cancel(struct ks_manager *m, const struct ks_actor *a, json_t *params)
{
        struct pending_before before;
        struct ks_error e = {};
        const char *reason;
        json_t *bad;

        if ((bad = get_string_param(params, "reason", REASON_MAX, &reason)))
                return bad;
        before = pending_before(m);
        if (manager_cancel(m, a, reason, &e) < 0) {
                json_decref(before.request);
                return reply_from_error(&e, NULL, NULL);
        }
        return reply_dropped(m, &before, NULL);
}

static json_t *method_confirm(struct ks_manager *m, const struct ks_actor *a, json_t *params)
{
        struct ks_error e = {};

        if (manager_confirm(m, a, &e) < 0)
                return reply_from_error(&e, NULL, NULL);
        return reply_ok(status_json(m));
}

static json_t *method_heartbeat(struct ks_manager *m, const struct ks_actor *a, json_t *params)
{
        struct ks_error e = {};
        uint64_t deadline = 0;

        if (triggers_heartbeat(m->triggers, m->config_dir, &deadline, &e) < 0)
                return reply_from_error(&e, NULL, NULL);
        return reply_ok(json_pack("{s:b, s:o}", "armed", deadline != 0, "deadline", opt_instant(deadline)));
}

static json_t *diags_json(const struct ks_diags *d)
{
        json_t *a = json_array();

        for (size_t i = 0; a && i < d->n; i++)
                json_array_append_new(a, json_string(d->msgs[i]));
        return a;
}

static json_t *gateway_names(const struct ks_policy *p)
{
        json_t *a = json_array();

        for (size_t i = 0; a && i < p->n_gateways; i++)
                json_array_append_new(a, json_string(p->gateways[i].name));
        return a;
}

static json_t *service_names(const struct ks_policy *p)
{
        json_t *a = json_array();

        for (size_t i = 0; a && i < p->n_services; i++)
                json_array_append_new(a, json_string(p->services[i].name));
        return a;
}

/* {"policies":[...], "failed":[...]} from the store; used by Policies and Reload. */
static json_t *store_json(struct ks_manager *m, const char *ok_key)
{
        json_t *good = json_array(), *failed = json_array();

        for (size_t i = 0; i < m->store.n; i++) {
                const struct ks_policy_entry *en = &m->store.items[i];
                const struct ks_policy *p = en->policy;
                bool active = m->state.isolated && m->state.policy && strcmp(m->state.policy, en->name) == 0;

                if (p)
                        json_array_append_new(good, json_pack("{s:s, s:o, s:s, s:o, s:o, s:o, s:b, s:o}", "name",
                                                              en->name, "description", opt_string(p->description),
                                                              "file", en->path, "uplinks",
                                                              string_array(p->uplinks, p->n_uplinks),
                                                              "gateways", gateway_names(p),
                                                              "services", service_names(p), "active", active,
                                                              "resolved", hostnames_json(p)));
                if (en->errors.n > 0)
                        json_array_append_new(failed, json_pack("{s:s, s:s, s:o}", "name", en->name, "file",
                                                                en->path, "errors", diags_json(&en->errors)));
        }
        return json_pack("{s:o, s:o}", ok_key, good, "failed", failed);
}

static json_t *method_policies(struct ks_manager *m, const struct ks_actor *a, json_t *params)
{
        return reply_ok(store_json(m, "policies"));
}

/* Show's reply: the policy's ruleset text, with what its host names resolved to. */
static json_t *show_reply(const struct ks_policy *p)
{
        _cleanup_free_ char *text = NULL, *comment = NULL;
        int r;

        r = compile_text(p, TABLE_NAME, &text);
        if (r < 0)
                return reply_error(KS_ERR_INTERNAL, NULL, "Could not compile policy %s: %s", p->name, strerror(-r));
        comment = hostnames_comment(p);
        if (comment && *comment) {
                char *both = NULL;

                if (asprintf(&both, "%s%s", comment, text) < 0)
                        return NULL;
                free(text);
                text = both;
        }
        return reply_ok(json_pack("{s:s, s:s, s:o}", "policy", p->name, "ruleset", text, "resolved",
                                  hostnames_json(p)));
}

/* A Show answered off the loop: compiling a large policy, and the JSON text of its reply, take long. */
struct show_call {
        struct control_call *call;
        char *reply;            /* its JSON text (NULL: out of memory) */
        uint64_t cpu_usec;      /* the thread's CPU time, charged to the caller */
};

/* On the read's thread: jansson's values are the thread's own. */
static int show_work(const struct ks_policy *p, void *userdata)
{
        struct show_call *s = userdata;
        uint64_t cpu = now_usec(CLOCK_THREAD_CPUTIME_ID);
        _cleanup_(json_decrefp) json_t *reply = show_reply(p);

        s->reply = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
        s->cpu_usec = now_usec(CLOCK_THREAD_CPUTIME_ID) - cpu;
        return 0;
}

static bool show_gone(void *userdata)
{
        struct show_call *s = userdata;

        return control_call_gone(s->call);
}

static void show_done(struct ks_manager *m, void *userdata, int r)
{
        struct show_call *s = userdata;
        _cleanup_(json_decrefp) json_t *error = NULL;

        control_charge(s->call, s->cpu_usec);
        if (r == 0)
                control_reply_text(s->call, s->reply);
        else {
                error = r == -ECANCELED ?
                        reply_error(KS_ERR_INTERNAL, NULL, "The agent is stopping; ask again once it is back") :
                        reply_error(KS_ERR_INTERNAL, NULL, "Could not compile the policy: %s", strerror(-r));
                control_reply(s->call, error);
        }
        free(s->reply);
        free(s);
}

static json_t *method_show(struct ks_manager *m, const struct ks_actor *a, json_t *params)
{
        const struct ks_policy *p;
        struct show_call *s;
        const char *name;
        struct ks_error e = {};
        json_t *bad;
        int r;

        if ((bad = get_string_param(params, "policy", POLICY_NAME_MAX, &name)))
                return bad;
        if (manager_find_policy(m, name ? name : DEFAULT_POLICY, &p, &e) < 0)
                return reply_from_error(&e, name, NULL);
        s = calloc(1, sizeof(*s));
        if (!s || !a->peer || !(s->call = control_defer(a->peer))) {
                free(s);
                return show_reply(p);   /* answered here, then */
        }
        r = manager_read_policy(m, p, !a->peer->trusted, show_work, show_gone, show_done, s);
        if (r < 0) {
                control_undefer(s->call);
                free(s);
                return r == -EBUSY ? reply_error(KS_ERR_BUSY, NULL, "Too many Show requests waiting%s; try again",
                                                 a->peer->trusted ? "" : " (of users outside group killswitch)")
                                   : show_reply(p);
        }
        return NULL;
}

/* Files named in ReloadFailed's message; the others are counted ("and 3 more"). */
#define RELOAD_MESSAGE_FILES 5

/*
 * "2 policy files could not be loaded: new.policy (not loaded: there is no
 * earlier version), web.policy (its earlier version stays in use)", and
 * killswitch.conf's problems: per file, what is in use now.
 */
static char *reload_message(struct ks_manager *m, size_t conf_problems)
{
        size_t size = 0, failed = 0, named = 0;
        char *s = NULL;
        FILE *f;

        for (size_t i = 0; i < m->store.n; i++)
                failed += m->store.items[i].errors.n > 0;
        f = open_memstream(&s, &size);
        if (!f)
                return NULL;
        if (failed > 0)
                fprintf(f, "%zu policy file%s could not be loaded: ", failed, failed == 1 ? "" : "s");
        for (size_t i = 0; i < m->store.n; i++) {
                const struct ks_policy_entry *en = &m->store.items[i];

                if (en->errors.n == 0 || named++ >= RELOAD_MESSAGE_FILES)
                        continue;
                fprintf(f, "%s%s.policy (%s)", named > 1 ? ", " : "", en->name,
                        en->policy ? "its earlier version stays in use" : "not loaded: there is no earlier version");
        }
        if (named > RELOAD_MESSAGE_FILES)
                fprintf(f, " and %zu more", named - RELOAD_MESSAGE_FILES);
        if (conf_problems > 0)
                fprintf(f, "%s" CONF_FILE " has %zu problem%s: the triggers they concern are disarmed",
                        failed > 0 ? "; " : "", conf_problems, conf_problems == 1 ? "" : "s");
        if (fclose(f) != 0) {
                free(s);
                return NULL;
        }
        return s;
}

/* killswitch.conf's problems as an entry of "failed" (no policy is named so: policy names have no dot). */
static int reload_conf_failure(struct ks_manager *m, json_t *reply)
{
        const struct ks_diags *problems = triggers_problems(m->triggers);
        _cleanup_free_ char *file = NULL;

        if (problems->n == 0)
                return 0;
        if (asprintf(&file, "%s/%s", m->config_dir, CONF_FILE) < 0)
                return -ENOMEM;
        return json_array_append_new(json_object_get(reply, "failed"),
                                     json_pack("{s:s, s:s, s:o}", "name", CONF_FILE, "file", file, "errors",
                                               diags_json(problems))) < 0 ? -ENOMEM : 0;
}

static json_t *reload_reply(struct ks_manager *m, int r, size_t failed, const struct ks_error *e)
{
        size_t conf_problems = triggers_problems(m->triggers)->n;
        _cleanup_free_ char *msg = NULL;
        json_t *o;

        o = store_json(m, "loaded");
        if (!o || reload_conf_failure(m, o) < 0) {
                json_decref(o);
                return NULL;
        }
        /* What the policies that loaded probably do not mean (also logged): "FILE:LINE: warning: ...". */
        json_object_set_new(o, "warnings", diags_json(&m->policy_warnings));
        /* "loaded" lists names only. */
        for (size_t i = 0; i < json_array_size(json_object_get(o, "loaded")); i++) {
                json_t *item = json_array_get(json_object_get(o, "loaded"), i);

                json_array_set(json_object_get(o, "loaded"), i, json_object_get(item, "name"));
        }
        /* ReloadFailed always carries both lists (what is loaded now: the previous versions). */
        if (r < 0 && e->id && strcmp(e->id, KS_ERR_RELOAD) == 0)
                return reply_error(KS_ERR_RELOAD, o, "%s", e->msg);
        if (r < 0) {
                json_decref(o);
                return reply_from_error(e, NULL, NULL);
        }
        if (failed == 0 && conf_problems == 0)
                return reply_ok(o);
        msg = reload_message(m, conf_problems);
        return reply_error(KS_ERR_RELOAD, o, "%s", msg ? msg : "Some files could not be loaded");
}

static void on_reloaded(struct ks_manager *m, void *userdata, int r, size_t failed, const struct ks_error *e)
{
        _cleanup_(json_decrefp) json_t *reply = reload_reply(m, r, failed, e);

        control_reply(userdata, reply);
}

/* Answered when the reload is done; the loop serves other calls meanwhile (manager_reload). */
static json_t *method_reload(struct ks_manager *m, const struct ks_actor *a, json_t *params)
{
        struct control_call *call = a->peer ? control_defer(a->peer) : NULL;
        struct ks_error e = {};

        if (!call)
                return NULL;
        if (manager_reload(m, a, on_reloaded, call, &e) < 0) {
                control_undefer(call);
                return reply_from_error(&e, NULL, NULL);
        }
        return NULL;
}

/* The newest entries of the audit history: who changed what, when and why. */
static json_t *method_history(struct ks_manager *m, const struct ks_actor *a, json_t *params)
{
        json_t *entries = NULL, *v = json_object_get(params, "n");
        json_int_t n = AUDIT_HISTORY_DEFAULT_N;
        int r;

        if (v && !json_is_null(v)) {
                if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > AUDIT_HISTORY_MAX)
                        return reply_error(KS_ERR_PARAM, json_pack("{s:s}", "parameter", "n"),
                                           "Parameter 'n' must be an integer from 0 to %d", AUDIT_HISTORY_MAX);
                n = json_integer_value(v);
        }
        r = audit_history(m->audit, (size_t)n, &entries);
        if (r < 0)
                return reply_error(KS_ERR_INTERNAL, NULL, "Could not read the history in %s/%s: %s",
                                   m->state_dir, AUDIT_HISTORY_FILE, strerror(-r));
        return reply_ok(json_pack("{s:o}", "entries", entries));
}

/* An optional RFC 3339 instant parameter; *ret 0 if absent. */
static json_t *get_instant_param(json_t *params, const char *key, uint64_t *ret)
{
        const char *v;
        json_t *bad;

        *ret = 0;
        if ((bad = get_string_param(params, key, TIME_PARAM_MAX, &v)) || !v)
                return bad;
        if (timespec_parse_rfc3339(v, ret) < 0)
                return bad_param(key, v, "an RFC 3339 instant with Z or an offset, e.g. 2026-12-01T17:00:00Z");
        return NULL;
}

static json_t *method_report(struct ks_manager *m, const struct ks_actor *a, json_t *params)
{
        struct ks_error e = {};
        uint64_t since, until;
        json_t *bad, *report = NULL;

        if ((bad = get_instant_param(params, "since", &since)) || (bad = get_instant_param(params, "until", &until)))
                return bad;
        if (until && !since)
                return reply_error(KS_ERR_PARAM, json_pack("{s:s}", "parameter", "until"),
                                   "Parameter 'until' needs 'since' too");
        if (until && until < since)
                return reply_error(KS_ERR_PARAM, json_pack("{s:s}", "parameter", "until"),
                                   "Parameter 'until' is before 'since'");
        if (report_build(m, since, until, &report, &e) < 0)
                return reply_from_error(&e, NULL, NULL);
        return reply_ok(report);
}

/* The interfaces served, with their descriptions (the IDL files, compiled in). */
static const struct interface {
        const char *name;
        const char *description;
} interfaces[] = {
        { "org.varlink.service", idl_org_varlink_service },
        { "io.killswitch", idl_io_killswitch },
};

static const struct interface *interface_find(const char *name, size_t len)
{
        for (size_t i = 0; i < ELEMENTSOF(interfaces); i++)
                if (strlen(interfaces[i].name) == len && strncmp(interfaces[i].name, name, len) == 0)
                        return &interfaces[i];
        return NULL;
}

static json_t *method_getinfo(struct ks_manager *m, const struct ks_actor *a, json_t *params)
{
        json_t *names = json_array();

        for (size_t i = 0; names && i < ELEMENTSOF(interfaces); i++)
                json_array_append_new(names, json_string(interfaces[i].name));
        return reply_ok(json_pack("{s:s, s:s, s:s, s:s, s:o}", "vendor", "killswitch", "product", "killswitchd",
                                  "version", VERSION, "url", "https://example.invalid/killswitch",
                                  "interfaces", names));
}

static json_t *method_get_interface_description(struct ks_manager *m, const struct ks_actor *a, json_t *params)
{
        json_t *v = json_object_get(params, "interface");
        const struct interface *i;

        if (!json_is_string(v))
                return reply_error(KS_ERR_PARAM, json_pack("{s:s}", "parameter", "interface"),
                                   "Parameter 'interface' must be the name of an interface, e.g. io.killswitch");
        i = interface_find(json_string_value(v), json_string_length(v));
        if (!i)
                return reply_error(KS_ERR_NO_INTERFACE, json_pack("{s:O}", "interface", v),
                                   "No interface %.200s here: this service implements io.killswitch and "
                                   "org.varlink.service", json_string_value(v));
        return reply_ok(json_pack("{s:s}", "description", i->description));
}

/*
 * The parameters of the methods that change something, as io.killswitch.varlink declares them: any
 * other is refused, for a typo must not change what the call does ({"polcy": ...} isolating with the
 * default policy). Methods that only read take what they know and ignore the rest.
 */
#define CALLER_PARAMS "ssh_connection", "command", "origin"
static const char *const isolate_params[] = { "policy", "reason", "restore_at", "restore_in", "confirm_in",
                                              "force", CALLER_PARAMS, NULL };
static const char *const restore_params[] = { "reason", "restore_at", "restore_in", "force", CALLER_PARAMS, NULL };
static const char *const cancel_params[] = { "reason", CALLER_PARAMS, NULL };
static const char *const caller_params[] = { CALLER_PARAMS, NULL };

static const struct method {
        const char *name;
        bool privileged;
        json_t *(*call)(struct ks_manager *m, const struct ks_actor *a, json_t *params);
        const char *const *strict;      /* the only parameters it takes; NULL: unknown ones ignored */
} methods[] = {
        { "io.killswitch.Status", false, method_status, NULL },
        { "io.killswitch.Policies", false, method_policies, NULL },
        { "io.killswitch.Show", false, method_show, NULL },
        { "io.killswitch.History", false, method_history, NULL },
        { "io.killswitch.Report", false, method_report, NULL },
        { "io.killswitch.Drops", true, method_drops, NULL },
        { "io.killswitch.Isolate", true, method_isolate, isolate_params },
        { "io.killswitch.Restore", true, method_restore, restore_params },
        { "io.killswitch.Reload", true, method_reload, caller_params },
        { "io.killswitch.Cancel", true, method_cancel, cancel_params },
        { "io.killswitch.Confirm", true, method_confirm, caller_params },
        { "io.killswitch.Heartbeat", true, method_heartbeat, caller_params },
        { "org.varlink.service.GetInfo", false, method_getinfo, NULL },
        { "org.varlink.service.GetInterfaceDescription", false, method_get_interface_description, NULL },
};

static bool known_param(const char *const *known, const char *key)
{
        for (; *known; known++)
                if (strcmp(*known, key) == 0)
                        return true;
        return false;
}

/* InvalidParameter naming the first parameter mt does not take, or NULL if it takes them all. */
static json_t *unknown_param(const struct method *mt, json_t *params)
{
        char list[256] = "";
        const char *key;
        json_t *v;

        json_object_foreach(params, key, v) {
                if (known_param(mt->strict, key))
                        continue;
                for (const char *const *k = mt->strict; *k; k++)
                        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", k == mt->strict ? "" : ", ",
                                 *k);
                return reply_error(KS_ERR_PARAM, json_pack("{s:s}", "parameter", key),
                                   "%s has no parameter '%.64s', nothing was done (it takes %s)", mt->name, key,
                                   list);
        }
        return NULL;
}

/* The gid of a group (looked up now: it may be created after start); a large group's entry is large. */
static int group_gid(const char *name, gid_t *ret)
{
        _cleanup_free_ char *buf = NULL;
        struct group g, *res = NULL;
        int r;

        for (size_t size = 4096; size <= 16u * 1024u * 1024u; size *= 4) {
                free(buf);
                buf = malloc(size);
                if (!buf)
                        return -ENOMEM;
                r = getgrnam_r(name, &g, buf, size, &res);
                if (r != ERANGE)
                        break;
        }
        if (r != 0)
                return -r;
        if (!res)
                return -ENOENT;
        *ret = res->gr_gid;
        return 0;
}

/* Root, or a member of the killswitch group. */
bool methods_urgent(const char *method)
{
        return strcmp(method, "io.killswitch.Isolate") == 0 || strcmp(method, "io.killswitch.Restore") == 0;
}

bool methods_peer_privileged(const struct ks_peer *peer)
{
        gid_t gid;

        return peer->uid == 0 || (group_gid(KILLSWITCH_GROUP, &gid) == 0 && peer_in_group(peer, gid));
}

/* The user name of uid into buf, or "uid N". */
static void user_name(uid_t uid, char *name, size_t size)
{
        _cleanup_free_ char *buf = NULL;
        struct passwd pw, *res = NULL;
        int r = ERANGE;

        for (size_t len = 4096; r == ERANGE && len <= 1024u * 1024u; len *= 4) {
                free(buf);
                buf = malloc(len);
                if (!buf)
                        break;
                r = getpwuid_r(uid, &pw, buf, len, &res);
        }
        if (buf && r == 0 && res)
                snprintf(name, size, "%s", res->pw_name);
        else
                snprintf(name, size, "uid %u", (unsigned)uid);
}

static void actor_from_peer(const struct ks_peer *peer, json_t *params, char *buf, size_t size,
                            struct ks_actor *a)
{
        json_t *ssh = json_object_get(params, "ssh_connection");
        json_t *origin = json_object_get(params, "origin");
        json_t *command = json_object_get(params, "command");

        user_name(peer->uid, buf, size);
        *a = (struct ks_actor){ .user = buf, .uid = peer->uid, .pid = peer->pid,
                                .ssh_connection = json_is_string(ssh) && json_string_length(ssh) < 256
                                                  ? json_string_value(ssh) : NULL,
                                .trigger = "ctl", .peer = peer, .unprivileged = !peer->trusted,
                                .origin = json_is_string(origin) && json_string_length(origin) < 256
                                          ? json_string_value(origin) : NULL,
                                .claimed_command = json_is_string(command) && json_string_length(command) < 64
                                                   ? json_string_value(command) : NULL };
}

/* The policy a refused request named, cut to what a policy name can be: it is only a hint. */
static const char *refused_policy(json_t *params, char *buf, size_t size)
{
        const char *name = json_string_value(json_object_get(params, "policy"));
        size_t len;

        if (!name)
                return NULL;
        len = strnlen(name, size);
        if (len < size)
                return name;
        len = size - 4;
        while (len > 0 && ((unsigned char)name[len] & 0xc0) == 0x80)
                len--;  /* not inside a character */
        snprintf(buf, size, "%.*s...", (int)len, name);
        return buf;
}

/* An unknown interface is InterfaceNotFound; an unknown method of ours, MethodNotFound. */
static json_t *reply_unknown(const char *method)
{
        const char *dot = strrchr(method, '.');
        size_t len = dot ? (size_t)(dot - method) : strlen(method);

        if (!interface_find(method, len))
                return reply_error(KS_ERR_NO_INTERFACE, json_pack("{s:s%}", "interface", method, len),
                                   "No interface %.*s here: this service implements io.killswitch and "
                                   "org.varlink.service", (int)(len > 200 ? 200 : len), method);
        return reply_error(KS_ERR_NO_METHOD, json_pack("{s:s}", "method", method), "Unknown method %.200s", method);
}

json_t *methods_dispatch(void *userdata, const struct ks_peer *peer, const char *method, json_t *params)
{
        struct ks_manager *m = userdata;
        struct ks_actor a;
        char user[256], policy[POLICY_NAME_MAX + 4];
        json_t *bad;

        actor_from_peer(peer, params, user, sizeof(user), &a);
        for (size_t i = 0; i < ELEMENTSOF(methods); i++) {
                if (strcmp(methods[i].name, method) != 0)
                        continue;
                if (methods[i].privileged && !methods_peer_privileged(peer)) {
                        char msg[512];

                        snprintf(msg, sizeof(msg), "Permission denied: %s %s and needs root or membership in "
                                 "group '%s' (you are %s)", method,
                                 methods[i].call == method_drops ? "tells which inside host talks to whom"
                                                                 : "changes the state of the uplinks",
                                 KILLSWITCH_GROUP, user);
                        manager_audit_refused(m, &a, refused_policy(params, policy, sizeof(policy)), msg);
                        return reply_error(KS_ERR_PERMISSION, NULL, "%s", msg);
                }
                if (methods[i].strict && (bad = unknown_param(&methods[i], params)))
                        return bad;
                return methods[i].call(m, &a, params);
        }
        return reply_unknown(method);
}
