#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The killswitch demo, on a fresh Debian 12 machine:   sudo tests/demo.sh
#
# Installs what it needs, builds, then builds a small datacenter out of network namespaces (a LAN
# host, a gateway with two internet uplinks and a management link, and "the internet" with a web
# server, a mail gateway and a SIP gateway), starts killswitchd on the gateway, isolates, shows what
# is cut and what still answers, restores, and removes everything it made. Nothing leaves the
# machine: all traffic stays inside the demo's own namespaces, and the host's firewall is not touched.

set -u
export LC_ALL=C.UTF-8 # column widths below count characters, not bytes
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null; then exec sudo -- "$0" "$@"; fi
	echo "The demo needs root (network namespaces, nftables): sudo tests/demo.sh" >&2
	exit 1
fi

if [ -t 1 ]; then
	B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' D=$'\e[2m' N=$'\e[0m'
else
	B='' G='' R='' D='' N=''
fi
say() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
pad() { printf '%s%*s' "$1" $(($2 - ${#1})) ''; } # TEXT WIDTH (printf pads bytes, not characters)
explain() { printf '    %s\n' "$@"; }

# --- dependencies and build ------------------------------------------------------------------
# shellcheck source-path=SCRIPTDIR source=deps.sh
. "$ROOT/tests/deps.sh"
say "Checking the Debian packages the demo needs (build tools, libnftnl, libmnl, socat, nftables...)"
ks_install_deps || { echo "Could not install the dependencies (apt-get failed)." >&2; exit 1; }
explain "all present."

say "Building killswitch (meson, in $ROOT/build)"
cd "$ROOT" || exit 1
if [ ! -f build/build.ninja ]; then
	meson setup build >/dev/null || { echo "meson setup failed" >&2; exit 1; }
fi
meson compile -C build >/dev/null || { meson compile -C build; echo "The build failed." >&2; exit 1; }
explain "built build/agent/killswitchd and build/ctl/killswitchctl."

export KS_TEST_NAME=demo
# shellcheck source-path=SCRIPTDIR source=e2e/lib.sh
. "$ROOT/tests/e2e/lib.sh"
ks_init
# shellcheck disable=SC2317 # called from the EXIT trap
demo_cleanup() {
	printf '\n%s==> Cleaning up: stopping killswitchd, removing the namespaces and temp files%s\n' "$B" "$N"
	cleanup
}
trap demo_cleanup EXIT

# In the demo, a failed setup step ends the demo with a message (lib.sh's die counts a test failure).
die() {
	printf '%sThe demo cannot continue: %s%s\n' "$R" "$*" "$N" >&2
	agent_log_tail >&2
	exit 1
}

# --- the lab ---------------------------------------------------------------------------------
say "Building the lab datacenter out of network namespaces"
lab_create
explain \
	"LAN host      ${NS_LAN}   10.0.1.2     fd00:1::2" \
	"gateway       ${NS_GW}    lan0 10.0.1.1 · mgmt0 10.0.9.1 · uplinks wan0 and wan1 to the internet" \
	"management    ${NS_MGMT}  10.0.9.2     (the admins' network)" \
	"internet      ${NS_INET}  web 192.0.2.80 / 2001:db8:80::80 (tcp/80)" \
	"                             mail gateway 203.0.113.25 / 2001:db8:25::25 (tcp/25)" \
	"                             SIP gateway 203.0.113.5 (udp/5060, tcp/5061)"

write_lab_policy isolate
say "The isolation policy ($KS_CONF/policies/isolate.policy)"
sed 's/^/    │ /' "$KS_CONF/policies/isolate.policy"
explain "" "In force, it drops every packet through wan0/wan1 except traffic with the phone and" \
	"mail gateways on their ports. The LAN and management links are not touched."

say "Starting killswitchd inside the gateway namespace"
agent_start || die "killswitchd did not start"
explain "ip netns exec $NS_GW killswitchd --config-dir $KS_CONF --state-dir $KS_STATE --socket $KS_SOCK" \
	"${D}(every killswitchctl below talks to this demo agent: --socket $KS_SOCK)${N}"

run_ctl() { # shows the command, then runs it
	local a shown=
	for a; do
		case $a in *[[:space:]]*) shown="$shown \"$a\"" ;; *) shown="$shown $a" ;; esac
	done
	printf '\n    %s$ killswitchctl%s%s\n' "$B" "$shown" "$N"
	ctl "$@" 2>&1 | sed 's/^/    /'
	return "${PIPESTATUS[0]}"
}

# --- probes ----------------------------------------------------------------------------------
# name | what it means | expected while isolated (up/cut) | probe
PROBES=(
	"web v4|LAN → web server 192.0.2.80 tcp/80|cut|tcp_echo lan 192.0.2.80 80"
	"web v6|LAN → web server 2001:db8:80::80 tcp/80|cut|tcp_echo lan 2001:db8:80::80 80"
	"web from gateway|gateway itself → web server tcp/80|cut|tcp_echo gw 192.0.2.80 80"
	"inbound|internet → gateway tcp/2222 over wan0|cut|tcp_echo inet 198.51.100.1 2222"
	"mail v4|LAN → mail gateway 203.0.113.25 tcp/25|up|tcp_echo lan 203.0.113.25 25"
	"mail v6|LAN → mail gateway 2001:db8:25::25 tcp/25|up|tcp_echo lan 2001:db8:25::25 25"
	"mail other port|LAN → mail gateway tcp/8080 (not in policy)|cut|tcp_echo lan 203.0.113.25 8080"
	"SIP udp|LAN → SIP gateway 203.0.113.5 udp/5060|up|udp_echo lan 203.0.113.5 5060"
	"SIP tcp|LAN → SIP gateway 203.0.113.5 tcp/5061|up|tcp_echo lan 203.0.113.5 5061"
	"LAN → gateway|LAN host → gateway 10.0.1.1 (tcp and ping)|up|tcp_echo lan 10.0.1.1 2222 && ping_ok lan 10.0.1.1"
	"management|mgmt host → gateway 10.0.9.1 (tcp and ping)|up|tcp_echo mgmt 10.0.9.1 2222 && ping_ok mgmt 10.0.9.1"
)
declare -A RESULT=()
SURPRISES=0

# probe_all PHASE EXPECT — EXPECT "all-up" or "isolated"; probes run side by side.
probe_all() {
	local phase=$1 expect=$2 i name what iso cmd want got mark
	local -a pids=()
	for i in "${!PROBES[@]}"; do
		IFS='|' read -r name what iso cmd <<<"${PROBES[i]}"
		(eval "$cmd") </dev/null >/dev/null 2>&1 &
		pids[i]=$!
	done
	printf '\n    %s %s %s\n' "$(pad probe 18)" "$(pad path 46)" "result"
	for i in "${!PROBES[@]}"; do
		IFS='|' read -r name what iso cmd <<<"${PROBES[i]}"
		if wait "${pids[i]}"; then got='up'; else got='cut'; fi
		want=up
		[ "$expect" = isolated ] && want=$iso
		if [ "$got" = up ]; then mark="${G}✔ answers${N}"; else mark="${R}✘ cut${N}"; fi
		RESULT[$phase,$i]=$got
		if [ "$got" != "$want" ]; then
			mark="$mark  ${R}${B}<- unexpected, should be $want${N}"
			SURPRISES=$((SURPRISES + 1))
		fi
		printf '    %s %s %s\n' "$(pad "$name" 18)" "$(pad "$what" 46)" "$mark"
	done
}

# --- the story -------------------------------------------------------------------------------
say "1. Normal operation: the state, then every path through the gateway"
run_ctl status
probe_all before all-up

say "2. Incident! Isolating the uplinks"
start=$(date +%s%N)
run_ctl isolate --reason "demo: incident" || die "killswitchctl isolate failed"
explain "${D}(returned after $((($(date +%s%N) - start) / 1000000)) ms, with the rules in force)${N}"
probe_all isolated isolated
explain "" "The internet is cut in both directions and on both uplinks, for IPv4 and IPv6, for the" \
	"LAN and for the gateway itself. The SIP trunk and the mail relay still answer on their ports."

say "3. What the admin sees"
run_ctl status
printf '\n    %s$ ip netns exec %s nft list table inet killswitch%s\n' "$B" "$NS_GW" "$N"
n_gw nft list table inet killswitch 2>&1 | sed 's/^/    /'
explain "" "killswitchd built that table with one netlink transaction; the counters show the gateways'" \
	"traffic let through and the packets dropped on the uplinks."

say "4. All clear: restoring"
run_ctl restore --reason "demo: all clear" || die "killswitchctl restore failed"
if n_gw nft list table inet killswitch >/dev/null 2>&1 && ! ks_tables_inactive >/dev/null; then
	explain "${R}the table inet killswitch is still in force${N}"
	SURPRISES=$((SURPRISES + 1))
else
	explain "no isolation rules are in force on the gateway any more."
fi
probe_all restored all-up
run_ctl status

# --- summary ---------------------------------------------------------------------------------
say "Summary"
printf '\n    %-18s %-10s %-10s %-10s\n' "probe" "before" "isolated" "restored"
for i in "${!PROBES[@]}"; do
	IFS='|' read -r name _ <<<"${PROBES[i]}"
	printf '    %s' "$(pad "$name" 18)"
	for phase in before isolated restored; do
		if [ "${RESULT[$phase,$i]}" = up ]; then
			printf ' %s%s%s' "$G" "$(pad "✔ up" 10)" "$N"
		else
			printf ' %s%s%s' "$R" "$(pad "✘ cut" 10)" "$N"
		fi
	done
	printf '\n'
done
if [ "$SURPRISES" -eq 0 ]; then
	printf '\n%s%sEverything behaved as expected.%s\n' "$B" "$G" "$N"
	status=0
else
	printf '\n%s%s%d result(s) were not what killswitch promises; see the marks above.%s\n' "$B" "$R" "$SURPRISES" "$N"
	agent_log_tail
	status=1
fi
agent_stop TERM
exit "$status"
