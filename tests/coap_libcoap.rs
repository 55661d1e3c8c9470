//! The CoAP gateway end to end with libcoap's `coap-client` (Debian libcoap3-bin; installed by
//! scripts/install-test-deps.sh) on the CoAP side and rumqttc on the MQTT side, against the
//! real binary. `coap-client -v 6` logs every message it sends and receives as
//! `v:1 t:<type> c:<code> i:<mid> {<token>} [ <options> ]`; the tests read those lines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::mqtt::Client;
use common::{require_program, run_with_timeout, temp_dir, Broker};
use rumqttc::QoS;

/// Every RFC 7252 timer at ~100 ms so retransmission paths run fast.
const FAST: &str = r#"
[gateway.coap]
ack_timeout = "100ms"
"#;

fn coap_client() -> Option<&'static str> {
    ["coap-client-notls", "coap-client"]
        .into_iter()
        .find(|p| common::have_program(p))
        .or_else(|| {
            require_program("coap-client-notls");
            None
        })
}

fn uri(addr: SocketAddr, path_query: &str) -> String {
    format!("coap://{addr}{path_query}")
}

/// Runs one `coap-client` exchange; returns its whole output (stdout then stderr).
fn coap(prog: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(prog);
    cmd.args(["-v", "6"]).args(args);
    let (status, out, err) = run_with_timeout(&mut cmd, Duration::from_secs(20));
    assert!(
        status.is_some(),
        "coap-client timed out: {args:?}\n{out}\n{err}"
    );
    format!("{out}\n{err}")
}

/// The codes of every message received (`t:ACK c:2.04` → "ACK 2.04").
fn received(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.contains("v:1 t:"))
        .filter_map(|l| {
            let t = l.split("t:").nth(1)?.split_whitespace().next()?;
            let c = l.split("c:").nth(1)?.split_whitespace().next()?;
            Some(format!("{t} {c}"))
        })
        .filter(|s| s.split(' ').nth(1).is_some_and(|c| c.contains('.')))
        .collect()
}

fn assert_code(out: &str, code: &str) {
    let got = received(out);
    assert!(
        got.iter().any(|s| s.ends_with(code)),
        "expected a {code} response, got {got:?}\n{out}"
    );
}

fn spawn_observer(prog: &str, target: &str, secs: u32, dir: &std::path::Path) -> Child {
    let out = std::fs::File::create(dir.join("observer.out")).unwrap();
    let err = std::fs::File::create(dir.join("observer.err")).unwrap();
    // Line-buffered (coreutils' stdbuf), so the test can wait for each notification as it comes.
    Command::new("stdbuf")
        .args([
            "-oL",
            prog,
            "-v",
            "6",
            "-m",
            "get",
            "-s",
            &secs.to_string(),
            "-T",
            "ob",
            target,
        ])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap()
}

/// Waits (20 s guard) until the observer's output holds `needle`.
async fn wait_seen(dir: &std::path::Path, needle: &str) {
    for _ in 0..1000 {
        let out = std::fs::read_to_string(dir.join("observer.out")).unwrap_or_default();
        let err = std::fs::read_to_string(dir.join("observer.err")).unwrap_or_default();
        if out.contains(needle) || err.contains(needle) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the observer never showed {needle:?}");
}

fn wait_output(child: &mut Child, dir: &std::path::Path) -> String {
    let _ = common::wait_child(child, Duration::from_secs(30));
    let _ = child.kill();
    let out = std::fs::read_to_string(dir.join("observer.out")).unwrap_or_default();
    let err = std::fs::read_to_string(dir.join("observer.err")).unwrap_or_default();
    format!("{out}\n{err}")
}

#[tokio::test]
async fn post_publishes_to_mqtt_subscribers() {
    let Some(prog) = coap_client() else { return };
    let broker = Broker::start_with(FAST);
    let coap_addr = broker.listener("coap:udp:default");
    let mut sub = Client::connect(broker.mqtt_addr(), "sub").await;
    sub.subscribe("sensors/#", QoS::AtLeastOnce).await;
    let out = coap(
        prog,
        &[
            "-m",
            "post",
            "-e",
            "21.5",
            &uri(coap_addr, "/ps/sensors/t1?qos=1"),
        ],
    );
    assert_code(&out, "2.04");
    let p = sub.expect_publish("the CoAP POST").await;
    assert_eq!(p.topic, "sensors/t1");
    assert_eq!(&p.payload[..], b"21.5");
    assert_eq!(p.qos, QoS::AtLeastOnce);
    // A leading-slash topic is reachable too (docs/coap.md §3.3).
    let mut sub2 = Client::connect(broker.mqtt_addr(), "sub2").await;
    sub2.subscribe("/abc", QoS::AtMostOnce).await;
    let out = coap(
        prog,
        &["-m", "post", "-e", "x", &uri(coap_addr, "/ps//abc")],
    );
    assert_code(&out, "2.04");
    assert_eq!(sub2.expect_publish("/abc").await.topic, "/abc");
}

#[tokio::test]
async fn blockwise_publish_of_10_kib() {
    let Some(prog) = coap_client() else { return };
    let broker = Broker::start_with(FAST);
    let coap_addr = broker.listener("coap:udp:default");
    let mut sub = Client::connect(broker.mqtt_addr(), "sub").await;
    sub.subscribe("big", QoS::AtMostOnce).await;
    let dir = temp_dir("coap-block");
    let body: Vec<u8> = (0..10 * 1024u32).map(|i| (i % 253) as u8).collect();
    let file = dir.join("body");
    std::fs::write(&file, &body).unwrap();
    let f = file.to_string_lossy().into_owned();
    let out = coap(
        prog,
        &[
            "-m",
            "post",
            "-b",
            "1024",
            "-f",
            &f,
            &uri(coap_addr, "/ps/big"),
        ],
    );
    assert_code(&out, "2.04");
    // The final answer echoes the last Block1 (RFC 7959 §2.3): block 9 of 1024 bytes.
    assert!(
        out.contains("c:2.04") && out.contains("Block1:9/_/1024"),
        "{out}"
    );
    let p = sub.expect_publish("the reassembled body").await;
    assert_eq!(p.payload.len(), body.len());
    assert_eq!(&p.payload[..], &body[..]);
}

#[tokio::test]
async fn observe_wildcard_gets_non_and_con_notifications_then_unsubscribes() {
    let Some(prog) = coap_client() else { return };
    let broker = Broker::start_with(FAST);
    let coap_addr = broker.listener("coap:udp:default");
    let dir = temp_dir("coap-observe");
    let target = uri(coap_addr, "/ps/cmd/%23?clientid=obs1");
    let mut observer = spawn_observer(prog, &target, 4, &dir);
    let mut publisher = Client::connect(broker.mqtt_addr(), "pub").await;
    // The observe is registered once its 2.05 answer arrived.
    wait_seen(&dir, "2.05").await;
    publisher
        .publish("cmd/a", QoS::AtMostOnce, false, b"qos0-msg")
        .await;
    wait_seen(&dir, "qos0-msg").await;
    publisher
        .publish("cmd/b/c", QoS::AtLeastOnce, false, b"qos1-msg")
        .await;
    wait_seen(&dir, "qos1-msg").await;
    // GET with Observe=1 from the same client id (another source port): EMQX's 2.07.
    let unsub = coap(prog, &["-m", "get", "-O", "6,0x01", "-T", "ob", &target]);
    assert_code(&unsub, "2.07");
    publisher
        .publish("cmd/z", QoS::AtMostOnce, false, b"after-unsub")
        .await;
    let out = wait_output(&mut observer, &dir);
    assert!(
        out.contains("qos0-msg") && out.contains("qos1-msg"),
        "{out}"
    );
    assert!(
        !out.contains("after-unsub"),
        "notified after unsubscribe:\n{out}"
    );
    let got = received(&out);
    // notify_type = qos: QoS 0 → NON, QoS 1 → CON (EMQX 5.8.9 sends all NON:
    // docs/coap.md §3.12.1).
    assert!(got.iter().any(|s| s == "ACK 2.05"), "registration: {got:?}");
    assert!(
        got.iter().any(|s| s == "NON 2.05"),
        "NON notification: {got:?}"
    );
    assert!(
        got.iter().any(|s| s == "CON 2.05"),
        "CON notification: {got:?}"
    );
}

#[tokio::test]
async fn connection_mode_create_heartbeat_delete() {
    let Some(prog) = coap_client() else { return };
    let broker =
        Broker::start_with("[gateway.coap]\nack_timeout = \"100ms\"\nconnection_required = true\n");
    let a = broker.listener("coap:udp:default");
    let out = coap(
        prog,
        &["-m", "post", &uri(a, "/mqtt/connection?clientid=dev1")],
    );
    assert_code(&out, "2.01");
    let token = out
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no token in {out}"))
        .to_owned();
    let q = format!("?clientid=dev1&token={token}");
    assert_code(
        &coap(
            prog,
            &["-m", "put", &uri(a, &format!("/mqtt/connection{q}"))],
        ),
        "2.04",
    );
    // Short aliases work as well.
    let short = format!("/ps/t?c=dev1&t={token}");
    assert_code(
        &coap(prog, &["-m", "post", "-e", "x", &uri(a, &short)]),
        "2.04",
    );
    // Bad token, and a missing token (EMQX 5.8.9 stays silent: docs/coap.md §3.12.5), get 4.00.
    let bad = coap(
        prog,
        &[
            "-m",
            "post",
            "-e",
            "x",
            &uri(a, "/ps/t?clientid=dev1&token=1"),
        ],
    );
    assert_code(&bad, "4.00");
    assert_code(
        &coap(
            prog,
            &["-m", "post", "-e", "x", &uri(a, "/ps/t?clientid=dev1")],
        ),
        "4.00",
    );
    assert_code(
        &coap(prog, &["-m", "post", "-e", "x", &uri(a, "/ps/t")]),
        "4.00",
    );
    assert_code(
        &coap(
            prog,
            &["-m", "get", &uri(a, &format!("/mqtt/connection{q}"))],
        ),
        "4.05",
    );
    // Re-create (a rebooted device) gets a new token; the old one is refused.
    let again = coap(
        prog,
        &["-m", "post", &uri(a, "/mqtt/connection?clientid=dev1")],
    );
    assert_code(&again, "2.01");
    assert_code(
        &coap(
            prog,
            &["-m", "put", &uri(a, &format!("/mqtt/connection{q}"))],
        ),
        "4.00",
    );
    let token2 = again
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no token in {again}"))
        .to_owned();
    let q2 = format!("?clientid=dev1&token={token2}");
    assert_code(
        &coap(
            prog,
            &["-m", "delete", &uri(a, &format!("/mqtt/connection{q2}"))],
        ),
        "2.02",
    );
}

#[tokio::test]
async fn response_code_matrix() {
    let Some(prog) = coap_client() else { return };
    let broker = Broker::start_with(FAST);
    let a = broker.listener("coap:udp:default");
    let cases: &[(&[&str], &str, &str)] = &[
        (&["-m", "post", "-e", "x"], "/ps/t", "2.04"),
        (&["-m", "put", "-e", "x"], "/ps/t", "4.05"),
        (&["-m", "delete"], "/ps/t", "4.05"),
        (&["-m", "get"], "/ps/t", "4.00"),
        (&["-m", "post", "-e", "x"], "/ps", "4.00"),
        (&["-m", "post", "-e", "x"], "/other", "4.00"),
        (&["-m", "post", "-e", "x"], "/mqtt/other", "4.00"),
        (&["-m", "get"], "/mqtt/connection", "4.05"),
        (&["-m", "post", "-e", "x"], "/ps/t?qos=7", "4.00"),
        (&["-m", "post", "-e", "x"], "/ps/t?retain=maybe", "4.00"),
        (&["-m", "post", "-e", "x"], "/ps/t?expiry=soon", "4.00"),
        (&["-m", "post", "-e", "x"], "/ps/a/%23", "4.00"),
        (&["-m", "post"], "/mqtt/connection?clientid=c1", "2.01"),
        (&["-m", "delete"], "/mqtt/connection", "2.02"),
    ];
    for (args, path, code) in cases {
        let mut all: Vec<&str> = args.to_vec();
        let u = uri(a, path);
        all.push(&u);
        let out = coap(prog, &all);
        assert_code(&out, code);
    }
}
