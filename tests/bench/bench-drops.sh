#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The drop sensor's cost under a flood, run by hand (not part of the tests; figures in
# docs/performance.md, "The drop sensor under a flood"):
#
#     sudo tests/bench/bench-drops.sh [SECONDS]        # BENCH_SENDERS=2: sender processes
#
# In the e2e lab (tests/e2e/lib.sh: namespaces only, nothing leaves them), isolated with the lab
# policy, the LAN host floods cut UDP for SECONDS (default 20) with tests/bench/flood (sendmmsg,
# batches of 64 datagrams, BENCH_SENDERS processes):
#   1. while normal (no table hooked): the lab's own rate, for comparison;
#   2. one tuple (one destination and port): the sets' best case;
#   3. random hosts and ports, v4: the v4 set fills (16384 tuples), the rest is overflow;
#   4. the same, v4 and v6 at once, with the sets full;
# and for each prints: datagrams sent and counted by the kernel per second (the sensor's packets
# plus overflow), the agent's CPU time during the flood (utime + stime of all its threads, from
# /proc: its periodic reads of the sets every 10 s on a thread, and the calls below), its RSS
# before and after, and, during the flood, the slowest of 5 `status` and 5 `isolate` calls made
# while a `drops` call (a read of the sets) runs, and that `drops` call's own time.
# SECONDS of 20 or more let the agent's periodic read (every 10 s, spaced out when slow) happen.

. "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"

SECS=${1:-20}
SENDERS=${BENCH_SENDERS:-2}
FLOOD=${KS_FLOOD:-$(dirname "$KILLSWITCHD")/../tests/bench/flood}
[ -x "$FLOOD" ] || FLOOD=$KS_REPO/build/tests/bench/flood
[ -x "$FLOOD" ] || { echo "no $FLOOD: build with meson first" >&2; exit 1; }
ks_init
lab_create
write_lab_policy isolate
export KILLSWITCH_DEBUG=1        # the agent logs each read of the sets: how long, how many elements
agent_start || die "agent did not start"

cpu_ms() { awk -v t="$(getconf CLK_TCK)" '{ printf "%d", ($14 + $15) * 1000 / t }' "/proc/$AGENT_PID/stat"; }
# The kernel's count of cut packets from this side: the sensor's tuples plus its overflow.
counted() {
	ctl --json drops | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(t["packets"] for t in d["drops"]) + d["overflow"])'
}
ms_of() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N); echo $(((t1 - t0) / 1000000)); }

# latencies — during the flood: a `drops` (a read) in the background, 5 status and 5 isolate.
latencies() {
	local i s st=0 iso=0 drpid
	sleep 1
	ms_of ctl drops --top 1 >"$KS_TMP/drops.ms" &
	drpid=$!
	for ((i = 0; i < 5; i++)); do
		s=$(ms_of ctl status); [ "$s" -gt "$st" ] && st=$s
		s=$(ms_of ctl isolate --reason bench); [ "$s" -gt "$iso" ] && iso=$s
	done
	wait "$drpid"
	echo "$st $iso $(cat "$KS_TMP/drops.ms")"
}

# flood ADDR... — SENDERS processes per address for SECS seconds; prints the datagrams sent.
flood() {
	local a pids=() total=0 i=0 n
	for a in "$@"; do
		in_ns lan "$FLOOD" -j "$SENDERS" -t "$SECS" $FLOOD_ARGS "$a" >"$KS_TMP/flood.$i" &
		pids+=($!)
		i=$((i + 1))
	done
	wait "${pids[@]}"
	for ((n = 0; n < i; n++)); do
		total=$((total + $(cat "$KS_TMP/flood.$n")))
	done
	echo "$total"
}

run() { # LABEL ARGS FOR flood...
	local label=$1 cpu0 cpu1 rss0 rss1 c0 c1 sent lat
	shift
	rss0=$(rss_kib)
	c0=$(counted)
	cpu0=$(cpu_ms)
	flood "$@" >"$KS_TMP/sent" &
	local fpid=$!
	lat=$(latencies)
	wait "$fpid"
	sent=$(cat "$KS_TMP/sent")
	cpu1=$(cpu_ms)
	c1=$(counted)
	rss1=$(rss_kib)
	read -r st iso dr <<<"$lat"
	printf '%-32s sent %8d/s counted %8d/s  agent CPU %5d ms in %ss (%s %%)  RSS %d -> %d KiB  during it: status <= %d ms, isolate <= %d ms, drops %d ms\n' \
		"$label" $((sent / SECS)) $(((c1 - c0) / SECS)) $((cpu1 - cpu0)) "$SECS" \
		"$(awk -v c=$((cpu1 - cpu0)) -v s="$SECS" 'BEGIN { printf "%.2f", c / (s * 10) }')" "$rss0" "$rss1" "$st" "$iso" "$dr"
}

echo "# $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start; $SENDERS sender processes per address"
FLOOD_ARGS=--one
sent=$(flood 192.0.2.80)
printf '%-32s sent %8d/s  (no table hooked: the inet namespace drops them, no listener)\n' "normal, one tuple" $((sent / SECS))
ctl isolate --reason bench >/dev/null || die "isolate failed"
FLOOD_ARGS=--one run "isolated, one tuple" 192.0.2.80
ctl restore >/dev/null && ctl isolate --reason bench >/dev/null || die "isolate failed"
FLOOD_ARGS= run "isolated, random v4 (fills)" 192.0.2.1
FLOOD_ARGS= run "isolated, random v4+v6 (full)" 192.0.2.1 2001:db8:80::1
ctl --json status | python3 -c 'import json,sys; d=json.load(sys.stdin)["drops"]; print("%-32s tuples %d, overflow %d packets, %d reads" % ("sensor at the end", d["tuples"], d["overflow"], d["reads"]))'
echo "# load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
grep -o 'Drop sensor read: .*' "$KS_LOG" | tail -n 3 | sed 's/^/# /'
