#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Four-eyes restore (issue 18, part 2) with two real users of group killswitch and root, and real
# packets in the namespace lab (lib.sh): with [Restore] Approvals=2 the first person's restore only
# records a request (exit 4, "waiting for a second person"; the web stays cut); the same person
# again changes nothing; --force is root's alone; the request survives an agent restart; a second,
# distinct person opens. Root alone only with --force (audited as an override); a commit-confirmed
# revert never waits; a scheduled restore without its second person does not happen (audited), with
# it it does; cancel drops a scheduled request with its schedule (a second person's restore is then
# a new request, not "Restored" with the web still cut); a request lapses after ApprovalTimeout=.
#
# Deadlines are D seconds away, waited for with LATE seconds more (a busy machine).
#
# Run as root: tests/e2e/test-approvals.sh   (KILLSWITCHD, KILLSWITCHCTL: see lib.sh)

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ks_init
[ -x "$KILLSWITCHD" ] || die "no agent at $KILLSWITCHD"
[ -x "$KILLSWITCHCTL" ] || die "no client at $KILLSWITCHCTL"
ks_two_members ks
a_ctl() { as_user "$USER_A" "$@"; }
b_ctl() { as_user "$USER_B" "$@"; }

D=8
LATE=12
lab_create
write_lab_policy isolate
CONF=$KS_CONF/killswitch.conf
printf '[Restore]\nApprovals=2\nApprovalTimeout=10min\n' >"$CONF"
agent_start || die "killswitchd did not start"

request_by() { status_is 'd["state"] == "isolated" and (d["restore_request"] or {}).get("user") == "'"$1"'"'; }
no_request() { status_is 'd["restore_request"] is None'; }
# output_of CMD... — its stdout and stderr, whatever its exit status.
output_of() { "$@" 2>&1; true; }

check "before: web reachable" web_ok

# --- the first person asks; the same person again; --force is not theirs ----------------------------
check_exit 0 "root isolates" ctl isolate --reason "e2e: four eyes"
check "isolated: web cut" web_cut
out=$(output_of a_ctl restore --reason "e2e: all clear says A")
check_exit 4 "A's restore exits 4 (waiting)" a_ctl restore --reason "e2e: all clear says A"
check "A's restore says 'waiting for a second person'" contains "$out" "waiting for a second person"
check "after A's restore: still isolated, web cut" web_cut
check "status --json: the request is A's, with its deadline" \
	status_is 'd["restore_request"]["user"] == "'"$USER_A"'" and d["restore_request"]["until"] and d["restore_request"]["approvals"] == 2 and d["restore_request"]["restore_at"] is None'
at_before=$(status_get 'd["restore_request"]["at"]')
out=$(ctl status)
check "status says who asked and that it waits for a second person" contains "$out" "Approval:" "$USER_A" "waiting for a second person"
out=$(output_of a_ctl restore)
check_exit 4 "A again: exit 4" a_ctl restore
check "A again: 'nothing changed'" contains "$out" "nothing changed"
check "A again: the request is unchanged" status_is 'd["restore_request"]["at"] == "'"$at_before"'"'
check "A again: web still cut" web_cut
check_exit 1 "A's restore --force is refused (root only)" a_ctl restore --force
check "A's --force: still isolated, web cut" web_cut
check "history: the request and the refused --force" \
	history_has 'e["action"] == "restore-request" and e["user"] == "'"$USER_A"'"'

# --- across an agent restart ---------------------------------------------------------------------
agent_stop
agent_start || die "killswitchd did not restart"
check "after a restart: still isolated with A's request" request_by "$USER_A"
check "after a restart: web cut" web_cut
check_exit 4 "after a restart: A again still waits" a_ctl restore

# --- a second person opens -----------------------------------------------------------------------
check_exit 0 "B's restore exits 0" b_ctl restore --reason "e2e: B agrees"
check "B's restore: normal" is_normal
check "B's restore: web reachable" web_ok
check "B's restore: no request left" no_request
check "history: approved by B, restored by B" \
	history_has 'e["action"] == "restore-approve" and e["user"] == "'"$USER_B"'" and "'"$USER_A"'" in e["message"]'
check "history: the restore by B" history_has 'e["action"] == "restore" and e["user"] == "'"$USER_B"'"'

# --- root: one person without --force, alone with it --------------------------------------------
check_exit 0 "root isolates again" ctl isolate
check_exit 4 "root's plain restore waits too" ctl restore
check "root's plain restore: web cut" web_cut
check_exit 0 "root's restore --force exits 0" ctl restore --force --reason "e2e: override"
check "root --force: normal, web reachable" web_ok
check "history: the override by root" history_has 'e["action"] == "restore-override" and e["uid"] == 0'

# --- a commit-confirmed revert is not a restore ---------------------------------------------------
check_exit 0 "isolate --confirm ${D}s" ctl isolate --confirm ${D}s
check "--confirm: web cut" web_cut
check "--confirm: reverts to normal by itself (no approvals)" wait_until $((D + LATE)) is_normal
check "--confirm: web reachable after the revert" web_ok

# --- a scheduled restore without, then with, its second person -----------------------------------
check_exit 0 "isolate (for the schedule)" ctl isolate
check_exit 4 "A's restore --in ${D}s exits 4" a_ctl restore --in ${D}s
check "A's scheduled request: restore_at and the request" \
	status_is 'd["restore_at"] and d["restore_request"]["restore_at"] == d["restore_at"]'
sleep $((D + LATE))
check "unapproved schedule: still isolated after its time" is_isolated
check "unapproved schedule: web cut" web_cut
check "unapproved schedule: no schedule, no request left" status_is 'd["restore_at"] is None and d["restore_request"] is None'
check "history: the schedule that did not happen" \
	history_has 'e["action"] == "restore-expired" and "did not happen" in e["message"]'

check_exit 4 "A's restore --in ${D}s again" a_ctl restore --in ${D}s
out=$(b_ctl restore 2>&1)
rc=$?
check "B approves the scheduled restore: exit 0 (got $rc)" test "$rc" -eq 0
check "B's approval says it is scheduled, not restored" contains "$out" "Approved: the restore is scheduled for"
check "approved schedule: still isolated before its time, web cut" web_cut
check "approved schedule: normal after its time" wait_until $((D + LATE)) is_normal
check "approved schedule: web reachable" web_ok

# --- cancel drops a scheduled request too: nobody approves what is no longer asked for (audit H1) ---
check_exit 0 "isolate (for the cancel)" ctl isolate
check_exit 4 "A's restore --in 1h waits" a_ctl restore --in 1h
out=$(ctl cancel --reason "e2e: not yet" 2>&1)
rc=$?
check "cancel exits 0 (got $rc)" test "$rc" -eq 0
check "cancel says the schedule and A's request went" \
	contains "$out" "The scheduled restore at" "cancelled" "restore as scheduled requested by $USER_A"
check "cancel: no schedule, no request left" status_is 'd["restore_at"] is None and d["restore_request"] is None'
check "history: the cancel names A's request" \
	history_has 'e["action"] == "cancel" and "request by '"$USER_A"'" in (e["message"] or "")'
check_exit 1 "cancel again: nothing pending (exit 1)" ctl cancel
out=$(b_ctl restore --reason "e2e: B after the cancel" 2>&1)
rc=$?
check "B's restore after the cancel is a new request: exit 4 (got $rc)" test "$rc" -eq 4
check "B's restore after the cancel does not say 'Restored'" not_matches "$out" "Restored"
check "B's restore after the cancel: still isolated" is_isolated
check "B's restore after the cancel: web cut" web_cut
check_exit 0 "A approves B's request" a_ctl restore
check "A's approval: web reachable" web_ok

# --- a request lapses after ApprovalTimeout= -----------------------------------------------------
printf '[Restore]\nApprovals=2\nApprovalTimeout=%ss\n' "$D" >"$CONF"
check_exit 0 "reload with ApprovalTimeout=${D}s" ctl reload
check_exit 0 "isolate (for the timeout)" ctl isolate
check_exit 4 "A's restore exits 4" a_ctl restore
check "the request lapses by itself" wait_until $((D + LATE)) no_request
check "lapsed: still isolated, web cut" web_cut
check "history: the lapsed request" history_has 'e["action"] == "restore-expired" and "lapsed" in e["message"]'
check_exit 4 "B after the lapse: a new request, not an approval" b_ctl restore
check "B's new request: web still cut" web_cut
check_exit 0 "A now approves B's request" a_ctl restore
check "normal at the end, web reachable" web_ok

agent_stop
check "the agent exits 0 on SIGTERM (under ASan: no leak)" test "$AGENT_EXIT" -eq 0

summary
