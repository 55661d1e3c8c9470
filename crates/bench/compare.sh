#!/usr/bin/env bash
# compare.sh — Switchyard against Mosquitto and rumqttd on this machine, in one run.
#
# Run by hand (never in CI), from anywhere in the checkout:
#
#     crates/bench/compare.sh
#
# It installs Debian's mosquitto and `cargo install rumqttd --version 0.20.0` if missing, builds
# switchyard and switchyard-bench in release mode, then for each repetition, each scenario and
# each broker (interleaved: rep 1 of every broker before rep 2 of any) starts a fresh broker on
# loopback with the recorded config from crates/bench/configs/, runs one switchyard-bench
# scenario against it (`--broker-pid` samples the broker's CPU seconds and RSS from /proc) and
# stops it. BENCHMARKS.md gets the machine, the commands, the configs and the table of medians
# with the ratios switchyard/mosquitto and switchyard/rumqttd. Anything below the line
# "<!-- analysis -->" in an existing BENCHMARKS.md is kept.
#
# The MQTT-SN and CoAP gateway scenarios and the durability modes have no peer to compare with
# (mosquitto and rumqttd have no such gateways): crates/bench/gateways.sh runs them against
# switchyard alone and prints the table of BENCHMARKS.md's "Gateways and durability" section.
#
# Knobs (environment; none may start with SWITCHYARD_, the broker reads those as config):
#   REPS=3  DURATION=5s  CONNS=19000  BENCH_PORT=21883
#   BENCH_SWITCHYARD_BIN=path   benchmark this switchyard binary instead of building one
#   BENCH_SKIP_BUILD=1          use the binaries already in target/release
#   BENCH_SWITCHYARD_DESC=text  how BENCHMARKS.md describes the switchyard build
#   BENCH_BROKERS="mosquitto rumqttd switchyard"   BENCH_OUT=path/to/BENCHMARKS.md
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REPS=${REPS:-3}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-19000}
PORT=${BENCH_PORT:-21883}
BROKERS=${BENCH_BROKERS:-"mosquitto rumqttd switchyard"}
OUT=${BENCH_OUT:-$ROOT/BENCHMARKS.md}
CONFIGS=$ROOT/crates/bench/configs
BENCH=$ROOT/target/release/switchyard-bench
WORK=$(mktemp -d /tmp/switchyard-compare.XXXXXX)
RESULTS=$WORK/results.jsonl
BROKER_PID=""

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

cleanup() {
    if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT

install_peers() {
    if ! command -v mosquitto >/dev/null && ! [[ -x /usr/sbin/mosquitto ]]; then
        log "installing mosquitto"
        if [[ $(id -u) -eq 0 ]]; then apt-get install -y mosquitto; else sudo apt-get install -y mosquitto; fi
    fi
    if ! command -v rumqttd >/dev/null; then
        # Not --locked: a locked dependency of 0.20.0 no longer builds on current rustc.
        log "installing rumqttd 0.20.0 (slow)"
        flock /tmp/release-build.lock cargo install rumqttd --version 0.20.0
    fi
}

build() {
    cd "$ROOT"
    if [[ -n "${BENCH_SKIP_BUILD:-}" ]]; then
        SY_BIN=${BENCH_SWITCHYARD_BIN:-$ROOT/target/release/switchyard}
    elif [[ -n "${BENCH_SWITCHYARD_BIN:-}" ]]; then
        flock /tmp/release-build.lock cargo build --release -p switchyard-bench
        SY_BIN=$BENCH_SWITCHYARD_BIN
    else
        flock /tmp/release-build.lock cargo build --release -p switchyard -p switchyard-bench
        SY_BIN=$ROOT/target/release/switchyard
    fi
}

mosquitto_bin() { command -v mosquitto || echo /usr/sbin/mosquitto; }

# Writes $WORK/<broker>.conf from the recorded config with the port filled in.
config_for() {
    local broker=$1 ext
    case $broker in
        mosquitto) ext=conf ;;
        *) ext=toml ;;
    esac
    sed "s/PORT/$PORT/g" "$CONFIGS/$broker.$ext" > "$WORK/$broker.$ext"
    echo "$WORK/$broker.$ext"
}

start_broker() {
    local broker=$1 conf
    conf=$(config_for "$broker")
    case $broker in
        mosquitto) "$(mosquitto_bin)" -c "$conf" >"$WORK/$broker.log" 2>&1 & ;;
        rumqttd) rumqttd -c "$conf" >"$WORK/$broker.log" 2>&1 & ;;
        switchyard) "$SY_BIN" --config "$conf" --ready-file "$WORK/ready.json" >"$WORK/$broker.log" 2>&1 & ;;
    esac
    BROKER_PID=$!
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
            sleep 0.2
            return 0
        fi
        sleep 0.05
    done
    log "$broker did not start; log:"
    cat "$WORK/$broker.log" >&2
    return 1
}

stop_broker() {
    kill "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=""
    # Let TIME_WAIT sockets and the port settle between brokers.
    sleep 0.5
}

# name|arguments, in the order they appear in BENCHMARKS.md.
SCENARIOS=(
    "fanin 8->1 qos0|fanin -P 8 -q 0 -s 64 -d $DURATION"
    "fanin 8->1 qos1 window 64|fanin -P 8 -q 1 --inflight 64 -s 64 -d $DURATION"
    "fanout 1->100 qos0|fanout -S 100 -q 0 -s 64 -d $DURATION"
    "latency 1000/s qos0|latency -q 0 --rate 1000 -s 64 -d $DURATION"
    "latency 1000/s qos1|latency -q 1 --rate 1000 -s 64 -d $DURATION"
    "idle conn $CONNS + 1 sub each|conn -c $CONNS --concurrency 100 --hold 2s"
)

run_all() {
    : > "$RESULTS"
    for rep in $(seq "$REPS"); do
        for entry in "${SCENARIOS[@]}"; do
            local name=${entry%%|*} args=${entry#*|}
            for broker in $BROKERS; do
                log "rep $rep/$REPS  $name  $broker"
                start_broker "$broker"
                # shellcheck disable=SC2086
                if ! timeout 180 "$BENCH" $args -b "127.0.0.1:$PORT" --json --label "$broker" \
                        --name "$name" --broker-pid "$BROKER_PID" >>"$RESULTS" 2>"$WORK/bench.err"; then
                    log "bench failed against $broker: $(tail -3 "$WORK/bench.err")"
                fi
                stop_broker
            done
        done
    done
}

machine() {
    echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores visible"
    echo "- Memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "- Kernel: $(uname -r); OS: $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "- File limit: $(ulimit -n) (hard $(ulimit -Hn))"
    echo "- mosquitto: $("$(mosquitto_bin)" -h 2>/dev/null | head -1)"
    echo "- rumqttd: 0.20.0 (cargo install, $(rustc --version))"
    if [[ -n "${BENCH_SWITCHYARD_DESC:-}" ]]; then
        echo "- switchyard: $BENCH_SWITCHYARD_DESC"
    else
        echo "- switchyard: $(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)${BENCH_SWITCHYARD_BIN:+ (binary $BENCH_SWITCHYARD_BIN)}"
    fi
    echo "- Broker and load generator share the machine; brokers run one at a time."
}

write_report() {
    local kept=""
    if [[ -f "$OUT" ]] && grep -q '^<!-- analysis -->' "$OUT"; then
        kept=$(sed -n '/^<!-- analysis -->/,$p' "$OUT")
    fi
    {
        echo "# Benchmarks: Switchyard, Mosquitto and rumqttd on the same machine"
        echo
        echo "Generated by \`crates/bench/compare.sh\` on $(date -u +%Y-%m-%d) — medians of $REPS interleaved"
        echo "repetitions, ${DURATION} per throughput scenario, 64-byte payloads, MQTT 3.1.1 over loopback."
        echo "Ratios are switchyard/peer: above 1 is better for ↑ metrics, below 1 for ↓ metrics."
        echo
        echo "## Machine"
        echo
        machine
        echo
        echo "## Results"
        echo
        "$BENCH" summarize --ours switchyard "$RESULTS"
        echo
        echo "## Commands"
        echo
        echo "Each broker is started fresh for each scenario; \`switchyard-bench\` is then run as:"
        echo
        echo '```sh'
        for entry in "${SCENARIOS[@]}"; do
            echo "switchyard-bench ${entry#*|} -b 127.0.0.1:$PORT --json --label BROKER --broker-pid PID"
        done
        echo '```'
        echo
        echo "## Configs"
        for f in mosquitto.conf rumqttd.toml switchyard.toml; do
            echo
            echo "\`crates/bench/configs/$f\` (PORT = $PORT):"
            echo
            echo '```'
            cat "$CONFIGS/$f"
            echo '```'
        done
        echo
        echo "## Raw results"
        echo
        echo "<details><summary>JSON lines, one per run</summary>"
        echo
        echo '```json'
        cat "$RESULTS"
        echo '```'
        echo
        echo "</details>"
        if [[ -n "$kept" ]]; then
            echo
            echo "$kept"
        fi
    } > "$OUT.tmp"
    mv "$OUT.tmp" "$OUT"
    log "wrote $OUT (raw results in $RESULTS)"
}

ulimit -n "$(ulimit -Hn)"
install_peers
build
run_all
write_report
