#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Build the Debian package from a copy of the work tree (tracked and new files, not build
# directories), so that the tree stays clean: tests/build-deb.sh [OUTDIR]
# Installs the build dependencies if missing (root). Prints the path of the .deb.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/build-deb}
DEPS=(dpkg-dev debhelper fakeroot meson ninja-build pkg-config scdoc libnftnl-dev libmnl-dev
      libsystemd-dev libjansson-dev libcmocka-dev)

missing=()
for p in "${DEPS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "Installing: ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

rm -rf "$OUT"
mkdir -p "$OUT/src"
cd "$ROOT"
if git rev-parse --git-dir >/dev/null 2>&1; then
	git ls-files -z -co --exclude-standard | xargs -0 cp -a --parents -t "$OUT/src"
else
	tar -C "$ROOT" --exclude='./build*' --exclude=./.git -cf - . | tar -C "$OUT/src" -xf -
fi
cd "$OUT/src"
dpkg-buildpackage -us -uc -b >"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log" >&2; exit 1; }
ls "$OUT"/killswitch_*.deb
