# shellcheck shell=bash
# SPDX-License-Identifier: MIT
#
# Helpers for killswitch's end-to-end tests, sourced by tests/e2e/test-*.sh and tests/demo.sh.
#
# The lab is a small datacenter made of network namespaces, named with a per-run prefix so that
# parallel runs never collide:
#
#   ${KS_PREFIX}lan   10.0.1.2/24 fd00:1::2/64 ── lan0 ┐
#   ${KS_PREFIX}mgmt  10.0.9.2/24 fd00:9::2/64 ─ mgmt0 ┤ ${KS_PREFIX}gw (forwarding, killswitchd runs here)
#                                                 wan0 ┤ 198.51.100.1/30 2001:db8:100::1/64  (mail, web v4)
#                                                 wan1 ┘ 198.51.100.5/30 2001:db8:100:1::1/64 (SIP, web v6)
#   ${KS_PREFIX}inet  "the internet": gw0 198.51.100.2, gw1 198.51.100.6, and on lo:
#                     web  192.0.2.80  2001:db8:80::80   tcp/80
#                     mail 203.0.113.25 2001:db8:25::25  tcp/25, tcp/8080 (not allowed by the policy)
#                     SIP  203.0.113.5                   udp/5060, tcp/5061, udp/16384 (RTP), tcp/8080
#   gw itself runs a tcp echo server on port 2222 (every address, v4 and v6) for inbound tests.
#
# Every server echoes; a probe succeeds only if its random payload came back. Nothing here sends
# a packet outside loopback or these namespaces, and the host's own nftables ruleset is never
# touched: every nft command runs inside a lab namespace.
#
# Environment: KILLSWITCHD, KILLSWITCHCTL (default: the build/ tree of this repository),
# KS_AGENT_WRAPPER (e.g. "valgrind -q"), KS_PROBE_WAIT (seconds a probe waits, default 0.7).
# A test may set KS_AGENT_ARGS (e.g. "--protect=monitor") before agent_start. KS_KEEP_LOG=FILE
# keeps a copy of the agent's log.

set -u

KS_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../deps.sh
. "$KS_REPO/tests/deps.sh"     # PATH: Debian's tools first
KILLSWITCHD=${KILLSWITCHD:-$KS_REPO/build/agent/killswitchd}
KILLSWITCHCTL=${KILLSWITCHCTL:-$KS_REPO/build/ctl/killswitchctl}
KS_AGENT_WRAPPER=${KS_AGENT_WRAPPER:-}
KS_AGENT_ARGS=${KS_AGENT_ARGS:-}
KS_PROBE_WAIT=${KS_PROBE_WAIT:-0.7}
# A probe that must work and did not is tried once more with this wait (check_many, web_ok).
KS_PROBE_RETRY_WAIT=${KS_PROBE_RETRY_WAIT:-2}
KS_CTL_TIMEOUT=${KS_CTL_TIMEOUT:-15}
KS_TEST_NAME=${KS_TEST_NAME:-$(basename "$0")}

KS_PREFIX=ks$$-
NS_LAN=${KS_PREFIX}lan
NS_GW=${KS_PREFIX}gw
NS_INET=${KS_PREFIX}inet
NS_MGMT=${KS_PREFIX}mgmt

KS_TMP=
KS_CONF=
KS_STATE=
KS_SOCK=
KS_LOG=
AGENT_PID=
AGENT_EXIT=
KS_PIDS=()
KS_LAB_UP=0
KS_PASSED=0
KS_FAILED=0

n_lan() { ip netns exec "$NS_LAN" "$@"; }
n_gw() { ip netns exec "$NS_GW" "$@"; }
n_inet() { ip netns exec "$NS_INET" "$@"; }
n_mgmt() { ip netns exec "$NS_MGMT" "$@"; }
# in_ns lan|gw|inet|mgmt CMD...
in_ns() { local ns=$KS_PREFIX$1; shift; ip netns exec "$ns" "$@"; }

# ---------------------------------------------------------------------------------------------
# Reporting. The runner counts lines starting with "PASS: " and "FAIL: ".

pass() { KS_PASSED=$((KS_PASSED + 1)); printf 'PASS: %s\n' "$1"; }
fail() { KS_FAILED=$((KS_FAILED + 1)); printf 'FAIL: %s\n' "$1"; }
note() { printf '# %s\n' "$*"; }

# Show what a failed command printed, indented, so a FAIL line explains itself.
show_output() {
	[ -s "$1" ] || return 0
	tail -n 15 "$1" | sed 's/^/#   | /'
}

# check DESC CMD... — PASS if CMD succeeds.
check() {
	local desc=$1 out=$KS_TMP/check.out
	shift
	if "$@" >"$out" 2>&1; then
		pass "$desc"
	else
		fail "$desc"
		show_output "$out"
	fi
}

# check_not DESC CMD... — PASS if CMD fails.
check_not() {
	local desc=$1 out=$KS_TMP/check.out
	shift
	if "$@" >"$out" 2>&1; then
		fail "$desc"
		show_output "$out"
	else
		pass "$desc"
	fi
}

# check_exit CODE DESC CMD... — PASS if CMD exits with CODE.
check_exit() {
	local want=$1 desc=$2 out=$KS_TMP/check.out rc
	shift 2
	"$@" >"$out" 2>&1
	rc=$?
	if [ "$rc" -eq "$want" ]; then
		pass "$desc"
	else
		fail "$desc (exit $rc, expected $want)"
		show_output "$out"
	fi
}

# check_many: run probes concurrently, report in input order. One per line on stdin:
#   + DESC | CMD ARGS     (expected to succeed)
#   - DESC | CMD ARGS     (expected to fail)
# Probes that must fail wait for a timeout; running them side by side keeps a round at ~1 s.
check_many() {
	local dir=$KS_TMP/many.$RANDOM i=0 n line exp desc cmd rc
	local -a exps=() descs=() cmds=() pids=()
	mkdir -p "$dir"
	while IFS= read -r line; do
		line=${line#"${line%%[![:space:]]*}"}
		[ -n "$line" ] || continue
		exp=${line%% *}
		line=${line#? }
		desc=${line%%|*}
		desc=${desc%"${desc##*[![:space:]]}"}
		cmd=${line#*|}
		exps[i]=$exp
		descs[i]=$desc
		cmds[i]=$cmd
		(eval "$cmd") </dev/null >"$dir/$i.out" 2>&1 &
		pids[i]=$!
		i=$((i + 1))
	done
	n=$i
	for ((i = 0; i < n; i++)); do
		wait "${pids[i]}"
		rc=$?
		# A probe that must work gets a second try with a longer wait: on a busy machine its answer
		# can take longer than KS_PROBE_WAIT, and waiting longer can only let allowed traffic through.
		if [ "${exps[i]}" = + ] && [ $rc -ne 0 ] && KS_PROBE_WAIT=$KS_PROBE_RETRY_WAIT eval "${cmds[i]}" \
			</dev/null >>"$dir/$i.out" 2>&1; then
			note "${descs[i]}: answered on the second try (${KS_PROBE_RETRY_WAIT} s wait)"
			rc=0
		fi
		if { [ "${exps[i]}" = + ] && [ $rc -eq 0 ]; } || { [ "${exps[i]}" = - ] && [ $rc -ne 0 ]; }; then
			pass "${descs[i]}"
		else
			fail "${descs[i]}"
			show_output "$dir/$i.out"
		fi
	done
	rm -rf "$dir"
}

# summary — the per-file summary line; returns non-zero if anything failed.
summary() {
	printf '# %s: %d passed, %d failed\n' "$KS_TEST_NAME" "$KS_PASSED" "$KS_FAILED"
	[ "$KS_FAILED" -eq 0 ]
}

# skip REASON — this script cannot or need not run here: "SKIP: REASON" (not counted), exit 0.
skip() { printf 'SKIP: %s\n' "$1"; summary; exit 0; }

# die MSG — a setup step failed: count it, explain, stop (cleanup runs from the EXIT trap).
die() {
	fail "setup: $*"
	agent_log_tail
	summary
	exit 1
}

# wait_until SECONDS CMD... — poll CMD every 50 ms until it succeeds or the time is up.
wait_until() {
	local deadline=$((${EPOCHREALTIME//[!0-9]/} + ${1%.*} * 1000000))
	shift
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		[ "${EPOCHREALTIME//[!0-9]/}" -lt "$deadline" ] || return 1
		sleep 0.05
	done
}

# ---------------------------------------------------------------------------------------------
# Probes. Each sends a random payload and succeeds only if that payload comes back.

# Process creation is the suite's main cost (a fork of bash took ~6 ms of CPU on the VMs here):
# the probes build their arguments without command substitutions.
_sock_addr() { # VAR PROTO ADDR PORT -> the socat address in VAR
	case $3 in
	*:*) printf -v "$1" '%s6:[%s]:%s' "$2" "$3" "$4" ;;
	*) printf -v "$1" '%s4:%s:%s' "$2" "$3" "$4" ;;
	esac
}

# The outer bound of one probe: its connect and its wait for the echo, plus slack.
_probe_timeout() { printf -v "$1" '%d' $((2 * ${KS_PROBE_WAIT%.*} + 3)); }

# tcp_echo NS ADDR PORT
tcp_echo() {
	local payload="ks-tcp-$RANDOM$RANDOM" out limit peer
	_probe_timeout limit
	_sock_addr peer TCP "$2" "$3"
	out=$(in_ns "$1" timeout "$limit" socat -t "$KS_PROBE_WAIT" -T 2 - "$peer,connect-timeout=$KS_PROBE_WAIT" \
		<<<"$payload")
	[ "$out" = "$payload" ]
}

# udp_echo NS ADDR PORT — bash's own connected UDP socket: returns as soon as the echo is back
# (a socat client would always wait out its timeout, as UDP has no end of stream).
udp_echo() {
	local payload="ks-udp-$RANDOM$RANDOM" out limit
	_probe_timeout limit
	# shellcheck disable=SC2016 # expanded by the inner bash
	out=$(in_ns "$1" timeout "$limit" bash -c '
		exec 3<>"/dev/udp/$1/$2" || exit 1
		printf "%s\n" "$3" >&3
		timeout "$4" dd bs=65536 count=1 status=none <&3' udp_echo "$2" "$3" "$payload" "$KS_PROBE_WAIT")
	[ "$out" = "$payload" ]
}

# tcp_echo_from NS SRC ADDR PORT [SPORT] — tcp_echo from source address SRC (and source port SPORT).
tcp_echo_from() {
	local payload="ks-tcp-$RANDOM$RANDOM" out bind=$2 limit peer
	case $2 in *:*) bind="[$2]" ;; esac
	# A fixed source port may still be in TIME_WAIT from an earlier probe.
	[ -n "${5:-}" ] && bind="$bind:$5,reuseaddr"
	_probe_timeout limit
	_sock_addr peer TCP "$3" "$4"
	out=$(in_ns "$1" timeout "$limit" socat -t "$KS_PROBE_WAIT" -T 2 - \
		"$peer,bind=$bind,connect-timeout=$KS_PROBE_WAIT" <<<"$payload")
	[ "$out" = "$payload" ]
}

# udp_echo_from NS SRC ADDR PORT [SPORT] — udp_echo from source address SRC (and source port SPORT).
# Sent up to three times from the same socket: a forking socat server may lose a datagram that
# arrives while an earlier child still holds the port.
udp_echo_from() {
	# shellcheck disable=SC2016 # python, not shell
	in_ns "$1" timeout 5 python3 -c '
import os, socket, sys
src, addr, port, sport, wait = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4] or 0), float(sys.argv[5])
s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, sport))
s.settimeout(wait)
payload = b"ks-udp-%d\n" % int.from_bytes(os.urandom(4), "big")
for attempt in range(3):
    s.sendto(payload, (addr, port))
    try:
        if s.recv(65536) == payload:
            sys.exit(0)
    except socket.timeout:
        pass
sys.exit(1)' "$2" "$3" "$4" "${5:-}" "$KS_PROBE_WAIT"
}

# ping_ok NS ADDR — one echo request, short deadline.
ping_ok() {
	local v=-4
	case $2 in *:*) v=-6 ;; esac
	in_ns "$1" ping "$v" -n -q -c1 -W "$KS_PROBE_WAIT" "$2"
}

# Long-lived TCP sessions, to see what an isolation does to connections that already exist.
# session_open NAME NS ADDR PORT — connect now and keep the connection open (30 s at most);
# session_echo NAME — send a line on it, succeed if it comes back; session_close NAME.
declare -A KS_SESSION_W=() KS_SESSION_R=() KS_SESSION_PID=()
session_open() {
	local name=$1 d=$KS_TMP/session.$1 w r peer
	mkdir -p "$d" && mkfifo "$d/in" "$d/out" || return 1
	_sock_addr peer TCP "$3" "$4"
	in_ns "$2" timeout 30 socat -T 30 - "$peer,connect-timeout=$KS_PROBE_WAIT" \
		<"$d/in" >"$d/out" 2>"$d/err" &
	KS_SESSION_PID[$name]=$!
	exec {w}>"$d/in" {r}<"$d/out"
	KS_SESSION_W[$name]=$w
	KS_SESSION_R[$name]=$r
}
session_echo() {
	local payload="ks-session-$RANDOM$RANDOM" line
	# In a subshell that ignores SIGPIPE: a session reset by its peer must fail, not kill the test.
	(trap '' PIPE; printf '%s\n' "$payload" >&"${KS_SESSION_W[$1]}") 2>/dev/null || return 1
	IFS= read -r -t "$KS_PROBE_WAIT" line <&"${KS_SESSION_R[$1]}" || return 1
	[ "$line" = "$payload" ]
}
# session_alive NAME — its socat still runs (a reset or a closed connection ends it).
session_alive() { [ -n "${KS_SESSION_PID[$1]:-}" ] && kill -0 "${KS_SESSION_PID[$1]}" 2>/dev/null; }
session_close() {
	local name=$1 w r
	[ -n "${KS_SESSION_PID[$name]:-}" ] || return 0
	w=${KS_SESSION_W[$name]} r=${KS_SESSION_R[$name]}
	exec {w}>&- {r}<&-
	kill "${KS_SESSION_PID[$name]}" 2>/dev/null
	wait "${KS_SESSION_PID[$name]}" 2>/dev/null
	unset "KS_SESSION_PID[$name]" "KS_SESSION_W[$name]" "KS_SESSION_R[$name]"
}

# Continuous probes, to catch a single packet slipping through while the rules change.
# stream_start NAME NS udp|tcp ADDR PORT [INTERVAL] — from NS, every INTERVAL seconds (default
# 0.01) until stream_stop NAME: udp sends one datagram, tcp one connection attempt (a SYN, given
# up after INTERVAL). Returns once the first one is out. stream_stop NAME prints how many were sent.
declare -A KS_STREAM_PID=()
stream_start() {
	local name=$1 ns=$KS_PREFIX$2
	shift 2
	# shellcheck disable=SC2016 # python, not shell
	ip netns exec "$ns" python3 -c '
import signal, socket, sys, time
proto, addr, port, interval, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
family = socket.AF_INET6 if ":" in addr else socket.AF_INET
sent = 0
def stop(*_):
    open(out, "w").write("%d\n" % sent)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
u = socket.socket(family, socket.SOCK_DGRAM) if proto == "udp" else None
while True:
    if u:
        try: u.sendto(b"ks-stream %d\n" % sent, (addr, port))
        except OSError: pass
        time.sleep(interval)
    else:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((addr, port))
        time.sleep(interval)
        s.close()
    sent += 1
    if sent == 1:
        open(out + ".started", "w").close()
' "$1" "$2" "$3" "${4:-0.01}" "$KS_TMP/stream.$name.sent" >>"$KS_TMP/servers.log" 2>&1 &
	KS_STREAM_PID[$name]=$!
	KS_PIDS+=($!)
	# Running once the first packet is out (python may take a while to start on a busy host).
	wait_until 10 test -e "$KS_TMP/stream.$name.sent.started"
}
stream_stop() {
	local pid=${KS_STREAM_PID[$1]:-}
	[ -n "$pid" ] || return 0
	rm -f "$KS_TMP/stream.$1.sent.started"
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	unset "KS_STREAM_PID[$1]"
	cat "$KS_TMP/stream.$1.sent" 2>/dev/null || echo 0
}

# Receive-side packet counters: rx_counter_add NS NAME NFT-MATCH counts the packets matching
# NFT-MATCH (e.g. "ip daddr 192.0.2.80 udp dport 7000") that arrive in NS, before anything else
# there sees them (table inet ks_rx, prerouting priority -400); rx_count NS NAME prints the count.
rx_counter_add() {
	in_ns "$1" nft list table inet ks_rx >/dev/null 2>&1 ||
		in_ns "$1" nft add table inet ks_rx '{ chain pre { type filter hook prerouting priority -400; }; }' ||
		return 1
	in_ns "$1" nft add counter inet ks_rx "$2" && in_ns "$1" nft add rule inet ks_rx pre "$3" counter name "$2"
}
rx_count() {
	in_ns "$1" nft list counter inet ks_rx "$2" | awk '$1 == "packets" { print $2; exit }'
}

# ---------------------------------------------------------------------------------------------
# The lab.

# Start a long-running process in a lab namespace and remember its pid for cleanup.
_spawn() { # NS CMD...
	local ns=$KS_PREFIX$1
	shift
	ip netns exec "$ns" "$@" >>"$KS_TMP/servers.log" 2>&1 &
	KS_PIDS+=($!)
}

# Echo servers: every connection (or datagram) is echoed back by cat.
_tcp_server() { # NS ADDR|any|any6 PORT
	local opts
	case $2 in
	any) opts="TCP4-LISTEN:$3" ;;
	any6) opts="TCP6-LISTEN:$3,ipv6only=1" ;;
	*:*) opts="TCP6-LISTEN:$3,bind=[$2],ipv6only=1" ;;
	*) opts="TCP4-LISTEN:$3,bind=$2" ;;
	esac
	_spawn "$1" socat -T 5 "$opts,reuseaddr,fork" EXEC:cat
}
_udp_server() { # NS ADDR PORT
	local bind=$2 family=4
	case $2 in *:*) family=6 bind="[$2]" ;; esac
	_spawn "$1" socat -T 1 "UDP$family-RECVFROM:$3,bind=$bind,reuseaddr,fork" PIPE
}

lab_create() {
	local ns l
	KS_LAB_UP=1
	for ns in lan gw inet mgmt; do
		ip netns add "$KS_PREFIX$ns" || die "ip netns add $KS_PREFIX$ns"
		in_ns $ns sysctl -q -w net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
			net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 >/dev/null
		ip -n "$KS_PREFIX$ns" link set lo up
	done
	{
		# Links: gw is the hub.
		ip -n "$NS_GW" link add lan0 type veth peer name eth0 netns "$NS_LAN" &&
		ip -n "$NS_GW" link add mgmt0 type veth peer name eth0 netns "$NS_MGMT" &&
		ip -n "$NS_GW" link add wan0 type veth peer name gw0 netns "$NS_INET" &&
		ip -n "$NS_GW" link add wan1 type veth peer name gw1 netns "$NS_INET"
	} || die "creating veth links"
	# Links up first: a fresh veth only carries IPv6 once the kernel's link watcher has seen
	# its carrier (up to a second later), so let that run while the addresses go on.
	ip -n "$NS_LAN" link set eth0 up
	ip -n "$NS_MGMT" link set eth0 up
	for l in lan0 mgmt0 wan0 wan1; do ip -n "$NS_GW" link set "$l" up; done
	for l in gw0 gw1; do ip -n "$NS_INET" link set "$l" up; done

	{
		# LAN host.
		ip -n "$NS_LAN" addr add 10.0.1.2/24 dev eth0 &&
		ip -n "$NS_LAN" addr add fd00:1::2/64 dev eth0 nodad &&
		ip -n "$NS_LAN" route add default via 10.0.1.1 &&
		ip -n "$NS_LAN" -6 route add default via fd00:1::1 &&

		# Management host.
		ip -n "$NS_MGMT" addr add 10.0.9.2/24 dev eth0 &&
		ip -n "$NS_MGMT" addr add fd00:9::2/64 dev eth0 nodad &&

		# Gateway: LAN, management, two uplinks. Mail and web v4 leave through wan0,
		# SIP and web v6 through wan1, so both uplinks carry allowed and cut traffic.
		ip -n "$NS_GW" addr add 10.0.1.1/24 dev lan0 &&
		ip -n "$NS_GW" addr add fd00:1::1/64 dev lan0 nodad &&
		ip -n "$NS_GW" addr add 10.0.9.1/24 dev mgmt0 &&
		ip -n "$NS_GW" addr add fd00:9::1/64 dev mgmt0 nodad &&
		ip -n "$NS_GW" addr add 198.51.100.1/30 dev wan0 &&
		ip -n "$NS_GW" addr add 2001:db8:100::1/64 dev wan0 nodad &&
		ip -n "$NS_GW" addr add 198.51.100.5/30 dev wan1 &&
		ip -n "$NS_GW" addr add 2001:db8:100:1::1/64 dev wan1 nodad &&
		ip -n "$NS_GW" route add default via 198.51.100.2 dev wan0 &&
		ip -n "$NS_GW" route add 203.0.113.5/32 via 198.51.100.6 dev wan1 &&
		ip -n "$NS_GW" -6 route add default via 2001:db8:100::2 dev wan0 &&
		ip -n "$NS_GW" -6 route add 2001:db8:80::/64 via 2001:db8:100:1::2 dev wan1 &&
		n_gw sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 >/dev/null &&

		# The internet: services on lo, routes back to the LAN over the uplink each service uses.
		ip -n "$NS_INET" addr add 198.51.100.2/30 dev gw0 &&
		ip -n "$NS_INET" addr add 2001:db8:100::2/64 dev gw0 nodad &&
		ip -n "$NS_INET" addr add 198.51.100.6/30 dev gw1 &&
		ip -n "$NS_INET" addr add 2001:db8:100:1::2/64 dev gw1 nodad &&
		ip -n "$NS_INET" addr add 192.0.2.80/32 dev lo &&
		ip -n "$NS_INET" addr add 2001:db8:80::80/128 dev lo nodad &&
		ip -n "$NS_INET" addr add 203.0.113.25/32 dev lo &&
		ip -n "$NS_INET" addr add 2001:db8:25::25/128 dev lo nodad &&
		ip -n "$NS_INET" addr add 203.0.113.5/32 dev lo &&
		ip -n "$NS_INET" route add 10.0.1.0/24 via 198.51.100.1 dev gw0 &&
		ip -n "$NS_INET" -6 route add fd00:1::/64 via 2001:db8:100::1 dev gw0 &&
		ip -n "$NS_INET" route add 10.0.1.0/24 via 198.51.100.5 dev gw1 table 101 &&
		ip -n "$NS_INET" -6 route add fd00:1::/64 via 2001:db8:100:1::1 dev gw1 table 101 &&
		ip -n "$NS_INET" rule add from 203.0.113.5 lookup 101 &&
		ip -n "$NS_INET" -6 rule add from 2001:db8:80::80 lookup 101
	} || die "configuring addresses and routes"

	# Echo servers.
	_tcp_server inet 192.0.2.80 80
	_tcp_server inet 2001:db8:80::80 80
	_tcp_server inet 203.0.113.25 25
	_tcp_server inet 2001:db8:25::25 25
	_tcp_server inet 203.0.113.25 8080
	_tcp_server inet 2001:db8:25::25 8080
	_udp_server inet 203.0.113.5 5060
	_udp_server inet 203.0.113.5 16384
	_tcp_server inet 203.0.113.5 5061
	_tcp_server inet 203.0.113.5 8080
	_tcp_server gw any 2222
	_tcp_server gw any6 2222

	# Ready when every path answers; poll quickly with a short probe timeout.
	KS_PROBE_WAIT=0.1 wait_until 5 ping_ok lan 2001:db8:80::80 || die "v6 lan -> web via wan1 not usable"
	KS_PROBE_WAIT=0.1 wait_until 5 ping_ok lan 2001:db8:25::25 || die "v6 lan -> mail via wan0 not usable"
	KS_PROBE_WAIT=0.1 wait_until 5 ping_ok mgmt fd00:9::1 || die "v6 mgmt -> gw not usable"
	wait_until 5 tcp_echo lan 192.0.2.80 80 || die "web v4 not reachable from lan"
	wait_until 5 tcp_echo lan 2001:db8:80::80 80 || die "web v6 not reachable from lan"
	wait_until 5 tcp_echo lan 2001:db8:25::25 8080 || die "mail v6 not reachable from lan"
	wait_until 5 udp_echo lan 203.0.113.5 16384 || die "SIP udp not reachable from lan"
	wait_until 5 tcp_echo inet 2001:db8:100:1::1 2222 || die "gw v6 echo not reachable from inet"
	wait_until 5 tcp_echo mgmt 10.0.9.1 2222 || die "gw echo not reachable from mgmt"
}

# lab_add_site — a hosted site behind gw, as real gateways run it (only for the tests that call
# it): gw masquerades what leaves through the uplinks and DNATs the site's public addresses
# (its own ruleset, table inet lab_nat) to inside servers on the LAN host:
#   MX       public 192.0.2.10 2001:db8:10::10 tcp/25 -> mail server 10.0.1.10 fd00:1::10
#            (which also listens on tcp/587 and tcp/8025, not published)
#   PBX      public 192.0.2.5 udp/5060, udp/10000-20000 -> 10.0.1.5 (udp/5060, udp/16384)
#   notice   gw itself, tcp/8080 on every address (a static page)
# and internet hosts to connect from: 198.18.0.7 2001:db8:77::7 (anyone), 203.0.113.77 (another
# host of the SIP provider's 203.0.113.0/24), plus SMTP on the web host (192.0.2.80
# 2001:db8:80::80 tcp/25), "an arbitrary mail server".
lab_add_site() {
	local a p
	{
		ip -n "$NS_LAN" addr add 10.0.1.10/24 dev eth0 &&
		ip -n "$NS_LAN" addr add fd00:1::10/64 dev eth0 nodad &&
		ip -n "$NS_LAN" addr add 10.0.1.5/24 dev eth0 &&
		ip -n "$NS_GW" addr add 192.0.2.10/32 dev lo &&
		ip -n "$NS_GW" addr add 192.0.2.5/32 dev lo &&
		ip -n "$NS_GW" addr add 2001:db8:10::10/128 dev lo nodad &&
		ip -n "$NS_INET" addr add 198.18.0.7/32 dev lo &&
		ip -n "$NS_INET" addr add 2001:db8:77::7/128 dev lo nodad &&
		ip -n "$NS_INET" addr add 203.0.113.77/32 dev lo &&
		ip -n "$NS_INET" route add 192.0.2.10/32 via 198.51.100.1 dev gw0 &&
		ip -n "$NS_INET" route add 192.0.2.5/32 via 198.51.100.1 dev gw0 &&
		ip -n "$NS_INET" -6 route add 2001:db8:10::10/128 via 2001:db8:100::1 dev gw0
	} || die "lab_add_site: addresses and routes"
	n_gw nft -f - <<'EOF' || die "lab_add_site: the site's NAT table"
table inet lab_nat {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr 192.0.2.10 tcp dport 25 dnat ip to 10.0.1.10
		ip6 daddr 2001:db8:10::10 tcp dport 25 dnat ip6 to fd00:1::10
		ip daddr 192.0.2.5 udp dport { 5060, 10000-20000 } dnat ip to 10.0.1.5
	}
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		oifname { "wan0", "wan1" } masquerade
	}
}
EOF
	for a in 10.0.1.10 fd00:1::10; do
		for p in 25 587 8025; do _tcp_server lan "$a" "$p"; done
	done
	_udp_server lan 10.0.1.5 5060
	_udp_server lan 10.0.1.5 16384
	_tcp_server gw any 8080
	_tcp_server gw any6 8080
	_tcp_server inet 192.0.2.80 25
	_tcp_server inet 2001:db8:80::80 25
	wait_until 5 tcp_echo_from inet 198.18.0.7 192.0.2.10 25 || die "lab_add_site: MX not reachable through DNAT"
	wait_until 5 tcp_echo_from inet 2001:db8:77::7 2001:db8:10::10 25 || die "lab_add_site: MX v6 not reachable"
	wait_until 5 udp_echo_from inet 203.0.113.77 192.0.2.5 5060 || die "lab_add_site: PBX not reachable"
}

lab_destroy() {
	local ns pid
	[ "$KS_LAB_UP" = 1 ] || return 0
	for pid in "${KS_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
	for ns in lan gw inet mgmt; do
		# Forked echo children and anything else left running in our own namespaces.
		for pid in $(ip netns pids "$KS_PREFIX$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
		ip netns del "$KS_PREFIX$ns" 2>/dev/null
		# Files a test put in /etc/netns/NS/ (bind-mounted over /etc by ip netns exec).
		[ -d "/etc/netns/$KS_PREFIX$ns" ] && rm -rf "/etc/netns/$KS_PREFIX$ns"
	done
	KS_PIDS=()
	KS_LAB_UP=0
}

# write_bulk_policy NAME GATEWAY COUNT PORTS PER_LINE — policy NAME with the lab's uplinks and one
# gateway of COUNT addresses nobody uses (100.64.0.1 on, every other one: none merge into ranges),
# PER_LINE to an Address= line. Append to $KS_CONF/policies/NAME.policy for more.
write_bulk_policy() {
	python3 - "$KS_CONF/policies/$1.policy" "$2" "$3" "$4" "$5" <<'PY'
import ipaddress, sys
path, gw, count, ports, per = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
base = int(ipaddress.ip_address("100.64.0.1"))
addrs = [str(ipaddress.ip_address(base + 2 * i)) for i in range(count)]
lines = ["[Uplinks]", "Interface=wan0 wan1", "", "[Gateway %s]" % gw]
lines += ["Address=" + " ".join(addrs[i:i + per]) for i in range(0, count, per)]
lines += ["Ports=" + ports, ""]
open(path, "w").write("\n".join(lines) + "\n")
PY
}

# The lab policy: the example of issue 2 with the lab's uplinks.
write_lab_policy() { # NAME [--no-phone]
	local file=$KS_CONF/policies/$1.policy
	{
		printf '[Policy]\nDescription=Lab: cut the uplinks, keep the SIP trunk and the mail relay\n\n'
		printf '[Uplinks]\nInterface=wan0 wan1\n\n'
		if [ "${2:-}" != --no-phone ]; then
			printf '[Gateway phone]\nAddress=203.0.113.5\nPorts=udp:5060 tcp:5061 udp:10000-20000\n\n'
		fi
		printf '[Gateway mail]\nAddress=203.0.113.25 2001:db8:25::25\nPorts=tcp:25 tcp:465 tcp:587 tcp:993\n'
	} >"$file"
}

# ---------------------------------------------------------------------------------------------
# The agent, run inside the gateway namespace with a private config dir, state dir and socket.

ks_setup_dirs() {
	KS_TMP=$(mktemp -d "/tmp/ks$$.XXXXXX") || { echo "mktemp failed" >&2; exit 1; }
	chmod 755 "$KS_TMP" # unprivileged callers must reach the socket
	KS_CONF=$KS_TMP/etc
	KS_STATE=$KS_TMP/state
	KS_SOCK=$KS_TMP/run/control.sock
	KS_LOG=$KS_TMP/agent.log
	mkdir -p "$KS_CONF/policies" "$KS_STATE" "$KS_TMP/run"
	chmod 755 "$KS_CONF" "$KS_CONF/policies" "$KS_TMP/run"
	: >"$KS_LOG"
}

ctl() { timeout "$KS_CTL_TIMEOUT" "$KILLSWITCHCTL" --socket "$KS_SOCK" "$@"; }

# agent_start — start killswitchd in gw and wait until it answers on its socket.
# An agent built with AddressSanitizer starts, stops and compiles a few times slower; the suite
# runs it beside other scripts. Liveness limits (not timing checks) are longer for it.
KS_AGENT_ASAN=
ks_agent_asan() {
	[ -n "$KS_AGENT_ASAN" ] || { ldd "$KILLSWITCHD" 2>/dev/null | grep -q libasan && KS_AGENT_ASAN=1 || KS_AGENT_ASAN=0; }
	[ "$KS_AGENT_ASAN" = 1 ]
}

# reload_waited — `killswitchctl reload`, its answer waited for beyond the client's own
# 30 s: a reload of 100,000 entries by an ASan build on a busy machine took longer. A reload asked
# for meanwhile runs after it, so the next one's answer says that the first is done. Prints the
# last answer; its exit status.
reload_waited() {
	local out rc _
	for _ in 1 2 3 4; do
		out=$(KS_CTL_TIMEOUT=120 ctl reload 2>&1)
		rc=$?
		[[ $rc -ne 0 && $out == *"did not reply within"* ]] || break
	done
	printf '%s\n' "$out"
	return "$rc"
}

agent_start() {
	local limit=10
	ks_agent_asan && limit=30
	[ -n "$KS_AGENT_WRAPPER" ] && limit=60
	printf -- '--- start %s\n' "$(date +%T.%N)" >>"$KS_LOG"
	# shellcheck disable=SC2086 # the wrapper and the extra arguments are command lines
	ip netns exec "$NS_GW" $KS_AGENT_WRAPPER "$KILLSWITCHD" --config-dir "$KS_CONF" \
		--state-dir "$KS_STATE" --socket "$KS_SOCK" $KS_AGENT_ARGS 2>>"$KS_LOG" >&2 &
	AGENT_PID=$!
	local deadline=$(($(date +%s) + limit))
	while :; do
		if ! kill -0 "$AGENT_PID" 2>/dev/null; then
			wait "$AGENT_PID"
			note "killswitchd exited early with status $?"
			AGENT_PID=
			return 1
		fi
		# --json: it answers, whatever the state (status alone exits 5 while the uplinks are open).
		[ -S "$KS_SOCK" ] && ctl --json status >/dev/null 2>&1 && return 0
		[ "$(date +%s)" -lt "$deadline" ] || { note "killswitchd not answering after ${limit}s"; return 1; }
		sleep 0.05
	done
}

# agent_stop [SIGNAL] — stop the agent (default TERM) and wait for it; KILL after 10 s (30 s for
# an ASan build).
agent_stop() {
	local sig=${1:-TERM} i limit=10
	[ -n "$AGENT_PID" ] || return 0
	ks_agent_asan && limit=30
	# stderr off for the whole block: it hides bash's "Killed" job notice, not the agent's log.
	{
		kill -"$sig" "$AGENT_PID"
		for ((i = 0; i < limit * 20; i++)); do
			kill -0 "$AGENT_PID" || break
			sleep 0.05
		done
		if kill -0 "$AGENT_PID"; then
			note "killswitchd ignored SIG$sig for $limit s, killing it"
			kill -KILL "$AGENT_PID"
		fi
		wait "$AGENT_PID"
		# shellcheck disable=SC2034 # read by the tests
		AGENT_EXIT=$?
	} 2>/dev/null
	AGENT_PID=
	return 0
}

# agent_alive — the agent process still runs.
agent_alive() { [ -n "$AGENT_PID" ] && kill -0 "$AGENT_PID" 2>/dev/null; }

# agent_restart_faults VAR=FILE... — stop the agent and start it again with tests/e2e/ks-faults.c
# preloaded and its fault files set (VAR=FILE: see ks-faults.c). ASan wants its runtime first; the
# shim is not instrumented.
agent_restart_faults() {
	local so=$KS_TMP/ks-faults.so kv rc
	[ -e "$so" ] || cc -O1 -shared -fPIC -o "$so" "$KS_REPO/tests/e2e/ks-faults.c" -ldl || return 1
	agent_stop
	for kv in "$@"; do export "${kv?}"; done
	LD_PRELOAD=$so ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 agent_start
	rc=$?
	for kv in "$@"; do unset "${kv%%=*}"; done
	return $rc
}

agent_log_tail() {
	[ -n "$KS_LOG" ] && [ -s "$KS_LOG" ] || return 0
	note "last lines of the agent's log ($KS_LOG):"
	tail -n 25 "$KS_LOG" | sed 's/^/#   agent| /'
}

# status_is PYEXPR — `killswitchctl --json status` evaluated as d, e.g. 'd["state"] == "isolated"'.
status_is() {
	local json
	json=$(ctl --json status) || { printf '%s\n' "$json"; return 1; }
	printf '%s' "$json" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(json.dumps(d))
sys.exit(0 if eval(sys.argv[1]) else 1)' "$1"
}

# status_get PYEXPR — print PYEXPR evaluated on `killswitchctl --json status` as d, e.g. 'd["since"]'.
status_get() {
	ctl --json status | python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}

# contains HAYSTACK NEEDLE... — all present; print the haystack when one is missing.
contains() {
	local hay=$1 needle
	shift
	for needle; do
		grep -qF -- "$needle" <<<"$hay" || { printf 'missing %s in:\n%s\n' "$needle" "$hay"; return 1; }
	done
}

# not_matches TEXT ERE — no line of TEXT matches ERE (the matching lines are printed).
not_matches() { ! grep -E -- "$2" <<<"$1"; }

# ks_table_state — "absent", "staged" or "active": the table inet killswitch in gw. Staged
# policies are regular chains; isolation adds base chains (a "hook" line in the listing).
ks_table_state() {
	local t
	t=$(n_gw nft list table inet killswitch 2>/dev/null) || { echo absent; return; }
	# A dormant table lists its base chains, but none of them is hooked: not in force.
	if printf '%s\n' "$t" | grep -qE '^[[:space:]]*flags .*dormant'; then echo dormant; return; fi
	if printf '%s\n' "$t" | grep -q 'type filter hook'; then echo active; else echo staged; fi
}
ks_table_active() { [ "$(ks_table_state)" = active ]; }
# without_drops_elements — `nft list table inet killswitch` on stdin without the elements of the drop
# sensor's sets (P/drops_*): what cut traffic put there while isolated, not part of the policy.
without_drops_elements() { awk '/^\tset [^ ]*\/drops_/ { d = 1 } /^\t}/ { d = 0 } !(d && /elements = |^\t\t\t     /)'; }
# No killswitch rule is in force in gw: no killswitch* table has a base chain.
# (killswitch_tripwire, the egress trip-wire of killswitch.conf, only logs: it is not an isolation.)
ks_tables_inactive() {
	local name
	for name in $(n_gw nft list tables inet | awk '$3 ~ /^killswitch/ && $3 != "killswitch_tripwire" { print $3 }'); do
		if n_gw nft list table inet "$name" | grep -q 'type filter hook'; then
			echo "table inet $name has base chains"
			return 1
		fi
	done
}

# ---------------------------------------------------------------------------------------------
# Checks the tests share, each defined here once.

# "web": HTTP from the LAN to 192.0.2.80, forwarded through gw; every lab policy cuts it.
# web_ok tries twice (the second time with KS_PROBE_RETRY_WAIT): waiting longer can only let
# allowed traffic through, and a busy machine may answer late. A cut is one try: it waits it out.
web_ok() { tcp_echo lan 192.0.2.80 80 || KS_PROBE_WAIT=$KS_PROBE_RETRY_WAIT tcp_echo lan 192.0.2.80 80; }
web_cut() { ! tcp_echo lan 192.0.2.80 80; }
is_normal() { status_is 'd["state"] == "normal"'; }
# is_isolated [POLICY] — isolated with POLICY (default: isolate).
is_isolated() { status_is 'd["state"] == "isolated" and d["policy"] == "'"${1:-isolate}"'"'; }
# history_has PYEXPR — some entry e of the agent's last 50 history entries matches.
history_has() {
	ctl --json history -n 50 | python3 -c '
import json, sys
entries = json.load(sys.stdin)
sys.exit(0 if any(eval(sys.argv[1]) for e in entries) else 1)' "$1"
}
# ctl_as_nobody ARGS... — killswitchctl as uid and gid 65534, without groups.
ctl_as_nobody() {
	timeout "$KS_CTL_TIMEOUT" setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$KILLSWITCHCTL" --socket "$KS_SOCK" "$@"
}
# The host's own ruleset is as ks_init found it: nothing here touched it (read only).
host_ruleset_intact() { [ "$(nft list ruleset 2>&1)" = "$KS_HOST_RULESET" ]; }
# The agent's open file descriptors and resident memory.
fds() { find "/proc/$AGENT_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$AGENT_PID/status"; }
# The agent's malloc arenas besides the main one, "START RSS_KIB" each. glibc gives a thread an
# arena of its own (a heap aligned to 64 MiB, read-write, its reservation right after it) when
# the others are taken, up to 8 per CPU: more of them on a busy machine, where threads overlap.
arenas() {
	local start end perm _off _dev c extra prev_start="" prev_end="" prev_rss=0 cand=0
	while read -r start perm _off _dev c extra; do
		case $start in
		*-*)
			end=${start#*-} start=${start%-*}
			[ "$cand" = 1 ] && [ "$perm" = ---p ] && [ "$start" = "$prev_end" ] &&
				echo "$prev_start $prev_rss"
			cand=0
			[ "$perm" = rw-p ] && [ "$c" = 0 ] && [ -z "$extra" ] &&
				[ $((16#$start % 67108864)) -eq 0 ] && cand=1
			prev_start=$start prev_end=$end prev_rss=0 ;;
		Rss:) prev_rss=$perm ;;
		esac
	done <"/proc/$AGENT_PID/smaps"
}

# ks_deb — print the path of the Debian package of this source tree (tracked and new files),
# built with tests/build-deb.sh once per content and kept in KS_CACHE (default
# /var/cache/killswitch-tests): test-systemd.sh and test-units.sh, which run side by side, share
# one build. The package's own run of the unit tests is left out (DEB_BUILD_OPTIONS=nocheck):
# the suite ran them on both builds before. KS_DEB=PATH: that package instead.
KS_CACHE=${KS_ROOTFS_CACHE:-/var/cache/killswitch-tests}
ks_deb() {
	local key dir
	[ -n "${KS_DEB:-}" ] && { echo "$KS_DEB"; return 0; }
	key=$(cd "$KS_REPO" && git ls-files -z -co --exclude-standard 2>/dev/null | sort -z |
		xargs -0 sha256sum 2>/dev/null | sha256sum | cut -c1-16)
	dir=$KS_CACHE/deb-$key
	mkdir -p "$KS_CACHE" || return 1
	(
		flock -w 600 9 || { echo "ks_deb: $KS_CACHE/.deb.lock held for 10 minutes" >&2; exit 1; }
		deb=$(ls "$dir"/killswitch_*.deb 2>/dev/null) && [ -s "$deb" ] && { echo "$deb"; exit 0; }
		deb=$(DEB_BUILD_OPTIONS="nocheck ${DEB_BUILD_OPTIONS:-}" timeout 300 \
			"$KS_REPO/tests/build-deb.sh" "$KS_TMP/deb-build") || exit 1
		find "$KS_CACHE" -maxdepth 1 -name 'deb-*' -mmin +1440 -exec rm -rf {} + 2>/dev/null
		mkdir -p "$dir" && cp "$deb" "$dir/" && ls "$dir"/killswitch_*.deb
	) 9>"$KS_CACHE/.deb.lock"
}

# ---------------------------------------------------------------------------------------------

cleanup() {
	local name
	set +u
	for name in "${!KS_SESSION_PID[@]}"; do session_close "$name"; done
	agent_stop KILL >/dev/null 2>&1
	lab_destroy
	# KS_KEEP_LOG=FILE keeps a copy of the agent's log for debugging.
	[ -n "${KS_KEEP_LOG:-}" ] && [ -n "$KS_LOG" ] && cp "$KS_LOG" "$KS_KEEP_LOG"
	[ -n "$KS_TMP" ] && [ -d "$KS_TMP" ] && rm -rf "$KS_TMP"
}

require_root() {
	[ "$(id -u)" = 0 ] || { echo "$KS_TEST_NAME: must run as root (network namespaces, nftables)" >&2; exit 1; }
}

require_tools() {
	local t absent=
	for t in ip nft socat ping python3 setpriv timeout; do
		command -v "$t" >/dev/null || absent="$absent $t"
	done
	[ -z "$absent" ] || { fail "setup: missing tools:$absent"; summary; exit 1; }
}

# ks_init — the common start of every e2e test: root, tools, temp dirs, cleanup on exit.
ks_init() {
	require_root
	require_tools
	# killswitchctl passes $SSH_CONNECTION to the agent (lockout check): a test run from an SSH
	# session must not carry the runner's own connection into the lab.
	unset SSH_CONNECTION
	KS_HOST_RULESET=$(nft list ruleset 2>&1)
	ks_setup_dirs
	trap cleanup EXIT
	trap 'exit 130' INT TERM
}

# Two real users of group killswitch for this run (USER_A, USER_B; parallel runs do not share
# them), removed on exit; as_user USER ARGS... runs killswitchctl as USER with its groups.
# ks_two_members PREFIX — call after ks_init (it replaces ks_init's EXIT trap with one that
# removes the users, then cleans up).
ks_two_members() {
	command -v useradd >/dev/null || die "useradd is missing (package passwd)"
	getent group killswitch >/dev/null || groupadd -r killswitch || die "groupadd -r killswitch"
	USER_A=${1}a$$
	USER_B=${1}b$$
	trap _ks_users_remove EXIT
	useradd --system --no-create-home --shell /usr/sbin/nologin --groups killswitch "$USER_A" || die "useradd $USER_A"
	useradd --system --no-create-home --shell /usr/sbin/nologin --groups killswitch "$USER_B" || die "useradd $USER_B"
}
_ks_users_remove() {
	userdel "$USER_A" >/dev/null 2>&1
	userdel "$USER_B" >/dev/null 2>&1
	cleanup
}
as_user() { # USER ARGS...
	local u=$1
	shift
	timeout "$KS_CTL_TIMEOUT" setpriv --reuid="$u" --regid="$u" --init-groups \
		"$KILLSWITCHCTL" --socket "$KS_SOCK" "$@"
}
