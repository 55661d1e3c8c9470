//! Malformed input for every packet type: each returns the error named after the broken rule,
//! and nothing panics.

use super::super::wire::{parse_varint, VarInt};
use super::strategies::full_samples;
use super::*;

const V31: ProtocolVersion = ProtocolVersion::V31;
const V311: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;
const ALL: [ProtocolVersion; 3] = [V31, V311, V5];

fn err(bytes: &[u8], version: ProtocolVersion) -> DecodeError {
    match decode_one(bytes, version) {
        Ok(packet) => panic!("{bytes:02x?} decoded as {packet:?}"),
        Err(e) => e,
    }
}

/// A v5 PUBLISH to "t", QoS 0, with the given property block contents.
fn publish_v5_props(props: &[u8]) -> Vec<u8> {
    let len = u8::try_from(props.len()).expect("short");
    frame(0x30, &cat(&[&s("t"), &[len], props]))
}

/// A v5 CONNECT with the given CONNECT property block contents.
fn connect_v5_props(props: &[u8]) -> Vec<u8> {
    let len = u8::try_from(props.len()).expect("short");
    frame(
        0x10,
        &cat(&[&s("MQTT"), &[5, 0x02, 0, 0, len], props, &s("c")]),
    )
}

/// A v5 CONNACK with the given property block contents.
fn connack_v5_props(props: &[u8]) -> Vec<u8> {
    let len = u8::try_from(props.len()).expect("short");
    frame(0x20, &cat(&[&[0, 0, len], props]))
}

#[test]
fn wrong_fixed_header_flags() {
    for version in ALL {
        for packet_type in 1u8..=14 {
            if packet_type == 3 {
                continue; // PUBLISH flags are DUP/QoS/RETAIN
            }
            let required = if matches!(packet_type, 6 | 8 | 10) {
                2
            } else {
                0
            };
            for flags in 0u8..16 {
                let tolerated = version == V31 && required == 2 && flags == 0b1010;
                if flags == required || tolerated {
                    continue;
                }
                let e = err(&[packet_type << 4 | flags, 0], version);
                assert!(
                    matches!(e, DecodeError::InvalidFixedHeaderFlags { flags: f, .. } if f == flags),
                    "type {packet_type} flags {flags}: {e:?}"
                );
                assert_eq!(e.reason_code(), 0x81);
            }
        }
    }
    assert!(matches!(
        err(&[0xF1, 0], V5),
        DecodeError::InvalidFixedHeaderFlags { .. }
    ));
}

#[test]
fn invalid_packet_types() {
    for version in ALL {
        assert!(matches!(
            err(&[0x00, 0], version),
            DecodeError::InvalidPacketType(0)
        ));
    }
    // 15 is AUTH in MQTT 5 only.
    for version in [V31, V311] {
        assert!(matches!(
            err(&[0xF0, 0], version),
            DecodeError::InvalidPacketType(15)
        ));
    }
}

/// Packets every field of which is required: cutting the body anywhere must fail.
fn must_fail_when_cut(packet: &Packet, version: ProtocolVersion) -> bool {
    match packet {
        Packet::Connect(_) | Packet::ConnAck(_) => true,
        Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubRel(_) | Packet::PubComp(_) => {
            !version.is_v5()
        }
        Packet::Subscribe(p) => p.filters.len() == 1,
        Packet::Unsubscribe(p) => p.filters.len() == 1,
        Packet::UnsubAck(_) => !version.is_v5(),
        _ => false,
    }
}

#[test]
fn truncation_at_every_offset() {
    for version in ALL {
        for packet in full_samples(version) {
            let bytes = encode(&packet, version);
            let VarInt::Done(_, len_len) = parse_varint(&bytes[1..]) else {
                panic!("encoder wrote a bad remaining length")
            };
            let header_len = 1 + len_len;
            let body = &bytes[header_len..];
            for cut in 0..body.len() {
                let truncated = frame(bytes[0], &body[..cut]);
                match decode_one(&truncated, version) {
                    Err(_) => {}
                    Ok(decoded) => {
                        assert!(
                            !must_fail_when_cut(&packet, version),
                            "{version:?} {packet:?} cut at {cut} decoded as {decoded:?}"
                        );
                        // A shorter legal form must still round-trip.
                        let again = decode_one(&encode(&decoded, version), version);
                        assert_eq!(again.expect("re-decodes"), decoded);
                    }
                }
                // Feeding only a prefix of the frame is never an error, just "not yet".
                let mut buf = BytesMut::from(&bytes[..header_len + cut]);
                assert_eq!(decode_packet(&mut buf, version, MAX).expect("prefix"), None);
            }
        }
    }
}

#[test]
fn bad_utf8_and_nul() {
    let bad: [&[u8]; 4] = [
        &[0xFF],             // never valid in UTF-8
        &[0xC0, 0x80],       // overlong U+0000
        &[0xED, 0xA0, 0x80], // UTF-16 surrogate U+D800
        &[b'a', 0xE2, 0x82], // cut multi-byte sequence
    ];
    for text in bad {
        let len = u8::try_from(text.len()).expect("short");
        let topic = cat(&[&[0, len], text]);
        let e = err(&frame(0x30, &topic), V311);
        assert!(matches!(e, DecodeError::InvalidUtf8), "{text:02x?}: {e:?}");
        assert_eq!(e.reason_code(), 0x81);
        let connect = frame(0x10, &cat(&[&s("MQTT"), &[4, 2, 0, 0], &topic]));
        assert!(matches!(err(&connect, V311), DecodeError::InvalidUtf8));
        let user_property = cat(&[&[0x26], &s("k"), &topic]);
        assert!(matches!(
            err(&publish_v5_props(&user_property), V5),
            DecodeError::InvalidUtf8
        ));
    }
    let nul = frame(0x30, &[0, 3, b'a', 0, b'b']);
    assert!(matches!(err(&nul, V311), DecodeError::NulInString));
    let nul_id = frame(0x10, &cat(&[&s("MQTT"), &[4, 2, 0, 0, 0, 1, 0]]));
    assert!(matches!(err(&nul_id, V311), DecodeError::NulInString));
}

#[test]
fn publish_qos_3() {
    for version in ALL {
        let e = err(&[0x36, 5, 0, 1, b't', 0, 1], version);
        assert!(matches!(e, DecodeError::InvalidQoS));
    }
}

#[test]
fn zero_packet_ids() {
    let cases: [&[u8]; 9] = [
        &[0x32, 5, 0, 1, b't', 0, 0],
        &[0x40, 2, 0, 0],
        &[0x50, 2, 0, 0],
        &[0x62, 2, 0, 0],
        &[0x70, 2, 0, 0],
        &[0x82, 6, 0, 0, 0, 1, b'a', 0],
        &[0x90, 3, 0, 0, 0],
        &[0xA2, 5, 0, 0, 0, 1, b'a'],
        &[0xB0, 2, 0, 0],
    ];
    for bytes in cases {
        let e = err(bytes, V311);
        assert!(
            matches!(e, DecodeError::ZeroPacketId),
            "{bytes:02x?}: {e:?}"
        );
    }
}

#[test]
fn invalid_property_ids() {
    for id in [0x00, 0x04, 0x2B, 0x7F, 0x80, 0xFF] {
        let e = err(&publish_v5_props(&[id, 0]), V5);
        assert!(
            matches!(e, DecodeError::InvalidPropertyId(i) if i == id),
            "{id}: {e:?}"
        );
    }
}

#[test]
fn properties_not_allowed_in_the_packet() {
    use PacketType as T;
    let cases: [(Vec<u8>, u8, T); 6] = [
        (publish_v5_props(&[0x11, 0, 0, 0, 1]), 0x11, T::Publish),
        (connect_v5_props(&[0x23, 0, 1]), 0x23, T::Connect),
        // Will Delay Interval belongs in the will properties, not CONNECT's own.
        (connect_v5_props(&[0x18, 0, 0, 0, 1]), 0x18, T::Connect),
        (
            frame(0x82, &[0, 1, 3, 0x1F, 0, 0, 0, 1, b'a', 0]),
            0x1F,
            T::Subscribe,
        ),
        (
            frame(0xA2, &[0, 1, 2, 0x0B, 1, 0, 1, b'a']),
            0x0B,
            T::Unsubscribe,
        ),
        (frame(0x40, &[0, 1, 0, 2, 0x0B, 1]), 0x0B, T::PubAck),
    ];
    for (bytes, id, packet) in cases {
        let e = err(&bytes, V5);
        assert!(
            matches!(e, DecodeError::PropertyNotAllowed { id: i, packet: p } if i == id && p == packet),
            "{bytes:02x?}: {e:?}"
        );
        assert_eq!(e.reason_code(), 0x81);
    }
}

#[test]
fn duplicate_properties() {
    let twice = |p: &[u8]| cat(&[p, p]);
    let cases: [(Vec<u8>, u8); 5] = [
        (publish_v5_props(&twice(&[0x23, 0, 1])), 0x23),
        (publish_v5_props(&twice(&[0x01, 1])), 0x01),
        (connect_v5_props(&twice(&[0x21, 0, 1])), 0x21),
        (
            frame(0x82, &[0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, b'a', 0]),
            0x0B,
        ),
        (
            frame(
                0x40,
                &cat(&[&[0, 1, 0, 8], &twice(&cat(&[&[0x1F], &s("r")]))]),
            ),
            0x1F,
        ),
    ];
    for (bytes, id) in cases {
        let e = err(&bytes, V5);
        assert!(
            matches!(e, DecodeError::DuplicateProperty(i) if i == id),
            "{e:?}"
        );
        assert_eq!(e.reason_code(), 0x82);
    }
    // User Property may repeat anywhere; Subscription Identifier may repeat in PUBLISH.
    let user = cat(&[&[0x26], &s("k"), &s("v")]);
    let ok = decode_one(&publish_v5_props(&twice(&user)), V5).expect("repeatable");
    let Packet::Publish(p) = ok else {
        panic!("not a PUBLISH")
    };
    assert_eq!(p.properties.user_properties.len(), 2);
    let ok = decode_one(&publish_v5_props(&[0x0B, 1, 0x0B, 1]), V5).expect("repeatable");
    let Packet::Publish(p) = ok else {
        panic!("not a PUBLISH")
    };
    assert_eq!(p.properties.subscription_identifiers, [1, 1]);
}

#[test]
fn invalid_property_values() {
    let cases: [(Vec<u8>, u8); 12] = [
        (connect_v5_props(&[0x21, 0, 0]), 0x21), // receive maximum 0
        (connect_v5_props(&[0x27, 0, 0, 0, 0]), 0x27), // maximum packet size 0
        (connect_v5_props(&[0x17, 2]), 0x17),    // request problem information 2
        (connect_v5_props(&[0x19, 2]), 0x19),    // request response information 2
        (publish_v5_props(&[0x0B, 0]), 0x0B),    // subscription identifier 0
        (publish_v5_props(&[0x01, 2]), 0x01),    // payload format 2
        (publish_v5_props(&[0x23, 0, 0]), 0x23), // topic alias 0 (MQTT-3.3.2-8)
        (connack_v5_props(&[0x24, 2]), 0x24),    // maximum QoS 2
        (connack_v5_props(&[0x25, 2]), 0x25),    // retain available 2
        (connack_v5_props(&[0x21, 0, 0]), 0x21), // receive maximum 0
        (connack_v5_props(&[0x28, 3]), 0x28),    // wildcard subscription available 3
        (frame(0x82, &[0, 1, 2, 0x0B, 0, 0, 1, b'a', 0]), 0x0B),
    ];
    for (bytes, id) in cases {
        let e = err(&bytes, V5);
        assert!(
            matches!(e, DecodeError::InvalidPropertyValue { id: i, .. } if i == id),
            "{bytes:02x?}: {e:?}"
        );
        // Topic alias 0 is "Topic Alias invalid" (0x94), the others "Protocol Error".
        let code = if id == 0x23 { 0x94 } else { 0x82 };
        assert_eq!(e.reason_code(), code, "{bytes:02x?}: {e:?}");
    }
}

#[test]
fn property_lengths_that_lie() {
    // The property length runs past the packet.
    let e = err(&frame(0x30, &cat(&[&s("t"), &[5, 0x01]])), V5);
    assert!(matches!(e, DecodeError::Truncated));
    // A value runs past its property block (into what would be the payload).
    let e = err(&frame(0x30, &cat(&[&s("t"), &[2, 0x23, 0, 5]])), V5);
    assert!(matches!(e, DecodeError::Truncated));
    // A property length of five bytes.
    let e = err(
        &frame(0x30, &cat(&[&s("t"), &[0xFF, 0xFF, 0xFF, 0xFF, 0x01]])),
        V5,
    );
    assert!(matches!(e, DecodeError::MalformedVarInt));
    // A subscription identifier that never ends inside its block.
    let e = err(&publish_v5_props(&[0x0B, 0x80]), V5);
    assert!(matches!(e, DecodeError::Truncated));
    // The property length is required in CONNACK (no short form, §3.2.2.3.1).
    let e = err(&[0x20, 2, 0, 0], V5);
    assert!(matches!(e, DecodeError::Truncated));
}

#[test]
fn connect_rule_violations() {
    let connect = |name: &str, level: u8, flags: u8, tail: &[u8]| {
        frame(0x10, &cat(&[&s(name), &[level, flags, 0, 0], tail]))
    };
    let id = s("c");
    type Expected = fn(&DecodeError) -> bool;
    let cases: [(Vec<u8>, Expected); 10] = [
        (connect("MQTX", 4, 2, &id), |e| {
            matches!(e, DecodeError::InvalidProtocolName)
        }),
        (connect("mqtt", 4, 2, &id), |e| {
            matches!(e, DecodeError::InvalidProtocolName)
        }),
        (connect("MQTT", 3, 2, &id), |e| {
            matches!(e, DecodeError::UnsupportedProtocolVersion(3))
        }),
        (connect("MQTT", 6, 2, &id), |e| {
            matches!(e, DecodeError::UnsupportedProtocolVersion(6))
        }),
        (connect("MQIsdp", 4, 2, &id), |e| {
            matches!(e, DecodeError::UnsupportedProtocolVersion(4))
        }),
        (connect("MQTT", 4, 0x03, &id), |e| {
            matches!(e, DecodeError::ReservedConnectFlag)
        }),
        (connect("MQTT", 4, 0x0A, &id), |e| {
            matches!(e, DecodeError::InvalidWillFlags)
        }),
        (connect("MQTT", 4, 0x22, &id), |e| {
            matches!(e, DecodeError::InvalidWillFlags)
        }),
        (connect("MQTT", 4, 0x1E, &id), |e| {
            matches!(e, DecodeError::InvalidWillFlags)
        }),
        (connect("MQTT", 4, 0x42, &cat(&[&id, &s("pw")])), |e| {
            matches!(e, DecodeError::PasswordWithoutUsername)
        }),
    ];
    for (bytes, expected) in cases {
        let e = err(&bytes, V311);
        assert!(expected(&e), "{bytes:02x?}: {e:?}");
    }
    assert_eq!(err(&connect("MQTT", 6, 2, &id), V5).reason_code(), 0x84);
    // MQTT 5 allows a password without a user name; so does this codec for MQTT 3.1.
    let pw = cat(&[&id, &s("pw")]);
    assert!(decode_one(&connect("MQTT", 5, 0x42, &cat(&[&[0], &pw])), V5).is_ok());
    assert!(decode_one(&connect("MQIsdp", 3, 0x42, &pw), V31).is_ok());
    // Anything after the last field.
    let trailing = connect("MQTT", 4, 2, &cat(&[&id, &[0]]));
    assert!(matches!(err(&trailing, V311), DecodeError::TrailingBytes));
}

#[test]
fn subscribe_and_unsubscribe_rules() {
    assert!(matches!(
        err(&[0x82, 2, 0, 1], V311),
        DecodeError::EmptySubscribe
    ));
    assert!(matches!(
        err(&[0x82, 3, 0, 1, 0], V5),
        DecodeError::EmptySubscribe
    ));
    assert!(matches!(
        err(&[0xA2, 2, 0, 1], V311),
        DecodeError::EmptyUnsubscribe
    ));
    assert!(matches!(
        err(&[0xA2, 3, 0, 1, 0], V5),
        DecodeError::EmptyUnsubscribe
    ));
    assert_eq!(DecodeError::EmptySubscribe.reason_code(), 0x82);

    let sub = |version: ProtocolVersion, options: u8| {
        let props: &[u8] = if version.is_v5() { &[0] } else { &[] };
        frame(0x82, &cat(&[&[0, 1], props, &s("a"), &[options]]))
    };
    // The reason code only matters in MQTT 5, which has a DISCONNECT to carry it.
    for (version, options, reason) in [
        (V311, 0x04, None),     // MQTT-3.8.3-4: reserved bits in 3.1.1
        (V311, 0x03, None),     // QoS 3
        (V31, 0x03, None),      // QoS 3
        (V5, 0x40, Some(0x81)), // MQTT-3.8.3-5: reserved bits in 5 are malformed
        (V5, 0x30, Some(0x82)), // retain handling 3 is a protocol error
        (V5, 0x03, Some(0x82)), // QoS 3 is a protocol error
    ] {
        let e = err(&sub(version, options), version);
        assert!(
            matches!(e, DecodeError::InvalidSubscriptionOptions(o) if o == options),
            "{version:?} {options:#x}: {e:?}"
        );
        if let Some(reason) = reason {
            assert_eq!(e.reason_code(), reason);
        }
    }
    // MQTT 3.1 calls the upper bits "not used": tolerated.
    assert!(decode_one(&sub(V31, 0xF1), V31).is_ok());
}

#[test]
fn acknowledgement_rules() {
    let e = err(&[0x90, 3, 0, 1, 0x03], V311);
    assert!(matches!(e, DecodeError::InvalidReturnCode(3)));
    assert!(decode_one(&[0x90, 4, 0, 1, 0, 0x03], V5).is_ok());
    for version in [V311, V5] {
        let e = err(&[0x20, 3, 0x02, 0, 0], version);
        assert!(matches!(e, DecodeError::InvalidConnAckFlags(2)));
    }
    // MQTT 3.1's first CONNACK byte is reserved and ignored.
    assert!(decode_one(&[0x20, 2, 0x02, 0], V31).is_ok());
}

#[test]
fn trailing_bytes() {
    let cases: [(&[u8], ProtocolVersion); 8] = [
        (&[0xC0, 1, 0], V5),
        (&[0xD0, 1, 0], V311),
        (&[0x40, 3, 0, 1, 0], V311),
        (&[0x62, 3, 0, 1, 0], V31),
        (&[0xE0, 1, 0], V311),
        (&[0xB0, 3, 0, 1, 0], V311),
        (&[0x20, 3, 0, 0, 0], V311),
        (&[0x40, 5, 0, 1, 0x10, 0, 0xAA], V5),
    ];
    for (bytes, version) in cases {
        let e = err(bytes, version);
        assert!(
            matches!(e, DecodeError::TrailingBytes),
            "{bytes:02x?}: {e:?}"
        );
    }
}

#[test]
fn garbage_never_panics() {
    // A deterministic sweep over short inputs; the property tests cover random ones.
    for first in 0u8..=255 {
        for len in 0u8..6 {
            for fill in [0x00, 0x01, 0x7F, 0x80, 0xFF] {
                let mut bytes = vec![first, len];
                bytes.resize(2 + usize::from(len), fill);
                for version in ALL {
                    let mut buf = BytesMut::from(&bytes[..]);
                    let _ = decode_packet(&mut buf, version, MAX);
                }
                let _ = peek_connect_version(&bytes);
            }
        }
    }
}
