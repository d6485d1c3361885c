/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

/*
 * Deadlines of the persisted state (state.h): a scheduled restore and the
 * revert of a commit-confirmed isolation. They are wall-clock instants, armed
 * on CLOCK_REALTIME, so they follow clock changes and survive restarts and
 * reboots; one that passed while the agent was down is carried out at start
 * and recorded as late. The manager calls schedule_arm() after every change
 * of its state.
 */

struct ks_manager;

/* (Re-)arm the timer for the earliest deadline of m->state, or disarm it. */
void schedule_arm(struct ks_manager *m);

/* A deadline is "late" when carried out this long after its time (the agent was down or suspended). */
#define SCHEDULE_LATE_USEC (2ULL * 1000000ULL)
/* After a failed restore or revert, try again this much later. */
#define SCHEDULE_RETRY_USEC (5ULL * 1000000ULL)
