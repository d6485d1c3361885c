#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Fail-closed across a reboot when the policy files break (audit-fail finding 1), in the lab of
# lib.sh with real probes. A reboot is simulated: the agent stops, the killswitch tables are
# deleted in gw (a reboot empties the kernel), the agent starts.
#  1. Isolated with the default policy isolate, its file gets a typo and is reloaded (the running
#     agent keeps the previous version), then a reboot: the cut is back from the last good copy
#     (STATE_DIR/last-good/isolate.policy), status says isolated and applied, the history says
#     which version is used, and `policies` still reports the broken file with FILE:LINE.
#  2. Isolated with policy strict (it cuts the SIP trunk too), strict.policy deleted, a reboot:
#     strict is back from its copy, not the default policy. After a restore and a reload the
#     copy goes with the policy.
#  3. The default policy isolate broken before a restart while normal: `killswitchctl isolate`
#     still cuts, with its last good copy.
#  4. The last resort: isolated, neither the policy nor isolate loads, no copy (last-good
#     removed): every uplink the state file remembers is cut, nothing kept (policy builtin-cut).
#  5. Status honesty: the same but the state file knows no uplink: nothing can be applied,
#     status --json says applied: false, `killswitchctl status` warns and exits 5; once a policy
#     loads again, isolate cuts and status is clean.
# Run as root: tests/e2e/test-failclosed.sh   (KILLSWITCHD, KILLSWITCHCTL: see lib.sh)

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ks_init
[ -x "$KILLSWITCHD" ] || die "no agent at $KILLSWITCHD"
[ -x "$KILLSWITCHCTL" ] || die "no client at $KILLSWITCHCTL"

lab_create
write_lab_policy isolate
write_lab_policy strict --no-phone
POL=$KS_CONF/policies
COPIES=$KS_STATE/last-good

# reboot — the agent stopped, the kernel's killswitch tables gone (as after a reboot), started.
reboot() {
	local t
	agent_stop
	for t in $(n_gw nft list tables | awk '$3 ~ /^killswitch/ { print $2 ":" $3 }'); do
		n_gw nft delete table "${t%%:*}" "${t#*:}"
	done
	[ "$(ks_table_state)" = absent ] || die "table inet killswitch survived the simulated reboot"
	agent_start || die "killswitchd did not start after the simulated reboot"
}
# typo NAME — the admin's typo in NAME.policy (Port= for Ports=): the file no longer loads.
typo() { sed -i 's/^Ports=tcp:25 /Port=tcp:25 /' "$POL/$1.policy"; ! grep -q '^Ports=tcp:25 ' "$POL/$1.policy"; }
cut_kept() { # DESC — web cut, mail (kept by every lab policy) reachable
	check_many <<EOF
- $1: web v4 from lan is cut        | tcp_echo lan 192.0.2.80 80
+ $1: mail tcp/25 from lan is kept  | tcp_echo lan 203.0.113.25 25
EOF
}
# ctl_out CMD... — run killswitchctl, keep what it said (both streams) in $OUT and its status in $RC.
ctl_out() { OUT=$(ctl "$@" 2>&1); RC=$?; }
strict_cut() { # DESC — strict in force, not the default policy: the SIP trunk is cut too
	check_many <<EOF
- $1: web v4 from lan is cut            | tcp_echo lan 192.0.2.80 80
- $1: SIP tcp/5061 is cut (strict only) | tcp_echo lan 203.0.113.5 5061
+ $1: mail tcp/25 from lan is kept      | tcp_echo lan 203.0.113.25 25
EOF
}
# history_n PYEXPR — how many of the last 200 history entries e match.
history_n() {
	ctl --json history -n 200 | python3 -c '
import json, sys
print(sum(1 for e in json.load(sys.stdin) if eval(sys.argv[1])))' "$1"
}
applied_as() { status_is "d['state'] == 'isolated' and d['policy'] == '$1' and d.get('applied') is True"; }
state_set() { # PYTHON — edit state.json as s
	python3 - "$KS_STATE/state.json" "$1" <<'PY'
import json, sys
path, code = sys.argv[1], sys.argv[2]
s = json.load(open(path))
exec(code)
open(path, "w").write(json.dumps(s))
PY
}

agent_start || die "killswitchd did not start"

# ---------------------------------------------------------------------------------------------
note "1. a typo in the policy in force (the default one), reloaded, then a reboot"
check "isolate" ctl isolate --reason "failclosed test"
cut_kept "isolated with isolate"
check "a copy of isolate.policy is kept, root's only" \
	test "$(stat -c %a "$COPIES" 2>&1)" = 700 -a "$(stat -c %a "$COPIES/isolate.policy" 2>&1)" = 600
check "the copy is the file's text" cmp "$POL/isolate.policy" "$COPIES/isolate.policy"
check "typo in isolate.policy" typo isolate
ctl_out reload
check "reload reports the broken file; the previous version stays" contains "$OUT" "isolate.policy:" "isolate.policy (its earlier version stays in use)"
check "the copy still holds the last good text" grep -q '^Ports=tcp:25 ' "$COPIES/isolate.policy"
cut_kept "after the reload"
reboot
check "after the reboot: isolated with isolate, applied" applied_as isolate
check "after the reboot: the table is in force" ks_table_active
cut_kept "after the reboot (isolate from its last good copy)"
check_exit 0 "after the reboot: killswitchctl status exits 0" ctl status
check "history: the last good version of isolate is in use" \
	history_has 'e["action"] == "last-good" and e["policy"] == "isolate" and "isolate.policy:" in e["message"] and "saved at" in e["message"]'
ctl_out policies
check "policies: still reports isolate.policy with its line" contains "$OUT" "isolate.policy:" "Port"

# ---------------------------------------------------------------------------------------------
note "2. the file of the policy in force (not the default one) deleted, then a reboot"
write_lab_policy isolate
check "reload (isolate.policy fixed)" ctl reload
check "isolate strict" ctl isolate strict
strict_cut "isolated with strict"
rm -f "$POL/strict.policy"
reboot
check "after the reboot: isolated with strict, applied" applied_as strict
strict_cut "after the reboot (strict.policy gone, its copy used)"
check "history: strict's last good version, its file gone" \
	history_has 'e["action"] == "last-good" and e["policy"] == "strict" and "file is gone" in e["message"]'
check "restore" ctl restore --reason "failclosed test"
check "reload" ctl reload
check "the copy went with the policy (its file is gone, it is no longer in force)" test ! -e "$COPIES/strict.policy"
check "isolate.policy's copy stays" test -s "$COPIES/isolate.policy"

# ---------------------------------------------------------------------------------------------
note "3. the default policy broken, then a restart while normal: the emergency isolate still cuts"
check "typo in isolate.policy" typo isolate
LAST_GOOD_ISOLATE='e["action"] == "last-good" and e["policy"] == "isolate"'
n0=$(history_n "$LAST_GOOD_ISOLATE")
reboot
check "normal after the restart" is_normal
check "history: the last good version of isolate is in use (a new entry)" \
	test "$(history_n "$LAST_GOOD_ISOLATE")" -gt "${n0:-0}"
check "killswitchctl isolate (the default policy) works" ctl isolate --reason "emergency"
check "isolated with isolate, applied" applied_as isolate
cut_kept "isolated with isolate's last good copy"

# ---------------------------------------------------------------------------------------------
note "4. the last resort: nothing loads, no copy; the uplinks the state file remembers are cut"
write_lab_policy strict --no-phone
ctl_out reload
check "reload: strict loads again (isolate.policy still fails)" not_matches "$OUT" "strict.policy"
check "isolate strict" ctl isolate strict
check "the state file remembers the uplinks" wait_until 10 \
	python3 -c 'import json,sys; n = {u["name"] for u in json.load(open(sys.argv[1])).get("uplinks", [])}; sys.exit(0 if {"wan0", "wan1"} <= n else 1)' "$KS_STATE/state.json"
check "typo in strict.policy" typo strict
agent_stop
rm -rf "$COPIES"
reboot
check "after the reboot: isolated with the built-in cut, applied" applied_as builtin-cut
check "the built-in cut names the uplinks" status_is "set(d['uplinks']) == {'wan0', 'wan1'}"
check_many <<EOF
- built-in cut: web v4 from lan is cut         | tcp_echo lan 192.0.2.80 80
- built-in cut: mail tcp/25 is cut (nothing kept) | tcp_echo lan 203.0.113.25 25
EOF
ctl_out status
check "status names the built-in cut" contains "$OUT" "builtin-cut" "Built-in cut"
check "history: fail-closed with the built-in cut, saying why" \
	history_has 'e["action"] == "fail-closed" and e["policy"] == "builtin-cut" and "strict" in e["message"] and "isolate" in e["message"]'

# ---------------------------------------------------------------------------------------------
note "5. nothing can be applied (no uplink known either): status says so"
agent_stop
state_set 's["policy"] = "strict"; s.pop("uplinks", None)'
reboot
check "status --json: isolated, applied false" \
	status_is "d['state'] == 'isolated' and d.get('applied') is False"
ctl_out status
check "killswitchctl status exits 5" test "$RC" = 5
check "killswitchctl status warns" contains "$OUT" "WARNING: THE UPLINKS ARE OPEN"
check "the history says the uplinks are open" \
	history_has 'e["action"] == "apply-failed" and "no uplink" in e["message"] and "OPEN" in e["message"]'
check "honestly open: web v4 from lan passes" web_ok
write_lab_policy isolate
ctl_out reload
check "reload: isolate loads again (strict.policy still fails)" not_matches "$OUT" "isolate.policy"
check "killswitchctl isolate cuts again" ctl isolate --reason "fixed"
check "status --json: applied again" applied_as isolate
check_exit 0 "killswitchctl status exits 0" ctl status
cut_kept "isolated after the fix"
check "restore" ctl restore

check "the host's ruleset was not touched" host_ruleset_intact
summary
