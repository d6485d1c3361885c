#!/bin/bash
# SPDX-License-Identifier: MIT
#
# End-to-end test of issue 14 (policy v2: [Service], Local=, Direction=, matching on conntrack
# tuples through NAT) with real traffic in the lab of lib.sh, extended by lab_add_site: gw
# masquerades the LAN and DNATs the site's MX and PBX, as a real gateway does.
#
# While isolated with the hosted-site policy below: the MX stays reachable on tcp/25 from anyone
# through DNAT (v4 and v6); only the inside mail server reaches the relay, and the relay cannot
# open connections inwards (Direction=out); outbound SMTP to any other host is cut from the LAN
# and from gw itself; a packet from source port 25 reaches nothing; the PBX keeps its trunk in
# and out (signalling and RTP from the provider's /24 only); a static page on gw itself stays up.
# Ping= of a gateway with Local= keeps echo with the Local= hosts only, through masquerade, and
# only requests from the side Direction= lets open (v4 and v6), and no other ICMP type.
# The same holds with the MX named by its inside address. Behind a DNAT that changes the port
# (2525 -> 25), the MX named by its public address and port is kept, v4 and v6, with and without
# From=; named by the inside address and port it is cut (documented). killswitchd --check warns about the
# traps of issue 14 and refuses a comma in an interface list.
#
# Every check prints "PASS: ..." or "FAIL: ..."; the last line is a summary. Exit 0 if all passed.
# Run as root: tests/e2e/test-policy-v2.sh   (KILLSWITCHD, KILLSWITCHCTL: see lib.sh)

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ks_init

[ -x "$KILLSWITCHD" ] || die "no agent at $KILLSWITCHD (build: meson setup build && meson compile -C build)"
[ -x "$KILLSWITCHCTL" ] || die "no client at $KILLSWITCHCTL"

# The hosted site: PBX with its SIP trunk, MX, the mail server's relay, a notice page.
write_site_policy() { # NAME MX-ADDRESSES
	cat >"$KS_CONF/policies/$1.policy" <<EOF
[Policy]
Description=Lab: hosted site, reachable by phone and e-mail

[Uplinks]
Interface=wan0 wan1

[Service mx]
Address=$2
Ports=tcp:25

[Gateway relay]
Address=203.0.113.25 2001:db8:25::25
Ports=tcp:25 tcp:587
Local=10.0.1.10 fd00:1::10
Direction=out

[Service pbx]
Address=192.0.2.5
From=203.0.113.0/24
Ports=udp:5060 udp:10000-20000

[Gateway sip-trunk]
Address=203.0.113.0/24
Ports=udp:5060 udp:10000-20000
Local=10.0.1.5
Direction=out

[Service notice]
Address=198.51.100.1 2001:db8:100::1
Ports=tcp:8080
EOF
}


# What the site does; "+" kept, "-" cut while isolated (all of it works while normal).
site_probes() {
	cat <<'EOF'
+ MX v4 from anyone through DNAT          | tcp_echo_from inet 198.18.0.7 192.0.2.10 25
+ MX v4 from the relay (union)            | tcp_echo_from inet 203.0.113.25 192.0.2.10 25
+ MX v6 from anyone through DNAT          | tcp_echo_from inet 2001:db8:77::7 2001:db8:10::10 25
- MX address, other port DNATed to :25    | tcp_echo_from inet 198.18.0.7 192.0.2.10 2500
+ mail server -> relay v4                 | tcp_echo_from lan 10.0.1.10 203.0.113.25 25
+ mail server -> relay v6 submission      | tcp_echo_from lan fd00:1::10 2001:db8:25::25 587
+ mail server -> relay v6                 | tcp_echo_from lan fd00:1::10 2001:db8:25::25 25
- other inside host -> relay v4           | tcp_echo_from lan 10.0.1.2 203.0.113.25 25
- other inside host -> relay v6           | tcp_echo_from lan fd00:1::2 2001:db8:25::25 25
- relay opens inwards v4 (Direction=out)  | tcp_echo_from inet 203.0.113.25 10.0.1.10 587
- relay opens inwards v6 (Direction=out)  | tcp_echo_from inet 2001:db8:25::25 fd00:1::10 587
- relay from its port 587 inwards v4      | tcp_echo_from inet 203.0.113.25 10.0.1.10 8025 587
- mail server -> relay, not a relay port  | tcp_echo_from lan 10.0.1.10 203.0.113.25 8080
- outbound SMTP v4 from the mail server   | tcp_echo_from lan 10.0.1.10 192.0.2.80 25
- outbound SMTP v4 from another host      | tcp_echo_from lan 10.0.1.2 192.0.2.80 25
- outbound SMTP v6 from the LAN           | tcp_echo_from lan fd00:1::2 2001:db8:80::80 25
- outbound SMTP v4 from gw itself         | tcp_echo gw 192.0.2.80 25
- outbound SMTP v6 from gw itself         | tcp_echo gw 2001:db8:80::80 25
- from port 25 to an inside port v4       | tcp_echo_from inet 198.18.0.7 10.0.1.10 8025 25
- from port 25 to an inside port v6       | tcp_echo_from inet 2001:db8:77::7 fd00:1::10 8025 25
- from port 25 to gw v4                   | tcp_echo_from inet 203.0.113.77 198.51.100.1 2222 25
- from port 25 to gw v6                   | tcp_echo_from inet 2001:db8:77::8 2001:db8:100::1 2222 25
- an inside host's port from anyone       | tcp_echo_from inet 198.18.0.7 10.0.1.2 2222
+ SIP signalling in from the provider     | udp_echo_from inet 203.0.113.77 192.0.2.5 5060
+ RTP in from the provider                | udp_echo_from inet 203.0.113.5 192.0.2.5 16384
- SIP in from anyone else                 | udp_echo_from inet 198.18.0.7 192.0.2.5 5060
- SIP in from port 5060 to another port   | udp_echo_from inet 203.0.113.77 10.0.1.5 16385 5060
+ SIP signalling out from the PBX         | udp_echo_from lan 10.0.1.5 203.0.113.5 5060
+ RTP out from the PBX                    | udp_echo_from lan 10.0.1.5 203.0.113.5 16384
- SIP out from another inside host        | udp_echo_from lan 10.0.1.2 203.0.113.5 5060
- PBX -> provider, not a SIP port         | tcp_echo_from lan 10.0.1.5 203.0.113.5 8080
+ notice page on gw v4                    | tcp_echo_from inet 198.18.0.7 198.51.100.1 8080
+ notice page on gw v6                    | tcp_echo_from inet 2001:db8:77::7 2001:db8:100::1 8080
- web from the LAN                        | tcp_echo lan 192.0.2.80 80
- gw's other port from the internet       | tcp_echo_from inet 198.18.0.7 198.51.100.1 2222
EOF
}

# The same probes, every one expected to work (while normal).
all_work() { site_probes | sed 's/^[-+] /+ /; s/ *|/ (normal) |/'; }
# Prefix every description with a tag.
tagged() { sed "s/^\([-+]\) /\1 [$1] /"; }

lab_create
lab_add_site
# Needs a server on 10.0.1.5 udp/16385 for the "another port" probe to mean something.
_udp_server lan 10.0.1.5 16385
_tcp_server lan 10.0.1.2 2222
# Another DNAT of the MX's public address: port 2500 to another inside host's port 25. The service
# keeps 192.0.2.10 port 25 (or 10.0.1.10 port 25), never this: the address and the port are matched
# as a pair, both before DNAT or both after.
_tcp_server lan 10.0.1.2 25
n_gw nft add rule inet lab_nat pre ip daddr 192.0.2.10 tcp dport 2500 dnat ip to 10.0.1.2:25 ||
	die "adding the second DNAT rule"
_tcp_server inet 2001:db8:25::25 587
# One more internet host: probes that run side by side each bind their own source address and port.
ip -n "$NS_INET" addr add 2001:db8:77::8/128 dev lo nodad || die "adding 2001:db8:77::8"

write_site_policy site "192.0.2.10 2001:db8:10::10"
write_site_policy siteinside "10.0.1.10 fd00:1::10"
# A service by host names: its address and who may connect, resolved by the agent in gw through
# /etc/netns/GW/hosts (lab_destroy removes it), and pinned.
mkdir -p "/etc/netns/$NS_GW"
printf '127.0.0.1 localhost\n::1 localhost\n192.0.2.5 pbx.lab.example\n203.0.113.77 provider.lab.example\n' >"/etc/netns/$NS_GW/hosts"
cat >"$KS_CONF/policies/sitenames.policy" <<'EOF'
[Uplinks]
Interface=wan0 wan1

[Service pbx]
Address=pbx.lab.example
From=provider.lab.example
Ports=udp:5060 udp:10000-20000
EOF
agent_start || die "agent did not start"

note "while normal, every probe works (so a cut below is the kill switch's)"
check_many < <(all_work)

check "isolate with the hosted-site policy" ctl isolate site --reason "policy v2 test"
check_many < <(site_probes | tagged public)

check "status counts each service like a gateway" \
	status_is '[s["name"] for s in d["services"]] == ["mx", "pbx", "notice"] and d["services"][0]["packets"] > 0'
check "status keeps listing the gateways" status_is '[g["name"] for g in d["gateways"]] == ["relay", "sip-trunk"]'
history_has() {
	ctl --json history -n 50 | python3 -c '
import json, sys
entries = json.load(sys.stdin)
sys.exit(0 if any(eval(sys.argv[1]) for e in entries) else 1)' "$1"
}
check "history names what the isolation keeps" history_has \
	'e["action"] == "isolate" and e["kept"] == "gateways relay, sip-trunk; services mx, pbx, notice" and "[kept: gateways relay" in e["message"]'
check "status (text) prints the services" contains "$(ctl status)" "Services" "mx" "pbx" "notice"
show_out=$(ctl show site 2>&1)
check "show prints the services and the conntrack matches" contains "$show_out" "set site/svc_mx_v4" \
	"ct direction original ct original ip daddr . meta l4proto . ct original proto-dst @site/svc_mx_v4" \
	'counter name "site/svc_pbx"' "ct direction reply ct original ip daddr . ct original ip saddr"
# The chains of the policy, as nft lists them from the kernel and as show prints them.
policy_chains() { awk '/^\tchain site\/(in|out)bound /,/^\t}/'; }
check "nft lists the kernel's chains as show prints them" \
	diff <(n_gw nft list table inet killswitch | policy_chains) <(printf '%s\n' "$show_out" | policy_chains)

note "the MX named by its inside address: matched after DNAT on the reply tuple"
check "switch to the policy naming the MX by its inside address" ctl isolate siteinside
check_many < <(site_probes | grep -E '^[-+] (MX|from port 25|outbound SMTP)' | tagged inside)

note "a service given by host names"
check "switch to the policy naming the PBX and its provider by host name" ctl isolate sitenames
check "show says what the names resolved to" contains "$(ctl show sitenames)" \
	"# service pbx: pbx.lab.example = 192.0.2.5" "# service pbx: provider.lab.example = 203.0.113.77"
check "status names the service of each resolved name" \
	status_is '{(r["service"], r["name"]) for r in d["resolved"]} == {("pbx", "pbx.lab.example"), ("pbx", "provider.lab.example")}'
check_many <<'EOF'
+ [names] SIP in from the provider host         | udp_echo_from inet 203.0.113.77 192.0.2.5 5060
- [names] SIP in from another host of its /24   | udp_echo_from inet 203.0.113.5 192.0.2.5 5060
EOF

# The only way version 1 could keep the MX: a gateway of every address on tcp/25. The probes above
# see its holes (what this test would find with the old matching): mail out to anyone from any host,
# and anything from source port 25 to any port inside.
cat >"$KS_CONF/policies/oldway.policy" <<'EOF'
[Uplinks]
Interface=wan0 wan1

[Gateway everyone-smtp]
Address=0.0.0.0/0 ::/0
Ports=tcp:25
EOF
check "reload with the version 1 way of keeping the MX" ctl reload
check "isolate with it" ctl isolate oldway
check_many <<'EOF'
+ [v1 way] the MX is reachable                      | tcp_echo_from inet 198.18.0.7 192.0.2.10 25
+ [v1 way, the hole] outbound SMTP from any host    | tcp_echo_from lan 10.0.1.2 192.0.2.80 25
+ [v1 way, the hole] from port 25 to an inside port | tcp_echo_from inet 198.18.0.7 10.0.1.10 8025 25
EOF

check "restore" ctl restore
check_many < <(all_work | grep -E 'MX|relay|SIP' | tagged restored)

# ---------------------------------------------------------------------------------------------
note "a [Service] on gw's own address: an inside host forging that address gets nothing out"
# A WireGuard-like endpoint on gw itself, udp/51820 from anyone. Its replies leave through
# P/outbound (ct direction reply and the connection's tuple), which the forward hook reached too
# until P/forward: an inside host that sent from gw's own address and port 51820 to an internet
# host that had sent the service one datagram matched the reply direction of that connection, and
# IPv6 forwarded it (IPv4 drops a local source arriving from outside before any hook). While
# isolated nothing of it must arrive, and neither from the inside host's own address; the service
# works both ways.
cat >"$KS_CONF/policies/gwservice.policy" <<'EOF'
[Uplinks]
Interface=wan0 wan1

[Service wg]
Address=198.51.100.1 2001:db8:100::1
Ports=udp:51820
EOF
_udp_server gw 198.51.100.1 51820
_udp_server gw 2001:db8:100::1 51820
rx_counter_add inet wg_peer_v4 "ip daddr 198.18.0.7 udp dport 40000" || die "the peer's v4 counter"
rx_counter_add inet wg_peer_v6 "ip6 daddr 2001:db8:77::7 udp dport 40000" || die "the peer's v6 counter"
# udp_sent_arrived NS SRC SPORT DST DPORT COUNTER — five datagrams from SRC:SPORT (IPV6_FREEBIND,
# IP_TRANSPARENT: SRC need not be NS's address); prints how many COUNTER saw arrive.
udp_sent_arrived() {
	local before after
	before=$(rx_count inet "$6") || return 1
	# shellcheck disable=SC2016 # python, not shell
	in_ns "$1" timeout 5 python3 -c '
import socket, sys, time
src, sport, dst, dport = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
v6 = ":" in dst
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
if v6:
    s.setsockopt(socket.IPPROTO_IPV6, 78, 1)        # IPV6_FREEBIND
else:
    s.setsockopt(socket.SOL_IP, 19, 1)              # IP_TRANSPARENT (freebind is not enough to send)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((src, sport))
for i in range(5):
    s.sendto(b"ks-forged %d\n" % i, (dst, dport))
    time.sleep(0.02)' "$2" "$3" "$4" "$5" || return 1
	sleep "$KS_PROBE_WAIT"
	after=$(rx_count inet "$6") || return 1
	echo $((after - before))
}
# gw_service_rounds TAG — the peers open the service's connections (one datagram each, echoed),
# then the inside host sends as gw, and from its own address; sets ARRIVED_{V4,V6,OWN}.
gw_service_rounds() {
	check_many <<EOF
+ [$1] the service on gw answers v4 (peer port 40000) | udp_echo_from inet 198.18.0.7 198.51.100.1 51820 40000
+ [$1] the service on gw answers v6 (peer port 40000) | udp_echo_from inet 2001:db8:77::7 2001:db8:100::1 51820 40000
EOF
	sleep 0.3       # a late echo is not counted below
	ARRIVED_V6=$(udp_sent_arrived lan 2001:db8:100::1 51820 2001:db8:77::7 40000 wg_peer_v6)
	ARRIVED_V4=$(udp_sent_arrived lan 198.51.100.1 51820 198.18.0.7 40000 wg_peer_v4)
	ARRIVED_OWN=$(udp_sent_arrived lan fd00:1::2 51820 2001:db8:77::7 40000 wg_peer_v6)
}
check "reload with a service on gw's own address" ctl reload
gw_service_rounds normal
# Without the kill switch the forged IPv6 datagrams cross gw: the probe can see the hole.
check "[normal] datagrams forging gw's v6 address arrive (5 sent, ${ARRIVED_V6:-?} arrived)" \
	test "${ARRIVED_V6:-0}" -ge 1
check "[normal] datagrams from the inside host's own address arrive (5 sent, ${ARRIVED_OWN:-?} arrived)" \
	test "${ARRIVED_OWN:-0}" -ge 1
note "[normal] datagrams forging gw's v4 address: 5 sent, ${ARRIVED_V4:-?} arrived (gw's IPv4 drops them itself)"
check "isolate with the service on gw's own address" ctl isolate gwservice
dropped0=$(n_gw nft list counter inet killswitch gwservice/dropped_out | awk '$1 == "packets" { print $2 }')
gw_service_rounds isolated
dropped1=$(n_gw nft list counter inet killswitch gwservice/dropped_out | awk '$1 == "packets" { print $2 }')
check "[isolated] nothing forging gw's v6 address and the service's port arrives (5 sent, ${ARRIVED_V6:-?} arrived)" \
	test "${ARRIVED_V6:-1}" -eq 0
check "[isolated] nothing forging gw's v4 address arrives (5 sent, ${ARRIVED_V4:-?} arrived)" \
	test "${ARRIVED_V4:-1}" -eq 0
check "[isolated] nothing from the inside host's own address arrives (5 sent, ${ARRIVED_OWN:-?} arrived)" \
	test "${ARRIVED_OWN:-1}" -eq 0
check "[isolated] the forged v6 datagrams are counted on gwservice/dropped_out (${dropped0:-?} -> ${dropped1:-?})" \
	test "$((${dropped1:-0} - ${dropped0:-0}))" -ge 5
check "show prints P/forward: a source address of this host dropped, then P/outbound" contains "$(ctl show gwservice)" \
	"chain gwservice/forward {" 'fib saddr type local counter name "gwservice/dropped_out" drop' \
	"oifname @gwservice/uplinks jump gwservice/forward"
fwd_chains() { awk '/^\tchain (gwservice\/forward|forward) /,/^\t}/'; }
check "nft lists the kernel's P/forward and forward chains as show prints them" \
	diff <(n_gw nft list table inet killswitch | fwd_chains) <(ctl show gwservice | fwd_chains)
check "restore" ctl restore
rm -f "$KS_CONF/policies/gwservice.policy"
check "reload without it" ctl reload

# ---------------------------------------------------------------------------------------------
note "upgrade: a table hooked by an agent from before policy v2 (prerouting at -150, before DNAT)"
note "and from before P/forward (forward jumps to P/outbound, the policies have no P/forward)"
check "isolate with the hosted-site policy again" ctl isolate site
agent_stop TERM
# What an older agent left: the same table, prerouting hooked at priority -150, forward jumping to
# P/outbound, no P/forward. (The agent is down, so the table has no owner now.)
n_gw nft -f - <<'EOF' || die "making prerouting and forward look like an older agent's"
flush chain inet killswitch prerouting
delete chain inet killswitch prerouting
add chain inet killswitch prerouting { type filter hook prerouting priority -150; policy accept; }
add rule inet killswitch prerouting iifname @site/uplinks jump site/inbound
flush chain inet killswitch forward
add rule inet killswitch forward oifname @site/uplinks jump site/outbound
delete chain inet killswitch site/forward
EOF
agent_start || die "agent did not restart"
check "the restarted agent rebuilds it: prerouting after DNAT again" \
	bash -c "ip netns exec $NS_GW nft list chain inet killswitch prerouting | grep -q 'hook prerouting priority filter;'"
check "and jumps from forward to P/forward again" \
	bash -c "ip netns exec $NS_GW nft list chain inet killswitch forward | grep -q 'jump site/forward'"
check "and switches on it" ctl isolate siteinside
check_many <<'EOF'
+ [upgraded] MX v4 from anyone through DNAT      | tcp_echo_from inet 198.18.0.7 192.0.2.10 25
- [upgraded] outbound SMTP v4 from another host  | tcp_echo_from lan 10.0.1.2 192.0.2.80 25
EOF
check "restore" ctl restore

# ---------------------------------------------------------------------------------------------
note "Ping= of a connection-matched gateway: only the Local= hosts, only in the directions of Direction="
# Ping is a covert channel (ICMP tunnels carry whole TCP sessions): Ping=yes on a gateway with
# Local= keeps echo between the gateway's addresses and the Local= hosts only (here the mail
# server and gw's own wan0 v6 address, not its v4 one), matched on the conntrack original tuple
# through the site's masquerade; Direction=out lets the relay only answer; only echo, no other
# ICMP (a timestamp request is as good a tunnel).
write_ping_policy() { # NAME DIRECTION
	cat >"$KS_CONF/policies/$1.policy" <<EOF
[Uplinks]
Interface=wan0 wan1

[Gateway relay]
Address=203.0.113.25 2001:db8:25::25
Ports=tcp:25
Local=10.0.1.10 fd00:1::10 2001:db8:100::1
Direction=$2
Ping=yes
EOF
}
# ping_from NS SRC ADDR — one echo request from source address SRC.
ping_from() {
	local v=-4
	case $3 in *:*) v=-6 ;; esac
	in_ns "$1" ping "$v" -n -q -c1 -W "$KS_PROBE_WAIT" -I "$2" "$3"
}
# timestamp_from NS SRC ADDR — an ICMP timestamp request (type 13) from SRC; its reply (14) came.
timestamp_from() {
	in_ns "$1" python3 -c '
import os, socket, struct, sys, time
src, dst, wait = sys.argv[1], sys.argv[2], float(sys.argv[3])
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s & 0xFFFF) + (s >> 16)
    return ~((s & 0xFFFF) + (s >> 16)) & 0xFFFF
ident = int.from_bytes(os.urandom(2), "big")
msg = struct.pack("!BBHHHIII", 13, 0, 0, ident, 1, 0, 0, 0)
msg = msg[:2] + struct.pack("!H", csum(msg)) + msg[4:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.bind((src, 0))
s.sendto(msg, (dst, 0))
end = time.monotonic() + wait
while time.monotonic() < end:
    s.settimeout(max(end - time.monotonic(), 0.01))
    try:
        data, peer = s.recvfrom(2048)
    except socket.timeout:
        break
    icmp = data[(data[0] & 15) * 4:]
    if peer[0] == dst and icmp[0] == 14 and struct.unpack("!H", icmp[4:6])[0] == ident:
        sys.exit(0)
sys.exit(1)' "$2" "$3" "$KS_PROBE_WAIT"
}
ping_out_probes() {
	cat <<'EOF'
+ [ping out] mail server -> relay v4 (masqueraded)     | ping_from lan 10.0.1.10 203.0.113.25
+ [ping out] mail server -> relay v6 (masqueraded)     | ping_from lan fd00:1::10 2001:db8:25::25
- [ping out] other inside host -> relay v4             | ping_from lan 10.0.1.2 203.0.113.25
- [ping out] other inside host -> relay v6             | ping_from lan fd00:1::2 2001:db8:25::25
- [ping out] relay -> mail server v4 (Direction=out)   | ping_from inet 203.0.113.25 10.0.1.10
- [ping out] relay -> mail server v6 (Direction=out)   | ping_from inet 2001:db8:25::25 fd00:1::10
- [ping out] gw itself -> relay v4 (not in Local=)     | ping_from gw 198.51.100.1 203.0.113.25
+ [ping out] gw itself -> relay v6 (in Local=)         | ping_from gw 2001:db8:100::1 2001:db8:25::25
- [ping out] mail server -> relay, ICMP timestamp      | timestamp_from lan 10.0.1.10 203.0.113.25
- [ping out] mail server -> another internet host      | ping_from lan 10.0.1.10 192.0.2.80
EOF
}
ping_both_probes() {
	cat <<'EOF'
+ [ping both] relay -> mail server v4                  | ping_from inet 203.0.113.25 10.0.1.10
+ [ping both] relay -> mail server v6                  | ping_from inet 2001:db8:25::25 fd00:1::10
- [ping both] relay -> other inside host v4            | ping_from inet 203.0.113.25 10.0.1.2
- [ping both] relay -> other inside host v6            | ping_from inet 2001:db8:25::25 fd00:1::2
- [ping both] relay -> gw itself v4 (not in Local=)    | ping_from inet 203.0.113.25 198.51.100.1
+ [ping both] relay -> gw itself v6 (in Local=)        | ping_from inet 2001:db8:25::25 2001:db8:100::1
+ [ping both] mail server -> relay v4 (masqueraded)    | ping_from lan 10.0.1.10 203.0.113.25
- [ping both] other inside host -> relay v4            | ping_from lan 10.0.1.2 203.0.113.25
- [ping both] relay -> mail server, ICMP timestamp     | timestamp_from inet 203.0.113.25 10.0.1.10
EOF
}
write_ping_policy pingout out
write_ping_policy pingboth both
# What reaches the relay from gw's masquerading address: proof that the mail server's echo left
# masqueraded, so that the rules must have matched it on the conntrack original tuple.
n_inet nft -f - <<'EOF' || die "the relay's counter of masqueraded echo requests"
table inet lab_seen {
	counter masq_echo { }
	chain input {
		type filter hook input priority 0; policy accept;
		ip saddr 198.51.100.1 ip daddr 203.0.113.25 icmp type echo-request counter name "masq_echo"
	}
}
EOF
masq_echo_seen() { # ping from the mail server; the relay saw it come from 198.51.100.1
	n_inet nft reset counter inet lab_seen masq_echo >/dev/null &&
		ping_from lan 10.0.1.10 203.0.113.25 &&
		n_inet nft list counter inet lab_seen masq_echo | grep -Eq 'packets [1-9]'
}
check "reload with the Ping= policies" ctl reload
check_many < <({ ping_out_probes; ping_both_probes; } | sed 's/^[-+] /+ [normal] /')
check "isolate with Ping= on a gateway with Local= and Direction=out" ctl isolate pingout
check_many < <(ping_out_probes)
check "the mail server's echo reached the relay masqueraded (from gw's 198.51.100.1)" masq_echo_seen
check "show prints the Ping= rules on the conntrack tuples, Local= included" contains "$(ctl show pingout)" \
	"set pingout/gw_relay_ping_v4 {" \
	"ct direction original ct original ip daddr . ct original ip saddr @pingout/gw_relay_ping_v4 icmp type echo-request"
# The Ping= sets and rules as the kernel holds them, and show's text as nft reads it (without the
# rules nft 1.0.6 cannot read: ct original proto-dst in a concatenation).
ping_parts() { awk '/^\tset pingout\/gw_relay_ping_/,/^\t}/; /@pingout\/gw_relay_ping_/'; }
same_ping_parts() { # KERNEL SHOW
	[ -n "$2" ] || { echo "show printed no Ping= set or rule"; return 1; }
	diff <(printf '%s\n' "$1") <(printf '%s\n' "$2")
}
check "nft lists the Ping= sets and rules as show prints them" \
	same_ping_parts "$(n_gw nft list table inet killswitch | ping_parts)" "$(ctl show pingout | ping_parts)"
nft_readable() { grep -Ev '\. ct (original|reply) proto-(dst|src) @' | sed 's/^table inet killswitch {/table inet ks_check {/'; }
check "nft -c -f accepts show's text" eval 'ctl show pingout | nft_readable | n_gw nft -c -f -'
check "switch to Direction=both" ctl isolate pingboth
check_many < <(ping_both_probes)
check "restore" ctl restore


# ---------------------------------------------------------------------------------------------
note "killswitchd --check: warnings (exit 0) and the comma error"
mkdir -p "$KS_TMP/check/policies"
cat >"$KS_TMP/check/policies/warn.policy" <<'EOF'
[Uplinks]
Interface=wan0 wan9

[Gateway everyone-smtp]
Address=0.0.0.0/0 ::/0
Ports=tcp:25

[Gateway ourselves]
Address=198.51.100.1
Ports=tcp:25

[Gateway any-out]
Address=any
Ports=tcp:443
Direction=out
EOF
check_exit 0 "--check: warnings only, exit 0" n_gw "$KILLSWITCHD" --check --config-dir "$KS_TMP/check"
warn=$(n_gw "$KILLSWITCHD" --check --config-dir "$KS_TMP/check" 2>&1)
check "--check warns: all addresses both ways without Local=" contains "$warn" \
	"warn.policy:5: warning:" "all addresses"
check "--check warns: a gateway address of this host (use [Service])" contains "$warn" \
	"warn.policy:9: warning:" "[Service]"
check "--check warns: an uplink that does not exist" contains "$warn" "warn.policy:2: warning:" "wan9"
check "--check: no warning for Address=any with Direction=out" not_matches "$warn" "warn.policy:1[2-4]:"
printf '[Uplinks]\nInterface=wan0,wan1\n' >"$KS_TMP/check/policies/comma.policy"
check_exit 1 "--check: a comma in Interface= is an error" n_gw "$KILLSWITCHD" --check --config-dir "$KS_TMP/check"
comma=$(n_gw "$KILLSWITCHD" --check --config-dir "$KS_TMP/check" 2>&1)
check "--check: the comma error says where and what to write" contains "$comma" "comma.policy:2:" "wan0 wan1"

# ---------------------------------------------------------------------------------------------
note "the running agent: the same warnings in its log (once a reload) and in killswitchctl reload"
cp "$KS_TMP/check/policies/warn.policy" "$KS_CONF/policies/warn.policy"
logged0=$(grep -c "warn.policy:5: warning:" "$KS_LOG")
reload_err=$(ctl reload 2>&1 >/dev/null)
check_exit 0 "reload with a policy that only has warnings: exit 0" ctl reload
check "reload shows the caller the warnings with FILE:LINE" contains "$reload_err" \
	"$KS_CONF/policies/warn.policy:5: warning:" "all addresses" "warn.policy:9: warning:" "warn.policy:2: warning:"
check "reload --json: the reply's warnings" eval 'ctl --json reload | python3 -c "
import json, sys
w = json.load(sys.stdin)[\"warnings\"]
sys.exit(0 if any(\"warn.policy:5: warning:\" in x for x in w) else 1)"'
logged=$(grep -c "warn.policy:5: warning:" "$KS_LOG")
check "the agent logged the warning with FILE:LINE, once a reload (3 reloads: $((logged - logged0)))" \
	test "$((logged - logged0))" -eq 3
rm -f "$KS_CONF/policies/warn.policy"
check "without that policy: none of its warnings in the reply" eval '[ "$(ctl --json reload | python3 -c "import json,sys; print(sum(\"warn.policy\" in x for x in json.load(sys.stdin)[\"warnings\"]))")" = 0 ]'

# ---------------------------------------------------------------------------------------------
note "a DNAT that changes the port (public 2525 -> inside 25): the service named by the public address and port"
# killswitch.policy(5), [Service] Ports=: the link layer compares the port on the wire, before any
# NAT; only the public address with the public port is kept by both layers (the audit of the cut,
# finding 1: the inside address with the inside port was cut, 0 of 5).
n_gw nft add rule inet lab_nat pre ip daddr 192.0.2.10 tcp dport 2525 dnat ip to 10.0.1.10:25 &&
	n_gw nft add rule inet lab_nat pre ip6 daddr 2001:db8:10::10 tcp dport 2525 dnat ip6 to '[fd00:1::10]:25' ||
	die "adding the port-changing DNAT rules"
for p in mapped mappedfrom; do
	{
		printf '[Uplinks]\nInterface=wan0 wan1\n\n[Service mx]\nAddress=192.0.2.10 2001:db8:10::10\nPorts=tcp:2525\n'
		[ $p = mappedfrom ] && printf 'From=198.18.0.7 2001:db8:77::7\n'
	} >"$KS_CONF/policies/$p.policy"
done
printf '[Uplinks]\nInterface=wan0 wan1\n\n[Service mx]\nAddress=10.0.1.10 fd00:1::10\nPorts=tcp:25\n' \
	>"$KS_CONF/policies/mappedinside.policy"
check "reload with the port-mapping policies" ctl reload
check_many <<'EOF'
+ [2525->25, normal] v4 to the public port | tcp_echo_from inet 198.18.0.7 192.0.2.10 2525
+ [2525->25, normal] v6 to the public port | tcp_echo_from inet 2001:db8:77::7 2001:db8:10::10 2525
EOF
check "isolate with the MX named by its public address and port" ctl isolate mapped
check_many <<'EOF'
+ [2525->25, public/public] v4 kept                         | tcp_echo_from inet 198.18.0.7 192.0.2.10 2525
+ [2525->25, public/public] v6 kept                         | tcp_echo_from inet 2001:db8:77::7 2001:db8:10::10 2525
- [2525->25, public/public] the public address's port 25 is not named | tcp_echo_from inet 198.18.0.7 192.0.2.10 25
EOF
check "switch to the same with From=" ctl isolate mappedfrom
check_many <<'EOF'
+ [2525->25, public/public, From=] v4 from the peer kept    | tcp_echo_from inet 198.18.0.7 192.0.2.10 2525
+ [2525->25, public/public, From=] v6 from the peer kept    | tcp_echo_from inet 2001:db8:77::7 2001:db8:10::10 2525
- [2525->25, public/public, From=] v4 from another host cut  | tcp_echo_from inet 203.0.113.77 192.0.2.10 2525
- [2525->25, public/public, From=] v6 from another host cut  | tcp_echo_from inet 2001:db8:77::8 2001:db8:10::10 2525
EOF
# What the man page warns against: named by the inside address and port, the link layer drops it.
check "switch to the MX named by its inside address and port" ctl isolate mappedinside
check_many <<'EOF'
- [2525->25, inside/inside] v4 cut by the link layer, as documented | tcp_echo_from inet 198.18.0.7 192.0.2.10 2525
EOF
check "restore" ctl restore
rm -f "$KS_CONF/policies/mapped.policy" "$KS_CONF/policies/mappedfrom.policy" "$KS_CONF/policies/mappedinside.policy"

summary
