#!/bin/bash
# SPDX-License-Identifier: MIT
#
# End-to-end test of issue 12, items 2 and 3 (the uplinks are the links, not their names), in the
# namespace lab of lib.sh. While isolated, each check tries a way around the cut with real
# traffic from the LAN to the web server (cut) and shows the gateways (mail tcp/25, SIP udp/5060)
# still working:
#   - an uplink renamed (wan0 -> wanx, the default route put back on it);
#   - a macvlan on wan0 carrying the route; a vlan on wan0 (a matching vlan on the far side);
#   - a bridge that took wan0 as a port, the route on the bridge;
#   - a foreign netdev table forwarding (fwd) between lan0 and wan0 at ingress, past the inet hooks;
#   - a raw AF_PACKET send through the qdisc from a process with only CAP_NET_RAW;
#   - an uplink renamed while the agent is not running (found by the ifindex in the state file);
#   - another manager binding chains to wan0 in a loop (the rate limit of re-assertion);
#   - source-routed packets (IPv4 LSRR/SSRR, an IPv6 routing header) from the internet addressed to
#     the gateway and routed on to a LAN host, with accept_source_route/seg6_enabled on;
# and each of the first five is audited as tamper (status, history). A raw send with
# PACKET_QDISC_BYPASS is cut as well on this kernel; the last part shows where nftables ends: a tc
# egress redirect (CAP_NET_ADMIN) skips the netfilter egress hook (docs/design.md).
#
# Every check prints "PASS: ..." or "FAIL: ..."; the last line is a summary. Exit 0 if all passed.
# Run as root: tests/e2e/test-exact-links.sh   (KILLSWITCHD, KILLSWITCHCTL: see lib.sh)

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ks_init

[ -x "$KILLSWITCHD" ] || die "no agent at $KILLSWITCHD (build: meson setup build && meson compile -C build)"
[ -x "$KILLSWITCHCTL" ] || die "no client at $KILLSWITCHCTL"

mac() { in_ns "$1" cat "/sys/class/net/$2/address"; }
# The cut holds and the gateways work: web from the LAN cut, mail and SIP through.
cut_and_gateways() { # LABEL
	check_many <<-EOF
		- $1: web v4 from lan cut | tcp_echo lan 192.0.2.80 80
		+ $1: mail tcp/25 from lan through | tcp_echo lan 203.0.113.25 25
		+ $1: SIP udp/5060 from lan through | udp_echo lan 203.0.113.5 5060
	EOF
}
# The history's last tamper entry mentions all of the words.
tamper_said() { # WORD...
	local h
	h=$(ctl --json history -n 30 | python3 -c '
import json, sys
d = json.load(sys.stdin)
for e in (d if isinstance(d, list) else d["entries"]):
    if e.get("action") == "tamper":
        print(e.get("message", ""))')
	contains "$h" "$@"
}
# react_ms CMD... — run CMD in gw and print the milliseconds from its start to the agent's next
# committed nftables transaction (NEWGEN with the agent's pid, read from the nftables event group
# by a listener that joined before CMD started). "timeout" after 5 s.
react_ms() {
	n_gw python3 -c '
import socket, struct, subprocess, sys, time
agent = int(sys.argv[1])
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)  # NETLINK_NETFILTER
s.bind((0, 0))
s.setsockopt(270, 1, 7)  # SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, NFNLGRP_NFTABLES
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
t0 = time.monotonic()
subprocess.run(sys.argv[2:], check=True)
s.settimeout(5)
try:
    while True:
        buf = s.recv(1 << 20)
        t1 = time.monotonic()
        off = 0
        while off + 16 <= len(buf):
            length, mtype = struct.unpack_from("=IH", buf, off)
            if mtype == (10 << 8 | 15):  # NFNL_SUBSYS_NFTABLES, NFT_MSG_NEWGEN
                a = off + 20
                while a + 4 <= off + length:
                    alen, atype = struct.unpack_from("=HH", buf, a)
                    if atype & 0x7fff == 2 and struct.unpack_from("!I", buf, a + 4)[0] == agent:
                        print(int((t1 - t0) * 1000))
                        sys.exit(0)
                    a += (alen + 3) & ~3
            off += (length + 3) & ~3
except socket.timeout:
    print("timeout")
' "$AGENT_PID" "$@"
}

# The default v4 route of gw and the return route of inet through DEV / VIA.
route_v4() { # GW_DEV GW_VIA INET_DEV INET_VIA
	n_gw ip route replace default via "$2" dev "$1" &&
		n_inet ip route replace 10.0.1.0/24 via "$4" dev "$3" &&
		n_inet ip neigh flush dev "$3" && n_gw ip neigh flush dev "$1"
}
route_v4_back() { route_v4 wan0 198.51.100.2 gw0 198.51.100.1; }
# A link that went down lost its IPv6 address and routes: put them back.
v6_back() {
	n_gw ip addr replace 2001:db8:100::1/64 dev wan0 nodad &&
		n_gw ip -6 route replace default via 2001:db8:100::2 dev wan0
}

note "lab: namespaces ${KS_PREFIX}{lan,gw,inet,mgmt}; agent $KILLSWITCHD"
lab_create
write_lab_policy isolate
agent_start || die "killswitchd did not start"
# A [Service] for anyone on tcp/25 and a connection-matched gateway (the raw-sender checks below),
# added by a reload while normal: the link layer's table is then compiled on a thread, and the
# checks below (the raw sends) use that table.
printf '\n[Service mx]\nAddress=198.51.100.1\nPorts=tcp:25\n\n[Gateway relay]\nAddress=203.0.113.28\nPorts=tcp:587\nDirection=out\n' \
	>>"$KS_CONF/policies/isolate.policy"
# And a UDP service for anyone on the gateway itself (a DNS server, say), for its fragments.
printf '\n[Service dns]\nAddress=198.51.100.1 2001:db8:100::1\nPorts=udp:5353\n' >>"$KS_CONF/policies/isolate.policy"
_udp_server gw 198.51.100.1 5353
_udp_server gw 2001:db8:100::1 5353
check "reload while normal: the service and the relay added" ctl reload
check "after the reload: the link layer has the service's set" \
	contains "$(n_gw nft list table netdev killswitch_links)" "isolate/svc_mx"
check "normal: the link layer is staged, nothing bound to a device" \
	test -n "$(n_gw nft list table netdev killswitch_links)" -a -z "$(n_gw nft list ruleset | grep 'hook ingress\|hook egress')"
check_exit 0 "isolate returns 0" ctl isolate --reason "e2e: links"
cut_and_gateways "isolated"
# A service for anyone has no peer address, and its fragments after the first carry no port: the
# link layer dropped them, so every datagram larger than the MTU (a large DNS answer, a SIP INVITE)
# was lost while isolated, both ways (the audit of 2026-12-02). 3,000 bytes over a 1,500-byte MTU.
big_udp() { # ADDR SIZE — from the internet namespace: how many of 3 datagrams come back whole
	n_inet timeout 10 python3 -c '
import socket, sys
addr, size = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.5)
ok = 0
for i in range(3):
    msg = (b"%d-" % i) + b"F" * (size - 2)
    s.sendto(msg, (addr, 5353))
    try:
        ok += s.recv(65536) == msg
    except socket.timeout:
        pass
print(ok)' "$1" "$2"
}
for a in 198.51.100.1 2001:db8:100::1; do
	n=$(big_udp "$a" 1000)
	check "isolated: [Service dns] udp/5353 on $a, 1,000-byte datagrams echoed (${n:-?} of 3)" test "${n:-0}" -ge 2
	n=$(big_udp "$a" 3000)
	check "isolated: [Service dns] on $a, 3,000-byte datagrams (fragmented both ways) echoed (${n:-?} of 3)" \
		test "${n:-0}" -ge 2
done
check "status --json layers: inet hooks, netdev on wan0 wan1, link tracking" \
	status_is '"inet hooks" in d["layers"] and "netdev ingress+egress on wan0 wan1" in d["layers"] and "link tracking" in d["layers"]'
check "status text has a Layers line" contains "$(ctl status)" "Layers:" "netdev ingress+egress on wan0 wan1"

# --- a renamed uplink --------------------------------------------------------------------------
# A veth must be down to be renamed, which drops its routes: the attacker puts them back.
n_gw ip link set wan0 down || die "wan0 down"
ms=$(react_ms ip link set wan0 name wanx) || die "renaming wan0"
note "rename: the agent committed the extended cut ${ms} ms after 'ip link set wan0 name wanx' started"
n_gw ip link set wanx up || die "wanx up"
route_v4 wanx 198.51.100.2 gw0 198.51.100.1 || die "route over wanx"
check "rename: the cut follows the link (re-asserted within 2 s: ${ms} ms)" test "$ms" != timeout -a "${ms:-9999}" -lt 2000
check "rename: wanx in isolate/uplinks" contains "$(n_gw nft list set inet killswitch isolate/uplinks)" '"wanx"'
cut_and_gateways "rename wan0 -> wanx"
check "rename: netdev chains bound to wanx" contains "$(n_gw nft list table netdev killswitch_links)" wanx
check "rename: audited as tamper, saying what happened" tamper_said "wan0" "renamed to wanx"
check "rename: status --json still isolated, layers name wanx" \
	status_is 'd["state"] == "isolated" and any("wanx" in l for l in d["layers"])'
n_gw ip link set wanx down && n_gw ip link set wanx name wan0 && n_gw ip link set wan0 up && v6_back &&
	route_v4_back || die "renaming back"
cut_and_gateways "renamed back"

# --- a macvlan on wan0 carrying the route ------------------------------------------------------
ms=$(react_ms ip link add mv0 link wan0 type macvlan mode bridge) || die "macvlan"
note "macvlan: the agent committed the extended cut ${ms} ms after 'ip link add mv0 link wan0' started"
check "macvlan: mv0 in isolate/uplinks" contains "$(n_gw nft list set inet killswitch isolate/uplinks)" '"mv0"'
n_gw ip addr del 198.51.100.1/30 dev wan0 && n_gw ip addr add 198.51.100.1/30 dev mv0 &&
	n_gw ip link set mv0 up && route_v4 mv0 198.51.100.2 gw0 198.51.100.1 || die "route over mv0"
cut_and_gateways "macvlan mv0 on wan0"
check "macvlan: audited as tamper" tamper_said "macvlan mv0" "stacked on wan0"
# The other way round, the macvlan named as the uplink: the link layer is bound to mv0, never to
# wan0 beneath it (it may carry other links), so raw frames written on wan0 pass (the audit of the
# cut, finding 2): --check warns and names the way out.
mkdir -p "$KS_TMP/stacked/policies" &&
	printf '[Uplinks]\nInterface=mv0\n' >"$KS_TMP/stacked/policies/stacked.policy" || die "stacked policy"
out=$(n_gw "$KILLSWITCHD" --check --config-dir "$KS_TMP/stacked" 2>&1)
check "macvlan named as the uplink: --check warns, FILE:LINE, names the lower device and the way out" \
	contains "$out" "stacked.policy:2: warning: uplink mv0 is stacked on wan0" "CAP_NET_RAW" \
	"name wan0 as the uplink instead"
n_gw ip link del mv0 && n_gw ip addr add 198.51.100.1/30 dev wan0 && route_v4_back || die "macvlan undone"

# --- a vlan on wan0, a matching one on the far side --------------------------------------------
# (Kernels without 8021q refuse the link type; the vlan then takes the same IFLA_LINK path as
# the macvlan above, and this part is skipped with a note.)
if ! n_inet ip link add link gw0 name gw0.7 type vlan id 7 2>/dev/null; then
	note "SKIP vlan: this kernel has no 8021q (ip link add type vlan: unknown device type)"
else
	n_inet ip addr add 198.51.100.10/30 dev gw0.7 && n_inet ip link set gw0.7 up || die "far vlan"
	n_gw ip link add link wan0 name wan0.7 type vlan id 7 && n_gw ip addr add 198.51.100.9/30 dev wan0.7 &&
		n_gw ip link set wan0.7 up || die "vlan on wan0"
	route_v4 wan0.7 198.51.100.10 gw0.7 198.51.100.9 || die "route over the vlan"
	cut_and_gateways "vlan wan0.7"
	check "vlan: audited as tamper" tamper_said "vlan wan0.7" "stacked on wan0"
	n_gw ip link del wan0.7 && n_inet ip link del gw0.7 && route_v4_back || die "vlan undone"
fi

# --- a bridge that takes wan0 as a port --------------------------------------------------------
n_gw ip link add br0 type bridge && n_gw ip link set wan0 master br0 &&
	n_gw ip addr del 198.51.100.1/30 dev wan0 && n_gw ip addr add 198.51.100.1/30 dev br0 &&
	n_gw ip link set br0 up && route_v4 br0 198.51.100.2 gw0 198.51.100.1 || die "bridge"
cut_and_gateways "bridge br0 with wan0"
check "bridge: audited as tamper" tamper_said "bridge br0" "took wan0 as a port"
# The other way round, the bridge named as the uplink: what it forwards between its ports never
# passes its own hooks, so --check warns and names the way out.
mkdir -p "$KS_TMP/bridged/policies" &&
	printf '[Uplinks]\nInterface=br0\n' >"$KS_TMP/bridged/policies/bridged.policy" || die "bridged policy"
out=$(n_gw "$KILLSWITCHD" --check --config-dir "$KS_TMP/bridged" 2>&1)
check "bridge named as the uplink: --check warns, FILE:LINE, and says to name its port" \
	contains "$out" "bridged.policy:2: warning: uplink br0 is a bridge" "name its port to the internet"
n_gw ip link set wan0 nomaster && n_gw ip link del br0 && n_gw ip addr add 198.51.100.1/30 dev wan0 &&
	v6_back && route_v4_back || die "bridge undone"
cut_and_gateways "bridge undone"

# --- a foreign netdev table forwarding between lan0 and wan0 at ingress ------------------------
# Frames are rewritten and forwarded at ingress, so no inet hook ever sees them.
wan_mac=$(mac gw wan0) lan_mac=$(mac gw lan0) gw0_mac=$(mac inet gw0) host_mac=$(mac lan eth0)
cat >"$KS_TMP/evil.nft" <<-EOF
	table netdev evil {
		chain from_lan {
			type filter hook ingress device "lan0" priority -500;
			ip daddr 192.0.2.80 ether saddr set $wan_mac ether daddr set $gw0_mac fwd to "wan0"
		}
		chain from_wan {
			type filter hook ingress device "wan0" priority -500;
			ip saddr 192.0.2.80 ether saddr set $lan_mac ether daddr set $host_mac fwd to "lan0"
		}
	}
EOF
ms=$(react_ms nft -f "$KS_TMP/evil.nft") || die "foreign netdev table"
note "netdev fwd: the agent re-asserted its netdev table ${ms} ms after 'nft -f' started"
check "netdev fwd: re-asserted within 2 s (${ms} ms)" test "$ms" != timeout -a "${ms:-9999}" -lt 2000
cut_and_gateways "foreign netdev fwd lan0 <-> wan0"
check "netdev fwd: audited as tamper (a chain hooked on wan0)" tamper_said "netdev" "evil" "wan0"
n_gw nft delete table netdev evil

# --- raw AF_PACKET sends -----------------------------------------------------------------------
# A UDP datagram to the web server, built by hand and sent on wan0 by a process with only
# CAP_NET_RAW (what a host-network container has). Counted where it would arrive.
raw_send() { # QDISC_BYPASS(0|1) PORT
	n_gw setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all,+net_raw \
		--ambient-caps=-all,+net_raw --bounding-set=-all,+net_raw /usr/bin/python3 -c '
import socket, struct, sys
bypass, port, dst_mac, src_mac = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    return ~(s + (s >> 16)) & 0xffff
payload = b"exfil-via-raw-socket"
udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                 socket.inet_aton("198.51.100.1"), socket.inet_aton("192.0.2.80"))
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
eth = bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", "")) + b"\x08\x00"
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
if bypass:
    s.setsockopt(263, 20, 1)  # SOL_PACKET, PACKET_QDISC_BYPASS
s.bind(("wan0", 0))
refused = 0
for _ in range(5):
    try:
        s.send(eth + ip + udp)
    except OSError:  # ENOBUFS: dropped on the way out
        refused += 1
print("5 sent, %d refused by the kernel" % refused)
' "$1" "$2" "$gw0_mac" "$wan_mac"
}
rx_counter_add inet raw_qdisc "ip daddr 192.0.2.80 udp dport 7001" || die "rx counter"
rx_counter_add inet raw_bypass "ip daddr 192.0.2.80 udp dport 7002" || die "rx counter"
check "raw: a process with only CAP_NET_RAW opens a packet socket on wan0 and sends" raw_send 0 7001
sleep 0.3
n=$(rx_count inet raw_qdisc)
check "raw AF_PACKET send through the qdisc: cut at egress (0 of 5 arrived, saw ${n:-?})" test "${n:-1}" = 0
check "raw: the same with PACKET_QDISC_BYPASS" raw_send 1 7002
sleep 0.3
n=$(rx_count inet raw_bypass)
check "raw AF_PACKET send with PACKET_QDISC_BYPASS: cut too, AF_PACKET runs the egress hook for it (saw ${n:-?})" \
	test "${n:-1}" = 0

# What a raw sender may still send is the policy's own pairs, no more: with [Service mx] kept for
# anyone on tcp/25, a frame to an arbitrary internet host's tcp/25, to the relay (connection-
# matched) on a port it does not keep, an ICMP echo and an ICMP error with a payload to an
# arbitrary host — none arrives. (Counted at the internet namespace's prerouting.)
raw_frame() { # KIND DST DPORT
	n_gw setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all,+net_raw \
		--ambient-caps=-all,+net_raw --bounding-set=-all,+net_raw /usr/bin/python3 -c '
import socket, struct, sys
kind, dst, dport, dst_mac, src_mac = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
def csum(b):
    b = b + b"\0" * (len(b) % 2)
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    return ~(s + (s >> 16)) & 0xffff
def ip4(proto, l4, src="198.51.100.1"):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + l4
payload = b"exfil-via-raw-socket"
if kind == "tcp":   # a data segment from a kept port pair only by its destination port
    l4 = struct.pack("!HHIIBBHHH", 40000, dport, 1, 1, 0x50, 0x18, 512, 0, 0) + payload
    pkt = ip4(6, l4)
elif kind == "echo":
    l4 = struct.pack("!BBHHH", 8, 0, 0, 1, 1) + payload
    pkt = ip4(1, l4[:2] + struct.pack("!H", csum(l4)) + l4[4:])
else:               # fragmentation needed, quoting a packet to port dport of the host
    quoted = ip4(6, struct.pack("!HHI", 40000, dport, 1), src=dst)
    l4 = struct.pack("!BBHHH", 3, 4, 0, 0, 1400) + quoted + payload
    pkt = ip4(1, l4[:2] + struct.pack("!H", csum(l4)) + l4[4:])
eth = bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", "")) + b"\x08\x00"
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("wan0", 0))
for _ in range(5):
    try:
        s.send(eth + pkt)
    except OSError:
        pass
' "$1" "$2" "$3" "$gw0_mac" "$wan_mac"
}
raw_none() { # COUNTER KIND DST DPORT
	raw_frame "$2" "$3" "$4" || return 1
	sleep 0.3
	local n
	n=$(rx_count inet "$1")
	[ "${n:-1}" = 0 ] || { echo "$1: $n of 5 arrived"; return 1; }
}
rx_counter_add inet raw_any25 "ip daddr 192.0.2.80 tcp dport 25" || die "rx counter"
rx_counter_add inet raw_relay "ip daddr 203.0.113.28 tcp dport 8080" || die "rx counter"
rx_counter_add inet raw_echo "ip daddr 192.0.2.80 icmp type echo-request" || die "rx counter"
rx_counter_add inet raw_error "ip daddr 192.0.2.80 icmp type destination-unreachable" || die "rx counter"
check "raw: to an arbitrary host's tcp/25 ([Service mx] From=any keeps only answers from :25): cut" \
	raw_none raw_any25 tcp 192.0.2.80 25
check "raw: to the relay (connection-matched) on a port it does not keep: cut" \
	raw_none raw_relay tcp 203.0.113.28 8080
check "raw: an ICMP echo with a payload to an arbitrary host: cut" raw_none raw_echo echo 192.0.2.80 0
check "raw: an ICMP error with a payload to an arbitrary host (quoting its port 9999): cut" \
	raw_none raw_error error 192.0.2.80 9999
cut_and_gateways "after the raw frames"

# A packet socket sets meta protocol (skb->protocol) from the protocol it is bound to, not from the
# frame, and the link layer's rules read the network header as meta protocol says while the next
# hop reads the frame by its ethertype. Two frames that got through before (the audit of
# 2026-12-02), counted at the far end's netdev ingress, before any reassembly:
#   - an IPv4/UDP datagram to the web server from a socket bound to ETH_P_ARP ("meta protocol arp
#     accept" let every frame of such a socket out: full internet access for CAP_NET_RAW);
#   - an IPv4 fragment from a socket bound to ETH_P_IPV6, its bytes laid out so that, read as an
#     IPv6 header, it is a fragment to the mail relay's IPv6 address (the gateway's fragment rule).
raw_labelled() { # KIND(arp|ip6) PORT
	n_gw setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all,+net_raw \
		--ambient-caps=-all,+net_raw --bounding-set=-all,+net_raw /usr/bin/python3 -c '
import socket, struct, sys
kind, port, dst_mac, src_mac = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    return ~(s + (s >> 16)) & 0xffff
if kind == "arp":
    label, proto, frag = 0x0806, 17, 0
    body = struct.pack("!HHHH", 40000, port, 28, 0) + b"exfil-by-arp-label\0\0"
else:   # byte 6 = 44 (IPv6: next header fragment): IPv4 MF and an offset; bytes 24-39 = 2001:db8:25::25
    label, proto, frag = 0x86DD, 253, 0x2c00
    body = struct.pack("!H", port) + b"\0\0" + socket.inet_pton(socket.AF_INET6, "2001:db8:25::25") + b"exfil-ip6-label"
    body += b"\0" * (len(body) % 2)
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 1, frag, 64, proto, 0,
                 socket.inet_aton("198.51.100.1"), socket.inet_aton("192.0.2.80"))
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
eth = bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", "")) + b"\x08\x00"
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(label))
s.bind(("wan0", label))
for _ in range(5):
    try:
        s.send(eth + ip + body)
    except OSError:
        pass
' "$1" "$2" "$gw0_mac" "$wan_mac"
}
n_inet nft add table netdev ks_label &&
	n_inet nft add chain netdev ks_label in '{ type filter hook ingress device "gw0" priority 0; }' &&
	n_inet nft add counter netdev ks_label arp_label &&
	n_inet nft add counter netdev ks_label ip6_label &&
	n_inet nft add rule netdev ks_label in ip daddr 192.0.2.80 udp dport 7004 counter name arp_label &&
	n_inet nft add rule netdev ks_label in ip daddr 192.0.2.80 ip protocol 253 counter name ip6_label ||
	die "far counters"
label_count() { n_inet nft list counter netdev ks_label "$1" | awk '$1 == "packets" { print $2; exit }'; }
check "raw, socket bound to ETH_P_ARP: 5 IPv4 datagrams sent to the web server" raw_labelled arp 7004
check "raw, socket bound to ETH_P_IPV6: 5 IPv4 fragments laid out as IPv6 to the mail relay sent" raw_labelled ip6 7005
sleep 0.3
n=$(label_count arp_label)
check "raw, an IPv4 frame that says it is ARP: cut (0 of 5 arrived, saw ${n:-?})" test "${n:-1}" = 0
n=$(label_count ip6_label)
check "raw, an IPv4 frame that says it is IPv6, to the mail relay's v6 address: cut (0 of 5, saw ${n:-?})" \
	test "${n:-1}" = 0
n_inet nft delete table netdev ks_label
check "raw: ARP itself still resolves the peer (neighbour entry of 198.51.100.2 after a flush)" \
	eval 'n_gw ip neigh flush dev wan0 && tcp_echo lan 203.0.113.25 25 &&
		n_gw ip neigh show dev wan0 | grep -q "198.51.100.2 .*lladdr"'

# Where nftables ends: tc runs before it. With CAP_NET_ADMIN, a tc egress filter on lan0 that
# redirects to wan0 (act_mirred) marks the frame to skip wan0's netfilter egress hook. Counted
# at the far end's netdev ingress (the frames keep the LAN host's MAC, so no IP hook sees them).
n_inet nft add table netdev ks_far &&
	n_inet nft add chain netdev ks_far in '{ type filter hook ingress device "gw0" priority 0; }' &&
	n_inet nft add rule netdev ks_far in udp dport 7003 counter || die "far counter"
if n_gw tc qdisc add dev lan0 clsact 2>/dev/null &&
	n_gw tc filter add dev lan0 egress protocol ip u32 match ip dport 7003 0xffff \
		action mirred egress redirect dev wan0 2>/dev/null; then
	n_gw bash -c 'for i in 1 2 3 4 5; do echo exfil >/dev/udp/10.0.1.2/7003; done'
	sleep 0.3
	n=$(n_inet nft list table netdev ks_far | awk '/counter packets/ { print $6 }')
	note "beyond nftables (CAP_NET_ADMIN): a tc egress redirect lan0 -> wan0 skips the egress hook: ${n:-?} of 5 arrived"
	n_gw tc qdisc del dev lan0 clsact
else
	note "SKIP tc: no clsact/u32/mirred in this kernel"
fi
check "docs/design.md says where nftables ends (tc, XDP, AF_XDP)" grep -q "mirred" "$KS_REPO/docs/design.md"
cut_and_gateways "after the raw sends"

# --- a rename while the agent is not running ---------------------------------------------------
# The state file knows wan0's ifindex: a restarted agent finds it under its new name, cuts it and
# says so as tamper.
check "state file: the uplinks' ifindexes" contains "$(cat "$KS_STATE/state.json")" '"ifindex"' '"wan0"'
agent_stop || die "stopping the agent"
n_gw ip link set wan0 down && n_gw ip link set wan0 name wanz && n_gw ip link set wanz up &&
	route_v4 wanz 198.51.100.2 gw0 198.51.100.1 || die "renaming wan0 while the agent is down"
agent_start || die "killswitchd did not start again"
wait_until 10 contains "$(n_gw nft list set inet killswitch isolate/uplinks)" '"wanz"'
cut_and_gateways "renamed to wanz while the agent was down"
check "renamed while down: wanz in isolate/uplinks" contains "$(n_gw nft list set inet killswitch isolate/uplinks)" '"wanz"'
check "renamed while down: audited as tamper" tamper_said "wan0" "renamed to wanz" "not running"
check "renamed while down: the state file now knows it as wanz" contains "$(cat "$KS_STATE/state.json")" '"wanz"'
n_gw ip link set wanz down && n_gw ip link set wanz name wan0 && n_gw ip link set wan0 up && v6_back &&
	route_v4_back || die "renaming back"
cut_and_gateways "renamed back after the restart"

# After that restart the uplinks adopted by their ifindex (wan0 and wan1) belong to the policy in
# force; a switch to a policy of wan0 alone leaves wan1 (the SIP provider's route) uncut, and the
# next restart adopts the table as it is (it rebuilt it while wan1 stayed in the cut).
printf '[Uplinks]\nInterface=wan0\n\n[Gateway mail]\nAddress=203.0.113.25\nPorts=tcp:25\n' \
	>"$KS_CONF/policies/wan0only.policy"
ctl reload >/dev/null
check_exit 0 "after the restart: isolate with wan0only (wan0 alone) returns 0" ctl isolate wan0only --reason "e2e: wan0 alone"
check_many <<EOF2
- wan0only: web v4 from lan cut (wan0)                          | tcp_echo lan 192.0.2.80 80
+ wan0only: mail tcp/25 from lan through                        | tcp_echo lan 203.0.113.25 25
+ wan0only: SIP provider tcp/8080 through wan1, not its uplink  | tcp_echo lan 203.0.113.5 8080
EOF2
check "wan0only: its uplinks set holds wan0 alone" \
	eval '[ "$(n_gw nft list set inet killswitch wan0only/uplinks | grep -o "\"wan[0-9]*\"" | tr "\n" " ")" = "\"wan0\" " ]'
agent_stop || die "stopping the agent"
lines0=$(wc -l <"$KS_LOG")
agent_start || die "killswitchd did not start again"
check "wan0only, restarted: the table is adopted as it is (not rebuilt)" eval '
	tail -n +$((lines0 + 1)) "$KS_LOG" | grep -q "policy wan0only is in force: the kernel still holds it, adopted"'
check_exit 0 "back to isolate" ctl isolate isolate --reason "e2e: links"
cut_and_gateways "back to isolate"

# --- a fight over the links: the rate limit ----------------------------------------------------
# Another manager binding chain after chain to wan0: the link layer is re-asserted at most 5 times
# in 10 s, then the agent backs off for 30 s and says so (as for the inet table); the cut holds.
log_lines() { wc -l <"$KS_LOG"; }
log_since() { tail -n +"$(($1 + 1))" "$KS_LOG" | grep -E -- "$2" || { echo "no /$2/ in the agent log"; return 1; }; }
log_since_count() { tail -n +"$(($1 + 1))" "$KS_LOG" | grep -cE -- "$2"; }
lines=$(log_lines)
for i in $(seq 1 8); do
	n_gw nft add table netdev "fight$i" &&
		n_gw nft add chain netdev "fight$i" c '{ type filter hook ingress device "wan0" priority 0; }'
	sleep 0.2
done
check "fight: RATE LIMIT of the link layer in the agent log" log_since "$lines" "RATE LIMIT: chains were bound"
check "fight: audited (rate-limit in the history)" \
	contains "$(ctl --json history -n 40)" '"rate-limit"' "not re-asserting the link layer"
check "fight: at most 5 re-assertions of the link layer in the window" \
	test "$(log_since_count "$lines" "Link layer of the cut in place")" -le 6
cut_and_gateways "during the back-off"
for i in $(seq 1 8); do n_gw nft delete table netdev "fight$i"; done

# --- restore lifts it all ----------------------------------------------------------------------
check_exit 0 "restore returns 0" ctl restore --reason "e2e: links over"
check "restore: no chain of ours bound to a device (the link layer stays staged, unhooked)" \
	test -z "$(n_gw nft list table netdev killswitch_links | grep hook)"
check "restore: web v4 from lan reachable" tcp_echo lan 192.0.2.80 80
check "restore: status --json layers only link tracking" status_is 'd["layers"] == ["link tracking"]'

# --- source routing through the gateway ---------------------------------------------------------
# With accept_source_route=1 / seg6_enabled=1 on the uplink (not the kernel's defaults), a packet
# from the internet addressed to the gateway, with an IPv4 loose/strict source route or an IPv6
# routing header naming a LAN host, is the gateway's own in prerouting (the DHCP and ND upkeep
# keep it) and is then forwarded to the LAN, where no chain of ours judges it (the audit of the
# cut, finding 3): dropped first while isolated, also an SRH behind a routing header whose segments
# left is 0 (the kernel walks on to it). Counted at the LAN host before anything there.
SRCROUTE_PY=$KS_REPO/tests/e2e/srcroute.py
N_SR=5
n_gw sysctl -q -w net.ipv4.conf.all.accept_source_route=1 net.ipv4.conf.wan0.accept_source_route=1 \
	net.ipv6.conf.all.seg6_enabled=1 net.ipv6.conf.wan0.seg6_enabled=1 || die "sysctls on gw"
rx_counter_add lan sr_v4 "ip saddr 198.51.100.2 udp sport 67 udp dport 68" || die "rx counter"
rx_counter_add lan sr_v6 "ip6 saddr 2001:db8:100::2 icmpv6 type nd-neighbor-advert" || die "rx counter"
sr_dropped() {
	local n
	n=$(n_gw nft list counter netdev killswitch_links isolate/dropped_in | awk '$1 == "packets" { print $2 }')
	echo "${n:-0}"
}
# sr_judged C L0 D0 — all N_SR packets reached the LAN (counter C) or were dropped at the gateway
sr_judged() { [ $(($(rx_count lan "$1") - $2 + $(sr_dropped) - $3)) -ge $N_SR ]; }
# sr_arrived COUNTER ARGS... — send N_SR packets of srcroute.py ARGS from inet, wait until each was
# judged (read at the LAN host or counted as dropped: order, not timing), print how many arrived
sr_arrived() {
	local c=$1 lan0 drop0
	shift
	lan0=$(rx_count lan "$c")
	drop0=$(sr_dropped)
	n_inet python3 "$SRCROUTE_PY" "$@" >/dev/null || { echo "send failed"; return; }
	wait_until 10 sr_judged "$c" "$lan0" "$drop0"
	echo $(($(rx_count lan "$c") - lan0))
}
sr_v4() { sr_arrived sr_v4 v4 198.51.100.2 198.51.100.1 10.0.1.2 $N_SR "$@"; }
sr_v6() { sr_arrived sr_v6 v6 2001:db8:100::2 2001:db8:100::1 fd00:1::2 $N_SR "$@"; }
check "normal, sysctls on: LSRR via the gateway reaches the LAN ($N_SR of $N_SR)" test "$(sr_v4)" = $N_SR
check "normal, sysctls on: SRH via the gateway reaches the LAN ($N_SR of $N_SR)" test "$(sr_v6)" = $N_SR
check_exit 0 "source routing: isolate returns 0" ctl isolate --reason "e2e: source routing"
dropped0=$(sr_dropped)
check "isolated: LSRR udp 67->68 via the gateway to 10.0.1.2: none arrive" test "$(sr_v4)" = 0
check "isolated: SSRR udp 67->68 via the gateway to 10.0.1.2: none arrive" test "$(sr_v4 --strict)" = 0
check "isolated: SRH ICMPv6 NA via the gateway to fd00:1::2: none arrive" test "$(sr_v6)" = 0
check "isolated: SRH behind a type 0 routing header (segments left 0): none arrive" test "$(sr_v6 --rh0)" = 0
check "isolated: the source-routed packets counted on isolate/dropped_in (link layer)" \
	test "$(sr_dropped)" -ge $((dropped0 + 3 * N_SR))
cut_and_gateways "source routing"
check_exit 0 "source routing: restore returns 0" ctl restore --reason "e2e: source routing over"
n_gw sysctl -q -w net.ipv4.conf.all.accept_source_route=0 net.ipv4.conf.wan0.accept_source_route=0 \
	net.ipv6.conf.all.seg6_enabled=0 net.ipv6.conf.wan0.seg6_enabled=0

agent_log_tail >/dev/null
summary
