#!/usr/bin/env bash
# gateways.sh — Switchyard's UDP gateways and durability modes, measured with switchyard-bench.
#
# Run by hand (never in CI), from anywhere in the checkout:
#
#     crates/bench/gateways.sh
#
# Switchyard only: mosquitto and rumqttd have no MQTT-SN or CoAP gateway, so every figure is
# compared with the MQTT fan-in 8->1 QoS 0 of the same run instead (issues 6 and 7 ask for that
# ratio). For each repetition and each scenario (interleaved) it starts a fresh broker on
# loopback from crates/bench/configs/switchyard-gateways.toml with its data_dir in a temporary
# directory and the durability the scenario names, runs one switchyard-bench scenario, and
# stops it. It prints the Markdown table (medians; loss and duplicates of the worst run) on
# stdout; the JSON lines stay in the temporary directory, whose path is logged.
#
# Knobs (environment; none may start with SWITCHYARD_, the broker reads those as config):
#   REPS=3  DURATION=5s  CLIENTS=1000  OBSERVE_RATE=100 (MQTT messages/s to the observers)
#   SN_RATE=650 SN_BURST=16 (the paced MQTT-SN scenario: messages/s per client, and datagrams
#   per GSO system call of the tool; the gateway still receives one datagram per message)
#   BENCH_PORT=22883 (MQTT; MQTT-SN is +1, CoAP is 25683)
#   BENCH_SWITCHYARD_BIN=path  BENCH_SKIP_BUILD=1  BENCH_ONLY="substring of scenario names"
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REPS=${REPS:-3}
DURATION=${DURATION:-5s}
CLIENTS=${CLIENTS:-1000}
OBSERVE_RATE=${OBSERVE_RATE:-100}
SN_RATE=${SN_RATE:-650}
SN_BURST=${SN_BURST:-16}
PORT=${BENCH_PORT:-22883}
SNPORT=$((PORT + 1))
COAPPORT=${BENCH_COAP_PORT:-25683}
CONFIG=$ROOT/crates/bench/configs/switchyard-gateways.toml
BENCH=$ROOT/target/release/switchyard-bench
SY_BIN=${BENCH_SWITCHYARD_BIN:-$ROOT/target/release/switchyard}
WORK=$(mktemp -d /tmp/switchyard-gateways.XXXXXX)
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
    local durability=$1
    rm -rf "$WORK/data" "$WORK/ready.json"
    mkdir -p "$WORK/data"
    sed -e "s/TCPPORT/$PORT/" -e "s/SNPORT/$SNPORT/" -e "s/COAPPORT/$COAPPORT/" \
        -e "s#DATADIR#$WORK/data#" -e "s/DURABILITY/$durability/" "$CONFIG" > "$WORK/switchyard.toml"
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

REFERENCE="fanin 8->1 qos0"
# name|durability|arguments
SCENARIOS=(
    "$REFERENCE|memory|fanin -P 8 -q 0 -s 64 -d $DURATION"
    "sn-pub $CLIENTS->1 qos0|memory|sn-pub -c $CLIENTS -q 0 -s 64 -d $DURATION -g 127.0.0.1:$SNPORT"
    "sn-pub $CLIENTS->1 qos0 paced $SN_RATE/s, bursts of $SN_BURST|memory|sn-pub -c $CLIENTS -q 0 -s 64 -d $DURATION --rate $SN_RATE --burst $SN_BURST -g 127.0.0.1:$SNPORT"
    "sn-pub $CLIENTS->1 qos1|memory|sn-pub -c $CLIENTS -q 1 -s 64 -d $DURATION -g 127.0.0.1:$SNPORT"
    "coap-pub $CLIENTS->1 non|memory|coap-pub -c $CLIENTS -q 0 -s 64 -d $DURATION -g 127.0.0.1:$COAPPORT"
    "coap-pub $CLIENTS->1 con|memory|coap-pub -c $CLIENTS -q 1 -s 64 -d $DURATION -g 127.0.0.1:$COAPPORT"
    "coap-observe 1->$CLIENTS non $OBSERVE_RATE/s|memory|coap-observe -c $CLIENTS -q 0 --rate $OBSERVE_RATE -s 64 -d $DURATION -g 127.0.0.1:$COAPPORT"
    "coap-observe 1->$CLIENTS con $OBSERVE_RATE/s|memory|coap-observe -c $CLIENTS -q 1 --rate $OBSERVE_RATE -s 64 -d $DURATION -g 127.0.0.1:$COAPPORT"
    "fanin 8->1 qos1 window 64 clean, strict|strict|fanin -P 8 -q 1 --inflight 64 -s 64 -d $DURATION"
    "fanin 8->1 qos1 window 64 persistent, strict|strict|fanin -P 8 -q 1 --inflight 64 -s 64 -d $DURATION --persistent"
    "fanin 8->1 qos1 window 64 persistent, memory|memory|fanin -P 8 -q 1 --inflight 64 -s 64 -d $DURATION --persistent"
)

ulimit -n "$(ulimit -Hn)"
: > "$RESULTS"
for rep in $(seq "$REPS"); do
    for entry in "${SCENARIOS[@]}"; do
        IFS='|' read -r name durability args <<<"$entry"
        if [[ -n "${BENCH_ONLY:-}" && "$name" != *"$BENCH_ONLY"* && "$name" != "$REFERENCE" ]]; then
            continue
        fi
        log "rep $rep/$REPS  $name  (durability $durability)"
        start_broker "$durability"
        # shellcheck disable=SC2086
        if ! timeout 180 "$BENCH" $args -b "127.0.0.1:$PORT" --json --label switchyard \
                --name "$name" --broker-pid "$BROKER_PID" >>"$RESULTS" 2>"$WORK/bench.err"; then
            log "bench failed: $(tail -3 "$WORK/bench.err")"
        fi
        stop_broker
    done
done

log "raw results in $RESULTS"
"$BENCH" summarize --reference "$REFERENCE" "$RESULTS"
