/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "state.h"

/*
 * The state machine's decisions, pure: which state an isolation leads to, and
 * what a deadline carries out. No clock (the caller passes `now`, realtime
 * usec, and `now_boot`, CLOCK_BOOTTIME usec, for deadlines given as durations:
 * see struct ks_state), no I/O, no event loop: the manager (manager.c,
 * schedule.c) applies what these decide, and tests/unit/test-transition.c
 * checks them without a kernel.
 */

struct ks_actor;
struct ks_isolate_opts;

/* s = normal or isolated with policy, changed at now by a for reason. 0 or -ENOMEM (s cleared). */
int transition_state(struct ks_state *s, bool isolated, const char *policy, const struct ks_actor *a,
                     const char *reason, uint64_t now);

/*
 * The state after isolating with `policy` from cur. The schedule is the
 * isolation's own: o->restore_at_usec, or none. A pending restore (and its
 * four-eyes request) never outlives an isolation asked without an end, by a
 * person or a trigger (what a trigger demanded is never lifted by a schedule);
 * only the commit-confirmed revert (o->revert) carries it over. Triggers that
 * fired stay fired while isolated; commit-confirmed reverts to the last
 * confirmed state, kept across repeated --confirm. A repeat (the policy already
 * in force, transition_repeat) keeps since, user, reason and trigger of the
 * isolation in force. 0 or -ENOMEM (ret_next cleared).
 */
int transition_isolate(const struct ks_state *cur, const char *policy, const struct ks_actor *a,
                       const char *reason, const struct ks_isolate_opts *o, uint64_t now, uint64_t now_boot,
                       struct ks_state *ret_next);

/* Is isolating with policy from cur a repeat: cur is isolated with that very policy? */
bool transition_repeat(const struct ks_state *cur, const char *policy);

/* What a deadline carries out, the commit-confirmed revert first (it decides what a restore due at
 * the same time applies to). */
enum transition_due {
        TRANSITION_NONE,                /* nothing is due */
        TRANSITION_REVERT_RESTORE,      /* not confirmed: back to normal */
        TRANSITION_REVERT_SWITCH,       /* not confirmed: back to isolation with s->revert_policy */
        TRANSITION_REVERT_KEEP,         /* not confirmed, the previous policy unknown: stay isolated */
        TRANSITION_RESTORE,             /* the scheduled restore */
        TRANSITION_RESTORE_UNAPPROVED,  /* the scheduled restore, still waiting for a second person: dropped */
        TRANSITION_REQUEST_EXPIRED,     /* a four-eyes request nobody approved in time: dropped */
};

/* A deadline given as a duration is due by CLOCK_BOOTTIME, an instant by the wall clock. */
enum transition_due transition_due(const struct ks_state *s, uint64_t now, uint64_t now_boot);

/*
 * Four-eyes restore ([Restore] Approvals=, killswitch.conf(5)): what a restore
 * asked by uid does. Only restores asked by a person go through this: a
 * commit-confirmed revert or a trigger never does.
 */
enum transition_approval {
        TRANSITION_APPROVAL_RESTORE,    /* one person is enough: restore (or schedule) as asked */
        TRANSITION_APPROVAL_REQUEST,    /* the first person: record the request, wait for a second */
        TRANSITION_APPROVAL_REPEATED,   /* the same person again while it waits: nothing changes */
        TRANSITION_APPROVAL_APPROVED,   /* a second, distinct person: carry out the request */
        TRANSITION_APPROVAL_OVERRIDE,   /* root with force: restore without a second person */
        TRANSITION_APPROVAL_REFUSED,    /* force from someone other than root */
};

enum transition_approval transition_approval(const struct ks_state *s, unsigned approvals, int64_t uid, bool force,
                                             uint64_t now, uint64_t now_boot);

/* Is a four-eyes request pending (recorded and not lapsed) in s? */
bool transition_request_pending(const struct ks_state *s, uint64_t now, uint64_t now_boot);

/*
 * cur with the request of a recorded: for a restore now (restore_at 0), it
 * waits timeout (on CLOCK_BOOTTIME); for a scheduled one, until its time, which
 * becomes the schedule. 0 or -ENOMEM (ret_next cleared).
 */
int transition_request(const struct ks_state *cur, const struct ks_actor *a, uint64_t restore_at,
                       uint64_t restore_boot, uint64_t timeout, uint64_t now, uint64_t now_boot,
                       struct ks_state *ret_next);

/* cur without its request; without the schedule it asked for too if drop_restore. 0 or -ENOMEM. */
int transition_drop_request(const struct ks_state *cur, bool drop_restore, struct ks_state *ret_next);

/* cur without its scheduled restore and without a four-eyes request (cancel). 0 or -ENOMEM. */
int transition_cancel(const struct ks_state *cur, struct ks_state *ret_next);

/*
 * The wall-clock instant a deadline (real, and boot if it came from a duration) comes at, seen at
 * (now, now_boot): one counted on CLOCK_BOOTTIME moves with a step of the wall clock, as its timer
 * does, so status shows when it really comes, not the instant saved for restarts. 0: none.
 */
#define TRANSITION_SHOWN_SLACK_USEC 1000000ULL
uint64_t transition_deadline_shown(uint64_t real, uint64_t boot, uint64_t now, uint64_t now_boot);

/*
 * How long after a deadline (real, and boot if it came from a duration) it is carried out at (now,
 * now_boot), on the clock that decides it: a step of the wall clock does not make one late. 0: not past.
 */
uint64_t transition_late(uint64_t real, uint64_t boot, uint64_t now, uint64_t now_boot);

/* The next deadline of s on each clock (0: none on that clock): the timers to arm. */
void transition_deadlines(const struct ks_state *s, uint64_t *ret_real, uint64_t *ret_boot);
