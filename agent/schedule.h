/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

#include <systemd/sd-event.h>

#include "state.h"
#include "transition.h"

/*
 * The timers of the deadlines of the persisted state (state.h): a scheduled
 * restore and the revert of a commit-confirmed isolation. They are saved as
 * wall-clock instants, so they survive restarts and reboots; one that passed
 * while the agent was down is carried out at start and recorded as late. A
 * deadline given as a duration (--for, --confirm, restore --in) is armed on
 * CLOCK_BOOTTIME (it counts suspend, and an NTP step neither delays nor
 * advances it), across a restart of the agent too (saved with the boot id);
 * after a reboot, and for one given as an instant (--until, --at), on
 * CLOCK_REALTIME, following the wall clock.
 *
 * The module reads the state through its owner's accessor and reports a due
 * deadline through a callback (transition_due() says which); it changes
 * nothing itself. The owner calls schedule_arm() after every change of its
 * state.
 */

struct ks_schedule;

/* The state in force: its deadlines, read again at every deadline. */
typedef const struct ks_state *(*schedule_state_t)(void *userdata);

/*
 * Carry out `due` (a revert, the scheduled restore, or the lapse of a
 * four-eyes request; never TRANSITION_NONE) for `reason` ("scheduled restore
 * at ...", NULL for a lapse). Returns 0, or a negative errno: tried again
 * SCHEDULE_RETRY_USEC later.
 */
typedef int (*schedule_due_t)(void *userdata, enum transition_due due, const char *reason);

int schedule_new(sd_event *event, schedule_state_t state, schedule_due_t due, void *userdata,
                 struct ks_schedule **ret);
struct ks_schedule *schedule_free(struct ks_schedule *s);

/* (Re-)arm the timers for the earliest deadlines of the state, or disarm them. NULL: nothing. */
void schedule_arm(struct ks_schedule *s);

/* CLOCK_BOOTTIME now, in µs: the clock of durations. */
uint64_t schedule_now_boottime(void);

/* A deadline is "late" when carried out this long after its time (the agent was down or suspended). */
#define SCHEDULE_LATE_USEC (2ULL * 1000000ULL)
/* After a failed restore or revert, try again this much later. */
#define SCHEDULE_RETRY_USEC (5ULL * 1000000ULL)
