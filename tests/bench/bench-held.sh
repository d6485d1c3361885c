#!/bin/bash
# SPDX-License-Identifier: MIT
#
# How long a rebuild while isolated holds the uplinks (everything dropped, kept flows too), run by
# hand (not part of the tests; figures in docs/performance.md, "The held window of a rebuild"):
#
#     sudo tests/bench/bench-held.sh [RUNS] [BUILD]       # default 3 runs, build/ of this checkout
#
# In a network namespace of its own (an uplink veth whose peer sits in a second namespace; no
# packet is sent), the agent isolates with a policy of 100,000 exact addresses and is killed; one
# element is deleted from the kernel's set (same table, comment and rules), and the restarted agent
# finds it and rebuilds while isolated: the held table first, then the switch. The agent logs the
# held window ("... held (everything dropped) for N ms"); the script also traces the agent's
# netlink sends (strace) and prints the time from the held table's commit (the first request after
# that transaction's send returns) to the switch's send, which works for builds without the line.
set -u
RUNS=${1:-3}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${2:-$REPO/build}" && pwd) || exit 2
[ "$(id -u)" -eq 0 ] || { echo "bench-held.sh needs root (network namespaces, nftables)" >&2; exit 2; }
command -v strace >/dev/null || apt-get install -y -qq strace >/dev/null || { echo "needs strace" >&2; exit 1; }
CTL=$BUILD/ctl/killswitchctl

run_once() {
	local ns=ksheld$$ tmp pid tracer
	tmp=$(mktemp -d /tmp/ks-held.XXXXXX)
	mkdir -p "$tmp/conf/policies" "$tmp/state"
	ip netns add "$ns" && ip netns add "${ns}p" || return 1
	ip -n "$ns" link add wan0 type veth peer name wanp netns "${ns}p"
	ip -n "$ns" link set wan0 up
	python3 -c '
print("[Uplinks]\nInterface=wan0\n\n[Gateway big]\nPorts=tcp:443")
for i in range(0, 200000, 2):
    print("Address=10.%d.%d.%d" % (64 + i // 65536, (i // 256) % 256, i % 256))' >"$tmp/conf/policies/big.policy"
	agent() { ip netns exec "$ns" "$BUILD/agent/killswitchd" --config-dir "$tmp/conf" --state-dir "$tmp/state" \
		--socket "$tmp/sock" 2>>"$tmp/log" & pid=$!; }
	answers() { for _ in $(seq 600); do "$CTL" --socket "$tmp/sock" status >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
	agent; answers && "$CTL" --socket "$tmp/sock" isolate big --reason bench >/dev/null || echo "isolate failed" >&2
	sleep 3
	kill -9 "$pid"; wait "$pid" 2>/dev/null
	ip netns exec "$ns" nft delete element inet killswitch big/gw_big_v4 '{ 10.64.0.8 . tcp . 443 }'
	rm -f "$tmp/sock"
	agent
	sleep 0.2
	strace -f -tt -e trace=sendmsg,sendto -p "$pid" -o "$tmp/strace" 2>/dev/null & tracer=$!
	answers
	for _ in $(seq 100); do grep -q "big sets of table inet killswitch hold\|held (everything dropped)" "$tmp/log" && break; sleep 0.1; done
	sleep 1
	kill "$tracer" 2>/dev/null; kill "$pid"; wait "$pid" 2>/dev/null
	grep -o "held (everything dropped) for .*" "$tmp/log" | sed 's/^/  agent: /'
	python3 - "$tmp/strace" <<'PY'
import sys
L = [l for l in open(sys.argv[1]) if ("sendmsg(" in l or "sendto(" in l) and "AF_UNIX" not in l and "sun_path" not in l]
def t(l):
    h, m, s = l.split()[1].split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)
idx = [i for i, l in enumerate(L) if "sendmsg(" in l]
if len(idx) < 2:
    sys.exit("  trace: no rebuild seen")
best = max(idx[:-1], key=lambda i: t(L[i + 1]) - t(L[i]))   # the big transaction: the longest send
nxt = [i for i in idx if i > best][0]
print("  trace: held table's transaction %.0f ms, then held %.1f ms until the switch was sent"
      % ((t(L[best + 1]) - t(L[best])) * 1e3, (t(L[nxt]) - t(L[best + 1])) * 1e3))
PY
	ip netns del "$ns"; ip netns del "${ns}p"
	rm -rf "$tmp"
}

echo "A rebuild while isolated with 100,000 addresses (build: $BUILD):"
for ((i = 1; i <= RUNS; i++)); do run_once; done
