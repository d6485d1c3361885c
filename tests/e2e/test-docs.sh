#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The docs run (issue 17): every command shown in a code block of README.md and
# docs/admin-guide.md, and the ansible-playbook lines of docs/fleet.md and the header of
# docs/ansible/isolate.yml, is run against the lab, in the order shown, and must succeed;
# killswitchctl talks to the lab's agent, killswitchd --check reads the lab's policies. A command
# that cannot run in a lab is listed below with the reason (and, where there is one, the test
# that covers it instead); a command this test does not know is a FAIL, so new docs cannot
# drift unnoticed. The README's meson line is checked for where the built agent reads its
# policies: where the README then edits them. The playbook runs with a local connection, its
# killswitchctl being the lab's, and the reason the agent records must be the one quoted.
# Run as root: tests/e2e/test-docs.sh   (KILLSWITCHD, KILLSWITCHCTL: see lib.sh)

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ks_init
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[ -x "$KILLSWITCHD" ] || die "no agent at $KILLSWITCHD"
[ -x "$KILLSWITCHCTL" ] || die "no client at $KILLSWITCHCTL"
# What this checks is the docs, the same in both passes; the agent's paths they take are each a
# feature's own test, run under the sanitizers too.
ks_agent_asan && skip "sanitizer pass: the docs are checked in the plain pass"

lab_create
for p in isolate mail-only other-policy web-proxy; do write_lab_policy "$p"; done
agent_start || die "the agent did not start"

# The commands, one per line: FILE:LINE <TAB> the command as shown.
python3 - "$REPO" >"$KS_TMP/commands" <<'PY'
import re, shutil, sys
root = sys.argv[1]
# Commands of the docs that need not be installed where this runs; any other command on PATH counts too.
KNOWN = {"killswitchctl", "killswitchd", "meson", "systemctl", "journalctl", "systemd-sysusers", "sudoedit",
         "watch", "ansible", "ansible-playbook", "nft", "usermod", "apt", "dpkg-buildpackage"}
def blocks(path):
    """Lines of indented (4+ spaces after a blank line) and fenced code blocks."""
    lines = open(path, encoding="utf-8").read().split("\n")
    fenced = False
    in_indented = False
    for n, line in enumerate(lines, 1):
        s = line.strip()
        if s.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            yield n, s
            continue
        prev_blank = n == 1 or lines[n - 2].strip() == ""
        if re.match(r"^ {4,}\S", line) and (in_indented or prev_blank):
            in_indented = True
            yield n, s
        elif s:
            in_indented = False
def commands(path, only=None):
    for n, s in blocks(path):
        if not s or s.startswith("#") or s.startswith("["):
            continue
        words = s.split()
        first = words[1] if words[0] == "sudo" and len(words) > 1 else words[0]
        if "=" in first or not re.match(r"^[A-Za-z0-9_./-]+$", first):
            continue   # a policy or unit file line, not a command
        if first not in KNOWN and not first.startswith("tests/") and not shutil.which(first):
            continue   # a diagram or a listing, not a command
        if only and first != only:
            continue
        yield "%s:%d\t%s" % (path[len(root) + 1:], n, s)
for path in ("README.md", "docs/admin-guide.md"):
    for c in commands(root + "/" + path):
        print(c)
for c in commands(root + "/docs/fleet.md", "ansible-playbook"):
    print(c)
for n, line in enumerate(open(root + "/docs/ansible/isolate.yml"), 1):
    m = re.match(r"^#\s+(ansible-playbook .*)$", line.rstrip("\n"))
    if m:
        print("docs/ansible/isolate.yml:%d\t%s" % (n, m.group(1)))
PY
note "$(wc -l <"$KS_TMP/commands") commands in the docs"

# The lab's killswitchctl, for the playbook (which runs "killswitchctl" from PATH).
mkdir -p "$KS_TMP/bin"
printf '#!/bin/sh\nexec %q --socket %q "$@"\n' "$KILLSWITCHCTL" "$KS_SOCK" >"$KS_TMP/bin/killswitchctl"
chmod 755 "$KS_TMP/bin/killswitchctl"
printf '[gateways]\nlab ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n' >"$KS_TMP/inventory"

# run_doc WHERE COMMAND — run one command of the docs in the lab, or say why not.
run_doc() {
	local where=$1 line=$2 cmd out rc
	cmd=${line#sudo }
	cmd=$(printf '%s' "$cmd" | sed -E 's/[[:space:]]+#[^"'\'']*$//')   # a trailing comment
	case $cmd in
	"tests/demo.sh" | "tests/run.sh")
		note "not run here: $where: $line (the demo and the suite run themselves; tests/run.sh runs this test)"
		return ;;
	"meson setup "*)
		readme_meson "$where" "$cmd"
		return ;;
	"meson install"* | "meson compile"*)
		note "not run here: $where: $line (installs into this machine; test-systemd.sh runs meson install --destdir)"
		return ;;
	sudoedit* | "watch "*)
		note "not run here: $where: $line (interactive; what it shows is run below or above)"
		return ;;
	systemctl* | systemd-sysusers* | journalctl*)
		note "not run here: $where: $line (needs systemd as PID 1 and the journal; test-units.sh boots the package under systemd and checks these)"
		return ;;
	"killswitchctl --hosts-file "* | "killswitchctl -H "*)
		note "not run here: $where: $line (a fleet over SSH; test-fleet.sh runs -H against sshd in namespaces)"
		return ;;
	"killswitchd --check"*)
		out=$(eval "\"\$KILLSWITCHD\" --config-dir \"\$KS_CONF\" ${cmd#killswitchd}" 2>&1) ;;
	killswitchctl*)
		# In the test's directory: a documented "> FILE" must not land in the checkout.
		out=$(cd "$KS_TMP" && eval "ctl ${cmd#killswitchctl}" 2>&1) ;;
	ansible-playbook*)
		ansible_doc "$where" "$cmd"
		return ;;
	*)
		fail "$where: the docs show '$line': run it here or say why not (tests/e2e/test-docs.sh)"
		return ;;
	esac
	rc=$?
	if [ "$rc" -eq 0 ]; then
		pass "$where: $line"
	else
		fail "$where: $line (exit $rc)"
		printf '%s\n' "$out" | tail -5 | sed 's/^/#   | /'
	fi
}

# The README's build line: configure a scratch build as shown; the agent it builds must read the
# policies the README then edits.
readme_meson() {
	local where=$1 cmd=$2 setup dir edited built
	setup=${cmd%%&&*}
	dir=$KS_TMP/meson-doc
	# shellcheck disable=SC2086 # the options as the README gives them
	if ! (cd "$REPO" && meson setup "$dir" ${setup#meson setup build} >"$KS_TMP/meson-doc.log" 2>&1); then
		fail "$where: $setup"
		tail -5 "$KS_TMP/meson-doc.log" | sed 's/^/#   | /'
		return
	fi
	built=$(sed -n 's/^#define CONFIG_DIR "\(.*\)"$/\1/p' "$dir/config.h")
	edited=$(sed -n 's#^ *sudoedit \(/[^ ]*\)/policies/.*#\1#p' "$REPO/README.md" | head -1)
	check "$where: $setup: the agent reads $built, the README edits ${edited:-nothing}" test "$built" = "$edited"
	note "not run here: meson compile of $dir (the suite builds the same sources)"
}

# A playbook line: the local host as the only gateway, killswitchctl the lab's; then the agent's
# history must hold the reason exactly as quoted on the command line.
ansible_doc() {
	local where=$1 cmd=$2 want got
	if ! command -v ansible-playbook >/dev/null; then
		note "not run here: $where: $cmd (no ansible-playbook; tests/deps.sh installs ansible-core)"
		return
	fi
	want=$(printf '%s' "$cmd" | sed -n 's/.*reason=\\\{0,1\}"\([^"]*\)\\\{0,1\}".*/\1/p')
	cmd=$(printf '%s' "$cmd" | sed -e "s#-i inventory#-i $KS_TMP/inventory#" \
		-e "s# docs/ansible/isolate.yml# $REPO/docs/ansible/isolate.yml#" -e "s# isolate.yml# $REPO/docs/ansible/isolate.yml#")
	if ! (export PATH="$KS_TMP/bin:$PATH" ANSIBLE_LOCAL_TEMP=$KS_TMP/ansible ANSIBLE_HOME=$KS_TMP/ansible \
		ANSIBLE_NOCOLOR=1; eval "$cmd -e ansible_become=false") >"$KS_TMP/ansible.log" 2>&1; then
		fail "$where: $2"
		grep -E 'fatal|ERROR|msg' "$KS_TMP/ansible.log" | head -5 | sed 's/^/#   | /'
		return
	fi
	got=$(ctl --json history -n 1 | python3 -c 'import json, sys; d = json.load(sys.stdin); print((d["entries"] if isinstance(d, dict) else d)[-1]["reason"])')
	check "$where: $2 (the agent recorded the whole reason: '$got')" test "$got" = "$want"
}

while IFS=$'\t' read -r -u 3 where line; do
	run_doc "$where" "$line" </dev/null
done 3<"$KS_TMP/commands"

check_not "no doc says a feature is 'not available yet'" grep -rn "not available yet" "$REPO/README.md" "$REPO/docs"
check "the agent still runs" agent_alive
summary
