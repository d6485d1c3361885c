#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Robustness of killswitchd (issue 6), in the lab of lib.sh with real probes:
#  A. control socket abuse: 200 idle clients, 64 KiB of random bytes, 8 MB without a terminator,
#     invalid JSON, wrong types, unknown methods, a slow and a non-reading client, a hostile
#     ssh_connection. Throughout, a watcher asks Status every 0.2 s and must be answered within
#     5 s (an agent that blocked on a hostile client would stall 10 s or more); afterwards the
#     agent's fd count is back at its baseline.
#  B. fault injection: the kernel refusing batches (ENOBUFS, from the test-only LD_PRELOAD shim
#     ks-faults.c), the state directory read-only and full (a small tmpfs), the socket directory
#     removed, SIGHUP and SIGTERM while a 100,000-entry policy is being applied, SIGTERM while a
#     reload reads a file that takes a minute to open (the agent exits at once, cleanly: it does
#     not wait for the reload's thread). Each must leave a consistent state (status, the
#     kernel's table, real probes), a clear error, nothing lost.
#  C. an upgrade that changes only rules: a table whose rules are not what the agent builds now
#     (built from another port of a gateway, then given a hole: a rule of P/inbound and one of
#     P/outbound replaced by ones that let ping through; same chains, rule counts and sets) is
#     rebuilt at start, not adopted.
#  D. a FIFO named *.policy: a reload reports it (and the next reload runs), a start with it puts
#     the persisted isolation back (real probes).
# Run as root: tests/e2e/test-robust.sh   (KILLSWITCHD, KILLSWITCHCTL: see lib.sh)

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ks_init
[ -x "$KILLSWITCHD" ] || die "no agent at $KILLSWITCHD"
[ -x "$KILLSWITCHCTL" ] || die "no client at $KILLSWITCHCTL"
command -v cc >/dev/null || die "no C compiler for the fault injection shim"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The system's python (an ordinary user may not reach another one), and a copy of the helper
# where that user can read it.
cp "$HERE/abuse.py" "$KS_TMP/abuse.py" || die "copying abuse.py"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
ABUSE="$PY $KS_TMP/abuse.py"
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)

STATEFS=$KS_TMP/statefs
robust_cleanup() {
	agent_stop KILL >/dev/null 2>&1
	mountpoint -q "$STATEFS" && umount -l "$STATEFS"
	cleanup
}
trap robust_cleanup EXIT

lab_create
write_lab_policy isolate
write_lab_policy mailonly --no-phone
cc -O1 -shared -fPIC -o "$KS_TMP/ks-faults.so" "$HERE/ks-faults.c" -ldl || die "building ks-faults.so"
FAULT=$KS_TMP/fault
TFAULT=$KS_TMP/timer-fault
SLOWOPEN=$KS_TMP/slow-open
echo 0 >"$FAULT"
echo 0 >"$TFAULT"
echo 0 >"$SLOWOPEN"
# The state directory on its own small file system, to make it read-only or full.
mkdir -p "$STATEFS" && mount -t tmpfs -o size=512k,mode=0755 ks-robust "$STATEFS" || die "mounting a tmpfs"
KS_STATE=$STATEFS

start_agent_with_faults() {
	# ASan wants its runtime first; the shim only wraps sendmsg and is not instrumented.
	LD_PRELOAD=$KS_TMP/ks-faults.so KS_FAULT_FILE=$FAULT KS_TIMER_FAULT_FILE=$TFAULT \
		KS_SLOW_OPEN_FILE=$SLOWOPEN KS_SLOW_OPEN_NAME=big.policy \
		ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 agent_start
}
start_agent_with_faults || die "killswitchd did not start"

# AddressSanitizer's quarantine keeps freed memory: RSS says nothing about leaks there (LSan does).
if ks_agent_asan; then RSS_SLACK=; else RSS_SLACK=4096; fi
rss_bounded() { # DESC — the agent's RSS is within RSS_SLACK KiB of RSS0
	local rss
	rss=$(rss_kib)
	if [ -z "$RSS_SLACK" ]; then
		note "$1: RSS not compared under AddressSanitizer ($RSS0 -> $rss KiB)"
	elif [ "$rss" -lt $((RSS0 + RSS_SLACK)) ]; then
		pass "$1: RSS bounded ($RSS0 -> $rss KiB)"
	else
		fail "$1: RSS grew from $RSS0 to $rss KiB"
	fi
}
fds_at() { [ "$(fds)" -le "$1" ]; }
# ctl_out CMD... — run killswitchctl, keep what it said (both streams) in $OUT and its status in $RC.
ctl_out() { OUT=$(ctl "$@" 2>&1); RC=$?; }
state_file_is() { python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["state"] == sys.argv[2] else 1)' "$KS_STATE/state.json" "$1"; }
isolated_with() { status_is "d['state'] == 'isolated' and d['policy'] == '$1'" && ks_table_active && n_gw nft list chain inet killswitch prerouting | grep -q "jump $1/inbound"; }
# arm_faults N — the next N nf_tables batches fail. First wait until the drop sensor's last read
# after a restore is folded in and its sets emptied (its own batch, sent after restore returned):
# else that batch would take one of the faults meant for the next command.
arm_faults() {
	wait_until 30 status_is "not d.get('drops', {}).get('reading')" || note "the drop sensor still reads after 30 s"
	echo "$1" >"$FAULT"
}
normal_now() { status_is "d['state'] == 'normal'" && [ "$(ks_table_state)" = staged ]; }
probes_isolated() { # DESC — web cut, mail kept
	check_many <<EOF2
- $1: web v4 from lan is cut        | tcp_echo lan 192.0.2.80 80
+ $1: mail tcp/25 from lan is kept  | tcp_echo lan 203.0.113.25 25
EOF2
}
probes_open() {
	check_many <<EOF2
+ $1: web v4 from lan reachable      | tcp_echo lan 192.0.2.80 80
+ $1: mail tcp/25 from lan reachable | tcp_echo lan 203.0.113.25 25
EOF2
}

# ---------------------------------------------------------------------------------------------
note "A. control socket abuse"
ctl status >/dev/null && ctl policies >/dev/null
# The drop sensor's reader keeps its netlink socket from its first read on (an isolation's): in the
# baseline too. `drops` after the restore waits for its last read.
ctl isolate --reason "baseline" >/dev/null && ctl restore >/dev/null && ctl drops >/dev/null
sleep 0.3
FDS0=$(fds)
RSS0=$(rss_kib)
note "baseline: $FDS0 fds, $RSS0 KiB RSS"
WATCH_STOP=$KS_TMP/watch.stop
$ABUSE "$KS_SOCK" watch "$WATCH_STOP" "$KS_TMP/watch.out" &
WATCH_PID=$!
"${NOBODY[@]}" $ABUSE "$KS_SOCK" slow >"$KS_TMP/slow.out" 2>&1 &
SLOW_PID=$!
# The slow client holds one of nobody's 16 connections: let it connect before the idle ones.
wait_until 10 grep -q connected "$KS_TMP/slow.out"

# 200 idle clients of an ordinary user: 16 get in (its budget), the rest are closed at once.
HOLD=$KS_TMP/hold
touch "$HOLD"
chmod 755 "$KS_TMP"
"${NOBODY[@]}" $ABUSE "$KS_SOCK" idle 200 "$HOLD" >"$KS_TMP/idle.out" 2>&1 &
IDLE_PID=$!
wait_until 15 grep -q accepted "$KS_TMP/idle.out"
read -r _ accepted _ refused <"$KS_TMP/idle.out"
note "200 idle clients: ${accepted:-?} accepted, ${refused:-?} refused"
if [ "${accepted:-0}" -le 16 ] && [ "${accepted:-0}" -ge 14 ] && [ "${refused:-0}" -ge 184 ]; then
	pass "200 idle clients: at most 16 connections kept (${accepted}), the others closed at once (${refused})"
else
	fail "200 idle clients: ${accepted:-?} accepted, ${refused:-?} refused ($(cat "$KS_TMP/idle.out"))"
fi
# Starved, root's call would wait as long as the idle clients stay (until HOLD is removed).
check "with every connection taken, root's status is still answered (within 5 s)" \
	timeout 5 "$KILLSWITCHCTL" --socket "$KS_SOCK" status
check_not "with every connection taken, an ordinary user's new connection is refused (not hung)" \
	timeout 3 "${NOBODY[@]}" "$KILLSWITCHCTL" --socket "$KS_SOCK" status
rm -f "$HOLD"
wait "$IDLE_PID"
# (The slow client and the watcher may hold one connection each.)
check "the idle clients gone, their fds are closed" wait_until 5 fds_at $((FDS0 + 2))

# 64 KiB of random bytes (NULs among them): a protocol error, the connection closed.
head -c 65536 /dev/urandom >"$KS_TMP/random"
out=$("${NOBODY[@]}" $ABUSE "$KS_SOCK" raw "$KS_TMP/random")
check "64 KiB of random bytes: ProtocolError, then closed" contains "$out" "io.killswitch.ProtocolError" "closed"
# Exactly 64 KiB before the NUL is still a request (not JSON here); one byte more is too large.
head -c 200000 /dev/urandom | tr -d '\000' | head -c 65536 >"$KS_TMP/max"
printf '\0' >>"$KS_TMP/max"
out=$("${NOBODY[@]}" $ABUSE "$KS_SOCK" raw "$KS_TMP/max")
check "a request of exactly 65536 bytes is decoded (not JSON: ProtocolError)" \
	contains "$out" "io.killswitch.ProtocolError" "not a JSON object"
head -c 200000 /dev/urandom | tr -d '\000' | head -c 65537 >"$KS_TMP/over"
out=$("${NOBODY[@]}" $ABUSE "$KS_SOCK" raw "$KS_TMP/over")
check "65537 bytes without a NUL: ProtocolError 'Request too large', closed" \
	contains "$out" "io.killswitch.ProtocolError" "Request too large" "closed"

# 8 MB without a terminator: refused after 64 KiB, not buffered.
out=$("${NOBODY[@]}" $ABUSE "$KS_SOCK" flood 8000000)
note "8 MB flood: $out"
check "8 MB without a terminator: 'Request too large' at once, closed" \
	contains "$out" "Request too large" "then closed"
rss_bounded "8 MB without a terminator"

# Invalid JSON, wrong types, duplicate keys, unknown methods.
protocol_error() { # DESC JSON
	local o
	o=$("${NOBODY[@]}" $ABUSE "$KS_SOCK" call "$2")
	check "$1: ProtocolError, connection closed" contains "$o" "io.killswitch.ProtocolError" "Malformed request"
}
protocol_error "invalid JSON" '{"method":'
protocol_error "a JSON array" '["io.killswitch.Status"]'
protocol_error "method is a number" '{"method":5}'
protocol_error "parameters is an array" '{"method":"io.killswitch.Status","parameters":[]}'
protocol_error "oneway is a string" '{"method":"io.killswitch.Status","oneway":"yes"}'
protocol_error "duplicate keys" '{"method":"io.killswitch.Status","method":"io.killswitch.Reload"}'
protocol_error "invalid UTF-8" $'{"method":"io.killswitch.Status\xff"}'
out=$("${NOBODY[@]}" $ABUSE "$KS_SOCK" call '{"method":"io.killswitch.History","parameters":{"n":"many"}}')
check "History n=\"many\": InvalidParameter naming n" contains "$out" "org.varlink.service.InvalidParameter" '"parameter":"n"'
out=$($ABUSE "$KS_SOCK" call '{"method":"io.killswitch.Isolate","parameters":{"policy":["isolate"]}}')
check "Isolate with an array as policy (root): InvalidParameter" contains "$out" "org.varlink.service.InvalidParameter"
out=$($ABUSE "$KS_SOCK" call '{"method":"io.killswitch.Isolate","parameters":{"policy":"isolate","force":"yes"}}')
check "Isolate with force=\"yes\" (root): InvalidParameter" contains "$out" "org.varlink.service.InvalidParameter"
out=$("${NOBODY[@]}" $ABUSE "$KS_SOCK" call '{"method":"io.killswitch.Show","parameters":{"policy":42}}')
check "Show with a number as policy: an error, not a crash" contains "$out" '"error"'
out=$("${NOBODY[@]}" $ABUSE "$KS_SOCK" call '{"method":"io.killswitch.Nope"}' '{"method":"io.killswitch.Status"}')
check "unknown method: MethodNotFound, and the connection still answers Status" \
	contains "$out" "org.varlink.service.MethodNotFound" '"state":"normal"'
out=$("${NOBODY[@]}" $ABUSE "$KS_SOCK" call "{\"method\":\"$(head -c 60000 /dev/zero | tr '\0' x)\"}")
check "a 60 KB method name: InterfaceNotFound" contains "$out" "org.varlink.service.InterfaceNotFound"
check "nothing of this changed the state" normal_now

# A client that pipelines requests and never reads, for 10 s: back-pressure, not memory (and an
# agent that blocked writing to it would miss the watcher's 5 s).
"${NOBODY[@]}" $ABUSE "$KS_SOCK" noread 20000 10 >"$KS_TMP/noread.out" 2>&1
note "non-reading client: $(cat "$KS_TMP/noread.out")"
rss_bounded "a client that never reads its replies"

# A hostile SSH_CONNECTION (the lockout check parses it) from a privileged caller.
long=$(head -c 63 /dev/zero | tr '\0' A)
SSH_CONNECTION="$long 1 $long 2" ctl isolate --reason "hostile ssh_connection" >/dev/null 2>&1
check "an overlong SSH_CONNECTION does not hurt the agent" agent_alive
ctl restore >/dev/null 2>&1

wait "$SLOW_PID"
secs=$(awk '/^closed after/ { print $3 }' "$KS_TMP/slow.out")
secs=${secs%s}
# Cut off at 10 s by the agent; without the cut-off the client trickles for 60 s.
if awk -v s="${secs:-0}" 'BEGIN { exit !(s >= 9 && s <= 25) }'; then
	pass "a request trickled one byte a second is cut off after 10 s ($(tail -n 1 "$KS_TMP/slow.out"))"
else
	fail "a request trickled one byte a second: $(tail -n 1 "$KS_TMP/slow.out"), expected closed after ~10 s"
fi
touch "$WATCH_STOP"
wait "$WATCH_PID"
read -r _ calls _ wfailed _ worst <"$KS_TMP/watch.out"
note "watcher: $(cat "$KS_TMP/watch.out")"
if [ "${calls:-0}" -ge 20 ] && [ "${wfailed:-1}" -eq 0 ]; then
	pass "throughout the abuse, Status was answered within 5 s ($calls calls, slowest ${worst}s)"
else
	fail "throughout the abuse, Status: $(cat "$KS_TMP/watch.out")"
fi
check "after the abuse the agent runs" agent_alive
check "after the abuse the fd count is back at its baseline ($FDS0)" wait_until 5 fds_at "$FDS0"

# ---------------------------------------------------------------------------------------------
note "B1. the kernel refuses batches (ENOBUFS on sendmsg, injected)"
arm_faults 1
ctl_out isolate --reason "one refused batch"
check "one refused switch: isolate still succeeds (the agent rebuilds the table)" test "$RC" -eq 0
check "one refused switch: the agent said it rebuilt" grep -q "rebuilding the table" "$KS_LOG"
check "one refused switch: isolated with isolate, in the kernel too" isolated_with isolate
probes_isolated "after one refused switch"
ctl restore >/dev/null

arm_faults 2
ctl_out isolate --reason "refused twice"
check "refused switch and rebuild: isolate fails" test "$RC" -ne 0
check "refused: the error names the kernel's reason and says nothing changed" \
	contains "$OUT" "No buffer space available" "nothing was changed"
check "refused: status says normal and the table is not hooked" normal_now
check "refused: the state file still says normal" state_file_is normal
probes_open "after a refused isolate"
check "refused: the history records apply-failed" \
	contains "$(ctl --json history -n 1)" "apply-failed"
check "every injected fault was used" grep -qx 0 "$FAULT"

ctl isolate --reason "works again" >/dev/null
check "without faults, isolate works again" isolated_with isolate
arm_faults 2
ctl_out restore --reason "refused twice"
check "refused restore: fails with the kernel's reason" contains "$OUT" "No buffer space available"
check "refused restore: still isolated with isolate, in the kernel too" isolated_with isolate
check "refused restore: the state file still says isolated" state_file_is isolated
probes_isolated "after a refused restore"

arm_faults 1
ctl_out reload
check "refused reload: fails with the kernel's reason" contains "$OUT" "No buffer space available"
check "refused reload: the isolation stays in force" isolated_with isolate
probes_isolated "after a refused reload"
ctl_out reload
check "reload works again" test "$RC" -eq 0
ctl restore >/dev/null
check "restore works again" normal_now

# ---------------------------------------------------------------------------------------------
note "B2. the state directory is read-only"
mount -o remount,ro "$STATEFS"
ctl_out isolate --reason "read-only state"
check "read-only: isolate reports StateNotSaved with the reason" \
	contains "$OUT" "could not be saved" "Read-only file system"
check "read-only: the isolation is in force anyway (fail-closed)" isolated_with isolate
probes_isolated "read-only state directory"
ctl_out restore --reason "read-only state"
check "read-only: restore reports StateNotSaved with the reason" \
	contains "$OUT" "could not be saved" "Read-only file system"
check "read-only: the uplinks are open as asked" normal_now
probes_open "read-only state directory, restored"
check "read-only: the agent runs" agent_alive
mount -o remount,rw "$STATEFS"
ctl isolate --reason "writable again" >/dev/null
check "writable again: isolate saves the state" state_file_is isolated
ctl restore >/dev/null
check "writable again: restore saves the state" state_file_is normal
check "writable again: the history is readable" ctl history

note "B3. the state directory is full"
dd if=/dev/zero of="$STATEFS/fill" bs=4k 2>/dev/null
# The state file is padded to a fixed size and overwritten in place: no new block is needed.
check "full: the state file is 4096 bytes (padded)" test "$(stat -c %s "$KS_STATE/state.json")" -eq 4096
INODE=$(stat -c %i "$KS_STATE/state.json")
ctl_out isolate --reason "full state dir, in place"
check "full: isolate in place succeeds" test "$RC" -eq 0
check "full: the state file says isolated" state_file_is isolated
check "full: the same file, overwritten in place" test "$(stat -c %i "$KS_STATE/state.json")" = "$INODE"
ctl_out restore --reason "full state dir, in place"
check "full: restore in place succeeds" test "$RC" -eq 0
check "full: the state file says normal" state_file_is normal
# A state file of another size (as an older agent wrote it) is replaced by a new file: that needs room.
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); open(sys.argv[1], "w").write(json.dumps(d))' \
	"$KS_STATE/state.json"
check "full: the state file rewritten without padding" test "$(stat -c %s "$KS_STATE/state.json")" -lt 4096
ctl_out isolate --reason "full state dir"
check "full: isolate reports StateNotSaved with the reason" \
	contains "$OUT" "could not be saved" "No space left on device"
check "full: the isolation is in force anyway" isolated_with isolate
check "full: the previous state file is intact (atomic writes)" state_file_is normal
ctl_out restore --reason "full state dir"
check "full: restore reports StateNotSaved" contains "$OUT" "could not be saved" "No space left on device"
check "full: the uplinks are open as asked" normal_now
rm -f "$STATEFS/fill"
ctl isolate --reason "room again" >/dev/null
check "room again: isolate saves the state" state_file_is isolated
probes_isolated "room again"
ctl restore >/dev/null
check "room again: restore saves the state" state_file_is normal
check "room again: the history is readable" ctl history -n 50
check "room again: no leftover temporary file" test -z "$(find "$STATEFS" -name '.*.tmp')"

# ---------------------------------------------------------------------------------------------
note "B4. the socket directory vanishes"
ctl isolate --reason "socket test" >/dev/null
FDS1=$(fds)
rm -rf "$KS_TMP/run"
# The agent notices at once (inotify) and binds again; a client in between gets exit 3.
check "socket gone: the isolation stays in force" ks_table_active
probes_isolated "socket directory removed"
check "the agent listens again within 5 s" wait_until 5 ctl status
check "the agent says so in its log" grep -q "had vanished" "$KS_LOG"
check "socket back: still isolated with isolate" isolated_with isolate
check "socket back: no fd leaked ($FDS1)" wait_until 5 fds_at "$FDS1"
ctl restore >/dev/null

# ---------------------------------------------------------------------------------------------
note "B5. SIGHUP and SIGTERM during a 100,000-entry apply"
python3 - "$KS_CONF/policies/big.policy" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("[Policy]\nDescription=100000 gateway addresses\n\n[Uplinks]\nInterface=wan0 wan1\n\n")
    f.write("[Gateway mail]\nAddress=203.0.113.25\nPorts=tcp:25\n\n[Gateway many]\nPorts=tcp:443\n")
    for line in range(1000):
        addrs = []
        for i in range(100):
            n = (line * 100 + i) * 2            # every other address: no merging into ranges
            addrs.append("100.%d.%d.%d" % (64 + (n >> 16), (n >> 8) & 255, n & 255))
        f.write("Address=%s\n" % " ".join(addrs))
PY
ctl isolate --reason "before the big reload" >/dev/null
t0=$(date +%s%N)
# The restart below expects the table this reload builds: its answer is waited for.
OUT=$(reload_waited)
RC=$?
note "reload with the 100,000-entry policy: $(( ($(date +%s%N) - t0) / 1000000 )) ms, exit $RC"
check "the 100,000-entry policy loads" contains "$(ctl policies)" "big"
# A reload (SIGHUP), another SIGHUP while it runs, then SIGTERM: each is handled after the apply.
touch "$KS_CONF/policies/big.policy"
kill -HUP "$AGENT_PID"
sleep 0.05
kill -HUP "$AGENT_PID"
sleep 0.05
agent_stop TERM
check "SIGTERM during a reload: the agent exits cleanly (status ${AGENT_EXIT:-?})" test "${AGENT_EXIT:-1}" -eq 0
check "SIGTERM during a reload: the isolation stays in force without the agent" \
	eval 'n_gw nft list chain inet killswitch prerouting | grep -q "jump isolate/inbound"'
probes_isolated "agent stopped during a reload"
start_agent_with_faults || die "killswitchd did not restart"
check "restarted: isolated with isolate, in the kernel too" isolated_with isolate
check "restarted: the big policy is loaded" contains "$(ctl policies)" "big"
grep -a -B3 -A3 "differs" "$KS_LOG" | sed 's/^/#   log: /'
check "restarted: no read-back difference in the log" eval '! grep -q "differs" "$KS_LOG"'
check "restarted: the table the reload built is adopted (the policies in another order)" \
	eval '! grep -q "is not adopted" "$KS_LOG"'
# The elements of big sets are read back on a thread after start-up (a dump of 100,000 elements
# takes tenths of a second): one swapped while the agent was down is found there and the table
# rebuilt (held while isolated). Here two entries of big/gw_many_v4 become ICMP echo keys of the
# mail relay (th sport of an echo request is its type and code, 2048; of a reply 0): with big in
# force, ping to the relay would pass the inet chains (the link layer passes ICMP to a gateway).
check "restarted: the big sets were read back on a thread and hold what the agent built" \
	wait_until 30 grep -q "The big sets of table inet killswitch hold what the agent built" "$KS_LOG"
agent_stop KILL
log_from=$(($(wc -l <"$KS_LOG") + 1))
check "agent killed: two of the 100,000 elements of big/gw_many_v4 swapped by hand (as many)" eval '
	n_gw nft delete element inet killswitch big/gw_many_v4 "{ 100.64.0.0 . tcp . 443, 100.64.0.2 . tcp . 443 }" &&
	n_gw nft add element inet killswitch big/gw_many_v4 "{ 203.0.113.25 . icmp . 2048, 203.0.113.25 . icmp . 0 }"'
start_agent_with_faults || die "killswitchd did not restart"
big_found() { tail -n +"$log_from" "$KS_LOG" | grep -q "holds other elements than the agent built, it is rebuilt: .*set big/gw_many_v4 "; }
big_rebuilt() { history_has 'e["action"] == "reassert" and "big/gw_many_v4 holds other elements" in (e.get("reason") or "")'; }
check "restarted on an edited big set: found by the read-back on the thread" wait_until 30 big_found
# The history's entry follows the rebuild.
check "... the table rebuilt, and the history says why" wait_until 30 big_rebuilt
probes_isolated "after the rebuild of the edited big set"
# A switch to the big policy with SIGHUP on its heels: both done, in order.
ctl isolate big --reason "big switch" >"$KS_TMP/switch.out" 2>&1 &
sw=$!
sleep 0.02
kill -HUP "$AGENT_PID"
wait "$sw"
check "switch to the big policy with a SIGHUP on its heels: succeeds" test $? -eq 0
check "then isolated with big, in the kernel too" isolated_with big
check "isolated with big: ping to the mail relay is cut (the swapped elements are gone)" eval '! ping_ok lan 203.0.113.25'
check "the big policy's set holds 100,000 addresses" \
	eval '[ "$(n_gw nft list set inet killswitch big/gw_many_v4 | grep -o "100\.[0-9.]* \. tcp \. 443" | wc -l)" -eq 100000 ]'
# SIGTERM while a reload's thread reads a file that takes a minute to open (ks-faults.c): the
# agent does not wait for that thread (the old agent did: parsing and compiling 100,000 entries at
# its low priority beside two busy CPUs took it 28 s). It exits at once, cleanly, still isolated.
echo 60000 >"$SLOWOPEN"
log_from=$(($(wc -l <"$KS_LOG") + 1))
kill -HUP "$AGENT_PID"
sleep 0.3
t0=$(date +%s%N)
agent_stop TERM
check "SIGTERM while a reload reads a slow file: exits cleanly after $((($(date +%s%N) - t0) / 1000000)) ms (status ${AGENT_EXIT:-?})" \
	test "${AGENT_EXIT:-1}" -eq 0
echo 0 >"$SLOWOPEN"
check "... its log says the reload is dropped, not that it failed" eval "
	tail -n +$log_from '$KS_LOG' | grep -q 'Stopping during a reload: it is dropped' &&
	! tail -n +$log_from '$KS_LOG' | grep -q 'Reload failed'"
check "... the isolation with big stays in force without the agent" \
	eval 'n_gw nft list chain inet killswitch prerouting | grep -q "jump big/inbound"'
start_agent_with_faults || die "killswitchd did not restart"
check "restarted: isolated with big" isolated_with big
ctl restore >/dev/null
rm -f "$KS_CONF/policies/big.policy"
ctl reload >/dev/null
check "restored and the big policy unloaded" normal_now

# The kernel refusing to arm a timer (EINVAL, as under libfaketime) is an error of the event loop
# itself, not of a callback: the agent logs it and goes on, and the timer still fires.
echo 5 >"$TFAULT"
ctl isolate isolate --for 6s --reason "timer fault" >/dev/null
check "a timer the kernel refused 5 times: the agent is still running" agent_alive
check "... and answers" wait_until 10 status_is "d['state'] == 'isolated'"
check "... the refusals were all taken" test "$(cat "$TFAULT")" = 0
n_logged=$(grep -c "The event loop failed" "$KS_LOG")
check "... the error is logged once ($n_logged times)" test "$n_logged" -eq 1 || grep "event loop" "$KS_LOG" | sed 's/^/#   /'
probes_isolated "isolated while a timer was refused"
check "... and the restore of --for 6s still comes by itself" wait_until 20 normal_now
check "... the agent is still the same process" agent_alive
probes_open "at the end"
check "at the end the agent runs" agent_alive

# C. An upgrade that changes only rules (a fixed match, another order): the table the old agent
# left has the shape the new one builds, but other rules. Here the old table is built from the
# policy with another port of the phone gateway (same chains, rule counts, element counts), and
# while the agent is stopped it gets a hole: in P/inbound and P/outbound one rule becomes another
# that lets ping to the SIP provider through (the policy has no Ping=; the link layer, restaged at
# every start, lets ICMP to a gateway's address pass and leaves it to these chains). The agent
# restarted with the policy as it is now must rebuild (held, then switched), not adopt the hole.
agent_stop TERM
sed -i 's/ tcp:5061 / tcp:5062 /' "$KS_CONF/policies/isolate.policy"
start_agent_with_faults || die "killswitchd (as the old agent) did not start"
ctl isolate isolate --reason "before the upgrade" >/dev/null
check "old agent: isolated with isolate" isolated_with isolate
old_comment=$(n_gw nft list table inet killswitch | grep -o 'comment ".*"')
agent_stop TERM
write_lab_policy isolate
# punch_hole FAMILY TABLE CHAIN RULE — replace the chain's first rule on isolate/gw_phone_v4 by RULE.
punch_hole() {
	local handle
	handle=$(n_gw nft -a list chain "$1" "$2" "$3" | awk '/@isolate\/gw_phone_v4 / { print $NF; exit }')
	[ -n "$handle" ] && n_gw nft replace rule "$1" "$2" "$3" handle "$handle" $4
}
check "old agent: ping to the SIP provider is cut (no Ping=)" eval '! ping_ok lan 203.0.113.5'
check "agent stopped: a rule replaced in P/inbound and P/outbound (shape unchanged)" eval '
	punch_hole inet killswitch isolate/outbound "ip daddr 203.0.113.5 meta l4proto icmp accept" &&
	punch_hole inet killswitch isolate/inbound "ip saddr 203.0.113.5 meta l4proto icmp accept"'
check "agent stopped: the hole is real, ping to the SIP provider passes" ping_ok lan 203.0.113.5
start_agent_with_faults || die "killswitchd (upgraded) did not start"
check "upgraded agent: isolated with isolate" isolated_with isolate
check "upgraded agent: the old table is not adopted, ping to the SIP provider is cut again" \
	eval '! ping_ok lan 203.0.113.5'
probes_isolated "upgraded agent"
check "upgraded agent: its own digest in the table's comment (was: $old_comment)" eval '
	n_gw nft list table inet killswitch | grep -q "comment \"killswitchd .* digest [0-9a-f]*\"" &&
	! n_gw nft list table inet killswitch | grep -qF "$old_comment"'
check "upgraded agent: the log says why it rebuilt" \
	grep -q "not adopted, it is rebuilt: the table was built by a different version of the agent or its rules differ" "$KS_LOG"
check "upgraded agent: the history says why" \
	history_has 'e["action"] == "reassert" and "different version of the agent" in (e.get("reason") or "")'
# And an unchanged agent adopts its own table again (no rebuild).
agent_stop TERM
n_adopted=$(grep -c "the kernel still holds it, adopted" "$KS_LOG")
n_rebuilt=$(grep -c "is not adopted, it is rebuilt" "$KS_LOG")
start_agent_with_faults || die "killswitchd did not restart"
check "unchanged agent restarted: adopted, not rebuilt" eval '
	[ "$(grep -c "the kernel still holds it, adopted" "$KS_LOG")" -eq $((n_adopted + 1)) ] &&
	[ "$(grep -c "is not adopted, it is rebuilt" "$KS_LOG")" -eq "$n_rebuilt" ]'
probes_isolated "unchanged agent restarted"
# A reload that changed nothing leaves the adopted table alone: the rules it compiled have its digest.
ctl reload >/dev/null
check "unchanged agent: a reload without changes leaves the table alone" eval '
	grep -q "No policy changed: table inet killswitch left as it is" "$KS_LOG" &&
	! grep -q "the compiled rules differ" "$KS_LOG"'
ctl restore >/dev/null
check "restored after the upgrade checks" normal_now

# D. A FIFO named *.policy in the policy directory (only root can put it there). Opening it for
# reading would wait for a writer: the reload must report it, not hang (and hold up every later
# reload), and a start must put the persisted isolation back, not block before it.
note "D. a FIFO named *.policy"
FIFO=$KS_CONF/policies/zz-pipe.policy
ctl isolate isolate --reason "before the fifo" >/dev/null
mkfifo "$FIFO"
ctl_out reload
check "FIFO: the reload answers, fails (exit 1, got $RC)" test "$RC" -eq 1
check "FIFO: ... and names it: not a regular file" contains "$OUT" \
	"$FIFO: not a regular file (a FIFO); only regular text files are read"
check "FIFO: the isolation stays in force" isolated_with isolate
rm -f "$FIFO"
write_lab_policy other --no-phone
ctl_out reload
check "FIFO removed, a policy added: the next reload runs and loads it (exit $RC)" test "$RC" -eq 0
check_exit 0 "FIFO removed: isolate with the new policy" ctl isolate other --reason "after the fifo"
# A reboot with the FIFO there: the agent stopped, the kernel's tables gone, the agent started.
agent_stop KILL
mkfifo "$FIFO"
for t in $(n_gw nft list tables | awk '$3 ~ /^killswitch/ { print $2 ":" $3 }'); do
	n_gw nft delete table "${t%%:*}" "${t#*:}"
done
check "FIFO at start: the kernel has no killswitch table (a reboot)" eval '! n_gw nft list tables | grep -q killswitch'
check "FIFO at start: the agent starts and answers" start_agent_with_faults
check "FIFO at start: the persisted isolation is put back" isolated_with other
probes_isolated "FIFO at start"
policies_out=$(ctl policies 2>&1)
check "FIFO at start: policies reports it" contains "$policies_out" "$FIFO: not a regular file (a FIFO)"
rm -f "$FIFO" "$KS_CONF/policies/other.policy"
ctl restore >/dev/null
ctl reload >/dev/null
check "FIFO gone: restored" normal_now

agent_stop TERM
check "the agent exits cleanly at the end (status ${AGENT_EXIT:-?})" test "${AGENT_EXIT:-1}" -eq 0
summary
