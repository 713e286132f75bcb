#!/usr/bin/env bash
# Runs every cargo-fuzz target of tests/fuzz for a bounded time and reports, per
# target, the executions and the findings (crash, leak, timeout, oom inputs).
# tests/ci.sh runs it briefly (20 s per target), so that a target that no
# longer builds, or that finds a crash, fails CI. Fuzz for longer by hand:
#
#   tests/fuzz.sh 600                      10 minutes per target
#   FUZZ_JOBS=2 tests/fuzz.sh 3600 state   an hour on the state file, 2 processes
#
# usage: tests/fuzz.sh [SECONDS] [TARGET...]
#        tests/fuzz.sh --install   only install cargo-fuzz when it is missing
#   SECONDS  time per target (default 60, or $FUZZ_SECONDS)
#   TARGET   a target of `cargo fuzz list --fuzz-dir tests/fuzz` (default: all)
# Environment: FUZZ_JOBS=N runs N fuzzing processes per target (default 1);
# FUZZ_KEEP_GOING=1 keeps fuzzing past a crash (libFuzzer's fork mode).
#
# Needs cargo-fuzz (installed here when missing: `cargo install cargo-fuzz
# --locked`, a few minutes, once) and a nightly toolchain (`cargo +nightly`);
# without nightly it uses the default toolchain with RUSTC_BOOTSTRAP=1, which
# cargo-fuzz's sanitizer flags also accept.
#
# Inputs that crashed are in tests/fuzz/artifacts/TARGET/; replay one with
#   cargo +nightly fuzz run --fuzz-dir tests/fuzz -a TARGET FILE
# and turn it into a test in tests/fuzz_regress.rs. The corpus that grows
# (tests/fuzz/corpus/TARGET) is kept between runs but not committed; the seeds
# (tests/fuzz/seeds/TARGET) are.
set -eu
cd "$(dirname "$0")/.."
dir=tests/fuzz
me=tests/fuzz.sh

install_cargo_fuzz() {
    cargo fuzz --version >/dev/null 2>&1 && return 0
    echo "$me: cargo install cargo-fuzz --locked (once; a few minutes)"
    if ! cargo install cargo-fuzz --locked; then
        echo "$me: installing cargo-fuzz failed (see above): check that crates.io is reachable, then rerun, or run 'cargo install cargo-fuzz --locked' by hand" >&2
        return 1
    fi
}

if [ "${1:-}" = --install ]; then
    install_cargo_fuzz
    exit
fi

secs=${FUZZ_SECONDS:-60}
if [ $# -gt 0 ] && [ "$1" -eq "$1" ] 2>/dev/null; then
    secs=$1
    shift
fi
install_cargo_fuzz || exit 2

# cargo-fuzz needs unstable rustc flags (sanitizers, coverage passes).
if rustup run nightly rustc --version >/dev/null 2>&1; then
    fuzz=(cargo +nightly fuzz)
    toolchain=nightly
else
    echo "$me: no nightly toolchain (rustup toolchain install nightly): using the default one with RUSTC_BOOTSTRAP=1"
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
    toolchain="$(rustc --version | cut -d' ' -f1-2), RUSTC_BOOTSTRAP=1"
fi

targets=("$@")
build_only=()
[ ${#targets[@]} -eq 1 ] && build_only=("${targets[0]}")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <("${fuzz[@]}" list --fuzz-dir "$dir")
    [ ${#targets[@]} -gt 0 ] || { echo "$me: 'cargo fuzz list --fuzz-dir $dir' found no target" >&2; exit 2; }
fi

# -a: debug assertions and overflow checks, so an overflow is a finding too.
echo "== building the fuzz targets ($toolchain, address sanitizer, overflow checks)"
log=$(mktemp "${TMPDIR:-/tmp}/heft-fuzz-build.XXXXXX")
if ! "${fuzz[@]}" build --fuzz-dir "$dir" -a "${build_only[@]}" >"$log" 2>&1; then
    grep -v '^ *Compiling' "$log" >&2
    rm -f "$log"
    echo "$me: the fuzz targets do not build (see above; a library function they call may have changed)" >&2
    exit 2
fi
rm -f "$log"

# Per target: the largest input worth trying, and the dictionary.
declare -A maxlen=([state]=4200 [request]=300 [feedback_config]=8300 [httpcheck]=2100)
declare -A dict=([state]=json [request]=http [feedback_config]=json [httpcheck]=http)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
summary=()
found=0
for t in "${targets[@]}"; do
    mkdir -p "$dir/corpus/$t" "$dir/artifacts/$t"
    seeds=()
    [ -d "$dir/seeds/$t" ] && seeds=("$dir/seeds/$t")
    touch "$logs/$t.start"
    extra=()
    [ "${FUZZ_KEEP_GOING:-0}" = 1 ] && extra+=(-fork="${FUZZ_JOBS:-1}" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    [ "${FUZZ_KEEP_GOING:-0}" != 1 ] && [ "${FUZZ_JOBS:-1}" -gt 1 ] && extra+=(-jobs="${FUZZ_JOBS}" -workers="${FUZZ_JOBS}")
    echo "== $t: ${secs} s"
    set +e
    "${fuzz[@]}" run --fuzz-dir "$dir" -a "$t" "$dir/corpus/$t" "${seeds[@]}" -- \
        -max_total_time="$secs" -max_len="${maxlen[$t]:-4096}" -dict="$dir/dicts/${dict[$t]:-json}.dict" \
        -timeout=10 -print_final_stats=1 "${extra[@]}" >"$logs/$t" 2>&1
    rc=$?
    set -e
    # The number of runs: the final stats, or the last status line (fork/jobs mode).
    execs=$(awk -F': *' '/^stat::number_of_executed_units/ { n += $2 } END { print n + 0 }' "$logs/$t")
    if [ "$execs" = 0 ]; then
        execs=$(grep -aoE '^#[0-9]+' "$logs/$t" | tail -1 | tr -d '#')
        execs=${execs:-0}
    fi
    cov=$(grep -aoE 'cov: [0-9]+' "$logs/$t" | tail -1 | cut -d' ' -f2)
    corpus=$(find "$dir/corpus/$t" -type f | wc -l)
    find "$dir/artifacts/$t" -type f -newer "$logs/$t.start" >"$logs/$t.new"
    new=$(wc -l <"$logs/$t.new")
    if [ "$rc" -ne 0 ] || [ "$new" -gt 0 ]; then
        found=1
        echo "   FINDING (exit $rc, $new new artifact(s)):"
        if grep -qaE '^(==[0-9]+==ERROR|thread .* panicked)' "$logs/$t"; then
            grep -aE -A12 '^(==[0-9]+==ERROR|thread .* panicked)' "$logs/$t" | head -30 | sed 's/^/   | /'
        else
            tail -n 20 "$logs/$t" | sed 's/^/   | /'
        fi
        sed 's/^/   artifact: /' "$logs/$t.new"
    fi
    summary+=("$(printf '%-16s %8s s %12s execs %6s edges %6s corpus  %s finding(s)' "$t" "$secs" "$execs" "${cov:-?}" "$corpus" "$new")")
done
echo "== summary ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores)"
printf '%s\n' "${summary[@]}"
[ "$found" -eq 0 ] || echo "$me: FINDINGS (see above): replay with: ${fuzz[*]} run --fuzz-dir $dir -a TARGET ARTIFACT" >&2
exit $found
