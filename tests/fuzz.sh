#!/usr/bin/env bash
# Runs every cargo-fuzz target of tests/fuzz for a bounded time and reports, per
# target, the executions and the findings (crash, leak, timeout, oom inputs).
# Not part of the default test run.
#
# usage: tests/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  time per target (default 60, or $FUZZ_SECONDS)
#   TARGET   state, request, feedback_config, httpcheck (default: all)
# Environment: FUZZ_JOBS=N runs N fuzzing processes per target (default 1);
# FUZZ_KEEP_GOING=1 keeps fuzzing past a crash (libFuzzer's fork mode).
#
# Inputs that crashed are in tests/fuzz/artifacts/TARGET/; replay one with
#   cargo +nightly fuzz run --fuzz-dir tests/fuzz -a TARGET FILE
# and turn it into a test in tests/fuzz_regress.rs. The corpus that grows
# (tests/fuzz/corpus/TARGET) is kept between runs but not committed; the seeds
# (tests/fuzz/seeds/TARGET) are.
set -eu
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
if [ $# -gt 0 ] && [ "$1" -eq "$1" ] 2>/dev/null; then
    secs=$1
    shift
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(state request feedback_config httpcheck)
dir=tests/fuzz

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# -a: debug assertions and overflow checks, so an overflow is a finding too.
echo "== building the fuzz targets (nightly, address sanitizer, overflow checks)"
if ! cargo +nightly fuzz build --fuzz-dir "$dir" -a >"${TMPDIR:-/tmp}/heft-fuzz-build.log" 2>&1; then
    grep -v '^ *Compiling' "${TMPDIR:-/tmp}/heft-fuzz-build.log" >&2
    echo "the fuzz targets do not build (a library function they call may have changed)" >&2
    exit 2
fi

declare -A maxlen=([state]=4200 [request]=300 [feedback_config]=8300 [httpcheck]=2100)
declare -A dict=([state]=json [request]=http [feedback_config]=json [httpcheck]=http)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
summary=()
found=0
for t in "${targets[@]}"; do
    mkdir -p "$dir/corpus/$t" "$dir/artifacts/$t"
    touch "$logs/$t.start"
    extra=()
    [ "${FUZZ_KEEP_GOING:-0}" = 1 ] && extra+=(-fork="${FUZZ_JOBS:-1}" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    [ "${FUZZ_KEEP_GOING:-0}" != 1 ] && [ "${FUZZ_JOBS:-1}" -gt 1 ] && extra+=(-jobs="${FUZZ_JOBS}" -workers="${FUZZ_JOBS}")
    echo "== $t: ${secs} s"
    set +e
    cargo +nightly fuzz run --fuzz-dir "$dir" -a "$t" "$dir/corpus/$t" "$dir/seeds/$t" -- \
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
        grep -aE -A12 '^(==[0-9]+==ERROR|thread .* panicked)' "$logs/$t" | head -30 | sed 's/^/   | /'
        sed 's/^/   artifact: /' "$logs/$t.new"
    fi
    summary+=("$(printf '%-16s %8s s %12s execs %6s edges %6s corpus  %s finding(s)' "$t" "$secs" "$execs" "${cov:-?}" "$corpus" "$new")")
done
echo "== summary ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores)"
printf '%s\n' "${summary[@]}"
exit $found
