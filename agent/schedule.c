/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "schedule.h"
#include "timespec.h"
#include "timeutil.h"

struct ks_schedule {
        sd_event *event;
        sd_event_source *real;          /* CLOCK_REALTIME: the next deadline given as an instant */
        sd_event_source *boot;          /* CLOCK_BOOTTIME: the next one given as a duration */
        schedule_state_t state;
        schedule_due_t due;
        void *userdata;
};

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata);

int schedule_new(sd_event *event, schedule_state_t state, schedule_due_t due, void *userdata,
                 struct ks_schedule **ret)
{
        struct ks_schedule *s = calloc(1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        *s = (struct ks_schedule){ .event = sd_event_ref(event), .state = state, .due = due, .userdata = userdata };
        *ret = s;
        return 0;
}

struct ks_schedule *schedule_free(struct ks_schedule *s)
{
        if (!s)
                return NULL;
        sd_event_source_disable_unref(s->real);
        sd_event_source_disable_unref(s->boot);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}

uint64_t schedule_now_boottime(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_BOOTTIME, &ts);
        return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000ULL;
}

/* Arm the timer of `clock` (CLOCK_REALTIME or CLOCK_BOOTTIME) at `at`, or disarm it if 0. */
static void arm_at(struct ks_schedule *s, clockid_t clock, uint64_t at)
{
        sd_event_source **source = clock == CLOCK_BOOTTIME ? &s->boot : &s->real;
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
                r = sd_event_add_time(s->event, source, clock, at, 1, on_deadline, s);
        }
        if (r < 0)
                log_error_errno(r, "Cannot arm the timer of the schedule: %m; a pending deadline is missed until "
                                "the next change or restart");
}

/* A deadline given as a duration counts on CLOCK_BOOTTIME, an instant on the wall clock. */
void schedule_arm(struct ks_schedule *s)
{
        uint64_t real, boot;

        if (!s)
                return;
        transition_deadlines(s->state(s->userdata), &real, &boot);
        arm_at(s, CLOCK_REALTIME, real);
        arm_at(s, CLOCK_BOOTTIME, boot);
}

/* ", 42s late: the agent was not running" or "": late on the clock that decides (transition_late()). */
static void late_note(uint64_t late, char *buf, size_t size)
{
        char span[TIMESPEC_SPAN_MAX];

        if (late > SCHEDULE_LATE_USEC)
                snprintf(buf, size, ", %s late (the agent was not running or the machine was asleep)",
                         timespec_format_span(late, span, sizeof(span)));
        else
                buf[0] = '\0';
}

static int revert(struct ks_schedule *sc, enum transition_due due, uint64_t now, uint64_t now_boot)
{
        const struct ks_state *s = sc->state(sc->userdata);
        char reason[1024], at[32], late[160];

        late_note(transition_late(s->confirm_usec, s->confirm_boot_usec, now, now_boot), late, sizeof(late));
        snprintf(reason, sizeof(reason), "isolation with policy %s (by %s) was not confirmed by %s%s", s->policy,
                 s->user ? s->user : "?", timespec_format_rfc3339(s->confirm_usec, at, sizeof(at)), late);
        return sc->due(sc->userdata, due, reason);
}

static int restore(struct ks_schedule *sc, uint64_t now, uint64_t now_boot)
{
        const struct ks_state *s = sc->state(sc->userdata);
        char reason[512], at[32], late[160];

        late_note(transition_late(s->restore_at_usec, s->restore_boot_usec, now, now_boot), late, sizeof(late));
        snprintf(reason, sizeof(reason), "scheduled restore at %s%s",
                 timespec_format_rfc3339(s->restore_at_usec, at, sizeof(at)), late);
        if (*late)
                log_warning("Carrying out the %s", reason);
        return sc->due(sc->userdata, TRANSITION_RESTORE, reason);
}

static int on_deadline(sd_event_source *source, uint64_t usec, void *userdata)
{
        struct ks_schedule *s = userdata;
        uint64_t now = now_realtime_usec(), now_boot = schedule_now_boottime();
        enum transition_due due = transition_due(s->state(s->userdata), now, now_boot);
        int r = 0;

        /* The revert first (transition_due says so): it decides what a restore due at the same time applies to. */
        if (due == TRANSITION_REVERT_RESTORE || due == TRANSITION_REVERT_SWITCH || due == TRANSITION_REVERT_KEEP)
                r = revert(s, due, now, now_boot);
        due = r == 0 ? transition_due(s->state(s->userdata), now, now_boot) : TRANSITION_NONE;
        if (due == TRANSITION_RESTORE)
                r = restore(s, now, now_boot);
        /* Four eyes: a request nobody approved in time lapses; a scheduled restore without its approval does not happen. */
        else if (due == TRANSITION_RESTORE_UNAPPROVED || due == TRANSITION_REQUEST_EXPIRED)
                r = s->due(s->userdata, due, NULL);
        if (r < 0)
                arm_at(s, CLOCK_BOOTTIME, now_boot + SCHEDULE_RETRY_USEC);
        else
                schedule_arm(s);
        return 0;
}
