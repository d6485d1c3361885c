#!/bin/bash
# The whole test suite, as CI runs it: installs dependencies, builds with -Werror and again
# with AddressSanitizer and UndefinedBehaviorSanitizer, runs the unit tests of both builds, then
# the end-to-end network-namespace tests against both builds, KS_E2E_JOBS (default 3) scripts at a
# time; static analysis (cppcheck, clang-tidy) and the libFuzzer harnesses, each fuzzed for
# KS_FUZZ_SECONDS (default 20), run beside them and are counted at the end. Needs root.
# The last line is "N passed, N failed". Set KS_QUICK=1 to skip the sanitizer build and fuzz
# for 10 s only.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
. tests/deps.sh

if [ "$(id -u)" -ne 0 ]; then
        echo "tests/run.sh needs root (network namespaces, nftables): sudo tests/run.sh" >&2
        exit 2
fi
ks_install_deps || { echo "Could not install the dependencies" >&2; exit 1; }

passed=0
failed=0
LOG_DIR=$(mktemp -d /tmp/killswitch-tests.XXXXXX)

# Unit tests through meson. They speak TAP: every cmocka test counts.
run_unit() {
        local build=$1 log counts ok fail
        log=$LOG_DIR/unit-$(basename "$1").log
        meson test -C "$build" --print-errorlogs >"$log" 2>&1
        counts=$(python3 - "$build/meson-logs/testlog.json" <<'PY'
import json, re, sys
ok = fail = 0
for line in open(sys.argv[1]):
    t = json.loads(line)
    out = t.get("stdout") or ""
    good = len(re.findall(r"^ok ", out, re.M))
    bad = len(re.findall(r"^not ok ", out, re.M))
    if t["result"] != "OK" and bad == 0:
        bad = 1
    # A TAP test prints nothing but TAP: a stray line (meson: "Unknown TAP output lines") counts as a failure.
    if re.search(r"^(1\.\.[0-9]+|ok |not ok )", out, re.M):
        stray = [l for l in out.splitlines() if l and not re.match(r"(ok |not ok |#|1\.\.[0-9]+$|TAP version )", l)]
        if stray:
            print("not ok - %s prints a line that is not TAP: %s" % (t["name"], stray[0]))
            bad += 1
    ok += good
    fail += bad
print(ok, fail)
PY
)
        grep '^not ok - ' <<<"$counts"
        counts=$(tail -n 1 <<<"$counts")
        read -r ok fail <<<"${counts:-0 1}"
        [ "$fail" -gt 0 ] && grep -E "^not ok|FAIL|ERROR|TIMEOUT" "$log" | head -40
        echo "unit tests ($(basename "$build")): $ok passed, $fail failed"
        passed=$((passed + ok))
        failed=$((failed + fail))
}

# A script that prints "PASS: ..."/"FAIL: ..." lines: count them; a non-zero exit without a FAIL
# line counts as one failure. record NAME CMD... runs it into $LOG_DIR/NAME.log (exit status,
# seconds and the CPU seconds of it and its children in NAME.rc), count_checks NAME [--failures]
# counts it (and shows its PASS and FAIL lines, or only the FAIL ones); run_checks NAME CMD...
# does both.
record() {
        local name=$1 start=$SECONDS rc cpu TIMEFORMAT='%U %S'
        shift
        { time "$@" >"$LOG_DIR/$name.log" 2>&1; } 2>"$LOG_DIR/$name.time"
        rc=$?
        cpu=$(awk '{ printf "%.0f", $1 + $2 }' "$LOG_DIR/$name.time")
        echo "$rc $((SECONDS - start)) ${cpu:-?}" >"$LOG_DIR/$name.rc"
}
count_checks() {
        local name=$1 log=$LOG_DIR/$1.log ok fail rc secs cpu
        local shown='^(PASS|FAIL): '
        [ "${2:-}" = --failures ] && shown='^FAIL: '
        read -r rc secs cpu <"$LOG_DIR/$name.rc" 2>/dev/null || { rc=1; secs="?"; }
        ok=$(grep -c '^PASS: ' "$log")
        fail=$(grep -c '^FAIL: ' "$log")
        if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
                fail=1
                echo "FAIL: $name exited with status $rc"
        fi
        grep -E "$shown" "$log"
        [ "$fail" -gt 0 ] && { echo "--- tail of $log ---"; tail -30 "$log"; }
        echo "$name: $ok passed, $fail failed ($secs s, ${cpu:-?} s of CPU)"
        passed=$((passed + ok))
        failed=$((failed + fail))
}
run_checks() {
        record "$@"
        count_checks "$1"
}

# End-to-end scripts print one "PASS: ..." or "FAIL: ..." line per check. Each builds its own lab
# (namespaces, temporary directories and sockets named after its PID), and most of their time is
# spent waiting (timeouts, schedules, probes), so KS_E2E_JOBS (default 3) run at once: every script
# against every build given, the slowest first. Each is counted as it ends; only FAIL lines are
# shown, the whole output is in $LOG_DIR/SCRIPT-BUILD.log.
E2E_SLOW="robust systemd abuse incident units schedule drops fleet exact-upkeep policy-v2 soak responsive tamper"
e2e_scripts() {
        local s t
        for s in $E2E_SLOW; do [ -f "tests/e2e/test-$s.sh" ] && echo "tests/e2e/test-$s.sh"; done
        for t in tests/e2e/test-*.sh; do
                s=$(basename "$t" .sh)
                [[ " $E2E_SLOW " == *" ${s#test-} "* ]] || echo "$t"
        done
}
e2e_one() {
        local t=$1 build=$2
        KILLSWITCHD=$build/agent/killswitchd KILLSWITCHCTL=$build/ctl/killswitchctl \
                record "$(basename "$t" .sh)-$(basename "$build")" timeout 600 bash "$t"
}
run_e2e() {
        local jobs=${KS_E2E_JOBS:-3} t build pid done_pid
        declare -A running=()
        for t in $(e2e_scripts); do
                for build in "$@"; do
                        while [ ${#running[@]} -ge "$jobs" ]; do
                                wait -n -p done_pid "${!running[@]}"
                                count_checks "${running[$done_pid]}" --failures
                                unset "running[$done_pid]"
                        done
                        e2e_one "$t" "$build" &
                        running[$!]="$(basename "$t" .sh)-$(basename "$build")"
                done
        done
        for pid in "${!running[@]}"; do
                wait "$pid"
                count_checks "${running[$pid]}" --failures
        done
}

run_pass() {
        local build=$1
        shift
        echo "== build $(basename "$build") $*"
        if ! ks_build "$build" "$@"; then
                echo "FAIL: build $(basename "$build")"
                failed=$((failed + 1))
                return 1
        fi
        run_unit "$build"
}

# Static analysis and the fuzzers keep both CPUs busy for a few minutes while the end-to-end tests
# mostly wait (on timeouts, schedules, probes), so they run in the background beside the
# end-to-end tests, which must pass with the machine's other CPU busy anyway. Their lines come at
# the end.
background_checks() {
        record static-analysis tests/static-analysis.sh "$ROOT/build"
        unset ASAN_OPTIONS UBSAN_OPTIONS       # the harnesses set their own
        export KS_FUZZ_BUILD=$ROOT/build-fuzz KS_FUZZ_WORK=$LOG_DIR/fuzz
        record fuzz tests/fuzz/run.sh "$fuzz_seconds"
}
fuzz_seconds=${KS_FUZZ_SECONDS:-20}
[ -n "${KS_QUICK:-}" ] && fuzz_seconds=${KS_FUZZ_SECONDS:-10}

# Both builds first, then every end-to-end script against both, with static analysis and the
# fuzzers beside them.
builds=()
run_pass "$ROOT/build" && builds+=("$ROOT/build")
if [ -z "${KS_QUICK:-}" ]; then
        export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
        run_pass "$ROOT/build-asan" -Db_sanitize=address,undefined -Db_lundef=false && builds+=("$ROOT/build-asan")
fi
checks_pid=
if [ "${builds[0]:-}" = "$ROOT/build" ]; then  # static analysis uses the plain build
        background_checks &
        checks_pid=$!
fi
if [ ${#builds[@]} -gt 0 ]; then
        echo "== end-to-end tests: $(basename -a "${builds[@]}" | paste -sd ' '), ${KS_E2E_JOBS:-3} at a time"
        run_e2e "${builds[@]}"
fi
if [ -n "$checks_pid" ]; then
        wait "$checks_pid"
        echo "== static analysis"
        count_checks static-analysis
        echo "== fuzzing"
        count_checks fuzz
fi
echo "logs: $LOG_DIR"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
