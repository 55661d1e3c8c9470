//! The seed corpora of the MQTT-SN targets, generated from the encoder and from small channel
//! programs. `cargo test -p switchyard-mqttsn write_seed_corpora -- --ignored` rewrites
//! `fuzz/seeds/mqttsn_*/gen-*`; hand-made seeds and crash regressions sit beside them.

use crate::codec::*;
use bytes::{Bytes, BytesMut};

fn packets() -> Vec<(&'static str, Packet)> {
    let flags = Flags {
        qos: SnQos::Q1,
        topic_id_type: TopicIdType::Normal,
        ..Flags::default()
    };
    let will_topic = WillTopic {
        flags,
        topic: Bytes::from_static(b"will/t"),
    };
    vec![
        (
            "advertise",
            Packet::Advertise {
                gw_id: 1,
                duration: 900,
            },
        ),
        ("searchgw", Packet::SearchGw { radius: 0 }),
        (
            "gwinfo",
            Packet::GwInfo {
                gw_id: 1,
                gw_add: Bytes::from_static(b"\x7f\0\0\x01"),
            },
        ),
        (
            "connect",
            Packet::Connect(Connect {
                flags: Flags {
                    will: true,
                    clean_session: true,
                    ..Flags::default()
                },
                protocol_id: 1,
                duration: 60,
                client_id: Bytes::from_static(b"sensor-1"),
            }),
        ),
        ("connack", Packet::ConnAck { rc: 0 }),
        ("willtopicreq", Packet::WillTopicReq),
        ("willtopic", Packet::WillTopic(Some(will_topic.clone()))),
        ("willtopic-empty", Packet::WillTopic(None)),
        ("willmsgreq", Packet::WillMsgReq),
        (
            "willmsg",
            Packet::WillMsg {
                msg: Bytes::from_static(b"bye"),
            },
        ),
        (
            "register",
            Packet::Register {
                topic_id: 0,
                msg_id: 1,
                topic_name: Bytes::from_static(b"a/b"),
            },
        ),
        (
            "regack",
            Packet::RegAck {
                topic_id: 1025,
                msg_id: 1,
                rc: 0,
            },
        ),
        (
            "publish",
            Packet::Publish(Publish {
                flags,
                topic_id: 1025,
                msg_id: 2,
                data: Bytes::from_static(b"21.5"),
            }),
        ),
        (
            "publish-long",
            Packet::Publish(Publish {
                flags: Flags {
                    topic_id_type: TopicIdType::Short,
                    ..Flags::default()
                },
                topic_id: u16::from_be_bytes(*b"ab"),
                msg_id: 0,
                data: Bytes::from(vec![7u8; 300]),
            }),
        ),
        (
            "puback",
            Packet::PubAck {
                topic_id: 1025,
                msg_id: 2,
                rc: 0,
            },
        ),
        ("pubrec", Packet::PubRec { msg_id: 3 }),
        ("pubrel", Packet::PubRel { msg_id: 3 }),
        ("pubcomp", Packet::PubComp { msg_id: 3 }),
        (
            "subscribe",
            Packet::Subscribe(Subscribe {
                flags,
                msg_id: 4,
                topic: SubTopic::Name(Bytes::from_static(b"a/#")),
            }),
        ),
        (
            "subscribe-predefined",
            Packet::Subscribe(Subscribe {
                flags,
                msg_id: 5,
                topic: SubTopic::Predefined(1),
            }),
        ),
        (
            "suback",
            Packet::SubAck {
                flags,
                topic_id: 0,
                msg_id: 4,
                rc: 0,
            },
        ),
        (
            "unsubscribe",
            Packet::Unsubscribe(Subscribe {
                flags: Flags::default(),
                msg_id: 6,
                topic: SubTopic::Short(*b"ab"),
            }),
        ),
        ("unsuback", Packet::UnsubAck { msg_id: 6 }),
        (
            "pingreq",
            Packet::PingReq {
                client_id: Some(Bytes::from_static(b"sensor-1")),
            },
        ),
        ("pingresp", Packet::PingResp),
        (
            "disconnect-sleep",
            Packet::Disconnect { duration: Some(30) },
        ),
        ("willtopicupd", Packet::WillTopicUpd(Some(will_topic))),
        ("willtopicresp", Packet::WillTopicResp { rc: 0 }),
        (
            "willmsgupd",
            Packet::WillMsgUpd {
                msg: Bytes::from_static(b"new"),
            },
        ),
        ("willmsgresp", Packet::WillMsgResp { rc: 0 }),
    ]
}

fn encode_one(p: &Packet) -> Vec<u8> {
    let mut out = BytesMut::new();
    match encode(p, &mut out) {
        Ok(()) => out.to_vec(),
        Err(_) => Vec::new(),
    }
}

fn codec_seeds() -> Vec<(String, Vec<u8>)> {
    packets()
        .into_iter()
        .map(|(name, p)| (format!("gen-{name}"), encode_one(&p)))
        .collect()
}

/// Channel programs (see `channel.rs` for how each byte is read).
fn channel_seeds() -> Vec<(String, Vec<u8>)> {
    // Settings: retry every 5 s, 2 retries, no subs_resume.
    let header = [4u8, 2, 0];
    let prog = |parts: &[&[u8]]| {
        let mut b = header.to_vec();
        for p in parts {
            b.extend_from_slice(p);
        }
        b
    };
    let raw = |slot: u8, p: &Packet| {
        let bytes = encode_one(p);
        let mut b = vec![slot, 4, bytes.len() as u8];
        b.extend(bytes);
        b.push(1); // not moved
        b
    };
    let publish = Packet::Publish(Publish {
        flags: Flags {
            qos: SnQos::Q2,
            topic_id_type: TopicIdType::Short,
            ..Flags::default()
        },
        topic_id: u16::from_be_bytes(*b"ab"),
        msg_id: 9,
        data: Bytes::from_static(b"x"),
    });
    vec![
        (
            "gen-pubsub".into(),
            prog(&[
                &[0, 0, 0, 0],              // slot 0 CONNECT, persistent
                &[1, 0, 0, 0],              // slot 1 CONNECT
                &[1, 8, 1, 0, 7, 2, 2],     // slot 1 SUBSCRIBE "a/b" QoS 1
                &[0, 15, 2, 1, 0],          // server publishes on "a/b" QoS 1
                &[1, 10, 0, 0, 0, 0, 0, 0], // slot 1 PUBACK
                &[0, 6, 0, 1, 0, 3, 1, 1],  // slot 0 PUBLISH QoS 1 on the short name "ab"
            ]),
        ),
        (
            "gen-will-sleep".into(),
            prog(&[
                &[2, 0, 0x02, 1, 1],  // CONNECT with a will, handshake at once
                &[2, 8, 2, 0, 9, 1],  // SUBSCRIBE "ab" QoS 2
                &[2, 14, 1, 2, 30],   // DISCONNECT, sleep 31 s
                &[0, 15, 1, 2, 0],    // server publishes on "ab" QoS 2
                &[2, 14, 3, 1, 1],    // PINGREQ with our id: wake up
                &[2, 10, 0, 0, 0, 1], // PUBREC
                &[2, 10, 0, 0, 0, 3], // PUBCOMP
                &[0, 14, 0, 5, 1],    // 5 s later
            ]),
        ),
        (
            "gen-register-takeover".into(),
            prog(&[
                &[0, 0, 0, 0],
                &[0, 8, 1, 0, 1, 2, 5],     // SUBSCRIBE "a/#" QoS 1
                &[0, 15, 2, 1, 0],          // "a/b": REGISTER first
                &[0, 12, 1, 0],             // REGACK accepted
                &[0, 10, 0, 0, 0, 0, 0, 0], // PUBACK
                &[0, 15, 4, 1, 0],          // "x/y/z": REGISTER
                &[0, 14, 6, 0],             // takeover, resuming
                &[0, 12, 1, 0],
            ]),
        ),
        (
            "gen-raw".into(),
            prog(&[
                &[1, 0, 0x04, 0], // keepalive 5 s
                &raw(1, &publish),
                &raw(1, &publish),
                &raw(1, &Packet::PubRel { msg_id: 9 }),
                &raw(1, &Packet::PingReq { client_id: None }),
                &[0, 14, 0, 10, 1], // past the keepalive
            ]),
        ),
    ]
}

#[test]
#[ignore = "rewrites fuzz/seeds/mqttsn_*/gen-*; run when the formats change"]
fn write_seed_corpora() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds");
    for (target, seeds) in [
        ("mqttsn_codec", codec_seeds()),
        ("mqttsn_channel", channel_seeds()),
    ] {
        let dir = std::path::Path::new(root).join(target);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        for (name, bytes) in seeds {
            std::fs::write(dir.join(name), bytes).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
