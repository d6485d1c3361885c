#!/bin/bash
# SPDX-License-Identifier: MIT
#
# End-to-end test of issue 3 (isolation that holds in a real incident) with real packets in the
# namespace lab of lib.sh: long-lived flows stop (and, with Reject=tcp, get a reset), link upkeep
# and ICMP errors keep the gateways reachable, no lockout of the caller's SSH session, fail-closed
# across SIGKILL, reboot and a corrupt state file, a refused apply keeps the previous state,
# switching policies never leaks a packet, and a flowtable cannot carry a cut flow on.
#
# Checks of features that were still being implemented when this test was written carry a tag
# in their description: [Reject], [ND/DHCP], [ICMP errors], [Ping], [hostnames].
#
# Every check prints "PASS: ..." or "FAIL: ..."; the last line is a summary. Exit 0 if all passed.
# Run as root: tests/e2e/test-incident.sh   (KILLSWITCHD, KILLSWITCHCTL: see lib.sh)

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ks_init

[ -x "$KILLSWITCHD" ] || die "no agent at $KILLSWITCHD (build: meson setup build && meson compile -C build)"
[ -x "$KILLSWITCHCTL" ] || die "no client at $KILLSWITCHCTL"

# ---------------------------------------------------------------------------------------------
# Helpers of this test.

# tcp_refused_fast NS ADDR PORT — a connection attempt is refused (reset, ICMP) within 5 s: the
# application fails fast instead of hanging until its timeout. A cut that only drops never
# refuses: the attempt hangs, through SYN retransmits, until the socket's 10 s timeout.
tcp_refused_fast() {
	in_ns "$1" python3 -c '
import socket, sys, time
a, p = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(10)
t = time.monotonic()
try:
    s.connect((a, p))
    print("connected: not cut at all")
    sys.exit(1)
except (ConnectionRefusedError, ConnectionResetError, PermissionError) as e:
    dt = time.monotonic() - t
    print("%s after %.3f s" % (e, dt))
    sys.exit(0 if dt < 5 else 1)
except OSError as e:
    print("%s after %.3f s (no reset: the caller hangs)" % (e, time.monotonic() - t))
    sys.exit(1)' "$2" "$3"
}

# udp_refused NS ADDR PORT — a datagram to a closed port gets its ICMP port unreachable back.
udp_refused() {
	in_ns "$1" python3 -c '
import socket, sys
a, p = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
s.connect((a, p))
try:
    s.send(b"x")
    s.recv(100)
    print("got an answer")
except ConnectionRefusedError:
    sys.exit(0)
except OSError as e:
    print("no ICMP error came back: %s" % e)
sys.exit(1)' "$2" "$3"
}

session_gone() { ! session_alive "$1"; }
log_has() { grep -qF -- "$1" "$KS_LOG" || { echo "no \"$1\" in the agent log"; return 1; }; }
gw_ruleset_empty() { [ -z "$(n_gw nft list ruleset 2>&1)" ] || { n_gw nft list ruleset | head; return 1; }; }
ctl_ssh() { SSH_CONNECTION=$1 ctl "${@:2}"; }

# Are we isolated with POLICY, the rules in the kernel, web cut and mail reachable?
isolated_with() { # LABEL POLICY
	check "$1: status --json says isolated with $2" status_is "d['state'] == 'isolated' and d['policy'] == '$2'"
	check "$1: table inet killswitch is in force" ks_table_active
	check_many <<EOF
- $1: web v4 from lan cut         | tcp_echo lan 192.0.2.80 80
- $1: web v6 from lan cut         | tcp_echo lan 2001:db8:80::80 80
+ $1: mail v4 from lan reachable  | tcp_echo lan 203.0.113.25 25
+ $1: mail v6 from lan reachable  | tcp_echo lan 2001:db8:25::25 25
EOF
}

# ---------------------------------------------------------------------------------------------
note "lab: namespaces ${KS_PREFIX}{lan,gw,inet,mgmt}; agent $KILLSWITCHD"
lab_create
# An "SSH server" on the gateway's wan0 address, for the [Management] checks.
_tcp_server gw 198.51.100.1 22
wait_until 5 tcp_echo inet 198.51.100.1 22 || die "gw tcp/22 not reachable from inet"

write_lab_policy isolate
write_lab_policy mailonly --no-phone
# pinger: the lab policy, and the phone gateway also answers pings.
write_lab_policy pinger
sed -i 's/^\[Gateway phone\]$/&\nPing=yes/' "$KS_CONF/policies/pinger.policy"
# mgmt: the lab policy and the admins' jump host behind wan0 (default Ports=tcp:22).
write_lab_policy mgmt
printf '\n[Management]\nAddress=198.51.100.2\n' >>"$KS_CONF/policies/mgmt.policy"
# named: gateways given by host name, resolved by the agent in gw through /etc/netns/GW/hosts
# (bind-mounted over /etc/hosts by ip netns exec; lab_destroy removes it).
mkdir -p "/etc/netns/$NS_GW"
cat >"/etc/netns/$NS_GW/hosts" <<'EOF'
127.0.0.1 localhost
::1 localhost
203.0.113.25 mail.ks-lab.test
2001:db8:25::25 mail.ks-lab.test
203.0.113.5 phone.ks-lab.test
EOF
cat >"$KS_CONF/policies/named.policy" <<'EOF'
[Policy]
Description=Lab: gateways by host name

[Uplinks]
Interface=wan0 wan1

[Gateway phone]
Address=phone.ks-lab.test
Ports=udp:5060

[Gateway mail]
Address=mail.ks-lab.test
Ports=tcp:25
EOF

agent_start || die "killswitchd did not start"
check "start: status --json says normal" status_is 'd["state"] == "normal"'

# --- 1. long-lived flows stop when the isolation begins -----------------------------------------
session_open web lan 192.0.2.80 80 || die "opening a web v4 session"
session_open web6 lan 2001:db8:80::80 80 || die "opening a web v6 session"
session_open mail lan 203.0.113.25 25 || die "opening a mail v4 session"
check "flow: web v4 session echoes before the isolation" session_echo web
check "flow: web v6 session echoes before the isolation" session_echo web6
check "flow: mail v4 session echoes before the isolation" session_echo mail
check_exit 0 "flow: isolate returns 0" ctl isolate --reason "e2e: incident 3"
check_not "flow: the web v4 session (over wan0) stops at once" session_echo web
check_not "flow: the web v6 session (over wan1) stops at once" session_echo web6
check "flow: the mail v4 session goes on" session_echo mail
# Reject=tcp (the default): the LAN side gets a reset, it does not wait for its timeout.
check "[Reject] flow: the cut web v4 session is reset (socat ends)" wait_until 10 session_gone web
check "[Reject] flow: the cut web v6 session is reset (socat ends)" wait_until 10 session_gone web6
check "[Reject] new web v4 connection from lan refused at once (within 5 s)" tcp_refused_fast lan 192.0.2.80 80
check "[Reject] new web v6 connection from lan refused at once (within 5 s)" tcp_refused_fast lan 2001:db8:80::80 80
check "[Reject] new web v4 connection from gw itself refused at once (within 5 s)" tcp_refused_fast gw 192.0.2.80 80
session_close web
session_close web6
session_close mail

# --- 2. the gateways stay reachable: neighbour discovery, ICMP errors, ping ----------------------
for ns in gw inet; do
	in_ns $ns ip -4 neigh flush all
	in_ns $ns ip -6 neigh flush all
done
check_many <<'EOF'
+ neigh flushed: mail v4 from lan reachable (ARP)                       | tcp_echo lan 203.0.113.25 25
+ [ND/DHCP] neigh flushed: mail v6 from lan reachable (ND on wan0)      | tcp_echo lan 2001:db8:25::25 25
+ [ND/DHCP] neigh flushed: mail v6 from gw reachable (ND on wan0)       | tcp_echo gw 2001:db8:25::25 25
+ neigh flushed: SIP udp/5060 from lan reachable (ARP on wan1)          | udp_echo lan 203.0.113.5 5060
- neigh flushed: web v4 from lan still cut                              | tcp_echo lan 192.0.2.80 80
- neigh flushed: web v6 from lan still cut                              | tcp_echo lan 2001:db8:80::80 80
EOF
check "[ND/DHCP] neigh flushed: gw has a neighbour entry for the v6 next hop on wan0" \
	eval "n_gw ip -6 neigh show dev wan0 | grep -E '^2001:db8:100::2 .*lladdr'"
# Once more after the entries were re-learnt and flushed again, from the internet side first.
n_inet ip -6 neigh flush all
check "[ND/DHCP] neigh flushed in inet only: mail v6 from lan reachable" tcp_echo lan 2001:db8:25::25 25
# An ICMP error that belongs to an allowed flow: RTP range udp:10000-20000, nothing listens on 10001.
check "[ICMP errors] port unreachable of an allowed flow (SIP udp/10001) reaches lan" \
	udp_refused lan 203.0.113.5 10001
check "[ICMP errors] port unreachable of an allowed flow reaches gw itself" udp_refused gw 203.0.113.5 10001
check_not "no ping: mail host (no Ping=) not pingable" ping_ok lan 203.0.113.25
check_exit 0 "[Ping] isolate pinger (phone with Ping=yes) returns 0" ctl isolate pinger --reason "e2e: ping"
check_many <<'EOF'
+ [Ping] phone gateway pingable from lan           | ping_ok lan 203.0.113.5
+ [Ping] phone gateway pingable from gw            | ping_ok gw 203.0.113.5
- [Ping] mail host (no Ping=) not pingable         | ping_ok lan 203.0.113.25
- [Ping] web not pingable                          | ping_ok lan 192.0.2.80
+ [Ping] SIP udp/5060 still reachable              | udp_echo lan 203.0.113.5 5060
EOF
check_exit 0 "restore after the ping checks returns 0" ctl restore

# --- 3. host names in Address= ------------------------------------------------------------------
check "[hostnames] policy named (Address=mail.ks-lab.test) is loaded" eval \
	'ctl --json policies | python3 -c "import json, sys; sys.exit(\"named\" not in [p[\"name\"] for p in json.load(sys.stdin)[\"policies\"]])"'
check_exit 0 "[hostnames] isolate named returns 0" ctl isolate named --reason "e2e: names"
check_many <<'EOF'
+ [hostnames] mail v4 (resolved) reachable     | tcp_echo lan 203.0.113.25 25
+ [hostnames] mail v6 (resolved) reachable     | tcp_echo lan 2001:db8:25::25 25
+ [hostnames] SIP udp/5060 (resolved) reachable | udp_echo lan 203.0.113.5 5060
- [hostnames] web v4 cut                       | tcp_echo lan 192.0.2.80 80
EOF
check "[hostnames] status --json resolved: mail.ks-lab.test = 203.0.113.25 and 2001:db8:25::25" \
	status_is '[sorted(h["addresses"]) for h in d["resolved"] if h["name"] == "mail.ks-lab.test" and h["gateway"] == "mail"] == [["2001:db8:25::25", "203.0.113.25"]]'
named_status=$(ctl status 2>&1)
check "[hostnames] plain status shows the resolved addresses" contains "$named_status" mail.ks-lab.test 203.0.113.25 2001:db8:25::25
named_show=$(ctl show named 2>&1)
check "[hostnames] show named has the resolved addresses" contains "$named_show" 203.0.113.25 2001:db8:25::25 203.0.113.5
check_exit 0 "[hostnames] restore returns 0" ctl restore
cat >"$KS_CONF/policies/unresolved.policy" <<'EOF'
[Uplinks]
Interface=wan0

[Gateway mail]
Address=no-such-host.ks-lab.test
EOF
reload_out=$(ctl reload 2>&1)
reload_rc=$?
check "[hostnames] reload with a name that does not resolve fails (exit 1, got $reload_rc)" test "$reload_rc" -eq 1
check "[hostnames] the failure names unresolved.policy:5:" contains "$reload_out" "unresolved.policy:5:"
check_exit 1 "[hostnames] isolate unresolved is refused (exit 1)" ctl isolate unresolved
check "[hostnames] after the refusal: still normal, no rules" ks_tables_inactive
rm -f "$KS_CONF/policies/unresolved.policy"
ctl reload >/dev/null 2>&1
ctl restore >/dev/null 2>&1

# --- 4. no lockout: the caller's SSH session ----------------------------------------------------
ssh_wan="198.51.100.2 50000 198.51.100.1 22"
lock_out=$(ctl_ssh "$ssh_wan" isolate --reason "e2e: lockout" 2>&1)
lock_rc=$?
check "lockout: isolate from an SSH client behind wan0 is refused (exit 1, got $lock_rc)" test "$lock_rc" -eq 1
check "lockout: the message names the client 198.51.100.2 and the uplink wan0" contains "$lock_out" 198.51.100.2 wan0
check "lockout: state unchanged (status normal)" status_is 'd["state"] == "normal"'
check "lockout: state unchanged (no rules)" ks_tables_inactive
check "lockout: web v4 from lan still reachable" tcp_echo lan 192.0.2.80 80
check_exit 0 "lockout: an SSH client on the LAN (10.0.1.2) is not in the way (exit 0)" \
	ctl_ssh "10.0.1.2 50000 10.0.1.1 22" isolate --reason "e2e: ssh from lan"
check_exit 0 "lockout: restore with SSH_CONNECTION set returns 0" ctl_ssh "$ssh_wan" restore
check_exit 0 "lockout: with --force the isolation goes ahead (exit 0)" \
	ctl_ssh "$ssh_wan" isolate --force --reason "e2e: forced"
check "lockout --force: isolated with isolate" status_is 'd["state"] == "isolated" and d["policy"] == "isolate"'
check_not "lockout --force: web v4 from lan cut" tcp_echo lan 192.0.2.80 80
check_exit 0 "lockout: restore after --force returns 0" ctl restore
check_exit 0 "[Management] isolate mgmt from the managed client needs no --force (exit 0)" \
	ctl_ssh "$ssh_wan" isolate mgmt --reason "e2e: management"
check_many <<'EOF'
+ [Management] the jump host's SSH to gw (198.51.100.1:22) reachable | tcp_echo inet 198.51.100.1 22
- [Management] the jump host on another port (gw:2222) cut           | tcp_echo inet 198.51.100.1 2222
- [Management] web v4 from lan cut                                   | tcp_echo lan 192.0.2.80 80
+ [Management] mail v4 from lan reachable                            | tcp_echo lan 203.0.113.25 25
EOF
check_exit 1 "lockout: switching from mgmt to mailonly from that client is refused (exit 1)" \
	ctl_ssh "$ssh_wan" isolate mailonly
check "lockout: after the refused switch still isolated with mgmt" \
	status_is 'd["state"] == "isolated" and d["policy"] == "mgmt"'
check_exit 0 "lockout: restore returns 0" ctl restore

# --- 5. SIGKILL while isolated ------------------------------------------------------------------
check_exit 0 "SIGKILL: isolate returns 0" ctl isolate --reason "e2e: before SIGKILL"
since=$(status_get 'd["since"]')
agent_stop KILL
isolated_with_no_agent() {
	check "$1: table inet killswitch still in force" ks_table_active
	check_many <<EOF
- $1: web v4 from lan cut         | tcp_echo lan 192.0.2.80 80
- $1: web v6 from gw cut          | tcp_echo gw 2001:db8:80::80 80
+ $1: mail v4 from lan reachable  | tcp_echo lan 203.0.113.25 25
+ $1: mail v6 from lan reachable  | tcp_echo lan 2001:db8:25::25 25
EOF
}
isolated_with_no_agent "agent SIGKILLed"
agent_start || die "killswitchd did not restart after SIGKILL"
check "restarted after SIGKILL: same policy, reason and since ($since)" \
	status_is "d['state'] == 'isolated' and d['policy'] == 'isolate' and d['reason'] == 'e2e: before SIGKILL' and d['since'] == '$since'"
isolated_with "restarted after SIGKILL" isolate
check_exit 0 "restarted after SIGKILL: restore returns 0" ctl restore
check "restarted after SIGKILL: restored, no rules" ks_tables_inactive
check "restarted after SIGKILL: web v4 from lan reachable" tcp_echo lan 192.0.2.80 80

# --- 6. simulated reboot: the kernel forgets everything, the state directory stays -------------
check_exit 0 "reboot: isolate mailonly returns 0" ctl isolate mailonly --reason "e2e: before reboot"
since=$(status_get 'd["since"]')
agent_stop KILL
n_gw nft flush ruleset
n_gw conntrack -F >/dev/null 2>&1
check "reboot: the gw ruleset is empty (the kernel forgot the isolation)" gw_ruleset_empty
# Boot: the agent starts before any traffic flows.
agent_start || die "killswitchd did not start after the simulated reboot"
check "reboot: status says isolated with mailonly, same reason and since" \
	status_is "d['state'] == 'isolated' and d['policy'] == 'mailonly' and d['reason'] == 'e2e: before reboot' and d['since'] == '$since'"
isolated_with "reboot" mailonly
check_not "reboot: SIP (not kept by mailonly) cut" udp_echo lan 203.0.113.5 5060
check_exit 0 "reboot: restore returns 0" ctl restore
check "reboot: restored, web v4 from lan reachable" tcp_echo lan 192.0.2.80 80

# --- 7. a corrupt or truncated state file: isolated with the default policy, and why -----------
for variant in garbage empty; do
	agent_stop TERM
	n_gw nft flush ruleset
	case $variant in
	garbage) echo garbage >"$KS_STATE/state.json" ;;
	empty) : >"$KS_STATE/state.json" ;;
	esac
	log_lines=$(wc -l <"$KS_LOG")
	agent_start || die "killswitchd did not start with a $variant state file"
	check "state file $variant: agent starts isolated with the default policy" \
		status_is 'd["state"] == "isolated" and d["policy"] == "isolate"'
	check "state file $variant: status says why (reason mentions the state file)" \
		status_is '"state file" in (d["reason"] or "")'
	check "state file $variant: the agent log says the state file is corrupt" \
		eval "tail -n +$((log_lines + 1)) '$KS_LOG' | grep -qiE 'corrupt|unreadable'"
	isolated_with "state file $variant" isolate
	check_exit 0 "state file $variant: restore returns 0" ctl restore
	check "state file $variant: restored, web reachable" tcp_echo lan 192.0.2.80 80
done

# --- 8. a policy that cannot be applied: an error, and the previous state stays ---------------
# A kernel refusal could not be provoked in this lab: the agent's objects are all valid, and a
# memory cgroup (cgroup v1 here, no kmem limit) stalls the agent in a page fault rather than
# making the kernel answer ENOMEM. What is checked: a policy the agent cannot apply (its file is
# broken) is an error to the caller, and the isolation in force stays exactly as it was.
check_exit 0 "unappliable: isolate (isolate) returns 0" ctl isolate --reason "e2e: before refusal"
printf '[Uplinks]\nInterface=wan0\n\n[Gateway x]\nAddress=203.0.113.7/24\n' >"$KS_CONF/policies/broken.policy"
ctl reload >/dev/null 2>&1
refuse_out=$(ctl isolate broken --reason "e2e: refused" 2>&1)
refuse_rc=$?
check "unappliable: isolate broken fails (exit 1, got $refuse_rc)" test "$refuse_rc" -eq 1
check "unappliable: the error names the problem (broken.policy:5:)" contains "$refuse_out" "broken.policy:5:"
check "unappliable: status still isolate with the previous reason" \
	status_is 'd["state"] == "isolated" and d["policy"] == "isolate" and d["reason"] == "e2e: before refusal"'
isolated_with "unappliable: the previous isolation stays" isolate
check "unappliable: SIP (kept by isolate) still reachable" udp_echo lan 203.0.113.5 5060
rm -f "$KS_CONF/policies/broken.policy"
ctl reload >/dev/null 2>&1
note "SKIP a policy the kernel refuses: no real kernel refusal found for valid policies in this lab"
check_exit 0 "unappliable: restore returns 0" ctl restore

# --- 9. switching policies under a continuous probe: not one packet of a cut peer -------------
rx_counter_add inet leak_udp 'ip daddr 192.0.2.80 udp dport 7000' || die "rx counter leak_udp"
rx_counter_add inet leak_tcp 'ip daddr 192.0.2.80 tcp dport 7001' || die "rx counter leak_tcp"
rx_counter_add inet leak_gw6 'ip6 daddr 2001:db8:80::80 udp dport 7000' || die "rx counter leak_gw6"
n_gw nft add table inet ks_rx_in '{ chain in { type filter hook input priority 100; udp dport 7002 counter; }; }' ||
	die "rx counter in gw"
gw_in_count() { n_gw nft list chain inet ks_rx_in in | awk '/udp dport 7002/ { print $(NF - 2); exit }'; }
start_streams() {
	stream_start lan_udp lan udp 192.0.2.80 7000 0.002
	stream_start lan_tcp lan tcp 192.0.2.80 7001 0.01
	stream_start gw_udp6 gw udp 2001:db8:80::80 7000 0.002
	stream_start inet_udp inet udp 198.51.100.1 7002 0.002
}
stop_streams() {
	sent_lan_udp=$(stream_stop lan_udp)
	sent_lan_tcp=$(stream_stop lan_tcp)
	sent_gw_udp6=$(stream_stop gw_udp6)
	sent_inet_udp=$(stream_stop inet_udp)
}
counts() { echo "$(rx_count inet leak_udp) $(rx_count inet leak_tcp) $(rx_count inet leak_gw6) $(gw_in_count)"; }
# The probes can see a leak: without isolation every stream arrives.
all_arrive() { local u t g i; read -r u t g i <<<"$(counts)"; [ "$u" -gt 0 ] && [ "$t" -gt 0 ] && [ "$g" -gt 0 ] && [ "$i" -gt 0 ]; }
start_streams
wait_until 5 all_arrive
stop_streams
read -r c_udp c_tcp c_gw6 c_in <<<"$(counts)"
check "switch probe self-test: streams arrive while normal (udp $c_udp, tcp $c_tcp, gw v6 $c_gw6, inbound $c_in)" \
	test "$c_udp" -gt 0 -a "$c_tcp" -gt 0 -a "$c_gw6" -gt 0 -a "$c_in" -gt 0
check_exit 0 "switch: isolate returns 0" ctl isolate --reason "e2e: switching"
sleep 0.2
read -r b_udp b_tcp b_gw6 b_in <<<"$(counts)"
start_streams
sleep 0.2
switch_failed=0
for i in $(seq 1 15); do
	ctl isolate mailonly --reason "e2e: switch $i" >/dev/null 2>&1 || switch_failed=$((switch_failed + 1))
	sleep 0.02
	ctl isolate isolate --reason "e2e: switch $i back" >/dev/null 2>&1 || switch_failed=$((switch_failed + 1))
	sleep 0.02
done
sleep 0.2
stop_streams
sleep 0.2
read -r a_udp a_tcp a_gw6 a_in <<<"$(counts)"
check "switch: 30 switches between isolate and mailonly all returned 0 ($switch_failed failed)" test "$switch_failed" -eq 0
note "switch: sent udp $sent_lan_udp, tcp $sent_lan_tcp, gw v6 $sent_gw_udp6, inbound $sent_inet_udp"
check "switch: the senders ran (lan udp sent $sent_lan_udp)" test "${sent_lan_udp:-0}" -gt 50
check "switch: not one lan->web udp datagram got through ($((a_udp - b_udp)))" test "$a_udp" -eq "$b_udp"
check "switch: not one lan->web tcp SYN got through ($((a_tcp - b_tcp)))" test "$a_tcp" -eq "$b_tcp"
check "switch: not one gw->web v6 udp datagram got through ($((a_gw6 - b_gw6)))" test "$a_gw6" -eq "$b_gw6"
check "switch: not one inet->gw udp datagram got through ($((a_in - b_in)))" test "$a_in" -eq "$b_in"
check_exit 0 "switch: restore returns 0" ctl restore
n_gw nft delete table inet ks_rx_in

# --- 10. a flowtable cannot carry a cut flow on -------------------------------------------------
if ! n_gw nft -f - <<'EOF' 2>"$KS_TMP/flowtable.err"
table inet site {
	flowtable ft { hook ingress priority 0; devices = { lan0, wan0 }; }
	chain forward { type filter hook forward priority 0; policy accept; meta l4proto tcp flow add @ft; }
}
EOF
then
	note "SKIP flowtable: this kernel has no flowtables (CONFIG_NF_FLOW_TABLE): $(head -n 1 "$KS_TMP/flowtable.err")"
else
	session_open ft lan 192.0.2.80 80 || die "opening the web session for the flowtable"
	check "flowtable: web v4 session echoes (normal)" session_echo ft
	session_echo ft >/dev/null
	offloaded() { n_gw conntrack -L -p tcp --dport 80 2>/dev/null | grep -E 'dst=192\.0\.2\.80 .*OFFLOAD'; }
	check "flowtable: the web v4 flow is offloaded ([OFFLOAD] in conntrack -L)" wait_until 10 offloaded
	check "flowtable: the offloaded session still echoes" session_echo ft
	check_exit 0 "flowtable: isolate returns 0" ctl isolate --reason "e2e: flowtable"
	check_not "flowtable: the offloaded web v4 session stops at once" session_echo ft
	sleep 1
	check_not "flowtable: the offloaded web v4 session is still cut a second later" session_echo ft
	check_not "flowtable: no offloaded web flow left in conntrack" offloaded
	check "flowtable: the agent logged that it took flows off the fast path" log_has "offloaded flow"
	check "flowtable: mail v4 from lan reachable" tcp_echo lan 203.0.113.25 25
	session_close ft
	check_exit 0 "flowtable: restore returns 0" ctl restore
	n_gw nft delete table inet site || die "removing the site table"
fi

# --- reload of a changed policy while isolated: kept flows go on ------------------------------
# A rebuild replaces the table; the kernel may make new rules live a moment before new interval
# sets answer, and a miss in the outbound tail is a TCP reset. The agent holds the uplinks for the
# rebuild and switches to the policy in a second transaction: a kept flow may lose a packet
# (retransmitted), never be reset. Prefixes and port ranges make interval sets.
write_ranges_policy() { # EXTRA(0|1)
	{
		printf '[Uplinks]\nInterface=wan0 wan1\n\n'
		printf '[Gateway mail]\nAddress=203.0.113.16/28 2001:db8:25::/64\nPorts=tcp:20-30 tcp:465\n'
		[ "$1" = 1 ] && printf '\n[Gateway extra]\nAddress=198.18.0.0/15\nPorts=tcp:1000-2000\n'
	} >"$KS_CONF/policies/ranges.policy"
}
write_ranges_policy 0
ctl reload >/dev/null || fail "reload with the ranges policy"
check_exit 0 "rebuild: isolate with the ranges policy returns 0" ctl isolate ranges --reason "e2e: rebuild"
# A request/response stream to the mail relay (kept): every 2 ms 512 bytes out, the echo back.
n_lan python3 - 203.0.113.25 25 "$KS_TMP/stream.out" <<'PY' &
import socket, sys, time
host, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((host, port), timeout=3)
n, deadline, result = 0, time.monotonic() + 6, "ok"
try:
    while time.monotonic() < deadline:
        s.sendall(b"x" * 511 + b"\n")
        got = 0
        while got < 512:
            chunk = s.recv(512 - got)
            if not chunk:
                raise ConnectionResetError("closed")
            got += len(chunk)
        n += 1
        time.sleep(0.002)
except (ConnectionResetError, BrokenPipeError) as e:
    result = "reset: %s" % e
except socket.timeout:
    result = "stalled for 3 s"
open(out, "w").write("%s after %d round trips\n" % (result, n))
PY
STREAM_PID=$!
sleep 0.5
reloads_ok=1
for i in 1 2 3 4 5 6 7 8; do
	write_ranges_policy $((i % 2))
	ctl reload >/dev/null || reloads_ok=0
	sleep 0.25
done
wait "$STREAM_PID"
check "rebuild: 8 reloads of a changed policy while isolated all succeed" test "$reloads_ok" = 1
check "rebuild: the kept stream to the mail relay went on through them ($(cat "$KS_TMP/stream.out" 2>/dev/null))" \
	grep -q '^ok after' "$KS_TMP/stream.out"
check "rebuild: still isolated with the ranges policy" status_is 'd["state"] == "isolated" and d["policy"] == "ranges"'
check_not "rebuild: web v4 from lan still cut" tcp_echo lan 192.0.2.80 80
check_exit 0 "rebuild: restore returns 0" ctl restore --reason "e2e: rebuild done"
rm -f "$KS_CONF/policies/ranges.policy"
ctl reload >/dev/null || fail "reload without the ranges policy"

# --- the end ---------------------------------------------------------------------------------
agent_stop TERM
check "SIGTERM: agent exits 0" test "$AGENT_EXIT" -eq 0
check "the host's own nftables ruleset is unchanged" host_ruleset_intact

[ "$KS_FAILED" -eq 0 ] || agent_log_tail
summary
