/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>

#include <linux/netfilter/nf_tables.h>
#include <systemd/sd-daemon.h>

#include "alloc.h"
#include "manager-approve.h"
#include "audit.h"
#include "cleanup.h"
#include "compile.h"
#include "control.h"
#include "conntrack.h"
#include "lastgood.h"
#include "links.h"
#include "lint-host.h"
#include "log.h"
#include "manager.h"
#include "manager-internal.h"
#include "manager-links.h"
#include "manager-read.h"
#include "monitor.h"
#include "nft.h"
#include "policy-match.h"
#include "reaper.h"
#include "reload.h"
#include "stage.h"
#include "strv.h"
#include "worker.h"
#include "route.h"
#include "schedule.h"
#include "summary.h"
#include "syncer.h"
#include "timespec.h"
#include "timeutil.h"
#include "transition.h"
#include "triggers.h"

static void reloads_clear(struct ks_manager *m);
static void reload_complete(struct ks_manager *m, int r, const struct ks_error *e);
static struct readback *readback_free(struct readback *rb);
static const struct ks_state *state_in_force(void *userdata);
static int on_schedule_due(void *userdata, enum transition_due due, const char *reason);
static void load_triggers(struct ks_manager *m);

DEFINE_TRIVIAL_CLEANUP_FUNC(struct ks_manager *, manager_free)

int manager_new(const struct ks_options *o, struct ks_manager **ret)
{
        _cleanup_(manager_freep) struct ks_manager *m = calloc(1, sizeof(*m));
        int r;

        if (!m)
                return -ENOMEM;
        state_init(&m->state);
        m->config_dir = strdup(o->config_dir);
        m->state_dir = strdup(o->state_dir);
        m->socket_path = strdup(o->socket_path);
        m->policy_dir = strdup_printf("%s/policies", o->config_dir);
        m->lastgood_dir = strdup_printf("%s/%s", o->state_dir, LASTGOOD_DIR);
        m->want_owner = o->kernel_owner;
        m->handlers = o->handlers;
        if (!m->config_dir || !m->state_dir || !m->socket_path || !m->policy_dir || !m->lastgood_dir)
                return -ENOMEM;
        /* The read-backs digest rules and elements with a key of this run (summary.h). */
        m->expect.keyed = getrandom(&m->expect.key, sizeof(m->expect.key), 0) == sizeof(m->expect.key);
        if (!m->expect.keyed)
                log_warning("No random key for the read-back (%m): rules and elements are compared by count only");
        r = audit_new(m->state_dir, &m->audit);
        if (r < 0)
                return r;
        r = sd_event_default(&m->event);
        if (r < 0)
                return r;
        if (audit_attach_event(m->audit, m->event) < 0)
                log_warning("Could not defer the history's fsync: every history line is synced at once");
        r = schedule_new(m->event, state_in_force, on_schedule_due, m, &m->schedule);
        if (r == 0)
                r = reaper_new(m->event, &m->reaper);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

void free_ruleset(void *p)
{
        ruleset_free(p);
}

/* A stager done with: NULL, its ruleset freed off the loop. */
struct ks_stager *stager_retire(struct ks_manager *m, struct ks_stager *s)
{
        reaper_add(m->reaper, stager_release(s), free_ruleset);
        return NULL;
}

/* The table a reload compiled (and summarised) off the loop, and from which policies. */
static void precompiled_clear(struct ks_manager *m)
{
        reaper_add(m->reaper, m->precompiled.rs, free_ruleset);
        summary_clear(&m->precompiled.summary);
        free(m->precompiled.policies);
        m->precompiled = (struct reload_table){};
}

struct ks_manager *manager_free(struct ks_manager *m)
{
        if (!m)
                return NULL;
        manager_reads_stop(m);          /* before the store goes (reloads_clear) and m->retired */
        manager_links_compile_stop_all(m);      /* before the store goes with a reload (reloads_clear) */
        reloads_clear(m);
        precompiled_clear(m);
        m->stager = stager_free(m->stager);
        m->readback = readback_free(m->readback);
        m->check = readback_free(m->check);
        control_free(m->control);
        if (m->nft)
                nft_set_quiet(m->nft, &(struct nft_quiet){});   /* the monitor goes */
        monitor_free(m->monitor);
        sd_event_source_disable_unref(m->links_source);
        sd_event_source_disable_unref(m->links_backoff);
        sd_event_source_disable_unref(m->links_stage_source);
        sd_event_source_disable_unref(m->remember_source);
        stager_free(m->links_stager);
        links_free(m->links);
        free(m->links_staged);
        triggers_free(m->triggers);
        schedule_free(m->schedule);
        sd_event_source_disable_unref(m->reassert_source);
        sd_event_source_disable_unref(m->drops_source);
        m->resetting = worker_free(m->resetting);       /* waits for it */
        m->state_syncer = syncer_free(m->state_syncer);
        m->report_syncer = syncer_free(m->report_syncer);       /* saves the last text asked for */
        free(m->report_last);
        nft_close(m->reset_nft);
        manager_drops_free(m);
        drops_free(&m->drops);
        nft_close(m->nft);
        store_clear(&m->store);
        diags_clear(&m->policy_warnings);
        state_clear(&m->state);
        summary_clear(&m->expect);
        audit_free(m->audit);
        m->reaper = reaper_free(m->reaper);     /* waits for what it frees */
        sd_event_unref(m->event);
        free(m->config_dir);
        free(m->policy_dir);
        free(m->staged);
        free(m->state_dir);
        free(m->lastgood_dir);
        free(m->socket_path);
        free(m);
        return NULL;
}

/* The name of the policy in force, NULL while normal. */
static const char *active_policy(struct ks_manager *m)
{
        return m->state.isolated ? m->state.policy : NULL;
}

const struct ks_policy *manager_active_policy(struct ks_manager *m)
{
        return m->state.isolated ? store_get(&m->store, m->state.policy) : NULL;
}

bool manager_applied(struct ks_manager *m)
{
        return !m->state.isolated || m->hooked;
}

const char *manager_protection(struct ks_manager *m)
{
        return m->owned ? "owner+monitor" : "monitor";
}

char **manager_layers(struct ks_manager *m)
{
        const struct ks_policy *p = manager_active_policy(m);
        _cleanup_free_ const char **cut = NULL;
        char **v = calloc(4, sizeof(*v));
        size_t n = 0, k = 0;
        char *text = NULL;
        size_t len = 0;
        FILE *f;

        if (!v)
                return NULL;
        if (p && !(v[k++] = strdup("inet hooks")))
                goto out_nomem;
        if (p && m->links_applied && links_cut(m->links, &cut, &n) == 0) {
                f = open_memstream(&text, &len);
                if (!f)
                        goto out_nomem;
                fputs("netdev ingress+egress on", f);
                for (size_t i = 0; i < p->n_uplinks; i++)
                        fprintf(f, " %s", p->uplinks[i]);
                for (size_t i = 0; i < n; i++)
                        fprintf(f, " %s", cut[i]);
                fclose(f);
                if (!text)
                        goto out_nomem;
                v[k++] = text;
        }
        if (m->links && !(v[k++] = strdup("link tracking")))
                goto out_nomem;
        return v;
out_nomem:
        for (size_t i = 0; i < k; i++)
                free(v[i]);
        free(v);
        return NULL;
}

static void notify_status(struct ks_manager *m)
{
        if (!m->state.isolated)
                sd_notify(0, "STATUS=Normal: uplinks open");
        else if (!manager_applied(m))
                sd_notifyf(0, "STATUS=Isolated (policy %s), but NOTHING IS APPLIED: THE UPLINKS ARE OPEN",
                           m->state.policy ? m->state.policy : "unknown");
        else
                sd_notifyf(0, "STATUS=Isolated (policy %s)", m->state.policy ? m->state.policy : "unknown");
}

static void audit(struct ks_manager *m, enum audit_kind kind, const struct ks_actor *a, const char *policy,
                  const char *previous, const char *reason, const struct ks_error *e)
{
        const struct ks_policy *p = policy ? store_get(&m->store, policy) : NULL;
        char kept[512] = "";
        struct audit_event ev = {
                .kind = kind, .policy = policy, .previous_policy = previous, .reason = reason,
                .user = a->user, .uid = a->uid, .pid = a->pid, .ssh_client = a->ssh_connection,
                .trigger = a->trigger, .origin = a->origin, .message = e ? e->msg : NULL,
                .error = e ? e->error : 0, .unprivileged = a->unprivileged,
                .claimed_command = a->claimed_command,
        };

        /* Name what stays reachable, so that history and journal say what "isolated" meant. */
        if (p && (kind == AUDIT_ISOLATE || kind == AUDIT_SWITCH || kind == AUDIT_FAIL_CLOSED)) {
                policy_kept_names(p, kept, sizeof(kept));
                ev.kept = kept;
        }

        audit_log(m->audit, &ev);
}

void manager_audit_error(struct ks_manager *m, enum audit_kind kind, const struct ks_actor *a, const char *policy,
                         const char *previous, const char *reason, const struct ks_error *e)
{
        audit(m, kind, a, policy, previous, reason, e);
}

void manager_audit(struct ks_manager *m, int kind, const struct ks_actor *a, const char *policy,
                   const char *previous, const char *reason, const char *message)
{
        struct ks_error e = {};

        if (message)
                snprintf(e.msg, sizeof(e.msg), "%s", message);
        audit(m, (enum audit_kind)kind, a, policy, previous, reason, message ? &e : NULL);
}

void manager_audit_refused(struct ks_manager *m, const struct ks_actor *a, const char *policy, const char *message)
{
        struct ks_error e = { .error = EPERM };

        snprintf(e.msg, sizeof(e.msg), "%s", message);
        audit(m, AUDIT_REFUSED, a, policy, NULL, NULL, &e);
}

static int set_state(struct ks_state *s, bool isolated, const char *policy, const struct ks_actor *a,
                     const char *reason)
{
        return transition_state(s, isolated, policy, a, reason, now_realtime_usec());
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

/* The good version of every loaded policy, in store order. Caller frees the array only. */
int staged_policies(struct ks_manager *m, const struct ks_policy ***ret, size_t *ret_n)
{
        const struct ks_policy **list = calloc(m->store.n + 1, sizeof(*list));
        size_t n = 0;

        if (!list)
                return -ENOMEM;
        for (size_t i = 0; i < m->store.n; i++)
                if (m->store.items[i].policy)
                        list[n++] = m->store.items[i].policy;
        *ret = list;
        *ret_n = n;
        return 0;
}

/*
 * Read the table back from the kernel and compare it with m->expect (what we
 * meant): a mismatch is an error, never a silent success. Element counts are
 * read only after a rebuild (a dump of large sets costs; a switch leaves them).
 */
enum readback_scope {
        READBACK_HOOKS,         /* after a switch: the chains, and the rules of the hooked ones */
        READBACK_TABLE,         /* chains, rules, sets, counters */
        READBACK_SMALL,         /* the same and the elements of sets of up to STAGE_BIG_SET (check_big_sets) */
        READBACK_ELEMS,         /* the same and every set's elements */
};

/* The names of want's sets whose elements are compared (not the drop sensor's): the big ones, or the others. */
static int sets_sized(const struct ks_summary *want, bool big, char ***ret)
{
        _cleanup_strv_ char **v = NULL;

        for (size_t i = 0; i < want->n_sets; i++)
                if (!want->sets[i].dynamic && (want->sets[i].elems > STAGE_BIG_SET) == big &&
                    strv_push(&v, want->sets[i].name) < 0)
                        return -ENOMEM;
        *ret = TAKE_PTR(v);
        return 0;
}

/*
 * While a reload stages in steps, the policies whose objects still wait are
 * left out of both sides: from a copy of want into *ret_want (want itself if
 * none waits), and from have.
 */
static int leave_out_staging(struct ks_manager *m, const struct ks_summary *want, struct ks_summary *have,
                             struct ks_summary *copy, const struct ks_summary **ret_want)
{
        bool copied = false;
        int r;

        *ret_want = want;
        for (size_t i = 0; m->stager && i < m->store.n; i++) {
                const struct ks_policy *p = m->store.items[i].policy;
                char prefix[POLICY_NAME_MAX + sizeof(COMPILE_NAME_SEP)];

                if (!p || !stager_pending(m->stager, p->name))
                        continue;
                if (!copied && (r = summary_copy(want, copy)) < 0)
                        return r;
                copied = true;
                snprintf(prefix, sizeof(prefix), "%s" COMPILE_NAME_SEP, p->name);
                summary_remove_prefix(copy, prefix);
                summary_remove_prefix(have, prefix);
        }
        if (copied)
                *ret_want = copy;
        return 0;
}

/* The kernel's table against want (keyed: its rules and elements too); -EPROTO and diff if they differ. */
static int read_back(struct ks_manager *m, const struct ks_summary *want, enum readback_scope scope, char *diff,
                     size_t size)
{
        _cleanup_strv_ char **small = NULL;
        _cleanup_(summary_clear) struct ks_summary copy = {};
        struct ks_summary have = {};
        int r;

        summary_copy_key(want, &have);
        if (scope == READBACK_HOOKS) {
                r = nft_hooks_summary(m->nft, TABLE_NAME, &have);
                if (r == 0)
                        r = leave_out_staging(m, want, &have, &copy, &want);
                if (r == 0)
                        r = summary_diff_hooks(want, &have, diff, size);
        } else {
                r = nft_table_summary(m->nft, TABLE_NAME, scope == READBACK_ELEMS, &have);
                if (r == 0)
                        r = leave_out_staging(m, want, &have, &copy, &want);
                if (r == 0 && scope == READBACK_SMALL)
                        r = sets_sized(want, false, &small);
                if (r == 0 && small)
                        r = nft_read_elems(m->nft, TABLE_NAME, (const char *const *)small, strv_length(small), &have);
                if (r == 0)
                        r = summary_diff(want, &have, scope != READBACK_TABLE, diff, size);
        }
        summary_clear(&have);
        return r;
}

static int verify_scope(struct ks_manager *m, enum readback_scope scope, struct ks_error *e)
{
        char diff[512];
        int r = read_back(m, &m->expect, scope, diff, sizeof(diff));

        if (r == -EPROTO) {
                m->staged_ok = false;
                return ks_error_set(e, r, KS_ERR_APPLY, "The kernel acknowledged the transaction, but table inet "
                                    "%s read back differs from what was sent: %s", TABLE_NAME, diff);
        }
        if (r < 0)
                return ks_error_set(e, r, KS_ERR_APPLY, "Could not read table inet %s back from the kernel: %s",
                                    TABLE_NAME, strerror(-r));
        /* Whoever commits next changes it: after lost events this tells whether anyone did. */
        if (nft_generation(m->nft, &m->generation) < 0)
                m->generation = 0;
        return 0;
}

static int verify(struct ks_manager *m, bool with_elems, struct ks_error *e)
{
        return verify_scope(m, with_elems ? READBACK_ELEMS : READBACK_TABLE, e);
}

/*
 * After lost events: nothing to do if nobody committed since our last
 * transaction, or if the table still has the shape we meant (elements too).
 */
static void check_big_sets(struct ks_manager *m, const char *who);
static void check_big_sets_try(struct ks_manager *m, const char *who, unsigned tries, bool built);

static bool table_intact(struct ks_manager *m)
{
        bool staging = m->stager || m->readback;        /* its own read-back checks the big sets */
        struct ks_error e = {};
        uint32_t gen = 0;

        /*
         * m->generation is read after each of our commits: it may include one of
         * someone else's whose events were lost. So after lost events, read back.
         */
        if (!m->events_lost && m->generation && nft_generation(m->nft, &gen) == 0 && gen == m->generation)
                return true;
        if (!m->staged_ok || verify_scope(m, staging ? READBACK_TABLE : READBACK_SMALL, &e) < 0)
                return false;
        m->events_lost = false;
        if (!staging)
                check_big_sets(m, "monitor");
        return true;
}

/* Which versions of which policies a table holds: "name:generation;..." (store order). */
char *staged_signature(struct ks_manager *m)
{
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);

        if (!f)
                return NULL;
        for (size_t i = 0; i < m->store.n; i++)
                if (m->store.items[i].policy)
                        fprintf(f, "%s:%u;", m->store.items[i].name, m->store.items[i].generation);
        if (fclose(f) != 0) {
                free(text);
                return NULL;
        }
        return text;
}

/*
 * At start: if the kernel already holds exactly the table we would build (a
 * restart, or a crash), keep it and only take ownership back. A rebuild would
 * replace the sets while isolated, and for a moment flows the policy keeps may
 * miss them: an agent restart must not disturb the SIP trunk. "Exactly": the
 * shape, the digest of the rules in the table's comment (ruleset_seal: a
 * table built by another version of the agent, a changed match or another
 * order, is rebuilt, else an upgrade that closes a hole would leave it open),
 * and what the kernel holds: every rule's expressions and every element,
 * read back and compared with what the compiler built (keyed digests,
 * summary.h), for the table was nobody's while the agent was stopped. The
 * table is owned first, so nobody changes it while it is read; the elements
 * of big sets are read after start-up, on a thread (check_big_sets). why
 * (if not NULL): what differs, "" if there is no table.
 */
static int adopt(struct ks_manager *m, const char *active, char why[static 256])
{
        _cleanup_(ruleset_freep) struct ks_ruleset *rs = NULL;
        _cleanup_free_ const struct ks_policy **list = NULL;
        struct ks_summary want = {};
        struct ks_error e = {};
        char diff[256] = "";
        size_t n = 0;
        int r, exists = nft_exists(m->nft, TABLE_NAME, NULL);

        why[0] = '\0';
        if (exists <= 0)
                return exists < 0 ? exists : -ESTALE;
        summary_copy_key(&m->expect, &want);
        r = staged_policies(m, &list, &n);
        if (r == 0)
                r = compile_table(list, n, active, TABLE_NAME, &rs);
        if (r == 0)
                r = ruleset_summarize(rs, &want);
        if (r == 0 && m->want_owner)
                r = nft_set_table_flags(m->nft, TABLE_NAME, OWNER_FLAGS, &e);
        if (r == 0)
                r = read_back(m, &want, READBACK_SMALL, diff, sizeof(diff));
        if (r == -EPROTO) {
                log_notice("Table inet %s is not adopted, it is rebuilt: %s", TABLE_NAME, diff);
                snprintf(why, 256, "%s", diff);
                r = -ESTALE;
        }
        if (r < 0) {
                summary_clear(&want);
                return r;
        }
        summary_clear(&m->expect);
        m->expect = want;
        m->hooked = active != NULL;
        m->staged_ok = true;
        m->owned = m->want_owner;
        free(m->staged);
        m->staged = staged_signature(m);
        if (nft_generation(m->nft, &m->generation) < 0)
                m->generation = 0;
        check_big_sets(m, "startup");
        return 0;
}

int build_first_step(struct nftnl_batch *b, uint32_t *seq, void *userdata)
{
        struct first_step *f = userdata;

        return ruleset_to_batch_staged(f->rs, b, seq, STAGE_BIG_SET, f->keep, f->policies, &f->deferred);
}

/*
 * One small transaction on the base chains: hook `active` (NULL: unhook),
 * with the link layer's switch in the same transaction when its table holds
 * the policy: no moment with one layer in force and not the other, and
 * apply_usec is the whole switch. If the kernel refuses it, the netdev table
 * is no longer trusted: the caller rebuilds, and that switch sends the inet
 * one alone, then stages the link layer whole (a broken link layer never
 * keeps the inet cut out).
 */
static int switch_hook(struct ks_manager *m, const char *active, struct ks_error *e)
{
        bool reset = !(m->state.isolated && m->state.policy && active && strcmp(m->state.policy, active) == 0);
        _cleanup_(ruleset_freep) struct ks_ruleset *rs = NULL, *links = NULL;
        uint64_t usec = 0;
        size_t n_links = 0;
        int r;

        r = compile_hook(active, TABLE_NAME, &rs);
        if (r < 0)
                return ks_error_set(e, r, KS_ERR_INTERNAL, "Could not compile the switch: %s", strerror(-r));
        if (manager_links_switch(m, active, reset, &links, &n_links) < 0)
                links = ruleset_free(links);
        if (links)
                r = nft_apply_all(m->nft, (const struct ks_ruleset *const[]){ rs, links }, 2, &usec, e);
        else
                r = nft_apply(m->nft, rs, &usec, e);
        if (r < 0 && links) {
                free(m->links_staged);
                m->links_staged = NULL;
        }
        if (r < 0)
                return r;
        m->hooked = active != NULL;
        m->last_apply_usec = usec;
        m->has_last_apply = true;
        r = ruleset_summarize(rs, &m->expect);
        if (r < 0)
                return ks_error_set(e, r, KS_ERR_INTERNAL, "Out of memory");
        /* Only the base chains changed: read back those, and that no chain came or went. */
        r = verify_scope(m, READBACK_HOOKS, e);
        if (r == 0 && links)
                manager_links_switched(m, active, links, n_links, usec, 0, e);
        else if (r == 0)
                manager_links_apply(m, active, reset);
        return r;
}

static int send_table(struct ks_manager *m, uint32_t flags, struct first_step *f, uint64_t *usec,
                      struct ks_error *e)
{
        if (!m->stage_steps)
                return nft_replace_table(m->nft, TABLE_NAME, flags, f->rs, usec, e);
        return nft_replace_table_with(m->nft, TABLE_NAME, flags, ruleset_comment(f->rs), build_first_step, f, usec,
                                      e);
}

static void on_staged(void *userdata, int r, const struct ks_error *se);

/* Was the reload's table compiled from list[0..n), the very policies the store holds now? */
static bool precompiled_fits(struct ks_manager *m, const struct ks_policy *const *list, size_t n)
{
        const struct reload_table *t = &m->precompiled;

        return t->rs && t->n_policies == n && (n == 0 || memcmp(t->policies, list, n * sizeof(*list)) == 0);
}

/*
 * Replace the whole table, the base chains (if active) jumping to `hold`. With
 * m->stage_steps the first transaction holds the table and `active` only; the
 * other policies follow in small transactions (m->stager), and once they are
 * all out the whole table is read back on a thread (on_staged). Meanwhile the
 * read-backs on the loop leave out the policies still waiting
 * (leave_out_staging()), and an isolation with one of them sends its rest
 * first (hook()).
 */
static int replace_table(struct ks_manager *m, const char *active, uint64_t *ret_committed, struct ks_error *e)
{
        _cleanup_(ruleset_freep) struct ks_ruleset *rs = NULL;
        _cleanup_free_ const struct ks_policy **list = NULL;
        _cleanup_(summary_clear) struct ks_summary summary = {};
        bool summarized = false;
        struct first_step f = {};
        uint64_t usec = 0;
        size_t n = 0;
        int r = 0;

        r = staged_policies(m, &list, &n);
        if (r == 0 && precompiled_fits(m, list, n)) {
                rs = TAKE_PTR(m->precompiled.rs);       /* compiled off the loop by the reload (reload.c) */
                summarized = m->precompiled.summarized;
                summary_move(&summary, &m->precompiled.summary);
                if (active)     /* the policy in force now, whichever it was when the reload began */
                        r = ruleset_hold(rs, TABLE_NAME, active, summarized ? &summary : NULL);
        } else if (r == 0) {
                r = active ? compile_table_held(list, n, active, TABLE_NAME, &rs)
                           : compile_table(list, n, NULL, TABLE_NAME, &rs);
        }
        if (r < 0)
                return ks_error_set(e, r, KS_ERR_INTERNAL, "Could not compile the policies: %s", strerror(-r));
        f = (struct first_step){ .rs = rs, .keep = m->stage_steps ? active : NULL, .policies = m->stage_steps };
        m->check = readback_free(m->check);     /* of the table replaced now */
        manager_drops_before_rebuild(m);
        r = send_table(m, m->want_owner ? OWNER_FLAGS : 0, &f, &usec, e);
        if (r < 0 && m->want_owner && (r == -EOPNOTSUPP || r == -EINVAL)) {
                /* Kernel < 6.9: no persistent ownership. An owned table alone would vanish with us: skip it. */
                log_warning("The kernel refuses owned persistent tables (%s): protecting table inet %s with "
                            "the event monitor only", strerror(-r), TABLE_NAME);
                m->want_owner = false;
                r = send_table(m, 0, &f, &usec, e);
        }
        m->owned = r == 0 ? m->want_owner : m->owned;
        m->staged_ok = r == 0;
        if (r < 0)
                return r;
        m->hooked = active != NULL;     /* held: the uplinks are cut from this commit on */
        *ret_committed = now_monotonic_usec();
        manager_drops_after_rebuild(m);        /* the new table's drop sets start empty */
        m->last_apply_usec = usec;
        m->has_last_apply = true;
        free(m->staged);
        m->staged = staged_signature(m);
        if (summarized) {
                summary_move(&m->expect, &summary);     /* made on the reload's thread, with expect's key */
        } else {
                summary_empty(&m->expect);      /* keyed still */
                r = ruleset_summarize(rs, &m->expect);
        }
        if (r < 0)
                return ks_error_set(e, r, KS_ERR_INTERNAL, "Out of memory");
        /* Held (active): the small sets now, the big ones on a thread once the policy is in force (rebuild_table). */
        if (!f.deferred)
                return verify_scope(m, active ? READBACK_SMALL : READBACK_ELEMS, e);
        r = stager_new(m->event, m->nft, TAKE_PTR(rs), active, f.policies, &m->generation, on_staged, m,
                       &m->stager);
        if (r == 0)
                r = verify(m, false, e);        /* what is there yet (read_back() leaves out what waits) */
        if (r < 0) {
                m->stager = stager_free(m->stager);
                m->staged_ok = false;   /* policies or big sets left out: the next switch rebuilds */
                return e->msg[0] ? r : ks_error_set(e, r, KS_ERR_INTERNAL, "Out of memory");
        }
        return 0;
}

/*
 * Replace our table with every loaded policy staged and `active` (may be NULL)
 * hooked. Used at start, on reload and to repair. While isolated it takes two
 * transactions: the new table with the uplinks held (all dropped, nothing
 * looked up), then the switch to the policy once its sets are committed. The
 * kernel may make new rules live a moment before new interval sets answer, and
 * a miss there would reset a flow the policy keeps; held, it loses a packet.
 */
static int rebuild_table(struct ks_manager *m, const char *active, struct ks_error *e)
{
        uint64_t committed = 0;
        int r = replace_table(m, active, &committed, e);

        if (r == 0 && !active)
                manager_links_apply(m, NULL, true);     /* unbound now; staged below */
        if (r == 0)
                manager_links_stage_soon(m);
        if (r < 0 || !active)
                return r;
        r = switch_hook(m, active, e);
        if (r < 0) {
                m->staged_ok = false;   /* held, i.e. still cut: the next switch rebuilds */
                return r;
        }
        /* From the held table's acknowledgement to the switch's: what kept flows lost. */
        log_info("Table inet %s rebuilt while isolated: the uplinks were held (everything dropped) for %.1f ms",
                 TABLE_NAME, (double)(now_monotonic_usec() - committed) / USEC_PER_MSEC);
        if (!m->stager)         /* read back off the loop; a difference rebuilds */
                check_big_sets_try(m, "monitor", 0, true);
        return r;
}

/* A rebuild in one go (start, repair, a failed switch): it replaces what a stager was filling. */
static int rebuild(struct ks_manager *m, const char *active, struct ks_error *e)
{
        bool was_staging = m->stager || m->readback;
        int r;

        m->stager = stager_retire(m, m->stager);
        m->readback = readback_free(m->readback);
        r = rebuild_table(m, active, e);
        if (was_staging && m->reload_staging)
                reload_complete(m, r, e);
        return r;
}

/* A rebuild whose big sets are filled afterwards in steps (a reload): the loop stays free meanwhile. */
static int rebuild_in_steps(struct ks_manager *m, const char *active, struct ks_error *e)
{
        int r;

        m->stager = stager_retire(m, m->stager);
        m->readback = readback_free(m->readback);
        m->stage_steps = true;
        r = rebuild_table(m, active, e);
        m->stage_steps = false;
        return r;
}

/* The end of a staging in steps: answer the reload that waited for it. */
static void staging_finished(struct ks_manager *m, int r, const struct ks_error *e)
{
        if (r < 0) {
                m->staged_ok = false;   /* the next switch rebuilds in one go */
                log_error("Staging the reloaded policies failed: %s", e->msg);
        }
        if (m->reload_staging)
                reload_complete(m, r, e);
}

/*
 * A table staged in steps, read back on a thread with a netlink socket of its
 * own: dumping 200,000 elements takes the kernel and libnftnl seconds. All of
 * it is compared but the base chains (staged_diff), which the switches change
 * and read back on the loop, as always.
 */
struct readback {
        struct ks_manager *m;
        struct ks_worker *worker;
        struct ks_summary have;
        char **sets;            /* only these sets' elements (check_big_sets); NULL: the whole table */
        const char *who;        /* check_big_sets: who asked (the history's trigger) */
        unsigned tries;         /* check_big_sets: reads interrupted by commits so far */
        bool built;             /* check_big_sets of a table just built: only a difference rebuilds it */
        atomic_bool cancel;     /* a newer table replaces this one: stop reading it */
        int r;
};

/* A read-back still running is cancelled, so that waiting for it does not hold the loop for the dump. */
static struct readback *readback_free(struct readback *rb)
{
        if (!rb)
                return NULL;
        atomic_store(&rb->cancel, true);
        worker_free(rb->worker);
        stager_hold(rb->m->links_stager, false);
        summary_clear(&rb->have);
        strv_free(rb->sets);
        free(rb);
        return NULL;
}

static void readback_work(void *userdata)
{
        struct readback *rb = userdata;
        struct ks_nft *n = NULL;

        rb->r = nft_open(&n);
        if (rb->r == 0) {
                nft_set_cancel(n, &rb->cancel);
                rb->r = rb->sets ? nft_read_elems(n, TABLE_NAME, (const char *const *)rb->sets,
                                                  strv_length(rb->sets), &rb->have)
                                 : nft_table_summary(n, TABLE_NAME, true, &rb->have);
        }
        nft_close(n);
}

static void check_done(void *userdata);
#define CHECK_TRIES 3

/* A read-back on a thread of the sets named (NULL: all of the table), keyed as m->expect. */
static int readback_start(struct ks_manager *m, char **sets, worker_fn_t done, struct readback **ret)
{
        struct readback *rb = calloc(1, sizeof(*rb));
        int r;

        if (!rb) {
                strv_free(sets);
                return -ENOMEM;
        }
        *rb = (struct readback){ .m = m, .sets = sets };
        summary_copy_key(&m->expect, &rb->have);
        r = worker_start_background(m->event, readback_work, done, rb, &rb->worker);
        if (r < 0) {
                readback_free(rb);
                return r;
        }
        *ret = rb;
        return 0;
}

/*
 * The elements of the big sets (more than STAGE_BIG_SET) of a table that was
 * adopted or checked after lost events without them: a dump of 200,000
 * elements takes a few tenths of a second, too long for start-up or the loop,
 * so it runs on a thread. The table stays in force and owned meanwhile; if the
 * kernel holds other elements than the compiler built, check_done rebuilds it.
 */
static void check_big_sets_try(struct ks_manager *m, const char *who, unsigned tries, bool built)
{
        char **big = NULL;

        m->check = readback_free(m->check);
        if (sets_sized(&m->expect, true, &big) < 0 || !big ||
            readback_start(m, big, check_done, &m->check) < 0) {
                if (big)
                        log_warning("Could not start reading the big sets of table inet %s back: not checked",
                                    TABLE_NAME);
                return;
        }
        m->check->who = who;
        m->check->tries = tries;
        m->check->built = built;
        stager_hold(m->links_stager, true);     /* its steps would interrupt the dumps */
}

static void check_big_sets(struct ks_manager *m, const char *who)
{
        check_big_sets_try(m, who, 0, false);
}

static void check_done(void *userdata)
{
        struct readback *rb = userdata;
        struct ks_manager *m = rb->m;
        struct ks_actor self = AGENT_ACTOR(rb->who);
        const char *active = active_policy(m);
        struct ks_error e = {};
        char diff[512] = "";
        int r = rb->r;

        /* Interrupted five times in a row by commits (a staging in steps): read again, a few times. */
        if (r == -EINTR && rb->tries < CHECK_TRIES) {
                check_big_sets_try(m, rb->who, rb->tries + 1, rb->built);
                return;
        }
        /* Our own transaction, acknowledged into our owned table: unreadable is no reason to rebuild again. */
        if (r < 0 && rb->built) {
                log_warning("Could not read the big sets of table inet %s back after the rebuild (%s): not checked",
                            TABLE_NAME, strerror(-r));
                m->check = readback_free(m->check);
                return;
        }
        if (r == 0)
                r = summary_diff_elems(&m->expect, &rb->have, diff, sizeof(diff));
        else
                snprintf(diff, sizeof(diff), "its big sets could not be read back (%s)", strerror(-r));
        m->check = readback_free(m->check);
        if (r == 0) {
                log_info("The big sets of table inet %s hold what the agent built", TABLE_NAME);
                return;
        }
        /* Not what we can show is ours: rebuilt, while isolated held first as always. */
        log_notice("Table inet %s holds other elements than the agent built, it is rebuilt: %s", TABLE_NAME, diff);
        if (rebuild(m, active, &e) < 0) {
                log_error("Rebuilding table inet %s failed: %s", TABLE_NAME, e.msg);
                return;
        }
        audit(m, AUDIT_REASSERT, &self, active, NULL, diff, NULL);
}

/* Base chains come and go with every switch, which may fall between the read and now: left out. */
static void remove_base_chains(struct ks_summary *s)
{
        for (size_t i = s->n_chains; i-- > 0;)
                if (s->chains[i].base)
                        summary_remove_chain(s, s->chains[i].name);
}

/* A staged table read back on a thread against what was sent: all of it but the base chains. */
static int staged_diff(const struct ks_summary *expect, struct ks_summary *have, char *diff, size_t size)
{
        struct ks_summary want = {};
        int r = summary_copy(expect, &want);

        remove_base_chains(&want);
        remove_base_chains(have);
        if (r == 0)
                r = summary_diff(&want, have, true, diff, size);
        summary_clear(&want);
        return r;
}

static void readback_done(void *userdata)
{
        struct readback *rb = userdata;
        struct ks_manager *m = rb->m;
        struct ks_error e = {};
        char diff[512] = "";
        int r = rb->r;

        /* rb->r is the read's own error (a dump that failed), not a difference. */
        if (r == 0)
                r = staged_diff(&m->expect, &rb->have, diff, sizeof(diff));
        if (rb->r == 0 && r == -EPROTO)
                ks_error_set(&e, r, KS_ERR_APPLY, "The kernel acknowledged the staging of the reloaded policies, "
                             "but table inet %s read back differs: %s", TABLE_NAME, diff);
        else if (r < 0)
                ks_error_set(&e, r, KS_ERR_APPLY, "Could not read table inet %s back from the kernel: %s",
                             TABLE_NAME, strerror(-r));
        m->readback = readback_free(m->readback);
        staging_finished(m, r, &e);
}

/* The stager filled the big sets (or failed): read their element counts back, then answer the reload. */
static void on_staged(void *userdata, int r, const struct ks_error *se)
{
        struct ks_manager *m = userdata;
        struct ks_error e = {};
        struct readback *rb;

        m->stager = stager_retire(m, m->stager);
        if (r < 0) {
                staging_finished(m, r, se);
                return;
        }
        /* The whole table, chains and rules of the policies sent in steps too, on a thread (staged_diff). */
        r = readback_start(m, NULL, readback_done, &rb);
        if (r < 0) {
                r = verify(m, true, &e);        /* on the loop, then */
                staging_finished(m, r, &e);
                return;
        }
        m->readback = rb;
        stager_hold(m->links_stager, true);     /* its steps would interrupt the dumps */
}

/*
 * The O(1) switch: hook `active` (NULL: unhook) in one small transaction. If
 * the staged table is not what we built (a failed reload, a foreign change),
 * rebuild it instead: slower, equally atomic.
 */
static int hook(struct ks_manager *m, const char *active, struct ks_error *e)
{
        int r;

        if (active && stager_pending(m->stager, active)) {
                log_info("Policy %s is still being staged: sending the rest of it first", active);
                stager_finish_policy(m->stager, active);
        }
        if (!m->staged_ok)
                return rebuild(m, active, e);
        r = switch_hook(m, active, e);
        if (r < 0) {
                log_warning("The switch to %s failed (%s); rebuilding the table", active ? active : "normal",
                            e->msg);
                return rebuild(m, active, e);
        }
        return 0;
}

/*
 * Flows offloaded to a flowtable bypass our hooks: push them back to the slow
 * path. Walking the conntrack table costs milliseconds, so only where a
 * flowtable exists.
 */
static void flush_offloaded_flows(struct ks_manager *m)
{
        unsigned deleted = 0;
        int r = nft_has_flowtables(m->nft);

        if (r == 0)
                return;
        r = conntrack_flush_offloaded(&deleted);
        if (r < 0)
                log_warning_errno(r, "Could not remove offloaded flows from the flowtables: %m");
        else if (deleted > 0)
                log_notice("Took %u offloaded flows off the flowtable fast path", deleted);
}

/* Would isolating with p cut the caller's own SSH session? */
static int check_lockout(const struct ks_policy *p, const char *ssh_connection, struct ks_error *e)
{
        char client[64], server[64], ifname[IFNAMSIZ];  /* sscanf %63s */
        unsigned cport, sport;
        uint8_t addr[16], ours[16];
        bool have_ours;
        char *pct;
        int family, r;

        if (!ssh_connection || sscanf(ssh_connection, "%63s %u %63s %u", client, &cport, server, &sport) != 4 ||
            cport > 65535 || sport > 65535)
                return 0;
        if ((pct = strchr(client, '%')))
                *pct = '\0';   /* IPv6 zone */
        family = strchr(client, ':') ? AF_INET6 : AF_INET;
        if (inet_pton(family, client, addr) != 1)
                return 0;
        r = route_lookup_ifname(family, addr, ifname);
        if (r < 0 || !policy_has_uplink(p, ifname))
                return 0;
        if ((pct = strchr(server, '%')))
                *pct = '\0';
        have_ours = inet_pton(family, server, ours) == 1;
        if (policy_keeps_inbound(p, family, addr, have_ours ? ours : NULL, IPPROTO_TCP, (uint16_t)cport,
                                 (uint16_t)sport))
                return 0;
        return ks_error_set(e, -EPERM, KS_ERR_LOCKOUT,
                            "Refusing to isolate with policy %s: it would cut your own SSH session from %s, which "
                            "arrives over uplink %s. Add %s to the policy's [Management] section (or to a "
                            "gateway with Ports=tcp:%u), or repeat with --force.",
                            p->name, client, ifname, client, sport);
}

static void audit_schedule(struct ks_manager *m, const struct ks_actor *a, const struct ks_isolate_opts *o)
{
        const struct ks_state *s = &m->state;
        char at[32], msg[512];

        if (o->restore_at_usec) {
                snprintf(msg, sizeof(msg), "Restore scheduled for %s by %s%s",
                         timespec_format_rfc3339(s->restore_at_usec, at, sizeof(at)), a->user ? a->user : "?",
                         s->request_user ? ": waiting for a second person (four eyes)" : "");
                manager_audit(m, s->request_user ? AUDIT_REQUEST : AUDIT_SCHEDULE, a, s->policy, NULL, s->reason, msg);
        }
        if (o->confirm_usec) {
                snprintf(msg, sizeof(msg), "Commit-confirmed isolation with policy %s by %s: unless confirmed by "
                         "%s, back to %s%s", s->policy, a->user ? a->user : "?",
                         timespec_format_rfc3339(s->confirm_usec, at, sizeof(at)),
                         s->revert_isolated ? "policy " : "the normal state",
                         s->revert_isolated ? (s->revert_policy ? s->revert_policy : "(unknown)") : "");
                manager_audit(m, AUDIT_SCHEDULE, a, s->policy, s->revert_policy, s->reason, msg);
        }
}

/*
 * Isolating with the policy already in force changes nothing in what is cut (the same rules are
 * put in force again, which repairs a table that lost them): recorded as asked again, with the
 * since, user and reason of the isolation that stays.
 */
static void audit_repeat(struct ks_manager *m, const struct ks_actor *a, const char *reason)
{
        const struct ks_state *s = &m->state;
        char since[32], msg[512];

        snprintf(msg, sizeof(msg), "Isolation with policy %s asked again by %s: already in force since %s (by %s)%s%s; "
                 "nothing changed in what is cut", s->policy, a->user ? a->user : "?",
                 timespec_format_rfc3339(s->since_usec, since, sizeof(since)), s->user ? s->user : "?",
                 s->reason ? ": " : "", s->reason ? s->reason : "");
        manager_audit(m, AUDIT_REPEAT, a, s->policy, NULL, reason, msg);
}

/* "Scheduled restore at T" and/or "the restore now requested by A at T": what a change dropped. */
static void dropped_text(const struct ks_state *prev, bool schedule, bool request, char *buf, size_t size)
{
        char at[32], req[32];

        snprintf(buf, size, "%s%s%s%s%s%s%s%s", schedule ? "Scheduled restore at " : "",
                 schedule ? timespec_format_rfc3339(prev->restore_at_usec, at, sizeof(at)) : "",
                 schedule && request ? " and its " : "", !schedule && request ? "The " : "",
                 request ? (prev->request_restore_usec ? "restore request by " : "restore-now request by ") : "",
                 request ? prev->request_user : "", request ? " from " : "",
                 request ? timespec_format_rfc3339(prev->request_at_usec, req, sizeof(req)) : "");
}

/*
 * An isolation asked without an end has none: the scheduled restore and the four-eyes request
 * an earlier isolation or restore left are dropped (transition_isolate), and recorded as such.
 */
static void audit_dropped(struct ks_manager *m, const struct ks_actor *a, const char *reason,
                          const struct ks_state *prev)
{
        const struct ks_state *s = &m->state;
        bool had_request = transition_request_pending(prev, now_realtime_usec(), schedule_now_boottime());
        bool schedule = prev->isolated && prev->restore_at_usec && !s->restore_at_usec;
        bool request = had_request && (!s->request_user || s->request_at_usec != prev->request_at_usec);
        char what[256], msg[512];

        if (!schedule && !request)
                return;
        dropped_text(prev, schedule, request, what, sizeof(what));
        snprintf(msg, sizeof(msg), "%s dropped by %s's isolation with policy %s, %s", what,
                 a->user ? a->user : "?", s->policy,
                 s->restore_at_usec ? "which has its own schedule" : "which has no end");
        manager_audit(m, AUDIT_CANCEL, a, s->policy, NULL, reason, msg);
}

/* On the thread: GETOBJ_RESET is a read, which the kernel allows any socket on an owned table. */
static void reset_work(void *userdata)
{
        struct ks_manager *m = userdata;

        m->reset_r = m->reset_nft ? 0 : nft_open(&m->reset_nft);
        if (m->reset_r == 0)
                m->reset_r = nft_reset_counters(m->reset_nft, TABLE_NAME);
}

static void reset_done(void *userdata)
{
        struct ks_manager *m = userdata;

        m->resetting = worker_free(m->resetting);
        if (m->reset_r < 0)
                log_warning("Could not reset the counters of table inet %s: %s", TABLE_NAME, strerror(-m->reset_r));
}

/*
 * Counters start from zero at the next isolation. The reset dumps every
 * counter of both tables (1-15 ms on a busy machine): on a thread, which the
 * next isolation waits for if it still runs (wait_counters_reset), so that it
 * never zeroes what that isolation counted.
 */
static void wait_counters_reset(struct ks_manager *m)
{
        if (m->resetting)
                worker_finish(m->resetting);
}

static void reset_counters(struct ks_manager *m)
{
        wait_counters_reset(m);
        if (worker_start(m->event, reset_work, reset_done, m, &m->resetting) < 0) {
                reset_work(m);          /* here, then */
                reset_done(m);
        }
}

int manager_isolate(struct ks_manager *m, const char *name, const struct ks_actor *a, const char *reason,
                    const struct ks_isolate_opts *o, struct ks_error *e)
{
        static const struct ks_isolate_opts none = {};
        const struct ks_policy *p;
        struct ks_state next, prev;
        bool superseded, repeat, fresh = !m->state.isolated, owed = false;
        int r, saved;

        o = o ? o : &none;
        name = name ? name : DEFAULT_POLICY;
        r = manager_find_policy(m, name, &p, e);
        if (r == 0 && !o->force)
                r = check_lockout(p, a->ssh_connection, e);
        if (r < 0) {
                audit(m, AUDIT_REFUSED, a, name, NULL, reason, e);
                return r;
        }
        repeat = transition_repeat(&m->state, name);
        r = transition_isolate(&m->state, name, a, reason, o, now_realtime_usec(), schedule_now_boottime(), &next);
        if (r < 0)
                return ks_error_set(e, r, KS_ERR_INTERNAL, "Out of memory");
        superseded = m->state.isolated && m->state.confirm_usec && !o->confirm_usec &&
                     !o->revert;
        wait_counters_reset(m);         /* the last restore's: it would zero what this isolation counts */
        /*
         * Fail-closed: record the intent first, so that a crash right after the commit restarts
         * isolated; written, the commit does not wait for the disk, and the answer does (below).
         */
        saved = state_write(m->state_dir, &next, &owed);
        r = hook(m, name, e);
        if (r < 0) {
                if (saved == 0)
                        state_save(m->state_dir, &m->state);
                state_clear(&next);
                audit(m, AUDIT_APPLY_FAILED, a, name, NULL, reason, e);
                return r;
        }
        if (saved == 0 && owed)
                saved = state_sync(m->state_dir);       /* an isolation answered is on disk */
        if (repeat)
                audit_repeat(m, a, reason);
        else
                audit(m, m->state.isolated ? AUDIT_SWITCH : AUDIT_ISOLATE, a, name,
                      m->state.isolated ? m->state.policy : NULL, reason, NULL);
        prev = m->state;
        m->state = next;
        audit_dropped(m, a, reason, &prev);
        state_clear(&prev);
        if (!repeat)
                m->reassertions = 0;    /* counted per isolation */
        manager_links_remember_soon(m);
        manager_drops_isolated(m, fresh);
        notify_status(m);
        flush_offloaded_flows(m);
        audit_schedule(m, a, o);
        if (superseded)
                log_notice("The pending commit-confirmed revert was superseded by this isolation");
        schedule_arm(m->schedule);
        triggers_state_changed(m->triggers);
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
        int r;

        r = hook(m, NULL, e);
        if (r < 0) {
                audit(m, AUDIT_APPLY_FAILED, a, NULL, m->state.policy, reason, e);
                return r;
        }
        if (m->state.isolated)
                manager_drops_restored(m);      /* before the counters are reset */
        /* Counters start from zero at the next isolation, reset on a thread (reset_counters). The report keeps them. */
        if (m->handlers.restoring)
                m->handlers.restoring(m);
        reset_counters(m);
        if (!m->state.isolated)
                return 0;
        r = set_state(&next, false, NULL, a, reason);
        if (r < 0)
                return ks_error_set(e, r, KS_ERR_INTERNAL, "Out of memory");
        audit(m, AUDIT_RESTORE, a, NULL, m->state.policy, reason, NULL);
        state_clear(&m->state);
        m->state = next;
        notify_status(m);
        schedule_arm(m->schedule);
        triggers_state_changed(m->triggers);
        r = state_save(m->state_dir, &m->state);
        if (r < 0)
                return ks_error_set(e, r, KS_ERR_STATE,
                                    "The uplinks are open, but the state could not be saved in %s: %s. A "
                                    "restarted agent would isolate again: fix the state directory and "
                                    "restore again.", m->state_dir, strerror(-r));
        return 0;
}

/* The next state (taken) saved, then in force and its deadlines armed; if it cannot be saved, nothing changes. */
static int commit_schedule(struct ks_manager *m, struct ks_state *next, const char *what, struct ks_error *e)
{
        int r = state_save(m->state_dir, next);

        if (r < 0) {
                state_clear(next);
                return ks_error_set(e, r, KS_ERR_STATE, "Could not save the %s in %s/%s: %s; nothing was changed",
                                    what, m->state_dir, STATE_FILE, strerror(-r));
        }
        state_clear(&m->state);
        m->state = *next;
        schedule_arm(m->schedule);
        return 0;
}

/* Save m->state with another schedule; on failure nothing changed. */
static int save_schedule(struct ks_manager *m, uint64_t restore_at, uint64_t restore_boot, bool keep_confirm,
                         struct ks_error *e)
{
        struct ks_state next;

        if (state_copy(&m->state, &next) < 0)
                return ks_error_set(e, -ENOMEM, KS_ERR_INTERNAL, "Out of memory");
        next.restore_at_usec = restore_at;
        next.restore_boot_usec = restore_boot;
        if (!keep_confirm) {
                next.confirm_usec = 0;
                next.confirm_boot_usec = 0;
                next.revert_isolated = false;
                free(next.revert_policy);
                next.revert_policy = NULL;
        }
        return commit_schedule(m, &next, "schedule", e);
}

int manager_schedule_restore(struct ks_manager *m, const struct ks_actor *a, uint64_t at, uint64_t boot,
                             const char *reason, struct ks_error *e)
{
        char when[32], msg[256];
        int r;

        if (!m->state.isolated)
                return ks_error_set(e, -ENOTCONN, KS_ERR_NOT_ISOLATED,
                                    "Not isolated: there is nothing to restore (isolate with --for or --until to "
                                    "isolate and schedule the restore at once)");
        if (at <= now_realtime_usec())
                return ks_error_set(e, -EINVAL, KS_ERR_PARAM, "The restore time %s has already passed",
                                    timespec_format_rfc3339(at, when, sizeof(when)));
        r = save_schedule(m, at, boot, true, e);
        if (r < 0)
                return r;
        snprintf(msg, sizeof(msg), "Restore scheduled for %s by %s", timespec_format_rfc3339(at, when, sizeof(when)),
                 a->user ? a->user : "?");
        manager_audit(m, AUDIT_SCHEDULE, a, m->state.policy, NULL, reason, msg);
        return 0;
}

/* Drop the scheduled restore and a four-eyes request waiting for a second person, whichever pends. */
int manager_cancel(struct ks_manager *m, const struct ks_actor *a, const char *reason, struct ks_error *e)
{
        const struct ks_state *s = &m->state;
        bool schedule = s->isolated && s->restore_at_usec;
        bool request = transition_request_pending(s, now_realtime_usec(), schedule_now_boottime());
        struct ks_state next;
        char what[256], msg[512];
        int r;

        if (!schedule && !request)
                return ks_error_set(e, -ENOENT, KS_ERR_NOTHING_PENDING, "No restore is scheduled or requested%s",
                                    s->isolated && s->confirm_usec
                                    ? " (a commit-confirmed isolation is pending: 'killswitchctl confirm' keeps "
                                      "it, or let it revert)" : "");
        dropped_text(s, schedule, request, what, sizeof(what));
        if (transition_cancel(s, &next) < 0)
                return ks_error_set(e, -ENOMEM, KS_ERR_INTERNAL, "Out of memory");
        r = commit_schedule(m, &next, "cancel", e);
        if (r < 0)
                return r;
        snprintf(msg, sizeof(msg), "%s cancelled by %s: the isolation stays in force", what,
                 a->user ? a->user : "?");
        manager_audit(m, AUDIT_CANCEL, a, m->state.policy, NULL, reason, msg);
        return 0;
}

int manager_confirm(struct ks_manager *m, const struct ks_actor *a, struct ks_error *e)
{
        char msg[256];
        int r;

        if (!m->state.isolated || !m->state.confirm_usec)
                return ks_error_set(e, -ENOENT, KS_ERR_NOTHING_PENDING,
                                    "Nothing to confirm: no commit-confirmed isolation is pending (it may have "
                                    "reverted already: see 'killswitchctl history')");
        r = save_schedule(m, m->state.restore_at_usec, m->state.restore_boot_usec, false, e);
        if (r < 0)
                return r;
        snprintf(msg, sizeof(msg), "Isolation with policy %s confirmed by %s: it stays in force", m->state.policy,
                 a->user ? a->user : "?");
        manager_audit(m, AUDIT_CONFIRM, a, m->state.policy, NULL, NULL, msg);
        return 0;
}

/* The state in force, for the schedule's timers (schedule.c) and the triggers (triggers.c). */
static const struct ks_state *state_in_force(void *userdata)
{
        struct ks_manager *m = userdata;

        return &m->state;
}

/* A deadline of the schedule is due: the commit-confirmed revert, or the scheduled restore. */
static int on_schedule_due(void *userdata, enum transition_due due, const char *reason)
{
        struct ks_manager *m = userdata;
        const struct ks_state *s = &m->state;
        struct ks_actor self = AGENT_ACTOR(due == TRANSITION_RESTORE ? "schedule" : "confirm-timeout");
        struct ks_isolate_opts revert = { .force = true, .revert = true };
        _cleanup_free_ char *to = NULL;
        struct ks_error e = {};
        int r = 0;

        switch (due) {
        case TRANSITION_NONE:
                return 0;
        case TRANSITION_RESTORE:
                r = manager_restore(m, &self, reason, &e);
                if (r < 0)
                        log_error("The scheduled restore failed: %s", e.msg);
                return r;
        case TRANSITION_REVERT_SWITCH:
                to = s->revert_policy ? strdup(s->revert_policy) : NULL;
                if (s->revert_policy && !to)
                        return -ENOMEM;
                manager_audit(m, AUDIT_REVERT, &self, s->policy, to, reason, NULL);
                r = manager_isolate(m, to, &self, reason, &revert, &e);
                break;
        case TRANSITION_REVERT_KEEP:
                to = strdup(s->policy);
                if (!to)
                        return -ENOMEM;
                manager_audit(m, AUDIT_REVERT, &self, s->policy, NULL, reason, NULL);
                log_error("Cannot revert: the previous policy is unknown; keeping policy %s in force", to);
                r = manager_isolate(m, to, &self, reason, &revert, &e);
                break;
        case TRANSITION_REVERT_RESTORE:
                manager_audit(m, AUDIT_REVERT, &self, s->policy, NULL, reason, NULL);
                r = manager_restore(m, &self, reason, &e);
                break;
        case TRANSITION_RESTORE_UNAPPROVED:
        case TRANSITION_REQUEST_EXPIRED:
                return approve_lapse(m, due, now_realtime_usec());
        }
        if (r < 0)
                log_error("The commit-confirmed revert failed: %s", e.msg);
        return r;
}

/* A trigger of killswitch.conf fires (triggers.c): isolate with its policy, whatever pends. */
static void on_trigger_fired(void *userdata, const char *id, const char *policy, const char *why)
{
        struct ks_manager *m = userdata;
        struct ks_actor self = AGENT_ACTOR(id);
        struct ks_isolate_opts o = { .force = true, .trigger = true };
        struct ks_error e = {};

        manager_audit(m, AUDIT_TRIGGER, &self, policy, active_policy(m), why, NULL);
        if (manager_isolate(m, policy, &self, why, &o, &e) < 0)
                log_error("Trigger %s fired, but isolating with policy %s failed: %s", id, policy, e.msg);
}

/* (Re-)read killswitch.conf and set up its triggers. */
static void load_triggers(struct ks_manager *m)
{
        const struct triggers_context ctx = {
                .event = m->event, .config_dir = m->config_dir, .store = &m->store, .nft = m->nft,
                .state = state_in_force, .fire = on_trigger_fired, .userdata = m,
        };

        triggers_load(&m->triggers, &ctx);
}

/* At each load and reload: the files that failed, and the warnings about those that loaded (for Reload too). */
static void log_store_problems(struct ks_manager *m)
{
        for (size_t i = 0; i < m->store.n; i++) {
                const struct ks_policy_entry *e = &m->store.items[i];

                for (size_t j = 0; j < e->errors.n; j++)
                        log_error("%s", e->errors.msgs[j]);
                if (e->save_error < 0)
                        log_warning("Could not save the last good version of policy %s in %s: %s. After a restart "
                                    "a broken %s could not fall back to it.", e->name, m->lastgood_dir,
                                    strerror(-e->save_error), e->path);
        }
        diags_clear(&m->policy_warnings);
        if (lint_host_store(&m->store, &m->policy_warnings) < 0)
                log_warning("Out of memory: the policies were not checked for warnings");
        for (size_t i = 0; i < m->policy_warnings.n; i++)
                log_warning("%s", m->policy_warnings.msgs[i]);
}

/*
 * Stage the reloaded policies: a rebuild, unless no policy changed and the
 * table is intact. (A rebuild while isolated replaces the sets of the policy in
 * force too; see adopt() on why not to do that needlessly.)
 */
static int reload_stage(struct ks_manager *m, const char *active, struct ks_error *e)
{
        _cleanup_free_ char *sig = staged_signature(m);
        /* The rules the reload compiled: the table's digest must be theirs, whatever the generations say. */
        const char *now = m->precompiled.rs ? ruleset_comment(m->precompiled.rs) : NULL;
        bool unchanged = sig && m->staged && m->staged_ok && strcmp(sig, m->staged) == 0;

        if (unchanged && now && !summary_same_digest(now, m->expect.comment))
                log_info("No policy changed, but the compiled rules differ from those of table inet %s (%s, not "
                         "%s): rebuilding", TABLE_NAME, now, m->expect.comment ? m->expect.comment : "no digest");
        else if (unchanged && verify(m, false, e) == 0) {
                log_info("No policy changed: table inet %s left as it is", TABLE_NAME);
                return 0;
        }
        return rebuild_in_steps(m, active, e);
}

/* A reload asked for: who asked (copied: the request is gone by the time it is answered), whom to tell. */
struct reload_waiter {
        struct reload_waiter *next;
        manager_reload_done_t done;
        void *userdata;
        struct ks_actor actor;
        char *strings[4];               /* what actor's strings point to */
};

static struct reload_waiter *waiter_free(struct reload_waiter *w)
{
        for (size_t i = 0; i < ELEMENTSOF(w->strings); i++)
                free(w->strings[i]);
        free(w);
        return NULL;
}

static struct reload_waiter *waiter_new(const struct ks_actor *a, manager_reload_done_t done, void *userdata)
{
        struct reload_waiter *w = calloc(1, sizeof(*w));
        const char *src[4] = { a->user, a->ssh_connection, a->trigger, a->origin };

        if (!w)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(src); i++)
                if (src[i] && !(w->strings[i] = strdup(src[i])))
                        return waiter_free(w);
        w->done = done;
        w->userdata = userdata;
        w->actor = (struct ks_actor){ .user = w->strings[0], .uid = a->uid, .pid = a->pid,
                                      .ssh_connection = w->strings[1], .trigger = w->strings[2],
                                      .origin = w->strings[3] };
        return w;
}

/*
 * At exit: answers the callers. A reload's thread still reading the files is
 * not waited for (on a busy machine, parsing and compiling a large policy at
 * its low priority takes seconds, tens of them): it gets the store, which it
 * reads, and the process's exit ends it.
 */
static void reloads_clear(struct ks_manager *m)
{
        struct ks_error e = {};

        ks_error_set(&e, -ECANCELED, KS_ERR_RELOAD, "The agent is stopping: the policies were not reloaded");
        if (m->reloads)
                log_info("Stopping during a reload: it is dropped, and the next start reads the policy files again");
        while (m->reloads) {
                struct reload_waiter *w = m->reloads;

                m->reloads = w->next;
                w->done(m, w->userdata, -ECANCELED, 0, &e);     /* the answer lists the store */
                waiter_free(w);
        }
        m->reload = reload_abandon(m->reload, &m->store);
}

/* The files are read: put the results in force and re-stage the table (perhaps in steps: m->stager). */
static int reload_finish(struct ks_manager *m, const struct ks_actor *a, int r, struct store_scan *scan,
                         size_t *ret_failed, struct ks_error *e)
{
        const char *active = m->state.isolated ? m->state.policy : NULL;

        if (r == 0) {
                r = store_apply_scan(&m->store, scan, active, m->lastgood_dir, ret_failed, &m->retired);
                manager_retired_release(m);
        }
        if (r < 0)
                return ks_error_set(e, r, KS_ERR_RELOAD, "Could not read the policy directory %s: %s",
                                    m->policy_dir, strerror(-r));
        log_store_problems(m);
        /* Re-stage everything; the policy in force is re-hooked in the same transaction. */
        if (active && !store_get(&m->store, active)) {
                log_error("Policy %s is in force but has no loadable version: keeping the table as it is",
                          active);
                m->staged_ok = false;
                return 0;
        }
        return reload_stage(m, active, e);
}

static int reload_next(struct ks_manager *m);

/* The reload at the head of the queue is over, staging included: audit it, answer it, start the next. */
static void reload_complete(struct ks_manager *m, int r, const struct ks_error *e)
{
        struct reload_waiter *w = m->reloads;
        const char *active = m->state.isolated ? m->state.policy : NULL;
        struct ks_error done = {};

        m->reload = reload_free(m->reload);
        m->reload_staging = false;
        if (r < 0) {
                audit(m, AUDIT_APPLY_FAILED, &w->actor, active, NULL, "staging the reloaded policies", e);
        } else {
                load_triggers(m);
                snprintf(done.msg, sizeof(done.msg), "Reloaded %zu policies from %s (%zu with problems)",
                         m->store.n, m->policy_dir, m->reload_failed);
                audit(m, AUDIT_RELOAD, &w->actor, active, NULL, NULL, &done);
        }
        m->reloads = w->next;
        w->done(m, w->userdata, r, m->reload_failed, e);
        waiter_free(w);
        reload_next(m);
}

static void on_reload_scanned(void *userdata, int r, struct store_scan *scan, struct reload_table *table)
{
        struct ks_manager *m = userdata;
        struct ks_error e = {};

        manager_links_compile_abandon(m);       /* it reads the store, which changes now */

        m->reload_failed = 0;
        /*
         * Compiled on the thread without hooks: replace_table() adds those of the policy in force now, and
         * uses it only if it was compiled from the policies the store holds then.
         */
        precompiled_clear(m);
        m->precompiled = *table;
        *table = (struct reload_table){};
        r = reload_finish(m, &m->reloads->actor, r, scan, &m->reload_failed, &e);
        precompiled_clear(m);
        if (r == 0 && m->stager) {
                m->reload_staging = true;       /* answered once the big sets are filled (on_staged) */
                return;
        }
        reload_complete(m, r, &e);
}

static int reload_begin(struct ks_manager *m)
{
        return reload_start(m->event, m->policy_dir, m->lastgood_dir, &m->store, active_policy(m), &m->expect,
                            on_reload_scanned, m, &m->reload);
}

/* Start the first queued reload, if none runs; a failure to start answers (and drops) it at once. */
static int reload_next(struct ks_manager *m)
{
        struct ks_error e = {};
        int r;

        while (!m->reload && !m->reload_staging && m->reloads) {
                struct reload_waiter *w = m->reloads;

                r = reload_begin(m);
                if (r >= 0)
                        return 0;
                ks_error_set(&e, r, KS_ERR_RELOAD, "Could not start reading the policies: %s", strerror(-r));
                m->reloads = w->next;
                w->done(m, w->userdata, r, 0, &e);
                waiter_free(w);
        }
        return 0;
}

int manager_reload(struct ks_manager *m, const struct ks_actor *a, manager_reload_done_t done, void *userdata,
                   struct ks_error *e)
{
        struct reload_waiter *w = waiter_new(a, done, userdata), **tail = &m->reloads;
        int r;

        if (!w)
                return ks_error_set(e, -ENOMEM, KS_ERR_INTERNAL, "Out of memory");
        while (*tail)
                tail = &(*tail)->next;
        *tail = w;
        if (m->reloads != w)
                return 0;       /* after the one that runs: the files may have changed since it read them */
        r = reload_begin(m);
        if (r < 0) {
                *tail = waiter_free(w);
                return ks_error_set(e, r, KS_ERR_RELOAD, "Could not start reading the policies: %s", strerror(-r));
        }
        return 0;
}

/* Loudly: policy e's file did not load at start, and its last good copy is in use. */
static void audit_last_good(struct ks_manager *m, const struct ks_policy_entry *e)
{
        struct ks_actor self = AGENT_ACTOR("startup");
        struct ks_error err = {};
        char at[32];

        timespec_format_rfc3339(e->lastgood_usec, at, sizeof(at));
        ks_error_set(&err, 0, NULL, "Policy %s does not load (%s): its last good version, saved at %s in %s/%s.policy, "
                     "is in use. Fix the file, then run 'killswitchctl reload'.", e->name,
                     e->errors.n ? e->errors.msgs[0] : e->path, at, m->lastgood_dir, e->name);
        audit(m, AUDIT_LAST_GOOD, &self, e->name, NULL, NULL, &err);
}

static void audit_last_goods(struct ks_manager *m)
{
        for (size_t i = 0; i < m->store.n; i++)
                if (m->store.items[i].lastgood_usec)
                        audit_last_good(m, &m->store.items[i]);
}

/* At start, isolated, the default policy has no file that loaded: its last good copy, if there is one. */
static void default_from_copy(struct ks_manager *m)
{
        const struct ks_policy_entry *e;

        if (store_fall_back(&m->store, m->policy_dir, DEFAULT_POLICY, m->lastgood_dir,
                            "not loaded at start: the file is gone, or the policy directory cannot be read") < 0)
                return;
        e = store_find(&m->store, DEFAULT_POLICY);
        if (e && e->lastgood_usec)
                audit_last_good(m, e);
}

/* "[Uplinks]" with the uplinks the state file remembers (each once), in *ret_n; nothing else is kept. */
static char *builtin_cut_text(const struct ks_state *s, size_t *ret_n)
{
        char *text = NULL;
        size_t len = 0, n = 0;
        FILE *f = open_memstream(&text, &len);

        if (!f)
                return NULL;
        fputs("[Policy]\nDescription=Built-in cut: no policy could be applied at start; every uplink the state "
              "file remembers is cut, nothing is kept\n\n[Uplinks]\n", f);
        for (size_t i = 0; i < s->n_uplink_ids; i++) {
                const char *name = s->uplink_ids[i].name;
                bool seen = false, clean = name[0] != '\0';

                for (const char *c = name; *c; c++)
                        clean = clean && *c > ' ' && *c < 0x7f;
                for (size_t j = 0; j < i && !seen; j++)
                        seen = strcmp(s->uplink_ids[j].name, name) == 0;
                if (clean && !seen && ++n)
                        fprintf(f, "Interface=%s\n", name);
        }
        if (fclose(f) != 0) {
                free(text);
                return NULL;
        }
        *ret_n = n;
        return text;
}

/* The first problem of policy `name`'s file, for the history. */
static const char *load_error(struct ks_manager *m, const char *name)
{
        const struct ks_policy_entry *e = name ? store_find(&m->store, name) : NULL;

        return e && e->errors.n > 0 ? e->errors.msgs[0] : "no such policy file";
}

/* The built-in cut, in the store and in force. */
static int apply_builtin_cut(struct ks_manager *m, const char *text, struct ks_error *e)
{
        struct ks_diags diags = {};
        struct ks_policy *p = NULL;
        int r;

        r = policy_parse_string(text, "(built-in)", BUILTIN_CUT_POLICY, &p, &diags);
        if (r < 0) {
                ks_error_set(e, r, KS_ERR_APPLY, "The built-in cut does not compile: %s",
                             diags.n ? diags.msgs[0] : strerror(-r));
                diags_clear(&diags);
                return r;
        }
        r = store_put(&m->store, BUILTIN_CUT_POLICY, "(built-in)", p);
        if (r < 0)
                return ks_error_set(e, r, KS_ERR_INTERNAL, "Out of memory");
        return rebuild(m, BUILTIN_CUT_POLICY, e);
}

/*
 * The last resort at start: the state says isolated, and neither its policy,
 * the default one, nor their last good copies can be applied. Open uplinks
 * would be the worst answer: cut every uplink the state file remembers, keep
 * nothing. If it remembers none, say so wherever one looks (status).
 */
static int startup_cut_all(struct ks_manager *m)
{
        struct ks_actor self = AGENT_ACTOR("startup");
        const char *was = m->state.policy ? m->state.policy : "(unknown)";
        _cleanup_free_ char *text = NULL, *why = NULL;
        struct ks_error e = {};
        size_t n = 0;
        int r;

        why = strdup_printf("no policy could be applied at start (%s: %s; %s: %s)", was, load_error(m, m->state.policy),
                            DEFAULT_POLICY, load_error(m, DEFAULT_POLICY));
        text = builtin_cut_text(&m->state, &n);
        if (!text || !why)
                return log_error_errno(-ENOMEM, "Cannot build the built-in cut: %m");
        if (n == 0)
                r = ks_error_set(&e, -ENOENT, KS_ERR_APPLY, "The state says isolated (policy %s), but %s, and the "
                                 "state file names no uplink to cut: THE UPLINKS ARE OPEN. Fix the policies and run "
                                 "'killswitchctl isolate'.", was, why);
        else
                r = apply_builtin_cut(m, text, &e);
        if (r < 0) {
                if (n > 0) {
                        log_error("The built-in cut failed: %s", e.msg);
                        ks_error_set(&e, r, KS_ERR_APPLY, "The state says isolated (policy %s), but %s, and the "
                                     "built-in cut failed too: THE UPLINKS ARE OPEN. Fix the policies and run "
                                     "'killswitchctl isolate'.", was, why);
                }
                audit(m, AUDIT_APPLY_FAILED, &self, m->state.policy, NULL, NULL, &e);
                return rebuild(m, NULL, &e) < 0 ? -ENOENT : 0;
        }
        audit(m, AUDIT_FAIL_CLOSED, &self, BUILTIN_CUT_POLICY, m->state.policy, why, NULL);
        free(m->state.policy);
        m->state.policy = strdup(BUILTIN_CUT_POLICY);
        if (!m->state.policy)
                return log_error_errno(-ENOMEM, "Cannot record policy %s: %m", BUILTIN_CUT_POLICY);
        return 0;
}

/* The state says isolated: put it back; never open the uplinks because of a problem. */
static int startup_isolated(struct ks_manager *m)
{
        struct ks_actor self = AGENT_ACTOR("startup");
        struct ks_error e = {};
        char why[256] = "";

        if (m->state.policy && store_get(&m->store, m->state.policy) && adopt(m, m->state.policy, why) == 0) {
                log_notice("Isolation with policy %s is in force: the kernel still holds it, adopted",
                           m->state.policy);
                return 0;
        }
        if (m->state.policy && store_get(&m->store, m->state.policy)) {
                if (rebuild(m, m->state.policy, &e) == 0) {
                        log_notice("Isolation with policy %s is in force (restored from the state file)",
                                   m->state.policy);
                        /* The history says why a table was replaced while isolated: its rules were not ours. */
                        if (why[0])
                                audit(m, AUDIT_REASSERT, &self, m->state.policy, NULL, why, NULL);
                        return 0;
                }
                log_error("Could not re-apply policy %s: %s", m->state.policy, e.msg);
        }
        if (nft_exists(m->nft, TABLE_NAME, CHAIN_PREROUTING) > 0) {
                log_error("Policy %s is unavailable; keeping the isolation rules already in the kernel",
                          m->state.policy ? m->state.policy : "(unknown)");
                m->staged_ok = false;
                m->hooked = true;
                return 0;
        }
        if (!store_find(&m->store, DEFAULT_POLICY))
                default_from_copy(m);
        if (store_get(&m->store, DEFAULT_POLICY) && rebuild(m, DEFAULT_POLICY, &e) == 0) {
                log_error("The state says isolated, but policy %s is unavailable: isolated with the default "
                          "policy %s instead", m->state.policy ? m->state.policy : "(unknown)", DEFAULT_POLICY);
                audit(m, AUDIT_FAIL_CLOSED, &self, DEFAULT_POLICY, m->state.policy,
                      "the persisted policy is unavailable at start", NULL);
                free(m->state.policy);
                m->state.policy = strdup(DEFAULT_POLICY);
                /* The kernel holds the isolation: exiting keeps it, and the restarted agent adopts it. */
                if (!m->state.policy)
                        return log_error_errno(-ENOMEM, "Cannot record policy %s: %m", DEFAULT_POLICY);
                return 0;
        }
        return startup_cut_all(m);
}

/* Fail-closed start: isolated with the default policy, for a reason. */
static void state_fail_closed(struct ks_manager *m, const char *reason)
{
        struct ks_actor self = AGENT_ACTOR("startup");
        struct ks_state *s = &m->state;

        audit(m, AUDIT_FAIL_CLOSED, &self, DEFAULT_POLICY, s->policy, reason, NULL);
        state_clear(s);
        s->isolated = true;
        s->policy = strdup(DEFAULT_POLICY);
        s->since_usec = now_realtime_usec();
        s->user = strdup("killswitchd");
        s->reason = strdup(reason);
        /* Isolated all the same: startup_isolated() takes the default policy for an unknown one. */
        if (!s->policy || !s->user || !s->reason)
                log_error("Out of memory recording the fail-closed start; isolating with policy %s all the same",
                          DEFAULT_POLICY);
}

static int startup_state(struct ks_manager *m)
{
        struct ks_error e = {};
        int r = state_load(m->state_dir, &m->state);

        if (r == -ENOENT) {
                state_init(&m->state);
        } else if (r < 0) {
                log_error("State file %s/%s is unreadable or corrupt (%s): isolating with the default policy %s "
                          "(fail-closed). Check the file, then restore.", m->state_dir, STATE_FILE,
                          strerror(-r), DEFAULT_POLICY);
                state_fail_closed(m, "state file unreadable at start");
        }
        if (!m->state.isolated && nft_exists(m->nft, TABLE_NAME, CHAIN_PREROUTING) > 0) {
                log_error("The kernel holds an isolation although the state says normal: isolating with the "
                          "default policy %s (fail-closed); 'killswitchctl restore' lifts it", DEFAULT_POLICY);
                state_fail_closed(m, "isolation found in the kernel at start");
        }
        if (m->state.isolated)
                return startup_isolated(m);
        if (adopt(m, NULL, (char[256]){}) == 0)
                return 0;
        r = rebuild(m, NULL, &e);
        if (r < 0)
                log_error("Could not stage the policies: %s", e.msg);
        return 0;
}

static int on_reassert(sd_event_source *s, void *userdata);

static int on_reassert_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        return on_reassert(s, userdata);
}

/* Put our table back as it must be: one rebuild transaction. */
static int on_reassert(sd_event_source *s, void *userdata)
{
        struct ks_manager *m = userdata;
        struct ks_actor self = AGENT_ACTOR("monitor");
        uint64_t now = now_monotonic_usec();
        struct ks_error e = {};
        const char *active = m->state.isolated ? m->state.policy : NULL;

        m->reassert_source = sd_event_source_disable_unref(m->reassert_source);
        if (m->resync_pending) {
                m->resync_pending = false;
                if (table_intact(m)) {
                        log_info("Lost nftables events, but table inet %s is as it must be", TABLE_NAME);
                        return 0;
                }
        }
        if (now - m->reassert_window_start > REASSERT_WINDOW_USEC) {
                m->reassert_window_start = now;
                m->reassert_window_count = 0;
        }
        if (++m->reassert_window_count > REASSERT_BURST) {
                m->rate_limited = true;
                ks_error_set(&e, -EBUSY, NULL,
                             "RATE LIMIT: table inet %s was changed by another process %u times in %llus; not "
                             "re-asserting for %llus. Another firewall manager is fighting killswitch: stop it.",
                             TABLE_NAME, m->reassert_window_count, REASSERT_WINDOW_USEC / USEC_PER_SEC,
                             REASSERT_BACKOFF_USEC / USEC_PER_SEC);
                audit(m, AUDIT_RATE_LIMIT, &self, active, NULL, NULL, &e);
                m->reassert_window_start = 0;   /* the timer below starts a fresh window */
                m->reassert_window_count = 0;
                sd_event_add_time_relative(m->event, &m->reassert_source, CLOCK_MONOTONIC,
                                           REASSERT_BACKOFF_USEC, 0, on_reassert_timer, m);
                return 0;
        }
        if (active && !store_get(&m->store, active)) {
                log_error("Cannot re-assert: policy %s has no loadable version", active);
                return 0;
        }
        triggers_reassert(m->triggers);
        /*
         * The netdev table may have been changed too (set dormant, say): stage
         * it whole again rather than trust it (is_ours covers both tables).
         */
        free(m->links_staged);
        m->links_staged = NULL;
        if (rebuild(m, active, &e) < 0) {
                log_error("Re-asserting table inet %s failed: %s", TABLE_NAME, e.msg);
                return 0;
        }
        m->rate_limited = false;
        m->reassertions++;
        ks_error_set(&e, 0, NULL, "Re-asserted table inet %s (%s; %u re-assertions since the isolation began)",
                     TABLE_NAME, active ? active : "normal", m->reassertions);
        audit(m, AUDIT_REASSERT, &self, active, NULL, NULL, &e);
        return 0;
}

/* Our bulk transactions are sent with the monitor out of the event group (nft_set_quiet). */
static int quiet_mute(void *userdata, bool mute)
{
        return monitor_mute(userdata, mute);
}

static void quiet_lost(void *userdata)
{
        monitor_lost(userdata);
}

/* Someone else changed our table (or events were lost): re-assert once the burst is read. */
static void on_foreign_change(void *userdata, const struct monitor_event *ev)
{
        struct ks_manager *m = userdata;

        if (!ev->overflow)
                manager_links_foreign_hooks(m, ev);
        if (!ev->overflow && !ev->touched)
                return;

        if (ev->overflow) {
                /* A burst overflowed the event socket, or a commit came while it was muted: check, don't assume. */
                log_debug("Lost nftables events (a receive buffer overflow, or a commit unheard): checking table "
                          "inet %s", TABLE_NAME);
                if (m->state.isolated)
                        manager_links_reassert_soon(m);         /* a chain bound to an uplink may have gone unseen */
                m->resync_pending = !m->reassert_source || m->resync_pending;
                m->events_lost = true;
        } else {
                m->resync_pending = false;
                struct ks_actor culprit = { .user = ev->comm, .uid = -1, .pid = ev->pid, .trigger = "monitor" };
                struct ks_error e = {};

                ks_error_set(&e, 0, NULL, "TAMPER: table inet %s was changed by %s (pid %d, generation %u)",
                             TABLE_NAME, ev->comm, (int)ev->pid, ev->generation);
                audit(m, AUDIT_TAMPER, &culprit, m->state.isolated ? m->state.policy : NULL, NULL, NULL, &e);
        }
        if (!m->reassert_source &&
            sd_event_add_defer(m->event, &m->reassert_source, on_reassert, m) < 0)
                log_error("Could not schedule the re-assertion of table inet %s", TABLE_NAME);
}

static void on_sighup_reloaded(struct ks_manager *m, void *userdata, int r, size_t failed, const struct ks_error *e)
{
        if (r == -ECANCELED)    /* the agent is stopping (reloads_clear logged it) */
                return;
        if (r < 0)
                log_error("Reload failed: %s", e->msg);
        sd_notify(0, "READY=1");
        notify_status(m);
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        struct ks_manager *m = userdata;
        struct ks_actor self = AGENT_ACTOR("sighup");
        struct ks_error e = {};

        sd_notify(0, "RELOADING=1");
        if (manager_reload(m, &self, on_sighup_reloaded, NULL, &e) < 0)
                on_sighup_reloaded(m, NULL, -1, 0, &e);
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

/*
 * At start, before the store is loaded: the policy the state file says is in
 * force (the default one if the file is corrupt), kept from its last good copy
 * even when its file is gone.
 */
static char *policy_in_force_at_start(struct ks_manager *m)
{
        struct ks_state s;
        char *name;
        int r = state_load(m->state_dir, &s);

        if (r == -ENOENT)
                return NULL;
        if (r < 0)
                return strdup(DEFAULT_POLICY);  /* startup_state() isolates with it (fail-closed) */
        /* The built-in cut has no file and no copy: built again if nothing else applies (startup_cut_all()). */
        name = s.isolated && s.policy && strcmp(s.policy, BUILTIN_CUT_POLICY) != 0 ? strdup(s.policy) : NULL;
        state_clear(&s);
        return name;
}

int manager_startup(struct ks_manager *m)
{
        _cleanup_free_ char *keep = NULL;
        int r;

        r = setup_signals(m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up signal handling: %m");
        /* Serves WatchdogSec= from the unit (WATCHDOG_USEC); a no-op otherwise. */
        r = sd_event_set_watchdog(m->event, true);
        if (r < 0)
                log_warning_errno(r, "Failed to enable the systemd watchdog: %m");
        keep = policy_in_force_at_start(m);
        r = store_load_dir(&m->store, m->policy_dir, keep, m->lastgood_dir, NULL);
        if (r < 0)
                log_error_errno(r, "Cannot read policies from %s: %m", m->policy_dir);
        log_store_problems(m);
        audit_last_goods(m);
        r = nft_open(&m->nft);
        if (r < 0)
                return log_error_errno(r, "Cannot open a netlink socket to nf_tables: %m");
        /* Watch before putting the state in force, so no foreign change goes unseen. */
        r = monitor_new(m->event, TABLE_NAME, on_foreign_change, m, &m->monitor);
        if (r < 0)
                return log_error_errno(r, "Cannot watch nftables events: %m");
        monitor_set_own_portid(m->monitor, nft_portid(m->nft));
        nft_set_quiet(m->nft, &(struct nft_quiet){ .mute = quiet_mute, .lost = quiet_lost, .userdata = m->monitor });
        r = links_new(m->event, manager_links_changed, m, &m->links);
        if (r < 0)
                log_warning_errno(r, "Cannot watch the links over rtnetlink (renamed or stacked uplinks will not "
                                  "be followed): %m");
        r = startup_state(m);
        if (r < 0 && r != -ENOENT)
                return r;
        if (m->state.isolated && !m->drops_source)
                manager_drops_isolated(m, true);
        else if (!m->state.isolated)
                manager_drops_load(m);
        manager_links_adopt(m);
        /*
         * Adopted or rebuilt, the netdev table is staged as this version builds it. Not afresh: the
         * uplinks just adopted by ifindex (renamed while we were down) are the policy's in force.
         */
        manager_links_stage(m, m->state.isolated ? m->state.policy : NULL, false);
        /* Deadlines that passed while we were down are carried out on the first loop iteration. */
        schedule_arm(m->schedule);
        load_triggers(m);
        r = control_new(m->event, m->socket_path, m->handlers.methods, m, &m->control);
        if (r < 0)
                return log_error_errno(r, "Cannot listen on %s: %m%s", m->socket_path,
                                       r == -EADDRINUSE ? " (another killswitchd answers there)" : "");
        control_set_trusted(m->control, m->handlers.trusted);
        control_set_urgent(m->control, m->handlers.urgent);
        manager_links_remember(m);    /* the uplinks as tracked now, adopted ones included */
        return 0;
}

/*
 * The loop, but an error of its own (a timer the kernel refuses to arm, as under
 * libfaketime; a failed epoll_wait) does not end the agent: sd-event leaves the
 * loop usable, so it is logged (once a minute at most) and retried, backing
 * off to 1 s while it lasts. Callbacks handle their own errors and return 0.
 * Only if it never recovers does the watchdog (pinged by the loop) have
 * systemd restart the agent.
 */
static int event_loop(sd_event *event)
{
        uint64_t logged = 0;
        unsigned failures = 0;
        int r, last = 0;

        while (sd_event_get_state(event) != SD_EVENT_FINISHED) {
                r = sd_event_run(event, UINT64_MAX);
                if (r >= 0) {
                        failures = 0;
                        continue;
                }
                if (r != last || now_monotonic_usec() - logged >= 60 * USEC_PER_SEC) {
                        log_error_errno(r, "The event loop failed: %m; going on, retrying until it works "
                                        "(the isolation, if any, stays in force)");
                        last = r;
                        logged = now_monotonic_usec();
                }
                failures++;
                usleep(failures < 7 ? 10000u << failures : 1000000u);  /* 20 ms, 40 ms, ..., 1 s */
        }
        r = sd_event_get_exit_code(event, &last);
        return r < 0 ? r : last;
}

int manager_run(struct ks_manager *m)
{
        char where[160];        /* a socket path (at most 107 bytes) and a note */
        int r;

        sd_notify(0, "READY=1");
        notify_status(m);
        log_info("killswitchd ready: %s, %zu policies, listening on %s",
                 !m->state.isolated ? "normal" : manager_applied(m) ? "isolated" :
                 "isolated, but NOTHING IS APPLIED: THE UPLINKS ARE OPEN", m->store.n,
                 control_describe(m->control, where, sizeof(where)));
        r = event_loop(m->event);
        sd_notify(0, "STOPPING=1");
        log_info("killswitchd stopping%s", m->state.isolated ? "; the isolation stays in force" : "");
        return r;
}
