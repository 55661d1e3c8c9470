#!/usr/bin/env bash
# ab.sh — one revision's switchyard against another's, in one run (a refactor's "no performance
# regression" check).
#
# Run by hand (never in CI), from anywhere in the checkout:
#
#     crates/bench/ab.sh BASE_REV [NEW_REV, default HEAD]
#
# It builds both revisions in temporary git worktrees (one target directory under /tmp,
# removed at the end) in release mode, then for each repetition and each scenario runs the base
# and the new broker one after the other (interleaved), each started fresh on loopback with its
# own tree's crates/bench/configs/switchyard-gateways.toml, and measures it with this tree's
# switchyard-bench. The scenarios are compare.sh's MQTT fan-in/fan-out and gateways.sh's MQTT-SN
# and CoAP publishers. Prints the table of medians with the ratio new/base.
#
# Knobs (environment; none may start with SWITCHYARD_): REPS=3 DURATION=5s CLIENTS=1000
#   AB_KEEP=1 keeps the raw results (in /tmp/switchyard-ab.*); AB_ONLY=text runs only the
#   scenarios whose name contains it.
set -euo pipefail

BASE_REV=${1:?usage: crates/bench/ab.sh BASE_REV [NEW_REV]}
NEW_REV=${2:-HEAD}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REPS=${REPS:-3}
DURATION=${DURATION:-5s}
CLIENTS=${CLIENTS:-1000}
PORT=21883
SNPORT=21884
COAPPORT=25683
WORK=$(mktemp -d /tmp/switchyard-ab.XXXXXX)
BASE_TREE=$WORK/base
NEW_TREE=$WORK/new
RESULTS=$WORK/results.jsonl
BROKER_PID=""

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

cleanup() {
    if [[ -n "$BROKER_PID" ]]; then
        kill "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    git -C "$ROOT" worktree remove --force "$BASE_TREE" 2>/dev/null || true
    git -C "$ROOT" worktree remove --force "$NEW_TREE" 2>/dev/null || true
    if [[ -z "${AB_KEEP:-}" ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

log "building base $BASE_REV and new $NEW_REV (worktrees in $WORK)"
git -C "$ROOT" worktree add --detach "$BASE_TREE" "$BASE_REV" >/dev/null
git -C "$ROOT" worktree add --detach "$NEW_TREE" "$NEW_REV" >/dev/null
# One target directory (dependencies build once); the base binary is copied out before the new
# build replaces it.
(cd "$BASE_TREE" && CARGO_TARGET_DIR=$WORK/target cargo build --release -q -p switchyard)
cp "$WORK/target/release/switchyard" "$WORK/switchyard-base"
(cd "$NEW_TREE" && CARGO_TARGET_DIR=$WORK/target cargo build --release -q -p switchyard -p switchyard-bench)
BENCH=$WORK/target/release/switchyard-bench

start() {
    local bin=$1 tree=$2
    rm -rf "$WORK/data" "$WORK/ready.json"
    sed -e "s/TCPPORT/$PORT/" -e "s/SNPORT/$SNPORT/" -e "s/COAPPORT/$COAPPORT/" \
        -e "s#DATADIR#$WORK/data#" -e "s/DURABILITY/memory/" \
        "$tree/crates/bench/configs/switchyard-gateways.toml" > "$WORK/switchyard.toml"
    (cd "$WORK" && exec "$bin" --config "$WORK/switchyard.toml" --ready-file "$WORK/ready.json") \
        >"$WORK/broker.log" 2>&1 &
    BROKER_PID=$!
    for _ in $(seq 200); do
        [[ -s "$WORK/ready.json" ]] && return 0
        sleep 0.05
    done
    log "broker did not start:"; cat "$WORK/broker.log" >&2; return 1
}

stop() {
    kill "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=""
    sleep 0.5
}

SCENARIOS=(
    "fanin 8->1 qos0|fanin -P 8 -q 0 -s 64 -d $DURATION"
    "fanin 8->1 qos1 window 64|fanin -P 8 -q 1 --inflight 64 -s 64 -d $DURATION"
    "fanout 1->100 qos0|fanout -S 100 -q 0 -s 64 -d $DURATION"
    "sn-pub $CLIENTS->1 qos0|sn-pub -c $CLIENTS -q 0 -s 64 -d $DURATION -g 127.0.0.1:$SNPORT"
    "sn-pub $CLIENTS->1 qos1|sn-pub -c $CLIENTS -q 1 -s 64 -d $DURATION -g 127.0.0.1:$SNPORT"
    "coap-pub $CLIENTS->1 non|coap-pub -c $CLIENTS -q 0 -s 64 -d $DURATION -g 127.0.0.1:$COAPPORT"
    "coap-pub $CLIENTS->1 con|coap-pub -c $CLIENTS -q 1 -s 64 -d $DURATION -g 127.0.0.1:$COAPPORT"
)

ulimit -n "$(ulimit -Hn)"
: > "$RESULTS"
for rep in $(seq "$REPS"); do
    for entry in "${SCENARIOS[@]}"; do
        IFS='|' read -r name args <<<"$entry"
        if [[ -n "${AB_ONLY:-}" && "$name" != *"$AB_ONLY"* ]]; then continue; fi
        for side in base new; do
            if [[ $side == base ]]; then bin=$WORK/switchyard-base; tree=$BASE_TREE
            else bin=$WORK/target/release/switchyard; tree=$NEW_TREE; fi
            log "rep $rep/$REPS  $name  $side"
            start "$bin" "$tree"
            # shellcheck disable=SC2086
            timeout 180 "$BENCH" $args -b "127.0.0.1:$PORT" --json --label "$side" \
                --name "$name" --broker-pid "$BROKER_PID" >>"$RESULTS" 2>"$WORK/bench.err" \
                || log "bench failed: $(tail -3 "$WORK/bench.err")"
            stop
        done
    done
done
log "raw results in $RESULTS"
"$BENCH" summarize --ours new "$RESULTS"
