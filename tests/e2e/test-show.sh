#!/bin/bash
# SPDX-License-Identifier: MIT
#
# `killswitchctl show POLICY` prints what the kernel holds once POLICY is in force: for every
# shipped policy (policies/*.policy) and every example (policies/examples/*.policy), alone in the
# agent's policy directory, isolate with it and compare `show` with `nft list table inet
# killswitch` read back from the kernel in the lab's gateway namespace.
#
# Normalised, because they legitimately differ:
#   - counter values: `show` prints "packets 0 bytes 0"; the kernel's counters count what the
#     lab's traffic did since the table was made;
#   - the elements of the drop sensor's sets (P/drops_*): the kernel adds them from dropped
#     packets, as it counts (lib.sh without_drops_elements);
#   - the table's ownership: the agent creates the table owned by its netlink socket
#     (--protect=owner, docs/design.md), which nft prints as "flags owner" and a "# progname
#     killswitchd" comment. It belongs to the agent's socket, not to the policy: `show` prints
#     what `nft -f` can load (tests/bench feeds it to nft), and an owned table made by nft -f
#     would vanish when nft exits;
#   - the order of a set's elements: a set has none. `show` prints the uplinks in file order and
#     the addresses sorted; the kernel lists a hash set in its hash order (backup-site's
#     "wan0 wan1 lte0" reads back as "lte0, wan0, wan1"). Each `elements = { ... }` is compared
#     as a sorted list, on one line;
#   - nothing else: no handles are listed (nft prints them only with -a); chains, rules, set
#     types and flags, counters' names and the table's objects in their order are compared as
#     printed (compile-text.c prints as `nft list` does).
# A difference is shown as a unified diff under the FAIL line.
#
# Run as root: tests/e2e/test-show.sh   (KILLSWITCHD, KILLSWITCHCTL: see lib.sh)

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ks_init
[ -x "$KILLSWITCHD" ] || die "no agent at $KILLSWITCHD"
[ -x "$KILLSWITCHCTL" ] || die "no client at $KILLSWITCHCTL"

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
lab_create
agent_start || die "killswitchd did not start"

normalise() {
	python3 -c '
import re, sys
t = re.sub(r"packets [0-9]+ bytes [0-9]+", "packets 0 bytes 0", sys.stdin.read())
def elements(m):
    return "elements = { " + ", ".join(sorted(e.strip() for e in m.group(1).split(","))) + " }"
sys.stdout.write(re.sub(r"elements = \{([^}]*)\}", elements, t))'
}
# The kernel's listing without the ownership (a "flags owner" line, the "# progname" comment of the
# table's line) and who built the table (its comment, the digest of its rules: docs/design.md), and
# the blank line after them.
without_owner() {
	sed -E -e 's/^(table inet killswitch \{) # progname [^ ]+$/\1/' \
		-e '/^\t(flags (owner|persist|owner,persist)|comment "killswitchd [^"]*")$/d' |
		sed -E '/^table inet killswitch \{$/{N;s/\n$//;}'
}

# same_text LABEL A B — A and B are equal; else the diff.
same_text() {
	diff -u --label "killswitchctl show" --label "nft list table inet killswitch" <(printf '%s\n' "$2") \
		<(printf '%s\n' "$3")
}

policies=("$REPO"/policies/*.policy "$REPO"/policies/examples/*.policy)
[ "${#policies[@]}" -ge 5 ] || die "expected the shipped policy and the examples, found ${#policies[@]}"
for file in "${policies[@]}"; do
	name=$(basename "$file" .policy)
	rm -f "$KS_CONF"/policies/*.policy
	cp "$file" "$KS_CONF/policies/"
	check_exit 0 "$name: reload with $name alone" ctl reload
	show=$(ctl show "$name" | normalise)
	check_exit 0 "$name: isolate returns 0" ctl isolate "$name" --reason "e2e: show"
	check "$name: its rules are in force" ks_table_active
	kernel=$(n_gw nft list table inet killswitch | without_drops_elements | normalise | without_owner)
	check "$name: show prints what the kernel holds (nft list table inet killswitch)" \
		same_text "$name" "$show" "$kernel"
	check_exit 0 "$name: restore returns 0" ctl restore
done

check "the host's own ruleset is unchanged" host_ruleset_intact
[ "$KS_FAILED" -eq 0 ] || agent_log_tail
summary
