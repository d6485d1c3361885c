#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Build the libFuzzer harnesses and fuzz each target for a while.
#   tests/fuzz/run.sh [SECONDS] [TARGET...]   (default: 50 s each, every target built)
# Each target first replays its corpus (tests/fuzz/corpus/TARGET: seeds and the inputs of
# crashes fixed before, as regression tests), then fuzzes for SECONDS, two targets at a time.
# New interesting inputs go to a scratch corpus ($KS_FUZZ_WORK, default a temporary
# directory); a crash, leak or timeout leaves its input there as crash-*/leak-*/timeout-*
# and prints FAIL. Prints one PASS:/FAIL: line per target. Needs clang and libFuzzer
# (Debian: clang, libclang-rt-14-dev). KS_FUZZ_BUILD sets the build directory.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECONDS_EACH=${1:-50}
shift 2>/dev/null
BUILD=${KS_FUZZ_BUILD:-$ROOT/build-fuzz}
WORK=${KS_FUZZ_WORK:-$(mktemp -d /tmp/killswitch-fuzz.XXXXXX)}
JOBS=${KS_FUZZ_JOBS:-2}
mkdir -p "$WORK" || exit 1

if [ ! -f "$BUILD/build.ninja" ]; then
	CC=clang meson setup "$BUILD" "$ROOT" -Dfuzz=true -Dtests=disabled -Dman=disabled >"$WORK/setup.log" 2>&1 ||
		{ cat "$WORK/setup.log"; echo "FAIL: fuzz: meson setup (needs clang)"; exit 1; }
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	for d in "$ROOT"/tests/fuzz/corpus/*/; do
		t=$(basename "$d")
		# timespec and conf come with issue 4's sources: fuzz them once the build has them.
		grep -q "fuzz-$t" "$BUILD/build.ninja" && targets+=("$t")
	done
fi
names=()
for t in "${targets[@]}"; do names+=("tests/fuzz/fuzz-$t"); done
if ! meson compile -C "$BUILD" "${names[@]}" >"$WORK/build.log" 2>&1; then
	tail -30 "$WORK/build.log"
	echo "FAIL: fuzz: build"
	exit 1
fi

# fuzz_one TARGET — replay, then fuzz; prints its verdict into $WORK/TARGET.result.
fuzz_one() {
	local t=$1 exe=$BUILD/tests/fuzz/fuzz-$1 seeds=$ROOT/tests/fuzz/corpus/$1 dir=$WORK/$1 log rc
	local opts=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
	mkdir -p "$dir/corpus" "$dir/artifacts"
	log=$dir/replay.log
	if ! "$exe" "${opts[@]}" -runs=0 "$seeds" >"$log" 2>&1; then
		echo "FAIL: fuzz $t: a seed or regression input fails (tests/fuzz/corpus/$t; see $log)" >"$dir/result"
		grep -E "ERROR|SUMMARY|Running: " "$log" | head -5 >>"$dir/result"
		return
	fi
	log=$dir/fuzz.log
	"$exe" "${opts[@]}" -max_total_time="$SECONDS_EACH" -artifact_prefix="$dir/artifacts/" \
		"$dir/corpus" "$seeds" >"$log" 2>&1
	rc=$?
	if [ "$rc" -eq 0 ]; then
		echo "PASS: fuzz $t: $(awk '/stat::number_of_executed_units/ { print $2 }' "$log") runs in ${SECONDS_EACH}s," \
			"no crash, leak or timeout" >"$dir/result"
	else
		{
			echo "FAIL: fuzz $t: exit $rc; input kept in $dir/artifacts/ (log $log)"
			grep -E "ERROR|SUMMARY|^artifact_prefix|Test unit written" "$log" | head -6
		} >"$dir/result"
	fi
}

running=0
for t in "${targets[@]}"; do
	fuzz_one "$t" &
	running=$((running + 1))
	if [ "$running" -ge "$JOBS" ]; then
		wait -n
		running=$((running - 1))
	fi
done
wait
failed=0
for t in "${targets[@]}"; do
	cat "$WORK/$t/result" 2>/dev/null || { echo "FAIL: fuzz $t: no result"; failed=1; }
	grep -q '^FAIL' "$WORK/$t/result" 2>/dev/null && failed=1
done
echo "# fuzz work directory: $WORK"
exit "$failed"
