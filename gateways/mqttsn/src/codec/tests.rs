//! Codec tests: every message type round-trips, EMQX's test vectors decode as documented (in
//! the docs/mqtt-sn.md section each test names), and arbitrary bytes never panic the decoder
//! (property tests).

use super::*;
use bytes::BytesMut;
use proptest::prelude::*;

fn enc(p: &Packet) -> Bytes {
    let mut out = BytesMut::new();
    encode(p, &mut out).unwrap_or_else(|e| panic!("{e}"));
    out.freeze()
}

fn roundtrip(p: Packet) {
    let bytes = enc(&p);
    assert_eq!(bytes.len(), encoded_len(&p), "{p:?}");
    assert_eq!(decode(&bytes), Ok(p.clone()), "{bytes:02x?}");
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn flags(byte: u8) -> Flags {
    Flags::from_byte(byte)
}

#[test]
fn every_message_type_roundtrips() {
    let wt = WillTopic {
        flags: flags(0x30),
        topic: b("will/t"),
    };
    let all = vec![
        Packet::Advertise {
            gw_id: 1,
            duration: 900,
        },
        Packet::SearchGw { radius: 0 },
        Packet::GwInfo {
            gw_id: 1,
            gw_add: Bytes::new(),
        },
        Packet::GwInfo {
            gw_id: 7,
            gw_add: Bytes::from_static(&[127, 0, 0, 1]),
        },
        Packet::Connect(Connect {
            flags: flags(0x0C),
            protocol_id: 1,
            duration: 60,
            client_id: b("client"),
        }),
        Packet::ConnAck { rc: 0 },
        Packet::WillTopicReq,
        Packet::WillTopic(Some(wt.clone())),
        Packet::WillTopic(None),
        Packet::WillMsgReq,
        Packet::WillMsg { msg: b("bye") },
        Packet::Register {
            topic_id: 0,
            msg_id: 1,
            topic_name: b("a/b"),
        },
        Packet::RegAck {
            topic_id: 1025,
            msg_id: 1,
            rc: 0,
        },
        Packet::Publish(Publish {
            flags: flags(0x20),
            topic_id: 1025,
            msg_id: 7,
            data: b("22.5"),
        }),
        Packet::PubAck {
            topic_id: 5,
            msg_id: 7,
            rc: 2,
        },
        Packet::PubRec { msg_id: 1 },
        Packet::PubRel { msg_id: 2 },
        Packet::PubComp { msg_id: 3 },
        Packet::Subscribe(Subscribe {
            flags: flags(0x20),
            msg_id: 1,
            topic: SubTopic::Name(b("a/+")),
        }),
        Packet::Subscribe(Subscribe {
            flags: flags(0x21),
            msg_id: 2,
            topic: SubTopic::Predefined(1),
        }),
        Packet::Subscribe(Subscribe {
            flags: flags(0x02),
            msg_id: 3,
            topic: SubTopic::Short(*b"te"),
        }),
        Packet::Subscribe(Subscribe {
            flags: flags(0x03),
            msg_id: 4,
            topic: SubTopic::Reserved(b("xy")),
        }),
        Packet::SubAck {
            flags: flags(0x20),
            topic_id: 1025,
            msg_id: 1,
            rc: 0,
        },
        Packet::Unsubscribe(Subscribe {
            flags: flags(0x00),
            msg_id: 5,
            topic: SubTopic::Name(b("a/b")),
        }),
        Packet::UnsubAck { msg_id: 5 },
        Packet::PingReq { client_id: None },
        Packet::PingReq {
            client_id: Some(b("sleeper")),
        },
        Packet::PingResp,
        Packet::Disconnect { duration: None },
        Packet::Disconnect { duration: Some(10) },
        Packet::WillTopicUpd(Some(wt)),
        Packet::WillTopicUpd(None),
        Packet::WillTopicResp { rc: 0 },
        Packet::WillMsgUpd { msg: b("new") },
        Packet::WillMsgResp { rc: 0 },
    ];
    for p in all {
        roundtrip(p);
    }
}

#[test]
fn emqx_test_vectors() {
    // docs/mqtt-sn.md §2.6: CONNECT <6+len, 0x04, flags, 0x01, Duration:16, ClientId>,
    // CONNACK <3,0x05,0>.
    let mut c = vec![6 + 3, 0x04, 0x04, 0x01, 0x00, 0x0A];
    c.extend_from_slice(b"abc");
    let Ok(Packet::Connect(connect)) = decode(&Bytes::from(c)) else {
        panic!("CONNECT vector")
    };
    assert!(connect.flags.clean_session && !connect.flags.will);
    assert_eq!(connect.duration, 10);
    assert_eq!(&enc(&Packet::ConnAck { rc: 0 })[..], &[3, 0x05, 0x00]);
    // docs/mqtt-sn.md §2.3: GWINFO <3,0x02,gw_id>; DISCONNECT <2,0x18>; §2.12 <4,0x18,D:16>.
    let gw = Packet::GwInfo {
        gw_id: 1,
        gw_add: Bytes::new(),
    };
    assert_eq!(&enc(&gw)[..], &[3, 0x02, 1]);
    assert_eq!(&enc(&Packet::Disconnect { duration: None })[..], &[2, 0x18]);
    assert_eq!(
        decode(&Bytes::from_static(&[4, 0x18, 0, 5])),
        Ok(Packet::Disconnect { duration: Some(5) })
    );
    // docs/mqtt-sn.md §2.7: REGACK <7,0x0B,0x04,0x01,MsgId:16,0>.
    let ack = Packet::RegAck {
        topic_id: 1025,
        msg_id: 9,
        rc: 0,
    };
    assert_eq!(&enc(&ack)[..], &[7, 0x0B, 0x04, 0x01, 0, 9, 0]);
    // docs/mqtt-sn.md §2.9: SUBACK <8,0x13,flags,TopicId:16,MsgId:16,rc>;
    // UNSUBACK <4,0x15,MsgId:16>.
    let sa = Packet::SubAck {
        flags: flags(0x20),
        topic_id: 0,
        msg_id: 3,
        rc: 0,
    };
    assert_eq!(&enc(&sa)[..], &[8, 0x13, 0x20, 0, 0, 0, 3, 0]);
    assert_eq!(&enc(&Packet::UnsubAck { msg_id: 3 })[..], &[4, 0x15, 0, 3]);
}

#[test]
fn long_messages_use_the_three_byte_length() {
    // Variable part of 253 bytes fits the 1-byte form (total 255); 254 needs the long form.
    let p = |n: usize| {
        Packet::Publish(Publish {
            flags: flags(0),
            topic_id: 1,
            msg_id: 0,
            data: Bytes::from(vec![b'x'; n]),
        })
    };
    let short = enc(&p(253 - 5));
    assert_eq!(short.len(), 255);
    assert_eq!(short[0], 255);
    let long = enc(&p(254 - 5));
    assert_eq!(&long[..3], &[0x01, 0x01, 0x02]);
    assert_eq!(long.len(), 258);
    roundtrip(p(1000));
    let too_long = p(65535);
    let mut out = BytesMut::new();
    assert!(matches!(
        encode(&too_long, &mut out),
        Err(EncodeError::TooLong(_))
    ));
}

#[test]
fn malformed_datagrams_are_errors() {
    let cases: Vec<(&[u8], DecodeError)> = vec![
        (&[], DecodeError::Truncated),
        (&[0x01, 0x00], DecodeError::Truncated),
        (
            &[3, 0x05],
            DecodeError::LengthMismatch {
                declared: 3,
                actual: 2,
            },
        ),
        (
            &[2, 0x05, 0],
            DecodeError::LengthMismatch {
                declared: 2,
                actual: 3,
            },
        ),
        (&[2, 0x05], DecodeError::Truncated),
        (&[2, 0x03], DecodeError::UnknownType(0x03)),
        (&[2, 0xFE], DecodeError::Encapsulated),
        (
            &[3, 0x18, 1],
            DecodeError::BadLength("DISCONNECT is 2 or 4 bytes"),
        ),
        (&[6, 0x0D, 0, 1, 0, 1], DecodeError::Truncated),
        (&[1], DecodeError::Truncated),
        (
            &[0, 0],
            DecodeError::LengthMismatch {
                declared: 0,
                actual: 2,
            },
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(
            decode(&Bytes::copy_from_slice(bytes)),
            Err(want),
            "{bytes:02x?}"
        );
    }
    // The long form with a length that disagrees.
    assert!(matches!(
        decode(&Bytes::from_static(&[0x01, 0x00, 0x09, 0x17])),
        Err(DecodeError::LengthMismatch { .. })
    ));
}

fn arb_bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn arb_will() -> impl Strategy<Value = Option<WillTopic>> {
    proptest::option::of(
        (any::<u8>(), arb_bytes(40)).prop_map(|(f, topic)| WillTopic {
            flags: flags(f),
            topic,
        }),
    )
}

fn arb_sub() -> impl Strategy<Value = Subscribe> {
    let topic = prop_oneof![
        arb_bytes(40).prop_map(SubTopic::Name),
        any::<u16>().prop_map(SubTopic::Predefined),
        any::<[u8; 2]>().prop_map(SubTopic::Short),
        arb_bytes(40).prop_map(SubTopic::Reserved),
    ];
    (any::<u8>(), any::<u16>(), topic).prop_map(|(f, msg_id, topic)| Subscribe {
        flags: Flags {
            topic_id_type: topic.id_type(),
            ..flags(f)
        },
        msg_id,
        topic,
    })
}

fn arb_packet() -> impl Strategy<Value = Packet> {
    prop_oneof![
        (any::<u8>(), any::<u16>())
            .prop_map(|(gw_id, duration)| Packet::Advertise { gw_id, duration }),
        any::<u8>().prop_map(|radius| Packet::SearchGw { radius }),
        (any::<u8>(), arb_bytes(20)).prop_map(|(gw_id, gw_add)| Packet::GwInfo { gw_id, gw_add }),
        (any::<u8>(), any::<u8>(), any::<u16>(), arb_bytes(30)).prop_map(|(f, p, d, c)| {
            Packet::Connect(Connect {
                flags: flags(f),
                protocol_id: p,
                duration: d,
                client_id: c,
            })
        }),
        any::<u8>().prop_map(|rc| Packet::ConnAck { rc }),
        Just(Packet::WillTopicReq),
        arb_will().prop_map(Packet::WillTopic),
        Just(Packet::WillMsgReq),
        arb_bytes(300).prop_map(|msg| Packet::WillMsg { msg }),
        (any::<u16>(), any::<u16>(), arb_bytes(300)).prop_map(|(topic_id, msg_id, topic_name)| {
            Packet::Register {
                topic_id,
                msg_id,
                topic_name,
            }
        }),
        (any::<u16>(), any::<u16>(), any::<u8>()).prop_map(|(topic_id, msg_id, rc)| {
            Packet::RegAck {
                topic_id,
                msg_id,
                rc,
            }
        }),
        (any::<u8>(), any::<u16>(), any::<u16>(), arb_bytes(600)).prop_map(
            |(f, topic_id, msg_id, data)| Packet::Publish(Publish {
                flags: flags(f),
                topic_id,
                msg_id,
                data
            })
        ),
        (any::<u16>(), any::<u16>(), any::<u8>()).prop_map(|(topic_id, msg_id, rc)| {
            Packet::PubAck {
                topic_id,
                msg_id,
                rc,
            }
        }),
        any::<u16>().prop_map(|msg_id| Packet::PubRec { msg_id }),
        any::<u16>().prop_map(|msg_id| Packet::PubRel { msg_id }),
        any::<u16>().prop_map(|msg_id| Packet::PubComp { msg_id }),
        arb_sub().prop_map(Packet::Subscribe),
        arb_sub().prop_map(Packet::Unsubscribe),
        (any::<u8>(), any::<u16>(), any::<u16>(), any::<u8>()).prop_map(
            |(f, topic_id, msg_id, rc)| Packet::SubAck {
                flags: flags(f),
                topic_id,
                msg_id,
                rc
            }
        ),
        any::<u16>().prop_map(|msg_id| Packet::UnsubAck { msg_id }),
        proptest::option::of(arb_bytes(30).prop_filter("non-empty", |b| !b.is_empty()))
            .prop_map(|client_id| Packet::PingReq { client_id }),
        Just(Packet::PingResp),
        proptest::option::of(any::<u16>()).prop_map(|duration| Packet::Disconnect { duration }),
        arb_will().prop_map(Packet::WillTopicUpd),
        any::<u8>().prop_map(|rc| Packet::WillTopicResp { rc }),
        arb_bytes(300).prop_map(|msg| Packet::WillMsgUpd { msg }),
        any::<u8>().prop_map(|rc| Packet::WillMsgResp { rc }),
    ]
}

proptest! {
    #[test]
    fn encode_decode_roundtrip(p in arb_packet()) {
        let bytes = enc(&p);
        prop_assert_eq!(bytes.len(), encoded_len(&p));
        prop_assert_eq!(decode(&bytes), Ok(p));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let bytes = Bytes::from(data);
        if let Ok(p) = decode(&bytes) {
            // Whatever decodes re-encodes to something that decodes to the same packet.
            let again = enc(&p);
            prop_assert_eq!(decode(&again), Ok(p));
        }
    }

    #[test]
    fn corrupted_valid_messages_never_panic(
        p in arb_packet(),
        cut in any::<prop::sample::Index>(),
        flip in any::<(prop::sample::Index, u8)>(),
    ) {
        let bytes = enc(&p).to_vec();
        let n = cut.index(bytes.len() + 1);
        let _ = decode(&Bytes::copy_from_slice(&bytes[..n]));
        let mut corrupt = bytes.clone();
        let i = flip.0.index(corrupt.len());
        corrupt[i] ^= flip.1;
        let _ = decode(&Bytes::from(corrupt));
        if n < bytes.len() {
            prop_assert!(decode(&Bytes::copy_from_slice(&bytes[..n])).is_err());
        }
    }
}
