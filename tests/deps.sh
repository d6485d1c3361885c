# shellcheck shell=bash
# Debian packages killswitch needs to build, test and demo. Sourced by tests/run.sh, tests/demo.sh,
# tests/bench/bench.sh and tests/e2e/lib.sh.

# The tests run these packages' tools: Debian's directories come first in PATH. A version
# manager's shim earlier in it is left behind: pyenv's python3 is a shell script that took
# ~0.5 s of CPU per start here (Debian's: 0.04 s; the suite starts python3 ~1,500 times) and
# does not see Debian's python3 modules.
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
KS_PACKAGES=(meson ninja-build pkg-config gcc libc6-dev libnftnl-dev libmnl-dev libsystemd-dev
             libjansson-dev libcmocka-dev nftables socat iproute2 iputils-ping python3 scdoc util-linux
             procps
             # issue 6: fuzzers (clang with libFuzzer), valgrind, static analysis
             clang libclang-rt-14-dev valgrind cppcheck clang-tidy
             # issue 13: the bash completion, built from the verb table, is tested (tests/unit/test-verbs.sh)
             bash-completion
             # issue 17: the Varlink reference implementation (Go) checks the interface
             golang-go golang-github-varlink-go-dev
             # issue 17: the package booted under systemd in a container (tests/e2e/test-units.sh),
             # the documented playbook run (tests/e2e/test-docs.sh)
             systemd-container mmdebstrap ansible-core
             # issue 12: a real DHCP server (the binary, no system service), client, ND tools
             dnsmasq-base udhcpc ndisc6)

# Install what is missing (apt-get update only when something is).
ks_install_deps() {
        local missing=() p
        for p in "${KS_PACKAGES[@]}"; do
                dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
        done
        [ ${#missing[@]} -eq 0 ] && return 0
        echo "Installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Configure (once) and build in $1 with extra meson options after it.
ks_build() {
        local dir=$1
        shift
        if [ ! -f "$dir/build.ninja" ]; then
                meson setup "$dir" -Dwerror=true "$@" >/dev/null || return 1
        fi
        meson compile -C "$dir" >/dev/null || meson compile -C "$dir"
}
