/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "approve.h"
#include "audit.h"
#include "cleanup.h"
#include "log.h"
#include "manager.h"
#include "schedule.h"
#include "state.h"
#include "timespec.h"
#include "timeutil.h"
#include "transition.h"

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata);

uint64_t schedule_now_boottime(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_BOOTTIME, &ts);
        return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000ULL;
}

/* Arm the timer of `clock` (CLOCK_REALTIME or CLOCK_BOOTTIME) at `at`, or disarm it if 0. */
static void arm_at(struct ks_manager *m, clockid_t clock, uint64_t at)
{
        sd_event_source **source = clock == CLOCK_BOOTTIME ? &m->schedule_boot_source : &m->schedule_source;
        int r;

        if (!at) {
                if (*source)
                        sd_event_source_set_enabled(*source, SD_EVENT_OFF);
                return;
        }
        if (*source) {
                r = sd_event_source_set_time(*source, at);
                if (r >= 0)
                        r = sd_event_source_set_enabled(*source, SD_EVENT_ONESHOT);
        } else {
                /* Accuracy 1 µs: a restore at 18:00 happens at 18:00, not whenever sd-event coalesces. */
                r = sd_event_add_time(m->event, source, clock, at, 1, on_deadline, m);
        }
        if (r < 0)
                log_error_errno(r, "Cannot arm the timer of the schedule: %m; a pending deadline is missed until "
                                "the next change or restart");
}

/* A deadline given as a duration counts on CLOCK_BOOTTIME, an instant on the wall clock. */
void schedule_arm(struct ks_manager *m)
{
        uint64_t real, boot;

        transition_deadlines(&m->state, &real, &boot);
        arm_at(m, CLOCK_REALTIME, real);
        arm_at(m, CLOCK_BOOTTIME, boot);
}

/* ", 42s late: the agent was not running" or "". */
static void late_note(uint64_t due, uint64_t now, char *buf, size_t size)
{
        char span[TIMESPEC_SPAN_MAX];

        if (now > due + SCHEDULE_LATE_USEC)
                snprintf(buf, size, ", %s late (the agent was not running or the machine was asleep)",
                         timespec_format_span(now - due, span, sizeof(span)));
        else
                buf[0] = '\0';
}

static int revert(struct ks_manager *m, enum transition_due due, uint64_t now)
{
        const struct ks_state *s = &m->state;
        struct ks_actor self = AGENT_ACTOR("confirm-timeout");
        _cleanup_free_ char *to = s->revert_policy ? strdup(s->revert_policy) : NULL;
        char reason[1024], at[32], late[160];
        struct ks_error e = {};
        int r;

        if (s->revert_policy && !to)
                return -ENOMEM;
        late_note(s->confirm_usec, now, late, sizeof(late));
        snprintf(reason, sizeof(reason), "isolation with policy %s (by %s) was not confirmed by %s%s", s->policy,
                 s->user ? s->user : "?", timespec_format_rfc3339(s->confirm_usec, at, sizeof(at)), late);
        manager_audit(m, AUDIT_REVERT, &self, s->policy, due == TRANSITION_REVERT_SWITCH ? to : NULL, reason,
                      NULL);
        if (due == TRANSITION_REVERT_SWITCH) {
                struct ks_isolate_opts o = { .force = true };

                r = manager_isolate(m, to, &self, reason, &o, &e);
        } else if (due == TRANSITION_REVERT_KEEP) {
                log_error("Cannot revert: the previous policy is unknown; keeping policy %s in force", s->policy);
                r = manager_isolate(m, s->policy, &self, reason, &(struct ks_isolate_opts){ .force = true }, &e);
        } else {
                r = manager_restore(m, &self, reason, &e);
        }
        if (r < 0)
                log_error("The commit-confirmed revert failed: %s", e.msg);
        return r;
}

static int restore(struct ks_manager *m, uint64_t now)
{
        struct ks_actor self = AGENT_ACTOR("schedule");
        char reason[512], at[32], late[160];
        struct ks_error e = {};
        int r;

        late_note(m->state.restore_at_usec, now, late, sizeof(late));
        snprintf(reason, sizeof(reason), "scheduled restore at %s%s",
                 timespec_format_rfc3339(m->state.restore_at_usec, at, sizeof(at)), late);
        if (*late)
                log_warning("Carrying out the %s", reason);
        r = manager_restore(m, &self, reason, &e);
        if (r < 0)
                log_error("The scheduled restore failed: %s", e.msg);
        return r;
}

static int on_deadline(sd_event_source *source, uint64_t usec, void *userdata)
{
        struct ks_manager *m = userdata;
        uint64_t now = now_realtime_usec(), now_boot = schedule_now_boottime();
        enum transition_due due = transition_due(&m->state, now, now_boot);
        int r = 0;

        /* The revert first (transition_due says so): it decides what a restore due at the same time applies to. */
        if (due == TRANSITION_REVERT_RESTORE || due == TRANSITION_REVERT_SWITCH || due == TRANSITION_REVERT_KEEP)
                r = revert(m, due, now);
        due = r == 0 ? transition_due(&m->state, now, now_boot) : TRANSITION_NONE;
        if (due == TRANSITION_RESTORE)
                r = restore(m, now);
        /* Four eyes: a request nobody approved in time lapses; a scheduled restore without its approval does not happen. */
        else if (due == TRANSITION_RESTORE_UNAPPROVED || due == TRANSITION_REQUEST_EXPIRED)
                r = approve_lapse(m, due, now);
        if (r < 0)
                arm_at(m, CLOCK_BOOTTIME, now_boot + SCHEDULE_RETRY_USEC);
        else
                schedule_arm(m);
        return 0;
}

/* Save m->state with another schedule; on failure nothing changed. */
static int save_schedule(struct ks_manager *m, uint64_t restore_at, uint64_t restore_boot, bool keep_confirm,
                         struct ks_error *e)
{
        struct ks_state next;
        int r;

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
        r = state_save(m->state_dir, &next);
        if (r < 0) {
                state_clear(&next);
                return ks_error_set(e, r, KS_ERR_STATE, "Could not save the schedule in %s/%s: %s; nothing was "
                                    "changed", m->state_dir, STATE_FILE, strerror(-r));
        }
        state_clear(&m->state);
        m->state = next;
        schedule_arm(m);
        return 0;
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

int manager_cancel(struct ks_manager *m, const struct ks_actor *a, const char *reason, struct ks_error *e)
{
        char when[32], msg[256];
        uint64_t at = m->state.isolated ? m->state.restore_at_usec : 0;
        int r;

        if (!at)
                return ks_error_set(e, -ENOENT, KS_ERR_NOTHING_PENDING, "No restore is scheduled%s",
                                    m->state.isolated && m->state.confirm_usec
                                    ? " (a commit-confirmed isolation is pending: 'killswitchctl confirm' keeps "
                                      "it, or let it revert)" : "");
        r = save_schedule(m, 0, 0, true, e);
        if (r < 0)
                return r;
        snprintf(msg, sizeof(msg), "Scheduled restore at %s cancelled by %s: the isolation stays in force",
                 timespec_format_rfc3339(at, when, sizeof(when)), a->user ? a->user : "?");
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
