#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The project's Debian package under a real systemd (issue 17): a Debian bookworm container
# (mmdebstrap --variant=minbase, cached under /var/cache/killswitch-tests keyed by its package
# list) booted with systemd-nspawn, driven with nsenter (machinectl needs a systemd host).
# test-systemd.sh checks the units with systemd-analyze and the agent's sd_notify protocol
# without a systemd; this test boots them:
#  - dpkg -i under the running systemd: sysusers creates the group, the socket and the service
#    come up together (the agent is handed the socket and says so in the journal), and the agent
#    does not take its own transactions for foreign ones (pid namespace);
#  - socket activation: with the service stopped, the first call starts it;
#  - isolate/restore by a member of the group (uid 1001) cut and restore real traffic over a
#    veth uplink; the journal entry has the MESSAGE_ID of an isolation and the caller's command
#    name, as the agent sees it from inside its sandbox;
#  - SIGKILL: the isolation holds while the agent is dead, Restart= brings it back, isolated;
#  - SIGSTOP: the watchdog (a drop-in with a short WatchdogSec=) restarts it, isolated;
#  - systemctl reload re-reads the policies in the same process;
#  - a reboot of the container: isolated again, and already when network-pre.target is reached.
# Prints "SKIP: ..." (not PASS) and exits 0 only where systemd-nspawn cannot run or no root
# file system can be had. Run as root: tests/e2e/test-units.sh
# KS_DEB=PATH uses that package instead of building one (tests/build-deb.sh).

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ks_init
for t in systemd-nspawn mmdebstrap nsenter flock; do
	command -v "$t" >/dev/null || skip "no $t here (Debian: systemd-container, mmdebstrap): units not booted"
done

# The package is built from the sources, not from $KILLSWITCHD: the sanitizer pass would boot the same again.
if ks_agent_asan; then
	skip "sanitizer pass: the package under test is the same as in the plain pass, booted there"
fi

SUITE=bookworm
PKGS=systemd,systemd-sysv,dbus,nftables,iproute2,libnftnl11,libmnl0,libjansson4,libsystemd0
CACHE=$KS_CACHE
KEY=$(printf '%s %s %s' "$SUITE" "$PKGS" "$(dpkg-query -W -f='${Version}' mmdebstrap)" | sha256sum | cut -c1-16)
TARBALL=$CACHE/rootfs-$SUITE-$KEY.tar
CT=$KS_TMP/ct
NS=${KS_PREFIX}ctnet
NSPAWN_PID=
CT_PID=
SERVER_PID=
ISOLATE_ID=41d90b3879504f21a787909fd4c57407     # docs/audit.md

units_cleanup() {
	if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
		kill -KILL "$NSPAWN_PID" 2>/dev/null
		wait "$NSPAWN_PID" 2>/dev/null
	fi
	[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	cleanup
}
trap units_cleanup EXIT

# ---------------------------------------------------------------------------------------------
# The package and the root file system.

start=$SECONDS
mkdir -p "$CACHE" || die "cannot create $CACHE"
DEB=$(ks_deb 2>"$KS_TMP/deb.err") || { sed 's/^/#   /' "$KS_TMP/deb.err"; die "tests/build-deb.sh failed"; }
note "package: $DEB ($((SECONDS - start)) s)"

(
	flock 9
	[ -s "$TARBALL" ] && exit 0
	note "building the root file system (mmdebstrap $SUITE, once per package list): $TARBALL"
	timeout 600 mmdebstrap --variant=minbase --format=tar --include="$PKGS" "$SUITE" "$TARBALL.tmp" \
		>"$KS_TMP/mmdebstrap.log" 2>&1 && mv "$TARBALL.tmp" "$TARBALL"
) 9>"$CACHE/.lock"
if [ ! -s "$TARBALL" ]; then
	tail -5 "$KS_TMP/mmdebstrap.log" 2>/dev/null | sed 's/^/#   /'
	rm -f "$TARBALL.tmp"
	skip "no $SUITE root file system (mmdebstrap needs Debian's registry): units not booted"
fi
mkdir -p "$CT"
tar -C "$CT" -xf "$TARBALL" || die "extracting $TARBALL"
note "root file system ready ($((SECONDS - start)) s)"

cp "$DEB" "$CT/root/killswitch.deb"
mkdir -p "$CT/etc/killswitch/policies"
# A policy for the container's one uplink, and the second one for the reload check (later).
printf '[Policy]\nDescription=Container: cut the uplink ctwan0\n\n[Uplinks]\nInterface=ctwan0\n' \
	>"$CT/etc/killswitch/policies/ct.policy"
# What is in force once network-pre.target is reached (the agent is ordered before it).
cat >"$CT/etc/systemd/system/ks-boot-probe.service" <<'EOF'
[Unit]
Description=test: the ruleset when network-pre.target is reached
DefaultDependencies=no
After=network-pre.target

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'nft list table inet killswitch >/run/ks-boot-probe.txt 2>&1'

[Install]
WantedBy=multi-user.target
EOF
mkdir -p "$CT/etc/systemd/system/multi-user.target.wants"
ln -s ../ks-boot-probe.service "$CT/etc/systemd/system/multi-user.target.wants/ks-boot-probe.service"
echo 'alice:x:1001:1001::/nonexistent:/usr/sbin/nologin' >>"$CT/etc/passwd"
echo 'alice:x:1001:' >>"$CT/etc/group"

# ---------------------------------------------------------------------------------------------
# Booting, and driving the container.

ct() { nsenter -t "$CT_PID" -a "$@"; }

boot() {
	systemd-nspawn -D "$CT" --private-network --register=no --keep-unit -b --console=passive \
		>>"$KS_TMP/console.log" 2>&1 &
	NSPAWN_PID=$!
	CT_PID=
	local i state
	for ((i = 0; i < 600; i++)); do
		# The container's PID 1 once it runs systemd: nspawn's first child is an intermediate
		# process that exits (taking it raced a busy machine: "stat of /proc/N/ns/user failed").
		CT_PID=$(pgrep -x -P "$NSPAWN_PID" systemd | head -1)
		[ -n "$CT_PID" ] && break
		kill -0 "$NSPAWN_PID" 2>/dev/null || break
		sleep 0.1
	done
	[ -n "$CT_PID" ] || return 1
	# Until its PID 1 is systemd and has a bus, the answer is "offline".
	for ((i = 0; i < 300; i++)); do
		state=$(timeout 90 nsenter -t "$CT_PID" -a systemctl is-system-running --wait 2>&1)
		case $state in running | degraded | maintenance | stopping) break ;; esac
		kill -0 "$NSPAWN_PID" 2>/dev/null || break
		sleep 0.2
	done
	note "container booted (PID 1 is $CT_PID on the host): $state"
	[ "$state" = running ] || [ "$state" = degraded ]
}

# wait_ct SECONDS CMD... — CMD inside the container, until it succeeds.
wait_ct() {
	local limit=$1 i
	shift
	for ((i = 0; i < limit * 5; i++)); do
		ct "$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}

main_pid() { ct systemctl show -p MainPID --value killswitchd.service; }
# A new agent process runs and answers (after a restart of any kind).
restarted_from() { # OLD-PID
	local pid
	pid=$(main_pid)
	[ -n "$pid" ] && [ "$pid" != 0 ] && [ "$pid" != "$1" ] && ct killswitchctl status >/dev/null 2>&1
}
is_isolated() { ct killswitchctl --json status | grep -q '"state": *"isolated"'; }
table_hooked() { ct nft list table inet killswitch 2>/dev/null | grep -q 'type filter hook'; }

# The container's uplink ctwan0: a veth to a namespace of ours that echoes on 198.51.100.2:7.
uplink_up() {
	ip netns del "$NS" 2>/dev/null
	ip netns add "$NS" &&
		ip -n "$NS" link add ctwan0 type veth peer name inet0 &&
		ip -n "$NS" link set ctwan0 netns "$CT_PID" &&
		ip -n "$NS" addr add 198.51.100.2/30 dev inet0 &&
		ip -n "$NS" link set inet0 up && ip -n "$NS" link set lo up &&
		ct ip addr add 198.51.100.1/30 dev ctwan0 && ct ip link set ctwan0 up || return 1
	[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null
	ip netns exec "$NS" timeout 300 socat TCP-LISTEN:7,bind=198.51.100.2,reuseaddr,fork PIPE 2>/dev/null &
	SERVER_PID=$!
	wait_until 5 ip netns exec "$NS" sh -c 'ss -ltn | grep -q 198.51.100.2:7'
}
# A random payload over the uplink, from the container (bash's /dev/tcp: no socat in there).
probe() {
	# shellcheck disable=SC2016 # expanded by the container's bash
	ct timeout 3 bash -c 'p=probe-$RANDOM$RANDOM; exec 3<>/dev/tcp/198.51.100.2/7 || exit 1
		printf "%s\n" "$p" >&3; read -r -t 2 line <&3; [ "$line" = "$p" ]' 2>/dev/null
}

boot || die "systemd did not boot in the container (see $KS_TMP/console.log)"
pass "systemd boots in a $SUITE container (systemd-nspawn)"

# ---------------------------------------------------------------------------------------------
# Installing the package under the running systemd.

if ct dpkg -i /root/killswitch.deb >"$KS_TMP/dpkg.log" 2>&1; then
	pass "dpkg -i killswitch.deb under a running systemd"
else
	fail "dpkg -i killswitch.deb"
	show_output "$KS_TMP/dpkg.log"
fi
check_not "dpkg -i: the postinst starts every unit (no 'Could not execute systemctl')" \
	grep -q 'Could not execute systemctl' "$KS_TMP/dpkg.log"
check "sysusers created the group killswitch" ct getent group killswitch
GID=$(ct getent group killswitch | cut -d: -f3)
check "killswitchd.socket and killswitchd.service are both active after the install" \
	ct systemctl is-active killswitchd.socket killswitchd.service
check "the agent was handed its socket by systemd, and the log names it" \
	sh -c "nsenter -t $CT_PID -a journalctl -b -u killswitchd.service | grep -q 'listening on /run/killswitch/control.sock (from systemd)'"
check_not "the agent does not take its own transactions for foreign ones (no TAMPER in a pid namespace)" \
	sh -c "nsenter -t $CT_PID -a journalctl -b -u killswitchd.service | grep -q TAMPER"
# The threads of bulk work lower their own priority (worker.c): setpriority must pass the filter that
# removes @resources, or they would compete with the loop that serves isolate.
check "the unit's system call filter, as systemd computed it, allows setpriority (and not setrlimit)" \
	sh -c "nsenter -t $CT_PID -a systemctl show -p SystemCallFilter --value killswitchd.service | tr ' ' '\n' | grep -qx setpriority && ! nsenter -t $CT_PID -a systemctl show -p SystemCallFilter --value killswitchd.service | tr ' ' '\n' | grep -qx setrlimit"

# Socket activation: the first call starts the service.
ct systemctl stop killswitchd.service >/dev/null 2>&1
check "with the service stopped, the socket still listens" ct systemctl is-active killswitchd.socket
check_not "... and the service is inactive" ct systemctl is-active killswitchd.service
check "socket activation: the first call (killswitchctl status) starts the service and is answered" \
	ct timeout 20 killswitchctl status
check "... the service is active" ct systemctl is-active killswitchd.service

# ---------------------------------------------------------------------------------------------
# Isolate and restore, with real traffic.

uplink_up || die "setting up the container's uplink"
check "normal: traffic over the uplink flows" probe
AS_ALICE=(setpriv --reuid=1001 --regid=1001 --groups="$GID")
check "isolate by alice (group killswitch) through the socket" \
	ct "${AS_ALICE[@]}" killswitchctl isolate ct --reason "units test"
check_not "isolated: traffic over the uplink is cut" probe
check "isolated: table inet killswitch has its base chains" table_hooked
entry=$(ct journalctl -b -o json -u killswitchd.service "MESSAGE_ID=$ISOLATE_ID" -n 1)
note "journal entry: $(printf '%s' "$entry" | cut -c1-400)"
jfield() { printf '%s' "$entry" | python3 -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
check "journal: the isolation has MESSAGE_ID=$ISOLATE_ID and KILLSWITCH_UID=1001" \
	test "$(jfield MESSAGE_ID)/$(jfield KILLSWITCH_UID)" = "$ISOLATE_ID/1001"
check "journal: the caller's command name (KILLSWITCH_COMMAND=killswitchctl) under the unit's sandbox" \
	test "$(jfield KILLSWITCH_COMMAND)" = killswitchctl
check "journal: journald's OBJECT_COMM of the caller is killswitchctl" test "$(jfield OBJECT_COMM)" = killswitchctl

# SIGKILL: the kernel keeps the isolation; Restart= brings the agent back, isolated.
pid=$(main_pid)
restarts=$(ct systemctl show -p NRestarts --value killswitchd.service)
ct systemctl kill -s KILL --kill-whom=main killswitchd.service
check_not "SIGKILL: while the agent is dead, traffic stays cut" probe
check "SIGKILL: Restart= starts a new agent" wait_until 30 restarted_from "$pid"
check "SIGKILL: NRestarts went up" test "$(ct systemctl show -p NRestarts --value killswitchd.service)" -gt "$restarts"
check "SIGKILL: still isolated" is_isolated
check_not "SIGKILL: traffic still cut" probe

# SIGSTOP: the watchdog restarts a hung agent (a drop-in makes it fast for the test).
mkdir -p "$CT/etc/systemd/system/killswitchd.service.d"
printf '[Service]\nWatchdogSec=4s\nTimeoutAbortSec=2s\n' >"$CT/etc/systemd/system/killswitchd.service.d/90-test-watchdog.conf"
ct systemctl daemon-reload
ct systemctl restart killswitchd.service
check "a restart keeps the isolation" is_isolated
pid=$(main_pid)
ct systemctl kill -s STOP --kill-whom=main killswitchd.service
check "SIGSTOP: the watchdog restarts the hung agent" wait_until 60 restarted_from "$pid"
check "SIGSTOP: the journal says why (watchdog timeout)" \
	sh -c "nsenter -t $CT_PID -a journalctl -b -u killswitchd.service | grep -qi 'watchdog timeout'"
check "SIGSTOP: still isolated" is_isolated
check_not "SIGSTOP: traffic still cut" probe
rm -r "$CT/etc/systemd/system/killswitchd.service.d"
ct systemctl daemon-reload

# systemctl reload: the policies are re-read by the same process.
printf '[Policy]\nDescription=Second\n\n[Uplinks]\nInterface=ctwan9\n' >"$CT/etc/killswitch/policies/ct2.policy"
pid=$(main_pid)
check "systemctl reload killswitchd" ct systemctl reload killswitchd.service
check "reload: the new policy is loaded" sh -c "nsenter -t $CT_PID -a killswitchctl policies | grep -q ct2"
check "reload: the same process (MainPID $pid)" test "$(main_pid)" = "$pid"
check "reload: still isolated" is_isolated

# ---------------------------------------------------------------------------------------------
# A reboot: isolated again, before the network is up.

ct systemctl reboot
for ((i = 0; i < 600; i++)); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.1; done
wait "$NSPAWN_PID" 2>/dev/null
note "the container went down for the reboot (systemd-nspawn exited with $?)"
boot || die "the container did not boot again"
check "after the reboot: the agent runs" ct systemctl is-active killswitchd.service
check "after the reboot: isolated again (policy ct)" is_isolated
check "after the reboot: the table was in force when network-pre.target was reached" \
	ct grep -q 'type filter hook' /run/ks-boot-probe.txt
before=$(ct systemctl show -p ActiveEnterTimestampMonotonic --value killswitchd.service)
after=$(ct systemctl show -p ActiveEnterTimestampMonotonic --value network-pre.target)
check "after the reboot: killswitchd was ready ($before us) before network-pre.target ($after us)" \
	test "${before:-0}" -gt 0 -a "${before:-0}" -le "${after:-0}"
uplink_up || die "setting up the container's uplink again"
check_not "after the reboot: traffic over the new uplink is cut" probe
check "restore by alice" ct "${AS_ALICE[@]}" killswitchctl restore --reason "units test done"
check "restored: traffic flows" probe
check_not "restored: no base chains left" table_hooked

ct systemctl poweroff >/dev/null 2>&1
for ((i = 0; i < 300; i++)); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.1; done
note "total $((SECONDS - start)) s"
summary
