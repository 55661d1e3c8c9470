//! The LwM2M gateway end to end with an aiocoap device (Python, PyPI;
//! scripts/install-test-deps.sh installs it) and a paho-mqtt back-end: register, read, text
//! write, execute, observe → notify, de-register. The case lives in tests/py/lwm2m_aiocoap.py.
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

#[test]
fn aiocoap_device_register_read_write_execute_observe() {
    if !aiocoap_available() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let broker = Broker::start_with(&format!(
        "[gateway.lwm2m]\nxml_dir = \"{}\"\n",
        root.join("config/lwm2m_xml").display()
    ));
    let mut cmd = Command::new("python3");
    cmd.arg(root.join("tests/py/lwm2m_aiocoap.py")).args([
        broker.listener("lwm2m:udp:default").to_string(),
        broker.mqtt_addr().to_string(),
    ]);
    let (status, out, err) = run_with_timeout(&mut cmd, Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()) && out.contains("OK lwm2m"),
        "aiocoap case failed: {status:?}\nstdout:\n{out}\nstderr:\n{err}\nbroker:\n{}",
        broker.log_excerpt()
    );
}
