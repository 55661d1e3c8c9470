//! Acknowledgements for packet ids that are not in flight — unknown, duplicate, late, or of the
//! wrong kind — on MQTT 3.1.1 and MQTT 5, on an idle and on a busy window. Each is ignored or
//! answered as the spec says (PUBREL/PUBCOMP with 0x92 "Packet Identifier not found" on MQTT 5),
//! counted under EMQX's `packets.*.missed` names, and the connection stays open: a PINGREQ right
//! after gets its PINGRESP. (Issue 13: a PUBACK on an empty window used to panic the connection.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;
mod common;

use admin_support::Api;
use common::raw::{
    packet, publish, subscribe, Connect, Got, Raw, CONNACK, PINGREQ, PINGRESP, PUBACK, PUBCOMP,
    PUBLISH, PUBREC, PUBREL, SUBACK, WAIT,
};
use common::Broker;
use std::net::SocketAddr;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Version {
    V311,
    V5,
}

/// A connected raw client of `version`.
fn connect(addr: SocketAddr, id: &str, version: Version) -> Raw {
    match version {
        Version::V311 => Raw::connect_with(addr, &Connect::v311(id)),
        Version::V5 => {
            let mut raw = Raw::open(addr);
            let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 0];
            body.extend_from_slice(&(id.len() as u16).to_be_bytes());
            body.extend_from_slice(id.as_bytes());
            raw.send(&packet(0x10, &body));
            match raw.read(WAIT) {
                Got::Packet(CONNACK, b) => assert_eq!(b[1], 0, "v5 CONNACK refused {id}"),
                other => panic!("expected CONNACK for {id}, got {other:?}"),
            }
            raw
        }
    }
}

/// An acknowledgement packet (first byte `kind`) for `pkid`, success, no properties.
fn ack(kind: u8, pkid: u16) -> Vec<u8> {
    packet(kind, &pkid.to_be_bytes())
}

/// The next packet must be `kind` for `pkid`, with reason `reason` on MQTT 5 (absent or 0 on
/// 3.1.1, where acknowledgements carry no reason code).
fn expect_ack(raw: &mut Raw, kind: u8, pkid: u16, reason: u8, version: Version, what: &str) {
    match raw.read(WAIT) {
        Got::Packet(k, body) if k == kind => {
            assert_eq!(&body[..2], &pkid.to_be_bytes(), "{what}: packet id");
            let got = body.get(2).copied().unwrap_or(0);
            match version {
                Version::V311 => assert_eq!(body.len(), 2, "{what}: 3.1.1 ack has no reason"),
                Version::V5 => assert_eq!(got, reason, "{what}: reason code"),
            }
        }
        other => panic!("{what}: expected {kind:#x} for {pkid}, got {other:?}"),
    }
}

/// The connection is alive: PINGREQ → PINGRESP, and nothing else came before it.
fn expect_alive(raw: &mut Raw, what: &str) {
    raw.send(&[PINGREQ, 0]);
    match raw.read(WAIT) {
        Got::Packet(PINGRESP, _) => {}
        other => panic!("{what}: expected PINGRESP, got {other:?}"),
    }
}

/// Stray acknowledgements on a window with nothing in flight.
fn idle_window(addr: SocketAddr, version: Version) {
    let tag = format!("idle-{version:?}");
    let mut c = connect(addr, &tag, version);
    c.send(&ack(PUBACK, 5));
    expect_alive(&mut c, "after a PUBACK for an id never sent");
    c.send(&ack(PUBCOMP, 8));
    expect_alive(&mut c, "after a PUBCOMP for an id never sent");
    c.send(&ack(PUBREC, 6));
    // MQTT 5 §4.3.3 / MQTT-4.3.3: PUBREL follows a PUBREC; 0x92 says the id is unknown.
    expect_ack(
        &mut c,
        PUBREL,
        6,
        0x92,
        version,
        "PUBREL for an unknown PUBREC",
    );
    expect_alive(&mut c, "after a PUBREC for an id never sent");
    c.send(&ack(PUBREL, 7));
    // MQTT-4.3.3-11: PUBCOMP even for an unknown id; MQTT 5 says which with 0x92.
    expect_ack(
        &mut c,
        PUBCOMP,
        7,
        0x92,
        version,
        "PUBCOMP for an unknown PUBREL",
    );
    expect_alive(&mut c, "after a PUBREL for an id not awaiting release");
}

/// Reads one PUBLISH and returns (qos, packet id).
fn delivered(raw: &mut Raw, what: &str) -> (u8, u16) {
    match raw.read(WAIT) {
        Got::Packet(h, body) if h & 0xF0 == PUBLISH => {
            let (_, _, pkid, _) = common::raw::split_publish(h, &body);
            ((h >> 1) & 3, pkid.expect("QoS > 0 has a packet id"))
        }
        other => panic!("{what}: expected PUBLISH, got {other:?}"),
    }
}

/// Stray, duplicate, late and wrong-kind acknowledgements while a QoS 1 and a QoS 2 delivery
/// are in flight; the real acknowledgements still complete both flows afterwards.
fn busy_window(addr: SocketAddr, version: Version) {
    let tag = format!("busy-{version:?}");
    let mut sub = connect(addr, &format!("{tag}-sub"), version);
    let topic = format!("{tag}/t");
    let sub_packet = match version {
        Version::V311 => subscribe(1, &topic, 2),
        Version::V5 => {
            // Subscription options after the filter; properties length 0 before it.
            let mut body = vec![0, 1, 0];
            body.extend_from_slice(&(topic.len() as u16).to_be_bytes());
            body.extend_from_slice(topic.as_bytes());
            body.push(2);
            packet(0x82, &body)
        }
    };
    sub.send(&sub_packet);
    match sub.read(WAIT) {
        Got::Packet(SUBACK, body) => assert_eq!(*body.last().unwrap(), 2, "granted QoS 2"),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    let mut publisher = Raw::connect(addr, &format!("{tag}-pub"));
    publisher.send(&publish(&topic, 1, 1, b"one"));
    publisher.send(&publish(&topic, 2, 2, b"two"));
    let (q1, a) = delivered(&mut sub, "QoS 1 delivery");
    let (q2, b) = delivered(&mut sub, "QoS 2 delivery");
    assert_eq!((q1, q2), (1, 2));
    assert_ne!(a, b);
    let unknown = a.max(b).wrapping_add(100).max(1);

    sub.send(&ack(PUBACK, unknown));
    sub.send(&ack(PUBACK, b)); // wrong kind: b is a QoS 2 delivery
    sub.send(&ack(PUBCOMP, a)); // wrong kind: a is a QoS 1 delivery, and too early
    sub.send(&ack(PUBCOMP, b)); // too early: b has not been PUBREC'd
    expect_alive(&mut sub, "after stray acks on a busy window");

    sub.send(&ack(PUBACK, a));
    sub.send(&ack(PUBACK, a)); // duplicate: a is free already
    expect_alive(&mut sub, "after a duplicate PUBACK");

    sub.send(&ack(PUBREC, b));
    expect_ack(
        &mut sub,
        PUBREL,
        b,
        0,
        version,
        "PUBREL for the real PUBREC",
    );
    sub.send(&ack(PUBREC, b)); // repeated PUBREC: PUBREL again (our PUBREL may be lost)
    expect_ack(
        &mut sub,
        PUBREL,
        b,
        0,
        version,
        "PUBREL again for a repeated PUBREC",
    );
    sub.send(&ack(PUBCOMP, b));
    sub.send(&ack(PUBCOMP, b)); // late duplicate
    sub.send(&ack(PUBREC, a)); // late: a was acknowledged long ago
    expect_ack(
        &mut sub,
        PUBREL,
        a,
        0x92,
        version,
        "PUBREL for a late PUBREC",
    );
    expect_alive(&mut sub, "after late acknowledgements");

    // The window is intact: a new delivery flows and nothing was redelivered meanwhile.
    publisher.send(&publish(&topic, 1, 3, b"three"));
    let (q, c) = delivered(&mut sub, "delivery after the stray acks");
    assert_eq!(q, 1);
    sub.send(&ack(PUBACK, c));
    expect_alive(&mut sub, "after the last PUBACK");
}

/// The node's metrics, from the REST API.
fn metrics(broker: &Broker) -> serde_json::Value {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let api = Api::ready(broker).await;
        api.get("/api/v5/metrics?aggregate=true").await.1
    })
}

#[test]
fn stray_acks_are_answered_counted_and_keep_the_connection() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    for version in [Version::V311, Version::V5] {
        idle_window(addr, version);
        busy_window(addr, version);
    }
    // Per version: idle 1 PUBACK, 1 PUBCOMP, 1 PUBREC, 1 PUBREL; busy 3 PUBACK (unknown, wrong
    // kind, duplicate), 3 PUBCOMP (wrong kind, too early, late duplicate), 1 PUBREC (late).
    let m = metrics(&broker);
    assert_eq!(m["packets.puback.missed"], 2 * 4, "{m}");
    assert_eq!(m["packets.pubcomp.missed"], 2 * 4, "{m}");
    assert_eq!(m["packets.pubrec.missed"], 2 * 2, "{m}");
    assert_eq!(m["packets.pubrel.missed"], 2, "{m}");
    assert!(
        !broker.log().contains("panicked"),
        "a panic in the broker log"
    );
}
