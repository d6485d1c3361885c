#!/bin/bash
# SPDX-License-Identifier: MIT
#
# End-to-end test of issue 12, item 1: the link upkeep that an isolation keeps (neighbour
# discovery, DHCPv4, DHCPv6) is the gateway's own, on its uplinks, and never a tunnel for a LAN
# host or an internet host. In the namespace lab of lib.sh, with a third uplink wan2 whose
# address comes by DHCP from dnsmasq in the internet namespace (which also sends router
# advertisements there):
#
#   part 1  each attack packet is sent while normal (it must arrive: the probe works) and then
#           while isolated with the default policy (it must not arrive, and no answer comes back):
#           from the LAN, UDP 68 -> internet:67, UDP 546 -> internet v6:547, an ICMPv6 neighbour
#           solicitation with a payload to an internet address; from the internet, UDP 67 -> LAN
#           host:68, UDP 547 -> LAN host:546, a forged router advertisement and neighbour
#           solicitation to a LAN host; from a process on the gateway itself, UDP 68 -> an
#           internet host's 67 (unicast), UDP 546 -> internet:547, and an ND message with a
#           payload to an internet address;
#   part 2  the gateway's own upkeep still works while isolated: a real DHCP client (udhcpc)
#           renews its lease from dnsmasq, router advertisements reach the gateway (rdisc6 and
#           the kernel's own RA route), neighbour discovery of the upstream router after
#           `ip -6 neigh flush`, with the gateway's and the LAN's mail over IPv6 working, the
#           router's solicitations from its global address answered, ND below hop limit 255 cut,
#           and `killswitchctl show` equal to what the kernel lists.
#
# Every check prints "PASS: ..." or "FAIL: ..."; the last line is a summary. Exit 0 if all passed.
# Run as root: tests/e2e/test-exact-upkeep.sh   (KILLSWITCHD, KILLSWITCHCTL: see lib.sh)

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ks_init

[ -x "$KILLSWITCHD" ] || die "no agent at $KILLSWITCHD (build: meson setup build && meson compile -C build)"
[ -x "$KILLSWITCHCTL" ] || die "no client at $KILLSWITCHCTL"
for t in dnsmasq udhcpc rdisc6 ndisc6; do
	command -v "$t" >/dev/null || die "missing $t (tests/deps.sh installs it)"
done

UPKEEP_PY=$KS_REPO/tests/e2e/upkeep.py
pkt() { local ns=$1; shift; in_ns "$ns" python3 "$UPKEEP_PY" "$@"; }

note "lab: namespaces ${KS_PREFIX}{lan,gw,inet,mgmt}; agent $KILLSWITCHD"
lab_create

# The third uplink: wan2 (gw) <-> dhcp0 (inet), addressed by DHCP and router advertisements.
{
	ip -n "$NS_GW" link add wan2 type veth peer name dhcp0 netns "$NS_INET" &&
	n_gw sysctl -q -w net.ipv6.conf.wan2.accept_ra=2 net.ipv6.conf.wan2.accept_ra_defrtr=0 >/dev/null &&
	ip -n "$NS_GW" link set wan2 up &&
	ip -n "$NS_INET" addr add 100.64.0.1/24 dev dhcp0 &&
	ip -n "$NS_INET" addr add 2001:db8:64::1/64 dev dhcp0 nodad &&
	ip -n "$NS_INET" link set dhcp0 up
} || die "creating the DHCP uplink wan2"

cat >"$KS_CONF/policies/isolate.policy" <<'EOF'
[Policy]
Description=Lab: cut the uplinks, keep the mail relay; link upkeep by default

[Uplinks]
Interface=wan0 wan1 wan2

[Gateway mail]
Address=203.0.113.25 2001:db8:25::25
Ports=tcp:25
EOF

# Echo servers the attacks aim at: "internet" hosts on the DHCP server ports, a LAN host on the
# client ports. None of them is a gateway of the policy.
_udp_server inet 192.0.2.80 67
_udp_server inet 2001:db8:80::80 547
# The LAN's listeners on an address of their own, apart from the address the LAN's attacker
# sends from (else an echo would go to the other echo server, and back, and so on).
{ ip -n "$NS_LAN" addr add 10.0.1.3/24 dev eth0 && ip -n "$NS_LAN" addr add fd00:1::3/64 dev eth0 nodad; } ||
	die "second LAN address"
_udp_server lan 10.0.1.3 68
_udp_server lan fd00:1::3 546

# Arrival counters, before anything else in the receiving namespace sees the packet.
{
	rx_counter_add inet dhcp4_out "ip daddr 192.0.2.80 udp dport 67" &&
	rx_counter_add inet dhcp6_out "ip6 daddr 2001:db8:80::80 udp dport 547" &&
	rx_counter_add inet nd_out "ip6 daddr 2001:db8:80::80 icmpv6 type 135" &&
	rx_counter_add inet nd_out_gw "ip6 daddr 2001:db8:80::81 icmpv6 type 135" &&
	rx_counter_add inet dhcp4_gw "ip daddr 192.0.2.80 udp dport 67 udp sport 68 ip saddr 198.51.100.1" &&
	rx_counter_add lan dhcp4_in "udp dport 68" &&
	rx_counter_add lan dhcp6_in "udp dport 546" &&
	rx_counter_add lan ra_in "ip6 saddr 2001:db8:100::2 icmpv6 type 134" &&
	rx_counter_add lan ns_in "ip6 saddr 2001:db8:100::2 icmpv6 type 135"
} || die "arrival counters"
n_inet ip -6 addr add 2001:db8:80::81/128 dev lo nodad || die "second v6 internet address"

agent_start || die "killswitchd did not start"

# rx_above NS COUNTER N — the arrival counter is above N.
rx_above() { [ "$(rx_count "$1" "$2")" -gt "$3" ]; }
# arrives NS COUNTER CMD... — run CMD; succeed if COUNTER in NS went up (waits up to 5 s).
arrives() {
	local ns=$1 ctr=$2 before
	shift 2
	before=$(rx_count "$ns" "$ctr")
	"$@"
	wait_until 5 rx_above "$ns" "$ctr" "$before" || { echo "counter $ctr in $ns stayed at $before"; return 1; }
}
# stays_out NS COUNTER CMD... — run CMD (its own timeout is the margin), then one more second;
# succeed if COUNTER in NS did not move.
stays_out() {
	local ns=$1 ctr=$2 before after
	shift 2
	before=$(rx_count "$ns" "$ctr")
	"$@"
	sleep 1
	after=$(rx_count "$ns" "$ctr")
	[ "$after" -eq "$before" ] || { echo "counter $ctr in $ns went from $before to $after"; return 1; }
}

# The attack vectors: NAME | receiving namespace | its counter | the sending command.
# Each UDP one also expects the echo back (probe "answer") while normal, and none while isolated.
vectors() {
	cat <<'EOF'
lan-udp68-to-inet67|inet|dhcp4_out|pkt lan udp 68 192.0.2.80 67 --src 10.0.1.2
lan-udp546-to-inet547|inet|dhcp6_out|pkt lan udp 546 2001:db8:80::80 547 --src fd00:1::2
lan-nd135-payload-to-inet|inet|nd_out|pkt lan icmp6 135 2001:db8:80::80
inet-udp67-to-lan68|lan|dhcp4_in|pkt inet udp 67 10.0.1.3 68
inet-udp547-to-lan546|lan|dhcp6_in|pkt inet udp 547 fd00:1::3 546
inet-forged-ra-to-lan|lan|ra_in|pkt inet icmp6 134 fd00:1::2
inet-forged-ns-to-lan|lan|ns_in|pkt inet icmp6 135 fd00:1::2
gw-udp68-unicast-to-inet67|inet|dhcp4_gw|pkt gw udp 68 192.0.2.80 67
gw-udp546-to-inet547|inet|dhcp6_out|pkt gw udp 546 2001:db8:80::80 547
gw-process-nd135-payload-to-inet|inet|nd_out_gw|pkt gw icmp6 135 2001:db8:80::81
EOF
}

# =============================================================================================
# Part 1: the attacks.

note "part 1: normal - every attack packet arrives (the probes work)"
while IFS='|' read -r name ns ctr cmd; do
	# shellcheck disable=SC2086 # cmd is a command line
	check "normal: $name arrives (probe self-test)" arrives "$ns" "$ctr" $cmd
	case $cmd in *" udp "*)
		# shellcheck disable=SC2086
		check "normal: $name is answered (probe self-test)" $cmd ;;
	esac
done < <(vectors)

check_exit 0 "isolate with the default policy" ctl isolate --reason "e2e: exact upkeep"
check "isolated: mail v4 from lan still reachable" tcp_echo lan 203.0.113.25 25
check "isolated: web v4 from lan cut" eval '! tcp_echo lan 192.0.2.80 80'

note "part 1: isolated - every attack packet is cut, and nothing answers"
while IFS='|' read -r name ns ctr cmd; do
	# shellcheck disable=SC2086
	check "cut: $name does not arrive" stays_out "$ns" "$ctr" $cmd
	case $cmd in *" udp "*)
		# shellcheck disable=SC2086
		check_not "cut: $name gets no answer" $cmd ;;
	esac
done < <(vectors)

check_exit 0 "restore" ctl restore --reason "e2e: part 2"

# =============================================================================================
# Part 2: the gateway's own upkeep while isolated.

note "part 2: DHCP server and router advertisements on wan2; DHCP client on the gateway"
dnsmasq_start() {
	_spawn inet dnsmasq --conf-file=/dev/null --keep-in-foreground --user=root --group=root \
		--no-resolv --no-hosts --port=0 --interface=dhcp0 --bind-interfaces \
		--dhcp-range=100.64.0.10,100.64.0.20,255.255.255.0,2m --dhcp-authoritative \
		--dhcp-range=2001:db8:64::,ra-only,64,2m --enable-ra --ra-param=dhcp0,high,4,1800 \
		--dhcp-leasefile="$KS_TMP/dnsmasq.leases" --pid-file="$KS_TMP/dnsmasq.pid" \
		--log-dhcp --log-facility="$KS_TMP/dnsmasq.log"
}
dnsmasq_start
cat >"$KS_TMP/udhcpc.script" <<EOF
#!/bin/sh
# udhcpc's events, recorded; the address goes on wan2 and nothing else is touched.
echo "\$(date +%s) \$1 \${ip:-} \${serverid:-}" >>"$KS_TMP/udhcpc.events"
case "\$1" in
bound|renew) ip -4 addr replace "\$ip/\${mask:-24}" dev "\$interface" ;;
deconfig) ip -4 addr flush dev "\$interface" ;;
esac
exit 0
EOF
chmod 755 "$KS_TMP/udhcpc.script"
: >"$KS_TMP/udhcpc.events"
_spawn gw udhcpc -f -i wan2 -s "$KS_TMP/udhcpc.script" -p "$KS_TMP/udhcpc.pid" -t 20 -T 1 -A 1
events() { grep -c " $1 " "$KS_TMP/udhcpc.events"; }
events_above() { [ "$(events "$1")" -gt "$2" ]; }
acks() { grep -c DHCPACK "$KS_TMP/dnsmasq.log"; }
wait_until 20 grep -q " bound " "$KS_TMP/udhcpc.events" || die "udhcpc got no lease from dnsmasq on wan2"
lease_ip=$(awk '$2 == "bound" { print $3; exit }' "$KS_TMP/udhcpc.events")
note "lease $lease_ip on wan2"

# What passed our prerouting chain into the gateway itself, counted after it (input, priority 100).
{
	n_gw nft add table inet ks_after '{ chain in { type filter hook input priority 100; }; }' &&
	n_gw nft add counter inet ks_after ns_hop64 && n_gw nft add counter inet ks_after ns_hop255 &&
	n_gw nft add rule inet ks_after in icmpv6 type 135 ip6 saddr 2001:db8:100::2 ip6 hoplimit 64 counter name ns_hop64 &&
	n_gw nft add rule inet ks_after in icmpv6 type 135 ip6 saddr 2001:db8:100::2 ip6 hoplimit 255 counter name ns_hop255 &&
	n_gw nft add counter inet ks_after dhcp_ack && n_gw nft add counter inet ks_after dhcp6_reply &&
	n_gw nft add rule inet ks_after in udp sport 67 udp dport 68 counter name dhcp_ack &&
	n_gw nft add rule inet ks_after in udp sport 547 udp dport 546 counter name dhcp6_reply
} || die "counters in gw"
after_count() { n_gw nft list counter inet ks_after "$1" | awk '$1 == "packets" { print $2; exit }'; }
after_above() { [ "$(after_count "$1")" -gt "$2" ]; }

check_exit 0 "isolate again" ctl isolate --reason "e2e: exact upkeep, part 2"

# `show` prints what the kernel lists (the uplinks set aside: nft lists it in hash order; and the
# elements of the drop sensor's sets: what this test's cut traffic put there, not the policy).
shown_equals_kernel() {
	# The kernel also shows who owns the table (flags owner) and who built it (its comment, the digest
	# of its rules): not part of the policy.
	diff -B <(ctl show isolate | grep -v '"wan') \
		<(n_gw nft list table inet killswitch | sed -E -e 's/packets [0-9]+ bytes [0-9]+/packets 0 bytes 0/' \
			-e 's/ # progname .*//' -e '/^\tflags owner/d' -e '/^\tcomment "killswitchd /d' | grep -v '"wan' | without_drops_elements)
}
check "isolated: killswitchctl show equals nft list table inet killswitch" shown_equals_kernel

# --- DHCPv4: the real client renews while isolated.
renews=$(events renew)
acks=$(acks)
in_ns gw kill -USR1 "$(cat "$KS_TMP/udhcpc.pid")"
check "isolated: udhcpc renews its lease on wan2 (SIGUSR1)" \
	wait_until 20 events_above renew "$renews"
check "isolated: dnsmasq acknowledged the renewal" test "$(acks)" -gt "$acks"
check "isolated: the leased address is still on wan2" eval "n_gw ip -4 addr show dev wan2 | grep -q 'inet $lease_ip/'"
# The allowances themselves, with the kernel's own sockets: the gateway's broadcast from port 68
# reaches the DHCP segment; a reply to the gateway's address from port 67 reaches the gateway.
rx_counter_add inet bcast67 "ip daddr 255.255.255.255 udp dport 67 udp sport 68 iifname dhcp0" ||
	die "broadcast counter"
check "isolated: gateway's DHCPv4 broadcast 68 -> 255.255.255.255:67 on wan2 goes out" \
	arrives inet bcast67 pkt gw udp 68 255.255.255.255 67 --dev wan2 --wait 0.2
before=$(after_count dhcp_ack)
pkt inet udp 67 "$lease_ip" 68 --dev dhcp0 --wait 0.2 >/dev/null
check "isolated: a DHCPv4 reply 67 -> the gateway's address:68 reaches the gateway" \
	wait_until 5 after_above dhcp_ack "$before"

# --- DHCPv6: the client's multicast out, the server's reply to the link-local address in.
rx_counter_add inet dhcp6_mc "ip6 daddr ff02::1:2 udp dport 547 iifname dhcp0" || die "dhcp6 counter"
check "isolated: gateway's DHCPv6 546 -> ff02::1:2:547 on wan2 goes out" \
	arrives inet dhcp6_mc pkt gw udp 546 ff02::1:2 547 --dev wan2 --wait 0.2
gw_ll=$(n_gw ip -6 -o addr show dev wan2 scope link | awk '{ sub("/.*", "", $4); print $4; exit }')
before=$(after_count dhcp6_reply)
pkt inet udp 547 "$gw_ll%dhcp0" 546 --dev dhcp0 --wait 0.2 >/dev/null
check "isolated: a DHCPv6 reply 547 -> the gateway's link-local:546 reaches the gateway" \
	wait_until 5 after_above dhcp6_reply "$before"

# --- Router advertisements: to a process (rdisc6 solicits) and to the kernel (its RA route).
# The prefix route the kernel made from an earlier advertisement, gone: only a new one brings it back.
wait_until 10 eval 'n_gw ip -6 route show dev wan2 | grep -q "^2001:db8:64::/64"' ||
	note "no advertisement on wan2 yet"
n_gw ip -6 route del 2001:db8:64::/64 dev wan2 2>/dev/null
check "isolated: rdisc6 on the gateway gets dnsmasq's router advertisement on wan2" \
	in_ns gw rdisc6 -1 -r 5 -w 1000 wan2
# (The advertised prefix's route, not a default route: that would take the lab's traffic off wan0.)
ra_prefix_learnt() { n_gw ip -6 route show dev wan2 | grep -q "^2001:db8:64::/64 .*expires"; }
check "isolated: the kernel learnt the advertised prefix's route on wan2" \
	eval 'wait_until 10 ra_prefix_learnt || { n_gw ip -6 route show dev wan2; n_gw ip -6 addr show dev wan2; false; }'

# --- Neighbour discovery of the upstream router (wan0) from scratch.
n_gw ip -6 neigh flush dev wan0
n_inet ip -6 neigh flush dev gw0
check "isolated: after ip -6 neigh flush, the gateway's own mail over v6 works" \
	tcp_echo gw 2001:db8:25::25 25
check "isolated: after ip -6 neigh flush, the LAN's mail over v6 works" \
	tcp_echo lan 2001:db8:25::25 25
router_resolved() {
	local n
	n=$(n_gw ip -6 neigh show dev wan0)
	grep -qE "^2001:db8:100::2 .*(REACHABLE|STALE|DELAY|PROBE)" <<<"$n" || { printf '%s\n' "$n"; return 1; }
}
check "isolated: the upstream router is a resolved neighbour again" router_resolved
check "isolated: the router's solicitation from its global address is answered (kernel NA)" \
	in_ns inet ndisc6 -1 -r 5 -w 1000 -s 2001:db8:100::2 2001:db8:100::1 gw0
check "isolated: a process on the gateway resolves the router (ndisc6 via multicast)" \
	in_ns gw ndisc6 -1 -r 5 -w 1000 2001:db8:100::2 wan0
# MLD: the gateway's listener reports (what keeps ND's multicast coming through a snooping switch).
rx_counter_add inet mld2 "icmpv6 type mld2-listener-report ip6 daddr ff02::16 iifname gw0" || die "mld counter"
check "isolated: the gateway's MLD report for a group it joins goes out on wan0" \
	arrives inet mld2 pkt gw join wan0 ff02::1:3
before64=$(after_count ns_hop64) before255=$(after_count ns_hop255)
pkt inet icmp6 135 2001:db8:100::1 --hops 64 --dev gw0
pkt inet icmp6 135 2001:db8:100::1 --hops 255 --dev gw0
check "isolated: ND with hop limit 255 reaches the gateway" \
	wait_until 5 after_above ns_hop255 "$before255"
check "isolated: ND with hop limit 64 (not on-link) is cut" test "$(after_count ns_hop64)" -eq "$before64"

check_exit 0 "restore at the end" ctl restore --reason "e2e: done"
summary
