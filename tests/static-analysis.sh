#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Static analysis of agent/ and ctl/: no circle of includes between modules (include-cycles.py),
# cppcheck, then clang-tidy (the clang static analyzer and
# the bugprone checks) over the compile commands of a meson build.
#   tests/static-analysis.sh [BUILD]   (default: build/, configured if needed)
# Prints one PASS:/FAIL: line per tool and every finding; exits non-zero on any finding.
#
# What is left out, and why:
# - Leaks ("memleak", "resourceLeak", clang's "Potential leak"): neither tool understands
#   __attribute__((cleanup)) (cleanup.h), so every _cleanup_free_ variable is a false leak.
#   Leaks are checked at run time instead: LeakSanitizer in the ASan pass of every test, the
#   fuzzers, and valgrind (tests/e2e/test-valgrind.sh).
# - clang-analyzer-valist.Uninitialized: false positives of clang 14 on every va_start.
# - Checks of style rather than bugs: implicit widening, easily swappable parameters,
#   reserved identifiers (_cleanup_), narrowing, assignment in if, macro parentheses, branch
#   clones, insecureAPI (memcpy, strcpy after a length check).
# - bugprone-sizeof-expression's "sizeof(A*)": clang-tidy 14 flags calloc(n, sizeof(*list)) for an
#   array of pointers (the option that silences it came later).
# - Known false positives, by file: cppcheck 2.10's returnDanglingLifetime on a call through
#   the method table (methods.c).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
cd "$ROOT" || exit 1
failed=0
out=$(mktemp -d /tmp/killswitch-analysis.XXXXXX)

if [ ! -f "$BUILD/compile_commands.json" ]; then
	meson setup "$BUILD" >"$out/setup.log" 2>&1 || { cat "$out/setup.log"; echo "FAIL: static analysis: meson setup"; exit 1; }
fi
# config.h and friends must exist for the analysis to see what the compiler sees.
meson compile -C "$BUILD" >"$out/build.log" 2>&1 || { tail -20 "$out/build.log"; echo "FAIL: static analysis: build"; exit 1; }

if tests/include-cycles.py agent agent/shared ctl >"$out/cycles.log" 2>&1; then
	echo "PASS: no circle of includes between the modules of agent/, agent/shared/, ctl/"
else
	grep '^not ok' "$out/cycles.log"
	echo "FAIL: a circle of includes (the modules must form layers: see docs/design.md)"
	failed=1
fi

if cppcheck --quiet --enable=warning,performance,portability --std=c11 --inline-suppr --error-exitcode=1 \
	-I agent -I agent/shared -I "$BUILD" --library=tests/cppcheck-jansson.cfg \
	--suppress=missingIncludeSystem --suppress=memleak --suppress=resourceLeak \
	--suppress=returnDanglingLifetime:agent/methods.c \
	agent ctl >"$out/cppcheck.log" 2>&1; then
	echo "PASS: cppcheck agent/ ctl/: no findings"
else
	cat "$out/cppcheck.log"
	echo "FAIL: cppcheck agent/ ctl/: $(grep -c '\[[A-Za-z]*\]$' "$out/cppcheck.log") findings"
	failed=1
fi

checks='-*,clang-analyzer-*,-clang-analyzer-security.insecureAPI.*,-clang-analyzer-valist.Uninitialized'
checks+=',bugprone-*,-bugprone-easily-swappable-parameters,-bugprone-reserved-identifier'
checks+=',-bugprone-narrowing-conversions,-bugprone-assignment-in-if-condition,-bugprone-macro-parentheses'
checks+=',-bugprone-branch-clone,-bugprone-implicit-widening-of-multiplication-result'
sources=$(ls agent/*.c agent/shared/*.c ctl/*.c)
# Two at a time (CI has two cores); each file's findings in its own log.
# shellcheck disable=SC2016 # expanded by the inner shell
printf '%s\n' $sources | xargs -P 2 -I{} sh -c \
	'clang-tidy -p "$1" --quiet --checks="$2" "$3" >"$4/tidy.$(basename "$3").log" 2>&1' \
	tidy "$BUILD" "$checks" {} "$out"
# Findings are "FILE:LINE:COL: warning|error: ... [check]"; leaks are left out (see above).
cat "$out"/tidy.*.log | grep -E '^[^ ].*:[0-9]+:[0-9]+: (warning|error): .*\[[a-z.,-]+\]$' |
	grep -v -e 'Potential leak of memory pointed to by' -e "suspicious usage of 'sizeof(A\*)'; pointer to aggregate" | sed "s|^.*\.\./||; s|^$ROOT/||" | sort -u >"$out/tidy.findings"
if [ -s "$out/tidy.findings" ]; then
	cat "$out/tidy.findings"
	echo "FAIL: clang-tidy agent/ ctl/: $(wc -l <"$out/tidy.findings") findings (logs in $out)"
	failed=1
else
	echo "PASS: clang-tidy agent/ ctl/ (clang static analyzer, bugprone): no findings"
fi
[ "$failed" -eq 0 ] && rm -rf "$out"
exit "$failed"
