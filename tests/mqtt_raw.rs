//! Protocol-violation and edge cases with hand-written bytes: the offending connection is closed
//! (or refused with the right CONNACK code) and the broker keeps serving everyone else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::raw::{
    assert_round_trip, mqtt_str, packet, publish, split_publish, subscribe, Connect, Got, Raw,
    CONNACK, DISCONNECT, PINGREQ, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK,
    SUBSCRIBE, WAIT,
};
use common::Broker;

const SMALL_LIMIT: &str = "[mqtt]\nmax_packet_size = 1024\n";

/// A connection that sent a bad packet is closed without any successful reply.
fn assert_closed_without_reply(raw: &mut Raw, why: &str) {
    let seen = raw.expect_closed(why);
    assert!(
        seen.is_empty(),
        "nothing may be answered to a malformed packet ({why}), got {seen:?}"
    );
}

#[test]
fn oversize_publish_closes_only_that_connection() {
    let broker = Broker::start_with(SMALL_LIMIT);
    let addr = broker.mqtt_addr();
    let mut sub = Raw::connect(addr, "big-sub");
    sub.subscribe(1, "big/#", 0);
    let mut other = Raw::connect(addr, "big-pub-ok");

    // Just under the limit: accepted and delivered (the limit is not enforced too low).
    // 1 (header) + 2 (varint) + 2 + 5 ("big/a") + 1000 = 1010 bytes <= 1024.
    let fits = vec![b'f'; 1000];
    other.send(&publish("big/a", 0, 0, &fits));
    let (_, topic, payload) = sub.expect_publish("a 1010-byte publish under a 1024 limit");
    assert_eq!((topic.as_str(), payload.len()), ("big/a", 1000));

    // Remaining length 4096 > max_packet_size: that connection is closed, and nothing from it
    // reaches subscribers.
    let mut big = Raw::connect(addr, "big-pub");
    big.send(&publish("big/b", 0, 0, &vec![b'x'; 4096 - 7]));
    assert_closed_without_reply(&mut big, "PUBLISH larger than max_packet_size");

    other.send(&publish("big/c", 0, 0, b"after"));
    let (_, topic, payload) = sub.expect_publish("the other client still works");
    assert_eq!(
        (topic.as_str(), payload.as_slice()),
        ("big/c", &b"after"[..]),
        "the oversize publish must not be delivered"
    );
    assert_round_trip(addr, "big");
}

/// ARCHITECTURE.md habit 3: an oversize frame is refused from its header, before its body arrives.
#[test]
fn oversize_packet_refused_from_its_header() {
    let broker = Broker::start_with(SMALL_LIMIT);
    let addr = broker.mqtt_addr();
    let mut big = Raw::connect(addr, "hdr-only");
    // Fixed header announcing 1 MiB, and no body at all.
    let mut header = vec![PUBLISH];
    header.extend(common::raw::varint(1 << 20));
    big.send(&header);
    assert_closed_without_reply(&mut big, "announced remaining length over max_packet_size");
    assert_round_trip(addr, "hdr");
}

/// An oversize CONNECT is refused too (before any session exists).
#[test]
fn oversize_connect_is_refused() {
    let broker = Broker::start_with(SMALL_LIMIT);
    let addr = broker.mqtt_addr();
    let mut raw = Raw::open(addr);
    let connect = Connect::v311("big-connect").with_will("w", &vec![b'w'; 2048]);
    raw.send(&connect.encode());
    let seen = raw.expect_closed("CONNECT larger than max_packet_size");
    assert!(
        !seen
            .iter()
            .any(|(h, b)| *h == CONNACK && b.get(1) == Some(&0)),
        "an oversize CONNECT must not be accepted: {seen:?}"
    );
    assert_round_trip(addr, "bigconn");
}

/// MQTT-3.3.1-4: a PUBLISH with both QoS bits set is malformed.
#[test]
fn publish_with_qos_3_closes_connection() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut sub = Raw::connect(addr, "q3-sub");
    sub.subscribe(1, "q3/t", 0);
    let mut bad = Raw::connect(addr, "q3-bad");
    let mut body = mqtt_str(b"q3/t");
    body.extend_from_slice(&1u16.to_be_bytes());
    body.extend_from_slice(b"bad");
    bad.send(&packet(PUBLISH | 0x06, &body));
    assert_closed_without_reply(&mut bad, "PUBLISH with QoS 3");
    assert!(
        matches!(sub.read(Duration::from_millis(300)), Got::Timeout),
        "the QoS 3 publish must not be delivered"
    );
    assert_round_trip(addr, "q3");
}

/// MQTT-3.8.1-1: SUBSCRIBE's fixed-header flags must be 0010.
#[test]
fn subscribe_with_wrong_fixed_header_flags_closes_connection() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut bad = Raw::connect(addr, "subflags");
    let mut body = 1u16.to_be_bytes().to_vec();
    body.extend(mqtt_str(b"a/b"));
    body.push(0);
    bad.send(&packet(0x80, &body));
    assert_closed_without_reply(&mut bad, "SUBSCRIBE with flags 0000");
    assert_round_trip(addr, "subflags");
}

/// MQTT-3.8.3-3: a SUBSCRIBE must carry at least one filter.
#[test]
fn subscribe_without_filters_closes_connection() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut bad = Raw::connect(addr, "subempty");
    bad.send(&packet(SUBSCRIBE, &1u16.to_be_bytes()));
    assert_closed_without_reply(&mut bad, "SUBSCRIBE with no topic filter");
    assert_round_trip(addr, "subempty");
}

/// MQTT-3.3.2-2: a PUBLISH topic name must not contain wildcards.
#[test]
fn publish_to_wildcard_topic_closes_connection() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut sub = Raw::connect(addr, "wpub-sub");
    sub.subscribe(1, "#", 0);
    let mut bad = Raw::connect(addr, "wpub-bad");
    bad.send(&publish("a/+", 0, 0, b"x"));
    assert_closed_without_reply(&mut bad, "PUBLISH to a topic with '+'");
    assert!(
        matches!(sub.read(Duration::from_millis(300)), Got::Timeout),
        "a wildcard publish must not be delivered"
    );
    assert_round_trip(addr, "wpub");
}

/// MQTT-1.5.3-1: ill-formed UTF-8 in a topic is a protocol violation.
#[test]
fn publish_with_invalid_utf8_topic_closes_connection() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut bad = Raw::connect(addr, "utf8-bad");
    let mut body = mqtt_str(&[b'a', 0xC3, 0x28]);
    body.extend_from_slice(b"x");
    bad.send(&packet(PUBLISH, &body));
    assert_closed_without_reply(&mut bad, "topic with invalid UTF-8");
    assert_round_trip(addr, "utf8");
}

/// MQTT 2.2.3: a remaining length of more than four bytes is malformed.
#[test]
fn malformed_remaining_length_closes_connection() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut bad = Raw::connect(addr, "varint-bad");
    bad.send(&[PUBLISH, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
    assert_closed_without_reply(&mut bad, "5-byte remaining length");
    assert_round_trip(addr, "varint");
}

/// MQTT-3.1.2-3: the reserved CONNECT flag must be zero.
#[test]
fn connect_with_reserved_flag_is_refused() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut raw = Raw::open(addr);
    let mut c = Connect::v311("reserved");
    c.flags |= 0x01;
    raw.send(&c.encode());
    let seen = raw.expect_closed("CONNECT with the reserved flag set");
    assert!(
        !seen
            .iter()
            .any(|(h, b)| *h == CONNACK && b.get(1) == Some(&0)),
        "CONNECT with the reserved flag must not be accepted: {seen:?}"
    );
    assert_round_trip(addr, "reserved");
}

/// MQTT-3.1.2-2: unsupported protocol level → CONNACK 0x01, then close.
#[test]
fn unsupported_protocol_level_gets_connack_1() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut raw = Raw::open(addr);
    let mut c = Connect::v311("level7");
    c.level = 7;
    raw.send(&c.encode());
    match raw.read(WAIT) {
        Got::Packet(CONNACK, body) => assert_eq!(
            body,
            vec![0x00, 0x01],
            "CONNACK for protocol level 7: session present 0, return code 0x01"
        ),
        other => panic!("expected CONNACK 0x01 for protocol level 7, got {other:?}"),
    }
    raw.expect_closed("after refusing the protocol level");
    assert_round_trip(addr, "level7");
}

/// MQTT-3.1.3-8: zero-length client id with clean session 0 → CONNACK 0x02, then close.
#[test]
fn empty_client_id_without_clean_session_is_rejected() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut raw = Raw::open(addr);
    let mut c = Connect::v311("");
    c.flags = 0x00; // clean session 0
    raw.send(&c.encode());
    match raw.read(WAIT) {
        Got::Packet(CONNACK, body) => assert_eq!(
            body,
            vec![0x00, 0x02],
            "CONNACK for an empty client id with clean session 0 must be 0x02"
        ),
        other => panic!("expected CONNACK 0x02, got {other:?}"),
    }
    raw.expect_closed("after rejecting the identifier");
    assert_round_trip(addr, "emptyid");
}

/// MQTT-3.1.3-6: zero-length client id with clean session 1 is accepted (server assigns one).
#[test]
fn empty_client_id_with_clean_session_is_accepted() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut a = Raw::connect_with(addr, &Connect::v311(""));
    // Two such clients do not take each other over: both keep working.
    let mut b = Raw::connect_with(addr, &Connect::v311(""));
    a.subscribe(1, "anon/t", 0);
    b.send(&publish("anon/t", 0, 0, b"hi"));
    let (_, topic, payload) = a.expect_publish("between two anonymous clients");
    assert_eq!((topic.as_str(), payload.as_slice()), ("anon/t", &b"hi"[..]));
}

/// MQTT-3.1.0-2: a second CONNECT on one connection is a protocol violation.
#[test]
fn second_connect_closes_connection() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut raw = Raw::connect(addr, "twice");
    raw.send(&Connect::v311("twice").encode());
    let seen = raw.expect_closed("second CONNECT");
    assert!(
        !seen.iter().any(|(h, _)| *h == CONNACK),
        "no second CONNACK may be sent: {seen:?}"
    );
    assert_round_trip(addr, "twice");
}

/// MQTT-3.1.0-1: the first packet must be CONNECT.
#[test]
fn first_packet_not_connect_closes_connection() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut raw = Raw::open(addr);
    raw.send(&common::raw::subscribe(1, "a/b", 0));
    let seen = raw.expect_closed("SUBSCRIBE before CONNECT");
    assert!(
        seen.is_empty(),
        "nothing may be answered before CONNECT: {seen:?}"
    );

    let mut raw = Raw::open(addr);
    raw.send(&publish("a/b", 0, 0, b"x"));
    let seen = raw.expect_closed("PUBLISH before CONNECT");
    assert!(
        seen.is_empty(),
        "nothing may be answered before CONNECT: {seen:?}"
    );
    assert_round_trip(addr, "notconnect");
}

#[test]
fn pingreq_gets_pingresp() {
    let broker = Broker::start();
    let mut raw = Raw::connect(broker.mqtt_addr(), "pinger");
    for _ in 0..3 {
        raw.send(&[PINGREQ, 0]);
        assert_eq!(raw.read(WAIT), Got::Packet(PINGRESP, vec![]));
    }
}

/// MQTT-3.1.2-24: no packet for 1.5 × keepalive → the broker closes the connection, and
/// (MQTT-3.1.2-8) publishes the will.
#[test]
fn keepalive_expiry_closes_connection_and_fires_will() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut watcher = Raw::connect(addr, "ka-watch");
    watcher.subscribe(1, "ka/will", 0);
    let mut c = Connect::v311("ka-silent").with_will("ka/will", b"timed out");
    c.keepalive = 1;
    let started = Instant::now();
    let mut silent = Raw::connect_with(addr, &c);
    let seen = silent
        .wait_closed(Duration::from_secs(4))
        .unwrap_or_else(|_| panic!("keepalive 1 s: still open after 4 s"));
    let elapsed = started.elapsed();
    assert!(seen.is_empty(), "unexpected packets: {seen:?}");
    assert!(
        elapsed >= Duration::from_millis(1000),
        "closed after {elapsed:?}, before the keepalive itself (1 s) ran out"
    );
    assert!(
        elapsed <= Duration::from_millis(2500),
        "closed after {elapsed:?}; MQTT-3.1.2-24 says 1.5 × keepalive = 1.5 s"
    );
    let (_, topic, payload) = watcher.expect_publish("the will of the timed-out client");
    assert_eq!(
        (topic.as_str(), payload.as_slice()),
        ("ka/will", &b"timed out"[..])
    );
}

/// A connection that never sends CONNECT is closed after `mqtt.idle_timeout`.
#[test]
fn idle_connection_without_connect_is_closed() {
    let broker = Broker::start_with("[mqtt]\nidle_timeout = \"1s\"\n");
    let mut raw = Raw::open(broker.mqtt_addr());
    let seen = raw
        .wait_closed(Duration::from_secs(4))
        .unwrap_or_else(|_| panic!("idle_timeout 1 s: connection still open after 4 s"));
    assert!(seen.is_empty(), "{seen:?}");
}

/// QoS 2 inbound (MQTT 4.3.3, method B): a PUBLISH resent with DUP before PUBREL is delivered
/// once; PUBREL is answered with PUBCOMP.
#[test]
fn qos2_duplicate_publish_before_pubrel_delivered_once() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut sub = Raw::connect(addr, "q2-sub");
    sub.subscribe(1, "q2/t", 0);
    let mut p = Raw::connect(addr, "q2-pub");
    let first = publish("q2/t", 2, 7, b"once");
    p.send(&first);
    assert_eq!(p.read(WAIT), Got::Packet(PUBREC, vec![0, 7]));
    let mut dup = first.clone();
    dup[0] |= 0x08;
    p.send(&dup);
    assert_eq!(
        p.read(WAIT),
        Got::Packet(PUBREC, vec![0, 7]),
        "PUBREC again for the DUP"
    );
    p.send(&packet(PUBREL, &[0, 7]));
    assert_eq!(p.read(WAIT), Got::Packet(PUBCOMP, vec![0, 7]));
    let (_, topic, payload) = sub.expect_publish("the QoS 2 message");
    assert_eq!((topic.as_str(), payload.as_slice()), ("q2/t", &b"once"[..]));
    assert_eq!(
        sub.read(Duration::from_millis(400)),
        Got::Timeout,
        "a QoS 2 message resent before PUBREL must be delivered exactly once"
    );
}

/// QoS 1 outbound: the broker sends PUBLISH with a packet id and QoS 1 flags, and retains the
/// message's topic and payload exactly (binary payload, empty payload).
#[test]
fn binary_and_empty_payloads_round_trip() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut sub = Raw::connect(addr, "bin-sub");
    sub.subscribe(1, "bin/t", 1);
    let mut p = Raw::connect(addr, "bin-pub");
    let payload: Vec<u8> = (0..=255u8).collect();
    p.send(&publish("bin/t", 1, 1, &payload));
    assert_eq!(p.read(WAIT), Got::Packet(0x40, vec![0, 1]), "PUBACK");
    p.send(&publish("bin/t", 1, 2, b""));
    assert_eq!(p.read(WAIT), Got::Packet(0x40, vec![0, 2]), "PUBACK");
    for expect in [payload.clone(), Vec::new()] {
        match sub.read(WAIT) {
            Got::Packet(h, body) if h & 0xF0 == PUBLISH => {
                let (flags, topic, pkid, got) = split_publish(h, &body);
                assert_eq!(flags & 0x06, 0x02, "delivered at QoS 1");
                assert_eq!(topic, "bin/t");
                assert_eq!(got, expect);
                let pkid = pkid.expect("QoS 1 has a packet id");
                assert_ne!(pkid, 0, "packet id 0 is invalid (MQTT-2.3.1-1)");
                sub.send(&packet(0x40, &pkid.to_be_bytes()));
            }
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }
}

/// MQTT 3.1 ("MQIsdp", level 3) is accepted on the same port as 3.1.1.
#[test]
fn mqtt31_and_mqtt311_share_a_port() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut old = Raw::connect_with(addr, &Connect::v31("v31-client"));
    let mut new = Raw::connect(addr, "v311-client");
    old.subscribe(1, "mix/v", 0);
    new.send(&publish("mix/v", 0, 0, b"from 3.1.1"));
    let (_, topic, payload) = old.expect_publish("3.1.1 -> 3.1");
    assert_eq!(
        (topic.as_str(), payload.as_slice()),
        ("mix/v", &b"from 3.1.1"[..])
    );
}

/// Flow control (ARCHITECTURE.md habit 8): at most `mqtt.max_inflight` unacknowledged QoS 1 messages
/// are sent to a client; each PUBACK lets the next one out, in order.
#[test]
fn outbound_qos1_respects_max_inflight() {
    let broker = Broker::start_with("[mqtt]\nmax_inflight = 2\n");
    let addr = broker.mqtt_addr();
    let mut sub = Raw::connect(addr, "inflight-sub");
    sub.subscribe(1, "inflight/t", 1);
    let mut p = Raw::connect(addr, "inflight-pub");
    for i in 0..5u16 {
        p.send(&publish("inflight/t", 1, i + 1, format!("m{i}").as_bytes()));
        assert_eq!(
            p.read(WAIT),
            Got::Packet(0x40, (i + 1).to_be_bytes().to_vec())
        );
    }
    let mut next = 0;
    let mut unacked = Vec::new();
    // Two arrive; a third must not until one is acknowledged.
    for _ in 0..2 {
        let (pkid, payload) = read_qos1(&mut sub);
        assert_eq!(payload, format!("m{next}").into_bytes());
        next += 1;
        unacked.push(pkid);
    }
    assert_eq!(
        sub.read(Duration::from_millis(500)),
        Got::Timeout,
        "a third QoS 1 message was sent with max_inflight = 2 and nothing acknowledged"
    );
    while next < 5 {
        let pkid = unacked.remove(0);
        sub.send(&packet(0x40, &pkid.to_be_bytes()));
        let (pkid, payload) = read_qos1(&mut sub);
        assert_eq!(
            payload,
            format!("m{next}").into_bytes(),
            "released in order"
        );
        next += 1;
        unacked.push(pkid);
    }
    assert_eq!(
        sub.read(Duration::from_millis(300)),
        Got::Timeout,
        "only five messages"
    );
}

fn read_qos1(sub: &mut Raw) -> (u16, Vec<u8>) {
    match sub.read(WAIT) {
        Got::Packet(h, body) if h & 0xF0 == PUBLISH => {
            let (flags, _topic, pkid, payload) = split_publish(h, &body);
            assert_eq!(flags & 0x06, 0x02, "QoS 1");
            (pkid.expect("packet id"), payload)
        }
        other => panic!("expected a QoS 1 PUBLISH, got {other:?}"),
    }
}

/// MQTT 3.1.1 §3.1.4: a client may send packets right behind CONNECT without waiting for CONNACK;
/// bytes that arrive in the same read as CONNECT are handled at once, not when more arrive.
#[test]
fn packets_in_the_same_write_as_connect_are_handled() {
    let broker = Broker::start();
    // Small on purpose: all three fit in the broker's first read.
    let mut bytes = Connect::v311("pipe").encode();
    bytes.extend(subscribe(1, "p/t", 1));
    bytes.extend(publish("p/t", 1, 2, b"x"));
    assert!(bytes.len() < 64);
    let mut raw = Raw::open(broker.mqtt_addr());
    raw.send(&bytes);
    let mut seen = Vec::new();
    while seen.len() < 4 {
        match raw.read(Duration::from_secs(3)) {
            Got::Packet(h, body) => seen.push((h, body)),
            other => panic!("after {} packets: {other:?} (got {seen:?})", seen.len()),
        }
    }
    let kinds: Vec<u8> = seen.iter().map(|(h, _)| h & 0xF0).collect();
    assert_eq!(kinds[0], CONNACK);
    assert!(kinds.contains(&SUBACK), "no SUBACK: {kinds:x?}");
    assert!(kinds.contains(&PUBACK), "no PUBACK: {kinds:x?}");
    assert!(
        kinds.contains(&PUBLISH),
        "own message not delivered: {kinds:x?}"
    );
}

/// An MQTT 5 CONNECT (clean start, keepalive 60, no properties).
fn v5_connect(client_id: &str) -> Vec<u8> {
    let mut body = mqtt_str(b"MQTT");
    body.extend_from_slice(&[5, 0x02, 0, 60, 0]);
    body.extend(mqtt_str(client_id.as_bytes()));
    packet(0x10, &body)
}

/// A server DISCONNECT reaches a client that still has data in flight, and the client's own
/// writes keep succeeding until it has read it. The broker closes lingering (FIN, then it reads
/// and discards until the client closes): closing with unread input would make the kernel
/// answer RST, and the client's next write would fail with a broken pipe before it reads the
/// DISCONNECT and its reason code (the Paho interoperability test `test_flow_control2`, which
/// sends PUBRELs while the broker disconnects it for exceeding Receive Maximum, hit this).
#[test]
fn disconnect_reaches_a_client_that_is_still_sending() {
    use std::io::Write;
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut raw = Raw::open(addr);
    raw.send(&v5_connect("linger"));
    match raw.read(WAIT) {
        Got::Packet(CONNACK, body) => assert_eq!(body.get(1), Some(&0), "{body:?}"),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    // A PUBLISH to a wildcard topic: a protocol error, answered with DISCONNECT.
    let mut body = mqtt_str(b"bad/+");
    body.push(0); // no properties
    body.extend_from_slice(b"x");
    raw.send(&packet(PUBLISH, &body));
    // Wait until the broker's DISCONNECT has reached the client (peeked, so the client still
    // has read nothing): from then on the broker is closing the connection.
    raw.stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut head = [0u8; 1];
    let peeked = raw.stream.peek(&mut head);
    assert!(
        matches!(peeked, Ok(1)),
        "no answer to read after a PUBLISH to a wildcard topic: {peeked:?}"
    );
    // The client has not read anything yet and keeps writing, as a client with PUBRELs or
    // PUBLISHes in flight does. The pause before each write is deliberate, not a wait for the
    // broker: it lets a reset from a broker that closed without lingering come back, so the
    // next write would fail as the client's did.
    for i in 0..5 {
        std::thread::sleep(Duration::from_millis(50));
        let wrote = raw.stream.write_all(&[PINGREQ, 0]);
        assert!(
            wrote.is_ok(),
            "write {i} after the DISCONNECT failed: {wrote:?}"
        );
    }
    let seen = raw.expect_closed("PUBLISH to a wildcard topic");
    assert!(
        seen.iter()
            .any(|(h, b)| *h == DISCONNECT && b.first() == Some(&0x90)),
        "the DISCONNECT (0x90) must be readable before the close: {seen:?}"
    );
}
