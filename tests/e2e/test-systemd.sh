#!/bin/bash
# SPDX-License-Identifier: MIT
#
# killswitch as a system daemon (issue 8): the units verify and are hardened (exposure <= 1.5),
# socket activation through systemd-socket-activate, the sd_notify protocol (READY=1, STATUS=,
# WATCHDOG=1, RELOADING=1, STOPPING=1) seen on a NOTIFY_SOCKET this test listens on, the agent
# working with CAP_NET_ADMIN alone and within the unit's system call filter, the metrics verb and
# the metrics unit's atomic write, bash completion, man pages that render without warnings,
# `meson install --destdir`, and the Debian package (built, contents, lintian).
#
# No systemd has to run as PID 1: the agent runs in a scratch network namespace, as in
# test-core.sh. Every check prints "PASS: ..." or "FAIL: ..."; the last line is a summary.
# Run as root: tests/e2e/test-systemd.sh   (KILLSWITCHD, KILLSWITCHCTL: see lib.sh)
# KS_SKIP_DEB=1 skips the package build; it is also skipped for sanitizer builds, which
# add nothing to it.

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ks_init

[ -x "$KILLSWITCHD" ] || die "no agent at $KILLSWITCHD (build: meson setup build && meson compile -C build)"
[ -x "$KILLSWITCHCTL" ] || die "no client at $KILLSWITCHCTL"
BUILD=$(cd "$(dirname "$KILLSWITCHD")/.." && pwd)
[ -f "$BUILD/build.ninja" ] || die "$BUILD is not a meson build directory"
for t in systemd-analyze systemd-socket-activate meson man groff; do
	command -v "$t" >/dev/null || die "missing tool: $t"
done

NS=${KS_PREFIX}sd
NOTIFY_PID=
SD_PID=
SANITIZED=0
ks_agent_asan && SANITIZED=1

systemd_cleanup() {
	[ -n "$SD_PID" ] && kill -KILL "$SD_PID" 2>/dev/null
	[ -n "$NOTIFY_PID" ] && kill "$NOTIFY_PID" 2>/dev/null
	wait 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	cleanup
}
trap systemd_cleanup EXIT

# ---------------------------------------------------------------------------------------------
# meson install --destdir: what goes where, under the build's own prefix.

DEST=$KS_TMP/dest
eval "$(meson introspect "$BUILD" --buildoptions | python3 -c '
import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
p = o["prefix"]
j = lambda d: d if d.startswith("/") else p.rstrip("/") + "/" + d
for k in ("bindir", "sbindir", "mandir", "datadir", "sysconfdir"):
    print("I_%s=%s" % (k.upper(), j(o[k])))
print("I_UNITDIR=%s" % (o.get("systemdsystemunitdir") or p.rstrip("/") + "/lib/systemd/system"))
print("I_SYSUSERSDIR=%s" % (o.get("sysusersdir") or p.rstrip("/") + "/lib/sysusers.d"))
print("I_COMPLDIR=%s" % (o.get("bashcompletiondir") or j(o["datadir"]) + "/bash-completion/completions"))
')" || die "meson introspect $BUILD"

if meson install -C "$BUILD" --no-rebuild --destdir "$DEST" --quiet >"$KS_TMP/install.log" 2>&1; then
	pass "meson install --destdir"
else
	fail "meson install --destdir"
	show_output "$KS_TMP/install.log"
fi
for f in "$I_BINDIR/killswitchctl" "$I_SBINDIR/killswitchd" \
	"$I_UNITDIR/killswitchd.service" "$I_UNITDIR/killswitchd.socket" \
	"$I_UNITDIR/killswitch-metrics.service" "$I_UNITDIR/killswitch-metrics.timer" \
	"$I_SYSUSERSDIR/killswitch.conf" "$I_SYSCONFDIR/killswitch/policies/isolate.policy" \
	"$I_DATADIR/doc/killswitch/examples/isolate.policy" "$I_DATADIR/doc/killswitch/admin-guide.md" \
	"$I_COMPLDIR/killswitchctl" "$I_DATADIR/varlink/io.killswitch.varlink" \
	"$I_MANDIR/man8/killswitchd.8" "$I_MANDIR/man1/killswitchctl.1" "$I_MANDIR/man5/killswitch.policy.5"; do
	if [ -s "$DEST$f" ]; then pass "installed $f"; else fail "installed $f"; fi
done
check "installed units name the installed binaries" \
	grep -q "^ExecStart=$I_SBINDIR/killswitchd " "$DEST$I_UNITDIR/killswitchd.service"
check "sysusers.d creates the group killswitch" grep -q '^g killswitch ' "$DEST$I_SYSUSERSDIR/killswitch.conf"

# ---------------------------------------------------------------------------------------------
# Man pages render without warnings.

for page in "$DEST$I_MANDIR"/man[158]/*.[158]; do
	[ -f "$page" ] || continue
	name=$(basename "$page")
	MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -l "$page" >/dev/null 2>"$KS_TMP/man.err"
	if [ ! -s "$KS_TMP/man.err" ] && groff -man -ww -z "$page" 2>>"$KS_TMP/man.err" && [ ! -s "$KS_TMP/man.err" ]; then
		pass "man page $name renders without warnings"
	else
		fail "man page $name renders without warnings"
		show_output "$KS_TMP/man.err"
	fi
done

# ---------------------------------------------------------------------------------------------
# The units: verify clean, exposure at most 1.5. The installed binaries do not exist on this
# machine, so the units verified here run the built ones.

UNITS=$KS_TMP/units
mkdir -p "$UNITS"
for u in killswitchd.service killswitchd.socket killswitch-metrics.service killswitch-metrics.timer; do
	sed -e "s#$I_SBINDIR/killswitchd#$KILLSWITCHD#g" -e "s#$I_BINDIR/killswitchctl#$KILLSWITCHCTL#g" \
		"$DEST$I_UNITDIR/$u" >"$UNITS/$u"
done
# Documentation=man:... is checked against the man pages just installed.
if MANPATH=$DEST$I_MANDIR systemd-analyze verify "$UNITS"/*.service "$UNITS"/*.socket "$UNITS"/*.timer \
	>"$KS_TMP/verify.out" 2>&1 && [ ! -s "$KS_TMP/verify.out" ]; then
	pass "systemd-analyze verify: units clean"
else
	fail "systemd-analyze verify: units clean"
	show_output "$KS_TMP/verify.out"
fi

exposure() { # UNIT -> the overall exposure figure
	systemd-analyze security --offline=true "$1" 2>&1 |
		sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p'
}
for u in killswitchd.service killswitch-metrics.service; do
	e=$(exposure "$UNITS/$u")
	note "$u: exposure $e"
	if [ -n "$e" ] && awk -v e="$e" 'BEGIN { exit !(e <= 1.5) }'; then
		pass "$u: systemd-analyze security exposure $e <= 1.5"
	else
		fail "$u: systemd-analyze security exposure '${e:-?}' <= 1.5"
		systemd-analyze security --offline=true "$UNITS/$u" 2>&1 | grep '✗' | sed 's/^/#   | /'
	fi
done
grep -q '^CapabilityBoundingSet=CAP_NET_ADMIN$' "$UNITS/killswitchd.service" &&
	grep -q '^Type=notify$' "$UNITS/killswitchd.service" &&
	grep -q '^WatchdogSec=' "$UNITS/killswitchd.service" &&
	grep -q '^Before=.*network-pre.target' "$UNITS/killswitchd.service" &&
	grep -q '^ListenStream=/run/killswitch/control.sock$' "$UNITS/killswitchd.socket" &&
	pass "killswitchd.service: notify, watchdog, CAP_NET_ADMIN only, before network-pre.target; socket at /run/killswitch/control.sock" ||
	fail "killswitchd.service: notify, watchdog, CAP_NET_ADMIN only, before network-pre.target; socket at /run/killswitch/control.sock"

# ---------------------------------------------------------------------------------------------
# The agent under systemd's protocols, in a scratch namespace: socket activation, sd_notify,
# the watchdog, reload; with CAP_NET_ADMIN as its only capability and no new privileges, as
# the unit runs it.

ip netns add "$NS" || die "ip netns add $NS"
ip -n "$NS" link set lo up
cat >"$KS_CONF/policies/isolate.policy" <<'EOF'
[Policy]
Description=systemd test: cut wan0, keep the mail relay

[Uplinks]
Interface=wan0

[Gateway mail]
Address=203.0.113.25
Ports=tcp:25
EOF
sed 's/^Description=.*/Description=second policy/' "$KS_CONF/policies/isolate.policy" \
	>"$KS_CONF/policies/other.policy"

NOTIFY_SOCK=$KS_TMP/notify.sock
NOTIFY_LOG=$KS_TMP/notify.log
: >"$NOTIFY_LOG"
python3 -u - "$NOTIFY_SOCK" "$NOTIFY_LOG" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as log:
    while True:
        msg = s.recv(4096).decode(errors="replace")
        for line in msg.split("\n"):
            if line:
                log.write(line + "\n")
        log.flush()
PY
NOTIFY_PID=$!
wait_until 5 test -S "$NOTIFY_SOCK" || die "notify listener did not start"

notified() { grep -q "^$1" "$NOTIFY_LOG"; }
notify_count() { grep -c "^$1" "$NOTIFY_LOG"; }
notify_count_ge() { [ "$(notify_count "$1")" -ge "$2" ]; } # MESSAGE N

# Syscalls of the agent are recorded with strace when that is possible (not under ASan,
# whose leak checker cannot run under ptrace).
STRACE=()
if [ "$SANITIZED" = 0 ]; then
	command -v strace >/dev/null || {
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null 2>&1
	}
	command -v strace >/dev/null && STRACE=(strace -f -qq -o "$KS_TMP/strace.out")
fi

# systemd-socket-activate listens on KS_SOCK and starts the agent at the first connection.
# The agent's own --socket is another path: it answers on KS_SOCK only through the passed fd.
# 0.4 s: the event loop pings every 0.2 s or so, several pings within a second.
ip netns exec "$NS" "${STRACE[@]}" setpriv --bounding-set=-all,+net_admin --inh-caps=-all --no-new-privs -- \
	systemd-socket-activate -l "$KS_SOCK" \
	-E NOTIFY_SOCKET="$NOTIFY_SOCK" -E WATCHDOG_USEC=400000 \
	"$KILLSWITCHD" --config-dir "$KS_CONF" --state-dir "$KS_STATE" --socket "$KS_TMP/not-activated.sock" \
	2>>"$KS_LOG" &
SD_PID=$!

wait_until 5 test -S "$KS_SOCK" || die "systemd-socket-activate did not listen on $KS_SOCK"
if wait_until 10 ctl status; then
	pass "socket activation: killswitchctl --socket PATH status answers"
else
	fail "socket activation: killswitchctl --socket PATH status answers"
	agent_log_tail
fi
check "socket activation: the agent did not create a socket of its own" test ! -e "$KS_TMP/not-activated.sock"
agent_pid=$(ip netns pids "$NS" 2>/dev/null | while read -r p; do
	[ "$(cat "/proc/$p/comm" 2>/dev/null)" = killswitchd ] && echo "$p"; done | tail -1)
[ -n "$agent_pid" ] || die "cannot find the agent's pid in $NS"

check "sd_notify: READY=1" wait_until 5 notified READY=1
check "sd_notify: STATUS= says the state" wait_until 5 notified 'STATUS=Normal'
if wait_until 3 notify_count_ge WATCHDOG=1 3; then
	pass "sd_notify: WATCHDOG=1 pings with WATCHDOG_USEC set ($(notify_count WATCHDOG=1) in ~1 s)"
else
	fail "sd_notify: WATCHDOG=1 pings with WATCHDOG_USEC set ($(notify_count WATCHDOG=1) seen)"
fi
capeff=$(awk '/^CapEff:/ { print $2 }' "/proc/$agent_pid/status")
nnp=$(awk '/^NoNewPrivs:/ { print $2 }' "/proc/$agent_pid/status")
if [ "$capeff" = 0000000000001000 ] && [ "$nnp" = 1 ]; then
	pass "the agent runs with CAP_NET_ADMIN only and no new privileges (CapEff $capeff)"
else
	fail "the agent runs with CAP_NET_ADMIN only and no new privileges (CapEff $capeff, NoNewPrivs $nnp)"
fi

check "CAP_NET_ADMIN suffices: isolate" ctl isolate --reason "systemd test"
check "CAP_NET_ADMIN suffices: the table inet killswitch is in force" \
	ip netns exec "$NS" nft list table inet killswitch
check "sd_notify: STATUS= follows the state" wait_until 5 notified 'STATUS=Isolated (policy isolate)'

# metrics: the exposition format, every sample under its family's HELP and TYPE.
check_metrics() { # FILE EXPECTED-ISOLATED
	python3 - "$1" "$2" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
help_, type_, samples = set(), {}, {}
for line in text.splitlines():
    if line.startswith("# HELP "):
        help_.add(line.split()[2])
    elif line.startswith("# TYPE "):
        _, _, name, t = line.split(None, 3)
        assert t in ("gauge", "counter"), line
        type_[name] = t
    else:
        m = re.fullmatch(r'([a-z_]+)(\{([a-z_]+="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+)', line)
        assert m, "bad sample line: %r" % line
        assert m.group(1) in help_ and m.group(1) in type_, "no HELP/TYPE before " + line
        if type_[m.group(1)] == "counter":
            assert m.group(1).endswith("_total"), line
        samples[m.group(1)] = float(m.group(4))
assert samples["killswitch_up"] == 1, samples
assert samples["killswitch_isolated"] == int(sys.argv[2]), samples
for name in ("killswitch_dropped_packets_total", "killswitch_dropped_bytes_total"):
    assert name in samples, name
if sys.argv[2] == "1":
    for name in ("killswitch_state_since_seconds", "killswitch_gateway_packets_total",
                 "killswitch_gateway_bytes_total", "killswitch_last_apply_seconds"):
        assert name in samples, name
    assert 'killswitch_gateway_packets_total{policy="isolate",gateway="mail"}' in text
print("ok")
PY
}
if ctl metrics >"$KS_TMP/metrics.prom" 2>&1 && check_metrics "$KS_TMP/metrics.prom" 1 >"$KS_TMP/check.out" 2>&1; then
	pass "metrics: Prometheus text exposition while isolated"
else
	fail "metrics: Prometheus text exposition while isolated"
	show_output "$KS_TMP/check.out"
	show_output "$KS_TMP/metrics.prom"
fi
check "metrics --json: an array of samples" sh -c \
	"timeout 5 '$KILLSWITCHCTL' --socket '$KS_SOCK' metrics --json=short | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert isinstance(d, list) and all(set(s) == {\"name\", \"labels\", \"value\"} for s in d)'"

# The metrics unit's own command, pointed at a scratch textfile directory.
TEXTFILE=$KS_TMP/textfile
mkdir -p "$TEXTFILE"
metrics_cmd=$(sed -n "s/^ExecStart=//p" "$UNITS/killswitch-metrics.service" |
	sed -e 's/\$\$/$/g' -e "s#/var/lib/prometheus/node-exporter#$TEXTFILE#g" \
		-e "s#$KILLSWITCHCTL metrics#$KILLSWITCHCTL --socket $KS_SOCK metrics#")
if [ -n "$metrics_cmd" ] && sh -c "$metrics_cmd" && check_metrics "$TEXTFILE/killswitch.prom" 1 >/dev/null 2>&1 &&
	[ "$(ls "$TEXTFILE")" = killswitch.prom ]; then
	pass "killswitch-metrics.service writes killswitch.prom (and leaves no temporary file)"
else
	fail "killswitch-metrics.service writes killswitch.prom (and leaves no temporary file)"
	ls -la "$TEXTFILE" | sed 's/^/#   | /'
fi
sh -c "$(printf '%s' "$metrics_cmd" | sed "s#--socket $KS_SOCK#--socket $KS_TMP/nobody.sock#")" 2>/dev/null
rc=$?
if [ "$rc" = 3 ] && grep -qx 'killswitch_up 0' "$TEXTFILE/killswitch.prom"; then
	pass "killswitch-metrics.service: agent unreachable -> killswitch_up 0, exit 3 (SuccessExitStatus)"
else
	fail "killswitch-metrics.service: agent unreachable -> killswitch_up 0, exit 3 (exit $rc)"
fi

check "restore" ctl restore --reason "systemd test done"
check "metrics after restore: killswitch_isolated 0" sh -c \
	"timeout 5 '$KILLSWITCHCTL' --socket '$KS_SOCK' metrics | grep -qx 'killswitch_isolated 0'"

# --json on every query verb; --help on every verb.
for verb in status policies show history metrics; do
	check "$verb --json prints JSON" sh -c \
		"timeout 5 '$KILLSWITCHCTL' --socket '$KS_SOCK' $verb --json | python3 -m json.tool >/dev/null"
done
for verb in status isolate restore policies show reload history metrics; do
	check "$verb --help" sh -c "'$KILLSWITCHCTL' $verb --help | grep -q '^killswitchctl .*$verb'"
done
check "no colours when stdout is not a terminal" sh -c \
	"! timeout 5 '$KILLSWITCHCTL' --socket '$KS_SOCK' status | grep -q \$(printf '\\033')"
check_exit 2 "unknown verb: exit 2" "$KILLSWITCHCTL" --socket "$KS_SOCK" frobnicate
check_exit 3 "unreachable agent: exit 3" "$KILLSWITCHCTL" --socket "$KS_TMP/nobody.sock" status

# Reload through SIGHUP, as ExecReload= does.
before=$(notify_count READY=1)
kill -HUP "$agent_pid"
check "SIGHUP: RELOADING=1" wait_until 5 notified RELOADING=1
if wait_until 5 notify_count_ge READY=1 $((before + 1)) &&
	awk '/^RELOADING=1/ { r = 1 } r && /^READY=1/ { ok = 1 } END { exit !ok }' "$NOTIFY_LOG"; then
	pass "SIGHUP: READY=1 after RELOADING=1"
else
	fail "SIGHUP: READY=1 after RELOADING=1"
fi

# Bash completion: verbs, and policy names asked from the agent.
if [ -f /usr/share/bash-completion/bash_completion ]; then
	complete_words() { # WORDS... -> the candidates for the last word
		bash -c '
			. /usr/share/bash-completion/bash_completion
			. "$1"; shift
			COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
			COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
			_killswitchctl killswitchctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
			printf "%s\n" "${COMPREPLY[@]}"' complete "$DEST$I_COMPLDIR/killswitchctl" "$@"
	}
	export PATH="$(dirname "$KILLSWITCHCTL"):$PATH"
	got=$(complete_words killswitchctl is)
	if [ "$got" = isolate ]; then pass "bash completion: verbs"; else fail "bash completion: verbs (got '$got')"; fi
	got=$(complete_words killswitchctl --socket "$KS_SOCK" isolate "" | sort | tr '\n' ' ')
	if [ "$got" = "isolate other " ]; then
		pass "bash completion: policy names from the agent"
	else
		fail "bash completion: policy names from the agent (got '$got')"
	fi
	got=$(complete_words killswitchctl restore --re)
	if [ "$got" = "--reason" ]; then pass "bash completion: --reason"; else fail "bash completion: --reason (got '$got')"; fi
else
	note "bash-completion not installed: completion not exercised"
fi

kill -TERM "$agent_pid"
check "SIGTERM: STOPPING=1" wait_until 5 notified STOPPING=1
wait "$SD_PID" 2>/dev/null
SD_PID=

# Every system call the agent made is allowed by the unit's SystemCallFilter=.
if [ ${#STRACE[@]} -gt 0 ] && [ -s "$KS_TMP/strace.out" ]; then
	systemd-analyze syscall-filter >"$KS_TMP/filters.txt" 2>/dev/null
	if python3 - "$KS_TMP/strace.out" "$KS_TMP/filters.txt" "$KILLSWITCHD" >"$KS_TMP/check.out" 2>&1 <<'PY'; then
import re, sys
groups, cur = {}, None
for line in open(sys.argv[2]):
    line = line.rstrip()
    if line.startswith("@"):
        cur = groups.setdefault(line, set())
    elif line.strip() and not line.strip().startswith("#") and cur is not None:
        cur.add(line.strip())
def expand(name, seen=()):
    out = set()
    for s in groups.get(name, ()):
        out |= expand(s, seen + (name,)) if s.startswith("@") and s not in seen else {s}
    return out
allowed = expand("@system-service") | expand("@default")
denied = expand("@privileged") | expand("@resources")
agent, used = None, set()
for line in open(sys.argv[1]):
    m = re.match(r"(\d+)\s+(?:<\.\.\. )?([a-z0-9_]+)", line)
    if not m:
        continue
    pid, call = m.groups()
    # The agent's own exec: its file name, not an argument (setpriv's argv names the agent too, and
    # strace shows it whole when the path is shorter than its 32-character limit).
    exe = re.search(r'execve\("([^"]*)"', line)
    if call == "execve" and exe and exe.group(1) == sys.argv[3] and "= 0" in line:
        agent = pid
        continue
    if agent and pid == agent and call not in ("exit", "exit_group", "resumed"):
        used.add(call)
assert agent, "agent exec not seen in the trace"
bad = sorted((used - allowed) | (used & denied))
print("syscalls used: " + " ".join(sorted(used)))
assert not bad, "outside the filter: " + " ".join(bad)
PY
		pass "the agent's system calls are all within @system-service minus @privileged @resources"
		fold -s -w 110 "$KS_TMP/check.out" | sed 's/^/# /'
	else
		fail "the agent's system calls are all within @system-service minus @privileged @resources"
		show_output "$KS_TMP/check.out"
	fi
fi

# ---------------------------------------------------------------------------------------------
# The Debian package: builds, holds what it should, lintian has no errors.

if [ "$SANITIZED" = 1 ] || [ -n "${KS_SKIP_DEB:-}" ]; then
	note "Debian package not built in this pass"
else
	DEB_OUT=$KS_TMP/deb
	mkdir -p "$DEB_OUT"
	if deb=$(ks_deb 2>"$KS_TMP/deb.err"); then
		pass "dpkg-buildpackage -us -uc -b builds the package"
		dpkg-deb --contents "$deb" | awk '{ print $6 }' | sed 's#^\./#/#' >"$KS_TMP/deb.contents"
		for f in /usr/sbin/killswitchd /usr/bin/killswitchctl /lib/systemd/system/killswitchd.service \
			/lib/systemd/system/killswitchd.socket /lib/systemd/system/killswitch-metrics.service \
			/lib/systemd/system/killswitch-metrics.timer /usr/lib/sysusers.d/killswitch.conf \
			/etc/killswitch/policies/isolate.policy /usr/share/bash-completion/completions/killswitchctl \
			/usr/share/man/man8/killswitchd.8.gz /usr/share/man/man1/killswitchctl.1.gz \
			/usr/share/man/man5/killswitch.policy.5.gz /usr/share/doc/killswitch/copyright \
			/usr/share/doc/killswitch/examples/isolate.policy /usr/share/varlink/io.killswitch.varlink; do
			if grep -qx "$f" "$KS_TMP/deb.contents"; then pass "package holds $f"; else fail "package holds $f"; fi
		done
		mkdir -p "$DEB_OUT/ctrl"
		dpkg-deb -e "$deb" "$DEB_OUT/ctrl"
		check "package: /etc/killswitch/policies/isolate.policy is a conffile" \
			grep -qx /etc/killswitch/policies/isolate.policy "$DEB_OUT/ctrl/conffiles"
		check "package: postinst creates the group (systemd-sysusers)" \
			grep -q 'systemd-sysusers .*killswitch.conf' "$DEB_OUT/ctrl/postinst"
		check "package: postinst enables killswitchd.service and killswitchd.socket" sh -c \
			"grep -q \"enable 'killswitchd.service'\" '$DEB_OUT/ctrl/postinst' &&
			 grep -q \"enable 'killswitchd.socket'\" '$DEB_OUT/ctrl/postinst'"
		check "package: installs into a scratch root (dpkg --root)" sh -c \
			"mkdir -p '$DEB_OUT/root/var/lib/dpkg/info' '$DEB_OUT/root/var/lib/dpkg/updates' &&
			 : >'$DEB_OUT/root/var/lib/dpkg/status' &&
			 dpkg --root='$DEB_OUT/root' --force-depends --force-script-chrootless --force-not-root \
			      --no-triggers --unpack '$deb' >/dev/null &&
			 test -x '$DEB_OUT/root/usr/sbin/killswitchd'"
		if ! command -v lintian >/dev/null; then
			DEBIAN_FRONTEND=noninteractive timeout 240 apt-get install -y -qq --no-install-recommends lintian \
				>/dev/null 2>&1
		fi
		if command -v lintian >/dev/null; then
			timeout 120 lintian --pedantic "$deb" >"$KS_TMP/lintian.out" 2>&1
			sed 's/^/#   lintian| /' "$KS_TMP/lintian.out"
			if grep -q '^E: ' "$KS_TMP/lintian.out"; then
				fail "lintian: no errors"
			else
				pass "lintian: no errors ($(grep -c '^[WIP]: ' "$KS_TMP/lintian.out") warnings/notes)"
			fi
		else
			note "lintian not installable: not run"
		fi
	else
		fail "dpkg-buildpackage -us -uc -b builds the package"
		show_output "$KS_TMP/deb.err"
	fi
fi

summary
