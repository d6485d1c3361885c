#!/bin/bash
# The whole test suite, as CI runs it: installs dependencies, builds with -Werror,
# runs the unit tests and the end-to-end network-namespace tests, then does it all
# again with AddressSanitizer and UndefinedBehaviorSanitizer; static analysis (cppcheck,
# clang-tidy) and the libFuzzer harnesses, each fuzzed for KS_FUZZ_SECONDS (default 45), run
# beside the first pass's end-to-end tests and are counted at the end. Needs root.
# The last line is "N passed, N failed". Set KS_QUICK=1 to skip the sanitizer pass and fuzz
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
        local build=$1 log=$LOG_DIR/unit-$(basename "$1").log counts ok fail
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

# End-to-end scripts print one "PASS: ..." or "FAIL: ..." line per check.
run_e2e() {
        local build=$1 t log ok fail rc
        for t in tests/e2e/test-*.sh; do
                log=$LOG_DIR/$(basename "$t" .sh)-$(basename "$build").log
                KILLSWITCHD=$build/agent/killswitchd KILLSWITCHCTL=$build/ctl/killswitchctl \
                        timeout 600 bash "$t" >"$log" 2>&1
                rc=$?
                ok=$(grep -c '^PASS: ' "$log")
                fail=$(grep -c '^FAIL: ' "$log")
                if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
                        fail=1
                        echo "FAIL: $t exited with status $rc"
                fi
                grep '^FAIL: ' "$log"
                [ "$fail" -gt 0 ] && { echo "--- tail of $log ---"; tail -30 "$log"; }
                echo "$t ($(basename "$build")): $ok passed, $fail failed"
                passed=$((passed + ok))
                failed=$((failed + fail))
        done
}

# A script that prints "PASS: ..."/"FAIL: ..." lines: count them; a non-zero exit without a FAIL
# line counts as one failure. record NAME CMD... runs it into $LOG_DIR/NAME.log (exit status and
# seconds in NAME.rc), count_checks NAME counts it; run_checks NAME CMD... does both.
record() {
        local name=$1 start=$SECONDS rc
        shift
        "$@" >"$LOG_DIR/$name.log" 2>&1
        rc=$?
        echo "$rc $((SECONDS - start))" >"$LOG_DIR/$name.rc"
}
count_checks() {
        local name=$1 log=$LOG_DIR/$1.log ok fail rc secs
        read -r rc secs <"$LOG_DIR/$name.rc" 2>/dev/null || { rc=1; secs=?; }
        ok=$(grep -c '^PASS: ' "$log")
        fail=$(grep -c '^FAIL: ' "$log")
        if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
                fail=1
                echo "FAIL: $name exited with status $rc"
        fi
        grep -E '^(PASS|FAIL): ' "$log"
        [ "$fail" -gt 0 ] && { echo "--- tail of $log ---"; tail -30 "$log"; }
        echo "$name: $ok passed, $fail failed ($secs s)"
        passed=$((passed + ok))
        failed=$((failed + fail))
}
run_checks() {
        record "$@"
        count_checks "$1"
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
# mostly wait (on timeouts, schedules, probes), so they run in the background beside the first
# pass's end-to-end tests, which must pass with the machine's other CPU busy anyway. Their lines
# come at the end.
background_checks() {
        record static-analysis tests/static-analysis.sh "$ROOT/build"
        unset ASAN_OPTIONS UBSAN_OPTIONS       # the harnesses set their own
        export KS_FUZZ_BUILD=$ROOT/build-fuzz KS_FUZZ_WORK=$LOG_DIR/fuzz
        record fuzz tests/fuzz/run.sh "$fuzz_seconds"
}
fuzz_seconds=${KS_FUZZ_SECONDS:-45}
[ -n "${KS_QUICK:-}" ] && fuzz_seconds=${KS_FUZZ_SECONDS:-10}

checks_pid=
if run_pass "$ROOT/build"; then
        background_checks &
        checks_pid=$!
        run_e2e "$ROOT/build"
fi
if [ -z "${KS_QUICK:-}" ]; then
        export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
        run_pass "$ROOT/build-asan" -Db_sanitize=address,undefined -Db_lundef=false &&
                run_e2e "$ROOT/build-asan"
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
