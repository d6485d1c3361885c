#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The bash completion of killswitchctl, from its verb table: every verb, every
# option, which options take an argument and which verbs take a policy come
# from `killswitchctl --dump-verbs`, so that the completion cannot fall behind.
#   completion/generate.sh KILLSWITCHCTL TEMPLATE > killswitchctl
set -eu
ctl=$1
template=$2

dump=$("$ctl" --dump-verbs)
verbs= global= before_verb= args= policy_verbs= verb_opts=
while IFS=$'\t' read -r name _method _access arg _synopsis options; do
	words=
	for o in $options; do
		[ "$o" = - ] && continue
		words+=" ${o%=}"
		[ "${o%=}" != "$o" ] && args+=" ${o%=}"
	done
	case $name in
	'*') global=${words# }; continue ;;
	-) before_verb=${words# }; continue ;;
	esac
	verbs+=" $name"
	[ "$arg" = policy ] && policy_verbs+="${policy_verbs:+ | }$name"
	[ -n "$words" ] && verb_opts+=$'\t'"$name) echo '${words# }' ;;"$'\n'
done <<<"$dump"
[ -n "$verbs" ] && [ -n "$global" ] && [ -n "$policy_verbs" ] || { echo "generate.sh: no verbs from $ctl --dump-verbs" >&2; exit 1; }

text=$(<"$template")
text=${text//@VERBS@/${verbs# }}
text=${text//@GLOBAL_OPTIONS@/$global}
text=${text//@BEFORE_VERB_OPTIONS@/$before_verb}
text=${text//@ARGUMENT_OPTIONS@/$(printf '%s\n' $args | sort -u | tr '\n' ' ')}
text=${text//@POLICY_VERBS@/$policy_verbs}
text=${text//@VERB_OPTIONS@/${verb_opts%$'\n'}}
printf '%s\n' "$text"
