#!/usr/bin/env python3
"""Run Debian's mosquitto broker behind switchyard's command-line interface.

A development aid for the black-box tests in tests/: point the harness at this script to check
that a test's expectations hold on a reference broker, e.g.

    SY_TEST_BIN=$PWD/scripts/reference-broker.py cargo test --test mqtt_rumqttc

It understands `--config FILE` (only `[mqtt] max_packet_size` is mapped) and `--ready-file FILE`
(written with `mqtt:tcp:default` once mosquitto accepts connections), and exits 0 on
SIGTERM/SIGINT. Needs `apt-get install mosquitto`. Known differences from switchyard's contract:
no `$queue/` shared subscriptions, no `$SYS/brokers/...` topics, no print-config, no `idle_timeout`,
no gateways; its WebSocket listener serves any path.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib

UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


def size(v):
    if isinstance(v, int):
        return v
    v = v.strip().upper()
    for unit in ("GB", "MB", "KB", "B"):
        if v.endswith(unit):
            return int(float(v[: -len(unit)]) * UNITS[unit])
    return int(v)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main(argv):
    config, ready = None, None
    args = iter(argv)
    for a in args:
        if a == "--config":
            config = next(args)
        elif a == "--ready-file":
            ready = next(args)
        else:
            print(f"reference-broker: unsupported argument {a!r}", file=sys.stderr)
            return 2
    conf = {}
    if config:
        with open(config, "rb") as f:
            conf = tomllib.load(f)
    port, ws_port = free_port(), free_port()
    workdir = tempfile.mkdtemp(prefix="reference-broker-")
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false",
             f"listener {ws_port} 127.0.0.1", "protocol websockets",
             "log_dest stderr", "log_type all"]
    mps = conf.get("mqtt", {}).get("max_packet_size")
    if mps is not None:
        lines.append(f"max_packet_size {size(mps)}")
    conf_path = os.path.join(workdir, "mosquitto.conf")
    with open(conf_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    child = subprocess.Popen(["mosquitto", "-c", conf_path])

    def forward(signum, _frame):
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if child.poll() is not None:
                return child.returncode or 1
            time.sleep(0.05)
    listeners = {"mqtt:tcp:default": f"127.0.0.1:{port}", "mqtt:ws:default": f"127.0.0.1:{ws_port}"}
    for name, addr in listeners.items():
        print(f"listener {name} on {addr}", file=sys.stderr, flush=True)
    if ready:
        tmp = ready + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"listeners": listeners}, f)
        os.replace(tmp, ready)
    child.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
