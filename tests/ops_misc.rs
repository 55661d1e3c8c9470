//! Small operations features: the Prometheus endpoint scraped without credentials by default
//! (`prometheus.enable_basic_auth`, as EMQX 5) and `switchyard check-config`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{bin, temp_dir, Broker};
use std::process::Command;

#[tokio::test]
async fn prometheus_is_scraped_without_credentials_unless_basic_auth_is_enabled() {
    let broker = Broker::start();
    let url = format!(
        "http://{}/api/v5/prometheus/stats",
        broker.listener("dashboard:http:default")
    );
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(text.contains("switchyard_messages_received"), "{text}");
    // Everything else still needs a token.
    let other = url.replace("/prometheus/stats", "/metrics");
    assert_eq!(
        reqwest::get(&other).await.unwrap().status(),
        reqwest::StatusCode::UNAUTHORIZED
    );

    let locked = Broker::start_with("[prometheus]\nenable_basic_auth = true\n");
    let url = format!(
        "http://{}/api/v5/prometheus/stats",
        locked.listener("dashboard:http:default")
    );
    assert_eq!(
        reqwest::get(&url).await.unwrap().status(),
        reqwest::StatusCode::UNAUTHORIZED
    );
}

#[test]
fn check_config_accepts_a_valid_file_and_names_the_key_of_a_bad_one() {
    let dir = temp_dir("check-config");
    let good = dir.join("good.toml");
    std::fs::write(&good, "[mqtt]\nmax_inflight = 10\n").unwrap();
    let out = Command::new(bin())
        .args(["check-config", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration OK"));

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[flapping_detect]\nenable = true\nmax_count = 0\n").unwrap();
    let out = Command::new(bin())
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("flapping_detect.max_count"), "{err}");
    assert_eq!(err.matches("invalid configuration").count(), 1, "{err}");

    // Environment overrides are checked too.
    let out = Command::new(bin())
        .args(["check-config", "--config"])
        .arg(&good)
        .env("SWITCHYARD_MQTT__MAX_INFLIGHT", "not-a-number")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_inflight"), "{err}");
}
