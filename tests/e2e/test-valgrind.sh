#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The agent under valgrind (issue 6), once through the lab: start, every method, isolate,
# switch, probes, restore, a reload with a broken file, SIGHUP, protocol errors, SIGTERM.
# valgrind must report no invalid access and nothing "definitely lost" (still-reachable blocks
# of the libraries are fine), and the agent must exit 0. Skipped for a sanitizer build (valgrind
# and ASan do not mix). Run as root: tests/e2e/test-valgrind.sh

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ks_init
[ -x "$KILLSWITCHD" ] || die "no agent at $KILLSWITCHD"
[ -x "$KILLSWITCHCTL" ] || die "no client at $KILLSWITCHCTL"
if ldd "$KILLSWITCHD" 2>/dev/null | grep -qE 'lib(a|ub)san'; then
	note "$KILLSWITCHD is built with sanitizers: valgrind cannot run it, skipped"
	summary
	exit 0
fi
command -v valgrind >/dev/null || die "valgrind is not installed"

VG_LOG=$KS_TMP/valgrind.log
KS_AGENT_WRAPPER="valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --track-origins=yes --log-file=$VG_LOG"
export KS_CTL_TIMEOUT=30

lab_create
write_lab_policy isolate
write_lab_policy mailonly --no-phone
agent_start || die "killswitchd did not start under valgrind"
pass "killswitchd starts under valgrind"

check "status" ctl status
check "policies" ctl policies
check "show" ctl show mailonly
check "isolate" ctl isolate --reason "valgrind"
check_many <<'EOF2'
- isolated: web v4 from lan is cut   | tcp_echo lan 192.0.2.80 80
+ isolated: mail tcp/25 from lan kept | tcp_echo lan 203.0.113.25 25
EOF2
check "switch to mailonly" ctl isolate mailonly --reason "valgrind switch"
check "status while isolated (reads the counters)" ctl status
check "refused: no such policy" eval '! ctl isolate nope'
printf '[Uplinks]\nInterface=wan0\n[Gateway x]\nAddress=300.0.0.1\n' >"$KS_CONF/policies/broken.policy"
check "reload with a broken file fails as it should" eval '! ctl reload'
rm -f "$KS_CONF/policies/broken.policy"
check "reload" ctl reload
kill -HUP "$AGENT_PID"
check "SIGHUP reload, still answering" wait_until 30 ctl status
check "restore" ctl restore --reason "valgrind"
check "restored: web v4 from lan reachable" tcp_echo lan 192.0.2.80 80
check "history" ctl history -n 10
# Protocol errors and a request that is too large.
python3 - "$KS_SOCK" <<'PY'
import socket, sys
for data in (b'{"method":\0', b'{"method":"io.killswitch.Nope"}\0', b"x" * 70000, b'{"method":5}\0'):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    try:
        s.sendall(data)
        s.settimeout(10)
        s.recv(4096)
    except OSError:
        pass
    s.close()
PY
check "after protocol errors, still answering" ctl status

agent_stop TERM
note "valgrind: $(grep -E 'ERROR SUMMARY|definitely lost|in use at exit' "$VG_LOG" | sed 's/^==[0-9]*== //' | tr '\n' ' ')"
check "the agent exits 0 under valgrind (99 would be a valgrind error; got ${AGENT_EXIT:-?})" test "${AGENT_EXIT:-1}" -eq 0
check "valgrind: no errors (invalid reads/writes, uninitialised values)" grep -q 'ERROR SUMMARY: 0 errors' "$VG_LOG"
check "valgrind: nothing definitely lost" \
	eval "grep -q 'All heap blocks were freed' '$VG_LOG' || grep -qE 'definitely lost: 0 bytes' '$VG_LOG' || ! grep -q 'definitely lost:' '$VG_LOG'"
if ! grep -q 'ERROR SUMMARY: 0 errors' "$VG_LOG"; then
	grep -A12 -E 'Invalid|uninitialised|definitely lost in' "$VG_LOG" | head -60 | sed 's/^/#   /'
fi
summary
