/* SPDX-License-Identifier: MIT */
/* The state machine's decisions (transition.h): pure, no clock, no I/O. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "manager.h"
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

int transition_isolate(const struct ks_state *cur, const char *policy, const struct ks_actor *a,
                       const char *reason, const struct ks_isolate_opts *o, uint64_t now, uint64_t now_boot,
                       struct ks_state *ret_next)
{
        struct ks_state *next = ret_next;
        int r = transition_state(next, true, policy, a, reason, now);

        if (r < 0)
                return r;
        if (cur->isolated && !o->trigger) {
                next->restore_at_usec = cur->restore_at_usec;
                next->restore_boot_usec = cur->restore_boot_usec;
        }
        if (o->restore_at_usec) {
                next->restore_at_usec = o->restore_at_usec;
                next->restore_boot_usec = o->restore_boot_usec;
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
                return TRANSITION_RESTORE;
        return TRANSITION_NONE;
}

static uint64_t earliest(uint64_t a, uint64_t b)
{
        return !a ? b : !b ? a : a < b ? a : b;
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
        }
        *ret_real = real;
        *ret_boot = boot;
}
