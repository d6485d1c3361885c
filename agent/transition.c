/* SPDX-License-Identifier: MIT */
/* The state machine's decisions (transition.h): pure, no clock, no I/O. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "actor.h"
#include "transition.h"

int transition_state(struct ks_state *s, bool isolated, const char *policy, const struct ks_actor *a,
                     const char *reason, uint64_t now)
{
        state_init(s);
        s->isolated = isolated;
        s->since_usec = now;
        s->uid = a->uid;
        if ((policy && !(s->policy = strdup(policy))) || (a->user && !(s->user = strdup(a->user))) ||
            (reason && !(s->reason = strdup(reason))) || (a->trigger && !(s->trigger = strdup(a->trigger)))) {
                state_clear(s);
                return -ENOMEM;
        }
        return 0;
}

static void drop_request(struct ks_state *s)
{
        free(s->request_user);
        s->request_user = NULL;
        s->request_uid = -1;
        s->request_at_usec = s->request_until_usec = s->request_until_boot_usec = s->request_restore_usec = 0;
}

static int copy_request(const struct ks_state *from, struct ks_state *to)
{
        drop_request(to);
        if (!from->request_user)
                return 0;
        if (!(to->request_user = strdup(from->request_user)))
                return -ENOMEM;
        to->request_uid = from->request_uid;
        to->request_at_usec = from->request_at_usec;
        to->request_until_usec = from->request_until_usec;
        to->request_until_boot_usec = from->request_until_boot_usec;
        to->request_restore_usec = from->request_restore_usec;
        return 0;
}

/* s waits for a second person until `until` (boot: its boottime twin, or 0) if wanted, else no request. */
static int set_request(struct ks_state *s, const struct ks_actor *a, bool wanted, uint64_t until, uint64_t boot,
                       uint64_t now)
{
        drop_request(s);
        if (!wanted)
                return 0;
        if (!(s->request_user = strdup(a->user ? a->user : "?")))
                return -ENOMEM;
        s->request_uid = a->uid;
        s->request_at_usec = now;
        s->request_until_usec = until;
        s->request_until_boot_usec = boot;
        return 0;
}

bool transition_repeat(const struct ks_state *cur, const char *policy)
{
        return cur->isolated && cur->policy && policy && strcmp(cur->policy, policy) == 0;
}

static void drop_confirm(struct ks_state *s)
{
        s->confirm_usec = s->confirm_boot_usec = 0;
        s->revert_isolated = false;
        free(s->revert_policy);
        s->revert_policy = NULL;
}

/*
 * The isolation in force (a repeat keeps its since, user, reason and trigger: nothing changes in
 * what is cut), or a new one; its deadlines are set again below, as this isolation asks.
 */
static int isolation(const struct ks_state *cur, const char *policy, const struct ks_actor *a, const char *reason,
                     uint64_t now, struct ks_state *next)
{
        int r;

        if (!transition_repeat(cur, policy))
                return transition_state(next, true, policy, a, reason, now);
        r = state_copy(cur, next);
        if (r < 0)
                return r;
        next->restore_at_usec = next->restore_boot_usec = 0;
        drop_request(next);
        drop_confirm(next);
        return 0;
}

int transition_isolate(const struct ks_state *cur, const char *policy, const struct ks_actor *a,
                       const char *reason, const struct ks_isolate_opts *o, uint64_t now, uint64_t now_boot,
                       struct ks_state *ret_next)
{
        struct ks_state *next = ret_next;
        int r = isolation(cur, policy, a, reason, now, next);

        if (r < 0)
                return r;
        /* Only the revert carries the schedule over: an isolation asked without an end has none. */
        if (cur->isolated && o->revert) {
                next->restore_at_usec = cur->restore_at_usec;
                next->restore_boot_usec = cur->restore_boot_usec;
                r = copy_request(cur, next);
        }
        if (r == 0 && o->restore_at_usec) {
                next->restore_at_usec = o->restore_at_usec;
                next->restore_boot_usec = o->restore_boot_usec;
                /* With four eyes, the schedule that comes with an isolation is a request like restore --at. */
                r = set_request(next, a, o->approvals > 1, o->restore_at_usec, o->restore_boot_usec, now);
                if (next->request_user)
                        next->request_restore_usec = o->restore_at_usec;
        }
        for (size_t i = 0; r == 0 && cur->isolated && i < cur->n_fired; i++)
                r = state_add_fired(next, cur->fired[i]);
        if (r == 0 && o->trigger && a->trigger)
                r = state_add_fired(next, a->trigger);
        if (r == 0 && o->confirm_usec) {
                bool pending = cur->isolated && cur->confirm_usec;
                const char *to = pending ? cur->revert_policy : cur->isolated ? cur->policy : NULL;

                next->confirm_usec = now + o->confirm_usec;
                next->confirm_boot_usec = now_boot + o->confirm_usec;
                next->revert_isolated = pending ? cur->revert_isolated : cur->isolated;
                if (to && !(next->revert_policy = strdup(to)))
                        r = -ENOMEM;
        }
        if (r < 0)
                state_clear(next);
        return r;
}

/* Is the deadline (wall clock, and boottime if it came from a duration) due? */
static bool due(uint64_t real, uint64_t boot, uint64_t now, uint64_t now_boot)
{
        return real && (boot ? boot <= now_boot : real <= now);
}

/*
 * A request for a scheduled restore whose schedule is gone (cancelled, or replaced, by an agent before
 * cancel dropped it too) asks for nothing any more: nobody can approve it.
 */
static bool request_stale(const struct ks_state *s)
{
        return s->request_restore_usec && s->request_restore_usec != s->restore_at_usec;
}

bool transition_request_pending(const struct ks_state *s, uint64_t now, uint64_t now_boot)
{
        return s->isolated && s->request_user && !request_stale(s) &&
               !due(s->request_until_usec, s->request_until_boot_usec, now, now_boot);
}

/* Is the request in s the one for the scheduled restore? */
static bool request_is_schedule(const struct ks_state *s)
{
        return s->request_user && s->request_restore_usec && s->request_restore_usec == s->restore_at_usec;
}

enum transition_due transition_due(const struct ks_state *s, uint64_t now, uint64_t now_boot)
{
        if (!s->isolated)
                return TRANSITION_NONE;
        if (due(s->confirm_usec, s->confirm_boot_usec, now, now_boot)) {
                if (!s->revert_isolated)
                        return TRANSITION_REVERT_RESTORE;
                /* Never open by guessing: without the previous policy, stay isolated. */
                return s->revert_policy ? TRANSITION_REVERT_SWITCH : TRANSITION_REVERT_KEEP;
        }
        if (due(s->restore_at_usec, s->restore_boot_usec, now, now_boot))
                return request_is_schedule(s) ? TRANSITION_RESTORE_UNAPPROVED : TRANSITION_RESTORE;
        if (s->request_user && due(s->request_until_usec, s->request_until_boot_usec, now, now_boot))
                return TRANSITION_REQUEST_EXPIRED;
        return TRANSITION_NONE;
}

enum transition_approval transition_approval(const struct ks_state *s, unsigned approvals, int64_t uid, bool force,
                                             uint64_t now, uint64_t now_boot)
{
        if (approvals <= 1)
                return TRANSITION_APPROVAL_RESTORE;
        if (force)
                return uid == 0 ? TRANSITION_APPROVAL_OVERRIDE : TRANSITION_APPROVAL_REFUSED;
        if (!transition_request_pending(s, now, now_boot))
                return TRANSITION_APPROVAL_REQUEST;
        /* Two persons are two uids: an unknown caller (-1) never approves its own request. */
        if (uid < 0 || uid == s->request_uid)
                return TRANSITION_APPROVAL_REPEATED;
        return TRANSITION_APPROVAL_APPROVED;
}

int transition_request(const struct ks_state *cur, const struct ks_actor *a, uint64_t restore_at,
                       uint64_t restore_boot, uint64_t timeout, uint64_t now, uint64_t now_boot,
                       struct ks_state *ret_next)
{
        int r = state_copy(cur, ret_next);

        if (r < 0)
                return r;
        if (restore_at) {
                ret_next->restore_at_usec = restore_at;
                ret_next->restore_boot_usec = restore_boot;
                r = set_request(ret_next, a, true, restore_at, restore_boot, now);
        } else {
                r = set_request(ret_next, a, true, now + timeout, now_boot + timeout, now);
        }
        ret_next->request_restore_usec = restore_at;
        if (r < 0)
                state_clear(ret_next);
        return r;
}

int transition_drop_request(const struct ks_state *cur, bool drop_restore, struct ks_state *ret_next)
{
        int r = state_copy(cur, ret_next);

        if (r < 0)
                return r;
        if (drop_restore && request_is_schedule(cur)) {
                ret_next->restore_at_usec = 0;
                ret_next->restore_boot_usec = 0;
        }
        drop_request(ret_next);
        return 0;
}

int transition_cancel(const struct ks_state *cur, struct ks_state *ret_next)
{
        int r = state_copy(cur, ret_next);

        if (r < 0)
                return r;
        ret_next->restore_at_usec = ret_next->restore_boot_usec = 0;
        drop_request(ret_next);
        return 0;
}

static uint64_t earliest(uint64_t a, uint64_t b)
{
        return !a ? b : !b ? a : a < b ? a : b;
}

uint64_t transition_deadline_shown(uint64_t real, uint64_t boot, uint64_t now, uint64_t now_boot)
{
        uint64_t shown;

        if (!real || !boot)
                return real;
        shown = boot > now_boot ? now + (boot - now_boot) : now;
        /* Within a second of the saved instant (no step): that one, so that it reads the same every time. */
        return shown < real + TRANSITION_SHOWN_SLACK_USEC && real < shown + TRANSITION_SHOWN_SLACK_USEC ? real : shown;
}

uint64_t transition_late(uint64_t real, uint64_t boot, uint64_t now, uint64_t now_boot)
{
        if (boot)
                return now_boot > boot ? now_boot - boot : 0;
        return real && now > real ? now - real : 0;
}

void transition_deadlines(const struct ks_state *s, uint64_t *ret_real, uint64_t *ret_boot)
{
        uint64_t real = 0, boot = 0;

        if (s->isolated) {
                if (s->restore_boot_usec)
                        boot = s->restore_boot_usec;
                else
                        real = s->restore_at_usec;
                if (s->confirm_boot_usec)
                        boot = earliest(boot, s->confirm_boot_usec);
                else
                        real = earliest(real, s->confirm_usec);
                if (s->request_until_boot_usec)
                        boot = earliest(boot, s->request_until_boot_usec);
                else
                        real = earliest(real, s->request_until_usec);
        }
        *ret_real = real;
        *ret_boot = boot;
}
