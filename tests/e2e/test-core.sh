#!/bin/bash
# SPDX-License-Identifier: MIT
#
# End-to-end test of issue 2 with real packets in network namespaces (see lib.sh for the lab):
# killswitchd runs in the gateway namespace; the LAN host, the management host, the gateway itself
# and "the internet" send traffic through it before, during and after an isolation.
#
# Every check prints "PASS: ..." or "FAIL: ..."; the last line is a summary. Exit 0 if all passed.
# Run as root: tests/e2e/test-core.sh   (KILLSWITCHD, KILLSWITCHCTL, KS_AGENT_WRAPPER: see lib.sh)

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ks_init

[ -x "$KILLSWITCHD" ] || die "no agent at $KILLSWITCHD (build: meson setup build && meson compile -C build)"
[ -x "$KILLSWITCHCTL" ] || die "no client at $KILLSWITCHCTL"

# ---------------------------------------------------------------------------------------------
# Probes. One table for every phase; the first word says what the probe is:
#   cut    anything an isolation must stop
#   mail   the mail gateway on an allowed port (allowed by both lab policies)
#   sip    the phone gateway on an allowed port (allowed by "isolate", not by "mailonly")
#   local  LAN and management traffic to the gateway: never touched
probe_table() {
	cat <<'EOF'
cut   web v4 lan->inet (forwarded)            | tcp_echo lan 192.0.2.80 80
cut   web v6 lan->inet (forwarded)            | tcp_echo lan 2001:db8:80::80 80
cut   web v4 from gw itself                   | tcp_echo gw 192.0.2.80 80
cut   web v6 from gw itself                   | tcp_echo gw 2001:db8:80::80 80
cut   ping web v4 from lan                    | ping_ok lan 192.0.2.80
cut   ping web v6 from gw                     | ping_ok gw 2001:db8:80::80
cut   inbound inet->gw:2222 v4 over wan0      | tcp_echo inet 198.51.100.1 2222
cut   inbound inet->gw:2222 v6 over wan1      | tcp_echo inet 2001:db8:100:1::1 2222
mail  mail tcp/25 v4 from lan                 | tcp_echo lan 203.0.113.25 25
mail  mail tcp/25 v6 from lan                 | tcp_echo lan 2001:db8:25::25 25
mail  mail tcp/25 v4 from gw                  | tcp_echo gw 203.0.113.25 25
mail  mail tcp/25 v6 from gw                  | tcp_echo gw 2001:db8:25::25 25
cut   mail host tcp/8080 v4 from lan          | tcp_echo lan 203.0.113.25 8080
cut   mail host tcp/8080 v6 from lan          | tcp_echo lan 2001:db8:25::25 8080
cut   mail host tcp/8080 v4 from gw           | tcp_echo gw 203.0.113.25 8080
cut   ping mail host (ICMP is not a port)     | ping_ok lan 203.0.113.25
sip   SIP udp/5060 from lan                   | udp_echo lan 203.0.113.5 5060
sip   SIP udp/5060 from gw                    | udp_echo gw 203.0.113.5 5060
sip   SIP tcp/5061 from lan                   | tcp_echo lan 203.0.113.5 5061
sip   RTP udp/16384 from lan (udp:10000-20000) | udp_echo lan 203.0.113.5 16384
cut   SIP host tcp/8080 from lan              | tcp_echo lan 203.0.113.5 8080
cut   SIP host tcp/8080 from gw               | tcp_echo gw 203.0.113.5 8080
local lan->gw tcp 10.0.1.1:2222               | tcp_echo lan 10.0.1.1 2222
local lan->gw tcp [fd00:1::1]:2222            | tcp_echo lan fd00:1::1 2222
local ping lan->gw v4                         | ping_ok lan 10.0.1.1
local ping lan->gw v6                         | ping_ok lan fd00:1::1
local mgmt->gw tcp 10.0.9.1:2222              | tcp_echo mgmt 10.0.9.1 2222
local mgmt->gw tcp [fd00:9::1]:2222           | tcp_echo mgmt fd00:9::1 2222
local ping mgmt->gw                           | ping_ok mgmt 10.0.9.1
EOF
}

# probe_lines MODE LABEL [FILTER] — the table as check_many input for MODE (normal, isolate,
# mailonly, selftest); FILTER is a regex on the probe kind, to run a subset.
probe_lines() {
	local mode=$1 label=$2 filter=${3:-cut|mail|sip|local} kind rest desc cmd sign
	probe_table | while read -r kind rest; do
		[[ $kind =~ ^($filter)$ ]] || continue
		desc=${rest%%|*}
		desc=${desc%"${desc##*[![:space:]]}"}
		cmd=${rest#*|}
		case $mode/$kind in
		normal/* | isolate/mail | isolate/local | isolate/sip | mailonly/mail | mailonly/local) sign=+ ;;
		selftest/local) sign=+ ;;
		*) sign=- ;;
		esac
		if [ "$sign" = + ]; then desc="$desc reachable"; else desc="$desc cut"; fi
		printf '%s %s: %s |%s\n' "$sign" "$label" "$desc" "$cmd"
	done
}

# probes MODE LABEL [FILTER]
probes() { check_many < <(probe_lines "$@"); }

contains() { # HAYSTACK NEEDLE... — all present; print the haystack when one is missing
	local hay=$1 needle
	shift
	for needle; do
		grep -qF -- "$needle" <<<"$hay" || { printf 'missing %s in:\n%s\n' "$needle" "$hay"; return 1; }
	done
}

ctl_as_member() {
	timeout "$KS_CTL_TIMEOUT" setpriv --reuid=65534 --regid=65534 --groups="$ks_gid" \
		"$KILLSWITCHCTL" --socket "$KS_SOCK" "$@"
}

foreign_table() { n_gw nft list table inet other; }
foreign_intact() { [ "$(foreign_table 2>&1)" = "$foreign_before" ] || { foreign_table; return 1; }; }

# ---------------------------------------------------------------------------------------------
note "lab: namespaces ${KS_PREFIX}{lan,gw,inet,mgmt}; agent $KILLSWITCHD${KS_AGENT_WRAPPER:+ under $KS_AGENT_WRAPPER}"
lab_create
write_lab_policy isolate
write_lab_policy mailonly --no-phone

# The probes must be able to fail: a hand-made table that drops everything on the uplinks.
n_gw nft -f - <<'EOF' || die "loading the self-test table"
table inet ks_selftest {
	chain pre { type filter hook prerouting priority -300; iifname { "wan0", "wan1" } drop; }
	chain post { type filter hook postrouting priority -300; oifname { "wan0", "wan1" } drop; }
}
EOF
probes selftest "lab self-test (hand-made drop table)" 'cut|mail|sip|local'
n_gw nft delete table inet ks_selftest || die "removing the self-test table"

# A table that belongs to someone else; killswitch must never change it.
n_gw nft -f - <<'EOF' || die "loading the foreign table"
table inet other {
	chain input { type filter hook input priority 0; policy accept; tcp dport 9999 counter accept; }
}
EOF
foreign_before=$(foreign_table)

# --- killswitchd --check ---------------------------------------------------------------------
check_exit 0 "--check: the lab policies are valid (exit 0)" "$KILLSWITCHD" --check --config-dir "$KS_CONF"
if [ -f "$KS_REPO/policies/isolate.policy" ]; then
	check_exit 0 "--check: the shipped policies/isolate.policy is valid" \
		"$KILLSWITCHD" --check --config-dir "$KS_REPO"
fi
mkdir -p "$KS_TMP/broken/policies"
cp "$KS_CONF/policies/isolate.policy" "$KS_TMP/broken/policies/good.policy"
cat >"$KS_TMP/broken/policies/bad.policy" <<'EOF'
[Policy]
Description=broken on purpose

[Uplinks]
Interface=wan0

[Gateway mail]
Address=203.0.113.25
Ports=tcp:70000
EOF
check_out=$("$KILLSWITCHD" --check --config-dir "$KS_TMP/broken" 2>&1)
check_rc=$?
check "--check: a broken policy exits 1 (got $check_rc)" test "$check_rc" -eq 1
check "--check: the problem is reported as FILE:LINE (bad.policy:9:)" contains "$check_out" "bad.policy:9:"
# (Warnings are not blame: --check may run where the lab's uplinks do not exist.)
check "--check: the good policy next to it is not blamed" not_matches "$(grep -v ': warning: ' <<<"$check_out")" \
	'good\.policy:[0-9]+:'
# No policy at all: nothing to isolate with. No isolate.policy: the default of isolate, of the
# triggers and of the fail-closed start is missing (a warning: the other policies are good).
mkdir -p "$KS_TMP/empty/policies" "$KS_TMP/noisolate/policies"
check_out=$("$KILLSWITCHD" --check --config-dir "$KS_TMP/empty" 2>&1)
check_rc=$?
check "--check: a policy directory without any policy exits 1 (got $check_rc)" test "$check_rc" -eq 1
check "--check: ... and says to add isolate.policy" contains "$check_out" \
	"$KS_TMP/empty/policies: no *.policy files; add isolate.policy"
cp "$KS_CONF/policies/mailonly.policy" "$KS_TMP/noisolate/policies/"
check_out=$("$KILLSWITCHD" --check --config-dir "$KS_TMP/noisolate" 2>&1)
check_rc=$?
check "--check: good policies without isolate.policy exit 0 (got $check_rc)" test "$check_rc" -eq 0
check "--check: ... with a warning that isolate.policy is missing" contains "$check_out" \
	"$KS_TMP/noisolate/policies: warning: no isolate.policy: 'killswitchctl isolate' without a policy name"

# --- normal ----------------------------------------------------------------------------------
agent_start || die "killswitchd did not start"
check "normal: status --json says normal" status_is 'd["state"] == "normal"'
check "normal: no killswitch rules in gw" ks_tables_inactive
probes normal "before"

# --- isolate ---------------------------------------------------------------------------------
# Connections opened before the isolation: the web one must die, the mail one must live on.
session_open web lan 192.0.2.80 80 || die "opening a web session"
session_open mail lan 2001:db8:25::25 25 || die "opening a mail session"
check "before: an open web session echoes" session_echo web
check "before: an open mail v6 session echoes" session_echo mail
check_exit 0 "isolate --reason returns 0" ctl isolate --reason "e2e: incident 42"
check "isolated: table inet killswitch is in force in gw" ks_table_active
check_not "isolated: the web session opened before is cut" session_echo web
check "isolated: the mail v6 session opened before still works" session_echo mail
session_close web
session_close mail
probes isolate "isolated"
check "isolated: status --json has state, policy, reason" \
	status_is 'd["state"] == "isolated" and d["policy"] == "isolate" and d["reason"] == "e2e: incident 42"'
check "isolated: status --json since is RFC 3339, restore_at null, user set" \
	status_is '__import__("re").match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$", d["since"]) and d["restore_at"] is None and d["user"]'
check "isolated: gateway counters phone and mail are non-zero" \
	status_is 'sorted(g["name"] for g in d["gateways"]) == ["mail", "phone"] and all(g["packets"] > 0 and g["bytes"] > 0 for g in d["gateways"])'
check "isolated: dropped counter is non-zero" status_is 'd["dropped"]["packets"] > 0 and d["dropped"]["bytes"] > 0'
status_out=$(ctl status 2>&1)
check "isolated: plain status names the state, the policy and the reason" \
	contains "$status_out" isolated isolate "e2e: incident 42"
check "isolated: foreign table inet other is intact" foreign_intact
# Gateways must stay reachable for days: neighbour entries expire, and ARP/ND on the uplinks
# has to keep working while isolated.
n_gw ip -4 neigh flush all
n_gw ip -6 neigh flush all
n_inet ip -4 neigh flush all
n_inet ip -6 neigh flush all
probes isolate "isolated, neighbour caches flushed" 'mail|sip'

# --- restore ---------------------------------------------------------------------------------
check_exit 0 "restore --reason returns 0" ctl restore --reason "e2e: all clear"
check "restored: no killswitch rules in gw" ks_tables_inactive
check "restored: status --json says normal, reason recorded" \
	status_is 'd["state"] == "normal" and d["reason"] == "e2e: all clear"'
probes normal "restored"
check "restored: foreign table inet other is intact" foreign_intact
# The restore resets the counters (on a thread, which the next isolation waits for): they read zero.
counters_zero() {
	local out
	out=$(n_gw nft list counters table inet killswitch && n_gw nft list counters table netdev killswitch_links) &&
		grep -q 'packets' <<<"$out" && ! grep -Eq 'packets [1-9]' <<<"$out"
}
check "restored: every counter of both tables reads zero" wait_until 5 counters_zero
check_exit 0 "restore while normal is a no-op that succeeds" ctl restore
check_exit 1 "isolate with an unknown policy is refused (exit 1)" ctl isolate no-such-policy
check "unknown policy: state unchanged (no rules)" ks_tables_inactive
check "unknown policy: status still normal" status_is 'd["state"] == "normal"'

# --- show ------------------------------------------------------------------------------------
show_out=$(ctl show 2>&1)
check "show: prints a ruleset with table inet killswitch" contains "$show_out" "table inet killswitch"
check "show: the ruleset names the uplinks and the gateways" \
	contains "$show_out" wan0 wan1 203.0.113.5 203.0.113.25 2001:db8:25::25
show_mail=$(ctl show mailonly 2>&1)
check "show mailonly: mail gateway in" contains "$show_mail" "table inet killswitch" 203.0.113.25
check "show mailonly: phone gateway out" not_matches "$show_mail" '203\.0\.113\.5([^0-9]|$)'
check "show applies nothing: no killswitch rules in gw" ks_tables_inactive
check "show applies nothing: web still reachable" tcp_echo lan 192.0.2.80 80

# --- restart while isolated ------------------------------------------------------------------
check_exit 0 "isolate (default policy) returns 0" ctl isolate --reason "e2e: restart test"
agent_stop TERM
check "SIGTERM: agent exits 0" test "$AGENT_EXIT" -eq 0
check "agent stopped cleanly: isolation stays in force (table)" ks_table_active
probes isolate "agent stopped" 'cut|mail'
agent_start || die "killswitchd did not restart after SIGTERM"
check "restarted after SIGTERM: status says isolated by isolate" \
	status_is 'd["state"] == "isolated" and d["policy"] == "isolate" and d["reason"] == "e2e: restart test"'
probes isolate "restarted after SIGTERM" 'cut|mail|sip'
agent_stop KILL
check "agent killed: isolation stays in force (table)" ks_table_active
check_not "agent killed: web v4 from lan cut" tcp_echo lan 192.0.2.80 80
agent_start || die "killswitchd did not restart after SIGKILL"
check "restarted after SIGKILL: status says isolated by isolate" \
	status_is 'd["state"] == "isolated" and d["policy"] == "isolate"'
probes isolate "restarted after SIGKILL" 'cut|mail'
check_exit 0 "restore after restart returns 0" ctl restore
check "restored after restart: no killswitch rules" ks_tables_inactive
check "restored after restart: web v4 from lan reachable" tcp_echo lan 192.0.2.80 80

# --- who may change the state ----------------------------------------------------------------
check_exit 1 "non-member: isolate refused (exit 1)" ctl_as_nobody isolate --reason "not allowed"
check "non-member: state unchanged (no rules)" ks_tables_inactive
check "non-member: status --json still normal" status_is 'd["state"] == "normal"'
check_exit 0 "non-member: status works (exit 0)" ctl_as_nobody status
check_exit 0 "non-member: status --json works (exit 0)" ctl_as_nobody --json status
check_exit 1 "non-member: reload refused (exit 1)" ctl_as_nobody reload
ctl isolate --reason "e2e: root isolates" >/dev/null 2>&1
check_exit 1 "non-member: restore refused (exit 1)" ctl_as_nobody restore
check "non-member: isolation still in force" status_is 'd["state"] == "isolated"'
check_not "non-member: web v4 from lan still cut" tcp_echo lan 192.0.2.80 80
ctl restore >/dev/null 2>&1

getent group killswitch >/dev/null || groupadd -r killswitch || die "groupadd -r killswitch"
ks_gid=$(getent group killswitch | cut -d: -f3)
check_exit 0 "member of group killswitch: isolate allowed (exit 0)" ctl_as_member isolate --reason "e2e: member"
check "member: status says isolated by uid 65534" \
	status_is 'd["state"] == "isolated" and (d.get("uid") == 65534 or d["user"] in ("nobody", "uid 65534"))'
check_not "member: web v4 from lan cut" tcp_echo lan 192.0.2.80 80
check_exit 0 "member: restore allowed (exit 0)" ctl_as_member restore
check "member: restored, no killswitch rules" ks_tables_inactive

# --- reload ----------------------------------------------------------------------------------
policy=$KS_CONF/policies/isolate.policy
cp "$policy" "$KS_TMP/isolate.policy.good"
check_exit 0 "isolate before reload tests" ctl isolate --reason "e2e: reload"
bad_line=$(($(wc -l <"$policy") + 1))
echo 'Ports=tcp:70000' >>"$policy"
# And a new file, broken: an invalid Address= (no second, false "has no Address=" for it).
printf '[Uplinks]\nInterface=wan0\n[Gateway a]\nAddress=203.0.113.7/24\nPorts=tcp:25\n' \
	>"$KS_CONF/policies/new.policy"
reload_out=$(ctl reload 2>&1)
reload_rc=$?
check "reload of a broken active policy fails (exit 1, got $reload_rc)" test "$reload_rc" -eq 1
check "reload failure names isolate.policy:$bad_line:" contains "$reload_out" "isolate.policy:$bad_line:"
check "reload failure says per file what is in use" contains "$reload_out" \
	"2 policy files could not be loaded: isolate.policy (its earlier version stays in use), new.policy (not loaded: there is no earlier version)"
check "reload failure: the invalid Address= is reported" contains "$reload_out" \
	"new.policy:4: Address: \"203.0.113.7/24\": host bits set after the prefix"
check "reload failure: no false \"has no Address=\" after it" not_matches "$reload_out" "has no Address="
rm -f "$KS_CONF/policies/new.policy"
check "after failed reload: still isolated by isolate" status_is 'd["state"] == "isolated" and d["policy"] == "isolate"'
probes isolate "after failed reload" 'cut|mail|sip'
policies_out=$(ctl policies 2>&1)
check "after failed reload: policies lists isolate and mailonly" contains "$policies_out" isolate mailonly
cp "$KS_TMP/isolate.policy.good" "$policy"
check_exit 0 "reload of the repaired policy returns 0" ctl reload
# A policy that is a link to a file of secrets (mis-named, or config management gone wrong): its
# errors, which every user may read (Policies), quote no line whole and stop after 20 problems.
{
	for i in $(seq 30); do
		printf 'user%02d:$6$0123456789abcdefghijklmnopqrstuvwxyz:SECRET%02d:20228:0:99999:7:::\n' "$i" "$i"
	done
	printf 'S%02d\n' $(seq 31 40)
} >"$KS_TMP/shadow"
chmod 0600 "$KS_TMP/shadow"
ln -s "$KS_TMP/shadow" "$KS_CONF/policies/link.policy"
check_exit 1 "reload with a link to a file of secrets fails (exit 1)" ctl reload
policies_out=$(ctl_as_nobody policies 2>&1)
check "policies (any user): the link's errors quote no secret" not_matches "$policies_out" "SECRET|S3[1-9]|S40"
check "policies (any user): at most 20 problems for the file, then how many more" eval '
	[ "$(grep -c "^$KS_CONF/policies/link.policy:[0-9]*: " <<<"$policies_out")" -eq 20 ] &&
	grep -qF "$KS_CONF/policies/link.policy: ... and 21 more problems" <<<"$policies_out"'
rm -f "$KS_CONF/policies/link.policy"
check_exit 0 "reload without the link returns 0" ctl reload
# A good edit of the policy in force is applied at once: drop the phone gateway.
write_lab_policy isolate --no-phone
check_exit 0 "reload of an edited active policy (no phone) returns 0" ctl reload
probes mailonly "after reload without phone" 'cut|mail|sip'
cp "$KS_TMP/isolate.policy.good" "$policy"
check_exit 0 "reload back to the lab policy returns 0" ctl reload
check "after reload back: SIP udp/5060 reachable again" udp_echo lan 203.0.113.5 5060

# --- the site's own firewall still wins ------------------------------------------------------
n_gw nft -f - <<'EOF' || die "loading the site firewall table"
table inet site {
	chain forward { type filter hook forward priority 0; ip daddr 203.0.113.25 tcp dport 25 drop; }
}
EOF
check_not "site firewall: drops forwarded mail v4 (normal)" tcp_echo lan 203.0.113.25 25
check_exit 0 "isolate with a site firewall in place returns 0" ctl isolate --reason "e2e: site firewall"
check_not "isolated + site firewall: killswitch does not re-open forwarded mail v4" tcp_echo lan 203.0.113.25 25
check "isolated + site firewall: mail v6 from lan reachable" tcp_echo lan 2001:db8:25::25 25
check "isolated + site firewall: mail v4 from gw reachable" tcp_echo gw 203.0.113.25 25
check_exit 0 "restore with a site firewall in place returns 0" ctl restore
n_gw nft delete table inet site || die "removing the site firewall table"

# --- switching policy while isolated ---------------------------------------------------------
check_exit 0 "isolate mailonly while isolated returns 0" ctl isolate mailonly --reason "e2e: switch"
check "switched: status says isolated by mailonly" status_is 'd["state"] == "isolated" and d["policy"] == "mailonly"'
check "switched: table inet killswitch in force" ks_table_active
probes mailonly "switched to mailonly" 'cut|mail|sip|local'

# --- the same policy again (audit M1): nothing changes, like systemctl start on a running unit ---
since=$(status_get 'd["since"]')
sleep 2         # since counts whole seconds: a reset would show
out=$(ctl isolate mailonly --reason "e2e: to be sure" 2>&1)
rc=$?
check "again: isolate mailonly exits 0 (got $rc)" test "$rc" -eq 0
check "again: says 'Already isolated with policy mailonly since', with the reason in force" \
	contains "$out" "Already isolated with policy mailonly since" "e2e: switch"
check "again: since, reason and policy are those of the isolation in force" \
	status_is 'd["since"] == "'"$since"'" and d["reason"] == "e2e: switch" and d["policy"] == "mailonly"'
check_not "again: no switch mailonly->mailonly in the history" \
	history_has 'e["action"] == "switch" and e["policy"] == e["previous_policy"]'
check "again: recorded as isolate-again with its reason" \
	history_has 'e["action"] == "isolate-again" and e["reason"] == "e2e: to be sure"'
probes mailonly "isolated again with mailonly" 'cut|mail|sip|local'
check_exit 0 "restore after switch returns 0" ctl restore
check "restored after switch: no killswitch rules" ks_tables_inactive
probes normal "restored after switch" 'cut|sip'

# --- the client and the socket ---------------------------------------------------------------
check_exit 2 "killswitchctl: unknown verb is a usage error (exit 2)" ctl frobnicate
check_exit 3 "killswitchctl: no agent at the socket (exit 3)" \
	timeout 5 "$KILLSWITCHCTL" --socket "$KS_TMP/run/nothing.sock" status
printf 'this is not json\0' | timeout 3 socat -t 1 - "UNIX-CONNECT:$KS_SOCK" >/dev/null 2>&1
printf '{"method":"io.killswitch.Status"' | timeout 3 socat -t 0.2 - "UNIX-CONNECT:$KS_SOCK" >/dev/null 2>&1
check "garbage and unfinished requests: agent still serves status" status_is 'd["state"] == "normal"'

# --- the end ---------------------------------------------------------------------------------
check "foreign table inet other is intact at the end" foreign_intact
agent_stop TERM
check "SIGTERM while normal: agent exits 0" test "$AGENT_EXIT" -eq 0
check "the host's own nftables ruleset is unchanged" host_ruleset_intact

[ "$KS_FAILED" -eq 0 ] || agent_log_tail
summary
