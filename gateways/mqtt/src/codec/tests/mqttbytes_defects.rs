//! Where mqttbytes 0.6 is wrong, pinned: each test asserts mqttbytes's behaviour and ours, so
//! a fix upstream (or a regression here) shows up as a failing test.

use super::*;
use mqttbytes::{v4 as m4, v5 as m5};

const V311: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;

fn theirs_v4(bytes: &[u8]) -> Result<m4::Packet, mqttbytes::Error> {
    m4::read(&mut BytesMut::from(bytes), MAX)
}

fn theirs_v5(bytes: &[u8]) -> Result<m5::Packet, mqttbytes::Error> {
    m5::read(&mut BytesMut::from(bytes), MAX)
}

#[test]
fn v5_auth_is_unknown_to_mqttbytes() {
    // MQTT 5 §3.15: packet type 15 is AUTH; mqttbytes stops at 14.
    let short = [0xF0, 0x00];
    let full = encode(
        &Packet::Auth(Auth {
            reason_code: 0x18,
            properties: AuthProperties {
                authentication_method: Some("SCRAM-SHA-256".into()),
                ..Default::default()
            },
        }),
        V5,
    );
    for bytes in [&short[..], &full[..]] {
        assert_eq!(
            theirs_v5(bytes).expect_err("mqttbytes has no AUTH"),
            mqttbytes::Error::InvalidPacketType(15)
        );
        assert!(matches!(decode_one(bytes, V5), Ok(Packet::Auth(_))));
    }
}

#[test]
fn v5_short_disconnect_is_rejected_by_mqttbytes() {
    // §3.14.2.1: remaining length 0 means Normal disconnection.
    let bytes = [0xE0, 0x00];
    assert_eq!(
        theirs_v5(&bytes).expect_err("mqttbytes wants a payload"),
        mqttbytes::Error::PayloadRequired
    );
    assert_eq!(
        decode_one(&bytes, V5).expect("legal short form"),
        Packet::Disconnect(Disconnect::default())
    );
}

#[test]
fn v5_reason_only_disconnect_mqttbytes_writes_but_cannot_read() {
    // §3.14.2.2.1: below remaining length 2 there is no property length. mqttbytes writes
    // this form itself, then its reader asks for "1 more byte" although it has already
    // consumed the frame: a caller that waits for more input is now out of sync.
    let theirs = m5::Disconnect {
        reason_code: m5::DisconnectReasonCode::DisconnectWithWillMessage,
        properties: None,
    };
    let bytes = write_v5_disconnect(&theirs);
    assert_eq!(bytes, [0xE0, 0x01, 0x04]);
    let mut buf = BytesMut::from(&bytes[..]);
    assert_eq!(
        m5::read(&mut buf, MAX).expect_err("mqttbytes cannot read its own output"),
        mqttbytes::Error::InsufficientBytes(1)
    );
    assert!(buf.is_empty(), "mqttbytes consumed the frame it refused");
    assert_eq!(
        decode_one(&bytes, V5).expect("legal"),
        Packet::Disconnect(Disconnect::new(0x04))
    );
}

fn write_v5_disconnect(d: &m5::Disconnect) -> Vec<u8> {
    let mut out = BytesMut::new();
    d.write(&mut out).expect("mqttbytes writes");
    out.to_vec()
}

#[test]
fn subscribe_with_wrong_fixed_header_flags() {
    // MQTT-3.8.1-1 / MQTT-2.2.2-2: SUBSCRIBE flags are 0b0010; anything else is malformed.
    let body = cat(&[&[0x00, 0x01], &s("a/b"), &[0x01]]);
    for first in [0x80, 0x81, 0x83, 0x8F] {
        let bytes = frame(first, &body);
        assert!(
            matches!(theirs_v4(&bytes), Ok(m4::Packet::Subscribe(_))),
            "mqttbytes accepts flags {first:#x}"
        );
        let e = decode_one(&bytes, V311).expect_err("wrong flags");
        assert!(matches!(
            e,
            DecodeError::InvalidFixedHeaderFlags {
                packet_type: PacketType::Subscribe,
                ..
            }
        ));
    }
}

#[test]
fn filter_validation_belongs_to_core_not_the_codec() {
    // "sport+" breaks MQTT-4.7.1-3 ('+' must occupy a whole level). mqttbytes's
    // `valid_filter` accepts it. Our codec decodes the bytes as sent (filter syntax is not a
    // framing question) and switchyard-core's TopicFilter, which the channel applies,
    // rejects it.
    let bytes = frame(0x82, &cat(&[&[0x00, 0x01], &s("sport+"), &[0x00]]));
    let Ok(m4::Packet::Subscribe(theirs)) = theirs_v4(&bytes) else {
        panic!("mqttbytes decodes the SUBSCRIBE")
    };
    assert_eq!(theirs.filters[0].path, "sport+");
    assert!(
        mqttbytes::valid_filter("sport+"),
        "mqttbytes calls it valid"
    );

    let Ok(Packet::Subscribe(ours)) = decode_one(&bytes, V311) else {
        panic!("the codec decodes the SUBSCRIBE")
    };
    assert_eq!(ours.filters[0].0, "sport+");
    assert!(switchyard_core::TopicFilter::new(ours.filters[0].0.clone()).is_err());
}

#[test]
fn mqtt_3_1_connect_is_rejected_by_mqttbytes() {
    let bytes = frame(
        0x10,
        &cat(&[&s("MQIsdp"), &[0x03, 0x02, 0x00, 0x3C], &s("old-device")]),
    );
    assert_eq!(
        theirs_v4(&bytes).expect_err("mqttbytes knows only \"MQTT\""),
        mqttbytes::Error::InvalidProtocol
    );
    let Ok(Packet::Connect(connect)) = decode_one(&bytes, V311) else {
        panic!("MQTT 3.1 CONNECT decodes")
    };
    assert_eq!(connect.protocol, ProtocolVersion::V31);
    assert_eq!(connect.client_id, "old-device");
}

#[test]
fn v5_connack_without_properties_from_mqttbytes_is_not_mqtt_5() {
    // §3.2.2.3.1: CONNACK always carries a property length in MQTT 5. mqttbytes leaves it out
    // when `properties` is None (as ConnAck::new does), and cannot read the result either.
    let mut out = BytesMut::new();
    m5::ConnAck::new(m5::ConnectReturnCode::Success, false)
        .write(&mut out)
        .expect("mqttbytes writes");
    assert_eq!(&out[..], &[0x20, 0x02, 0x00, 0x00]);
    assert!(theirs_v5(&out).is_err());
    assert!(matches!(decode_one(&out, V5), Err(DecodeError::Truncated)));
    // What we write instead.
    assert_eq!(
        encode(&Packet::ConnAck(ConnAck::new(0, false)), V5),
        [0x20, 0x03, 0x00, 0x00, 0x00]
    );
}

#[test]
fn reserved_bits_mqttbytes_ignores() {
    // MQTT-3.8.3-4: reserved bits of the 3.1.1 subscription options.
    let subscribe = frame(0x82, &cat(&[&[0x00, 0x01], &s("a"), &[0x05]]));
    assert!(theirs_v4(&subscribe).is_ok());
    assert!(matches!(
        decode_one(&subscribe, V311),
        Err(DecodeError::InvalidSubscriptionOptions(0x05))
    ));
    // MQTT-3.1.2-3: the reserved CONNECT flag.
    let connect = frame(
        0x10,
        &cat(&[&s("MQTT"), &[0x04, 0x03, 0x00, 0x00], &s("c")]),
    );
    assert!(theirs_v4(&connect).is_ok());
    assert!(matches!(
        decode_one(&connect, V311),
        Err(DecodeError::ReservedConnectFlag)
    ));
}

#[test]
fn protocol_rules_mqttbytes_does_not_check() {
    // MQTT-3.1.2-22: password without user name in 3.1.1.
    let connect = frame(
        0x10,
        &cat(&[&s("MQTT"), &[0x04, 0x42, 0x00, 0x00], &s("c"), &s("pw")]),
    );
    assert!(theirs_v4(&connect).is_ok());
    assert!(matches!(
        decode_one(&connect, V311),
        Err(DecodeError::PasswordWithoutUsername)
    ));
    // MQTT-3.10.3-2: UNSUBSCRIBE without filters.
    let unsubscribe = [0xA2, 0x02, 0x00, 0x01];
    assert!(
        matches!(theirs_v4(&unsubscribe), Ok(m4::Packet::Unsubscribe(u)) if u.topics.is_empty())
    );
    assert!(matches!(
        decode_one(&unsubscribe, V311),
        Err(DecodeError::EmptyUnsubscribe)
    ));
    // MQTT 5 §2.2.2.2: Topic Alias twice; mqttbytes keeps the last one.
    let publish = frame(
        0x30,
        &cat(&[&s("t"), &[6, 0x23, 0x00, 0x01, 0x23, 0x00, 0x02]]),
    );
    let Ok(m5::Packet::Publish(theirs)) = theirs_v5(&publish) else {
        panic!("mqttbytes decodes the PUBLISH")
    };
    assert_eq!(theirs.properties.and_then(|p| p.topic_alias), Some(2));
    assert!(matches!(
        decode_one(&publish, V5),
        Err(DecodeError::DuplicateProperty(0x23))
    ));
}

#[test]
fn empty_user_name_is_lost_by_mqttbytes() {
    // A user name flag with a zero-length user name is legal; mqttbytes reports no login.
    let connect = frame(
        0x10,
        &cat(&[&s("MQTT"), &[0x04, 0x82, 0x00, 0x00], &s("c"), &s("")]),
    );
    let Ok(m4::Packet::Connect(theirs)) = theirs_v4(&connect) else {
        panic!("mqttbytes decodes the CONNECT")
    };
    assert_eq!(theirs.login, None);
    let Ok(Packet::Connect(ours)) = decode_one(&connect, V311) else {
        panic!("the codec decodes the CONNECT")
    };
    assert_eq!(ours.username.as_deref(), Some(""));
}
