/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "cleanup.h"
#include "compile.h"
#include "control.h"
#include "log.h"
#include "manager.h"
#include "methods.h"
#include "nft.h"
#include "timeutil.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct ks_ruleset *, ruleset_free)

int manager_new(const struct ks_options *o, struct ks_manager **ret)
{
        struct ks_manager *m = calloc(1, sizeof(*m));
        int r;

        if (!m)
                return -ENOMEM;
        state_init(&m->state);
        m->config_dir = strdup(o->config_dir);
        m->state_dir = strdup(o->state_dir);
        m->socket_path = strdup(o->socket_path);
        if (!m->config_dir || !m->state_dir || !m->socket_path ||
            asprintf(&m->policy_dir, "%s/policies", o->config_dir) < 0) {
                manager_free(m);
                return -ENOMEM;
        }
        r = sd_event_default(&m->event);
        if (r < 0) {
                manager_free(m);
                return r;
        }
        *ret = m;
        return 0;
}

struct ks_manager *manager_free(struct ks_manager *m)
{
        if (!m)
                return NULL;
        control_free(m->control);
        nft_close(m->nft);
        store_clear(&m->store);
        state_clear(&m->state);
        sd_event_unref(m->event);
        free(m->config_dir);
        free(m->policy_dir);
        free(m->state_dir);
        free(m->socket_path);
        free(m);
        return NULL;
}

const struct ks_policy *manager_active_policy(struct ks_manager *m)
{
        return m->state.isolated ? store_get(&m->store, m->state.policy) : NULL;
}

static void notify_status(struct ks_manager *m)
{
        if (!m->state.isolated)
                sd_notify(0, "STATUS=Normal: uplinks open");
        else
                sd_notifyf(0, "STATUS=Isolated (policy %s)", m->state.policy ? m->state.policy : "unknown");
}

static int set_state(struct ks_state *s, bool isolated, const char *policy, const struct ks_actor *a,
                     const char *reason)
{
        state_init(s);
        s->isolated = isolated;
        s->since_usec = now_realtime_usec();
        s->uid = a->uid;
        if ((policy && !(s->policy = strdup(policy))) || (a->user && !(s->user = strdup(a->user))) ||
            (reason && !(s->reason = strdup(reason)))) {
                state_clear(s);
                return -ENOMEM;
        }
        return 0;
}

int manager_find_policy(struct ks_manager *m, const char *name, const struct ks_policy **ret,
                        struct ks_error *e)
{
        struct ks_policy_entry *entry = policy_name_valid(name) == 0 ? store_find(&m->store, name) : NULL;

        if (entry && entry->policy) {
                *ret = entry->policy;
                return 0;
        }
        if (policy_name_valid(name) < 0)
                return ks_error_set(e, -EINVAL, KS_ERR_NO_POLICY,
                                    "Invalid policy name '%s': names are letters, digits, '_' and '-'", name);
        if (entry && entry->errors.n > 0)
                return ks_error_set(e, -ENOENT, KS_ERR_NO_POLICY,
                                    "Policy %s failed to load: %s (fix it, then run 'killswitchctl reload')",
                                    name, entry->errors.msgs[0]);
        return ks_error_set(e, -ENOENT, KS_ERR_NO_POLICY,
                            "No policy named %s: there is no %s/%s.policy (see 'killswitchctl policies')",
                            name, m->policy_dir, name);
}

/* Compile and apply p as the table in force, in one transaction. */
static int apply_policy(struct ks_manager *m, const struct ks_policy *p, struct ks_error *e)
{
        _cleanup_(ruleset_freep) struct ks_ruleset *rs = NULL;
        uint64_t usec = 0;
        int r;

        r = compile_ruleset(p, TABLE_NAME, 0, &rs);
        if (r < 0)
                return ks_error_set(e, r, KS_ERR_INTERNAL, "Could not compile policy %s: %s", p->name,
                                    strerror(-r));
        r = nft_replace_table(m->nft, TABLE_NAME, rs, &usec, e);
        if (r < 0)
                return r;
        m->last_apply_usec = usec;
        m->has_last_apply = true;
        m->applied_generation = store_find(&m->store, p->name)->generation;
        return 0;
}

int manager_isolate(struct ks_manager *m, const char *name, const struct ks_actor *a, const char *reason,
                    struct ks_error *e)
{
        const struct ks_policy *p;
        struct ks_state next;
        int r, saved;

        name = name ? name : DEFAULT_POLICY;
        r = manager_find_policy(m, name, &p, e);
        if (r < 0)
                return r;
        r = set_state(&next, true, name, a, reason);
        if (r < 0)
                return ks_error_set(e, r, KS_ERR_INTERNAL, "Out of memory");
        /* Fail-closed: record the intent first, so that a crash right after the commit restarts isolated. */
        saved = state_save(m->state_dir, &next);
        r = apply_policy(m, p, e);
        if (r < 0) {
                if (saved == 0)
                        state_save(m->state_dir, &m->state);
                state_clear(&next);
                log_error("Isolation with policy %s requested by %s failed: %s", name, a->user, e->msg);
                return r;
        }
        state_clear(&m->state);
        m->state = next;
        notify_status(m);
        log_notice("Isolated with policy %s by %s (uid %lld, pid %d)%s%s", name, a->user, (long long)a->uid,
                   (int)a->pid, reason ? ": " : "", reason ? reason : "");
        if (saved < 0)
                return ks_error_set(e, saved, KS_ERR_STATE,
                                    "Isolation with policy %s is in force, but the state could not be saved in "
                                    "%s: %s. A restarted agent would not know about it: fix the state "
                                    "directory and isolate again.", name, m->state_dir, strerror(-saved));
        return 0;
}

int manager_restore(struct ks_manager *m, const struct ks_actor *a, const char *reason, struct ks_error *e)
{
        struct ks_state next;
        uint64_t usec = 0;
        int r;

        r = nft_delete_table(m->nft, TABLE_NAME, &usec, e);
        if (r < 0) {
                log_error("Restore requested by %s failed: %s", a->user, e->msg);
                return r;
        }
        m->last_apply_usec = usec;
        m->has_last_apply = true;
        if (!m->state.isolated)
                return 0;
        r = set_state(&next, false, NULL, a, reason);
        if (r < 0)
                return ks_error_set(e, r, KS_ERR_INTERNAL, "Out of memory");
        state_clear(&m->state);
        m->state = next;
        notify_status(m);
        log_notice("Restored by %s (uid %lld, pid %d)%s%s", a->user, (long long)a->uid, (int)a->pid,
                   reason ? ": " : "", reason ? reason : "");
        r = state_save(m->state_dir, &m->state);
        if (r < 0)
                return ks_error_set(e, r, KS_ERR_STATE,
                                    "The uplinks are open, but the state could not be saved in %s: %s. A "
                                    "restarted agent would isolate again: fix the state directory and "
                                    "restore again.", m->state_dir, strerror(-r));
        return 0;
}

static void log_store_problems(struct ks_manager *m)
{
        for (size_t i = 0; i < m->store.n; i++)
                for (size_t j = 0; j < m->store.items[i].errors.n; j++)
                        log_error("%s", m->store.items[i].errors.msgs[j]);
}

int manager_reload(struct ks_manager *m, size_t *ret_failed, struct ks_error *e)
{
        const char *active = m->state.isolated ? m->state.policy : NULL;
        struct ks_policy_entry *entry;
        int r;

        r = store_load_dir(&m->store, m->policy_dir, active, ret_failed);
        if (r < 0)
                return ks_error_set(e, r, KS_ERR_RELOAD, "Could not read the policy directory %s: %s",
                                    m->policy_dir, strerror(-r));
        log_store_problems(m);
        entry = active ? store_find(&m->store, active) : NULL;
        if (entry && entry->policy && entry->generation != m->applied_generation) {
                r = apply_policy(m, entry->policy, e);
                if (r < 0) {
                        log_error("Policy %s changed but could not be applied: %s", active, e->msg);
                        return r;
                }
                log_notice("Policy %s changed on disk and was re-applied", active);
        }
        log_info("Reloaded %zu policies from %s (%zu with problems)", m->store.n, m->policy_dir,
                 ret_failed ? *ret_failed : 0);
        return 0;
}

/* Put the isolation back after a restart or reboot; never open the uplinks because of a problem. */
static int startup_isolated(struct ks_manager *m)
{
        const struct ks_policy *p = store_get(&m->store, m->state.policy);
        struct ks_error e = {};
        int exists;

        if (p && apply_policy(m, p, &e) == 0) {
                log_notice("Isolation with policy %s (since the state file says so) is in force", p->name);
                return 0;
        }
        if (p)
                log_error("Could not re-apply policy %s: %s", p->name, e.msg);
        exists = nft_table_exists(m->nft, TABLE_NAME);
        if (exists > 0) {
                log_error("Keeping the isolation rules already in the kernel (table inet %s)", TABLE_NAME);
                return 0;
        }
        p = store_get(&m->store, DEFAULT_POLICY);
        if (p && apply_policy(m, p, &e) == 0) {
                log_error("The state says isolated, but policy %s is unavailable: isolated with the default "
                          "policy %s instead", m->state.policy ? m->state.policy : "(unknown)", DEFAULT_POLICY);
                free(m->state.policy);
                m->state.policy = strdup(DEFAULT_POLICY);
                return 0;
        }
        log_error("The state says isolated, but no policy could be applied: THE UPLINKS ARE OPEN. "
                  "Fix the policies and run 'killswitchctl isolate'.");
        return -ENOENT;
}

static int startup_state(struct ks_manager *m)
{
        int r = state_load(m->state_dir, &m->state);

        if (r == -ENOENT) {
                state_init(&m->state);
        } else if (r < 0) {
                log_error("State file %s/%s is unreadable or corrupt (%s): isolating with the default policy %s "
                          "(fail-closed). Check the file, then restore.", m->state_dir, STATE_FILE,
                          strerror(-r), DEFAULT_POLICY);
                state_init(&m->state);
                m->state.isolated = true;
                m->state.policy = strdup(DEFAULT_POLICY);
                m->state.since_usec = now_realtime_usec();
                m->state.user = strdup("killswitchd");
                m->state.reason = strdup("state file unreadable at start");
        }
        if (m->state.isolated)
                return startup_isolated(m);
        if (nft_table_exists(m->nft, TABLE_NAME) > 0) {
                log_warning("Table inet %s exists although the state says normal: keeping it and reporting "
                            "isolated; 'killswitchctl restore' removes it", TABLE_NAME);
                m->state.isolated = true;
        }
        return 0;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        struct ks_manager *m = userdata;
        struct ks_error e = {};
        size_t failed = 0;

        sd_notify(0, "RELOADING=1");
        if (manager_reload(m, &failed, &e) < 0)
                log_error("Reload failed: %s", e.msg);
        sd_notify(0, "READY=1");
        notify_status(m);
        return 0;
}

static int setup_signals(struct ks_manager *m)
{
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return -errno;
        if ((r = sd_event_add_signal(m->event, NULL, SIGTERM, NULL, NULL)) < 0 ||
            (r = sd_event_add_signal(m->event, NULL, SIGINT, NULL, NULL)) < 0 ||
            (r = sd_event_add_signal(m->event, NULL, SIGHUP, on_sighup, m)) < 0)
                return r;
        signal(SIGPIPE, SIG_IGN);
        return 0;
}

int manager_startup(struct ks_manager *m)
{
        int r;

        r = setup_signals(m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up signal handling: %m");
        r = store_load_dir(&m->store, m->policy_dir, NULL, NULL);
        if (r < 0)
                log_error_errno(r, "Cannot read policies from %s: %m", m->policy_dir);
        log_store_problems(m);
        r = nft_open(&m->nft);
        if (r < 0)
                return log_error_errno(r, "Cannot open a netlink socket to nf_tables: %m");
        r = startup_state(m);
        if (r < 0 && r != -ENOENT)
                return r;
        r = control_new(m->event, m->socket_path, methods_dispatch, m, &m->control);
        if (r < 0)
                return log_error_errno(r, "Cannot listen on %s: %m%s", m->socket_path,
                                       r == -EADDRINUSE ? " (another killswitchd answers there)" : "");
        return 0;
}

int manager_run(struct ks_manager *m)
{
        int r;

        sd_notify(0, "READY=1");
        notify_status(m);
        log_info("killswitchd ready: %s, %zu policies, listening on %s",
                 m->state.isolated ? "isolated" : "normal", m->store.n, m->socket_path);
        r = sd_event_loop(m->event);
        sd_notify(0, "STOPPING=1");
        log_info("killswitchd stopping%s", m->state.isolated ? "; the isolation stays in force" : "");
        return r;
}
