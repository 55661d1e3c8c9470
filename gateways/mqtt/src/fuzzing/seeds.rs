//! The seed corpora of the MQTT targets, generated from the codec's encoder and from small
//! channel programs. `cargo test -p switchyard-mqtt write_seed_corpora -- --ignored` rewrites
//! `fuzz/seeds/mqtt_*/gen-*`; hand-made seeds and crash regressions sit beside them.

use crate::codec::*;
use bytes::{Bytes, BytesMut};
use std::num::NonZeroU16;
use switchyard_core::QoS;

fn id(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN)
}

/// One packet of every type, with the optional parts that matter, at `v`.
fn packets(v: ProtocolVersion) -> Vec<(&'static str, Packet)> {
    let mut connect = Connect::new(v, "client-1");
    connect.keep_alive = 30;
    connect.username = Some("user".into());
    connect.password = Some(Bytes::from_static(b"pw"));
    connect.will = Some(LastWill {
        topic: "will/t".into(),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: WillProperties::default(),
    });
    let mut publish = Publish::new("a/b", "payload");
    publish.qos = QoS::ExactlyOnce;
    publish.pkid = Some(id(7));
    if v.is_v5() {
        connect.properties.session_expiry_interval = Some(60);
        connect.properties.receive_maximum = Some(4);
        connect.properties.topic_alias_maximum = Some(2);
        connect.properties.user_properties = vec![("k".into(), "v".into())];
        publish.properties.topic_alias = Some(1);
        publish.properties.message_expiry_interval = Some(10);
        publish.properties.correlation_data = Some(Bytes::from_static(b"c"));
    }
    let mut sub_opts = SubscriptionOptions::new(QoS::AtLeastOnce);
    sub_opts.no_local = v.is_v5();
    vec![
        ("connect", Packet::Connect(Box::new(connect))),
        ("connack", Packet::ConnAck(ConnAck::new(0, true))),
        ("publish", Packet::Publish(publish)),
        ("publish0", Packet::Publish(Publish::new("t", ""))),
        ("puback", Packet::PubAck(Ack::new(id(1)))),
        ("pubrec", Packet::PubRec(Ack::new(id(2)))),
        ("pubrel", Packet::PubRel(Ack::new(id(3)))),
        ("pubcomp", Packet::PubComp(Ack::new(id(4)))),
        (
            "subscribe",
            Packet::Subscribe(Subscribe::new(
                id(5),
                vec![("a/+".into(), sub_opts), ("#".into(), sub_opts)],
            )),
        ),
        ("suback", Packet::SubAck(SubAck::new(id(5), vec![1, 0x80]))),
        (
            "unsubscribe",
            Packet::Unsubscribe(Unsubscribe::new(id(6), vec!["a/+".into()])),
        ),
        ("unsuback", Packet::UnsubAck(UnsubAck::new(id(6), vec![0]))),
        ("pingreq", Packet::PingReq),
        ("pingresp", Packet::PingResp),
        ("disconnect", Packet::Disconnect(Disconnect::new(0))),
    ]
}

fn encode(p: &Packet, v: ProtocolVersion) -> Vec<u8> {
    let mut out = BytesMut::new();
    match encode_packet(p, v, &mut out) {
        Ok(()) => out.to_vec(),
        Err(_) => Vec::new(),
    }
}

fn codec_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (name, v) in [
        ("v31", ProtocolVersion::V31),
        ("v311", ProtocolVersion::V311),
        ("v5", ProtocolVersion::V5),
    ] {
        let mut stream = Vec::new();
        for (kind, p) in packets(v) {
            let bytes = encode(&p, v);
            if !bytes.is_empty() {
                stream.extend_from_slice(&bytes);
                seeds.push((format!("gen-{name}-{kind}"), bytes));
            }
        }
        seeds.push((format!("gen-{name}-stream"), stream));
    }
    seeds
}

/// Frames `payload` as one masked binary WebSocket message (RFC 6455 §5.2).
fn ws_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [1u8, 2, 3, 4];
    let mut f = vec![0x82];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

fn ws_seeds() -> Vec<(String, Vec<u8>)> {
    let upgrade = |path: &str, proto: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: localhost:8083\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {proto}\r\n\r\n"
        )
        .into_bytes()
    };
    let v5 = ProtocolVersion::V5;
    let all: Vec<u8> = packets(v5)
        .iter()
        .flat_map(|(_, p)| encode(p, v5))
        .collect();
    let mut one = upgrade("/mqtt", "mqtt");
    one.extend(ws_frame(&all));
    // A packet split across two messages, and two packets in one.
    let mut split = upgrade("/mqtt", "mqttv3.1, mqtt");
    let (a, b) = all.split_at(all.len() / 3);
    split.extend(ws_frame(a));
    split.extend(ws_frame(b));
    vec![
        ("gen-upgrade-frames".into(), one),
        ("gen-upgrade-split".into(), split),
        ("gen-wrong-path".into(), upgrade("/other", "mqtt")),
    ]
}

/// Channel programs (see `channel.rs` for how each byte is read).
fn channel_seeds() -> Vec<(String, Vec<u8>)> {
    // Settings: window 8, no retry, max_awaiting_rel 2, alias max 2, flags 0, no $SYS.
    let header = [3u8, 1, 2, 2, 0, 0];
    let connect = |slot: u8, version: u8, flags: u8| {
        let mut b = vec![slot, 0, version, flags];
        if version == 2 {
            b.push(2); // session expiry 60
        }
        b
    };
    let subscribe = |slot: u8, filter: u8, qos: u8| vec![slot, 8, filter, qos, 0, 0, 0];
    let server_publish = |topic: u8, qos: u8| vec![0, 13, topic, qos, 0];
    let ack_first = |slot: u8, kind: u8| vec![slot, 10, 0, 0, 0, kind];
    let tick = |secs: u8| vec![0, 12, secs, 1];
    let close = |slot: u8| vec![slot, 14, 1];
    let raw = |slot: u8, v: ProtocolVersion, ps: &[Packet]| {
        let bytes: Vec<u8> = ps.iter().flat_map(|p| encode(p, v)).collect();
        let mut b = vec![slot, 3, bytes.len() as u8];
        b.extend(bytes);
        b
    };
    let prog = |parts: Vec<Vec<u8>>| {
        let mut b = header.to_vec();
        b.extend(parts.into_iter().flatten());
        b
    };
    let mut qos2 = Publish::new("a", "x");
    qos2.qos = QoS::ExactlyOnce;
    qos2.pkid = Some(id(3));
    vec![
        (
            "gen-pubsub-qos1".into(),
            prog(vec![
                connect(0, 1, 0),
                connect(1, 2, 0),
                subscribe(1, 0, 1),
                server_publish(0, 1),
                vec![0, 5, 0, 1, 1, 0, 1, 1], // slot 0 publishes QoS 1 on "a"
                ack_first(1, 0),
                ack_first(1, 0),
            ]),
        ),
        (
            "gen-qos2-resume".into(),
            prog(vec![
                connect(0, 1, 0),
                subscribe(0, 1, 2),
                server_publish(1, 2),
                server_publish(1, 2),
                ack_first(0, 1), // PUBREC
                close(0),
                tick(5),
                connect(0, 1, 0), // resumes: PUBREL and PUBLISH again
                ack_first(0, 3),  // PUBCOMP
            ]),
        ),
        (
            "gen-takeover".into(),
            prog(vec![
                connect(2, 2, 0),
                subscribe(2, 4, 1),
                server_publish(1, 1),
                vec![2, 2, 1, 1, 0], // takeover by a 3.1.1 connection, resuming
                server_publish(0, 1),
            ]),
        ),
        (
            "gen-raw-packets".into(),
            prog(vec![
                connect(1, 1, 2), // keepalive 5 s
                raw(
                    1,
                    ProtocolVersion::V311,
                    &[
                        Packet::PingReq,
                        Packet::Publish(qos2.clone()),
                        Packet::Publish(qos2),
                        Packet::PubRel(Ack::new(id(3))),
                        Packet::PubAck(Ack::new(id(9))),
                    ],
                ),
                tick(10), // past the keepalive
            ]),
        ),
    ]
}

#[test]
#[ignore = "rewrites fuzz/seeds/mqtt_*/gen-*; run when the formats change"]
fn write_seed_corpora() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds");
    for (target, seeds) in [
        ("mqtt_codec", codec_seeds()),
        ("mqtt_ws_upgrade", ws_seeds()),
        ("mqtt_channel", channel_seeds()),
    ] {
        let dir = std::path::Path::new(root).join(target);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        for (name, bytes) in seeds {
            std::fs::write(dir.join(name), bytes).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
