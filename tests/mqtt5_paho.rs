//! MQTT 5.0 with paho-mqtt 2.x (PyPI) and raw sockets for the error paths a library will not
//! produce. The cases live in tests/py/paho_v5.py; each test runs one case against its own
//! broker, configured as the case needs, and asserts the script's exit status and "OK" line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{require_program, run_with_timeout, Broker};

fn run_case(case: &str, config: &str) {
    if !require_program("python3") {
        return;
    }
    let broker = Broker::start_with(config);
    let addr = broker.mqtt_addr();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/paho_v5.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .arg(case)
        .args(["--host", &addr.ip().to_string()])
        .args(["--port", &addr.port().to_string()]);
    let (status, stdout, stderr) = run_with_timeout(&mut cmd, Duration::from_secs(60));
    let ok = status.map(|s| s.success()).unwrap_or(false);
    assert!(
        ok && stdout.lines().any(|l| l == format!("OK {case}")),
        "MQTT 5 case {case} failed ({status:?})\nstdout:\n{stdout}\nstderr:\n{stderr}\nbroker log:\n{}",
        broker.log_excerpt()
    );
}

#[test]
fn v5_assigned_client_identifier() {
    run_case("assigned_id", "");
}

#[test]
fn v5_session_expiry_clean_start_and_resume() {
    run_case("session_resume", "");
}

#[test]
fn v5_no_local_retain_as_published_retain_handling() {
    run_case("options", "");
}

#[test]
fn v5_subscription_identifiers_on_overlap() {
    run_case("sub_ids", "");
}

#[test]
fn v5_properties_pass_through() {
    run_case("properties", "");
}

#[test]
fn v5_message_expiry_in_queue_and_remaining_interval() {
    run_case("expiry", "");
}

#[test]
fn v5_inbound_topic_alias_and_errors() {
    run_case("topic_alias", "[mqtt]\nmax_topic_alias = 10\n");
}

#[test]
fn v5_outbound_topic_alias() {
    run_case("outbound_alias", "");
}

#[test]
fn v5_receive_maximum_exceeded() {
    run_case("receive_maximum", "[mqtt]\nmax_awaiting_rel = 2\n");
}

#[test]
fn v5_maximum_packet_size_both_ways() {
    run_case("packet_too_large", "[mqtt]\nmax_packet_size = 1024\n");
}

#[test]
fn v5_server_keepalive_announced_and_enforced() {
    run_case("server_keepalive", "[mqtt]\nserver_keepalive = \"1s\"\n");
}

#[test]
fn v5_takeover_disconnect_reason() {
    run_case("takeover", "");
}

#[test]
fn v5_auth_method_refused() {
    run_case("auth", "");
}

#[test]
fn v5_will_delay_and_disconnect_with_will() {
    run_case("will_delay", "");
}

#[test]
fn v5_no_resend_on_live_connection_resend_on_resume() {
    run_case(
        "no_resend_live_resend_on_resume",
        "[mqtt]\nretry_interval = \"1s\"\n",
    );
}
