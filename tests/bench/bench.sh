#!/bin/bash
# SPDX-License-Identifier: MIT
#
# killswitch benchmark, run by hand (not part of the tests):
#
#     sudo tests/bench/bench.sh [--quick] [--only throughput|latency|switch|cost] [--profile] [--out FILE] [--keep]
#
# Builds a small lab of network namespaces, starts killswitchd in its gateway and measures, in one
# run, side by side (see docs/performance.md for what each figure means and for the goals):
#
#   1. `killswitchctl isolate P` until it returns vs `nft -f` of the same ruleset (the output of
#      `killswitchctl show P` renamed to `table inet nftbench`), for allowlists of 10, 1,000,
#      10,000 and 100,000 addresses; alternating runs, median, p10-p90, ratio;
#   2. the agent's own apply time (`apply_usec` of `killswitchctl status --json`);
#   3. packets of a cut flow (a UDP flood lan -> web peer) received after `isolate` returned;
#   4. TCP throughput lan -> allowlisted peer (iperf3): no killswitch table, normal, isolated;
#      and inet -> a [Service] on the lan host (policy v2, matched on conntrack tuples): no table,
#      isolated with the 10,000-entry policy plus the service;
#   5. the agent's RSS idle with a tiny policy and with 100,000 entries staged, and its idle
#      wake-ups (context switches);
#   6. `isolate` p50/p99 while the agent is busy: idle; reloads waiting for a name server that
#      drops its queries; reloads re-staging the 100,000-entry policy; 100 clients calling status
#      and history.
#
# The lab (namespace names carry this run's pid):
#
#   ksb<pid>-lan  10.0.1.2 ── lan0 ┐
#                                  ksb<pid>-gw (forwarding; killswitchd runs here)
#                           wan0 ──┤ 198.51.100.1/30 ── gw0 ┐
#                           wan1 ──┘ 198.51.100.5/30 ── gw1 ┤ ksb<pid>-inet, on lo:
#                                                           │  192.0.2.80   "web", cut by every policy
#                                                           └  203.0.113.5  allowlisted peer (tcp:443 udp:5060)
#
# Every packet stays inside these namespaces; nft only ever runs inside the lab's gateway
# namespace, never on the host's own ruleset. Everything is removed on exit (--keep keeps the
# results directory).
#
# --quick: 5 timing runs per size instead of 30, 3 leak switches instead of 10, one 2 s iperf3
# round instead of five of 1+4 s, 3 s idle samples instead of 10 s: under 2 minutes.
# --only throughput: only part 4 (the agent starts with all bench policies staged), with the
# rounds of the chosen mode; the report marks the other parts "not measured".
# --only latency: only part 6, likewise; --only switch: only parts 1-2.
# --only cost: part 4's states measured as CPU time per kB moved (client, server, ksoftirqd/0),
# 5 rounds of 5 s (--quick: 2 of 3 s); with --profile also a cpu-clock profile of CPU 0 per run
# and the share of the path's samples in the hooks, our chains, set lookups and conntrack.
# Environment: KILLSWITCHD, KILLSWITCHCTL (skip the build and use these), BENCH_BUILD_DIR (default
# build-bench in the repository); KILLSWITCHD_B, KILLSWITCHCTL_B with --only cost: a second
# build's isolated states in the same rounds (before/after a change, under the same load).

set -u
export LC_ALL=C.UTF-8
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$REPO/tests/bench

QUICK=0 OUT="" KEEP=0 ONLY="" PROFILE=0
while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1 ;;
	--only) ONLY=${2:?--only needs a part: throughput, latency or switch}; shift ;;
	--only=*) ONLY=${1#--only=} ;;
	--out) OUT=${2:?--out needs a file}; shift ;;
	--out=*) OUT=${1#--out=} ;;
	--keep) KEEP=1 ;;
	--profile) PROFILE=1 ;;
	-h | --help) sed -n '3,48p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
[ -n "$OUT" ] && case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac
case $ONLY in
"" | throughput | latency | switch | cost) ;;
*) echo "bench.sh: --only takes \"throughput\", \"latency\", \"switch\" or \"cost\", not \"$ONLY\"" >&2; exit 2 ;;
esac

if [ "$(id -u)" -ne 0 ]; then
	echo "bench.sh needs root (network namespaces, nftables): sudo $0 $*" >&2
	exit 1
fi

if [ "$QUICK" = 1 ]; then
	REPS=5 LEAK_REPS=3 IPERF_SECS=2 IPERF_OMIT=0 IPERF_ROUNDS=1 IDLE_SECS=3 LAT_REPS=50 MODE=quick
	COST_ROUNDS=2 COST_SECS=3
else
	REPS=30 LEAK_REPS=10 IPERF_SECS=4 IPERF_OMIT=1 IPERF_ROUNDS=5 IDLE_SECS=10 LAT_REPS=300 MODE=full
	COST_ROUNDS=5 COST_SECS=5
fi
SIZES=(10 1000 10000 100000)
FLOOD_PPS=50000

# Background processes are started with a plain `ip netns exec` (it execs the command), never
# through a shell function, so that $! is the process itself and a signal reaches it.
say() { printf '\n== %s\n' "$*"; }
info() { printf '   %s\n' "$*"; }
die() {
	printf 'bench.sh: %s\n' "$*" >&2
	[ -n "${LOG:-}" ] && [ -s "$LOG" ] && { echo "--- last lines of the agent's log:" >&2; tail -n 20 "$LOG" >&2; }
	exit 1
}
T_START=$(date +%s)

# --- dependencies and build --------------------------------------------------------------------
say "Dependencies"
# shellcheck source-path=SCRIPTDIR source=../deps.sh
. "$REPO/tests/deps.sh" || die "cannot read tests/deps.sh"
KS_PACKAGES+=(iperf3 socat nftables iproute2 python3 procps)
ks_install_deps || die "could not install the dependencies (apt-get failed)"
info "all present."
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)

if [ -z "${KILLSWITCHD:-}" ] || [ -z "${KILLSWITCHCTL:-}" ]; then
	BUILD=${BENCH_BUILD_DIR:-$REPO/build-bench}
	say "Building killswitch in $BUILD"
	if [ ! -f "$BUILD/build.ninja" ]; then
		meson setup "$BUILD" "$REPO" -Dbuildtype=release >/dev/null || die "meson setup failed"
	fi
	# Only the two programs: the benchmark needs nothing else.
	meson compile -C "$BUILD" killswitchd killswitchctl >/dev/null ||
		{ meson compile -C "$BUILD" killswitchd killswitchctl; die "the build failed"; }
	KILLSWITCHD=$BUILD/agent/killswitchd
	KILLSWITCHCTL=$BUILD/ctl/killswitchctl
	# The pure core alone (parse, compile, batch of 2 x 100,000 entries): printed, not in the report.
	if meson compile -C "$BUILD" bench-compile >/dev/null 2>&1; then
		say "The pure core, without a kernel"
		"$BUILD/tests/bench/bench-compile"
	fi
	# The switch's kernel transaction for candidate designs (a namespace of its own): printed.
	if { [ -z "$ONLY" ] || [ "$ONLY" = switch ]; } && meson compile -C "$BUILD" bench-switch >/dev/null 2>&1; then
		say "The switch's transaction: today's and the dormant-table designs (tests/bench/bench-switch.c)"
		"$BUILD/tests/bench/bench-switch" "$( [ "$QUICK" = 1 ] && echo 100 || echo 300 )" ||
			info "bench-switch failed (printed figures only)"
	fi
fi
{ [ -x "$KILLSWITCHD" ] && [ -x "$KILLSWITCHCTL" ]; } || die "no killswitchd/killswitchctl binaries"
info "$KILLSWITCHD"

# --- the lab -----------------------------------------------------------------------------------
P=ksb$$-
NS_LAN=${P}lan NS_GW=${P}gw NS_INET=${P}inet
WEB=192.0.2.80 PEER=203.0.113.5 LAN_HOST=10.0.1.2
TMP=$(mktemp -d /tmp/ks-bench.XXXXXX) || die "mktemp failed"
chmod 755 "$TMP"
CONF=$TMP/etc STATE=$TMP/state SOCK=$TMP/run/control.sock LOG=$TMP/agent.log RES=$TMP/results
mkdir -p "$CONF/policies" "$STATE" "$TMP/run" "$RES" "$TMP/staged"
LAB_UP=0 AGENT_PID="" IPERF_PID="" IPERF_SVC_PID=""
PIDS=()

n_lan() { ip netns exec "$NS_LAN" "$@"; }
n_gw() { ip netns exec "$NS_GW" "$@"; }
n_inet() { ip netns exec "$NS_INET" "$@"; }
ctl() { timeout 120 "$KILLSWITCHCTL" --socket "$SOCK" "$@"; }
bench() { "$PY" "$HERE/bench.py" "$@"; }

# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
	local ns pid
	set +u
	{
		[ -n "$AGENT_PID" ] && kill -KILL "$AGENT_PID"
		for pid in "${PIDS[@]}"; do kill "$pid"; done
		wait
	} 2>/dev/null
	if [ "$LAB_UP" = 1 ]; then
		rm -rf "/etc/netns/$NS_GW"
		for ns in "$NS_LAN" "$NS_GW" "$NS_INET"; do
			for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
			ip netns del "$ns" 2>/dev/null
		done
	fi
	wait 2>/dev/null
	if [ "$KEEP" = 1 ]; then
		echo "bench.sh: results kept in $TMP" >&2
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

iperf_server() {
	ip netns exec "$NS_INET" iperf3 -s -B $PEER -p 443 >>"$TMP/iperf3-server.log" 2>&1 &
	IPERF_PID=$!
	PIDS+=("$IPERF_PID")
	# The service on the lan host (policy v2: inbound only, kept by a [Service]).
	ip netns exec "$NS_LAN" iperf3 -s -B $LAN_HOST -p 443 >>"$TMP/iperf3-server.log" 2>&1 &
	IPERF_SVC_PID=$!
	PIDS+=("$IPERF_SVC_PID")
	local i
	for ((i = 0; i < 100; i++)); do
		n_inet ss -Htln "sport = :443" | grep -q . && n_lan ss -Htln "sport = :443" | grep -q . && return 0
		sleep 0.05
	done
	die "iperf3 server does not listen"
}

lab_create() {
	local ns
	LAB_UP=1
	for ns in "$NS_LAN" "$NS_GW" "$NS_INET"; do
		ip netns add "$ns" || die "ip netns add $ns"
		ip netns exec "$ns" sysctl -q -w net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
			net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 >/dev/null
		ip -n "$ns" link set lo up
	done
	{
		ip -n "$NS_GW" link add lan0 type veth peer name eth0 netns "$NS_LAN" &&
		ip -n "$NS_GW" link add wan0 type veth peer name gw0 netns "$NS_INET" &&
		ip -n "$NS_GW" link add wan1 type veth peer name gw1 netns "$NS_INET" &&
		ip -n "$NS_LAN" link set eth0 up &&
		ip -n "$NS_GW" link set lan0 up && ip -n "$NS_GW" link set wan0 up && ip -n "$NS_GW" link set wan1 up &&
		ip -n "$NS_INET" link set gw0 up && ip -n "$NS_INET" link set gw1 up &&

		ip -n "$NS_LAN" addr add 10.0.1.2/24 dev eth0 &&
		ip -n "$NS_LAN" route add default via 10.0.1.1 &&

		ip -n "$NS_GW" addr add 10.0.1.1/24 dev lan0 &&
		ip -n "$NS_GW" addr add 198.51.100.1/30 dev wan0 &&
		ip -n "$NS_GW" addr add 198.51.100.5/30 dev wan1 &&
		ip -n "$NS_GW" route add default via 198.51.100.2 dev wan0 &&
		ip -n "$NS_GW" route add $PEER/32 via 198.51.100.6 dev wan1 &&
		n_gw sysctl -q -w net.ipv4.ip_forward=1 >/dev/null &&

		ip -n "$NS_INET" addr add 198.51.100.2/30 dev gw0 &&
		ip -n "$NS_INET" addr add 198.51.100.6/30 dev gw1 &&
		ip -n "$NS_INET" addr add $WEB/32 dev lo &&
		ip -n "$NS_INET" addr add $PEER/32 dev lo &&
		ip -n "$NS_INET" route add 10.0.1.0/24 via 198.51.100.1 dev gw0 &&
		ip -n "$NS_INET" route add 10.0.1.0/24 via 198.51.100.5 dev gw1 table 101 &&
		ip -n "$NS_INET" rule add from $PEER lookup 101
	} || die "configuring the lab's links, addresses and routes"

	iperf_server
	local i
	for ((i = 0; i < 100; i++)); do
		n_lan ping -n -q -c1 -W 0.2 $PEER >/dev/null 2>&1 && n_lan ping -n -q -c1 -W 0.2 $WEB >/dev/null 2>&1 &&
			n_inet ss -Htln "sport = :443" | grep -q . && return 0
		sleep 0.05
	done
	die "the lab does not route lan -> inet"
}

agent_start() {
	printf -- '--- start %s\n' "$(date +%T.%N)" >>"$LOG"
	ip netns exec "$NS_GW" "$KILLSWITCHD" --config-dir "$CONF" --state-dir "$STATE" --socket "$SOCK" \
		>>"$LOG" 2>&1 &
	AGENT_PID=$!
	local i
	for ((i = 0; i < 1200; i++)); do
		kill -0 "$AGENT_PID" 2>/dev/null || { AGENT_PID=; die "killswitchd exited at start"; }
		[ -S "$SOCK" ] && ctl status >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	die "killswitchd does not answer after 60 s"
}

agent_stop() {
	local i
	[ -n "$AGENT_PID" ] || return 0
	kill -TERM "$AGENT_PID" 2>/dev/null
	for ((i = 0; i < 200; i++)); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.05; done
	kill -KILL "$AGENT_PID" 2>/dev/null
	wait "$AGENT_PID" 2>/dev/null
	AGENT_PID=
}

# No killswitch table at all: the agent is stopped, and whatever it left in the lab gateway's
# own ruleset (dormant or not) is flushed. Only ever inside the lab namespace.
no_killswitch() {
	agent_stop
	n_gw nft flush ruleset || die "nft flush ruleset in $NS_GW failed"
	[ -z "$(n_gw nft list tables)" ] || die "tables left in $NS_GW after flush"
}

# iperf_conntrack — the "none" runs again, still without a killswitch table, but with connection
# tracking on in the gateway namespace, as on any gateway that masquerades or filters statefully: a
# table of the site's with one unhooked chain whose rule reads `ct state` (the kernel starts tracking
# in a namespace as soon as any rule there uses ct, hooked or not; killswitch's staged policies do).
# Measured so that the cost of connection tracking and the cost of killswitch's rules can be told apart.
iperf_conntrack() {
	n_gw nft -f - <<<'table inet bench_site { chain c { ct state established accept; }; }' ||
		die "could not load the conntrack-only table in $NS_GW"
	iperf none_ct
	iperf svc_none_ct
	n_gw nft delete table inet bench_site || die "could not delete the conntrack-only table"
}

# iperf LABEL — one TCP run lan -> peer:443, added to the results under LABEL.
# Client and server are both pinned to CPU 0 (-A 0,0), with zero-copy sends (-Z): a veth path is
# processed on the sending CPU, so the whole path (client, gw forwarding and its nftables hooks,
# server) runs on one CPU and any per-packet cost of the ruleset shows as lost throughput.
# Unpinned, the scheduler's placement makes runs on a 2-CPU VM vary between 8 and 20 Gbit/s;
# pinned, they repeat within a few per cent.
# A run that breaks off (the allowlisted flow reset) is counted, reported, and repeated once the agent
# is quiet; a second failure ends the benchmark.
# iperf svc_LABEL: the other way, an internet host ($WEB) -> the service on the lan host.
iperf() {
	local j=$TMP/iperf-$1-$RANDOM.json try
	local -a client=(n_lan iperf3 -c $PEER)
	case $1 in svc_*) client=(n_inet iperf3 -c $LAN_HOST -B $WEB) ;; esac
	for try in 1 2; do
		if "${client[@]}" -p 443 -t "$IPERF_SECS" -O "$IPERF_OMIT" -A 0,0 -Z -J >"$j" 2>&1 &&
			bench iperf-add --label "$1" --json "$j" --out "$RES/throughput.json" 2>/dev/null; then
			return 0
		fi
		info "iperf3 ($1) broke off: $(grep -o '"error":.*' "$j" | head -n1)"
		bench put iperf_broken 1 --add --out "$RES/extra.json"
		[ "$try" = 2 ] && break
		# The server may still be stuck in the broken test: restart it.
		kill "$IPERF_PID" "$IPERF_SVC_PID" 2>/dev/null
		wait "$IPERF_PID" "$IPERF_SVC_PID" 2>/dev/null
		iperf_server
		[ -n "$AGENT_PID" ] && bench settle --pid "$AGENT_PID"
	done
	die "iperf3 ($1) failed twice"
}

# iperf_cost LABEL — one iperf3 run like `iperf`, but charged to the bytes it moved: the CPU time
# of client, server and ksoftirqd/0 (everything is pinned to CPU 0) per kB (bench.py iperf-cost).
# Robust to other work on the machine, which takes CPU time away but does not add to ours.
# With --profile, a cpu-clock profile of CPU 0 per run in $TMP/perf/ (see --keep).
iperf_cost() {
	local j=$TMP/cost-$1-$RANDOM.json server=$IPERF_PID try
	local -a client=(ip netns exec "$NS_LAN" iperf3 -c "$PEER") perf=()
	case $1 in svc_*) client=(ip netns exec "$NS_INET" iperf3 -c "$LAN_HOST" -B "$WEB") server=$IPERF_SVC_PID ;; esac
	[ "$PROFILE" = 1 ] && mkdir -p "$TMP/perf" && perf=(--perf "$TMP/perf/$1-$COST_ROUND.data")
	for try in 1 2; do
		bench iperf-cost --label "$1" --json "$j" --server-pid "$server" --out "$RES/cost.json" "${perf[@]}" \
			-- "${client[@]}" -p 443 -t "$COST_SECS" -O 0 -A 0,0 -Z -J && return 0
		[ "$try" = 2 ] && break
		kill "$IPERF_PID" "$IPERF_SVC_PID" 2>/dev/null
		wait "$IPERF_PID" "$IPERF_SVC_PID" 2>/dev/null
		iperf_server
		[ -n "$AGENT_PID" ] && bench settle --pid "$AGENT_PID"
	done
	die "iperf3 ($1) failed twice"
}

# cost_part_b — the isolated states again with a second build (KILLSWITCHD_B, KILLSWITCHCTL_B) in
# the same round, labelled isolated_b and svc_isolated_b: before/after a change under the same load.
cost_part_b() {
	local a=$KILLSWITCHD actl=$KILLSWITCHCTL
	# Without the table of build A: an agent adopts a table of the same shape instead of rebuilding.
	no_killswitch
	KILLSWITCHD=$KILLSWITCHD_B KILLSWITCHCTL=${KILLSWITCHCTL_B:?KILLSWITCHD_B needs KILLSWITCHCTL_B}
	agent_start
	bench settle --pid "$AGENT_PID"
	ctl isolate bench10000 --reason "bench cost" >/dev/null || die "isolate bench10000 failed (build B)"
	iperf_cost isolated_b
	ctl isolate svc10000 --reason "bench cost" >/dev/null || die "isolate svc10000 failed (build B)"
	iperf_cost svc_isolated_b
	ctl restore --reason "bench cost" >/dev/null || die "restore failed (build B)"
	no_killswitch
	KILLSWITCHD=$a KILLSWITCHCTL=$actl
}

# cost_part — --only cost: per round, every state of part 4 measured by iperf_cost.
cost_part() {
	local site='table inet bench_site { chain c { ct state established accept; }; }'
	cp "$TMP/staged/"*.policy "$CONF/policies/"
	for ((COST_ROUND = 1; COST_ROUND <= COST_ROUNDS; COST_ROUND++)); do
		say "CPU per byte, round $COST_ROUND of $COST_ROUNDS (iperf3 ${COST_SECS}s per state)"
		no_killswitch
		iperf_cost none
		iperf_cost svc_none
		n_gw nft -f - <<<"$site" || die "could not load the conntrack-only table in $NS_GW"
		iperf_cost none_ct
		iperf_cost svc_none_ct
		n_gw nft delete table inet bench_site || die "could not delete the conntrack-only table"
		agent_start
		bench settle --pid "$AGENT_PID"
		state_is normal || die "the agent did not start normal"
		iperf_cost normal
		iperf_cost svc_normal
		ctl isolate bench10000 --reason "bench cost" >/dev/null || die "isolate bench10000 failed"
		iperf_cost isolated
		ctl isolate svc10000 --reason "bench cost" >/dev/null || die "isolate svc10000 failed"
		iperf_cost svc_isolated
		ctl restore --reason "bench cost" >/dev/null || die "restore failed"
		[ -n "${KILLSWITCHD_B:-}" ] && cost_part_b
	done
	agent_stop
	say "CPU per byte, load average $(cut -d' ' -f1 /proc/loadavg) at the end (total $(($(date +%s) - T_START)) s)"
	echo
	{
		bench cost-report --json "$RES/cost.json"
		if [ "$PROFILE" = 1 ]; then
			echo
			bench profile-report --dir "$TMP/perf" --cost "$RES/cost.json"
		fi
	} | tee ${OUT:+"$OUT"}
}

# state_is STATE [POLICY]
state_is() {
	ctl --json=short status | "$PY" -c '
import json, sys
d = json.load(sys.stdin); d = d.get("parameters", d)
ok = d.get("state") == sys.argv[1] and (len(sys.argv) < 3 or d.get("policy") == sys.argv[2])
sys.exit(0 if ok else 1)' "$@"
}

# web_cut — the web peer does not answer from lan (ping) while its flow is meant to be cut.
web_cut() { ! n_lan ping -n -q -c1 -W 0.3 $WEB >/dev/null 2>&1; }

# latency_part — part 6: isolate p50/p99 idle and under three kinds of load (all policies staged).
latency_part() {
	local lat=(latency --ctl "$KILLSWITCHCTL" --socket "$SOCK" --policy tiny --reps "$LAT_REPS"
		--out "$RES/latency.json")
	say "isolate while the agent is busy ($LAT_REPS isolations per load)"
	bench settle --pid "$AGENT_PID"
	bench "${lat[@]}" --load idle || die "latency (idle)"
	# (a) A gateway by host name, and a name server that drops every query: the gw namespace's
	# resolv.conf (bind-mounted by ip netns exec) points into the inet namespace, which drops port 53.
	mkdir -p "/etc/netns/$NS_GW"
	printf 'nameserver 198.51.100.2\noptions timeout:5 attempts:2\n' >"/etc/netns/$NS_GW/resolv.conf"
	n_inet nft add table inet deaddns &&
		n_inet nft add chain inet deaddns input '{ type filter hook input priority 0; }' &&
		n_inet nft add rule inet deaddns input udp dport 53 drop &&
		n_inet nft add rule inet deaddns input tcp dport 53 drop || die "nft in $NS_INET"
	printf '[Uplinks]\nInterface=wan0\n\n[Gateway relay]\nAddress=relay.ks-bench.test\nPorts=tcp:25\n' \
		>"$CONF/policies/named.policy"
	bench "${lat[@]}" --load dns --warmup 1 || die "latency (dns)"
	rm -f "$CONF/policies/named.policy" "/etc/netns/$NS_GW/resolv.conf"
	n_inet nft delete table inet deaddns
	ctl reload >/dev/null 2>&1
	# (b) The 100,000-entry policy changed and re-staged by every reload: one of two versions
	# renamed into place each time; then the same with the 4 MB file written anew each time, as
	# an editor saving it would (the same figures: docs/performance.md, "(b) a fourth time").
	bench "${lat[@]}" --load stage --touch "$CONF/policies/bench100000.policy" --warmup 1 ||
		die "latency (stage)"
	bench "${lat[@]}" --load stage --label stage-disk --rewrite --touch "$CONF/policies/bench100000.policy" \
		--warmup 1 || die "latency (stage, rewritten)"
	# (c) 100 clients calling Status and History.
	bench "${lat[@]}" --load clients --clients 100 --warmup 1 || die "latency (clients)"
}

# --- policies ----------------------------------------------------------------------------------
say "Lab and policies ($MODE run)"
lab_create
info "namespaces $NS_LAN, $NS_GW, $NS_INET up; lan reaches the web peer and the allowlisted peer"
bench gen-policy 0 "$CONF/policies/tiny.policy" || die "gen-policy"
for n in "${SIZES[@]}"; do
	bench gen-policy "$n" "$TMP/staged/bench$n.policy" || die "gen-policy $n"
done
bench gen-policy 10000 "$TMP/staged/svc10000.policy" --service $LAN_HOST || die "gen-policy svc10000"
info "policies: tiny (the peer only), bench10 .. bench100000 ($(du -sh "$TMP/staged" | cut -f1) of policy files)"

MEM_KB=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
"$PY" - "$RES/meta.json" <<EOF
import json, sys
json.dump({"mode": "$MODE", "date": "$(date -u +%Y-%m-%dT%H:%MZ)", "nproc": "$(nproc)",
           "cpu": """$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)""",
           "mem": "%.1f GiB" % ($MEM_KB / 1048576.0), "kernel": "$(uname -r)",
           "nft": "$(nft --version | awk '{ print $2 }')", "iperf_seconds": $IPERF_SECS,
           "load": "$(cut -d' ' -f1 /proc/loadavg)",
           "reps": $REPS}, open(sys.argv[1], "w"))
EOF

if [ "$ONLY" = cost ]; then
	cost_part
	exit 0
fi

# --- 4 (first round): no killswitch table -----------------------------------------------------
if [ "$ONLY" != latency ] && [ "$ONLY" != switch ]; then
	say "Throughput, round 1 of $IPERF_ROUNDS (iperf3 ${IPERF_SECS}s, lan -> $PEER:443; $WEB -> service $LAN_HOST:443)"
	iperf none
	iperf svc_none
	iperf_conntrack
fi

if [ "$ONLY" = latency ] || [ "$ONLY" = switch ]; then
	cp "$TMP/staged/"*.policy "$CONF/policies/"
	agent_start
	if [ "$ONLY" = latency ]; then
		latency_part
	else
		bench settle --pid "$AGENT_PID"
		say "killswitchctl isolate vs nft -f ($REPS alternating runs per size)"
		n_gw "$PY" "$HERE/bench.py" switch-timing --ctl "$KILLSWITCHCTL" --socket "$SOCK" --dir "$TMP" \
			--netns "$NS_GW" --reps "$REPS" --out "$RES/switch.json" "${SIZES[@]}" || die "switch timing failed"
	fi
	agent_stop
	say "Results (total $(($(date +%s) - T_START)) s)"
	echo
	bench report --dir "$RES" ${OUT:+--out "$OUT"} || die "report failed"
	exit 0
fi
if [ "$ONLY" = throughput ]; then
	cp "$TMP/staged/"*.policy "$CONF/policies/"
	agent_start
	bench settle --pid "$AGENT_PID"
	state_is normal || die "the agent does not start in the normal state"
else
# --- 5: memory and wake-ups -------------------------------------------------------------------
say "Agent memory and idle wake-ups"
agent_start
state_is normal || die "the agent does not start in the normal state"
sleep 1
bench proc-sample --pid "$AGENT_PID" --seconds "$IDLE_SECS" --label tiny --out "$RES/proc.json" || die "proc-sample"
cp "$TMP/staged/bench100000.policy" "$CONF/policies/"
t0=$(date +%s%N)
ctl reload >/dev/null || die "reload with the 100,000-entry policy failed"
ms=$((($(date +%s%N) - t0) / 1000000))
info "reload staging bench100000: $ms ms"
bench put reload_big_ms "$ms" --out "$RES/extra.json"
bench proc-sample --pid "$AGENT_PID" --seconds "$IDLE_SECS" --label big --out "$RES/proc.json" || die "proc-sample"
cp "$TMP/staged/"*.policy "$CONF/policies/"
t0=$(date +%s%N)
ctl reload >/dev/null || die "reload of all bench policies failed"
ms=$((($(date +%s%N) - t0) / 1000000))
info "reload staging all bench policies: $ms ms"
bench put reload_all_ms "$ms" --out "$RES/extra.json"
bench proc-sample --pid "$AGENT_PID" --seconds "$IDLE_SECS" --label all --out "$RES/proc.json" || die "proc-sample"
fi

# --- 4 (first round): normal and isolated ------------------------------------------------------
say "Throughput, round 1 of $IPERF_ROUNDS, agent running"
iperf normal
ctl isolate bench10000 --reason "bench throughput" >/dev/null || die "isolate bench10000 failed"
state_is isolated bench10000 || die "not isolated after isolate bench10000"
web_cut || die "isolate bench10000 returned but the web peer still answers"
iperf isolated
ctl isolate svc10000 --reason "bench throughput" >/dev/null || die "isolate svc10000 failed"
iperf svc_isolated
ctl restore --reason "bench throughput" >/dev/null || die "restore failed"

if [ -z "$ONLY" ]; then
# --- 1 and 2 -----------------------------------------------------------------------------------
bench settle --pid "$AGENT_PID"
say "killswitchctl isolate vs nft -f ($REPS alternating runs per size)"
n_gw "$PY" "$HERE/bench.py" switch-timing --ctl "$KILLSWITCHCTL" --socket "$SOCK" --dir "$TMP" \
	--netns "$NS_GW" --reps "$REPS" --out "$RES/switch.json" "${SIZES[@]}" || die "switch timing failed"

# --- 3 -----------------------------------------------------------------------------------------
say "Cut flow: UDP flood lan -> $WEB during $LEAK_REPS isolations (bench10000)"
ip netns exec "$NS_INET" "$PY" "$HERE/bench.py" udp-recv --bind $WEB --port 9999 --out "$TMP/stamps" &
RECV_PID=$!
PIDS+=("$RECV_PID")
for ((i = 0; i < 100; i++)); do [ -e "$TMP/stamps.ready" ] && break; sleep 0.05; done
ip netns exec "$NS_LAN" "$PY" "$HERE/bench.py" udp-send --dst $WEB --port 9999 --pps $FLOOD_PPS --duration 300 \
	--out "$TMP/sender.json" &
SEND_PID=$!
PIDS+=("$SEND_PID")
sleep 0.5
bench leak-switch --ctl "$KILLSWITCHCTL" --socket "$SOCK" --policy bench10000 --reps "$LEAK_REPS" \
	--out "$TMP/leak-switch.json" || die "leak test failed"
kill -TERM "$SEND_PID"; wait "$SEND_PID"
sleep 0.3
kill -TERM "$RECV_PID"; wait "$RECV_PID"
bench leak-analyze --switch "$TMP/leak-switch.json" --stamps "$TMP/stamps" --sender "$TMP/sender.json" \
	--out "$RES/leak.json" || die "leak analysis failed"
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
print("   %d switches: %d datagrams after return (max %d per switch); flood %.0f/s, receiver drops %s"
      % (d["reps"], d["after_total"], d["after_max"], d["pps"] or 0, d["rcvbuf_dropped"]))' "$RES/leak.json"
fi

if [ -z "$ONLY" ]; then
	latency_part
fi

# --- 4: further rounds ---------------------------------------------------------------------------
for ((r = 2; r <= IPERF_ROUNDS; r++)); do
	say "Throughput, round $r of $IPERF_ROUNDS"
	no_killswitch
	iperf none
	iperf svc_none
	iperf_conntrack
	t0=$(date +%s%N)
	agent_start
	bench put start_all_ms "$((($(date +%s%N) - t0) / 1000000))" --out "$RES/extra.json"
	bench settle --pid "$AGENT_PID"
	state_is normal || die "the agent did not come back normal"
	iperf normal
	ctl isolate bench10000 --reason "bench throughput" >/dev/null || die "isolate bench10000 failed"
	iperf isolated
	ctl isolate svc10000 --reason "bench throughput" >/dev/null || die "isolate svc10000 failed"
	iperf svc_isolated
	ctl restore --reason "bench throughput" >/dev/null || die "restore failed"
done
agent_stop
bench put load_end "$(cut -d' ' -f1 /proc/loadavg)" --out "$RES/extra.json"
# What the agent said about itself during the run: warnings, errors, re-assertions.
bench put log_warnings "$(grep -c '^warning:' "$LOG")" --out "$RES/extra.json"
bench put log_errors "$(grep -c '^error:' "$LOG")" --out "$RES/extra.json"
bench put log_reassertions "$(grep -c '^Re-asserted' "$LOG")" --out "$RES/extra.json"
bench put log_lost_events "$(grep -c 'Lost nftables events' "$LOG")" --out "$RES/extra.json"
# The link layer's switch after each isolate (compile_links_hook, logged in microseconds).
link_us=$(sed -n 's/^Link layer of the cut in place: .*, \([0-9]*\) us$/\1/p' "$LOG" | sort -n)
if [ -n "$link_us" ]; then
	bench put link_switches "$(printf '%s\n' "$link_us" | wc -l)" --out "$RES/extra.json"
	bench put link_switch_us_median "$(printf '%s\n' "$link_us" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')" \
		--out "$RES/extra.json"
	bench put link_switch_us_max "$(printf '%s\n' "$link_us" | tail -n 1)" --out "$RES/extra.json"
fi

say "Results (total $(($(date +%s) - T_START)) s)"
echo
bench report --dir "$RES" ${OUT:+--out "$OUT"} || die "report failed"
[ -n "$OUT" ] && printf '\n(written to %s)\n' "$OUT"
exit 0
