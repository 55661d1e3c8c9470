#!/usr/bin/env bash
# dtls.sh — CoAP over DTLS against plain CoAP (issue 19), measured with switchyard-bench.
#
# Run by hand (never in CI), from anywhere in the checkout:
#
#     crates/bench/dtls.sh
#
# For each repetition it starts a fresh broker on loopback with the CoAP gateway's UDP listener
# and its DTLS listener (pre-shared key and an ECDSA P-256 certificate made here with openssl),
# and runs three CON publisher scenarios of CLIENTS clients: plain UDP, DTLS-PSK
# (TLS_PSK_WITH_AES_128_CCM_8) and DTLS-ECDSA (TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8). The DTLS
# runs print their handshake rate ("dtls handshakes: N ok ... = R/s") before publishing. The
# tool's summaries go to stdout and to out.txt in the temporary directory, whose path is logged.
#
# Knobs (environment; none may start with SWITCHYARD_, the broker reads those as config):
#   REPS=1  DURATION=5s  CLIENTS=1000  BENCH_PORT=22883 (MQTT; CoAP 25683, DTLS 25684)
#   BENCH_SWITCHYARD_BIN=path  BENCH_BENCH_BIN=path  BENCH_SKIP_BUILD=1
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REPS=${REPS:-1}
DURATION=${DURATION:-5s}
CLIENTS=${CLIENTS:-1000}
PORT=${BENCH_PORT:-22883}
COAPPORT=25683
DTLSPORT=25684
BENCH=${BENCH_BENCH_BIN:-$ROOT/target/release/switchyard-bench}
SY_BIN=${BENCH_SWITCHYARD_BIN:-$ROOT/target/release/switchyard}
WORK=$(mktemp -d /tmp/switchyard-dtls.XXXXXX)
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

echo "bench:bench-key-0123456789" > "$WORK/psk.txt"
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/ec.key" 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in "$WORK/ec.key" -out "$WORK/server.key"
openssl req -new -x509 -key "$WORK/server.key" -subj /CN=127.0.0.1 -days 2 -out "$WORK/server.pem" 2>/dev/null

cat > "$WORK/switchyard.toml" <<TOML
[node]
data_dir = "$WORK/data"
[log]
level = "warn"
[listeners.tcp.default]
bind = "127.0.0.1:$PORT"
max_conn_rate = 0
[listeners.ws.default]
enable = false
[dashboard.listeners.http]
enable = false
[mqtt]
max_mqueue_len = 0
max_inflight = 65535
[gateway.mqttsn]
enable = false
[gateway.lwm2m]
enable = false
[gateway.coap.listeners.udp.default]
bind = "127.0.0.1:$COAPPORT"
max_conn_rate = 0
[psk_authentication]
enable = true
init_file = "$WORK/psk.txt"
[gateway.coap.listeners.dtls.default]
enable = true
bind = "127.0.0.1:$DTLSPORT"
max_conn_rate = 0
[gateway.coap.listeners.dtls.default.dtls_options]
certfile = "$WORK/server.pem"
keyfile = "$WORK/server.key"
TOML

start_broker() {
    rm -rf "$WORK/data" "$WORK/ready.json"
    mkdir -p "$WORK/data"
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
}

run() {
    local name=$1
    shift
    start_broker
    log "$name"
    "$BENCH" coap-pub -b "127.0.0.1:$PORT" -c "$CLIENTS" -q 1 -s 64 -d "$DURATION" \
        --label switchyard --name "$name" --broker-pid "$BROKER_PID" "$@" | tee -a "$WORK/out.txt"
    stop_broker
}

log "results in $WORK"
for rep in $(seq "$REPS"); do
    log "repetition $rep/$REPS"
    run "coap-pub $CLIENTS->1 con plain" -g "127.0.0.1:$COAPPORT"
    run "coap-pub $CLIENTS->1 con dtls-psk" -g "127.0.0.1:$DTLSPORT" --dtls-psk bench:bench-key-0123456789
    run "coap-pub $CLIENTS->1 con dtls-ecdsa" -g "127.0.0.1:$DTLSPORT" --dtls-ecdsa
done
