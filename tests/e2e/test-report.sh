#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The incident report (issue 18, part 3) against a scripted incident in the namespace lab (lib.sh):
# isolate with a reason, tamper once (the agent re-asserts), switch policy, calls through the kept
# SIP gateway, beacons from an inside host that the cut drops, a refused request, and a four-eyes
# restore by two real users of group killswitch. `killswitchctl report` (Markdown) and
# `report --json` hold each event with who, when and why, the kept gateway's counters (saved at
# the restore: the kernel's start from zero at the next isolation) and the drops; the same after an
# agent restart; --since/--until give a window.
#
# Run as root: tests/e2e/test-report.sh   (KILLSWITCHD, KILLSWITCHCTL: see lib.sh)

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ks_init
[ -x "$KILLSWITCHD" ] || die "no agent at $KILLSWITCHD"
[ -x "$KILLSWITCHCTL" ] || die "no client at $KILLSWITCHCTL"
ks_two_members ksr

lab_create
write_lab_policy isolate
write_lab_policy mailonly --no-phone
printf '[Restore]\nApprovals=2\n' >"$KS_CONF/killswitch.conf"
# The monitor alone lets a foreign nft delete the table: the tamper and the re-assertion happen.
KS_AGENT_ARGS=--protect=monitor
agent_start || die "killswitchd did not start"

sip_ok() { udp_echo lan 203.0.113.5 5060; }
# report_json PYEXPR — evaluated on `killswitchctl --json report` as r.
report_json() {
	ctl --json report "${@:2}" | python3 -c '
import json, sys
r = json.load(sys.stdin)
ok = eval(sys.argv[1])
if not ok: print(json.dumps(r, indent=1))
sys.exit(0 if ok else 1)' "$1"
}
check_exit 1 "report with no isolation in the history: exit 1" ctl report

# --- the incident -------------------------------------------------------------------------------
t_start=$(date -u +%Y-%m-%dT%H:%M:%SZ)
check_exit 0 "isolate with a reason" ctl isolate --reason "INC-4711: beaconing from the lab LAN"
for i in 1 2 3; do check "call $i through the kept SIP gateway" sip_ok; done
ip netns exec "$NS_GW" nft delete table inet killswitch
check "tamper: the agent puts its table back" wait_until 10 ks_table_active
for i in 1 2 3 4; do check_not "beacon $i (web) is cut" tcp_echo lan 192.0.2.80 80; done
check_exit 1 "a refused request (nobody isolates)" ctl_as_nobody isolate
check_exit 0 "switch to mailonly, with a reason" ctl isolate mailonly --reason "INC-4711: phones not needed"
check "mail through the kept relay" tcp_echo lan 203.0.113.25 25
for i in 5 6; do check_not "beacon $i (web) is cut" tcp_echo lan 192.0.2.80 80; done
check_exit 4 "restore by $USER_A: waiting for a second person" as_user "$USER_A" restore --reason "INC-4711: cleaned"
check_exit 0 "restore by $USER_B: restored" as_user "$USER_B" restore --reason "INC-4711: agreed"
check "normal again" is_normal

# --- the report ---------------------------------------------------------------------------------
ctl report >"$KS_TMP/report.md" 2>&1
md=$(cat "$KS_TMP/report.md")
# KS_REPORT_OUT=FILE keeps the report for a person to read.
[ -n "${KS_REPORT_OUT:-}" ] && cp "$KS_TMP/report.md" "$KS_REPORT_OUT"
check "report (Markdown): the isolation with its reason" contains "$md" "# Incident report" "INC-4711: beaconing from the lab LAN"
check "report: the tamper and the re-assertion" contains "$md" "| tamper |" "| reassert |"
check "report: the switch, with its reason" contains "$md" "| switch |" "INC-4711: phones not needed"
check "report: the request by A and the approval and restore by B" \
	contains "$md" "| restore-request |" "$USER_A (uid" "| restore-approve |" "| restore |" "$USER_B (uid"
check "report: the refusal summed up" contains "$md" "Refused requests: 1 (from nobody"
check "report: what was kept, saved at the restore" contains "$md" "## What was kept" "as saved when the isolation was lifted"
check "report: what was cut" contains "$md" "## What was cut" "Dropped on the uplinks"
check "report --json: every event, in order, with who and why" report_json '(
[e["action"] for e in r["timeline"] if e["action"] in ("isolate", "tamper", "reassert", "switch", "restore-request", "restore-approve", "restore")][:1] == ["isolate"]
and r["timeline"][0]["reason"] == "INC-4711: beaconing from the lab LAN" and r["timeline"][0]["uid"] == 0
and any(e["action"] == "tamper" for e in r["timeline"]) and any(e["action"] == "reassert" for e in r["timeline"])
and any(e["action"] == "switch" and e["policy"] == "mailonly" for e in r["timeline"])
and any(e["action"] == "restore-request" and e["user"] == "'"$USER_A"'" for e in r["timeline"])
and r["timeline"][-1]["action"] == "restore" and r["timeline"][-1]["user"] == "'"$USER_B"'"
and r["ongoing"] is False and r["policy"] == "isolate" and r["refusals"]["count"] == 1)'
# The counters are those of the policy in force at the restore (mailonly), counted since the switch.
check "report --json: the counters saved at the restore (mailonly: mail kept, cut traffic counted)" report_json '(
r["kept"]["source"] == "saved" and [g["name"] for g in r["kept"]["gateways"]] == ["mail"]
and r["kept"]["gateways"][0]["packets"] > 0 and r["kept"]["dropped"]["packets"] > 0)'
if ctl --json report | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["drops"] is not None else 1)'; then
	check "report --json: the drop sensor's tuples include the web beacons" report_json '
any(d["destination"] == "192.0.2.80" and d["port"] == 80 and d["packets"] >= 4 for d in r["drops"]["drops"])'
	check "report: the top inside source" contains "$md" "Top sources:" "Top destinations:" "192.0.2.80"
else
	note "no drop sensor in this agent: the report says so"
	check "report: says the drop sensor is not available" contains "$md" "not available"
fi

# --- after a restart, and a window --------------------------------------------------------------
agent_stop
agent_start || die "killswitchd did not restart"
md2=$(ctl report 2>&1)
check "after a restart: the same timeline and the saved counters" \
	contains "$md2" "INC-4711: beaconing from the lab LAN" "| restore-approve |" "as saved when the isolation was lifted"
t_end=$(date -u +%Y-%m-%dT%H:%M:%SZ)
check "report --since/--until: the window holds the incident" \
	report_json 'any(e["action"] == "isolate" for e in r["timeline"]) and r["since"] == "'"$t_start"'"' \
	--since "$t_start" --until "$t_end"
check_exit 2 "report --since garbage: usage error" ctl report --since "next tuesday-ish"
# A time of day is the last such time: the incident's start, not tomorrow (before: an empty window
# from a future instant, "ongoing").
check "report --since HH:MM:SS: today's (the last) such time" \
	report_json 'r["since"] == "'"$t_start"'" and any(e["action"] == "isolate" for e in r["timeline"])' \
	--since "$(date -d "$t_start" +%H:%M:%S)"
# The window's rules are usage errors that name the options (before: exit 1, "Parameter 'until' ...").
out=$(ctl report --until 2h 2>&1)
check "report --until without --since: usage error (exit 2)" test $? -eq 2
check "report --until without --since: names both" contains "$out" "--until needs --since" "killswitchctl report --help"
out=$(ctl report --since 10m --until 1h 2>&1)
check "report --until before --since: usage error (exit 2)" test $? -eq 2
check "report --until before --since: says so" contains "$out" "is before --since"
check_exit 2 "report --since in the future: usage error" ctl report --since "$(date -d '+1 hour' '+%Y-%m-%d %H:%M:%S')"

# --- an ongoing isolation: live counters ---------------------------------------------------------
check_exit 0 "isolate again" ctl isolate --reason "INC-4712"
check "call through the kept SIP gateway" sip_ok
check "report of the ongoing isolation: live counters, phone counted" report_json '(
r["ongoing"] is True and r["kept"]["source"] == "live" and any(g["name"] == "phone" and g["packets"] > 0 for g in r["kept"]["gateways"]) and r["timeline"][0]["reason"] == "INC-4712")'
check_exit 0 "root --force ends it" ctl restore --force

agent_stop
check "the agent exits 0 on SIGTERM (under ASan: no leak)" test "$AGENT_EXIT" -eq 0

summary
