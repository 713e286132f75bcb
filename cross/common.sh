# Sourced by the cross/ scripts: paths and the per-target table.
# shellcheck shell=bash

CROSS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$CROSS_DIR")
# Cross builds get their own target dir so they never rebuild the host's
# target/ that `cargo build` and `cargo test` use.
CROSS_TARGET_DIR=${HEFT_CROSS_TARGET_DIR:-$REPO_DIR/target/cross}
ALL_TARGETS="x86_64 aarch64 armv7 armv6 mipsel mips"

# The running script's name for messages, as typed from the repository's top.
ME=$0
case $ME in "$REPO_DIR"/*) ME=${ME#"$REPO_DIR"/} ;; ./*) ME=${ME#./} ;; esac

die() { echo "$ME: $*" >&2; exit 1; }

# resolve NAME: sets TRIPLE SHORT ZIG_TARGET ZIG_CPU QEMU QEMU_CPU HEFT_FLAGS from
# cross/targets, NAME being a Rust triple or a short name.
resolve() {
    local t s zt zc q qc hf
    while read -r t s zt zc q qc hf; do
        case $t in '' | '#'*) continue ;; esac
        if [ "$1" = "$t" ] || [ "$1" = "$s" ]; then
            TRIPLE=$t SHORT=$s ZIG_TARGET=$zt ZIG_CPU=$zc QEMU=$q QEMU_CPU=$qc HEFT_FLAGS=${hf:--}
            return 0
        fi
    done <"$CROSS_DIR/targets"
    die "unknown target '$1' (one of: $ALL_TARGETS, or their Rust triples in cross/targets)"
}

# The binary cross/build makes for the resolved target: with default features,
# or with `no-feedback` the one built by `cross/build --no-feedback`. Both are
# copies of cargo's output, so the two builds (which share std and cargo's
# output path) stay side by side.
binary_path() {
    case ${1:-feedback} in
        feedback) echo "$CROSS_TARGET_DIR/$TRIPLE/heft" ;;
        no-feedback) echo "$CROSS_TARGET_DIR/$TRIPLE/heft-no-feedback" ;;
        *) die "binary_path: unknown variant '$1'" ;;
    esac
}

ZIG_VENV=${HEFT_ZIG_VENV:-$HOME/.local/share/heft/zig-venv}

# Prints how to run zig: $HEFT_ZIG, zig on PATH, the PyPI package in
# cross/setup's venv, or in python3's site-packages. Returns 1 with a message
# on stderr (it never exits: callers test it under `if`).
find_zig() {
    local d
    if [ -n "${HEFT_ZIG:-}" ]; then
        [ -x "$HEFT_ZIG" ] || { echo "$ME: HEFT_ZIG=$HEFT_ZIG is not an executable" >&2; return 1; }
        echo "$HEFT_ZIG"
    elif command -v zig >/dev/null 2>&1; then
        command -v zig
    elif [ -x "$ZIG_VENV/bin/python3" ] &&
        d=$("$ZIG_VENV/bin/python3" -c 'import os, ziglang; print(os.path.dirname(ziglang.__file__))' 2>/dev/null) &&
        [ -x "$d/zig" ]; then
        echo "$d/zig"
    elif d=$(python3 -c 'import os, ziglang; print(os.path.dirname(ziglang.__file__))' 2>/dev/null) &&
        [ -x "$d/zig" ]; then
        echo "$d/zig"
    else
        echo "$ME: zig not found (looked at \$HEFT_ZIG, PATH, $ZIG_VENV and python3's ziglang): run cross/setup" >&2
        return 1
    fi
}

# apt_install PACKAGE...: installs Debian packages as root, running
# `apt-get update` once per run (HEFT_APT_UPDATED is passed on to the scripts
# this one starts). On failure, says which packages and shows apt's last lines.
apt_install() {
    [ $# -gt 0 ] || return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "$ME: $* missing; installing needs root: run as root, or: sudo apt-get install $*" >&2
        return 1
    fi
    local log
    log=$(mktemp "${TMPDIR:-/tmp}/heft-apt.XXXXXX")
    export DEBIAN_FRONTEND=noninteractive
    if [ -z "${HEFT_APT_UPDATED:-}" ]; then
        echo "$ME: apt-get update"
        if ! apt-get update -qq >"$log" 2>&1; then
            tail -n 20 "$log" >&2
            rm -f "$log"
            echo "$ME: apt-get update failed (see above): check the network and /etc/apt/sources.list, then rerun" >&2
            return 1
        fi
        export HEFT_APT_UPDATED=1
    fi
    echo "$ME: apt-get install $*"
    if ! apt-get install -y -qq --no-install-recommends "$@" >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        rm -f "$log"
        echo "$ME: apt-get install $* failed (see above): fix apt, or install them by hand, then rerun" >&2
        return 1
    fi
    rm -f "$log"
}
