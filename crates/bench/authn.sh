#!/usr/bin/env bash
# authn.sh — connections per second through Switchyard's authenticators, in one run: anonymous
# (no check), the built-in database (argon2), an HTTP auth service and a PostgreSQL mqtt_user
# table, each with the result cache cold (first connect of each client) and warm (the same
# clients reconnecting within authentication.cache.ttl).
#
# Run by hand (never in CI), from anywhere in the checkout:
#
#     crates/bench/authn.sh
#
# It builds switchyard and switchyard-bench in release mode (BENCH_SKIP_BUILD=1 uses the ones in
# target/release), starts a local HTTP auth service (python3, answers 204 to every POST) and, when
# Debian's PostgreSQL is installed, a PostgreSQL server on a free port in a temporary directory
# (as the postgres user when run as root) holding one salted-SHA-256 row; then for each
# authenticator starts a fresh broker on loopback and runs `switchyard-bench conn` twice with the
# same client ids (cold, then warm). It prints the markdown table of BENCHMARKS.md's
# "Authentication" section and the raw JSON lines. Servers it started are stopped by PID.
#
# Knobs (environment; none may start with SWITCHYARD_): CONNS=2000 CONCURRENCY=50 BENCH_PORT=21884
#   BENCH_SKIP_BUILD=1   BENCH_BIN_DIR=target/debug (a quick check of the script, not a benchmark)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CONNS=${CONNS:-2000}
CONCURRENCY=${CONCURRENCY:-50}
PORT=${BENCH_PORT:-21884}
BIN_DIR=${BENCH_BIN_DIR:-$ROOT/target/release}
BENCH=$BIN_DIR/switchyard-bench
SY_BIN=$BIN_DIR/switchyard
WORK=$(mktemp -d /tmp/switchyard-authn.XXXXXX)
# PostgreSQL runs as its own user when we are root: it must reach its directory inside.
chmod 755 "$WORK"
RESULTS=$WORK/results.jsonl
BROKER_PID="" HTTP_PID="" PG_PID=""

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

stop_pid() {
    local pid=$1
    [[ -n "$pid" ]] || return 0
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    stop_pid "$BROKER_PID"
    stop_pid "$HTTP_PID"
    # The postmaster's own PID (runuser's child), from its pid file: fast shutdown.
    local pm=""
    [[ -f "$WORK/pg/data/postmaster.pid" ]] && pm=$(head -1 "$WORK/pg/data/postmaster.pid")
    if [[ -n "$pm" ]]; then
        kill -INT "$pm" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pm" 2>/dev/null || break; sleep 0.1; done
    fi
    [[ -n "$PG_PID" ]] && wait "$PG_PID" 2>/dev/null || true
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

build() {
    cd "$ROOT"
    if [[ -z "${BENCH_SKIP_BUILD:-}" ]]; then
        flock /tmp/release-build.lock cargo build --release -p switchyard -p switchyard-bench
    fi
}

# A small threaded HTTP/1.1 service answering 204 (allow) to every POST, with keep-alive.
start_http() {
    HTTP_PORT=$(free_port)
    python3 - "$HTTP_PORT" >"$WORK/http.log" 2>&1 <<'PY' &
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(204)
        self.end_headers()
    def log_message(self, *a):
        pass
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
    HTTP_PID=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$HTTP_PORT") 2>/dev/null && return 0
        sleep 0.05
    done
    log "HTTP service did not start"; cat "$WORK/http.log" >&2; return 1
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

as_pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# PostgreSQL with mqtt_user(username, password_hash, salt, is_superuser): bench / bench-pw,
# sha256 with the salt as prefix.
start_pg() {
    local bin; bin=$(pg_bin)
    [[ -n "$bin" && -x "$bin/initdb" ]] || { log "PostgreSQL not installed: skipped"; return 1; }
    PG_PORT=$(free_port)
    mkdir -p "$WORK/pg"
    [[ $(id -u) -eq 0 ]] && chown -R postgres: "$WORK/pg"
    as_pg "$bin/initdb" -A trust -U postgres --no-sync -E UTF8 -D "$WORK/pg/data" >"$WORK/pg.log" 2>&1
    as_pg "$bin/postgres" -D "$WORK/pg/data" -p "$PG_PORT" -k "$WORK/pg" \
        -c listen_addresses=127.0.0.1 -c fsync=off >>"$WORK/pg.log" 2>&1 &
    PG_PID=$!
    for _ in $(seq 300); do
        "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qAt -c 'SELECT 1' >/dev/null 2>&1 && break
        sleep 0.1
    done
    local hash; hash=$(python3 -c 'import hashlib; print(hashlib.sha256(b"s4lt" + b"bench-pw").hexdigest())')
    "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -q -v ON_ERROR_STOP=1 -c "
        CREATE TABLE mqtt_user (username text PRIMARY KEY, password_hash text, salt text, is_superuser bool);
        INSERT INTO mqtt_user VALUES ('bench', '$hash', 's4lt', false);"
}

# The broker's config for one authenticator.
config_for() {
    local kind=$1 conf=$WORK/$kind.toml
    cat >"$conf" <<EOF
[node]
data_dir = "$WORK/data-$kind"

[listeners.tcp.default]
bind = "127.0.0.1:$PORT"
max_conn_rate = 0

[listeners.ws.default]
enable = false

[log]
level = "warn"

[authentication]
allow_anonymous = $([[ $kind == anonymous ]] && echo true || echo false)
EOF
    case $kind in
        builtin)
            printf 'user_id,password,is_superuser\nbench,bench-pw,false\n' >"$WORK/users.csv"
            printf 'bootstrap_file = "%s"\n' "$WORK/users.csv" >>"$conf" ;;
        http)
            cat >>"$conf" <<EOF

[[authentication.authenticators]]
mechanism = "password_based"
backend = "http"
method = "post"
url = "http://127.0.0.1:$HTTP_PORT/auth"
body = { username = "\${username}", password = "\${password}", clientid = "\${clientid}" }
EOF
            ;;
        postgresql)
            cat >>"$conf" <<EOF

[[authentication.authenticators]]
mechanism = "password_based"
backend = "postgresql"
server = "127.0.0.1:$PG_PORT"
database = "postgres"
username = "postgres"
password = "unused-with-trust"
query = "SELECT password_hash, salt, is_superuser FROM mqtt_user WHERE username = \${username} LIMIT 1"
password_hash_algorithm = { name = "sha256", salt_position = "prefix" }
EOF
            ;;
    esac
    echo "$conf"
}

start_broker() {
    local conf=$1
    "$SY_BIN" --config "$conf" --ready-file "$WORK/ready.json" >"$WORK/broker.log" 2>&1 &
    BROKER_PID=$!
    for _ in $(seq 200); do
        [[ -s "$WORK/ready.json" ]] && return 0
        sleep 0.05
    done
    log "switchyard did not start; log:"; cat "$WORK/broker.log" >&2; return 1
}

run_kind() {
    local kind=$1 conf
    conf=$(config_for "$kind")
    rm -f "$WORK/ready.json"
    start_broker "$conf"
    for phase in cold warm; do
        log "$kind $phase: $CONNS connections"
        "$BENCH" conn -c "$CONNS" --concurrency "$CONCURRENCY" --hold 1s -b "127.0.0.1:$PORT" \
            --username bench --password bench-pw --client-prefix "authn-$kind" \
            --json --label "$kind" --name "$kind $phase" --broker-pid "$BROKER_PID" >>"$RESULTS"
    done
    stop_pid "$BROKER_PID"; BROKER_PID=""
    sleep 0.5
}

table() {
    python3 - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {r["name"]: r for r in rows}
base = by.get("anonymous cold", {}).get("conn_per_s")
builtin = by.get("builtin cold", {}).get("conn_per_s")
ratio = lambda a, b: f"{a / b:.2f}x" if b else "–"
print("| authenticator | cache | connections | connections/s ↑ | vs built-in (cold) | vs anonymous | broker CPU-s | failures |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    kind, phase = r["name"].rsplit(" ", 1)
    rate = r.get("conn_per_s") or 0
    cpu = r.get("broker_cpu_s")
    cpu = f"{cpu:.2f}" if isinstance(cpu, (int, float)) else "–"
    print(f"| {kind} | {phase} | {r.get('connections')} | {rate:.0f} | {ratio(rate, builtin)} | {ratio(rate, base)} | {cpu} | {r.get('failures')} |")
PY
}

build
start_http
KINDS="anonymous builtin http"
if start_pg; then KINDS="$KINDS postgresql"; fi
: >"$RESULTS"
for kind in $KINDS; do run_kind "$kind"; done
table
echo
echo "Raw results:"
cat "$RESULTS"
