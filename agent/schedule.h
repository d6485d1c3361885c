/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

/*
 * Deadlines of the persisted state (state.h): a scheduled restore and the
 * revert of a commit-confirmed isolation. They are saved as wall-clock
 * instants, so they survive restarts and reboots; one that passed while the
 * agent was down is carried out at start and recorded as late. While the agent
 * runs, a deadline given as a duration (--for, --confirm, restore --in) is
 * armed on CLOCK_BOOTTIME (it counts suspend, and an NTP step neither delays
 * nor advances it); one given as an instant (--until, --at) on CLOCK_REALTIME,
 * following the wall clock. The manager calls schedule_arm() after every
 * change of its state.
 */

struct ks_manager;

/* CLOCK_BOOTTIME now, in µs: the clock of durations. */
uint64_t schedule_now_boottime(void);

/* (Re-)arm the timers for the earliest deadlines of m->state, or disarm them. */
void schedule_arm(struct ks_manager *m);

/* A deadline is "late" when carried out this long after its time (the agent was down or suspended). */
#define SCHEDULE_LATE_USEC (2ULL * 1000000ULL)
/* After a failed restore or revert, try again this much later. */
#define SCHEDULE_RETRY_USEC (5ULL * 1000000ULL)
