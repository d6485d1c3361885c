#!/bin/bash
# SPDX-License-Identifier: MIT
#
# End-to-end test of the triggers of issue 4 (killswitch.conf(5)) in the namespace lab (lib.sh):
# configuration errors with FILE:LINE (and the agent running without the broken trigger; reload
# prints them and exits 1; status lists the triggers and what disarmed them); a path trigger (the
# file appears: isolated within a second; once per incident; re-armed by a restore; a file already
# there at start fires; its directory removed: reported as not armed, armed again once it is back
# and only root can write it); the heartbeat (kept alive, then stopped: isolated); the
# egress trip-wire (UDP from the LAN out through wan0 below the rate for longer than For=: nothing;
# above it: isolated), measured by the kernel in table inet killswitch_tripwire.
#
# Run as root: tests/e2e/test-triggers.sh   (KILLSWITCHD, KILLSWITCHCTL: see lib.sh)

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ks_init
[ -x "$KILLSWITCHD" ] || die "no agent at $KILLSWITCHD"
[ -x "$KILLSWITCHCTL" ] || die "no client at $KILLSWITCHCTL"

lab_create
write_lab_policy isolate
write_lab_policy mailonly --no-phone
PANIC=$KS_TMP/run/panic
CONF=$KS_CONF/killswitch.conf

isolated_by() { status_is 'd["state"] == "isolated" and d["trigger"] == "'"$1"'" and d["policy"] == "'"$2"'"'; }
history_count() { # PYEXPR -> number of entries e matching
	ctl --json history -n 200 | python3 -c '
import json, sys
print(sum(1 for e in json.load(sys.stdin) if eval(sys.argv[1])))' "$1"
}
tripwire_table() { n_gw nft list table inet killswitch_tripwire >/dev/null 2>&1; }
# udp_flood BYTES_PER_SEC SECONDS — from lan to the web host through wan0, 1000-byte datagrams.
udp_flood() {
	n_lan python3 -c '
import socket, sys, time
rate, secs = float(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload = b"x" * 1000
start = time.monotonic(); sent = 0
while True:
    now = time.monotonic() - start
    if now >= secs: break
    while sent < rate * now:
        try: s.sendto(payload, ("192.0.2.80", 9))
        except OSError: pass
        sent += len(payload)
    time.sleep(0.005)
print(sent)' "$1" "$2"
}

# --- configuration errors ---------------------------------------------------------------------
WW=$KS_TMP/world-writable
mkdir -p "$WW" && chmod 0777 "$WW"
cat >"$CONF" <<EOF
[PathTrigger panic]
Path=$PANIC
Policy=mailonly

[PathTrigger typo]
Path=relative/path

[Heartbeat]
Timeout=5 fortnights

[EgressTripwire]
Rate=1M
For=2s
Policy=nosuchpolicy

[PathTrigger ww]
Path=$WW/panic
EOF
out=$("$KILLSWITCHD" --check --config-dir "$KS_CONF" 2>&1)
rc=$?
check "--check: exit 1 with a broken killswitch.conf" test "$rc" -eq 1
check "--check: FILE:LINE for the bad path, duration and policy" \
	contains "$out" "$CONF:6: Path: \"relative/path\"" "$CONF:9: Timeout: \"5 fortnights\": unknown unit \"fortnights\"" \
	"$CONF:14: Policy: \"nosuchpolicy\": no such policy"
agent_start || die "killswitchd did not start with a broken killswitch.conf"
check "broken killswitch.conf: agent runs, the good trigger is armed" \
	status_is 'd["state"] == "normal" and [p["name"] for p in d["triggers"]["paths"]] == ["panic"] and d["triggers"]["heartbeat"] is None and d["triggers"]["tripwire"] is None'
check "broken killswitch.conf: problems logged with FILE:LINE" grep -qF "$CONF:6: Path" "$KS_LOG"
# A reload says so too: killswitchctl reload prints the problems as FILE:LINE and exits 1.
out=$(ctl reload 2>&1)
rc=$?
check "reload with a broken killswitch.conf: exit 1 (got $rc)" test "$rc" -eq 1
check "reload with a broken killswitch.conf: its problems as FILE:LINE, and what that means" \
	contains "$out" "$CONF:6: Path: \"relative/path\"" "$CONF:9: Timeout: \"5 fortnights\": unknown unit" \
	"$CONF:14: Policy: \"nosuchpolicy\": no such policy" "$CONF:17: Path: \"$WW/panic\": $WW is writable by everyone" \
	"killswitch.conf has 4 problems: the triggers they concern are disarmed"
check "reload --json: killswitch.conf's problems in failed" eval "ctl --json reload | python3 -c '
import json, sys
d = json.load(sys.stdin)
f = [x for x in d[\"failed\"] if x[\"name\"] == \"killswitch.conf\"]
sys.exit(0 if len(f) == 1 and f[0][\"file\"] == \"$CONF\" and len(f[0][\"errors\"]) == 4 and d[\"loaded\"] else 1)'"
out=$(ctl status)
check "status: a Triggers line, the good trigger armed, the problems listed as disarming" \
	contains "$out" "Triggers: path panic: armed" "disarmed: $CONF:9: Timeout: \"5 fortnights\"" \
	"disarmed: $CONF:17: Path:"
check "status --json: the problems under triggers" status_is 'len(d["triggers"]["problems"]) == 4'

# --- path trigger -----------------------------------------------------------------------------
printf '[PathTrigger panic]\nPath=%s\nPolicy=mailonly\n' "$PANIC" >"$CONF"
check_exit 0 "reload with the path trigger only" ctl reload
check "path: normal, web reachable" web_ok
t0=$(date +%s%N)
touch "$PANIC"
check "path: file created -> isolated with mailonly, trigger path:panic" \
	wait_until 10 isolated_by path:panic mailonly
note "path trigger fired after $((($(date +%s%N) - t0) / 1000000)) ms"
check "path: web cut" web_cut
out=$(ctl status)
check "path: status shows the trigger" contains "$out" "Trigger: path:panic"
rm -f "$PANIC"; touch "$PANIC"; sleep 0.5
check "path: fires once per incident (one trigger entry in the history)" \
	test "$(history_count 'e["action"] == "trigger"')" -eq 1
rm -f "$PANIC"
check_exit 0 "path: restore returns 0" ctl restore
check "path: restored, web reachable" web_ok
touch "$PANIC"
check "path: re-armed after the restore: fires again" wait_until 10 isolated_by path:panic mailonly
rm -f "$PANIC"
ctl restore >/dev/null
touch "$PANIC"
agent_stop TERM
ctl_restore_state=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["state"])' "$KS_STATE/state.json")
note "state before the restart: $ctl_restore_state"
agent_start || die "restart"
check "path: restarted isolated by the trigger: not fired twice" \
	test "$(history_count 'e["action"] == "trigger"')" -eq 3
rm -f "$PANIC"
ctl restore >/dev/null
agent_stop TERM
touch "$PANIC"
agent_start || die "restart"
check "path: a file already there at start fires" wait_until 10 isolated_by path:panic mailonly
rm -f "$PANIC"
ctl restore >/dev/null

# --- path trigger: its directory removed and recreated ------------------------------------------
# A tmpfiles clean or a package upgrade removes the directory: the trigger is disarmed and says so,
# is armed again once the directory is back (with the checks of a reload), and fires.
TRIG=$KS_TMP/trig
mkdir -m 0755 "$TRIG"
printf '[PathTrigger panic]\nPath=%s/panic\nPolicy=mailonly\n' "$TRIG" >"$CONF"
check_exit 0 "dir: reload with a path trigger in its own directory" ctl reload
path_armed() { status_is 'd["triggers"]["paths"][0]["armed"] is '"$1"; }
check "dir: the trigger is armed" path_armed True
rm -rf "$TRIG"
check "dir removed: the trigger is reported as not armed" wait_until 10 path_armed False
out=$(ctl status)
check "dir removed: status says NOT ARMED" contains "$out" "Triggers: path panic: NOT ARMED"
# Back, but writable by everyone: stays disarmed (logged once), until only root can write it.
mkdir -m 0777 "$TRIG"
check "dir back, writable by everyone: refused (logged)" \
	wait_until 10 grep -q "Path trigger panic: $TRIG is back, but $TRIG is writable by everyone" "$KS_LOG"
check "dir back, writable by everyone: still not armed" path_armed False
chmod 0755 "$TRIG"
check "dir root-only again: armed again" wait_until 10 path_armed True
check "dir root-only again: normal, web reachable" web_ok
touch "$TRIG/panic"
check "dir back: the file fires -> isolated with mailonly" wait_until 10 isolated_by path:panic mailonly
check "dir back: web cut" web_cut
rm -f "$TRIG/panic"
ctl restore >/dev/null
# Removed, and back with the file already in it: the re-arm finds the file and fires.
rm -rf "$TRIG"
check "dir removed again: not armed" wait_until 10 path_armed False
mkdir -m 0755 "$TRIG" && touch "$TRIG/panic"
check "dir back with the file in it: fires -> isolated with mailonly" wait_until 10 isolated_by path:panic mailonly
rm -rf "$TRIG"
ctl restore >/dev/null

# --- heartbeat --------------------------------------------------------------------------------
# 8 s: heartbeats a second apart keep it alive even when a busy machine delays one by seconds.
printf '[Heartbeat]\nTimeout=8s\nPolicy=isolate\n' >"$CONF"
check_exit 0 "reload with a heartbeat of 8s" ctl reload
for _ in $(seq 12); do ctl heartbeat >/dev/null; sleep 1; done
check "heartbeat: kept alive for 12 s, longer than its timeout: still normal" is_normal
check "heartbeat: status shows the deadline" status_is 'd["triggers"]["heartbeat"]["deadline"] and d["triggers"]["heartbeat"]["timeout_usec"] == 8000000'
check_exit 1 "heartbeat as an unprivileged user is refused" \
	ctl_as_nobody heartbeat
check "heartbeat: stopped -> isolated after the timeout, trigger heartbeat" wait_until 20 isolated_by heartbeat isolate
check "heartbeat: web cut" web_cut
check_exit 0 "heartbeat after it fired still answers 0" ctl heartbeat
: >"$CONF"
check_exit 0 "reload without triggers" ctl reload
check_exit 1 "heartbeat without [Heartbeat] fails (exit 1)" ctl heartbeat
ctl restore >/dev/null

# --- egress trip-wire -------------------------------------------------------------------------
printf '[EgressTripwire]\nRate=1M\nFor=2s\nPolicy=isolate\n' >"$CONF"
check_exit 0 "reload with a trip-wire of 1 MB/s for 2 s" ctl reload
check "tripwire: table inet killswitch_tripwire in place while normal" tripwire_table
check "tripwire: its table reads back as it was sent (no difference logged)" not_matches "$(cat "$KS_LOG")" "does not read back"
sent=$(udp_flood 300000 5)
note "below the rate: sent $sent bytes in 5 s"
check "tripwire: 300 kB/s for 5 s does not fire" is_normal
sent=$(udp_flood 5000000 4)
note "above the rate: sent $sent bytes in 4 s"
check "tripwire: 5 MB/s for 4 s -> isolated, trigger tripwire" wait_until 10 isolated_by tripwire isolate
check "tripwire: its table is gone while isolated" test "$(tripwire_table && echo yes)" != yes
check "tripwire: web cut" web_cut
check "tripwire: history says why" \
	test "$(history_count 'e["action"] == "isolate" and e["trigger"] == "tripwire" and "egress over" in (e["reason"] or "")')" -eq 1
check_exit 0 "tripwire: restore returns 0" ctl restore
check "tripwire: re-armed after the restore" tripwire_table
: >"$CONF"
ctl reload >/dev/null
check "no trip-wire configured: no table" test "$(tripwire_table && echo yes)" != yes

[ "$KS_FAILED" -eq 0 ] || agent_log_tail
summary
