#!/usr/bin/env bash
# Installs the external MQTT clients that the black-box tests in tests/ drive:
#   - mosquitto_sub / mosquitto_pub  (Debian package mosquitto-clients)
#   - paho-mqtt 2.x for python3      (PyPI, pinned below)
# Idempotent: anything already present is left alone, and `apt-get update` runs only when a
# Debian package has to be installed. Runs as root, or through sudo when available.
set -euo pipefail

PAHO_VERSION="2.2.0"

log() { printf 'install-test-deps: %s\n' "$*"; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    fi
fi

apt_updated=0
apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        log "apt-get not found: install $* by hand"
        return 1
    fi
    if [ "$apt_updated" -eq 0 ]; then
        log "apt-get update"
        "${SUDO[@]}" apt-get update -qq
        apt_updated=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- mosquitto-clients -------------------------------------------------------------------
if command -v mosquitto_sub >/dev/null 2>&1 && command -v mosquitto_pub >/dev/null 2>&1; then
    log "mosquitto clients present ($(mosquitto_sub --help 2>/dev/null | sed -n 's/.*version \([0-9.]*\).*/\1/p' | head -n1))"
else
    apt_install mosquitto-clients
fi
# stdbuf (coreutils) line-buffers mosquitto_sub's output in tests/mqtt_mosquitto.rs.
if ! command -v stdbuf >/dev/null 2>&1; then
    apt_install coreutils
fi

# --- python3 + paho-mqtt -----------------------------------------------------------------
if ! command -v python3 >/dev/null 2>&1; then
    apt_install python3 python3-pip
fi

paho_version() {
    python3 -c 'import importlib.metadata as m; print(m.version("paho-mqtt"))' 2>/dev/null || true
}

have="$(paho_version)"
if [ "$have" = "$PAHO_VERSION" ]; then
    log "paho-mqtt $have present for $(command -v python3)"
else
    if ! python3 -m pip --version >/dev/null 2>&1; then
        apt_install python3-pip
    fi
    log "pip install paho-mqtt==$PAHO_VERSION (had: ${have:-none}) for $(command -v python3)"
    pip_args=(-m pip install --quiet --disable-pip-version-check "paho-mqtt==$PAHO_VERSION")
    if ! "${SUDO[@]}" python3 "${pip_args[@]}" 2>/tmp/install-test-deps-pip.err; then
        if grep -q externally-managed-environment /tmp/install-test-deps-pip.err; then
            # Debian's own python3 (PEP 668): a test-only package, installed anyway.
            "${SUDO[@]}" python3 "${pip_args[@]}" --break-system-packages
        else
            cat /tmp/install-test-deps-pip.err >&2
            exit 1
        fi
    fi
    have="$(paho_version)"
    if [ "$have" != "$PAHO_VERSION" ]; then
        log "paho-mqtt still not importable as $PAHO_VERSION (got: ${have:-none})"
        exit 1
    fi
fi

log "ready: mosquitto_sub, mosquitto_pub, python3 with paho-mqtt $PAHO_VERSION"
