#!/usr/bin/env bash
# tests/ci.sh: the project's whole test run, from a clean clone on a fresh
# machine of this kind (Debian bookworm, root, rustup with stable and nightly).
# It installs what is missing, then runs, in order:
#   1. install: a check of free disk space, apt packages (haproxy, busybox,
#      curl, strace, prometheus for promtool), cross/setup (qemu-user-static,
#      zig, rust-src) and cargo-fuzz;
#   2. cargo test (host build, default features);
#   3. cargo test --no-default-features (every test that does not need
#      `feedback`, against a build without it);
#   4. cross/ci: static builds of every target, size-report, qemu smoke tests;
#   5. the whole integration suite against the static x86_64 binary;
#   6. the agent, signal, persistence and stress tests against each other
#      target's static binary under qemu-user, with the CPU from cross/targets;
#   7. tests/packages.sh: a release with a throwaway key, its checksums and
#      signature, the .deb installed and purged, the .ipk, APKBUILD and the
#      ansible role;
#   8. every fuzz target for 20 s (FUZZ_SECONDS), so that a target that stops
#      building or finds a crash fails CI.
# Steps 2 to 8 all run even when one fails, so one run shows every problem;
# the exit code is non-zero if any failed. Each step prints a timestamped
# `== step` line; the end prints each step's time and the total.
#
#   tests/ci.sh                  everything
#   tests/ci.sh --install-only   step 1 only (set up a machine for the tests)
#
# Cross builds go to $HEFT_CROSS_TARGET_DIR (default target/cross).
# On a fresh machine with 2 cores a run takes about 20 minutes: installing
# about 5 (cargo-fuzz's build most of it), cross/ci about 7 (std for six
# targets), the qemu agent tests about a minute per target, fuzzing about 3.
set -u
cd "$(dirname "$0")/.."
. cross/common.sh

install_only=
case ${1:-} in
    --install-only) install_only=1 ;;
    '') ;;
    *) die "usage: tests/ci.sh [--install-only]" ;;
esac
[ $# -le 1 ] || die "usage: tests/ci.sh [--install-only]"

t0=$SECONDS
times=()
failed=()
step_name= step_t0=
step() {
    step_end
    step_name=$1 step_t0=$SECONDS
    echo "== $(date -u '+%H:%M:%S') $1"
}
step_end() {
    [ -n "$step_name" ] && times+=("$(printf '%6d s  %s' $((SECONDS - step_t0)) "$step_name")")
    step_name=
}
# run NAME COMMAND...: one step; a failure is recorded, and the run goes on.
run() {
    local name=$1
    shift
    step "$name"
    if ! "$@"; then
        echo "== FAILED: $name" >&2
        failed+=("$name")
    fi
}
summary() {
    step_end
    echo "== $(date -u '+%H:%M:%S') times"
    printf '%s\n' "${times[@]}"
    printf '%6d s  total\n' $((SECONDS - t0))
}

# --- 1. install -------------------------------------------------------------
# A whole run writes about 2.5 GB under target/ (host and cross builds, std
# for six targets, the fuzz builds). On a full disk every step fails with
# ENOSPC, so say so once, first.
disk_space() {
    local dir=${CARGO_TARGET_DIR:-target} kb
    mkdir -p "$dir" "$CROSS_TARGET_DIR" || return 1
    for dir in "$dir" "$CROSS_TARGET_DIR"; do
        kb=$(df -Pk "$dir" | awk 'NR == 2 { print $4 }')
        if [ "${kb:-0}" -lt $((3 * 1024 * 1024)) ]; then
            echo "tests/ci.sh: only $((${kb:-0} / 1024)) MiB free for $dir; a whole run needs about 3 GiB there: free some space (cargo clean in old checkouts) or set CARGO_TARGET_DIR and HEFT_CROSS_TARGET_DIR to a larger disk" >&2
            return 1
        fi
    done
}
install() {
    local need=() cmd pkg
    disk_space || return 1
    for cmd in haproxy:haproxy busybox:busybox curl:curl strace:strace promtool:prometheus python3:python3; do
        command -v "${cmd%%:*}" >/dev/null 2>&1 || need+=("${cmd#*:}")
    done
    if [ ${#need[@]} -gt 0 ]; then
        apt_install "${need[@]}" || return 1
        for cmd in haproxy busybox curl strace promtool; do
            command -v "$cmd" >/dev/null 2>&1 ||
                { echo "tests/ci.sh: $cmd is still missing after apt-get install ${need[*]}: install it by hand" >&2; return 1; }
        done
    fi
    cross/setup || return 1
    tests/fuzz.sh --install || return 1
}
step "install"
if ! install; then
    echo "== FAILED: install (see the message above; nothing else was run)" >&2
    summary
    exit 1
fi
if [ -n "$install_only" ]; then
    summary
    echo "tests/ci.sh: installed what the tests need"
    exit 0
fi

# --- 2 to 4 -------------------------------------------------------------------
run "cargo test" cargo test --no-fail-fast
run "cargo test --no-default-features" cargo test --no-fail-fast --no-default-features
run "cross/ci (static builds, size-report, qemu smoke tests)" cross/ci

# --- 5. the whole suite against the static x86_64 binary ------------------------
static_suite() {
    local bin
    bin=$(cross/build -q x86_64) || return 1
    HEFT_BIN=$bin cargo test --no-fail-fast --tests
}
run "cargo test --tests with HEFT_BIN=static x86_64" static_suite

# --- 6. agent tests under qemu ------------------------------------------------
qemu_suite() {
    local bin runner
    resolve "$1"
    bin=$(cross/build -q "$SHORT") || return 1
    runner=$QEMU
    [ "$QEMU_CPU" = - ] || runner="$runner -cpu $QEMU_CPU"
    echo "HEFT_BIN=$bin HEFT_RUNNER='$runner'"
    HEFT_BIN=$bin HEFT_RUNNER=$runner \
        cargo test --no-fail-fast --test replies --test signals --test persistence --test stress
}
for t in aarch64 armv7 armv6 mipsel mips; do
    run "agent tests under qemu: $t" qemu_suite "$t"
done

# --- 7. release artifacts and packages -----------------------------------------
run "release, packages and the ansible role (tests/packages.sh)" tests/packages.sh

# --- 8. fuzzing -------------------------------------------------------------
run "fuzz targets, ${FUZZ_SECONDS:-20} s each" tests/fuzz.sh "${FUZZ_SECONDS:-20}"

summary
if [ ${#failed[@]} -gt 0 ]; then
    echo "tests/ci.sh: FAILED:" >&2
    printf '  %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "tests/ci.sh: all steps passed"
