//! MQTT.js (npm `mqtt` 5.x) in headless Chromium against the WebSocket listener.
//!
//! The browser side lives in tests/browser: `run.mjs` serves `page.html` and MQTT.js's browser
//! bundle from a local HTTP server, drives Debian's Chromium (/usr/bin/chromium) through
//! playwright-core (no browser download), and runs each case for MQTT 3.1.1 and MQTT 5:
//! subscribe/publish/receive at QoS 0/1/2, retained messages, a 64 KiB payload, messages to and
//! from a TCP client, and the will of a tab closed without DISCONNECT. This test starts the
//! broker, runs the script with a timeout and checks its exit status and one "OK" line per case.
//!
//! Needs node, /usr/bin/chromium and tests/browser/node_modules: scripts/install-test-deps.sh
//! installs them (SY_SKIP_EXTERNAL_CLIENTS=1 turns their absence into a skip).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{require_program, run_with_timeout, Broker};

/// Bound on the whole browser run (it takes a few seconds; Chromium's start dominates).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

const CASES: [&str; 5] = [
    "qos",
    "retained",
    "payload_64k",
    "tcp_exchange",
    "will_on_closed_tab",
];

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Chromium: `$CHROMIUM` if set (run.mjs honours it too), else Debian's /usr/bin/chromium.
fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Whether everything the run needs is installed; panics with instructions if not, unless
/// external clients may be skipped.
fn prerequisites() -> bool {
    if !require_program("node") {
        return false;
    }
    let mut missing = Vec::new();
    if !chromium().exists() {
        missing.push(format!(
            "{} (Debian package chromium)",
            chromium().display()
        ));
    }
    for module in ["mqtt", "playwright-core"] {
        if !browser_dir().join("node_modules").join(module).is_dir() {
            missing.push(format!("tests/browser/node_modules/{module} (npm ci)"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    if std::env::var_os("SY_SKIP_EXTERNAL_CLIENTS").is_some() {
        eprintln!("skipping: missing {missing:?} and SY_SKIP_EXTERNAL_CLIENTS is set");
        return false;
    }
    panic!(
        "missing {missing:?}: run scripts/install-test-deps.sh \
         (or set SY_SKIP_EXTERNAL_CLIENTS=1 to skip tests that need it)"
    );
}

#[test]
fn mqttjs_in_headless_chromium_over_websocket() {
    if !prerequisites() {
        return;
    }
    let broker = Broker::start();
    let ws = format!("ws://{}/mqtt", broker.listener("mqtt:ws:default"));
    let tcp = broker.mqtt_addr().to_string();
    let mut cmd = Command::new("node");
    cmd.arg(browser_dir().join("run.mjs"))
        .args(["--ws", &ws])
        .args(["--tcp", &tcp])
        .current_dir(browser_dir());
    let (status, stdout, stderr) = run_with_timeout(&mut cmd, RUN_TIMEOUT);
    let report = format!(
        "node run.mjs exited with {status:?}\nstdout:\n{stdout}\nstderr:\n{stderr}\n{}",
        broker.log_excerpt()
    );
    assert!(
        status.is_some(),
        "browser run exceeded {RUN_TIMEOUT:?}\n{report}"
    );
    for version in [4, 5] {
        for case in CASES {
            let line = format!("OK {case}_v{version}");
            assert!(
                stdout
                    .lines()
                    .any(|l| l.starts_with(&format!("{line} ")) || l == line),
                "missing {line:?}\n{report}"
            );
        }
    }
    assert!(stdout.lines().any(|l| l == "ALL OK"), "no ALL OK\n{report}");
    assert!(
        status.is_some_and(|s| s.success()),
        "non-zero exit\n{report}"
    );
    assert!(
        !stdout.lines().any(|l| l.starts_with("FAIL")),
        "a case failed\n{report}"
    );
}
