#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Local users cannot starve, blind, fool or hijack the agent (issue 16). Real unprivileged
# callers (uid nobody, and uid 4711 in group killswitch) against the agent in the lab of lib.sh:
#  A. starve: 1,000 refused Isolate calls with 4 KiB names of control characters, 24
#     connections asking History n=650 and never reading, 128 idle connections; meanwhile a
#     member of group killswitch keeps a heartbeat alive and times status/isolate/heartbeat.
#     Then Show and History floods from many uids (one user's subordinate uids): the agent's CPU,
#     root's Show and the agent's memory stay within what untrusted callers get together.
#  B. blind: the refusals are aggregated in the history and the journal; root's isolation stays
#     in the history; an unverified ssh_connection is labelled as such.
#  C. hijack: the socket's directory is checked; the socket is never chmod-ed by path; a foreign
#     listener moved over the socket does not get the path.
#  D. trip: a path trigger in a directory others may write is refused with FILE:LINE (--check too).
#  E. fool: C1 controls and bidi overrides never reach the terminal raw.
#  F. smaller: absurd durations refused; the metrics file written atomically; capabilities.
# Run as root: tests/e2e/test-abuse.sh   (KILLSWITCHD, KILLSWITCHCTL: see lib.sh)

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ks_init
[ -x "$KILLSWITCHD" ] || die "no agent at $KILLSWITCHD"
[ -x "$KILLSWITCHCTL" ] || die "no client at $KILLSWITCHCTL"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cp "$HERE/abuse.py" "$KS_TMP/abuse.py" || die "copying abuse.py"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
ABUSE="$PY $KS_TMP/abuse.py"
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
getent group killswitch >/dev/null || groupadd -r killswitch || die "groupadd -r killswitch"
KS_GID=$(getent group killswitch | cut -d: -f3)
MEMBER=(setpriv --reuid=4711 --regid=4711 --groups="$KS_GID")
# Generous for a busy 2-CPU machine; the issue's promise is 1 s, the figures are printed.
LIMIT=3

lab_create
write_lab_policy isolate
write_lab_policy mailonly --no-phone
CONF=$KS_CONF/killswitch.conf
printf '[Heartbeat]\nTimeout=6s\nPolicy=isolate\n' >"$CONF"
agent_start || die "killswitchd did not start"
AGENT_PID_GW=$AGENT_PID

member_ctl() { timeout "$KS_CTL_TIMEOUT" "${MEMBER[@]}" "$KILLSWITCHCTL" --socket "$KS_SOCK" "$@"; }
# timed NAME JSON — as the group member, one request; check the time and that it was answered.
timed() {
	local out secs how
	out=$("${MEMBER[@]}" $ABUSE "$KS_SOCK" timed "$2")
	read -r secs how _ <<<"$out"
	note "$1 as a member of group killswitch under abuse: ${secs}s ($how)"
	if [ "$how" = ok ] && python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < $LIMIT else 1)" "$secs"; then
		pass "A. $1 by a group member under abuse answered in ${secs}s (< ${LIMIT}s)"
	else
		fail "A. $1 by a group member under abuse: $out"
	fi
}

# ---------------------------------------------------------------------------------------------
note "A. starve"
RSS0=$(rss_kib)
ctl isolate isolate --reason "INCIDENT-4711" >/dev/null || fail "A. root's isolation"
LOG_REFUSED0=$(grep -c 'Permission denied' "$KS_LOG")
# The heartbeat's keeper: a member of group killswitch, once a second, throughout.
BEAT_STOP=$KS_TMP/beat.stop
( while [ ! -e "$BEAT_STOP" ]; do member_ctl heartbeat >/dev/null 2>&1; sleep 1; done ) &
BEAT_PID=$!
sleep 1
start=$(date +%s.%N)
out=$("${NOBODY[@]}" $ABUSE "$KS_SOCK" refuse 1000 4096)
note "$out in $(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 2))" "$start" "$(date +%s.%N)")s"
HOLD=$KS_TMP/hold
touch "$HOLD"
"${NOBODY[@]}" $ABUSE "$KS_SOCK" histhold 24 "$HOLD" >"$KS_TMP/hist.out" 2>&1 &
HIST_PID=$!
wait_until 20 grep -q holding "$KS_TMP/hist.out"
note "$(cat "$KS_TMP/hist.out")"
"${NOBODY[@]}" $ABUSE "$KS_SOCK" idle 128 "$HOLD" >"$KS_TMP/idle.out" 2>&1 &
IDLE_PID=$!
wait_until 20 grep -q accepted "$KS_TMP/idle.out"
note "128 idle connections of nobody: $(cat "$KS_TMP/idle.out")"
timed status '{"method":"io.killswitch.Status","parameters":{}}'
timed isolate '{"method":"io.killswitch.Isolate","parameters":{"policy":"mailonly","reason":"INCIDENT-4712"}}'
timed heartbeat '{"method":"io.killswitch.Heartbeat","parameters":{}}'
timed restore '{"method":"io.killswitch.Restore","parameters":{"reason":"INCIDENT-4712 over"}}'
check_exit 0 "A. killswitchctl status of a group member under abuse" member_ctl status
sleep 8 # longer than the heartbeat's timeout: the keeper must have got through
RSS1=$(rss_kib)
note "agent RSS: $RSS0 KiB before the abuse, $RSS1 KiB under it"
if ks_agent_asan; then
	note "RSS not compared under AddressSanitizer"
else
	check "A. the agent's RSS under abuse grew by less than 32 MiB ($RSS0 -> $RSS1 KiB)" test "$RSS1" -lt $((RSS0 + 32768))
fi
rm -f "$HOLD"
wait "$HIST_PID" "$IDLE_PID"
touch "$BEAT_STOP"
wait "$BEAT_PID"
check "A. the heartbeat kept by a group member did not fire under abuse" \
	status_is 'd["state"] == "normal" and d["trigger"] != "heartbeat"'
: >"$CONF"
ctl reload >/dev/null 2>&1

# CPU: nobody asks, on 16 connections at once, for the ruleset of a 100,000-address policy (each
# answer costs the agent a compile); a member's status must not queue behind all of them.
python3 - "$KS_CONF/policies/big.policy" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("[Policy]\nDescription=100000 gateway addresses\n\n[Uplinks]\nInterface=wan0 wan1\n\n")
    f.write("[Gateway many]\nPorts=tcp:443\n")
    for line in range(1000):
        addrs = []
        for i in range(100):
            n = (line * 100 + i) * 2
            addrs.append("100.%d.%d.%d" % (64 + (n >> 16), (n >> 8) & 255, n & 255))
        f.write("Address=%s\n" % " ".join(addrs))
PY
reload_waited >/dev/null
start=$(date +%s%N)
ctl show big >/dev/null
note "one Show of the 100,000-address policy by root: $(( ($(date +%s%N) - start) / 1000000 )) ms"
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$AGENT_PID/stat"; }
CPU0=$(cpu_ticks)
"${NOBODY[@]}" $ABUSE "$KS_SOCK" showflood 16 15 big >"$KS_TMP/show.out" 2>&1 &
SHOW_PID=$!
sleep 4
timed "status (16 connections of nobody asking Show of a 100,000-address policy)" \
	'{"method":"io.killswitch.Status","parameters":{}}'
sleep 1
timed "restore (the same)" '{"method":"io.killswitch.Restore","parameters":{}}'
wait "$SHOW_PID"
CPU1=$(cpu_ticks)
TICKS=$(getconf CLK_TCK)
note "$(cat "$KS_TMP/show.out"); the agent used $(( (CPU1 - CPU0) * 1000 / TICKS )) ms of CPU meanwhile"
# nobody's budget: 200 ms, then 1/10 of a CPU (1.5 s in 15 s); sending the replies comes on top.
if ks_agent_asan; then
	note "A. CPU not compared under AddressSanitizer (its instrumentation costs a few times more per request)"
else
	check "A. nobody's 15 s of Show requests cost the agent less than 6 s of CPU ($(( (CPU1 - CPU0) * 1000 / TICKS )) ms)" \
		test $(( (CPU1 - CPU0) * 1000 / TICKS )) -lt 6000
fi

# Many uids: a user has the 65,536 subordinate uids of /etc/subuid (in a user namespace of his own,
# setresuid to any of them), so the budgets of untrusted callers must hold for all of them together,
# not per uid. Here the test's own uids 60001.. (no passwd entry), each its own process.
UIDS=("$PY" "$KS_TMP/abuse.py" "$KS_SOCK" uids)
CPU0=$(cpu_ticks)
out=$("${UIDS[@]}" 60001 16 0 histflood 1 15)
CPU1=$(cpu_ticks)
ms=$(( (CPU1 - CPU0) * 1000 / TICKS ))
note "$out; the agent used $ms ms of CPU meanwhile"
# Together 1/5 of a CPU (3 s in 15 s) and bursts; sending the replies comes on top. Per uid only, it
# was 1/10 each: the whole loop (14.5 s).
if ks_agent_asan; then
	note "A. CPU not compared under AddressSanitizer"
else
	check "A. 16 uids' 15 s of History requests cost the agent less than 6 s of CPU ($ms ms)" test "$ms" -lt 6000
fi
# Root's Show waits for the one compile running at most, not for a queue of other users' Shows (one
# per uid: 100 uids queued 30 s of them). Judged by order, not time (a compile takes 0.4 s on a
# quiet machine and seconds beside busy CPUs): how many of the uids' Shows were answered while
# root's waited. The old agent's one queue for everyone answered dozens first.
DONE_LOG=$KS_TMP/uidshow.done
: >"$DONE_LOG" && chmod 666 "$DONE_LOG"
ABUSE_DONE_LOG=$DONE_LOG "${UIDS[@]}" 60101 100 0 showflood 1 25 big >"$KS_TMP/uidshow.out" 2>&1 &
SHOW_PID=$!
sleep 5
start=$(date +%s.%N)
KS_CTL_TIMEOUT=60 ctl show big >/dev/null
rc=$?
end=$(date +%s.%N)
wait "$SHOW_PID"
note "$(cat "$KS_TMP/uidshow.out")"
before=$(awk -v s="$start" -v e="$end" '$1 > s && $1 < e' "$DONE_LOG" | wc -l)
ms=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%d", (e - s) * 1000 }')
# (Beside busy CPUs an ASan build's compile at its low priority alone can outlast the client's 30 s:
# the exit status is noted, not judged; what is judged is what came first.)
note "root's Show took $ms ms (exit $rc); the uids' Shows answered meanwhile: $before"
check "A. root's Show under Show requests of 100 uids came after at most 3 of theirs ($before): the compile running, not a queue" \
	test "$before" -le 3
# Memory: uids one after the other ask Show and never read (each reply 4 MB): the replies unread of
# all untrusted callers are 16 MiB at most, and 4 of their Shows run or wait.
RSS0=$(rss_kib)
touch "$HOLD"
"${UIDS[@]}" 60201 100 0.2 showhold 1 big "$HOLD" >"$KS_TMP/uidhold.out" 2>&1 &
HOLD_PID=$!
sleep 25
RSS1=$(rss_kib)
rm -f "$HOLD"
wait "$HOLD_PID"
note "$(cat "$KS_TMP/uidhold.out"); agent RSS $RSS0 KiB before, $RSS1 KiB after 25 s"
if ks_agent_asan; then
	note "RSS not compared under AddressSanitizer"
else
	check "A. the agent's RSS under unread Shows of 100 uids grew by less than 96 MiB ($RSS0 -> $RSS1 KiB)" \
		test "$RSS1" -lt $((RSS0 + 98304))
fi
rm -f "$KS_CONF/policies/big.policy"
ctl reload >/dev/null 2>&1

# ---------------------------------------------------------------------------------------------
note "B. blind"
# history_has PYEXPR — some entry e of `history -n 1000 --json` matches.
history_count() {
	ctl --json history -n 1000 | python3 -c '
import json, sys
d = json.load(sys.stdin)
entries = d["entries"] if isinstance(d, dict) else d
print(sum(1 for e in entries if eval(sys.argv[1])))' "$1"
}
n=$(history_count 'e["reason"] == "INCIDENT-4711" and e["action"] == "isolate"')
check "B. root's isolation INCIDENT-4711 is still in the history after 1,000 refusals ($n)" test "$n" = 1
n=$(history_count 'e["action"] == "refused"')
check "B. the refusals are aggregated in the history: $n entries (at most 6 + a summary)" test "$n" -le 7
n=$(( $(grep -c 'Permission denied' "$KS_LOG") - LOG_REFUSED0 ))
check "B. the refusals are aggregated in the log/journal: $n lines for 1,000 refused calls" test "$n" -le 10
n=$(history_count '(e.get("ssh_client") or "").startswith("203.0.113.66")')
check "B. an unprivileged caller's ssh_connection is not shown as where it came from ($n entries)" test "$n" = 0
n=$(history_count 'e.get("claimed_ssh_client") == "203.0.113.66"')
check "B. ... it is kept as a claim ($n entries)" test "$n" -ge 1

# ---------------------------------------------------------------------------------------------
note "C. hijack"
NS_SOCK=${KS_PREFIX}sock
ip netns add "$NS_SOCK" || die "ip netns add"
trap 'ip netns del "$NS_SOCK" 2>/dev/null; cleanup' EXIT
# start_other SOCKET [WRAPPER...] — another agent in its own namespace; waits up to 10 s for it to
# answer (status 0) or to exit (its status); its log in $KS_TMP/other.log.
start_other() {
	local sock=$1 pid i
	shift
	mkdir -p "$KS_TMP/other-state"
	ip netns exec "$NS_SOCK" "$@" "$KILLSWITCHD" --config-dir "$KS_CONF" --state-dir "$KS_TMP/other-state" \
		--socket "$sock" >"$KS_TMP/other.log" 2>&1 &
	pid=$!
	for ((i = 0; i < 200; i++)); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid"; return; }
		timeout 2 "$KILLSWITCHCTL" --socket "$sock" status >/dev/null 2>&1 && { OTHER_PID=$pid; return 0; }
		sleep 0.05
	done
	OTHER_PID=$pid
	return 0
}
stop_other() { # the agent, and a tracer it runs under
	[ -n "${OTHER_PID:-}" ] || return 0
	pkill -TERM -P "$OTHER_PID" 2>/dev/null
	kill "$OTHER_PID" 2>/dev/null
	wait "$OTHER_PID" 2>/dev/null
	OTHER_PID=
}

mkdir -p "$KS_TMP/theirs" && chown 65534:65534 "$KS_TMP/theirs"
start_other "$KS_TMP/theirs/control.sock"
rc=$?
stop_other
check "C. a socket directory owned by nobody is refused (exit $rc)" test "$rc" -ne 0
check "C. ... saying why" grep -q "owned by uid 65534" "$KS_TMP/other.log"
check_not "C. ... and no socket was created there" test -e "$KS_TMP/theirs/control.sock"
mkdir -p "$KS_TMP/shared" && chmod 1777 "$KS_TMP/shared"
start_other "$KS_TMP/shared/control.sock"
rc=$?
stop_other
check "C. a world-writable (sticky) socket directory is refused (exit $rc)" test "$rc" -ne 0
check "C. ... saying why" grep -q "writable by others" "$KS_TMP/other.log"
mkdir -p "$KS_TMP/real" && chmod 755 "$KS_TMP/real" && ln -s "$KS_TMP/real" "$KS_TMP/link"
start_other "$KS_TMP/link/control.sock"
rc=$?
stop_other
check "C. a socket directory reached through a symlink is refused (exit $rc)" test "$rc" -ne 0
check_not "C. ... and no socket was created behind it" test -e "$KS_TMP/real/control.sock"
# Created with its mode from the start, never chmod-ed by name (a race could make that any file).
if command -v strace >/dev/null; then
	# shellcheck disable=SC2016 # for the inner shell
	start_other "$KS_TMP/real/control.sock" sh -c 'umask 077; exec "$@"' sh \
		strace -f -qq -e trace=chmod,fchmodat -o "$KS_TMP/strace.out"
	mode=$(stat -c %a "$KS_TMP/real/control.sock" 2>/dev/null)
	stop_other
	check "C. the socket is mode 0666 under umask 077 ($mode)" test "$mode" = 666
	check_not "C. ... and no chmod by name was called" grep -E 'chmod' "$KS_TMP/strace.out"
else
	note "no strace: the chmod check is skipped"
fi
# A foreign listener moved over the socket: the agent takes the path back and keeps serving.
cat >"$KS_TMP/impostor.py" <<'EOF2'
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(16)
open(sys.argv[2], "w").write("ready")
s.settimeout(0.5)
end = time.monotonic() + 30
while time.monotonic() < end:
    try:
        c, _ = s.accept()
    except socket.timeout:
        continue
    c.recv(65536)
    c.sendall(b'{"parameters":{"state":"isolated","policy":"impostor"}}\0')
    c.close()
EOF2
rm -f "$KS_TMP/impostor.ready"
$PY "$KS_TMP/impostor.py" "$KS_TMP/run/impostor.sock" "$KS_TMP/impostor.ready" &
IMPOSTOR_PID=$!
wait_until 5 test -e "$KS_TMP/impostor.ready"
impostor_ino=$(stat -c %i "$KS_TMP/run/impostor.sock")
mv -f "$KS_TMP/run/impostor.sock" "$KS_SOCK"
ours_again() { [ "$(stat -c %i "$KS_SOCK")" != "$impostor_ino" ] && status_is 'd["state"] == "normal" and "gateways" in d'; }
check "C. a foreign listener moved over the socket: the agent takes the path back" wait_until 10 ours_again
check "C. ... and says so loudly" grep -q "taking the path back" "$KS_LOG"
check_exit 0 "C. ... and an operator's isolate reaches the agent" ctl isolate mailonly --reason "after the impostor"
check "C. ... really: isolated with mailonly" status_is 'd["state"] == "isolated" and d["policy"] == "mailonly"'
ctl restore >/dev/null 2>&1
kill "$IMPOSTOR_PID" 2>/dev/null
wait "$IMPOSTOR_PID" 2>/dev/null

# ---------------------------------------------------------------------------------------------
note "D. trip"
mkdir -p "$KS_TMP/open" "$KS_TMP/mine" "$KS_TMP/safe/sub" && chmod 0777 "$KS_TMP/open" && chown 65534 "$KS_TMP/mine"
chmod 755 "$KS_TMP/safe" "$KS_TMP/safe/sub"
ln -s "$KS_TMP/safe/sub" "$KS_TMP/sublink"
printf '[PathTrigger open]\nPath=%s\nPolicy=isolate\n\n[PathTrigger mine]\nPath=%s\nPolicy=isolate\n\n[PathTrigger linked]\nPath=%s\nPolicy=isolate\n\n[PathTrigger safe]\nPath=%s\nPolicy=isolate\n' \
	"$KS_TMP/open/panic" "$KS_TMP/mine/panic" "$KS_TMP/sublink/panic" "$KS_TMP/safe/sub/panic" >"$CONF"
out=$("$KILLSWITCHD" --check --config-dir "$KS_CONF" 2>&1)
rc=$?
check "D. --check: exit 1 with a trigger in a world-writable directory (exit $rc)" test "$rc" -eq 1
check "D. --check: FILE:LINE (of the Path= line) for each unsafe path trigger" contains "$out" \
	"$CONF:2: Path: \"$KS_TMP/open/panic\": $KS_TMP/open is writable by everyone" \
	"$CONF:6: Path: \"$KS_TMP/mine/panic\": $KS_TMP/mine is owned by uid 65534" \
	"$CONF:10: Path: \"$KS_TMP/sublink/panic\": $KS_TMP/sublink is a symbolic link"
check_not "D. --check: the safe trigger is not reported" grep -q ":1[34]:" <<<"$out"
ctl reload >/dev/null 2>&1
# (A reload asked for while an earlier one still runs follows it: wait for its result.)
check "D. the running agent arms only the safe trigger" \
	wait_until 30 status_is '[p["name"] for p in d["triggers"]["paths"]] == ["safe"]'
"${NOBODY[@]}" touch "$KS_TMP/open/panic"
sleep 1.5
check "D. nobody creating the file in the world-writable directory does not isolate" \
	status_is 'd["state"] == "normal"'
: >"$CONF"
ctl reload >/dev/null 2>&1

# ---------------------------------------------------------------------------------------------
note "E. fool the terminal"
CSI8=$(printf '\302\233')   # U+009B, the 8-bit CSI
RLO=$(printf '\342\200\256') # U+202E RIGHT-TO-LEFT OVERRIDE
ctl isolate mailonly --reason "E: ${CSI8}2J wiped ${RLO}gpj.exe" >/dev/null
"${MEMBER[@]}" $ABUSE "$KS_SOCK" call '{"method":"io.killswitch.Isolate","parameters":{"policy":"x\u202ey\u009b1m"}}' >/dev/null
raw_free() { ! grep -qF -e "$CSI8" -e "$RLO" <<<"$1"; }
out=$(ctl status 2>&1)
check "E. status: no raw U+009B or U+202E" raw_free "$out"
check "E. status: both shown escaped" contains "$out" '\u009b2J wiped \u202egpj.exe'
out=$(ctl history -n 20 2>&1)
check "E. history: no raw U+009B or U+202E (reason; policy name of a refused call)" raw_free "$out"
check "E. history: shown escaped" contains "$out" '\u202egpj.exe' 'x\u202ey\u009b1m'
# --json on a terminal: \uXXXX escapes, never the raw characters.
on_tty() {
	python3 -c '
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
buf = b""
while True:
    try:
        d = os.read(fd, 65536)
    except OSError:
        break
    if not d:
        break
    buf += d
sys.stdout.buffer.write(buf)' "$@"
}
out=$(on_tty "$KILLSWITCHCTL" --socket "$KS_SOCK" --json status)
check "E. status --json on a terminal: no raw U+009B or U+202E" raw_free "$out"
check "E. ... escaped as JSON" grep -qiF '\u009b2J wiped \u202egpj.exe' <<<"$out"
# A compromised fleet host answers killswitchctl -H with the same characters (a stand-in for ssh).
cat >"$KS_TMP/evil-ssh" <<'EOF2'
#!/bin/sh
# Whatever is asked: a status with a bidi override and an 8-bit CSI, or an error saying as much.
case "$*" in
*evil2*) printf 'boom \302\233\062J \342\200\256gpj.exe\n' >&2; exit 1 ;;
esac
printf '{"state":"isolated","policy":"x\342\200\256y\302\233","since":"2026-11-27T05:30:12Z"}\n'
EOF2
chmod 755 "$KS_TMP/evil-ssh"
out=$(KILLSWITCH_SSH="$KS_TMP/evil-ssh" timeout 20 "$KILLSWITCHCTL" -H evil1,evil2 status 2>&1)
check "E. a compromised fleet host's answer reaches the terminal escaped" raw_free "$out"
check "E. ... both its status and its error" contains "$out" 'x\u202ey\u009b' '\u202egpj.exe'
ctl restore >/dev/null 2>&1

# ---------------------------------------------------------------------------------------------
note "F. smaller"
out=$(ctl isolate --confirm 4000000d --reason "F" 2>&1)
rc=$?
check "F. isolate --confirm 4000000d is refused by killswitchctl (exit $rc)" test "$rc" = 2
check "F. ... saying why" contains "$out" "longer than a year"
out=$($ABUSE "$KS_SOCK" call '{"method":"io.killswitch.Isolate","parameters":{"policy":"isolate","confirm_in":"4000000d"}}')
check "F. ... and by the agent (InvalidParameter)" contains "$out" "InvalidParameter" "at most a year"
check "F. ... nothing changed: normal, state file readable" status_is 'd["state"] == "normal"'

# metrics --output into a directory another user owns, with symlinks planted under likely names.
TEXT=$KS_TMP/textfile
mkdir -p "$TEXT" && chown 65534:65534 "$TEXT"
echo precious >"$KS_TMP/precious" && chmod 600 "$KS_TMP/precious"
for n in killswitch.prom.tmp .killswitch.prom.tmp killswitch.prom.new; do
	"${NOBODY[@]}" ln -s "$KS_TMP/precious" "$TEXT/$n"
done
check_exit 0 "F. metrics --output FILE in a directory of nobody's" ctl metrics --output "$TEXT/killswitch.prom"
check "F. ... the file is there, a regular file of mode 0644 with killswitch_up 1" \
	sh -c "[ -f '$TEXT/killswitch.prom' ] && [ ! -L '$TEXT/killswitch.prom' ] && [ \"\$(stat -c %a '$TEXT/killswitch.prom')\" = 644 ] && grep -qx 'killswitch_up 1' '$TEXT/killswitch.prom'"
check "F. ... no symlink was followed" test "$(cat "$KS_TMP/precious")" = precious
check "F. ... and no temporary file is left" test "$(find "$TEXT" -type f | wc -l)" = 1

# Run by hand, the agent keeps CAP_NET_ADMIN alone and cannot gain privileges.
caps=$(grep -E '^(CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs)' "/proc/$AGENT_PID/status" | tr -s '\t ' ' ' | tr '\n' ' ')
note "agent: $caps"
check "F. the agent's capabilities: CAP_NET_ADMIN only (effective, permitted, bounding), none ambient" \
	contains "$caps" "CapPrm: 0000000000001000" "CapEff: 0000000000001000" "CapBnd: 0000000000001000" "CapAmb: 0000000000000000"
check "F. the agent set NO_NEW_PRIVS" contains "$caps" "NoNewPrivs: 1"

# A large group killswitch (its /etc/group line far over 4 KiB): its members are still members.
{
	grep -v '^killswitch:' /etc/group
	printf 'killswitch:x:%s:' "$KS_GID"
	for i in $(seq 1 900); do printf 'member%04d,' "$i"; done
	printf 'last\n'
} >"$KS_TMP/group.big"
check "F. the big group line is over 4 KiB" test "$(grep '^killswitch:' "$KS_TMP/group.big" | wc -c)" -gt 4096
ip netns exec "$NS_SOCK" true 2>/dev/null && ip netns del "$NS_SOCK"
ip netns add "$NS_SOCK" || die "ip netns add"
mkdir -p "$KS_TMP/big"
chmod 755 "$KS_TMP/big"
# shellcheck disable=SC2016 # for the inner shell
start_other "$KS_TMP/big/control.sock" unshare -m sh -c 'mount --bind "$0" /etc/group && exec "$@"' "$KS_TMP/group.big"
out=$(timeout 10 "${MEMBER[@]}" "$KILLSWITCHCTL" --socket "$KS_TMP/big/control.sock" isolate isolate --reason "big group" 2>&1)
rc=$?
stop_other
check "F. a member of a group killswitch larger than 4 KiB may isolate (exit $rc)" test "$rc" = 0
[ "$rc" = 0 ] || note "$out"

# ---------------------------------------------------------------------------------------------
note "G. clock steps"
# Another agent whose wall clock (only) is stepped, through a file it re-reads (ks-clock.c).
STEP=$KS_TMP/clock-step
if ! cc -O1 -shared -fPIC -o "$KS_TMP/ks-clock.so" "$HERE/ks-clock.c" -ldl; then
	fail "G. building ks-clock.so"
else
	echo 0 >"$STEP"
	# A fresh namespace and state: the agent of F left its isolation in the kernel.
	ip netns del "$NS_SOCK" && ip netns add "$NS_SOCK" || die "ip netns add"
	rm -rf "$KS_TMP/other-state"
	mkdir -p "$KS_TMP/clock" && chmod 755 "$KS_TMP/clock"
	CSOCK=$KS_TMP/clock/control.sock
	cctl() { timeout 10 "$KILLSWITCHCTL" --socket "$CSOCK" "$@"; }
	c_state() { cctl --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }
	c_normal() { cctl status >/dev/null; [ "$(c_state)" = normal ]; }
	start_other "$CSOCK" env LD_PRELOAD="$KS_TMP/ks-clock.so" KS_CLOCK_FILE="$STEP" \
		ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
	check "G. an agent with a steppable wall clock answers" test "$(c_state)" = normal ||
		sed 's/^/#   other| /' "$KS_TMP/other.log"
	# A step backwards must not delay a commit-confirmed revert.
	cctl isolate isolate --confirm 4s --reason "G: confirm" >/dev/null
	echo -3600 >"$STEP"
	cctl status >/dev/null
	check "G. wall clock stepped back an hour: the commit-confirmed revert still comes after 4 s" \
		wait_until 12 c_normal
	# A step forwards must not end an isolation early.
	echo 0 >"$STEP"
	cctl isolate isolate --for 60s --reason "G: for" >/dev/null
	echo 7200 >"$STEP"
	for _ in 1 2 3; do cctl status >/dev/null; sleep 1; done
	check "G. wall clock stepped forward two hours: isolate --for 60s is still in force" \
		test "$(c_state)" = isolated
	# status shows when the restore really comes (its timer's), not the instant saved before the step.
	left=$(cctl --json status | python3 -c 'import json,sys,time,datetime
d = json.load(sys.stdin)
at = datetime.datetime.fromisoformat(d["restore_at"].replace("Z", "+00:00")).timestamp()
print(int(at - (time.time() + 7200)))')
	check "G. ... and status shows the restore within the minute of the stepped clock, not in the past ($left s)" \
		test "${left:--1}" -ge 0 -a "${left:--1}" -le 60
	out=$(env LD_PRELOAD="$KS_TMP/ks-clock.so" KS_CLOCK_FILE="$STEP" \
		ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 timeout 10 "$KILLSWITCHCTL" --socket "$CSOCK" status)
	check "G. ... the same in the table of status on the stepped clock: \"Restore: ... (in ...)\"" \
		grep -qE "Restore: .*\(in [0-9]+s\)" <<<"$out" || sed 's/^/#   /' <<<"$out"
	cctl restore >/dev/null
	# An instant (--until) follows the wall clock: stepped past it, the restore comes.
	echo 0 >"$STEP"
	cctl isolate isolate --until "$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)" --reason "G: until" >/dev/null
	echo 7200 >"$STEP"
	check "G. ... while isolate --until follows the wall clock: restored once it has passed" \
		wait_until 10 c_normal
	stop_other
fi

summary
