//! The CoAP gateway end to end with aiocoap (Python, PyPI; scripts/install-test-deps.sh
//! installs it) and paho-mqtt. The cases live in tests/py/coap_aiocoap.py; each test runs one
//! case against its own broker and asserts the script's exit status and its "OK <case>" line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{require_program, run_with_timeout, Broker};

fn aiocoap_available() -> bool {
    if !require_program("python3") {
        return false;
    }
    let ok = Command::new("python3")
        .args(["-c", "import aiocoap, paho.mqtt.client"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        return true;
    }
    if std::env::var_os("SY_SKIP_EXTERNAL_CLIENTS").is_some() {
        eprintln!("skipping: aiocoap not importable and SY_SKIP_EXTERNAL_CLIENTS is set");
        return false;
    }
    panic!("python3 cannot import aiocoap and paho-mqtt: run scripts/install-test-deps.sh");
}

fn run_case(case: &str, extra_toml: &str) {
    if !aiocoap_available() {
        return;
    }
    let broker = Broker::start_with(extra_toml);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/coap_aiocoap.py");
    let coap = broker.listener("coap:udp:default").to_string();
    let mqtt = broker.mqtt_addr().to_string();
    let mut cmd = Command::new("python3");
    cmd.arg(&script).args([case, &coap, &mqtt]);
    let (status, out, err) = run_with_timeout(&mut cmd, Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()) && out.contains(&format!("OK {case}")),
        "case {case} failed: {status:?}\nstdout:\n{out}\nstderr:\n{err}\nbroker:\n{}",
        broker.log_excerpt()
    );
}

const FAST: &str = "[gateway.coap]\nack_timeout = \"100ms\"\n";

#[test]
fn aiocoap_observe_wildcard_con_and_non_notifications() {
    run_case("observe", FAST);
}

/// Publishes of mixed QoS (0, 1, 2 interleaved) are each one notification, in order, with a
/// strictly newer Observe value, as the observer sees them on the wire (before aiocoap's own
/// reordering filter, which would hide a repeated Observe value).
#[test]
fn aiocoap_observe_mixed_qos_each_once_in_order() {
    run_case("observe_order", FAST);
}

#[test]
fn aiocoap_publish_with_query_options_and_blockwise() {
    run_case("publish", FAST);
}

#[test]
fn aiocoap_connection_mode() {
    run_case(
        "connection",
        "[gateway.coap]\nack_timeout = \"100ms\"\nconnection_required = true\n",
    );
}
