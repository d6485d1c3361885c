#!/bin/bash
# SPDX-License-Identifier: MIT
#
# End-to-end test of issue 12, item 1, for KeepICMPErrors=: an ICMP error crosses an isolation
# only if the connection it quotes is one the policy keeps. In the namespace lab of lib.sh, plus
# a namespace "far" behind the internet router, reached through a route of MTU 1280 (the mail
# server 203.0.113.26 2001:db8:26::26 and the relay 203.0.113.27 2001:db8:26::27, tcp/25 and
# tcp/587 echo servers, 1500-byte links of their own; the relay's second address .28 / ::28
# without that limit):
#
#   part 1  the tunnel: a LAN host opens a TCP connection to a web server of the internet (not
#           kept by the policy) before the isolation; its conntrack entry outlives the isolation
#           (for days: the dropped packets keep refreshing it). While normal and then while
#           isolated, each side sends the other ICMP "time exceeded" quoting that connection with
#           400 bytes of data after the quoted headers: LAN -> peer and peer -> LAN, IPv4 and
#           IPv6. While isolated nothing of it may arrive;
#   part 2  path MTU discovery of kept flows still works while isolated, with errors coming in
#           from the internet router: a LAN host sends 256 KiB to the mail server (a version 1
#           gateway) and to the relay (a connection-matched gateway, Local=, Direction=out), and
#           an internet host sends 256 KiB to the gateway's own echo service ([Service]), IPv4
#           and IPv6; the router's "fragmentation needed" / "packet too big" must reach the
#           sender, else the transfer stalls;
#   part 3  the same with the errors going out: the gateway's route to the LAN gets MTU 1400,
#           so the gateway itself tells the mail server (203.0.113.25) and the relay that their
#           answers are too big;
#
# and `killswitchctl show` equals what the kernel lists. Part 1 fails on an agent that accepts
# every "ct state related" error.
#
# Every check prints "PASS: ..." or "FAIL: ..."; the last line is a summary. Exit 0 if all passed.
# Run as root: tests/e2e/test-exact-icmp.sh   (KILLSWITCHD, KILLSWITCHCTL: see lib.sh)

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ks_init

[ -x "$KILLSWITCHD" ] || die "no agent at $KILLSWITCHD (build: meson setup build && meson compile -C build)"
[ -x "$KILLSWITCHCTL" ] || die "no client at $KILLSWITCHCTL"

ICMP_PY=$KS_REPO/tests/e2e/icmp.py
NS_FAR=${KS_PREFIX}far
n_far() { ip netns exec "$NS_FAR" "$@"; }

# The far namespace is this test's own: gone before lib.sh's cleanup.
far_destroy() {
	local pid
	ip netns list | grep -q "^$NS_FAR\b" || return 0
	for pid in $(ip netns pids "$NS_FAR" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
	ip netns del "$NS_FAR" 2>/dev/null
}
trap 'cleanup; far_destroy' EXIT

note "lab: namespaces ${KS_PREFIX}{lan,gw,inet,mgmt,far}; agent $KILLSWITCHD"
lab_create

ip netns add "$NS_FAR" || die "ip netns add $NS_FAR"
{
	n_far sysctl -q -w net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 >/dev/null &&
	ip -n "$NS_FAR" link set lo up &&
	ip -n "$NS_INET" link add far0 type veth peer name eth0 netns "$NS_FAR" &&
	ip -n "$NS_INET" link set far0 up && ip -n "$NS_FAR" link set eth0 up &&
	ip -n "$NS_INET" addr add 100.65.0.1/30 dev far0 &&
	ip -n "$NS_INET" addr add 2001:db8:f::1/64 dev far0 nodad &&
	ip -n "$NS_FAR" addr add 100.65.0.2/30 dev eth0 &&
	ip -n "$NS_FAR" addr add 2001:db8:f::2/64 dev eth0 nodad &&
	for a in 203.0.113.26 203.0.113.27 203.0.113.28 203.0.113.29; do
		ip -n "$NS_FAR" addr add $a/32 dev lo || exit 1
	done &&
	for a in 2001:db8:26::26 2001:db8:26::27 2001:db8:26::28 2001:db8:26::29; do
		ip -n "$NS_FAR" addr add $a/128 dev lo nodad || exit 1
	done &&
	ip -n "$NS_FAR" route add default via 100.65.0.1 &&
	ip -n "$NS_FAR" -6 route add default via 2001:db8:f::1 &&
	# The internet router forwards to far over a path of MTU 1280 (locked: the route's, not the link's).
	n_inet sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 >/dev/null &&
	ip -n "$NS_INET" route add 203.0.113.26/31 via 100.65.0.2 dev far0 mtu lock 1280 &&
	ip -n "$NS_INET" -6 route add 2001:db8:26::/64 via 2001:db8:f::2 dev far0 mtu lock 1280 &&
	# ... but for the relay's second address, which part 3 uses (nothing cached for it by then).
	ip -n "$NS_INET" route add 203.0.113.28/32 via 100.65.0.2 dev far0 &&
	ip -n "$NS_INET" -6 route add 2001:db8:26::28/128 via 2001:db8:f::2 dev far0 &&
	# ... and a client of part 4, which no gateway names, again behind MTU 1280.
	ip -n "$NS_INET" route add 203.0.113.29/32 via 100.65.0.2 dev far0 mtu lock 1280 &&
	ip -n "$NS_INET" -6 route add 2001:db8:26::29/128 via 2001:db8:f::2 dev far0 mtu lock 1280
} || die "creating the far namespace"
# Echo servers without an idle timeout (a connection must stay established for a while): the
# mail server and the relay in far; the cut peer (web) and a cut port of the mail gateway's
# address in the internet namespace.
far_server() { # ADDR PORT [NS]
	local l="TCP4-LISTEN:$2,bind=$1"
	case $1 in *:*) l="TCP6-LISTEN:$2,bind=[$1],ipv6only=1" ;; esac
	_spawn "${3:-far}" socat "$l,reuseaddr,fork" EXEC:cat
}
for a in 203.0.113.26 2001:db8:26::26; do far_server "$a" 25; done
for a in 203.0.113.27 2001:db8:26::27 203.0.113.28 2001:db8:26::28; do far_server "$a" 587; done
for a in 192.0.2.80 2001:db8:80::80 203.0.113.25 2001:db8:25::25; do far_server "$a" 8000 inet; done
# A second LAN host, not the relay's Local=.
{ ip -n "$NS_LAN" addr add 10.0.1.3/24 dev eth0 && ip -n "$NS_LAN" addr add fd00:1::3/64 dev eth0 nodad; } ||
	die "second LAN address"
wait_until 10 tcp_echo lan 203.0.113.26 25 || die "far mail server not reachable from lan"
wait_until 10 tcp_echo lan 2001:db8:26::27 587 || die "far relay v6 not reachable from lan"

cat >"$KS_CONF/policies/isolate.policy" <<'EOF'
[Policy]
Description=Lab: ICMP errors pass for the connections that are kept, and only for them

[Uplinks]
Interface=wan0 wan1

# Version 1: matched on packets (remote address, either port).
[Gateway mail]
Address=203.0.113.25 2001:db8:25::25 203.0.113.26 2001:db8:26::26
Ports=tcp:25

# Matched on connections: only the LAN host, only connections it opens.
[Gateway relay]
Address=203.0.113.27 203.0.113.28 2001:db8:26::27 2001:db8:26::28
Ports=tcp:587
Local=10.0.1.2 fd00:1::2
Direction=out

# The gateway's own echo server, for the internet.
[Service echo]
Address=198.51.100.1 2001:db8:100::1
Ports=tcp:2222

# The MX behind DNAT (lib.sh's lab_add_site, part 4).
[Service mx]
Address=192.0.2.10 2001:db8:10::10
Ports=tcp:25
EOF

agent_start || die "killswitchd did not start"

# =============================================================================================
# Part 1: the tunnel through errors of a connection that is cut.

# Connections the isolation cuts, opened while normal: NAME | LAN address and port | peer
# address and port | the peer's namespace. A peer the policy does not keep at all (web); a
# cut port of a version 1 gateway's address (mail, tcp/25 only); the kept port of the
# connection-matched relay, but from a LAN host that is not its Local=.
connections() {
	cat <<'EOF'
web-v4|10.0.1.2 40080|192.0.2.80 8000|inet
web-v6|fd00:1::2 40081|2001:db8:80::80 8000|inet
mail-cut-port-v4|10.0.1.2 40082|203.0.113.25 8000|inet
mail-cut-port-v6|fd00:1::2 40083|2001:db8:25::25 8000|inet
relay-not-local-v4|10.0.1.3 40084|203.0.113.27 587|far
relay-not-local-v6|fd00:1::3 40085|2001:db8:26::27 587|far
EOF
}
note "part 1: LAN connections that the isolation will cut, opened while normal"
established() { n_lan ss -Htn state established "( sport = :$1 )" | grep -q .; }
while IFS='|' read -r name lan peer _; do
	read -r la lp <<<"$lan"
	read -r pa pp <<<"$peer"
	if [[ $la == *:* ]]; then
		_spawn lan sh -c "sleep 300 | socat - TCP6:[$pa]:$pp,bind=[$la]:$lp"
	else
		_spawn lan sh -c "sleep 300 | socat - TCP4:$pa:$pp,bind=$la:$lp"
	fi
	wait_until 10 established "$lp" || die "no connection $name"
done < <(connections)

# tunnel FROM TO DST QSRC QSPORT QDST QDPORT SRC — FROM sends DST an error quoting the segment
# QSRC:QSPORT -> QDST:QDPORT, from address SRC; succeed if its data arrived in TO.
tunnel() {
	local from=$1 to=$2 marker ready pid rc
	shift 2
	marker="ks-icmp-$RANDOM$RANDOM"
	ready=$KS_TMP/recv.$marker
	# The receiver waits until 2 s after the sender is done (however long it takes to start).
	in_ns "$to" python3 "$ICMP_PY" recv "$marker" --ready "$ready" --sent "$ready.sent" --wait 2 &
	pid=$!
	wait_until 30 test -e "$ready" || { kill "$pid"; echo "receiver not ready"; return 2; }
	in_ns "$from" python3 "$ICMP_PY" send "$1" "$2" "$3" "$4" "$5" --src "$6" --marker "$marker"
	: >"$ready.sent"
	wait "$pid"
	rc=$?
	rm -f "$ready" "$ready.sent"
	return $rc
}

# Both directions of each connection: NAME | FROM | TO | DST QSRC QSPORT QDST QDPORT SRC. The LAN
# host errors the peer's segment to it; the peer errors the LAN host's.
vectors() {
	local name lan peer ns la lp pa pp
	while IFS='|' read -r name lan peer ns; do
		read -r la lp <<<"$lan"
		read -r pa pp <<<"$peer"
		printf '%s|lan|%s|%s %s %s %s %s %s\n' "lan-to-peer-$name" "$ns" "$pa" "$pa" "$pp" "$la" "$lp" "$la"
		printf '%s|%s|lan|%s %s %s %s %s %s\n' "peer-to-lan-$name" "$ns" "$la" "$la" "$lp" "$pa" "$pp" "$pa"
	done < <(connections)
}

# probes + or - PREFIX SUFFIX — check_many lines for every vector (side by side: a probe that
# must fail waits 2 s after its packet is out).
probes() {
	local name from to args
	while IFS='|' read -r name from to args; do
		printf -- '%s %s %s %s | tunnel %s %s %s\n' "$1" "$2" "$name" "$3" "$from" "$to" "$args"
	done < <(vectors)
}
check_many < <(probes + "normal: ICMP error with data," "arrives (probe self-test)")

check_exit 0 "isolate" ctl isolate --reason "e2e: exact ICMP errors"
all_established() {
	local p
	for p in 40080 40081 40082 40083 40084 40085; do established $p || { echo "port $p"; return 1; }; done
}
check "isolated: the cut connections are still established on the LAN host" all_established
check "isolated: web from lan cut" eval '! tcp_echo lan 192.0.2.80 80'

check_many < <(probes - "isolated: ICMP error with data quoting a cut connection," "does not arrive")

# `show` prints what the kernel lists (the uplinks set aside: nft lists it in hash order; and the
# elements of the drop sensor's sets: what this test's cut traffic put there, not the policy).
shown_equals_kernel() {
	diff -B <(ctl show isolate | grep -v '"wan') \
		<(n_gw nft list table inet killswitch | sed -E -e 's/packets [0-9]+ bytes [0-9]+/packets 0 bytes 0/' \
			-e 's/ # progname .*//' -e '/^\tflags owner/d' -e '/^\tcomment "killswitchd /d' | grep -v '"wan' | without_drops_elements)
}
check "isolated: killswitchctl show equals nft list table inet killswitch" shown_equals_kernel

# =============================================================================================
# Part 2: path MTU discovery of kept flows, the errors coming in.

# Errors as they arrive: in the LAN host (after the gateway), in the gateway after our chains
# (input, priority 100), in the internet's hosts (before anything else there).
{
	rx_counter_add lan ptb4 "icmp type destination-unreachable icmp code frag-needed" &&
	rx_counter_add lan ptb6 "icmpv6 type packet-too-big" &&
	n_gw nft add table inet ks_after '{ chain in { type filter hook input priority 100; }; }' &&
	n_gw nft add counter inet ks_after ptb4 && n_gw nft add counter inet ks_after ptb6 &&
	n_gw nft add rule inet ks_after in icmp type destination-unreachable icmp code frag-needed counter name ptb4 &&
	n_gw nft add rule inet ks_after in icmpv6 type packet-too-big counter name ptb6 &&
	for ns in inet far; do
		rx_counter_add $ns ptb4 "icmp type destination-unreachable icmp code frag-needed" &&
		rx_counter_add $ns ptb6 "icmpv6 type packet-too-big" || exit 1
	done
} || die "counters of ICMP errors"
gw_count() { n_gw nft list counter inet ks_after "$1" | awk '$1 == "packets" { print $2; exit }'; }

# pmtu DESC NS COUNTER-NS COUNTER BULK-ARGS... — a bulk transfer from NS that completes, and the
# error counter went up (the transfer needed path MTU discovery and the errors came through).
pmtu() {
	local ns=$1 cns=$2 ctr=$3 before after count=rx_count
	shift 3
	[ "$cns" = gw ] && count=gw_count
	if [ "$count" = gw_count ]; then before=$(gw_count "$ctr"); else before=$(rx_count "$cns" "$ctr"); fi
	in_ns "$ns" python3 "$ICMP_PY" bulk "$@" || return 1
	if [ "$count" = gw_count ]; then after=$(gw_count "$ctr"); else after=$(rx_count "$cns" "$ctr"); fi
	[ "$after" -gt "$before" ] || { echo "no error counted ($ctr in $cns stayed at $before)"; return 1; }
	echo "$((after - before)) errors counted"
}

note "part 2: isolated, 256 KiB each way over a path of MTU 1280; the router's errors come in"
check "isolated: pmtu in, lan -> mail (version 1 gateway) v4" pmtu lan lan ptb4 203.0.113.26 25 --src 10.0.1.2
check "isolated: pmtu in, lan -> mail (version 1 gateway) v6" pmtu lan lan ptb6 2001:db8:26::26 25 --src fd00:1::2
check "isolated: pmtu in, lan -> relay (connection-matched gateway) v4" pmtu lan lan ptb4 203.0.113.27 587 --src 10.0.1.2
check "isolated: pmtu in, lan -> relay (connection-matched gateway) v6" pmtu lan lan ptb6 2001:db8:26::27 587 --src fd00:1::2
check "isolated: pmtu in, far -> the gateway's echo service v4" \
	pmtu far gw ptb4 198.51.100.1 2222 --src 203.0.113.26
check "isolated: pmtu in, far -> the gateway's echo service v6" \
	pmtu far gw ptb6 2001:db8:100::1 2222 --src 2001:db8:26::26

# =============================================================================================
# Part 3: the errors going out, sent by the gateway itself.

note "part 3: the gateway's route to the LAN gets MTU 1400; it tells the senders outside"
{
	ip -n "$NS_GW" route replace 10.0.1.0/24 dev lan0 src 10.0.1.1 mtu lock 1400 &&
	ip -n "$NS_GW" -6 route replace fd00:1::/64 dev lan0 proto kernel metric 256 mtu lock 1400
} || die "route MTU on the gateway"
check "isolated: pmtu out, mail -> lan (version 1 gateway) v4" pmtu lan inet ptb4 203.0.113.25 25 --src 10.0.1.2
check "isolated: pmtu out, mail -> lan (version 1 gateway) v6" pmtu lan inet ptb6 2001:db8:25::25 25 --src fd00:1::2
check "isolated: pmtu out, relay -> lan (connection-matched gateway) v4" pmtu lan far ptb4 203.0.113.28 587 --src 10.0.1.2
check "isolated: pmtu out, relay -> lan (connection-matched gateway) v6" pmtu lan far ptb6 2001:db8:26::28 587 --src fd00:1::2

# =============================================================================================
# Part 4: a [Service] behind the site's DNAT and masquerade, errors both ways.

note "part 4: the site's NAT (lab_add_site); a client no gateway names uploads to the MX"
# lan_counted COUNTER N — the LAN host counted more than N errors.
lan_counted() { local c; c=$(rx_count lan "$1"); [ "$c" -gt "$2" ] || { echo "$1 in lan stayed at $c"; return 1; }; }
ptb4_lan=$(rx_count lan ptb4)
ptb6_lan=$(rx_count lan ptb6)
check_exit 0 "restore for the site's NAT" ctl restore --reason "e2e: part 4"
lab_add_site
check_exit 0 "isolate again" ctl isolate --reason "e2e: exact ICMP errors, NAT"
# far sends 256 KiB to the MX's public address (DNAT to 10.0.1.10): the gateway's route to the
# LAN (MTU 1400) makes it tell far (out); the MX's echo crosses the internet router's route of
# MTU 1280 to the client, which tells the MX's public address, de-NATed by the gateway (in).
check "isolated: pmtu out, far client -> the MX behind DNAT v4" pmtu far far ptb4 192.0.2.10 25 --src 203.0.113.29
check "isolated: pmtu in, the MX behind DNAT -> far client v4 (counted in the LAN)" \
	lan_counted ptb4 "$ptb4_lan"
check "isolated: pmtu out, far client -> the MX behind DNAT v6" \
	pmtu far far ptb6 2001:db8:10::10 25 --src 2001:db8:26::29
check "isolated: pmtu in, the MX behind DNAT -> far client v6 (counted in the LAN)" \
	lan_counted ptb6 "$ptb6_lan"

check_exit 0 "restore at the end" ctl restore --reason "e2e: done"
summary
