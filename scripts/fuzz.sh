#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS_PER_TARGET seconds (default 60), two at a
# time (FUZZ_JOBS to change), each seeded with its committed corpus fuzz/seeds/<target>/ and
# growing its working corpus in fuzz/corpus/<target>/ (not committed). Crashes land in
# fuzz/artifacts/<target>/; copy one into fuzz/seeds/<target>/ with the fix so `cargo test`
# replays it. Prints per target the executions, the wall time and the result.
#
# libFuzzer needs nightly compiler flags: with a stable toolchain RUSTC_BOOTSTRAP=1 unlocks
# them, which this script sets. Needs cargo-fuzz (`cargo install cargo-fuzz`).
#
#   scripts/fuzz.sh            # 60 s per target
#   scripts/fuzz.sh 300        # 5 min per target
#   scripts/fuzz.sh 60 mqtt_channel qos_engine   # only these targets
set -euo pipefail

secs=${1:-60}
shift || true
jobs=${FUZZ_JOBS:-2}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --help >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 2
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

logs=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-fuzz.XXXXXX")
echo "building ${#targets[@]} targets (logs in $logs)"
build() {
    if [ $# -gt 0 ]; then
        for t in "$@"; do cargo fuzz build --fuzz-dir fuzz "$t" || return 1; done
    else
        cargo fuzz build --fuzz-dir fuzz
    fi
}
# All at once when running all (one build), else each named target.
if [ "$#" -gt 0 ]; then build "${targets[@]}"; else build; fi >"$logs/build.log" 2>&1 || {
    tail -30 "$logs/build.log" >&2
    exit 2
}

run_one() {
    local t=$1 secs=$2 logs=$3 bin=$4
    mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t"
    local start end rc=0
    start=$(date +%s)
    # The binary built above, run directly: `cargo fuzz run` would rebuild first, and a
    # rebuild mid-run (sources edited meanwhile) would eat into the target's time.
    mkdir -p "fuzz/artifacts/$t"
    "$bin/$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -artifact_prefix="fuzz/artifacts/$t/" \
        -max_total_time="$secs" -timeout=20 -rss_limit_mb=3072 -print_final_stats=1 \
        >"$logs/$t.log" 2>&1 || rc=$?
    end=$(date +%s)
    local execs
    execs=$(grep -a 'stat::number_of_executed_units' "$logs/$t.log" | awk '{print $2}' | tail -1)
    [ -n "$execs" ] || execs=$(grep -aoE '^Done [0-9]+ runs' "$logs/$t.log" | awk '{print $2}' | tail -1)
    local result=ok
    [ "$rc" -eq 0 ] || result="FAILED (exit $rc, see $logs/$t.log and fuzz/artifacts/$t/)"
    printf '%-20s %12s execs %6ss  %s\n' "$t" "${execs:-?}" "$((end - start))" "$result" >"$logs/$t.result"
    cat "$logs/$t.result"
}
export -f run_one

start=$(date +%s)
bin="fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release"
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one "$@"' _ {} "$secs" "$logs" "$bin"
end=$(date +%s)

echo
echo "summary (${secs}s per target, $jobs at a time, $((end - start))s in all):"
cat "$logs"/*.result
if grep -q FAILED "$logs"/*.result; then
    exit 1
fi
