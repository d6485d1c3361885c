#!/bin/bash
# SPDX-License-Identifier: MIT
#
# killswitchctl's verb table (ctl/killswitchctl.c) against what is written
# beside it: the man page's synopsis of every verb and its PERMISSIONS, the
# --help of every verb, and the bash completion built from the table (every
# verb, every option, policy names after options with arguments). TAP output.
#   tests/unit/test-verbs.sh KILLSWITCHCTL COMPLETION MANPAGE.scd
set -u
ctl=$1
completion=$2
man=$3
n=0
failed=0

ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=1; echo "not ok $n - $1"; [ -n "${2:-}" ] && printf '# %s\n' "$2"; }
check() { # DESCRIPTION EXPECTED GOT
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "expected '$2', got '$3'"; fi
}

dump=$("$ctl" --dump-verbs) || { echo "Bail out! $ctl --dump-verbs failed"; exit 1; }
if [ ! -f /usr/share/bash-completion/bash_completion ]; then
	echo "Bail out! bash-completion is not installed (tests/deps.sh installs it)"
	exit 1
fi

# The candidates bash offers for the last of WORDS, sorted, on one line.
complete_words() {
	PATH="$fake_bin:$PATH" bash -c '
		. /usr/share/bash-completion/bash_completion
		. "$1"; shift
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
		_killswitchctl killswitchctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
		printf "%s\n" "${COMPREPLY[@]}"' complete "$completion" "$@" | sort | tr '\n' ' ' | sed 's/ $//'
}
# The completion asks `killswitchctl policies --no-legend` for policy names: a stand-in answers.
fake_bin=$(mktemp -d)
trap 'rm -rf "$fake_bin"' EXIT
printf '#!/bin/sh\nprintf "alpha  yes  A\\nbeta   no   B\\n"\n' >"$fake_bin/killswitchctl"
chmod +x "$fake_bin/killswitchctl"

# "*isolate* [_POLICY_] [*--for* _DURATION_ | *--until* _TIME_]" -> "isolate [POLICY] [--for DURATION|--until TIME]"
man_synopsis() {
	grep -E "^\*$1\*( |$)" "$man" | head -1 | sed 's/[*_]//g; s/ | /|/g; s/ *$//'
}

verbs=() anyone=() admin=()
while IFS=$'\t' read -r name method access arg synopsis options; do
	case $name in '*' | -) continue ;; esac
	verbs+=("$name")
	case $access in anyone) anyone+=("$name") ;; admin) admin+=("$name") ;; esac
	want=$name
	[ "$synopsis" != - ] && want+=" $synopsis"
	check "man page synopsis of $name" "$want" "$(man_synopsis "$name")"
	check "$name: method io.killswitch.*" "io.killswitch." "${method%"${method#io.killswitch.}"}"

	help=$("$ctl" "$name" --help)
	check "$name --help: synopsis" "killswitchctl [OPTIONS...] $want" "$(head -1 <<<"$help")"
	opts=()
	for o in $options; do [ "$o" != - ] && opts+=("${o%=}"); done
	missing=
	for o in "${opts[@]}"; do
		grep -qE "^ *(-[a-zA-Z] )?$o( |$)" <<<"$help" || missing+=" $o"
		[[ " $(complete_words killswitchctl "$name" "${o%"${o#-?}"}") " == *" $o "* ]] || missing+=" completion:$o"
	done
	check "$name: --help and completion offer every option" "" "$missing"
	# An option shared by verbs explains itself per verb ("isolate: ...; restore: ..."): only this verb's part.
	check "$name --help: no other verb's meaning of an option" "" \
		"$(sed -n '/^Options:/,$p' <<<"$help" | grep -oE "(^|[ ;])(isolate|restore|report|drops): " | sort -u | tr -d '\n')"

	check "completion: verb $name" "$name" "$(complete_words killswitchctl "$name" | tr ' ' '\n' | grep -x "$name")"
	if [ "$arg" = policy ]; then
		check "completion: $name offers policy names" "alpha beta" "$(complete_words killswitchctl "$name" "")"
		for o in "${opts[@]}"; do
			[[ $options == *" $o="* ]] || continue
			check "completion: $name $o VALUE offers policy names" "alpha beta" \
				"$(complete_words killswitchctl "$name" "$o" 1h "")"
			check "completion: $name $o offers no policy for its value" "" \
				"$(complete_words killswitchctl "$name" "$o" "")"
		done
	else
		check "completion: $name takes no argument" "" "$(complete_words killswitchctl "$name" "")"
	fi
done <<<"$dump"

# Every verb of the man page is in the table.
for v in $(sed -n '/^# VERBS/,/^# /p' "$man" | sed -n 's/^\*\([a-z-]*\)\*.*/\1/p'); do
	[[ " ${verbs[*]} " == *" $v "* ]] && ok "man page verb $v is in the table" || not_ok "man page verb $v is in the table"
done

# PERMISSIONS: "*status*, *policies*, ... are open to any local user ...".
perm=$(sed -n '/^# PERMISSIONS/,/^# /p' "$man" | tr '\n' ' ')
open_words=$(sed 's/are open to any.*//' <<<"$perm" | grep -o '\*[a-z]*\*' | tr -d '*' | sort | tr '\n' ' ')
admin_words=$(sed 's/.*are open to any[^.]*\.//; s/need root.*//' <<<"$perm" | grep -o '\*[a-z]*\*' | tr -d '*' |
	sort | tr '\n' ' ')
check "man page PERMISSIONS: open verbs" "$(printf '%s\n' "${anyone[@]}" | sort | tr '\n' ' ')" "$open_words"
check "man page PERMISSIONS: verbs for root or the group" "$(printf '%s\n' "${admin[@]}" | sort | tr '\n' ' ')" "$admin_words"

# --help names every verb; the completion offers every verb and global option.
help=$("$ctl" --help)
missing=
for v in "${verbs[@]}"; do grep -qE "^  $v( |$)" <<<"$help" || missing+=" $v"; done
check "--help lists every verb" "" "$missing"
check "completion: every verb" "$(printf '%s\n' "${verbs[@]}" | sort | tr '\n' ' ' | sed 's/ $//')" \
	"$(complete_words killswitchctl "")"
global=$(awk -F'\t' '$1 == "*" || $1 == "-" { print $6 }' <<<"$dump" | tr ' ' '\n' | sed 's/=$//' | grep . | sort -u |
	tr '\n' ' ')
got=$(complete_words killswitchctl - | tr ' ' '\n' | sort -u | tr '\n' ' ')
check "completion: every option before the verb" "$global" "$got"
check "completion: --socket FILE isolate --for 2h offers policies" "alpha beta" \
	"$(complete_words killswitchctl --socket /run/x.sock isolate --for 2h "")"

echo "1..$n"
exit "$failed"
