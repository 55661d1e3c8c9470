//! Authentication and ACL over MQTT against the real binary: anonymous refused when off, right
//! and wrong passwords on MQTT 3.1.1 and 5 (rumqttc, mosquitto_pub -u/-P), users from the
//! bootstrap CSV, ACL allow/deny on publish and subscribe with `${username}` / `${clientid}`,
//! and the per-client publish rate limit (`mqtt.max_publish_rate`: above it the client is
//! disconnected, MQTT 5 reason 0x96).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::mqtt::{options, Client};
use common::{require_program, run_with_timeout, temp_dir, Broker};
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode as V5Code, Packet as V5Packet};
use rumqttc::v5::{AsyncClient as V5Client, ConnectionError as V5Error, Event as V5Event};
use rumqttc::QoS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// LwM2M is not under test here; keep its start-up independent of this suite.
const NO_LWM2M: &str = "\n[gateway.lwm2m]\nenable = false\n";

fn start(extra: &str) -> Broker {
    Broker::start_with(&format!("{extra}{NO_LWM2M}"))
}

const USERS: &str =
    "user_id,password,is_superuser\nalice,alice-pw,false\nbob,bob-pw,false\nroot,root-pw,true\n";

const ACL: &str = r##"
[[rule]]
permission = "allow"
action = "all"
topics = ["users/${username}/#", "devices/${clientid}/#"]

[[rule]]
permission = "allow"
action = "subscribe"
topics = ["public/#"]

[[rule]]
permission = "deny"
action = "all"
topics = ["#"]
"##;

/// Writes the bootstrap CSV and ACL file to a fresh temp dir; returns the config snippet.
fn security_toml(tag: &str, allow_anonymous: bool, acl: Option<&str>) -> (PathBuf, String) {
    let dir = temp_dir(tag);
    let users = dir.join("users.csv");
    std::fs::write(&users, USERS).unwrap();
    let acl_path = dir.join("acl.toml");
    if let Some(text) = acl {
        std::fs::write(&acl_path, text).unwrap();
    }
    let toml = format!(
        "[authentication]\nallow_anonymous = {allow_anonymous}\nbootstrap_file = \"{}\"\npassword_hash_algorithm = \"pbkdf2_sha256\"\n\n[authorization]\nfile = \"{}\"\n",
        esc(&users),
        esc(&acl_path),
    );
    (dir, toml)
}

fn esc(p: &Path) -> String {
    p.display().to_string().replace('\\', "\\\\")
}

fn with_credentials(
    addr: std::net::SocketAddr,
    id: &str,
    user: &str,
    pw: &str,
) -> rumqttc::MqttOptions {
    let mut o = options(addr, id);
    o.set_credentials(user, pw);
    o
}

/// SUBSCRIBE one filter and return its SUBACK code (the harness helper panics on failures).
async fn subscribe_code(c: &mut Client, filter: &str) -> rumqttc::SubscribeReasonCode {
    c.client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    match c
        .wait_for(Duration::from_secs(10), |p| {
            matches!(p, rumqttc::Packet::SubAck(_))
        })
        .await
    {
        Some(rumqttc::Packet::SubAck(a)) => a.return_codes[0],
        other => panic!("{filter}: no SUBACK: {other:?}"),
    }
}

/// Connects as bob over MQTT 5, runs `act`, and returns the first SUBACK/PUBACK (or the
/// event-loop error rumqttc raises for a failure code).
async fn v5_first_ack<F, Fut>(
    addr: std::net::SocketAddr,
    id: &str,
    act: F,
) -> Result<V5Packet, V5Error>
where
    F: FnOnce(V5Client) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut o = rumqttc::v5::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_credentials("bob", "bob-pw");
    let (c, mut ev) = V5Client::new(o, 10);
    act(c.clone()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let e = tokio::time::timeout_at(deadline, ev.poll())
            .await
            .expect("ack in time");
        match e {
            Ok(V5Event::Incoming(p @ (V5Packet::SubAck(_) | V5Packet::PubAck(_)))) => return Ok(p),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Whether the connection is still open after a short wait.
async fn still_connected(c: &mut Client) -> bool {
    c.wait_closed(Duration::from_millis(300)).await.is_none()
}

/// The MQTT 5 CONNACK code rumqttc sees (Success or the refusal).
async fn v5_connack(addr: std::net::SocketAddr, id: &str, creds: Option<(&str, &str)>) -> V5Code {
    let mut o = rumqttc::v5::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    if let Some((u, p)) = creds {
        o.set_credentials(u, p);
    }
    let (_client, mut ev) = V5Client::new(o, 10);
    let r = tokio::time::timeout(Duration::from_secs(10), ev.poll())
        .await
        .expect("CONNACK in time");
    match r {
        Ok(V5Event::Incoming(V5Packet::ConnAck(a))) => a.code,
        Err(V5Error::ConnectionRefused(code)) => code,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[tokio::test]
async fn anonymous_off_and_passwords_on_mqtt_311_and_5() {
    let (_dir, toml) = security_toml("authn", false, None);
    let broker = start(&toml);
    let addr = broker.mqtt_addr();

    // MQTT 3.1.1 (rumqttc v4): 0x05 without credentials, 0x04 for a wrong password.
    let e = Client::try_connect_with(options(addr, "anon"))
        .await
        .err()
        .unwrap();
    assert!(e.contains("NotAuthorized"), "{e}");
    let e = Client::try_connect_with(with_credentials(addr, "c1", "alice", "nope"))
        .await
        .err()
        .unwrap();
    assert!(e.contains("BadUserNamePassword"), "{e}");
    let e = Client::try_connect_with(with_credentials(addr, "c2", "mallory", "x"))
        .await
        .err()
        .unwrap();
    assert!(e.contains("BadUserNamePassword"), "unknown user: {e}");
    // A user from the bootstrap file gets in.
    Client::connect_with(with_credentials(addr, "c3", "alice", "alice-pw")).await;

    // MQTT 5 (rumqttc v5): 0x87 and 0x86.
    assert_eq!(
        v5_connack(addr, "v5anon", None).await,
        V5Code::NotAuthorized
    );
    assert_eq!(
        v5_connack(addr, "v5bad", Some(("bob", "alice-pw"))).await,
        V5Code::BadUserNamePassword
    );
    assert_eq!(
        v5_connack(addr, "v5ok", Some(("bob", "bob-pw"))).await,
        V5Code::Success
    );

    // Passwords never reach the log.
    let log = broker.log();
    for secret in ["alice-pw", "bob-pw", "root-pw", "nope"] {
        assert!(!log.contains(secret), "log leaks {secret}");
    }
    // Failures are counted.
    assert!(log.contains("authentication failed"), "{log}");
}

#[tokio::test]
async fn wrong_password_refused_even_with_anonymous_allowed() {
    let (_dir, toml) = security_toml("authn-anon", true, None);
    let broker = start(&toml);
    let addr = broker.mqtt_addr();
    Client::connect(addr, "anon-ok").await;
    let e = Client::try_connect_with(with_credentials(addr, "c1", "alice", "wrong"))
        .await
        .err()
        .unwrap();
    assert!(e.contains("BadUserNamePassword"), "{e}");
    assert_eq!(
        v5_connack(addr, "v5", Some(("alice", "wrong"))).await,
        V5Code::BadUserNamePassword
    );
}

#[tokio::test]
async fn listener_with_enable_authn_off_lets_anyone_in() {
    let (_dir, toml) = security_toml("authn-off", false, None);
    let broker = start(&format!(
        "{toml}\n[listeners.tcp.default]\nenable_authn = false\n"
    ));
    Client::connect(broker.mqtt_addr(), "anyone").await;
}

fn mosquitto_pub(addr: std::net::SocketAddr, args: &[&str]) -> (bool, String) {
    let port = addr.port().to_string();
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-t",
        "users/alice/t",
        "-m",
        "hi",
    ])
    .args(args);
    let (status, out, err) = run_with_timeout(&mut cmd, Duration::from_secs(20));
    let status = status.expect("mosquitto_pub finished");
    (status.success(), format!("{out}{err}"))
}

#[tokio::test]
async fn mosquitto_pub_with_username_and_password() {
    if !require_program("mosquitto_pub") {
        return;
    }
    let (_dir, toml) = security_toml("authn-mosq", false, Some(ACL));
    let broker = start(&toml);
    let addr = broker.mqtt_addr();
    let mut sub = Client::connect_with(with_credentials(addr, "watch", "root", "root-pw")).await;
    sub.subscribe("users/#", QoS::AtLeastOnce).await;

    for v in ["mqttv311", "mqttv5"] {
        let (ok, out) = mosquitto_pub(addr, &["-V", v, "-u", "alice", "-P", "alice-pw", "-q", "1"]);
        assert!(ok, "{v}: {out}");
        sub.expect_publish("mosquitto_pub with the right password")
            .await;
        let (ok, out) = mosquitto_pub(addr, &["-V", v, "-u", "alice", "-P", "wrong"]);
        assert!(!ok, "{v}: wrong password accepted: {out}");
        let lower = out.to_lowercase();
        assert!(
            lower.contains("bad user name or password")
                || lower.contains("bad username or password"),
            "{v}: {out}"
        );
        let (ok, out) = mosquitto_pub(addr, &["-V", v]);
        assert!(!ok, "{v}: anonymous accepted: {out}");
        assert!(out.to_lowercase().contains("not authori"), "{v}: {out}");
    }
    sub.expect_no_publish(
        Duration::from_millis(300),
        "refused clients published nothing",
    )
    .await;
}

#[tokio::test]
async fn acl_allows_and_denies_publish_and_subscribe_with_placeholders() {
    let (_dir, toml) = security_toml("authz", true, Some(ACL));
    let broker = start(&toml);
    let addr = broker.mqtt_addr();
    let mut root = Client::connect_with(with_credentials(addr, "root-c", "root", "root-pw")).await;
    root.subscribe("#", QoS::AtLeastOnce).await;

    // MQTT 3.1.1: own subtrees allowed, others' refused with SUBACK 0x80; denied publishes
    // are acknowledged and dropped.
    let mut alice =
        Client::connect_with(with_credentials(addr, "dev-a", "alice", "alice-pw")).await;
    alice.subscribe("users/alice/#", QoS::AtLeastOnce).await;
    alice.subscribe("devices/dev-a/+", QoS::AtLeastOnce).await;
    alice.subscribe("public/+/x", QoS::AtLeastOnce).await;
    for denied in ["users/bob/#", "#", "devices/dev-b/x"] {
        let code = subscribe_code(&mut alice, denied).await;
        assert!(
            matches!(code, rumqttc::SubscribeReasonCode::Failure),
            "{denied}: {code:?}"
        );
    }
    alice
        .publish("users/alice/t", QoS::AtLeastOnce, false, b"mine")
        .await;
    alice
        .publish("devices/dev-a/t", QoS::AtLeastOnce, false, b"mine too")
        .await;
    alice
        .publish("users/bob/t", QoS::AtLeastOnce, false, b"not mine")
        .await;
    alice
        .publish("public/t", QoS::AtMostOnce, false, b"subscribe-only")
        .await;
    let got: Vec<String> = root
        .publishes_for(Duration::from_millis(500))
        .await
        .into_iter()
        .map(|p| p.topic.clone())
        .collect();
    assert_eq!(got, vec!["users/alice/t", "devices/dev-a/t"]);
    assert!(
        still_connected(&mut alice).await,
        "deny_action = ignore keeps the client"
    );

    // MQTT 5: PUBACK 0x87 for a denied publish, SUBACK 0x87 for a denied subscription.
    // rumqttc v5 reports a failure code as an event-loop error carrying the reason.
    use rumqttc::v5::mqttbytes::v5::{PubAckReason, SubscribeReasonCode};
    use rumqttc::v5::mqttbytes::QoS as Q5;
    use rumqttc::v5::StateError;
    let sub = v5_first_ack(addr, "dev-b1", |c| async move {
        c.subscribe("users/alice/#", Q5::AtLeastOnce).await.unwrap();
    })
    .await;
    assert!(
        matches!(
            sub,
            Err(V5Error::MqttState(StateError::SubFail {
                reason: SubscribeReasonCode::NotAuthorized
            }))
        ),
        "{sub:?}"
    );
    let publ = v5_first_ack(addr, "dev-b2", |c| async move {
        c.publish("users/alice/x", Q5::AtLeastOnce, false, "no")
            .await
            .unwrap();
    })
    .await;
    assert!(
        matches!(
            publ,
            Err(V5Error::MqttState(StateError::PubAckFail {
                reason: PubAckReason::NotAuthorized
            }))
        ),
        "{publ:?}"
    );
    let ok = v5_first_ack(addr, "dev-b3", |c| async move {
        c.publish("users/bob/x", Q5::AtLeastOnce, false, "yes")
            .await
            .unwrap();
    })
    .await;
    assert!(
        matches!(&ok, Ok(V5Packet::PubAck(a)) if a.reason == PubAckReason::Success),
        "{ok:?}"
    );
    let p = root.expect_publish("bob's own topic").await;
    assert_eq!(p.topic, "users/bob/x");
}

#[tokio::test]
async fn deny_action_disconnect_closes_the_client() {
    let (_dir, toml) = security_toml("authz-disc", true, Some(ACL));
    let broker = start(&format!("{toml}deny_action = \"disconnect\"\n"));
    let addr = broker.mqtt_addr();
    let mut alice =
        Client::connect_with(with_credentials(addr, "dev-a", "alice", "alice-pw")).await;
    alice
        .client
        .publish("users/bob/t", QoS::AtLeastOnce, false, b"x".to_vec())
        .await
        .unwrap();
    assert!(
        alice.wait_closed(Duration::from_secs(5)).await.is_some(),
        "a denied publish disconnects"
    );
}

/// MQTT 5 CONNECT (clean start, keepalive 60) for `id`, as raw bytes.
fn v5_connect(id: &str) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 0];
    body.extend_from_slice(&(id.len() as u16).to_be_bytes());
    body.extend_from_slice(id.as_bytes());
    frame(0x10, &body)
}

/// MQTT 5 QoS 0 PUBLISH.
fn v5_publish(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = (topic.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(topic.as_bytes());
    body.push(0);
    body.extend_from_slice(payload);
    frame(0x30, &body)
}

fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128);
    let mut out = vec![first, body.len() as u8];
    out.extend_from_slice(body);
    out
}

/// Reads until EOF (or 10 s); returns everything the broker sent.
async fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return all,
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            Err(_) => panic!("connection not closed; got {all:02x?}"),
        }
    }
}

#[tokio::test]
async fn publish_rate_limit_disconnects_a_flooding_client() {
    let broker = start("[mqtt]\nmax_publish_rate = 10\n");
    let addr = broker.mqtt_addr();
    // Under the limit: 5 publishes at once (within the burst), then one per 150 ms.
    let mut calm = Client::connect(addr, "calm").await;
    for i in 0..12 {
        calm.publish("calm/t", QoS::AtMostOnce, false, b"x").await;
        if i >= 5 {
            // Pacing, not synchronization: the limit is a rate (10/s), so a calm client has to
            // spread its publishes over time; 150 ms apart stays under it.
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
    assert!(
        still_connected(&mut calm).await,
        "a client within the rate stays"
    );

    // 100 publishes in one write: DISCONNECT 0x96 (Message rate too high), then close.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&v5_connect("flood")).await.unwrap();
    let mut connack = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut connack))
        .await
        .expect("CONNACK in time")
        .unwrap();
    assert_eq!(connack[0], 0x20, "CONNACK first");
    let mut props = vec![0u8; usize::from(connack[1])];
    s.read_exact(&mut props).await.unwrap();
    assert_eq!(props[1], 0, "accepted");
    let mut out = Vec::new();
    for _ in 0..100 {
        out.extend(v5_publish("flood/t", b"payload"));
    }
    s.write_all(&out).await.unwrap();
    let got = read_to_close(&mut s).await;
    assert_eq!(got.first(), Some(&0xE0), "DISCONNECT: {got:02x?}");
    assert_eq!(got.get(2), Some(&0x96), "reason 0x96: {got:02x?}");
}
