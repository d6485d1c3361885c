/* SPDX-License-Identifier: MIT */
/*
 * The state machine without a kernel (agent/transition.c): the state an
 * isolation leads to (schedules kept, replaced or dropped; fired triggers;
 * what a commit-confirmed isolation reverts to) and what a deadline carries
 * out (the revert before the restore; never open by guessing).
 */

#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "manager.h"
#include "state.h"
#include "transition.h"

#define NOW 1800000000000000ULL         /* realtime usec */
#define BOOT 7000000000ULL              /* CLOCK_BOOTTIME usec at NOW */
#define SEC 1000000ULL

static const struct ks_actor admin = { .user = "alice", .uid = 1000, .trigger = "ctl" };
static const struct ks_actor ids = { .user = "killswitchd", .uid = -1, .trigger = "path:panic" };

/* next = isolate(cur, policy, actor, opts) at NOW. */
static void isolate(const struct ks_state *cur, const char *policy, const struct ks_actor *a,
                    struct ks_isolate_opts o, struct ks_state *next)
{
        assert_int_equal(transition_isolate(cur, policy, a, "why", &o, NOW, BOOT, next), 0);
        assert_true(next->isolated);
        assert_string_equal(next->policy, policy);
        assert_int_equal(next->since_usec, NOW);
}

static void normal(struct ks_state *s)
{
        assert_int_equal(transition_state(s, false, NULL, &admin, NULL, NOW - 100 * SEC), 0);
}

static void test_state(void **unused)
{
        struct ks_state s;

        assert_int_equal(transition_state(&s, true, "isolate", &admin, "incident 42", NOW), 0);
        assert_true(s.isolated);
        assert_string_equal(s.policy, "isolate");
        assert_string_equal(s.user, "alice");
        assert_int_equal(s.uid, 1000);
        assert_string_equal(s.reason, "incident 42");
        assert_string_equal(s.trigger, "ctl");
        assert_int_equal(s.since_usec, NOW);
        assert_int_equal(s.restore_at_usec, 0);
        assert_int_equal(s.confirm_usec, 0);
        assert_int_equal(s.n_fired, 0);
        state_clear(&s);

        normal(&s);
        assert_false(s.isolated);
        assert_null(s.policy);
        assert_null(s.reason);
        state_clear(&s);
}

/* An isolation without an end drops a pending restore (a switch, a trigger); a new one replaces it. */
static void test_restore_schedule(void **unused)
{
        struct ks_state n, a, b, c, d;

        normal(&n);
        isolate(&n, "isolate", &admin, (struct ks_isolate_opts){ .restore_at_usec = NOW + 60 * SEC }, &a);
        assert_int_equal(a.restore_at_usec, NOW + 60 * SEC);

        /* An emergency switch without --for/--until is not lifted by the planned window's schedule. */
        isolate(&a, "mailonly", &admin, (struct ks_isolate_opts){}, &b);
        assert_int_equal(b.restore_at_usec, 0);
        assert_int_equal(transition_due(&b, NOW + 60 * SEC, BOOT + 60 * SEC), TRANSITION_NONE);

        isolate(&a, "mailonly", &admin, (struct ks_isolate_opts){ .restore_at_usec = NOW + 5 * SEC }, &c);
        assert_int_equal(c.restore_at_usec, NOW + 5 * SEC);

        /* What a trigger demanded is never lifted by a schedule. */
        isolate(&c, "isolate", &ids, (struct ks_isolate_opts){ .trigger = true }, &d);
        assert_int_equal(d.restore_at_usec, 0);
        assert_string_equal(d.trigger, "path:panic");

        /* From normal nothing is carried over, not even a stale schedule. */
        n.restore_at_usec = NOW + 1;
        state_clear(&a);
        isolate(&n, "isolate", &admin, (struct ks_isolate_opts){}, &a);
        assert_int_equal(a.restore_at_usec, 0);

        state_clear(&n);
        state_clear(&a);
        state_clear(&b);
        state_clear(&c);
        state_clear(&d);
}

/*
 * The policy already in force again: the isolation stays (since, user, reason, trigger, fired), its
 * deadlines are the repeat's own: none (a schedule, a request and a revert that pended are dropped),
 * or those it asks for.
 */
static void test_repeat(void **unused)
{
        static const struct ks_actor bob = { .user = "bob", .uid = 1001, .trigger = "ctl" };
        const uint64_t later = NOW + 30 * SEC, later_boot = BOOT + 30 * SEC;
        struct ks_state n, cur, same, timed, trial, trig;

        normal(&n);
        isolate(&n, "isolate", &ids, (struct ks_isolate_opts){ .trigger = true }, &cur);
        assert_int_equal(transition_request(&cur, &admin, NOW + 600 * SEC, 0, 900 * SEC, NOW, BOOT, &same), 0);
        state_clear(&cur);
        cur = same;
        cur.confirm_usec = NOW + 60 * SEC;
        assert_true(transition_repeat(&cur, "isolate"));
        assert_false(transition_repeat(&cur, "mailonly"));
        assert_false(transition_repeat(&n, "isolate"));

        assert_int_equal(transition_isolate(&cur, "isolate", &bob, "to be sure", &(struct ks_isolate_opts){},
                                            later, later_boot, &same), 0);
        assert_true(same.isolated);
        assert_string_equal(same.policy, "isolate");
        assert_int_equal(same.since_usec, NOW);
        assert_string_equal(same.user, "killswitchd");
        assert_string_equal(same.reason, "why");
        assert_string_equal(same.trigger, "path:panic");
        assert_true(state_fired(&same, "path:panic"));
        assert_int_equal(same.restore_at_usec, 0);
        assert_null(same.request_user);
        assert_int_equal(same.confirm_usec, 0);
        assert_int_equal(transition_due(&same, NOW + 3600 * SEC, BOOT + 3600 * SEC), TRANSITION_NONE);

        /* With --for: its schedule (a request with four eyes); with --confirm: back to this very isolation. */
        assert_int_equal(transition_isolate(&same, "isolate", &bob, NULL, &(struct ks_isolate_opts){
                                                    .restore_at_usec = later + 60 * SEC, .approvals = 2 },
                                            later, later_boot, &timed), 0);
        assert_int_equal(timed.since_usec, NOW);
        assert_true(timed.restore_at_usec == later + 60 * SEC);
        assert_string_equal(timed.request_user, "bob");
        assert_int_equal(transition_isolate(&same, "isolate", &bob, NULL, &(struct ks_isolate_opts){
                                                    .confirm_usec = 10 * SEC }, later, later_boot, &trial), 0);
        assert_true(trial.revert_isolated);
        assert_string_equal(trial.revert_policy, "isolate");
        assert_int_equal(trial.since_usec, NOW);

        /* Another trigger with the same policy: fired too, the isolation in force stays. */
        assert_int_equal(transition_isolate(&timed, "isolate", &(struct ks_actor){ .user = "killswitchd", .uid = -1,
                                                    .trigger = "heartbeat" }, NULL,
                                            &(struct ks_isolate_opts){ .trigger = true }, later, later_boot, &trig),
                         0);
        assert_true(state_fired(&trig, "heartbeat"));
        assert_true(state_fired(&trig, "path:panic"));
        assert_int_equal(trig.restore_at_usec, 0);
        assert_null(trig.request_user);
        assert_string_equal(trig.trigger, "path:panic");

        state_clear(&n);
        state_clear(&cur);
        state_clear(&same);
        state_clear(&timed);
        state_clear(&trial);
        state_clear(&trig);
}

/* Fired triggers stay fired while isolated (once per incident); a restore re-arms them. */
static void test_fired(void **unused)
{
        static const struct ks_actor heartbeat = { .user = "killswitchd", .uid = -1, .trigger = "heartbeat" };
        struct ks_state n, a, b, c, d;

        normal(&n);
        isolate(&n, "isolate", &ids, (struct ks_isolate_opts){ .trigger = true }, &a);
        assert_true(state_fired(&a, "path:panic"));
        assert_int_equal(a.n_fired, 1);

        isolate(&a, "mailonly", &admin, (struct ks_isolate_opts){}, &b);
        assert_true(state_fired(&b, "path:panic"));

        isolate(&b, "isolate", &heartbeat, (struct ks_isolate_opts){ .trigger = true }, &c);
        assert_true(state_fired(&c, "path:panic"));
        assert_true(state_fired(&c, "heartbeat"));
        assert_int_equal(c.n_fired, 2);

        /* An actor's trigger counts as fired only when it isolates as a trigger. */
        n.n_fired = 0;
        isolate(&n, "isolate", &admin, (struct ks_isolate_opts){}, &d);
        assert_false(state_fired(&d, "ctl"));
        assert_int_equal(d.n_fired, 0);

        state_clear(&n);
        state_clear(&a);
        state_clear(&b);
        state_clear(&c);
        state_clear(&d);
}

/* Commit-confirmed reverts to the last confirmed state, kept across repeated --confirm. */
static void test_confirm_target(void **unused)
{
        struct ks_state n, a, b, c, d;

        normal(&n);
        isolate(&n, "isolate", &admin, (struct ks_isolate_opts){ .confirm_usec = 30 * SEC }, &a);
        assert_int_equal(a.confirm_usec, NOW + 30 * SEC);
        assert_int_equal(a.confirm_boot_usec, BOOT + 30 * SEC);
        assert_false(a.revert_isolated);
        assert_null(a.revert_policy);

        /* Another --confirm while one is pending: still back to normal, the new deadline. */
        isolate(&a, "mailonly", &admin, (struct ks_isolate_opts){ .confirm_usec = 10 * SEC }, &b);
        assert_int_equal(b.confirm_usec, NOW + 10 * SEC);
        assert_false(b.revert_isolated);
        assert_null(b.revert_policy);

        /* Confirmed (a plain isolation): a later --confirm reverts to that policy. */
        isolate(&b, "mailonly", &admin, (struct ks_isolate_opts){}, &c);
        assert_int_equal(c.confirm_usec, 0);
        isolate(&c, "isolate", &admin, (struct ks_isolate_opts){ .confirm_usec = 5 * SEC }, &d);
        assert_true(d.revert_isolated);
        assert_string_equal(d.revert_policy, "mailonly");

        state_clear(&n);
        state_clear(&a);
        state_clear(&b);
        state_clear(&c);
        state_clear(&d);
}

static struct ks_state isolated_with(uint64_t restore_at, uint64_t confirm, bool revert_isolated,
                                     const char *revert_policy)
{
        return (struct ks_state){ .isolated = true, .policy = (char *)"isolate", .restore_at_usec = restore_at,
                                  .confirm_usec = confirm, .revert_isolated = revert_isolated,
                                  .revert_policy = (char *)revert_policy };
}

static void expect_deadlines(const struct ks_state *s, uint64_t real, uint64_t boot)
{
        uint64_t r = 1, b = 1;

        transition_deadlines(s, &r, &b);
        assert_int_equal(r, real);
        assert_int_equal(b, boot);
}

static void test_due(void **unused)
{
        struct ks_state s;

        s = isolated_with(0, 0, false, NULL);
        assert_int_equal(transition_due(&s, NOW, BOOT), TRANSITION_NONE);
        expect_deadlines(&s, 0, 0);

        s = isolated_with(NOW + 1, 0, false, NULL);
        assert_int_equal(transition_due(&s, NOW, BOOT), TRANSITION_NONE);
        assert_int_equal(transition_due(&s, NOW + 1, BOOT), TRANSITION_RESTORE);      /* at the instant */
        assert_int_equal(transition_due(&s, NOW + 3600 * SEC, BOOT), TRANSITION_RESTORE);   /* late */
        expect_deadlines(&s, NOW + 1, 0);

        s = isolated_with(0, NOW, false, NULL);
        assert_int_equal(transition_due(&s, NOW, BOOT), TRANSITION_REVERT_RESTORE);
        s = isolated_with(0, NOW, true, "mailonly");
        assert_int_equal(transition_due(&s, NOW, BOOT), TRANSITION_REVERT_SWITCH);
        /* The previous policy unknown: stay isolated, never open by guessing. */
        s = isolated_with(0, NOW, true, NULL);
        assert_int_equal(transition_due(&s, NOW, BOOT), TRANSITION_REVERT_KEEP);
        assert_int_equal(transition_due(&s, NOW - 1, BOOT), TRANSITION_NONE);

        /* Both due: the revert first, it decides what the restore applies to. */
        s = isolated_with(NOW - 5, NOW - 1, true, "mailonly");
        assert_int_equal(transition_due(&s, NOW, BOOT), TRANSITION_REVERT_SWITCH);
        expect_deadlines(&s, NOW - 5, 0);
        s = isolated_with(NOW + 50, NOW + 20, false, NULL);
        expect_deadlines(&s, NOW + 20, 0);

        /* Normal: whatever is left in the fields, nothing is due. */
        s = isolated_with(NOW - 5, NOW - 1, true, "mailonly");
        s.isolated = false;
        assert_int_equal(transition_due(&s, NOW, BOOT), TRANSITION_NONE);
        expect_deadlines(&s, 0, 0);
}

/* A deadline given as a duration counts on CLOCK_BOOTTIME: a step of the wall clock moves it neither way. */
static void test_boottime(void **unused)
{
        struct ks_state n, a, b;

        normal(&n);
        isolate(&n, "isolate", &admin, (struct ks_isolate_opts){ .restore_at_usec = NOW + 60 * SEC,
                                                                 .restore_boot_usec = BOOT + 60 * SEC }, &a);
        expect_deadlines(&a, 0, BOOT + 60 * SEC);
        /* The wall clock jumped an hour ahead: not due yet; boottime reached: due, whatever the wall clock says. */
        assert_int_equal(transition_due(&a, NOW + 3600 * SEC, BOOT + 59 * SEC), TRANSITION_NONE);
        assert_int_equal(transition_due(&a, NOW - 3600 * SEC, BOOT + 60 * SEC), TRANSITION_RESTORE);
        /* ... and status shows when it really comes: 50 s after the stepped wall clock, not the saved instant. */
        assert_int_equal(transition_deadline_shown(a.restore_at_usec, a.restore_boot_usec, NOW + 3600 * SEC,
                                                   BOOT + 10 * SEC), NOW + 3650 * SEC);
        assert_int_equal(transition_deadline_shown(a.restore_at_usec, a.restore_boot_usec, NOW - 3600 * SEC,
                                                   BOOT + 70 * SEC), NOW - 3600 * SEC);
        /* An instant (--until, or after a restart) is shown as it is. */
        assert_int_equal(transition_deadline_shown(NOW + 60 * SEC, 0, NOW + 3600 * SEC, BOOT), NOW + 60 * SEC);
        assert_int_equal(transition_deadline_shown(0, 0, NOW, BOOT), 0);
        /* Without a step, the saved instant, whatever µs lie between reading the two clocks. */
        assert_int_equal(transition_deadline_shown(a.restore_at_usec, a.restore_boot_usec, NOW + 10 * SEC + 7,
                                                   BOOT + 10 * SEC), NOW + 60 * SEC);
        assert_int_equal(transition_deadline_shown(a.restore_at_usec, a.restore_boot_usec, NOW + 10 * SEC - 7,
                                                   BOOT + 10 * SEC), NOW + 60 * SEC);

        /* A switch with both (--for, --confirm): two boottime deadlines, the earlier one is armed. */
        isolate(&a, "mailonly", &admin, (struct ks_isolate_opts){ .restore_at_usec = a.restore_at_usec,
                                                                  .restore_boot_usec = a.restore_boot_usec,
                                                                  .confirm_usec = 10 * SEC }, &b);
        assert_int_equal(b.restore_boot_usec, BOOT + 60 * SEC);
        expect_deadlines(&b, 0, BOOT + 10 * SEC);
        assert_int_equal(transition_due(&b, NOW, BOOT + 10 * SEC), TRANSITION_REVERT_SWITCH);

        /* After a reboot (or from an older agent's file) only the wall-clock instants are known. */
        b.restore_boot_usec = b.confirm_boot_usec = 0;
        expect_deadlines(&b, NOW + 10 * SEC, 0);
        assert_int_equal(transition_due(&b, NOW + 10 * SEC, 0), TRANSITION_REVERT_SWITCH);

        state_clear(&n);
        state_clear(&a);
        state_clear(&b);
}

/*
 * "Late" on the clock that decides: a wall clock stepped 2 h ahead does not make an --for 1h restore
 * carried out on time by CLOCK_BOOTTIME "1h late" (before, the history said so after a restart); an
 * instant, or a deadline after a reboot, is late by the wall clock.
 */
static void test_late(void **unused)
{
        assert_int_equal(transition_late(NOW + 3600 * SEC, BOOT + 3600 * SEC, NOW + 7200 * SEC + 3600 * SEC,
                                         BOOT + 3600 * SEC), 0);
        assert_int_equal(transition_late(NOW + 3600 * SEC, BOOT + 3600 * SEC, NOW, BOOT + 3605 * SEC), 5 * SEC);
        assert_int_equal(transition_late(NOW + 3600 * SEC, BOOT + 3600 * SEC, NOW + 9000 * SEC, BOOT), 0);
        assert_int_equal(transition_late(NOW, 0, NOW + 3600 * SEC, BOOT), 3600 * SEC);
        assert_int_equal(transition_late(NOW, 0, NOW - SEC, BOOT), 0);
        assert_int_equal(transition_late(0, 0, NOW, BOOT), 0);
}

/* The whole path of a revert to the previous policy: isolate P, switch Q --confirm, time out. */
static void test_revert_path(void **unused)
{
        static const struct ks_actor timeout = { .user = "killswitchd", .uid = -1, .trigger = "confirm-timeout" };
        struct ks_state n, p, q, back;

        normal(&n);
        isolate(&n, "mailonly", &admin, (struct ks_isolate_opts){ .restore_at_usec = NOW + 600 * SEC }, &p);
        isolate(&p, "isolate", &admin, (struct ks_isolate_opts){ .confirm_usec = 2 * SEC,
                                                                 .restore_at_usec = NOW + 600 * SEC }, &q);
        assert_int_equal(transition_due(&q, NOW + SEC, BOOT + SEC), TRANSITION_NONE);
        assert_int_equal(transition_due(&q, NOW + 2 * SEC, BOOT + 2 * SEC), TRANSITION_REVERT_SWITCH);
        assert_string_equal(q.revert_policy, "mailonly");

        /* The manager reverts with the agent as the actor, forced, no schedule of its own: it keeps the one pending. */
        assert_int_equal(transition_isolate(&q, q.revert_policy, &timeout, "not confirmed",
                                            &(struct ks_isolate_opts){ .force = true, .revert = true }, NOW + 2 * SEC,
                                            BOOT + 2 * SEC, &back), 0);
        assert_string_equal(back.policy, "mailonly");
        assert_string_equal(back.trigger, "confirm-timeout");
        assert_int_equal(back.confirm_usec, 0);
        assert_int_equal(back.restore_at_usec, NOW + 600 * SEC);        /* the restore still pending */
        assert_int_equal(transition_due(&back, NOW + 2 * SEC, BOOT), TRANSITION_NONE);
        assert_int_equal(transition_due(&back, NOW + 600 * SEC, BOOT), TRANSITION_RESTORE);

        state_clear(&n);
        state_clear(&p);
        state_clear(&q);
        state_clear(&back);
}

/* Four eyes: who may restore alone, who waits, who approves. */
static void test_approval(void **unused)
{
        struct ks_state n, iso, req;
        const uint64_t timeout = 900 * SEC;

        normal(&n);
        isolate(&n, "isolate", &admin, (struct ks_isolate_opts){}, &iso);

        /* One approval (the default): a restore is a restore, --force or not. */
        assert_int_equal(transition_approval(&iso, 1, 1000, false, NOW, BOOT), TRANSITION_APPROVAL_RESTORE);
        assert_int_equal(transition_approval(&iso, 1, 1000, true, NOW, BOOT), TRANSITION_APPROVAL_RESTORE);

        /* Two: the first person's restore is a request; --force is root's alone. */
        assert_int_equal(transition_approval(&iso, 2, 1000, false, NOW, BOOT), TRANSITION_APPROVAL_REQUEST);
        assert_int_equal(transition_approval(&iso, 2, 1000, true, NOW, BOOT), TRANSITION_APPROVAL_REFUSED);
        assert_int_equal(transition_approval(&iso, 2, 0, true, NOW, BOOT), TRANSITION_APPROVAL_OVERRIDE);

        assert_int_equal(transition_request(&iso, &admin, 0, 0, timeout, NOW, BOOT, &req), 0);
        assert_string_equal(req.request_user, "alice");
        assert_int_equal(req.request_uid, 1000);
        assert_true(req.request_at_usec == NOW);
        assert_true(req.request_until_usec == NOW + timeout);
        assert_true(req.request_until_boot_usec == BOOT + timeout);
        assert_int_equal(req.request_restore_usec, 0);
        assert_true(req.isolated);
        assert_true(transition_request_pending(&req, NOW, BOOT));

        /* The same person again: nothing; another: approved; root without --force is just another person. */
        assert_int_equal(transition_approval(&req, 2, 1000, false, NOW + SEC, BOOT + SEC), TRANSITION_APPROVAL_REPEATED);
        assert_int_equal(transition_approval(&req, 2, 1001, false, NOW + SEC, BOOT + SEC), TRANSITION_APPROVAL_APPROVED);
        assert_int_equal(transition_approval(&req, 2, 0, false, NOW + SEC, BOOT + SEC), TRANSITION_APPROVAL_APPROVED);
        /* An unknown uid never counts as a second person. */
        assert_int_equal(transition_approval(&req, 2, -1, false, NOW + SEC, BOOT + SEC), TRANSITION_APPROVAL_REPEATED);

        /* It lapses by CLOCK_BOOTTIME: a wall-clock step moves it neither way; then bob's is a new request. */
        expect_deadlines(&req, 0, BOOT + timeout);
        assert_int_equal(transition_due(&req, NOW + 2 * timeout, BOOT + timeout - 1), TRANSITION_NONE);
        assert_int_equal(transition_due(&req, NOW, BOOT + timeout), TRANSITION_REQUEST_EXPIRED);
        assert_int_equal(transition_approval(&req, 2, 1001, false, NOW, BOOT + timeout), TRANSITION_APPROVAL_REQUEST);
        /* After a restart only the wall clock is known. */
        req.request_until_boot_usec = 0;
        expect_deadlines(&req, NOW + timeout, 0);
        assert_int_equal(transition_due(&req, NOW + timeout, 0), TRANSITION_REQUEST_EXPIRED);

        state_clear(&n);
        state_clear(&iso);
        state_clear(&req);
}

/* A scheduled restore needs its second person before its time, or it does not happen. */
static void test_approval_scheduled(void **unused)
{
        static const struct ks_actor ids_fire = { .user = "killswitchd", .uid = -1, .trigger = "path:panic" };
        struct ks_state n, iso, req, ok, lapsed, sw, trig;
        const uint64_t at = NOW + 600 * SEC;

        normal(&n);
        isolate(&n, "isolate", &admin, (struct ks_isolate_opts){}, &iso);
        assert_int_equal(transition_request(&iso, &admin, at, 0, 900 * SEC, NOW, BOOT, &req), 0);
        assert_true(req.restore_at_usec == at);
        assert_true(req.request_until_usec == at);       /* it waits until its own time */
        assert_true(req.request_restore_usec == at);
        assert_int_equal(transition_due(&req, at - 1, BOOT), TRANSITION_NONE);
        assert_int_equal(transition_due(&req, at, BOOT), TRANSITION_RESTORE_UNAPPROVED);

        /* Unapproved at its time: the request and the schedule go. */
        assert_int_equal(transition_drop_request(&req, true, &lapsed), 0);
        assert_null(lapsed.request_user);
        assert_int_equal(lapsed.restore_at_usec, 0);
        assert_true(lapsed.isolated);
        assert_int_equal(transition_due(&lapsed, at, BOOT), TRANSITION_NONE);

        /* Approved before: the schedule stays and is carried out as a restore. */
        assert_int_equal(transition_drop_request(&req, false, &ok), 0);
        assert_true(ok.restore_at_usec == at);
        assert_int_equal(transition_due(&ok, at, BOOT), TRANSITION_RESTORE);

        /* isolate --for with two approvals is a scheduled request; a switch without an end or a trigger drops it. */
        state_clear(&iso);
        isolate(&n, "isolate", &admin, (struct ks_isolate_opts){ .restore_at_usec = at, .approvals = 2 }, &iso);
        assert_string_equal(iso.request_user, "alice");
        assert_true(iso.request_restore_usec == at);
        assert_int_equal(transition_due(&iso, at, BOOT), TRANSITION_RESTORE_UNAPPROVED);
        isolate(&iso, "mailonly", &admin, (struct ks_isolate_opts){}, &sw);
        assert_null(sw.request_user);
        assert_int_equal(sw.restore_at_usec, 0);
        assert_int_equal(transition_due(&sw, at, BOOT), TRANSITION_NONE);
        isolate(&iso, "isolate", &ids_fire, (struct ks_isolate_opts){ .trigger = true }, &trig);
        assert_null(trig.request_user);
        assert_int_equal(trig.restore_at_usec, 0);

        /* cancel drops the schedule and its request: nobody can approve what is no longer asked for. */
        state_clear(&lapsed);
        assert_int_equal(transition_cancel(&iso, &lapsed), 0);
        assert_int_equal(lapsed.restore_at_usec, 0);
        assert_null(lapsed.request_user);
        assert_true(lapsed.isolated);
        assert_int_equal(transition_approval(&lapsed, 2, 1001, false, NOW, BOOT), TRANSITION_APPROVAL_REQUEST);
        /* ... and the request an older agent's cancel left behind is not pending: a second person's restore is
         * a new request, not an approval of nothing. */
        state_clear(&lapsed);
        assert_int_equal(state_copy(&iso, &lapsed), 0);
        lapsed.restore_at_usec = 0;
        assert_false(transition_request_pending(&lapsed, NOW, BOOT));
        assert_int_equal(transition_approval(&lapsed, 2, 1001, false, NOW, BOOT), TRANSITION_APPROVAL_REQUEST);

        /* The commit-confirmed revert goes first, request or not. */
        state_clear(&sw);
        isolate(&iso, "mailonly", &admin, (struct ks_isolate_opts){ .confirm_usec = 10 * SEC }, &sw);
        assert_int_equal(transition_due(&sw, NOW + 10 * SEC, BOOT + 10 * SEC), TRANSITION_REVERT_SWITCH);

        state_clear(&n);
        state_clear(&iso);
        state_clear(&req);
        state_clear(&ok);
        state_clear(&lapsed);
        state_clear(&sw);
        state_clear(&trig);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_state),
                cmocka_unit_test(test_restore_schedule),
                cmocka_unit_test(test_repeat),
                cmocka_unit_test(test_fired),
                cmocka_unit_test(test_confirm_target),
                cmocka_unit_test(test_due),
                cmocka_unit_test(test_boottime),
                cmocka_unit_test(test_late),
                cmocka_unit_test(test_revert_path),
                cmocka_unit_test(test_approval),
                cmocka_unit_test(test_approval_scheduled),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
