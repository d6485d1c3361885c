#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Fleet isolation over SSH (issue 7): killswitchctl -H runs the verb on several gateways through
# OpenSSH and their own killswitchctl, in parallel, and reports per host (docs/fleet.md).
#
#   ${KS_PREFIX}adm   the admin's machine: gwN 10.77.N.1/24 ── mgmt0 10.77.N.2 of ${KS_PREFIX}gwN
#   ${KS_PREFIX}gwN   N = 1..3: killswitchd (own config, state, socket) and sshd on 10.77.N.2:22;
#                     wan0 198.51.100.(4N-3)/30, its uplink, to ${KS_PREFIX}inet
#   ${KS_PREFIX}gw4   a gateway whose sshd is down: 10.77.4.2 refuses connections
#   ${KS_PREFIX}inet  "the internet": a tcp echo server on 192.0.2.80:80
#
# Each gateway's policy cuts wan0; a probe from the gateway to 192.0.2.80 shows whether it is cut.
# sshd: a generated host key, the test's own client key, root by key only, SetEnv
# KILLSWITCH_SOCKET=that gateway's socket; the client uses an ssh_config of its own (through
# KILLSWITCH_SSH) with a known_hosts file of the generated keys and StrictHostKeyChecking=yes.
# Everything lives in a temp dir and network namespaces with per-run names; nothing listens or
# sends outside them. Installs openssh-server/-client if missing (inside a throwaway namespace,
# so that a service the package starts never listens on the host).
# Run as root: tests/e2e/test-fleet.sh   (KILLSWITCHD, KILLSWITCHCTL: see lib.sh)

# The single-quoted checks below are expanded by check's eval, on purpose.
# shellcheck disable=SC2016
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ks_init

GWS=(1 2 3)
NS_ADM=${KS_PREFIX}adm
FLEET_NS=()
FLEET_PIDS=()
ORIGIN="$(id -un)@$(hostname)"
ROOT_HOME=$(getent passwd root | cut -d: -f6)

fleet_cleanup() {
	local ns pid f
	if [ "$KS_FAILED" -gt 0 ] && [ -n "$KS_TMP" ]; then
		for f in "$KS_TMP"/gw*/agent.log "$KS_TMP"/gw*/sshd.log; do
			[ -s "$f" ] || continue
			note "last lines of ${f#"$KS_TMP"/}:"
			tail -n 15 "$f" | sed 's/^/#   | /'
		done
	fi
	for pid in "${FLEET_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
	wait 2>/dev/null
	for ns in "${FLEET_NS[@]}"; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	cleanup
}
trap fleet_cleanup EXIT

[ -x "$KILLSWITCHD" ] || die "no agent at $KILLSWITCHD (build: meson setup build && meson compile -C build)"
[ -x "$KILLSWITCHCTL" ] || die "no client at $KILLSWITCHCTL"

# ---------------------------------------------------------------------------------------------
# OpenSSH

install_openssh() {
	local ns=${KS_PREFIX}apt pid
	[ -x /usr/sbin/sshd ] && command -v ssh >/dev/null && command -v ssh-keygen >/dev/null && return 0
	note "installing openssh-server and openssh-client"
	export DEBIAN_FRONTEND=noninteractive
	{ apt-get update -qq && apt-get install -y -qq --download-only openssh-server openssh-client; } >/dev/null ||
		return 1
	FLEET_NS+=("$ns")
	ip netns add "$ns" || return 1
	ip netns exec "$ns" apt-get install -y -qq --no-download openssh-server openssh-client >/dev/null
	for pid in $(ip netns pids "$ns"); do kill -KILL "$pid" 2>/dev/null; done
	ip netns del "$ns"
	[ -x /usr/sbin/sshd ]
}
install_openssh || die "cannot install openssh-server and openssh-client"
# The privilege separation directory sshd insists on (the package's unit creates it at boot).
mkdir -p /run/sshd && chmod 755 /run/sshd

# ---------------------------------------------------------------------------------------------
# The lab

n_adm() { ip netns exec "$NS_ADM" "$@"; }
gw_dir() { echo "$KS_TMP/gw$1"; }
gw_ctl() { timeout "$KS_CTL_TIMEOUT" "$KILLSWITCHCTL" --socket "$(gw_dir "$1")/run/control.sock" "${@:2}"; }

new_ns() {
	ip netns add "$1" || return 1
	FLEET_NS+=("$1")
	ip -n "$1" link set lo up
	ip netns exec "$1" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 >/dev/null
}

lab_up() {
	local n inet=${KS_PREFIX}inet
	new_ns "$NS_ADM" && new_ns "$inet" || return 1
	ip -n "$inet" addr add 192.0.2.80/32 dev lo || return 1
	for n in "${GWS[@]}" 4; do
		local ns=${KS_PREFIX}gw$n
		new_ns "$ns" &&
		ip -n "$NS_ADM" link add "gw$n" type veth peer name mgmt0 netns "$ns" &&
		ip -n "$NS_ADM" addr add "10.77.$n.1/24" dev "gw$n" &&
		ip -n "$NS_ADM" link set "gw$n" up &&
		ip -n "$ns" addr add "10.77.$n.2/24" dev mgmt0 &&
		ip -n "$ns" link set mgmt0 up || return 1
		[ "$n" = 4 ] && continue
		ip -n "$ns" link add wan0 type veth peer name "gw$n" netns "$inet" &&
		ip -n "$ns" addr add "198.51.100.$((4 * n - 3))/30" dev wan0 &&
		ip -n "$ns" link set wan0 up &&
		ip -n "$ns" route add default via "198.51.100.$((4 * n - 2))" &&
		ip -n "$inet" addr add "198.51.100.$((4 * n - 2))/30" dev "gw$n" &&
		ip -n "$inet" link set "gw$n" up || return 1
	done
	ip netns exec "$inet" socat -T 5 TCP4-LISTEN:80,bind=192.0.2.80,reuseaddr,fork EXEC:cat \
		>>"$KS_TMP/servers.log" 2>&1 &
	FLEET_PIDS+=($!)
}

# The gateway's policy: cut its uplink, keep a mail relay (which the lab does not have).
write_policy() {
	local d
	d=$(gw_dir "$1")
	mkdir -p "$d/etc/policies" "$d/state" "$d/run" || return 1
	printf '[Policy]\nDescription=Fleet lab gateway %s: cut wan0\n\n[Uplinks]\nInterface=wan0\n\n' "$1" \
		>"$d/etc/policies/isolate.policy"
	printf '[Gateway mail]\nAddress=203.0.113.25\nPorts=tcp:25\n' >>"$d/etc/policies/isolate.policy"
}

agent_up() {
	local d i
	d=$(gw_dir "$1")
	# shellcheck disable=SC2086 # the wrapper is a command line
	ip netns exec "${KS_PREFIX}gw$1" $KS_AGENT_WRAPPER "$KILLSWITCHD" --config-dir "$d/etc" \
		--state-dir "$d/state" --socket "$d/run/control.sock" >>"$d/agent.log" 2>&1 &
	FLEET_PIDS+=($!)
	for ((i = 0; i < 200; i++)); do
		gw_ctl "$1" status >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	tail -5 "$d/agent.log" | sed 's/^/#   agent| /'
	return 1
}

# Keys: one host key per gateway, one client key for the admin; known_hosts lists the host keys.
ssh_keys() {
	local n
	ssh-keygen -q -t ed25519 -N '' -C fleet-test -f "$KS_TMP/id_admin" || return 1
	cp "$KS_TMP/id_admin.pub" "$KS_TMP/authorized_keys"
	: >"$KS_TMP/known_hosts"
	for n in "${GWS[@]}"; do
		ssh-keygen -q -t ed25519 -N '' -f "$(gw_dir "$n")/host_key" || return 1
		printf 'gw%s,10.77.%s.2 %s\n' "$n" "$n" "$(cut -d' ' -f1,2 "$(gw_dir "$n")/host_key.pub")" \
			>>"$KS_TMP/known_hosts"
	done
	{
		for n in "${GWS[@]}" 4; do printf 'Host gw%s\n    HostName 10.77.%s.2\n' "$n" "$n"; done
		printf 'Host *\n    User root\n    IdentityFile %s\n    IdentitiesOnly yes\n' "$KS_TMP/id_admin"
		printf '    UserKnownHostsFile %s\n    GlobalKnownHostsFile /dev/null\n' "$KS_TMP/known_hosts"
		printf '    StrictHostKeyChecking yes\n    LogLevel ERROR\n'
	} >"$KS_TMP/ssh_config"
}

sshd_up() {
	local d
	d=$(gw_dir "$1")
	cat >"$d/sshd_config" <<-EOF
		ListenAddress 10.77.$1.2:22
		HostKey $d/host_key
		PidFile $d/sshd.pid
		AuthorizedKeysFile $KS_TMP/authorized_keys
		PermitRootLogin prohibit-password
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		UsePAM no
		StrictModes no
		SetEnv KILLSWITCH_SOCKET=$d/run/control.sock
	EOF
	# bash, run by sshd for each command, reads root's ~/.bashrc; a machine's own (this one's
	# starts a Python version manager: ~0.5 s of CPU per command) is not the gateway's concern.
	# sshd sees an empty one, in the mount namespace ip netns exec made for it.
	: >"$KS_TMP/empty.bashrc"
	ip netns exec "${KS_PREFIX}gw$1" sh -c '[ ! -f "$1" ] || mount --bind "$2" "$1" || exit 1; shift 2; exec "$@"' \
		sh "$ROOT_HOME/.bashrc" "$KS_TMP/empty.bashrc" /usr/sbin/sshd -D -e -f "$d/sshd_config" >>"$d/sshd.log" 2>&1 &
	FLEET_PIDS+=($!)
}

# fleet ARGS... — killswitchctl run by the admin, through the lab's ssh_config.
fleet() {
	n_adm env KILLSWITCH_SSH="ssh -F $KS_TMP/ssh_config" KILLSWITCHCTL_REMOTE="$KILLSWITCHCTL" \
		timeout 90 "$KILLSWITCHCTL" "$@"
}

# fleet_json PYEXPR ARGS... — PYEXPR true of r, the JSON array that killswitchctl --json=short ARGS printed.
fleet_json() {
	local expr=$1 out
	shift
	out=$(fleet --json=short "$@")
	printf '%s\n' "$out"
	printf '%s' "$out" | python3 -c '
import json, os, sys
r = json.load(sys.stdin)
by = {e["host"]: e for e in r}
sys.exit(0 if eval("(" + sys.argv[1] + ")") else 1)' "$expr"
}

web() { tcp_echo "gw$1" 192.0.2.80 80; }
chains_active() { in_ns "gw$1" nft list table inet killswitch | grep -q 'type filter hook'; }
gw_status_is() { # N PYEXPR
	gw_ctl "$1" --json=short status | python3 -c '
import json, os, sys
d = json.load(sys.stdin)
print(json.dumps(d))
sys.exit(0 if eval("(" + sys.argv[1] + ")") else 1)' "$2"
}
gw_since() { gw_ctl "$1" --json=short status | python3 -c 'import json, sys; print(json.load(sys.stdin)["since"])'; }

SECONDS=0
lab_up || die "creating the namespaces"
for n in "${GWS[@]}"; do write_policy "$n" || die "writing the policy of gw$n"; done
ssh_keys || die "generating the ssh keys"
for n in "${GWS[@]}"; do
	agent_up "$n" || die "killswitchd in gw$n does not answer"
	sshd_up "$n"
done
for n in "${GWS[@]}"; do
	wait_until 10 n_adm ssh -F "$KS_TMP/ssh_config" "gw$n" true ||
		{ tail -5 "$(gw_dir "$n")/sshd.log" | sed 's/^/#   sshd| /'; die "ssh to gw$n does not work"; }
	wait_until 5 web "$n" || die "gw$n does not reach the internet"
done
note "lab up in ${SECONDS}s"

# ---------------------------------------------------------------------------------------------
# Before: every gateway normal, reachable, its uplink open.

res=$(fleet -H gw1,gw2,gw3 status)
rc=$?
printf '%s\n' "$res" | sed 's/^/#   /'
check "status -H gw1,gw2,gw3 before: exit 0, three hosts normal" \
	eval '[ $rc -eq 0 ] && [ "$(grep -cE "^gw[123] +ok +normal" <<<"$res")" = 3 ] && contains "$res" "3 hosts: 3 ok, 0 failed"'
check_many <<EOF
+ gw1 reaches the internet before | web 1
+ gw2 reaches the internet before | web 2
+ gw3 reaches the internet before | web 3
EOF

# ---------------------------------------------------------------------------------------------
# Isolate the whole fleet; gw4 is down.

res=$(fleet -H gw1,gw2,gw3,gw4 isolate --reason fleet-test 2>&1)
rc=$?
printf '%s\n' "$res" | sed 's/^/#   /'
check "isolate -H with one host down exits 1" test "$rc" -eq 1
check "isolate -H: gw1, gw2, gw3 ok and isolated" eval '[ "$(grep -cE "^gw[123] +ok +isolated +isolate " <<<"$res")" = 3 ]'
check "isolate -H: gw4 failed, with ssh's reason" eval 'grep -qE "^gw4 +failed .*(Connection refused|No route to host)" <<<"$res"'
check "isolate -H: summary line" contains "$res" "4 hosts: 3 ok, 1 failed."
for n in "${GWS[@]}"; do
	check "gw$n: its agent says isolated, reason fleet-test, by root" \
		gw_status_is "$n" 'd["state"] == "isolated" and d["reason"] == "fleet-test" and d["user"] == "root"'
	check "gw$n: base chains in force in table inet killswitch" chains_active "$n"
done
check_many <<EOF
- gw1's uplink is cut | web 1
- gw2's uplink is cut | web 2
- gw3's uplink is cut | web 3
EOF

# ---------------------------------------------------------------------------------------------
# status -H: who is isolated, since when; --json for scripts.

res=$(fleet -H gw1,gw2,gw3 status)
rc=$?
printf '%s\n' "$res" | sed 's/^/#   /'
check "status -H: exit 0" test "$rc" -eq 0
for n in "${GWS[@]}"; do
	since=$(gw_since "$n")
	since_local=$(date -d "$since" '+%Y-%m-%d %H:%M:%S')
	check "status -H: gw$n isolated since $since_local" \
		eval 'grep -qE "^gw$n +ok +isolated +isolate +$since_local" <<<"$res"'
done

SINCES="$(gw_since 1) $(gw_since 2) $(gw_since 3)"
export SINCES ORIGIN
check "status --json -H with gw4: an array; gw1..3 isolated, since as their agents say; gw4 unreachable" \
	fleet_json 'len(r) == 4 and [e["host"] for e in r] == ["gw1", "gw2", "gw3", "gw4"]
		and all(by[h]["ok"] and by[h]["state"] == "isolated" and by[h]["policy"] == "isolate"
			and by[h]["exit_code"] == 0 and by[h]["error"] is None and not by[h]["unreachable"]
			and by[h]["reply"]["since"] == by[h]["since"] == os.environ["SINCES"].split()[i]
			for i, h in enumerate(["gw1", "gw2", "gw3"]))
		and by["gw4"]["ok"] is False and by["gw4"]["unreachable"] is True and by["gw4"]["exit_code"] == 255
		and by["gw4"]["state"] is None and by["gw4"]["reply"] is None and by["gw4"]["error"]' \
	-H gw1,gw2,gw3,gw4 status
check_exit 3 "no host reachable at all: exit 3" fleet -H gw4 status
check_exit 2 "--socket with -H: usage error" fleet -H gw1 --socket /nonexistent status
check_exit 2 "a host that would reach ssh as an option: usage error" fleet -H 'gw1,-oProxyCommand=x' status

# --hosts-file: comments, blank lines, USER@HOST:PORT, and the same host twice (asked once).
printf '# the lab gateways\ngw1\nroot@gw2          # by user\n\nroot@10.77.3.2:22 # address, port\ngw1\n' \
	>"$KS_TMP/hosts"
check "status --hosts-file: three hosts, all ok and isolated" \
	fleet_json 'len(r) == 3 and [e["host"] for e in r] == ["gw1", "root@gw2", "root@10.77.3.2:22"]
		and all(e["ok"] and e["state"] == "isolated" for e in r)' --hosts-file "$KS_TMP/hosts" status
printf 'gw1\nbad host\n' >"$KS_TMP/hosts.bad"
res=$(fleet --hosts-file "$KS_TMP/hosts.bad" status 2>&1)
check "--hosts-file with a bad line: usage error naming FILE:LINE" \
	contains "$res" "$KS_TMP/hosts.bad:2: invalid host 'bad host'"

# A host that does not answer is given up after --host-timeout (an ssh that hangs).
printf '#!/bin/sh\nexec sleep 30\n' >"$KS_TMP/hang-ssh"
chmod +x "$KS_TMP/hang-ssh"
start=$(date +%s%N)
res=$(n_adm env KILLSWITCH_SSH="$KS_TMP/hang-ssh" "$KILLSWITCHCTL" -H gw1,gw2 --host-timeout 1 status)
rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
printf '%s\n' "$res" | sed 's/^/#   /'
check "hanging hosts are given up after --host-timeout 1, in parallel (${ms} ms), exit 1" \
	eval '[ $rc -eq 1 ] && [ $ms -lt 4000 ] && [ "$(grep -c "no reply within 1s" <<<"$res")" = 2 ]'
# A duration with a unit, as every other duration option takes (before: "needs seconds", exit 2).
res=$(n_adm env KILLSWITCH_SSH="$KS_TMP/hang-ssh" "$KILLSWITCHCTL" -H gw1 --host-timeout 1s status)
rc=$?
check "--host-timeout 1s: given up after 1 s, exit 1" \
	eval '[ $rc -eq 1 ] && [ "$(grep -c "no reply within 1s" <<<"$res")" = 1 ]'
check_exit 2 "--host-timeout 0s: usage error" fleet -H gw1 --host-timeout 0s status
check_exit 2 "--host-timeout 2h (over 1h): usage error" fleet -H gw1 --host-timeout 2h status

# ---------------------------------------------------------------------------------------------
# Audit on each gateway: the ssh user, the admin's address, and the originating user@host.

check "history -H --json: each agent recorded the isolation by root from the admin's address" \
	fleet_json 'all(e["ok"] and any(x["action"] == "isolate" and x["reason"] == "fleet-test" and x["user"] == "root"
			and (x.get("ssh_client") or "").startswith("10.77.%d.1" % (i + 1)) for x in e["reply"])
		for i, e in enumerate(r))' -H gw1,gw2,gw3 history -n 5
check "history: each agent recorded the origin $ORIGIN" \
	fleet_json 'all(any(x["action"] == "isolate" and x.get("origin") == os.environ["ORIGIN"] for x in e["reply"])
		for e in r)' -H gw1,gw2,gw3 history -n 5

# The request that reaches an agent through ssh carries origin and the ssh connection: a stand-in
# agent on a socket of its own records it.
cat >"$KS_TMP/fake-agent.py" <<'EOF'
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
s.listen(1)
c, _ = s.accept()
buf = b""
while not buf.endswith(b"\0"):
    buf += c.recv(65536)
open(sys.argv[2], "w").write(buf[:-1].decode())
c.sendall(json.dumps({"parameters": {"state": "isolated", "policy": "isolate",
                                     "since": "2026-11-27T05:30:12Z"}}).encode() + b"\0")
EOF
python3 "$KS_TMP/fake-agent.py" "$KS_TMP/fake.sock" "$KS_TMP/fake.request" >>"$KS_TMP/servers.log" 2>&1 &
FLEET_PIDS+=($!)
wait_until 5 test -S "$KS_TMP/fake.sock"
res=$(n_adm env KILLSWITCH_SSH="ssh -F $KS_TMP/ssh_config" \
	KILLSWITCHCTL_REMOTE="$KILLSWITCHCTL --socket $KS_TMP/fake.sock" "$KILLSWITCHCTL" -H gw2 isolate --reason stand-in)
printf '%s\n' "$res" | sed 's/^/#   /'
check "through ssh, the request carries origin $ORIGIN and the ssh connection from 10.77.2.1" \
	python3 -c '
import json, os, sys
p = json.load(open(sys.argv[1]))["parameters"]
print(p)
sys.exit(0 if p.get("origin") == os.environ["ORIGIN"] and p.get("ssh_connection", "").startswith("10.77.2.1 ")
	and p.get("reason") == "stand-in" else 1)' "$KS_TMP/fake.request"

# Four eyes ([Restore] Approvals=2, issue 18) on the remote side: a restore there exits 4,
# recorded and waiting for a second person. The fleet says so per host and as a whole (exit 4 only
# when every host that did not succeed is waiting; mixed with a real failure, 1). A stand-in
# remote killswitchctl answers as the real one does (test-approvals.sh checks the real one).
printf '#!/bin/sh\necho "killswitchctl: Restore isolate requested by root: waiting for a second person until 12:00" >&2\nexit 4\n' \
	>"$KS_TMP/waiting-ctl"
chmod +x "$KS_TMP/waiting-ctl"
waiting_fleet() {
	n_adm env KILLSWITCH_SSH="ssh -F $KS_TMP/ssh_config" KILLSWITCHCTL_REMOTE="$KS_TMP/waiting-ctl" \
		timeout 90 "$KILLSWITCHCTL" "$@"
}
res=$(waiting_fleet -H gw1,gw2 restore --reason four-eyes 2>&1)
rc=$?
printf '%s\n' "$res" | sed 's/^/#   /'
check "restore -H where every host waits for a second person: exit 4, each host 'waiting', summary says so" \
	eval '[ $rc -eq 4 ] && [ "$(grep -cE "^gw[12] +waiting .*waiting for a second person" <<<"$res")" = 2 ] &&
		grep -q "2 hosts: 0 ok, 2 waiting for a second person, 0 failed." <<<"$res"'
res=$(waiting_fleet --json=short -H gw1 restore --reason four-eyes)
check "restore -H --json: waiting true, ok false, exit_code 4" \
	python3 -c 'import json, sys; e = json.loads(sys.argv[1])[0]
sys.exit(0 if e["waiting"] is True and e["ok"] is False and e["exit_code"] == 4 and not e["unreachable"] else 1)' "$res"
res=$(waiting_fleet -H gw1,gw4 restore --reason four-eyes 2>&1)
rc=$?
check "restore -H: one host waiting, one unreachable: exit 1 (not 4: something failed)" \
	eval '[ $rc -eq 1 ] && grep -qE "^gw1 +waiting" <<<"$res" && grep -qE "^gw4 +failed" <<<"$res"'

# ---------------------------------------------------------------------------------------------
# Restore the fleet, one host at a time, with a reason no shell may interpret on the way.

REASON='fleet over: it'"'"'s "done" $(touch PWNED) `touch PWNED` ; & | \ * ~'
REASON=${REASON//PWNED/$KS_TMP/pwned}
export REASON
res=$(fleet -H gw1,gw2,gw3 --parallel 1 --ssh-option ConnectionAttempts=1 restore --reason "$REASON" 2>&1)
rc=$?
printf '%s\n' "$res" | sed 's/^/#   /'
check "restore -H --parallel 1: exit 0, three hosts ok and normal" \
	eval '[ $rc -eq 0 ] && [ "$(grep -cE "^gw[123] +ok +normal" <<<"$res")" = 3 ] && contains "$res" "3 hosts: 3 ok, 0 failed."'
for n in "${GWS[@]}"; do
	check "gw$n: normal again; the reason arrived verbatim" \
		gw_status_is "$n" 'd["state"] == "normal" and d["reason"] == os.environ["REASON"]'
done
check "no shell expanded the reason anywhere" test ! -e "$KS_TMP/pwned"
check_many <<EOF
+ gw1 reaches the internet again | web 1
+ gw2 reaches the internet again | web 2
+ gw3 reaches the internet again | web 3
EOF

note "done in ${SECONDS}s"
summary
