#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The drop sensor's cost under a flood, run by hand (not part of the tests; figures in
# docs/performance.md, "The drop sensor"):
#
#     sudo tests/bench/bench-drops.sh [SECONDS]
#
# In the e2e lab (tests/e2e/lib.sh: namespaces only, nothing leaves them), isolated with the lab
# policy, the LAN host floods cut UDP for SECONDS (default 5) with several senders:
#   1. one tuple (one destination and port): the sets' best case;
#   2. random destinations and ports: the v4 set fills (16384 tuples), the rest is overflow;
# and for each prints: datagrams sent and counted by the kernel per second, the agent's CPU time
# during the flood (its periodic reads every 10 s and one `drops` call), its RSS before and after,
# and how long `killswitchctl drops --top 1` takes with the tuples in the sets (the agent's read).
# The same flood while normal (no table hooked) gives the lab's own packet rate for comparison.

. "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"

SECS=${1:-5}
SENDERS=${BENCH_SENDERS:-2}
ks_init
lab_create
write_lab_policy isolate
agent_start || die "agent did not start"

# flood MODE — SENDERS python senders for SECS seconds; prints the datagrams sent.
flood() {
	local i pids=() total=0 n
	for ((i = 0; i < SENDERS; i++)); do
		in_ns lan python3 -c '
import random, socket, sys, time
mode, secs = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
end, n = time.time() + secs, 0
one = ("192.0.2.80", 9999)
while time.time() < end:
    for i in range(1000):
        dst = one if mode == "one" else ("192.0.2.%d" % random.randint(1, 254), random.randint(1, 65535))
        try:
            s.sendto(b"x", dst)
            n += 1
        except BlockingIOError:
            pass
print(n)' "$1" "$SECS" >"$KS_TMP/flood.$i" &
		pids+=($!)
	done
	wait "${pids[@]}"
	for ((i = 0; i < SENDERS; i++)); do
		n=$(cat "$KS_TMP/flood.$i")
		total=$((total + n))
	done
	echo "$total"
}

cpu_ms() { awk -v t="$(getconf CLK_TCK)" '{ printf "%d", ($14 + $15) * 1000 / t }' "/proc/$AGENT_PID/stat"; }
kernel_dropped() { ctl --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["dropped"]["packets"])'; }

run() { # LABEL MODE
	local cpu0 cpu1 rss0 rss1 d0 d1 sent t0 t1 read_ms
	rss0=$(rss_kib)
	d0=$(kernel_dropped)
	cpu0=$(cpu_ms)
	sent=$(flood "$2")
	cpu1=$(cpu_ms)
	d1=$(kernel_dropped)
	t0=$(date +%s%N)
	ctl drops --top 1 >/dev/null
	t1=$(date +%s%N)
	read_ms=$(((t1 - t0) / 1000000))
	rss1=$(rss_kib)
	printf '%-34s sent %8d/s  counted %8d/s  agent CPU %5d ms in %ss (%s%%)  RSS %d -> %d KiB  drops read %d ms\n' \
		"$1" $((sent / SECS)) $(((d1 - d0) / SECS)) $((cpu1 - cpu0)) "$SECS" \
		"$(awk -v c=$((cpu1 - cpu0)) -v s="$SECS" 'BEGIN { printf "%.2f", c / (s * 10) }')" "$rss0" "$rss1" "$read_ms"
	ctl --json drops --top 1 | python3 -c '
import json, sys
d = json.load(sys.stdin)
print("%-34s %s" % ("", "tuples: top %s, overflow %d" % (d["drops"][0]["packets"] if d["drops"] else 0, d["overflow"])))'
}

sent=$(flood one)
printf '%-34s sent %8d/s  (normal: no table hooked, the lab host drops them in its routing)\n' \
	"normal, one destination" $((sent / SECS))
ctl isolate --reason bench >/dev/null || die "isolate failed"
run "isolated, one tuple" one
ctl restore >/dev/null && ctl isolate --reason bench >/dev/null || die "isolate failed"
run "isolated, random tuples (fills)" random
run "isolated, random tuples (full)" random
ctl --json status | python3 -c 'import json,sys; d=json.load(sys.stdin)["drops"]; print("%-34s tuples %d, overflow %d packets" % ("sensor at the end", d["tuples"], d["overflow"]))'
