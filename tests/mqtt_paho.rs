//! MQTT 3.1 and 3.1.1 with paho-mqtt 2.x (Python, from PyPI; scripts/install-test-deps.sh
//! installs it). The cases live in tests/py/paho_client.py; each test runs one case against its
//! own broker and asserts the script's exit status and its "OK <case>" line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{require_program, run_with_timeout, Broker};

fn paho_available() -> bool {
    if !require_program("python3") {
        return false;
    }
    let ok = Command::new("python3")
        .args([
            "-c",
            "import paho.mqtt.client as m, sys; sys.exit(0 if m.CallbackAPIVersion else 1)",
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        return true;
    }
    if std::env::var_os("SY_SKIP_EXTERNAL_CLIENTS").is_some() {
        eprintln!("skipping: paho-mqtt 2.x not importable and SY_SKIP_EXTERNAL_CLIENTS is set");
        return false;
    }
    panic!("python3 cannot import paho-mqtt 2.x: run scripts/install-test-deps.sh");
}

fn run_case(case: &str, protocol: &str) {
    if !paho_available() {
        return;
    }
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/paho_client.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .arg(case)
        .args(["--host", &addr.ip().to_string()])
        .args(["--port", &addr.port().to_string()])
        .args(["--protocol", protocol]);
    let (status, stdout, stderr) = run_with_timeout(&mut cmd, Duration::from_secs(60));
    let ok = status.map(|s| s.success()).unwrap_or(false);
    assert!(
        ok && stdout.lines().any(|l| l == format!("OK {case}")),
        "paho case {case} (MQTT {protocol}) failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        match status {
            Some(s) => format!("exit {s}"),
            None => "timed out after 60 s".to_owned(),
        }
    );
}

#[test]
fn paho_mqttv31_qos1_qos2_round_trip() {
    run_case("roundtrip", "31");
}

#[test]
fn paho_mqttv311_qos1_qos2_round_trip() {
    run_case("roundtrip", "311");
}

#[test]
fn paho_mqttv31_will_on_abrupt_close() {
    run_case("will", "31");
}

#[test]
fn paho_mqttv311_will_on_abrupt_close() {
    run_case("will", "311");
}

#[test]
fn paho_mqttv31_keepalive_timeout_closes_and_fires_will() {
    run_case("keepalive", "31");
}

#[test]
fn paho_mqttv311_keepalive_timeout_closes_and_fires_will() {
    run_case("keepalive", "311");
}
