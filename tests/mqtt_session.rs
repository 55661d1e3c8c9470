//! Session state across connections, with hand-written bytes so every ack is under the test's
//! control: redelivery of unacknowledged QoS 1/2 state on resume (MQTT-4.4.0-1), takeover of a
//! persistent session, will options, and `$SYS` presence events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::mqtt::{options, text, will, Client};
use common::raw::{
    packet, publish, split_publish, Connect, Got, Raw, CONNACK, PUBLISH, PUBREL, WAIT,
};
use common::Broker;
use rumqttc::QoS;

const PUBACK: u8 = 0x40;
const PUBREC: u8 = 0x50;
const PUBCOMP: u8 = 0x70;

fn persistent(id: &str) -> Connect {
    let mut c = Connect::v311(id);
    c.flags = 0x00; // clean session 0
    c
}

/// Connects with clean session 0 and returns the connection and the session-present flag.
fn resume(addr: std::net::SocketAddr, id: &str) -> (Raw, bool) {
    let mut raw = Raw::open(addr);
    raw.send(&persistent(id).encode());
    match raw.read(WAIT) {
        Got::Packet(CONNACK, body) => {
            assert_eq!(body.len(), 2);
            assert_eq!(body[1], 0, "CONNACK refused");
            (raw, body[0] & 1 == 1)
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

fn read_publish(raw: &mut Raw, what: &str) -> (u8, String, Option<u16>, Vec<u8>) {
    match raw.read(WAIT) {
        Got::Packet(h, body) if h & 0xF0 == PUBLISH => split_publish(h, &body),
        other => panic!("expected PUBLISH ({what}), got {other:?}"),
    }
}

/// An unacknowledged QoS 1 delivery is resent on resume with DUP set and its original packet
/// id (MQTT-4.4.0-1, MQTT-3.3.1-1).
#[test]
fn unacked_qos1_is_redelivered_with_dup_on_resume() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let (mut sub, present) = resume(addr, "redeliver-1");
    assert!(!present);
    sub.subscribe(1, "rd/t", 1);
    let mut p = Raw::connect(addr, "redeliver-1-pub");
    p.send(&publish("rd/t", 1, 9, b"unacked"));
    assert_eq!(p.read(WAIT), Got::Packet(PUBACK, vec![0, 9]));

    let (flags, topic, pkid, payload) = read_publish(&mut sub, "first delivery");
    assert_eq!(
        (topic.as_str(), payload.as_slice()),
        ("rd/t", &b"unacked"[..])
    );
    assert_eq!(flags & 0x08, 0, "first delivery must not have DUP");
    let pkid = pkid.unwrap();
    drop(sub); // no PUBACK

    let (mut sub, present) = resume(addr, "redeliver-1");
    assert!(present, "session present after resume");
    let (flags, topic, pkid2, payload) = read_publish(&mut sub, "redelivery");
    assert_eq!(
        (topic.as_str(), payload.as_slice()),
        ("rd/t", &b"unacked"[..])
    );
    assert_eq!(flags & 0x06, 0x02, "redelivered at QoS 1");
    assert_eq!(
        flags & 0x08,
        0x08,
        "a redelivery must set DUP (MQTT-3.3.1-1)"
    );
    assert_eq!(
        pkid2,
        Some(pkid),
        "redelivery keeps the original packet id (MQTT-4.4.0-1)"
    );
    sub.send(&packet(PUBACK, &pkid.to_be_bytes()));
    assert_eq!(
        sub.read(Duration::from_millis(500)),
        Got::Timeout,
        "nothing more after the PUBACK"
    );
}

/// QoS 2 outbound interrupted after PUBREC: on resume the broker resends PUBREL, not the
/// PUBLISH (MQTT-4.4.0-1), and the message is not delivered twice.
#[test]
fn qos2_pubrel_is_resent_on_resume() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let (mut sub, _) = resume(addr, "rel-1");
    sub.subscribe(1, "rel/t", 2);
    let mut p = Raw::connect(addr, "rel-1-pub");
    p.send(&publish("rel/t", 2, 3, b"exactly once"));
    assert_eq!(p.read(WAIT), Got::Packet(PUBREC, vec![0, 3]));
    p.send(&packet(PUBREL, &[0, 3]));
    assert_eq!(p.read(WAIT), Got::Packet(PUBCOMP, vec![0, 3]));

    let (flags, _, pkid, payload) = read_publish(&mut sub, "QoS 2 delivery");
    assert_eq!(flags & 0x06, 0x04, "QoS 2");
    assert_eq!(payload, b"exactly once");
    let pkid = pkid.unwrap();
    sub.send(&packet(PUBREC, &pkid.to_be_bytes()));
    assert_eq!(
        sub.read(WAIT),
        Got::Packet(PUBREL, pkid.to_be_bytes().to_vec())
    );
    drop(sub); // no PUBCOMP

    let (mut sub, present) = resume(addr, "rel-1");
    assert!(present);
    assert_eq!(
        sub.read(WAIT),
        Got::Packet(PUBREL, pkid.to_be_bytes().to_vec()),
        "on resume the broker must resend the PUBREL (and not the PUBLISH)"
    );
    sub.send(&packet(PUBCOMP, &pkid.to_be_bytes()));
    assert_eq!(
        sub.read(Duration::from_millis(500)),
        Got::Timeout,
        "the QoS 2 message must not be delivered again"
    );
}

/// Takeover of a persistent session: the new connection gets session present, the
/// subscription, and what was queued; the old connection is closed.
#[tokio::test]
async fn takeover_moves_the_persistent_session() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut opts = options(addr, "moving");
    opts.set_clean_session(false);
    let mut first = Client::connect_with(opts.clone()).await;
    first.subscribe("moving/t", QoS::AtLeastOnce).await;
    let mut second = Client::connect_with(opts).await;
    assert!(
        second.connack.session_present,
        "the taken-over session must be present for the new connection"
    );
    assert!(
        first.wait_closed(WAIT).await.is_some(),
        "old connection not closed"
    );
    let mut publisher = Client::connect(addr, "moving-pub").await;
    publisher
        .publish("moving/t", QoS::AtLeastOnce, false, b"to the new owner")
        .await;
    let p = second
        .expect_publish("via the taken-over subscription")
        .await;
    assert_eq!(text(&p), "to the new owner");
    second
        .expect_no_publish(Duration::from_millis(500), "one copy")
        .await;
}

/// A retained will is stored: a later subscriber gets it with the retain flag.
#[tokio::test]
async fn retained_will_is_stored() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut opts = options(addr, "will-retained");
    opts.set_last_will(will("wr/status", b"offline", QoS::AtLeastOnce, true));
    let mut watcher = Client::connect(addr, "will-retained-watch").await;
    watcher.subscribe("wr/status", QoS::AtLeastOnce).await;
    Client::connect_with(opts).await.abort();
    let p = watcher.expect_publish("the will").await;
    assert_eq!(text(&p), "offline");
    assert!(!p.retain, "live delivery clears retain (MQTT-3.3.1-9)");
    let mut late = Client::connect(addr, "will-retained-late").await;
    late.subscribe("wr/status", QoS::AtLeastOnce).await;
    let p = late
        .expect_publish("the retained will, for a later subscriber")
        .await;
    assert_eq!(text(&p), "offline");
    assert!(p.retain, "a will with the retain flag is retained");
}

/// Takeover closes the old connection; whether its will fires then is not settled by MQTT
/// 3.1.1 (brokers differ), but it must not fire more than once, and the new connection's
/// normal DISCONNECT adds none.
#[tokio::test]
async fn will_fires_at_most_once_on_takeover() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut watcher = Client::connect(addr, "wt-watch").await;
    watcher.subscribe("wt/will", QoS::AtLeastOnce).await;
    let mut opts = options(addr, "wt-client");
    opts.set_last_will(will("wt/will", b"gone", QoS::AtLeastOnce, false));
    let mut first = Client::connect_with(opts.clone()).await;
    let second = Client::connect_with(opts).await;
    assert!(first.wait_closed(WAIT).await.is_some());
    second.disconnect().await;
    let wills = watcher.publishes_for(Duration::from_millis(800)).await;
    assert!(
        wills.len() <= 1,
        "a will may fire at most once per takeover, got {}",
        wills.len()
    );
}

/// `$SYS/brokers/<node>/clients/<id>/connected` and `.../disconnected` events (EMQX names,
/// `[sys_topics] client_connected/client_disconnected`, on by default).
#[tokio::test]
async fn sys_client_presence_events() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut watcher = Client::connect(addr, "presence-watch").await;
    watcher
        .subscribe("$SYS/brokers/+/clients/+/+", QoS::AtMostOnce)
        .await;
    let c = Client::connect(addr, "presence-subject").await;
    let p = watcher.expect_publish("connected event").await;
    assert!(
        p.topic.starts_with("$SYS/brokers/")
            && p.topic.ends_with("/clients/presence-subject/connected"),
        "topic {:?}",
        p.topic
    );
    assert!(
        text(&p).contains("\"clientid\":\"presence-subject\""),
        "payload {:?}",
        text(&p)
    );
    c.disconnect().await;
    let p = watcher.expect_publish("disconnected event").await;
    assert!(
        p.topic.ends_with("/clients/presence-subject/disconnected"),
        "topic {:?}",
        p.topic
    );
}
