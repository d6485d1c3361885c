/* SPDX-License-Identifier: MIT */
/* The link layer of the cut, the manager's part (manager-links.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "compile.h"
#include "links.h"
#include "log.h"
#include "manager.h"
#include "manager-internal.h"
#include "manager-links.h"
#include "manager-read.h"
#include "monitor.h"
#include "nft.h"
#include "reaper.h"
#include "stage.h"
#include "state.h"
#include "strv.h"
#include "syncer.h"
#include "timeutil.h"
#include "worker.h"

#define LINKS_REMEMBERED 64     /* tracked uplinks saved by ifindex */

/*
 * The links of the cut for `active` (links.c): track its uplinks afresh
 * (reset: a new isolation or another policy) or keep those tracked so far (a
 * renamed uplink); NULL: stop tracking. *ret: the other links of the cut.
 */
static int links_of_cut(struct ks_manager *m, const struct ks_policy *p, bool reset, const char ***ret,
                        size_t *ret_n)
{
        int r;

        *ret = NULL;
        *ret_n = 0;
        if (!m->links)
                return 0;
        r = links_track(m->links, p ? (const char (*)[IFNAMSIZ])p->uplinks : NULL, p ? p->n_uplinks : 0, reset);
        return r < 0 ? r : links_cut(m->links, ret, ret_n);
}

static bool uplink_ids_equal(const struct ks_uplink_id *a, size_t n, const struct ks_uplink_id *b, size_t m)
{
        if (n != m)
                return false;
        for (size_t i = 0; i < n; i++)
                if (a[i].ifindex != b[i].ifindex || strcmp(a[i].name, b[i].name) != 0)
                        return false;
        return true;
}

/*
 * Save the state for a restart, not for an answer: written on the loop (a
 * restarted agent reads it), synced on a thread. Its fdatasync kept the loop
 * 5-15 ms on a busy disk after every isolation (the uplinks it tracks).
 */
static int state_save_later(struct ks_manager *m)
{
        bool owed = false;
        int r = state_write(m->state_dir, &m->state, &owed);

        if (r < 0 || !owed)
                return r;
        if (!m->state_syncer && syncer_new(m->event, m->state_dir, STATE_FILE, "the state", &m->state_syncer) < 0)
                return state_sync(m->state_dir);        /* here, then */
        syncer_kick(m->state_syncer, false);
        return 0;
}

/* While isolated: the tracked uplinks' ifindexes into the state file, if they changed (links_adopt at start). */
void manager_links_remember(struct ks_manager *m)
{
        char names[LINKS_REMEMBERED][IFNAMSIZ] = {}, boot[BOOT_ID_MAX];
        struct ks_uplink_id ids[LINKS_REMEMBERED] = {};
        int ifindexes[LINKS_REMEMBERED];
        size_t n;

        /* Not before start-up adopted the saved ones (manager_links_adopt; the control socket comes last). */
        if (!m->links || !m->state.isolated || !m->links_applied || !m->control)
                return;
        n = links_tracked(m->links, names, ifindexes, LINKS_REMEMBERED);
        n = n < LINKS_REMEMBERED ? n : LINKS_REMEMBERED;
        for (size_t i = 0; i < n; i++) {
                memcpy(ids[i].name, names[i], IFNAMSIZ);
                ids[i].ifindex = ifindexes[i];
        }
        boot_id(boot);
        if (uplink_ids_equal(ids, n, m->state.uplink_ids, m->state.n_uplink_ids) && m->state.uplinks_boot &&
            strcmp(boot, m->state.uplinks_boot) == 0)
                return;
        if (state_set_uplink_ids(&m->state, ids, n, boot) < 0 || state_save_later(m) < 0)
                log_warning("Could not save the uplinks' ifindexes (a rename while the agent is down will not be "
                            "noticed)");
}

static int on_remember(sd_event_source *s, void *userdata)
{
        struct ks_manager *m = userdata;

        m->remember_source = sd_event_source_disable_unref(m->remember_source);
        manager_links_remember(m);
        return 0;
}

/*
 * The same on a later loop iteration, once the isolation is answered: the
 * state file already says isolated (saved before the switch); the ifindexes
 * only tell a restarted agent about renames, and their fsync need not delay
 * the emergency command.
 */
void manager_links_remember_soon(struct ks_manager *m)
{
        if (!m->remember_source && sd_event_add_defer(m->event, &m->remember_source, on_remember, m) < 0)
                manager_links_remember(m);
}

/* At start, isolated: the uplinks saved by ifindex are tracked again, renamed or not (tamper if renamed). */
void manager_links_adopt(struct ks_manager *m)
{
        char boot[BOOT_ID_MAX];

        boot_id(boot);
        if (!m->links || !m->state.isolated || !m->state.uplinks_boot || strcmp(boot, m->state.uplinks_boot) != 0)
                return;
        for (size_t i = 0; i < m->state.n_uplink_ids; i++)
                if (links_adopt(m->links, m->state.uplink_ids[i].name, m->state.uplink_ids[i].ifindex) < 0)
                        log_error("Out of memory adopting uplink %s", m->state.uplink_ids[i].name);
}

/*
 * The whole netdev table of the link layer, every policy staged, and if
 * active its device chains: after each rebuild of the inet table, and when
 * the switch finds it missing. A failure leaves the inet cut in force.
 */
static void on_links_staged(void *userdata, int r, const struct ks_error *e)
{
        struct ks_manager *m = userdata;

        m->links_stager = stager_retire(m, m->links_stager);
        if (r < 0) {
                log_error("Staging the link layer in table netdev %s" LINKS_TABLE_SUFFIX " failed: %s", TABLE_NAME,
                          e && e->msg[0] ? e->msg : strerror(-r));
                free(m->links_staged);
                m->links_staged = NULL;
        }
}

/*
 * The link layer's table compiled on a thread (on_links_stage): every staged
 * policy's sets, tens of milliseconds with 100,000 entries; while isolated
 * also the cut, for the links tracked when it started. The thread reads the
 * store's policies: before the store changes (a reload's result),
 * manager_links_compile_abandon() leaves it to finish on its own, and the versions
 * the store drops meanwhile stay in m->retired until no abandoned compile
 * runs. Waiting for it there kept the loop 250 ms on a busy machine (a
 * thread at nice +10 compiling 100,000 entries).
 */
struct links_compile {
        struct ks_manager *m;
        struct ks_worker *worker;
        const struct ks_policy **list;
        size_t n;
        const struct ks_policy *active; /* in force at the start, or NULL */
        char **cut;                     /* the links it cut then (links_of_cut) */
        uint32_t flags;
        char *sig;                      /* staged_signature() at the start */
        struct ks_ruleset *rs;
        int r;
        bool abandoned;                 /* on m->links_abandoned: its result goes unused */
        struct links_compile *next;
};

static struct links_compile *links_compile_free(struct links_compile *lc)
{
        if (lc) {
                worker_free(lc->worker);
                reaper_add(lc->m->reaper, lc->rs, free_ruleset);        /* not used: compiled for another state */
                strv_free(lc->cut);
                free(lc->list);
                free(lc->sig);
                free(lc);
        }
        return NULL;
}

void manager_links_compile_abandon(struct ks_manager *m)
{
        struct links_compile *lc = TAKE_PTR(m->links_compile);

        if (lc) {
                lc->abandoned = true;
                lc->next = m->links_abandoned;
                m->links_abandoned = lc;
        }
}

static void free_policy(void *p)
{
        policy_free(p);
}

/* The versions the store dropped, freed off the loop once no abandoned compile or policy read may read them. */
void manager_retired_release(struct ks_manager *m)
{
        if (m->links_abandoned || manager_reads_pending(m))
                return;
        for (size_t i = 0; i < m->retired.n; i++)
                reaper_add(m->reaper, m->retired.v[i], free_policy);
        m->retired.n = 0;
}

static void links_abandoned_done(struct links_compile *lc)
{
        struct ks_manager *m = lc->m;

        for (struct links_compile **p = &m->links_abandoned; *p; p = &(*p)->next)
                if (*p == lc) {
                        *p = lc->next;
                        break;
                }
        links_compile_free(lc);
        manager_retired_release(m);
}

/* At exit: every compile waited for, then what they read freed. */
void manager_links_compile_stop_all(struct ks_manager *m)
{
        manager_links_compile_abandon(m);
        while (m->links_abandoned) {
                struct links_compile *lc = m->links_abandoned;

                m->links_abandoned = lc->next;
                links_compile_free(lc);
        }
        store_retired_clear(&m->retired);
}

static void links_compile_work(void *userdata)
{
        struct links_compile *lc = userdata;

        lc->r = compile_links_table(lc->list, lc->n, lc->active, (const char **)lc->cut, strv_length(lc->cut),
                                    TABLE_NAME, lc->flags, &lc->rs);
}

static int stage_links_with(struct ks_manager *m, const char *active, bool reset, struct ks_ruleset *compiled);

/* The policy in force, the links it cuts and the table's flags are still those the thread compiled for. */
static bool links_compile_current(struct ks_manager *m, const struct links_compile *lc)
{
        _cleanup_free_ const char **cut = NULL;
        const struct ks_policy *p = m->state.isolated ? store_get(&m->store, m->state.policy) : NULL;
        size_t n = 0;

        if (p != lc->active || lc->flags != (m->owned ? OWNER_FLAGS : 0) ||
            links_of_cut(m, p, false, &cut, &n) < 0 || n != strv_length(lc->cut))
                return false;
        for (size_t i = 0; i < n; i++)
                if (strcmp(cut[i], lc->cut[i]) != 0)
                        return false;
        return true;
}

/* On the loop: stage it, unless the policies or the state changed meanwhile (then again, or not at all). */
static void links_compile_done(void *userdata)
{
        struct links_compile *lc = userdata;
        struct ks_manager *m = lc->m;
        _cleanup_free_ char *sig = NULL;
        bool staged;

        if (lc->abandoned) {
                links_abandoned_done(lc);
                return;
        }
        /* Staged on the loop meanwhile (an isolation, say): nothing left to do. */
        sig = staged_signature(m);
        staged = sig && m->links_staged && strcmp(sig, m->links_staged) == 0;
        m->links_compile = NULL;
        if (lc->r == 0 && !staged && sig && strcmp(sig, lc->sig) == 0 && links_compile_current(m, lc)) {
                stage_links_with(m, lc->active ? lc->active->name : NULL, false, TAKE_PTR(lc->rs));
        } else if (lc->r < 0) {
                manager_links_stage(m, m->state.isolated ? m->state.policy : NULL, false);
        } else if (!staged) {
                manager_links_stage_soon(m);    /* the policies or the state changed: again */
        }
        links_compile_free(lc);
}

/* links_of_cut(), copied for the thread. */
static int links_cut_copy(struct ks_manager *m, const struct ks_policy *p, char ***ret)
{
        _cleanup_free_ const char **cut = NULL;
        _cleanup_strv_ char **copy = NULL;
        size_t n = 0;
        int r = links_of_cut(m, p, false, &cut, &n);

        for (size_t i = 0; r >= 0 && i < n; i++)
                r = strv_push(&copy, cut[i]);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(copy);
        return 0;
}

/* Start it; 0 if it runs, negative errno if the caller must stage on the loop. */
static int links_compile_start(struct ks_manager *m)
{
        struct links_compile *lc;
        int r;

        if (m->links_compile)
                return 0;
        lc = calloc(1, sizeof(*lc));
        if (!lc)
                return -ENOMEM;
        *lc = (struct links_compile){ .m = m, .flags = m->owned ? OWNER_FLAGS : 0, .sig = staged_signature(m),
                                      .active = m->state.isolated ? store_get(&m->store, m->state.policy) : NULL };
        r = lc->sig ? staged_policies(m, &lc->list, &lc->n) : -ENOMEM;
        if (r == 0)
                r = links_cut_copy(m, lc->active, &lc->cut);
        if (r == 0)
                r = worker_start_background(m->event, links_compile_work, links_compile_done, lc, &lc->worker);
        if (r < 0) {
                links_compile_free(lc);
                return r;
        }
        m->links_compile = lc;
        return 0;
}

/* compiled: the table links_compile_done() got for `active` and the links it cuts, or NULL. Takes it. */
static int stage_links_with(struct ks_manager *m, const char *active, bool reset, struct ks_ruleset *compiled)
{
        _cleanup_(ruleset_freep) struct ks_ruleset *rs = compiled;
        struct first_step f;
        _cleanup_free_ const struct ks_policy **list = NULL;
        _cleanup_free_ const char **cut = NULL;
        const struct ks_policy *p = active ? store_get(&m->store, active) : NULL;
        struct ks_error e = {};
        uint64_t usec = 0;
        size_t n = 0, n_cut = 0;
        int r;

        r = staged_policies(m, &list, &n);
        if (r == 0)
                r = links_of_cut(m, p, reset, &cut, &n_cut);
        if (r == 0 && !rs)
                r = compile_links_table(list, n, p, cut, n_cut, TABLE_NAME, m->owned ? OWNER_FLAGS : 0, &rs);
        else if (r == 0)
                log_debug("Link layer: the table compiled on a thread");
        m->links_stager = stager_retire(m, m->links_stager);
        f = (struct first_step){ .rs = rs, .keep = active, .policies = true };
        if (r == 0)
                r = nft_transaction_with(m->nft, NULL, 0, build_first_step, &f, &usec, &e);
        if (r == 0 && p)
                r = ruleset_summarize(rs, &m->expect);  /* the refill of P/uplinks */
        /* The other policies follow in steps, as in the inet table (stage.h). */
        if (r == 0 && f.deferred)
                r = stager_new(m->event, m->nft, TAKE_PTR(rs), active, true, NULL, on_links_staged, m,
                               &m->links_stager);
        stager_hold(m->links_stager, m->readback || m->check);  /* after the inet table's read-backs */
        m->links_applied = r == 0 && p;
        free(m->links_staged);
        m->links_staged = r == 0 ? staged_signature(m) : NULL;
        if (r < 0)
                log_error("Could not stage the link layer of the cut in table netdev %s" LINKS_TABLE_SUFFIX
                          " (the inet hooks still cut): %s", TABLE_NAME, e.msg[0] ? e.msg : strerror(-r));
        else
                log_debug("Link layer staged (%zu policies) in %llu us", n, (unsigned long long)usec);
        manager_links_remember(m);
        return r;
}

int manager_links_stage(struct ks_manager *m, const char *active, bool reset)
{
        return stage_links_with(m, active, reset, NULL);
}

/* The netdev table holds the loaded version of policy `name` (staged_signature: "name:gen;..."). */
static bool links_has_version(struct ks_manager *m, const char *name)
{
        struct ks_policy_entry *entry = store_find(&m->store, name);
        _cleanup_free_ char *token = NULL, *all = NULL;

        if (!entry || !m->links_staged || asprintf(&token, ";%s:%u;", name, entry->generation) < 0 ||
            asprintf(&all, ";%s", m->links_staged) < 0)
                return false;
        return strstr(all, token) != NULL;
}

static int on_links_stage(sd_event_source *s, void *userdata)
{
        struct ks_manager *m = userdata;
        _cleanup_free_ char *sig = staged_signature(m);

        m->links_stage_source = sd_event_source_disable_unref(m->links_stage_source);
        if (sig && m->links_staged && strcmp(sig, m->links_staged) == 0)
                return 0;
        /*
         * Compiled on a thread, for the links cut now (links_compile_done() checks they still are);
         * at once if the policy in force has no link layer yet.
         */
        if ((m->state.isolated && !links_has_version(m, m->state.policy)) || links_compile_start(m) < 0)
                manager_links_stage(m, m->state.isolated ? m->state.policy : NULL, false);
        return 0;
}

/*
 * Stage the netdev table after a rebuild, but on a later loop iteration at
 * idle priority: an isolate that arrives meanwhile is served first (it stages
 * its own policy then, if that changed).
 */
void manager_links_stage_soon(struct ks_manager *m)
{
        if (m->links_stage_source)
                return;
        if (sd_event_add_defer(m->event, &m->links_stage_source, on_links_stage, m) < 0 ||
            sd_event_source_set_priority(m->links_stage_source, SD_EVENT_PRIORITY_IDLE) < 0) {
                m->links_stage_source = sd_event_source_disable_unref(m->links_stage_source);
                on_links_stage(NULL, m);
        }
}

/*
 * The link layer's part of a switch (compile_links_hook): the names of the
 * cut into P/uplinks, the device chains bound to them anew; active NULL:
 * unbound. *ret NULL if there is nothing to send (active is not loaded) or
 * the netdev table must first be staged whole (not the loaded version).
 */
int manager_links_switch(struct ks_manager *m, const char *active, bool reset, struct ks_ruleset **ret,
                        size_t *ret_n)
{
        _cleanup_free_ const char **cut = NULL;
        const struct ks_policy *p = active ? store_get(&m->store, active) : NULL;
        size_t n = 0;
        int r;

        *ret = NULL;
        *ret_n = 0;
        if (active && !p)
                return 0;
        if (p && stager_pending(m->links_stager, active)) {
                log_info("Policy %s is still being staged in the link layer: sending the rest of it first", active);
                stager_finish_policy(m->links_stager, active);
        }
        if (p && !links_has_version(m, active))
                return 0;
        r = links_of_cut(m, p, reset, &cut, &n);
        if (r == 0)
                r = compile_links_hook(p, cut, n, TABLE_NAME, ret);
        *ret_n = n;
        return r;
}

/* After the link layer's switch rs was sent (r: how it went): the expected shape, the log, the uplinks saved. */
int manager_links_switched(struct ks_manager *m, const char *active, const struct ks_ruleset *rs, size_t n,
                          uint64_t usec, int r, const struct ks_error *e)
{
        const struct ks_policy *p = active ? store_get(&m->store, active) : NULL;

        if (r == 0)
                r = ruleset_summarize(rs, &m->expect);
        if (r < 0 && p) {
                log_info("The link layer is not staged as expected (%s): staging it", e->msg[0] ? e->msg : strerror(-r));
                return manager_links_stage(m, active, false);
        }
        m->links_applied = r == 0 && p;
        if (r < 0)
                log_error("Could not unbind the link layer from the links: %s", e->msg[0] ? e->msg : strerror(-r));
        else if (p)
                log_info("Link layer of the cut in place: %zu uplinks, %zu more links, %llu us", p->n_uplinks, n,
                         (unsigned long long)usec);
        manager_links_remember(m);
        return r;
}

/* The O(1) switch of the link layer alone (a change of the cut); if its table is missing or stale, staged whole. */
int manager_links_apply(struct ks_manager *m, const char *active, bool reset)
{
        _cleanup_(ruleset_freep) struct ks_ruleset *rs = NULL;
        struct ks_error e = {};
        uint64_t usec = 0;
        size_t n = 0;
        int r;

        r = manager_links_switch(m, active, reset, &rs, &n);
        if (r == 0 && !rs)
                return active && store_get(&m->store, active) ? manager_links_stage(m, active, reset) : 0;
        if (r == 0)
                r = nft_apply(m->nft, rs, &usec, &e);
        return manager_links_switched(m, active, rs, n, usec, r, &e);
}

static int on_links_backoff(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct ks_manager *m = userdata;

        m->links_backoff = sd_event_source_disable_unref(m->links_backoff);
        manager_links_reassert_soon(m);
        return 0;
}

/*
 * A foreign chain on a link of the cut: re-assert the link layer, at most
 * REASSERT_BURST times per window, as the inet table, so that two managers
 * never fight forever; then back off, loudly. (A change of the cut itself, a
 * renamed or stacked link, is always followed.)
 */
static void links_reassert_limited(struct ks_manager *m)
{
        struct ks_actor self = AGENT_ACTOR("monitor");
        uint64_t now = now_monotonic_usec();
        struct ks_error e = {};

        if (m->links_backoff)
                return;
        if (now - m->links_window_start > REASSERT_WINDOW_USEC) {
                m->links_window_start = now;
                m->links_window_count = 0;
        }
        if (++m->links_window_count <= REASSERT_BURST) {
                manager_links_reassert_soon(m);
                return;
        }
        ks_error_set(&e, -EBUSY, NULL,
                     "RATE LIMIT: chains were bound to links of the cut by another process %u times in %llus; "
                     "not re-asserting the link layer for %llus. Another firewall manager is fighting "
                     "killswitch: stop it.", m->links_window_count, REASSERT_WINDOW_USEC / USEC_PER_SEC,
                     REASSERT_BACKOFF_USEC / USEC_PER_SEC);
        manager_audit_error(m, AUDIT_RATE_LIMIT, &self, m->state.policy, NULL, NULL, &e);
        m->links_window_start = 0;
        m->links_window_count = 0;
        if (sd_event_add_time_relative(m->event, &m->links_backoff, CLOCK_MONOTONIC, REASSERT_BACKOFF_USEC, 0,
                                       on_links_backoff, m) < 0)
                manager_links_reassert_soon(m);
}

/*
 * Someone bound a base chain to a link of the cut: it may run before or beside
 * ours (a netdev fwd past the inet hooks). Re-asserting the link layer
 * registers our chains again, first among equal priorities.
 */
void manager_links_foreign_hooks(struct ks_manager *m, const struct monitor_event *ev)
{
        struct ks_actor culprit = { .user = ev->comm, .uid = -1, .pid = ev->pid, .trigger = "monitor" };
        struct ks_error e = {};

        for (size_t i = 0; m->state.isolated && m->links && i < ev->n_hooks; i++) {
                if (!links_in_cut(m->links, ev->hooks[i].device))
                        continue;
                ks_error_set(&e, 0, NULL, "TAMPER: %s was bound to %s, a link of the cut, by %s (pid %d); the "
                             "link layer is re-asserted before it", ev->hooks[i].what, ev->hooks[i].device,
                             ev->comm, (int)ev->pid);
                manager_audit_error(m, AUDIT_TAMPER, &culprit, m->state.policy, NULL, NULL, &e);
                links_reassert_limited(m);
        }
}

static int on_links_defer(sd_event_source *s, void *userdata)
{
        struct ks_manager *m = userdata;

        m->links_source = sd_event_source_disable_unref(m->links_source);
        if (m->state.isolated)
                manager_links_apply(m, m->state.policy, false);
        return 0;
}

/* Re-assert the link layer once the burst of events is read. */
void manager_links_reassert_soon(struct ks_manager *m)
{
        if (!m->links_source && sd_event_add_defer(m->event, &m->links_source, on_links_defer, m) < 0)
                log_error("Could not schedule the re-assertion of the link layer");
}

/* rtnetlink: an uplink was renamed, a link stacked on one, ... (links.c). */
void manager_links_changed(void *userdata, const char *what, bool tamper)
{
        struct ks_manager *m = userdata;
        struct ks_actor someone = { .user = "unknown", .uid = -1, .trigger = "links" };
        struct ks_error e = {};

        if (!m->state.isolated)
                return;
        if (tamper) {
                ks_error_set(&e, 0, NULL, "TAMPER: %s; the cut is extended to it", what);
                manager_audit_error(m, AUDIT_TAMPER, &someone, m->state.policy, NULL, NULL, &e);
        } else {
                log_notice("%s", what);
        }
        manager_links_reassert_soon(m);
}
