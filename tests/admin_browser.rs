//! The dashboard in headless Chromium (Debian's /usr/bin/chromium driven by npm
//! `playwright-core` from tests/admin_browser; no browser download): log in with admin/public,
//! change the forced password, see an MQTT client connected by this test in the clients table
//! next to the MQTT-SN and CoAP clients it also connects (protocol column), and kick it (the
//! TCP connection really closes), use the WebSocket tool with MQTT 5 and 3.1.1 to subscribe and
//! publish (a TCP subscriber of this test receives both), create an API key on the admins page,
//! find its subscriptions, topics and a retained message on their pages, open the overview,
//! trace a publishing client on the log trace page (its lines in the viewer, then stopped),
//! add, reorder, disable and delete an HTTP authenticator and test a login through the chain on
//! the authentication page, add, move and delete an HTTP source and change the settings on the
//! authorization page, open the gateways page,
//! switch to 简体中文 and see the navigation translated. Screenshots go to target/screenshots/.
//!
//! Needs node, chromium and tests/admin_browser/node_modules (scripts/install-test-deps.sh);
//! `SY_SKIP_EXTERNAL_CLIENTS=1` turns their absence into a skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::mqtt::{text, Client};
use common::{require_program, run_with_timeout, Broker};
use rumqttc::QoS;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const RUN_TIMEOUT: Duration = Duration::from_secs(150);
const STEPS: [&str; 13] = [
    "login",
    "change_password",
    "client_listed",
    "kick",
    "websocket_roundtrip",
    "admins",
    "lists",
    "overview",
    "trace",
    "security",
    "rules",
    "gateways",
    "chinese",
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/admin_browser")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

fn prerequisites() -> bool {
    if !require_program("node") {
        return false;
    }
    let missing: Vec<String> = [
        (
            chromium().exists(),
            format!("{} (Debian package chromium)", chromium().display()),
        ),
        (
            dir().join("node_modules/playwright-core").is_dir(),
            "tests/admin_browser/node_modules/playwright-core (npm ci)".to_owned(),
        ),
    ]
    .into_iter()
    .filter(|(ok, _)| !ok)
    .map(|(_, what)| what)
    .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var_os("SY_SKIP_EXTERNAL_CLIENTS").is_some() {
        eprintln!("skipping: missing {missing:?} and SY_SKIP_EXTERNAL_CLIENTS is set");
        return false;
    }
    panic!(
        "missing {missing:?}: run scripts/install-test-deps.sh (or set SY_SKIP_EXTERNAL_CLIENTS=1)"
    );
}

/// An MQTT-SN client (CONNECT, clean session, keepalive 60 s), kept open by the returned socket.
async fn mqttsn_connect(gw: std::net::SocketAddr, id: &str) -> tokio::net::UdpSocket {
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.connect(gw).await.unwrap();
    let mut connect = vec![
        u8::try_from(6 + id.len()).unwrap(),
        0x04,
        0x04,
        0x01,
        0x00,
        0x3c,
    ];
    connect.extend_from_slice(id.as_bytes());
    udp.send(&connect).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), udp.recv(&mut buf))
        .await
        .expect("MQTT-SN CONNACK in time")
        .unwrap();
    assert_eq!(&buf[..n], &[0x03, 0x05, 0x00], "MQTT-SN CONNACK accepted");
    udp
}

/// A CoAP client in connection mode (CON POST /mqtt/connection?clientid=...).
async fn coap_connect(gw: std::net::SocketAddr, id: &str) -> tokio::net::UdpSocket {
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.connect(gw).await.unwrap();
    let query = format!("clientid={id}");
    let mut req = vec![0x41, 0x02, 0x00, 0x01, 0x7a, 0xb4];
    req.extend_from_slice(b"mqtt");
    req.push(0x0a);
    req.extend_from_slice(b"connection");
    req.push(0x4d);
    req.push(u8::try_from(query.len() - 13).unwrap());
    req.extend_from_slice(query.as_bytes());
    udp.send(&req).await.unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), udp.recv(&mut buf))
        .await
        .expect("CoAP answer in time")
        .unwrap();
    assert!(
        n >= 4 && buf[1] == 0x41,
        "CoAP 2.01 expected: {:?}",
        &buf[..n]
    );
    udp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium() {
    if !prerequisites() {
        return;
    }
    let broker = Broker::start();
    let mut victim = Client::connect(broker.mqtt_addr(), "browser-kick-me").await;
    let mut sub = Client::connect(broker.mqtt_addr(), "browser-tcp-sub").await;
    sub.subscribe("browser/ws/#", QoS::AtLeastOnce).await;
    sub.publish("browser/retained", QoS::AtLeastOnce, true, b"kept")
        .await;
    let _sn = mqttsn_connect(broker.listener("mqttsn:udp:default"), "browser-sn").await;
    let _coap = coap_connect(broker.listener("coap:udp:default"), "browser-coap").await;
    // Some traffic, so the overview's rate chart has something to draw.
    let mut load = Client::connect(broker.mqtt_addr(), "browser-load").await;
    load.subscribe("browser/load", QoS::AtMostOnce).await;
    let load_task = tokio::spawn(async move {
        for i in 0u32.. {
            load.publish("browser/load", QoS::AtMostOnce, false, &i.to_be_bytes())
                .await;
            // Pacing, not synchronization: the chart plots a message rate over time, so the
            // traffic is spread out, at uneven intervals so that the line moves.
            tokio::time::sleep(Duration::from_millis(40 + u64::from(i % 7) * 10)).await;
        }
    });

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    let mut cmd = Command::new("node");
    cmd.arg(dir().join("run.mjs"))
        .current_dir(dir())
        .env(
            "SY_DASHBOARD_URL",
            format!("http://{}", broker.listener("dashboard:http:default")),
        )
        .env("SY_KICK_CLIENT", "browser-kick-me")
        .env("SY_OTHER_CLIENTS", "browser-sn=MQTT-SN,browser-coap=CoAP")
        .env("SY_WS_TOPIC", "browser/ws/1")
        .env("SY_TRACE_CLIENT", "browser-load")
        .env("SY_SHOT_DIR", &shots);
    let (status, out, err) =
        tokio::task::spawn_blocking(move || run_with_timeout(&mut cmd, RUN_TIMEOUT))
            .await
            .unwrap();
    load_task.abort();
    let report = format!("status {status:?}\n--- stdout ---\n{out}\n--- stderr ---\n{err}");
    for step in STEPS {
        assert!(
            out.lines().any(|l| l == format!("OK {step}")),
            "step {step} did not pass\n{report}"
        );
    }
    assert!(status.is_some_and(|s| s.success()), "{report}");
    assert!(
        victim.wait_closed(Duration::from_secs(5)).await.is_some(),
        "kicked client still connected"
    );
    let p = sub.expect_publish("the WebSocket tool's message").await;
    assert_eq!(p.topic, "browser/ws/1");
    assert_eq!(text(&p), "from-the-browser");
    let p = sub
        .expect_publish("the WebSocket tool's MQTT 3.1.1 message")
        .await;
    assert_eq!(text(&p), "from-the-browser-311");
    assert!(shots.join("dashboard-overview.png").exists());
}
