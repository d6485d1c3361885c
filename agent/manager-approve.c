/* SPDX-License-Identifier: MIT */
/* Four-eyes restore (manager-approve.h): applies what transition_approval() decides. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager-approve.h"
#include "audit.h"
#include "cleanup.h"
#include "log.h"
#include "manager.h"
#include "schedule.h"
#include "state.h"
#include "timespec.h"
#include "timeutil.h"
#include "triggers.h"

unsigned approve_needed(struct ks_manager *m)
{
        unsigned approvals;
        uint64_t timeout;

        triggers_restore_conf(m->triggers, &approvals, &timeout);
        return approvals;
}

static json_t *opt_instant(uint64_t usec)
{
        char buf[TIMESPEC_RFC3339_MAX];

        return usec ? json_string(timespec_format_rfc3339(usec, buf, sizeof(buf))) : json_null();
}

json_t *approve_request_json(struct ks_manager *m)
{
        const struct ks_state *s = &m->state;
        uint64_t now = now_realtime_usec(), now_boot = schedule_now_boottime();

        if (!transition_request_pending(s, now, now_boot))
                return json_null();
        return json_pack("{s:s, s:o, s:o, s:o, s:o, s:i}", "user", s->request_user,
                         "uid", s->request_uid >= 0 ? json_integer(s->request_uid) : json_null(),
                         "at", opt_instant(s->request_at_usec),
                         "until", opt_instant(transition_deadline_shown(s->request_until_usec,
                                                                        s->request_until_boot_usec, now, now_boot)),
                         "restore_at", opt_instant(s->request_restore_usec), "approvals", (int)approve_needed(m));
}

/* Put next in force (saved first); on failure nothing changed and next is cleared. */
static int replace_state(struct ks_manager *m, struct ks_state *next, struct ks_error *e)
{
        int r = state_save(m->state_dir, next);

        if (r < 0) {
                state_clear(next);
                return ks_error_set(e, r, KS_ERR_STATE, "Could not save the restore request in %s/%s: %s; nothing "
                                    "was changed", m->state_dir, STATE_FILE, strerror(-r));
        }
        state_clear(&m->state);
        m->state = *next;
        schedule_arm(m->schedule);
        return 0;
}

/* The plain "waiting for a second person" answer, with the request's time and deadline. */
static int waiting(struct ks_manager *m, bool again, struct ks_error *e)
{
        const struct ks_state *s = &m->state;
        char at[32], until[32], when[48] = "now";

        if (s->request_restore_usec)
                snprintf(when, sizeof(when), "at %s", timespec_format_rfc3339(s->request_restore_usec, at,
                                                                              sizeof(at)));
        return ks_error_set(e, -EINPROGRESS, KS_ERR_WAITING,
                            "%s: waiting for a second person. Restore %s was requested by %s at %s; another member "
                            "of group killswitch must run 'killswitchctl restore' before %s, or nothing happens "
                            "(root may override with 'restore --force').",
                            again ? "Already requested by you, nothing changed" : "Restore requested",
                            when, s->request_user, timespec_format_rfc3339(s->request_at_usec, at, sizeof(at)),
                            timespec_format_rfc3339(s->request_until_usec, until, sizeof(until)));
}

static int request(struct ks_manager *m, const struct ks_actor *a, uint64_t at, uint64_t boot, const char *reason,
                   struct ks_error *e)
{
        struct ks_state next;
        unsigned approvals;
        uint64_t timeout;
        char until[32], msg[256];
        int r;

        triggers_restore_conf(m->triggers, &approvals, &timeout);
        r = transition_request(&m->state, a, at, boot, timeout, now_realtime_usec(), schedule_now_boottime(), &next);
        if (r < 0)
                return ks_error_set(e, r, KS_ERR_INTERNAL, "Out of memory");
        r = replace_state(m, &next, e);
        if (r < 0)
                return r;
        snprintf(msg, sizeof(msg), "Restore%s%s requested by %s: waiting for a second person until %s",
                 at ? " at " : "", at ? timespec_format_rfc3339(at, until, sizeof(until)) : "",
                 a->user ? a->user : "?",
                 timespec_format_rfc3339(m->state.request_until_usec, until, sizeof(until)));
        manager_audit(m, AUDIT_REQUEST, a, m->state.policy, NULL, reason, msg);
        return waiting(m, false, e);
}

/* A second person approved: a scheduled request keeps its time, one for now restores now. */
static int approved(struct ks_manager *m, const struct ks_actor *a, const char *reason, struct ks_error *e)
{
        _cleanup_free_ char *asked_by = strdup(m->state.request_user);
        uint64_t at = m->state.request_restore_usec;
        struct ks_state next;
        char when[32], msg[512];
        int r;

        if (!asked_by || transition_drop_request(&m->state, false, &next) < 0)
                return ks_error_set(e, -ENOMEM, KS_ERR_INTERNAL, "Out of memory");
        r = replace_state(m, &next, e);
        if (r < 0)
                return r;
        snprintf(msg, sizeof(msg), "Restore %s%s requested by %s approved by %s", at ? "at " : "now",
                 at ? timespec_format_rfc3339(at, when, sizeof(when)) : "", asked_by, a->user ? a->user : "?");
        manager_audit(m, AUDIT_APPROVE, a, m->state.policy, NULL, reason, msg);
        return at ? 0 : manager_restore(m, a, reason, e);
}

/* Root alone, with --force: audited as an override, then restored (or scheduled) as asked. */
static int override(struct ks_manager *m, const struct ks_actor *a, uint64_t at, uint64_t boot, const char *reason,
                    struct ks_error *e)
{
        struct ks_state next;
        char msg[512];
        int r;

        snprintf(msg, sizeof(msg), "Four-eyes rule overridden by %s with --force%s%s%s",
                 a->user ? a->user : "?", m->state.request_user ? " (pending request by " : "",
                 m->state.request_user ? m->state.request_user : "", m->state.request_user ? ")" : "");
        if (transition_drop_request(&m->state, false, &next) < 0)
                return ks_error_set(e, -ENOMEM, KS_ERR_INTERNAL, "Out of memory");
        r = replace_state(m, &next, e);
        if (r < 0)
                return r;
        manager_audit(m, AUDIT_OVERRIDE, a, m->state.policy, NULL, reason, msg);
        return at ? manager_schedule_restore(m, a, at, boot, reason, e) : manager_restore(m, a, reason, e);
}

int approve_restore(struct ks_manager *m, const struct ks_actor *a, uint64_t at, uint64_t boot, const char *reason,
                    bool force, struct ks_error *e)
{
        enum transition_approval d = TRANSITION_APPROVAL_RESTORE;
        int r;

        /* Restoring while normal does nothing, and scheduling then is refused as before. */
        if (m->state.isolated)
                d = transition_approval(&m->state, approve_needed(m), a->uid, force, now_realtime_usec(),
                                        schedule_now_boottime());
        switch (d) {
        case TRANSITION_APPROVAL_RESTORE:
                return at ? manager_schedule_restore(m, a, at, boot, reason, e) : manager_restore(m, a, reason, e);
        case TRANSITION_APPROVAL_REQUEST:
                return request(m, a, at, boot, reason, e);
        case TRANSITION_APPROVAL_REPEATED:
                return waiting(m, true, e);
        case TRANSITION_APPROVAL_APPROVED:
                return approved(m, a, reason, e);
        case TRANSITION_APPROVAL_OVERRIDE:
                return override(m, a, at, boot, reason, e);
        case TRANSITION_APPROVAL_REFUSED:
                r = ks_error_set(e, -EPERM, KS_ERR_PERMISSION,
                                 "Only root may override the four-eyes rule with 'restore --force'; without "
                                 "--force, your restore waits for a second person");
                manager_audit_refused(m, a, m->state.policy, e->msg);
                return r;
        }
        return ks_error_set(e, -EINVAL, KS_ERR_INTERNAL, "Unknown approval decision");
}

int approve_lapse(struct ks_manager *m, enum transition_due due, uint64_t now)
{
        struct ks_actor self = AGENT_ACTOR("approval-timeout");
        const struct ks_state *s = &m->state;
        struct ks_state next;
        struct ks_error e = {};
        char at[32], until[32], msg[512];
        int r;

        if (due == TRANSITION_RESTORE_UNAPPROVED)
                snprintf(msg, sizeof(msg), "The restore scheduled for %s by %s did not happen: no second person "
                         "approved it; the isolation stays in force",
                         timespec_format_rfc3339(s->restore_at_usec, at, sizeof(at)), s->request_user);
        else
                snprintf(msg, sizeof(msg), "The restore requested by %s at %s lapsed at %s: no second person "
                         "approved it; the isolation stays in force", s->request_user,
                         timespec_format_rfc3339(s->request_at_usec, at, sizeof(at)),
                         timespec_format_rfc3339(s->request_until_usec, until, sizeof(until)));
        if (transition_drop_request(s, due == TRANSITION_RESTORE_UNAPPROVED, &next) < 0)
                return -ENOMEM;
        r = replace_state(m, &next, &e);
        if (r < 0) {
                log_error("%s", e.msg);
                return r;
        }
        manager_audit(m, AUDIT_EXPIRE, &self, m->state.policy, NULL, NULL, msg);
        return 0;
}
