#!/usr/bin/env bash
# rules.sh — the cost of rules on the publish path (issue 17), measured with switchyard-bench.
#
# Run by hand (never in CI), from anywhere in the checkout:
#
#     crates/bench/rules.sh
#
# MQTT fan-in 8->1 at QoS 0 against the same broker with no rules and with 11 rules (10 that
# never match the benchmark's topics, 1 that republishes every message to a topic without
# subscribers), from crates/bench/configs/switchyard-rules.toml. For each repetition both
# variants run (interleaved), each on a fresh broker. Prints the Markdown summary (medians)
# with the no-rules run as the reference; the JSON lines stay in the temporary directory.
#
# Knobs (environment; none may start with SWITCHYARD_): REPS=3 DURATION=5s BENCH_PORT=23883
#   BENCH_SWITCHYARD_BIN=path BENCH_SKIP_BUILD=1
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REPS=${REPS:-3}
DURATION=${DURATION:-5s}
PORT=${BENCH_PORT:-23883}
CONFIG=$ROOT/crates/bench/configs/switchyard-rules.toml
BENCH=${BENCH_TOOL:-$ROOT/target/release/switchyard-bench}
SY_BIN=${BENCH_SWITCHYARD_BIN:-$ROOT/target/release/switchyard}
WORK=$(mktemp -d /tmp/switchyard-rules.XXXXXX)
RESULTS=$WORK/results.jsonl
BROKER_PID=""

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

cleanup() {
    if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK/data"
}
trap cleanup EXIT

if [[ -z "${BENCH_SKIP_BUILD:-}" ]]; then
    (cd "$ROOT" && flock /tmp/release-build.lock cargo build --release -p switchyard -p switchyard-bench)
fi

start_broker() {
    local with_rules=$1
    rm -rf "$WORK/data" "$WORK/ready.json"
    mkdir -p "$WORK/data"
    sed -e "s/TCPPORT/$PORT/" -e "s#DATADIR#$WORK/data#" "$CONFIG" > "$WORK/switchyard.toml"
    if [[ "$with_rules" == no ]]; then
        sed -i '/# RULES-BEGIN/,/# RULES-END/d' "$WORK/switchyard.toml"
    fi
    (cd "$WORK" && exec "$SY_BIN" --config "$WORK/switchyard.toml" --ready-file "$WORK/ready.json") \
        >"$WORK/broker.log" 2>&1 &
    BROKER_PID=$!
    for _ in $(seq 200); do
        if [[ -s "$WORK/ready.json" ]]; then
            sleep 0.2
            return 0
        fi
        sleep 0.05
    done
    log "switchyard did not start; log:"
    cat "$WORK/broker.log" >&2
    return 1
}

stop_broker() {
    kill "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=""
    sleep 0.5
}

REFERENCE="fanin 8->1 qos0, no rules"
SCENARIOS=(
    "$REFERENCE|no"
    "fanin 8->1 qos0, 10 non-matching rules + 1 republish|yes"
)

ulimit -n "$(ulimit -Hn)"
: > "$RESULTS"
for rep in $(seq "$REPS"); do
    for entry in "${SCENARIOS[@]}"; do
        IFS='|' read -r name rules <<<"$entry"
        log "rep $rep/$REPS  $name"
        start_broker "$rules"
        if ! timeout 180 "$BENCH" fanin -P 8 -q 0 -s 64 -d "$DURATION" -b "127.0.0.1:$PORT" --json \
                --label switchyard --name "$name" --broker-pid "$BROKER_PID" >>"$RESULTS" 2>"$WORK/bench.err"; then
            log "bench failed: $(tail -3 "$WORK/bench.err")"
        fi
        stop_broker
    done
done

log "raw results in $RESULTS"
"$BENCH" summarize --reference "$REFERENCE" "$RESULTS"
