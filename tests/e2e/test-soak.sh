#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Soak test (issue 6): 1,000 isolate/restore cycles alternating two policies, over one control
# connection, with real probes every 100 cycles. Afterwards the agent's RSS and fd count equal
# those before (RSS within KS_SOAK_RSS_KIB, default 512 KiB; fds exactly), and the kernel holds
# the same table: `nft list table inet killswitch` is identical, nothing else was left behind.
# The RSS slack is the allocator's: glibc keeps up to 128 KiB free at the top of each heap before
# it gives pages back, and the main heap and the threads' arenas moved by 12-120 KiB each way in
# runs beside a busy CPU; a leak of 0.5 KiB per cycle still fails (LeakSanitizer, in the ASan
# pass, finds smaller ones that are lost rather than kept).
# KS_SOAK_CYCLES changes the number of cycles. Run as root: tests/e2e/test-soak.sh

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ks_init
[ -x "$KILLSWITCHD" ] || die "no agent at $KILLSWITCHD"
[ -x "$KILLSWITCHCTL" ] || die "no client at $KILLSWITCHCTL"
CYCLES=${KS_SOAK_CYCLES:-1000}
RSS_SLACK=${KS_SOAK_RSS_KIB:-512}
BUDGET=${KS_SOAK_BUDGET:-300}      # seconds for all cycles; a slower agent fails

lab_create
write_lab_policy isolate
write_lab_policy mailonly --no-phone
agent_start || die "killswitchd did not start"

# The table without its counter values (restore zeroes them, probes count).
table_shape() { n_gw nft list table inet killswitch | sed -E 's/packets [0-9]+ bytes [0-9]+/packets - bytes -/'; }
kernel_objects() { n_gw nft list ruleset | grep -cE '^\s*(table|chain|set|counter|rule|type|elements)|jump|drop|accept'; }

# cycles FROM TO — isolate with isolate (even) or mailonly (odd), then restore, on one connection.
cycles() {
	python3 - "$KS_SOCK" "$1" "$2" <<'PY'
import json, socket, sys, time
path, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
buf = b""
def call(method, params):
    global buf
    s.sendall(json.dumps({"method": "io.killswitch." + method, "parameters": params}).encode() + b"\0")
    while b"\0" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("agent closed the connection")
        buf += chunk
    msg, buf = buf.split(b"\0", 1)
    reply = json.loads(msg)
    if "error" in reply:
        sys.exit("%s: %s" % (method, reply))
    return reply["parameters"]
start = time.monotonic()
for i in range(first, last):
    policy = "isolate" if i % 2 == 0 else "mailonly"
    st = call("Isolate", {"policy": policy, "reason": "soak %d" % i})
    if st["state"] != "isolated" or st["policy"] != policy:
        sys.exit("cycle %d: isolate returned %s" % (i, st))
    st = call("Restore", {"reason": "soak %d" % i})
    if st["state"] != "normal":
        sys.exit("cycle %d: restore returned %s" % (i, st))
print("%d cycles in %.2fs" % (last - first, time.monotonic() - start))
PY
}

# Warm up (first allocations, lazily opened sockets, and one rotation of the history, which
# happens at 1,000 entries = 500 cycles and leaves the allocator's high-water mark), then measure.
cycles 0 520 >/dev/null || die "warm-up cycles failed"
sleep 0.2
FDS0=$(fds)
RSS0=$(rss_kib)
ARENAS0=$(ks_agent_asan || arenas)     # ASan's allocator has none (its regions look like them)
SHAPE0=$(table_shape)
OBJ0=$(kernel_objects)
note "before: $FDS0 fds, $RSS0 KiB RSS, $OBJ0 ruleset lines, $(grep -c . <<<"$ARENAS0") malloc arenas besides the main one"

start=$(date +%s)
done_cycles=0
ok=1
while [ "$done_cycles" -lt "$CYCLES" ]; do
	step=$((CYCLES - done_cycles < 100 ? CYCLES - done_cycles : 100))
	if ! out=$(cycles "$done_cycles" $((done_cycles + step)) 2>&1); then
		fail "cycles $done_cycles-$((done_cycles + step)): $out"
		ok=0
		break
	fi
	done_cycles=$((done_cycles + step))
	# Probes in between: isolated with one of the two policies, then restored.
	if [ $(((done_cycles / 100) % 2)) -eq 0 ]; then p=isolate sip=+; else p=mailonly sip=-; fi
	ctl isolate "$p" --reason "soak probe" >/dev/null || fail "isolate $p after $done_cycles cycles"
	check_many <<EOF2
- after $done_cycles cycles, isolated ($p): web v4 from lan is cut  | tcp_echo lan 192.0.2.80 80
+ after $done_cycles cycles, isolated ($p): mail tcp/25 is kept     | tcp_echo lan 203.0.113.25 25
$sip after $done_cycles cycles, isolated ($p): SIP udp/5060 as the policy says | udp_echo lan 203.0.113.5 5060
EOF2
	ctl restore --reason "soak probe" >/dev/null || fail "restore after $done_cycles cycles"
	check "after $done_cycles cycles, restored: web v4 from lan reachable" tcp_echo lan 192.0.2.80 80
	if [ $(($(date +%s) - start)) -gt "$BUDGET" ]; then
		fail "soak: only $done_cycles of $CYCLES cycles in ${BUDGET}s"
		ok=0
		break
	fi
done
elapsed=$(($(date +%s) - start))
[ "$ok" = 1 ] && pass "$CYCLES isolate/restore cycles, two policies alternating, in ${elapsed}s"

sleep 0.2
FDS1=$(fds)
RSS1=$(rss_kib)
# Arenas that threads got meanwhile hold memory that is not a leak: not counted, only noted
# (there are at most 8 per CPU; a leak would grow the main one or those there before).
NEW_ARENAS=0 NEW_KIB=0
while read -r start kib; do
	case $'\n'$ARENAS0$'\n' in *$'\n'"$start "*) continue ;; esac
	NEW_ARENAS=$((NEW_ARENAS + 1)) NEW_KIB=$((NEW_KIB + kib))
done < <(ks_agent_asan || arenas)
note "after: $FDS1 fds, $RSS1 KiB RSS ($((RSS1 - RSS0)) KiB more; $NEW_ARENAS malloc arenas new, $NEW_KIB KiB of it)"
RSS1=$((RSS1 - NEW_KIB))
check "fd count after the soak equals before ($FDS0)" test "$FDS1" -eq "$FDS0"
if ks_agent_asan; then
	note "RSS not compared: AddressSanitizer's quarantine keeps freed memory (LeakSanitizer checks leaks at exit)"
elif [ "$RSS1" -le $((RSS0 + RSS_SLACK)) ]; then
	pass "RSS after the soak, new malloc arenas aside, within ${RSS_SLACK} KiB of before ($RSS0 -> $RSS1 KiB)"
else
	fail "RSS grew by $((RSS1 - RSS0)) KiB over the soak, new malloc arenas aside ($RSS0 -> $RSS1 KiB)"
fi
SHAPE1=$(table_shape)
if [ "$SHAPE1" = "$SHAPE0" ]; then
	pass "table inet killswitch is the same as before the soak (no rule, set or chain leaked)"
else
	fail "table inet killswitch differs after the soak"
	diff <(printf '%s\n' "$SHAPE0") <(printf '%s\n' "$SHAPE1") | head -20 | sed 's/^/#   /'
fi
check "the gateway's whole ruleset has as many objects as before ($OBJ0 lines)" test "$(kernel_objects)" -eq "$OBJ0"
check "no other table appeared in the gateway (inet killswitch, netdev killswitch_links)" \
	test "$(n_gw nft list tables | sort | tr '\n' ' ')" = "table inet killswitch table netdev killswitch_links "
check "status after the soak: normal" status_is 'd["state"] == "normal"'
check "the history still reads" ctl history -n 5
agent_stop TERM
check "the agent exits cleanly after the soak (status ${AGENT_EXIT:-?})" test "${AGENT_EXIT:-1}" -eq 0
summary
