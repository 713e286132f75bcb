# Sourced by the cross/ scripts: paths and the per-target table.
# shellcheck shell=bash

CROSS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$CROSS_DIR")
# Cross builds get their own target dir so they never rebuild the host's
# target/ that `cargo build` and `cargo test` use.
CROSS_TARGET_DIR=${HEFT_CROSS_TARGET_DIR:-$REPO_DIR/target/cross}
ALL_TARGETS="x86_64 aarch64 armv7 armv6 mipsel"

die() { echo "${0##*/}: $*" >&2; exit 1; }

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

# The binary cross/build makes for the resolved target.
binary_path() { echo "$CROSS_TARGET_DIR/$TRIPLE/tiny/heft"; }

# How to run zig: $HEFT_ZIG, zig on PATH, the PyPI package in cross/setup's
# venv, or in python3's site-packages.
find_zig() {
    if [ -n "${HEFT_ZIG:-}" ]; then
        echo "$HEFT_ZIG"
    elif command -v zig >/dev/null 2>&1; then
        command -v zig
    elif [ -x "${HEFT_ZIG_VENV:-$HOME/.local/share/heft/zig-venv}/bin/python3" ]; then
        "${HEFT_ZIG_VENV:-$HOME/.local/share/heft/zig-venv}/bin/python3" -c \
            'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))'
    else
        local d
        d=$(python3 -c 'import os, ziglang; print(os.path.dirname(ziglang.__file__))' 2>/dev/null) ||
            die "zig not found: run cross/setup (pip install ziglang)"
        [ -x "$d/zig" ] || die "the ziglang package has no zig binary at $d/zig"
        echo "$d/zig"
    fi
}
