#!/bin/bash
# SPDX-License-Identifier: MIT
#
# End-to-end test of the schedules of issue 4 with real packets in the namespace lab (lib.sh):
# isolate --for/--until, restore --in/--at, cancel, an isolation without an end dropping the schedule
# of the one before, a schedule across an agent restart (due while
# down: carried out late at start; not yet due: still pending), commit-confirmed isolation that
# reverts (to normal, and a switch back to the previous policy) and one that is confirmed; the
# client's limits (a year; units), and a wall-clock step forward plus a restart that must not end
# an isolation --for or revert a --confirm (both count on CLOCK_BOOTTIME, saved with the boot id).
# "web" is forwarded HTTP from the LAN, cut by every lab policy.
#
# Deadlines are D seconds away and the waits for them LATE seconds longer: the checks before a
# deadline (a status, a probe, an agent restart) must all fit before it even on a busy machine,
# and a deadline carried out late by a loaded scheduler must not fail the test (issue 13: 2 s and
# 3 s deadlines raced "--until: web cut before" and "confirm pending: web cut" on a busy machine).
#
# Run as root: tests/e2e/test-schedule.sh   (KILLSWITCHD, KILLSWITCHCTL: see lib.sh)

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ks_init
# The schedule's local times are the caller's: a zone with DST and an offset from UTC.
export TZ=Europe/Berlin

[ -x "$KILLSWITCHD" ] || die "no agent at $KILLSWITCHD"
[ -x "$KILLSWITCHCTL" ] || die "no client at $KILLSWITCHCTL"

lab_create
write_lab_policy isolate
write_lab_policy mailonly --no-phone
agent_start || die "killswitchd did not start"

D=8
LATE=12
sip_ok() { udp_echo lan 203.0.113.5 5060; }
sip_cut() { ! udp_echo lan 203.0.113.5 5060; }

check "before: web reachable" web_ok

# --- isolate --for ----------------------------------------------------------------------------
check_exit 0 "isolate --for ${D}s returns 0" ctl isolate --for ${D}s --reason "e2e: for"
check "--for: web cut before the deadline" web_cut
check "--for: status --json has restore_at and pending restore" \
	status_is 'd["restore_at"] and d["pending"]["action"] == "restore" and d["pending"]["confirm"] is False and d["trigger"] == "ctl"'
out=$(ctl status)
check "--for: status says 'Restore: ... (in Ns)'" contains "$out" "Restore:" "(in "
check "--for: normal again by itself after the deadline" wait_until $((D + LATE)) is_normal
check "--for: web reachable after the deadline" web_ok
check "--for: status --json restore_at null after" status_is 'd["restore_at"] is None and d["pending"] is None'
check "--for: history has the schedule and the restore by the schedule" \
	history_has 'e["action"] == "restore" and e["trigger"] == "schedule"'

# --- isolate --until TIME (local clock time, next occurrence) ---------------------------------
until=$(date -d "+$D seconds" +%H:%M:%S)
check_exit 0 "isolate --until $until (local) returns 0" ctl isolate --until "$until"
check "--until: restore_at is that instant in UTC" \
	status_is 'd["restore_at"] == "'"$(date -u -d "@$(date -d "$until" +%s)" +%Y-%m-%dT%H:%M:%SZ)"'"'
check "--until: web cut before" web_cut
check "--until: normal by itself after the deadline" wait_until $((D + LATE)) is_normal
check "--until: web reachable after" web_ok

# --- restore --in / --at ----------------------------------------------------------------------
check_exit 1 "restore --in while normal is refused (exit 1)" ctl restore --in 2s
check_exit 2 "restore --in garbage is a usage error (exit 2)" ctl restore --in 5parsecs
check_exit 2 "isolate --until in the past is a usage error" ctl isolate --until "2001-01-01 00:00"
# More than a year away: refused by the client as --in 367d is (exit 2), not by the agent (exit 1).
far=$(date -d "+370 days" '+%Y-%m-%d %H:%M')
out=$(ctl isolate --until "$far" 2>&1)
check "isolate --until a year away: usage error (exit 2)" test $? -eq 2
check "isolate --until a year away: says why" contains "$out" "more than a year" "see 'killswitchctl isolate --help'"
check_exit 2 "restore --at a year away: usage error (exit 2)" ctl restore --at "$far"
check_exit 2 "restore --in 367d: usage error (exit 2)" ctl restore --in 367d
out=$(ctl isolate --for 1y 2>&1)
check "isolate --for 1y: usage error (exit 2)" test $? -eq 2
check "isolate --for 1y: the error names the unit" contains "$out" 'unknown unit "y"'
check "still normal after the refused requests" is_normal
check_exit 0 "isolate --for 1.5h (a fraction, as systemd takes it) returns 0" ctl isolate --for 1.5h
check "--for 1.5h: the restore 90 min away" status_is \
	'5300 < __import__("datetime").datetime.fromisoformat(d["restore_at"].replace("Z", "+00:00")).timestamp() - __import__("time").time() <= 5400'
check_exit 0 "restore returns 0" ctl restore
check_exit 0 "isolate (no schedule) returns 0" ctl isolate --reason "e2e: restore --in"
check_exit 0 "restore --in ${D}s returns 0 and does not restore now" ctl restore --in ${D}s
check "restore --in: still isolated, restore_at set" status_is 'd["state"] == "isolated" and d["restore_at"]'
check "restore --in: web cut before" web_cut
check "restore --in: normal after the deadline" wait_until $((D + LATE)) is_normal
check "restore --in: web reachable after" web_ok

check_exit 0 "isolate returns 0" ctl isolate
at=$(date -d "+$D seconds" '+%Y-%m-%d %H:%M:%S')
check_exit 0 "restore --at '$at' (local) returns 0" ctl restore --at "$at"
check "restore --at: still isolated, web cut" web_cut
check "restore --at: normal after the deadline" wait_until $((D + LATE)) is_normal
check "restore --at: web reachable after" web_ok

# --- cancel -----------------------------------------------------------------------------------
check_exit 0 "isolate --for ${D}s returns 0" ctl isolate --for ${D}s
check_exit 1 "cancel as an unprivileged user is refused" ctl_as_nobody cancel
check_exit 0 "cancel returns 0" ctl cancel --reason "e2e: forensics take longer"
sleep $((D + 1))
check "cancel: still isolated after the former deadline" is_isolated
check "cancel: web still cut" web_cut
check "cancel: restore_at null" status_is 'd["restore_at"] is None'
check_exit 1 "cancel with nothing scheduled fails (exit 1)" ctl cancel
check "history has the cancel" history_has 'e["action"] == "cancel"'
check_exit 0 "restore returns 0" ctl restore

# --- an isolation without an end drops the schedule of the one before (audit-fail 3) -----------
# A planned window, then an incident: the emergency isolation must not be lifted by the window's
# schedule. The same policy again (a repeat) follows the same rule: --for sets its schedule, none drops it.
check_exit 0 "window: isolate mailonly --for ${D}s" ctl isolate mailonly --for ${D}s --reason "e2e: planned window"
out=$(ctl isolate --reason "e2e: ransomware" 2>&1)
rc=$?
check "incident: isolate without --for exits 0 (got $rc)" test "$rc" -eq 0
check "incident: says the scheduled restore was dropped" contains "$out" "The scheduled restore at" "was dropped"
check "incident: restore_at null, nothing pending" status_is 'd["restore_at"] is None and d["pending"] is None'
check "incident: the history has the drop" \
	history_has 'e["action"] == "cancel" and "dropped by" in (e["message"] or "") and e["reason"] == "e2e: ransomware"'
check_exit 0 "repeat with --for ${D}s: sets its schedule" ctl isolate --for ${D}s
check "repeat with --for: restore_at set, the incident's reason stays" \
	status_is 'd["restore_at"] and d["policy"] == "isolate" and d["reason"] == "e2e: ransomware"'
out=$(ctl isolate 2>&1)
rc=$?
check "repeat without an end exits 0 (got $rc)" test "$rc" -eq 0
check "repeat without an end: 'Already isolated', the schedule dropped" \
	contains "$out" "Already isolated with policy isolate" "The scheduled restore at" "was dropped"
check "repeat without an end: restore_at null" status_is 'd["restore_at"] is None'
sleep $((D + LATE))
check "past both deadlines: still isolated with isolate" is_isolated isolate
check "past both deadlines: web cut" web_cut
check_exit 0 "restore returns 0" ctl restore

# --- across an agent restart ------------------------------------------------------------------
check_exit 0 "isolate --for ${D}s, then stop the agent" ctl isolate --for ${D}s --reason "e2e: restart, due"
agent_stop TERM
sleep $((D + 2))
check "agent down past the deadline: still cut (no agent, fail-closed)" web_cut
agent_start || die "restart"
check "restarted after the deadline: restored at start" wait_until "$LATE" is_normal
check "restarted after the deadline: web reachable" web_ok
check "restarted after the deadline: the restore is recorded as late" \
	history_has 'e["action"] == "restore" and "late" in (e["reason"] or "")'

check_exit 0 "isolate --for $((2 * D))s, then restart the agent at once" ctl isolate --for $((2 * D))s
agent_stop TERM
agent_start || die "restart"
check "restarted before the deadline: still isolated and pending" \
	status_is 'd["state"] == "isolated" and d["restore_at"] and d["pending"]["action"] == "restore"'
check "restarted before the deadline: web cut" web_cut
check "restarted before the deadline: restored after the deadline" wait_until $((2 * D + LATE)) is_normal
check "restarted before the deadline: web reachable" web_ok

# --- commit-confirmed -------------------------------------------------------------------------
check_exit 0 "isolate --confirm ${D}s (from normal) returns 0" ctl isolate --confirm ${D}s --reason "e2e: test policy"
check "confirm pending: status --json pending.confirm and revert to normal" \
	status_is 'd["pending"]["confirm"] is True and d["pending"]["revert_to"] is None and d["confirm_deadline"]'
out=$(ctl status)
check "confirm pending: status says 'Revert: ... unless confirmed'" contains "$out" "Revert:" "unless confirmed"
check "confirm pending: web cut" web_cut
check "not confirmed: reverted to normal after the deadline" wait_until $((D + LATE)) is_normal
check "not confirmed: web reachable" web_ok
check "not confirmed: history has the revert with the reason" \
	history_has 'e["action"] == "revert" and "not confirmed" in (e["message"] or "")'

check_exit 0 "isolate mailonly (confirmed state)" ctl isolate mailonly
check "mailonly: SIP cut" sip_cut
check_exit 0 "switch to isolate --confirm ${D}s returns 0" ctl isolate isolate --confirm ${D}s
check "switched to isolate: SIP reachable" sip_ok
check "switch pending: revert to mailonly" status_is 'd["pending"]["action"] == "switch" and d["pending"]["revert_to"] == "mailonly"'
check "not confirmed: back to policy mailonly after the deadline" wait_until $((D + LATE)) is_isolated mailonly
check "back to mailonly: SIP cut again" sip_cut
check "back to mailonly: web still cut" web_cut
check "back to mailonly: trigger confirm-timeout" status_is 'd["trigger"] == "confirm-timeout"'
check_exit 0 "restore returns 0" ctl restore

check_exit 0 "isolate --confirm ${D}s returns 0" ctl isolate --confirm ${D}s
check_exit 0 "confirm returns 0" ctl confirm
sleep $((D + 1))
check "confirmed: still isolated after the deadline" is_isolated
check "confirmed: web cut" web_cut
check "confirmed: nothing pending" status_is 'd["pending"] is None'
check_exit 1 "confirm with nothing pending fails (exit 1)" ctl confirm
check "history has the confirm" history_has 'e["action"] == "confirm"'
check_exit 0 "restore returns 0" ctl restore
check "restored: web reachable" web_ok

# --- a wall-clock step, then a restart: durations still count on CLOCK_BOOTTIME -------------------
# NTP steps the clock 2 h forward (only the agent's, through tests/e2e/ks-clock.c), then the agent
# restarts (a crash, the watchdog, an upgrade). Before, only the wall-clock deadline was saved: the
# restarted agent lifted an isolate --for 1h at once, "1h late (the agent was not running ...)".
# The checks run after the restart and a pause: an agent that restores at start has done so by then.
last_action() { ctl --json history -n 1 | python3 -c 'import json, sys; print(json.load(sys.stdin)[-1]["action"])'; }
STEP=$KS_TMP/clock-step
if ! cc -O1 -shared -fPIC -o "$KS_TMP/ks-clock.so" "$KS_REPO/tests/e2e/ks-clock.c" -ldl; then
	fail "step: building ks-clock.so"
else
	clock_agent_restart() {
		agent_stop
		LD_PRELOAD=$KS_TMP/ks-clock.so KS_CLOCK_FILE=$STEP \
			ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 agent_start
	}
	echo 0 >"$STEP"
	clock_agent_restart || die "restart with ks-clock.so"
	check_exit 0 "step: isolate --for 1h returns 0" ctl isolate --for 1h --reason "e2e: 1 h containment"
	echo 7200 >"$STEP"
	clock_agent_restart || die "restart after the step"
	sleep 2
	check "step +2h and restart: still isolated, the restore pending" \
		status_is 'd["state"] == "isolated" and d["restore_at"] and d["pending"]["action"] == "restore"'
	check "step +2h and restart: web still cut" web_cut
	check "step +2h and restart: nothing restored (last history entry: schedule)" test "$(last_action)" = schedule
	check_exit 0 "step: restore returns 0" ctl restore

	check_exit 0 "step: isolate --confirm 1h returns 0" ctl isolate --confirm 1h --reason "e2e: confirm, step"
	echo 14400 >"$STEP"
	clock_agent_restart || die "restart after the second step"
	sleep 2
	check "step +2h more and restart: the confirm still pending, not reverted" \
		status_is 'd["state"] == "isolated" and d["pending"]["confirm"] is True'
	check "step +2h more and restart: web still cut" web_cut
	check_exit 0 "step: confirm returns 0" ctl confirm
	check_exit 0 "step: restore returns 0" ctl restore
	check "step: web reachable after the restore" web_ok
	echo 0 >"$STEP"
fi

[ "$KS_FAILED" -eq 0 ] || agent_log_tail
summary
