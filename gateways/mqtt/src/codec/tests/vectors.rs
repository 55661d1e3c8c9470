//! Hand-written byte vectors for every packet type in every version, including the MQTT 5
//! short forms and an MQTT 3.1 ("MQIsdp") CONNECT.

use super::*;
use switchyard_core::{ByteString, Bytes, QoS};

const V31: ProtocolVersion = ProtocolVersion::V31;
const V311: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;

fn user(k: &str, v: &str) -> UserProperty {
    (ByteString::from(k), ByteString::from(v))
}

#[test]
fn connect_v311_with_will_and_credentials() {
    // The MQTT 3.1.1 layout of §3.1 with every optional field present.
    #[rustfmt::skip]
    let bytes = [
        0x10, 39,
        0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04,
        0b1100_1110, // user name, password, will QoS 1, will flag, clean session
        0x00, 0x0A, // keep alive 10
        0x00, 0x04, b't', b'e', b's', b't',
        0x00, 0x02, b'/', b'a',
        0x00, 0x07, b'o', b'f', b'f', b'l', b'i', b'n', b'e',
        0x00, 0x04, b'r', b'u', b'm', b'q',
        0x00, 0x02, b'm', b'q',
    ];
    let connect = Connect {
        protocol: V311,
        clean_start: true,
        keep_alive: 10,
        client_id: "test".into(),
        will: Some(LastWill {
            topic: "/a".into(),
            payload: Bytes::from_static(b"offline"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: WillProperties::default(),
        }),
        username: Some("rumq".into()),
        password: Some(Bytes::from_static(b"mq")),
        properties: ConnectProperties::default(),
    };
    let packet = Packet::Connect(Box::new(connect));
    assert_vector(&bytes, &packet, V311);
    // A CONNECT is decoded at its own level whatever the codec's version is.
    assert_eq!(decode_one(&bytes, V5).expect("decodes"), packet);
    assert_eq!(decode_one(&bytes, V31).expect("decodes"), packet);
}

#[test]
fn connect_v31_mqisdp() {
    let body = cat(&[&s("MQIsdp"), &[0x03, 0x02, 0x00, 0x3C], &s("cid")]);
    let bytes = frame(0x10, &body);
    let packet = Packet::Connect(Box::new(Connect {
        keep_alive: 60,
        ..Connect::new(V31, "cid")
    }));
    assert_vector(&bytes, &packet, V311);
    assert_eq!(peek_connect_version(&bytes).expect("peek"), Some(V31));
}

#[test]
fn connect_v31_accepts_long_client_id_and_flag_without_password() {
    // MQTT 3.1 capped client ids at 23 characters; that is channel policy, not framing.
    let id = "a-client-identifier-much-longer-than-23";
    let body = cat(&[&s("MQIsdp"), &[0x03, 0xC2, 0x00, 0x00], &s(id), &s("user")]);
    let packet = decode_one(&frame(0x10, &body), V311).expect("decodes");
    let Packet::Connect(connect) = packet else {
        panic!("not a CONNECT: {packet:?}")
    };
    assert_eq!(connect.client_id, id);
    assert_eq!(connect.username.as_deref(), Some("user"));
    // The password flag was set but no password followed: tolerated in 3.1, like mosquitto.
    assert_eq!(connect.password, None);
}

#[test]
fn connect_v5_with_properties() {
    let props = cat(&[
        &[0x11, 0x00, 0x00, 0x00, 0x0A], // session expiry 10
        &[0x21, 0x00, 0x14],             // receive maximum 20
        &[0x26],
        &s("k"),
        &s("v"), // user property
    ]);
    let body = cat(&[
        &s("MQTT"),
        &[0x05, 0xC2, 0x00, 0x3C],
        &[u8::try_from(props.len()).expect("short")],
        &props,
        &s("c1"),
        &s("u"),
        &[0x00, 0x02, 0x01, 0x02],
    ]);
    let bytes = frame(0x10, &body);
    assert_eq!(bytes[1], 37);
    let packet = Packet::Connect(Box::new(Connect {
        keep_alive: 60,
        username: Some("u".into()),
        password: Some(Bytes::from_static(&[1, 2])),
        properties: ConnectProperties {
            session_expiry_interval: Some(10),
            receive_maximum: Some(20),
            user_properties: vec![user("k", "v")],
            ..Default::default()
        },
        ..Connect::new(V5, "c1")
    }));
    assert_vector(&bytes, &packet, V311);
    assert_eq!(peek_connect_version(&bytes).expect("peek"), Some(V5));
}

#[test]
fn connect_v5_with_will_properties_and_password_only() {
    let body = cat(&[
        &s("MQTT"),
        &[0x05, 0b0110_1110, 0x00, 0x00], // password, will retain, will QoS 1, will, clean
        &[0x00],                          // no CONNECT properties
        &s("c"),
        &[0x07, 0x01, 0x01, 0x18, 0x00, 0x00, 0x00, 0x05], // payload format 1, will delay 5
        &s("a/b"),
        &s("hi"),
        &s("pw"),
    ]);
    let bytes = frame(0x10, &body);
    let packet = Packet::Connect(Box::new(Connect {
        will: Some(LastWill {
            topic: "a/b".into(),
            payload: Bytes::from_static(b"hi"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: WillProperties {
                will_delay_interval: Some(5),
                payload_format_indicator: Some(1),
                ..Default::default()
            },
        }),
        // MQTT 5 allows a password without a user name (§3.1.2.9).
        password: Some(Bytes::from_static(b"pw")),
        ..Connect::new(V5, "c")
    }));
    assert_vector(&bytes, &packet, V5);
}

#[test]
fn connack_all_versions() {
    assert_vector(
        &[0x20, 0x02, 0x01, 0x00],
        &Packet::ConnAck(ConnAck::new(0, true)),
        V311,
    );
    assert_vector(
        &[0x20, 0x02, 0x00, 0x05],
        &Packet::ConnAck(ConnAck::new(5, false)),
        V31,
    );
    assert_vector(
        &[0x20, 0x03, 0x00, 0x84, 0x00],
        &Packet::ConnAck(ConnAck::new(0x84, false)),
        V5,
    );
    #[rustfmt::skip]
    let bytes = [
        0x20, 12, 0x01, 0x00, 9,
        0x12, 0x00, 0x02, b'i', b'd', // assigned client identifier
        0x24, 0x01, // maximum QoS 1
        0x25, 0x00, // retain not available
    ];
    let packet = Packet::ConnAck(ConnAck {
        session_present: true,
        code: 0,
        properties: ConnAckProperties {
            assigned_client_identifier: Some("id".into()),
            maximum_qos: Some(1),
            retain_available: Some(0),
            ..Default::default()
        },
    });
    assert_vector(&bytes, &packet, V5);
}

#[test]
fn publish_v3() {
    // MQTT 3.1.1 §3.3 example: topic "a/b", packet id 10.
    let qos1 = [
        0x32, 11, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x0A, 0xF1, 0xF2, 0xF3, 0xF4,
    ];
    let packet = Packet::Publish(Publish {
        qos: QoS::AtLeastOnce,
        pkid: Some(pkid(10)),
        ..Publish::new("a/b", Bytes::from_static(&[0xF1, 0xF2, 0xF3, 0xF4]))
    });
    assert_vector(&qos1, &packet, V311);
    assert_vector(&qos1, &packet, V31);

    let qos0 = [0x30, 7, 0x00, 0x03, b'a', b'/', b'b', 0x01, 0x02];
    let packet = Packet::Publish(Publish::new("a/b", Bytes::from_static(&[1, 2])));
    assert_vector(&qos0, &packet, V311);

    let qos2_dup_retain = [0x3D, 5, 0x00, 0x01, b'x', 0xFF, 0xFF];
    let packet = Packet::Publish(Publish {
        dup: true,
        qos: QoS::ExactlyOnce,
        retain: true,
        pkid: Some(pkid(0xFFFF)),
        ..Publish::new("x", Bytes::new())
    });
    assert_vector(&qos2_dup_retain, &packet, V311);
}

#[test]
fn publish_payload_is_a_slice_of_the_frame() {
    let bytes = [0x30, 7, 0x00, 0x03, b'a', b'/', b'b', 0x01, 0x02];
    let mut buf = BytesMut::from(&bytes[..]);
    let start = buf.as_ptr() as usize;
    let Some(Packet::Publish(p)) = decode_packet(&mut buf, V311, MAX).expect("decodes") else {
        panic!("not a PUBLISH")
    };
    // Zero-copy: topic and payload point into the original allocation.
    assert_eq!(p.topic.as_ptr() as usize, start + 4);
    assert_eq!(p.payload.as_ptr() as usize, start + 7);
}

#[test]
fn publish_v5_with_properties() {
    #[rustfmt::skip]
    let bytes = [
        0x32, 20, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x0A,
        10, // property length
        0x01, 0x01, // payload format: UTF-8
        0x0B, 0x80, 0x01, // subscription identifier 128
        0x0B, 0x01, // subscription identifier 1 (may repeat in PUBLISH)
        0x23, 0x00, 0x05, // topic alias 5
        b'h', b'i',
    ];
    let packet = Packet::Publish(Publish {
        qos: QoS::AtLeastOnce,
        pkid: Some(pkid(10)),
        properties: PublishProperties {
            payload_format_indicator: Some(1),
            subscription_identifiers: vec![128, 1],
            topic_alias: Some(5),
            ..Default::default()
        },
        ..Publish::new("a/b", Bytes::from_static(b"hi"))
    });
    assert_vector(&bytes, &packet, V5);

    // Topic alias with an empty topic name (§3.3.2.3.4) and no payload.
    let bytes = [0x30, 6, 0x00, 0x00, 3, 0x23, 0x00, 0x07];
    let packet = Packet::Publish(Publish {
        properties: PublishProperties {
            topic_alias: Some(7),
            ..Default::default()
        },
        ..Publish::new("", Bytes::new())
    });
    assert_vector(&bytes, &packet, V5);
}

#[test]
fn acks_v3() {
    let id = pkid(10);
    for version in [V31, V311] {
        assert_vector(&[0x40, 2, 0, 10], &Packet::PubAck(Ack::new(id)), version);
        assert_vector(&[0x50, 2, 0, 10], &Packet::PubRec(Ack::new(id)), version);
        assert_vector(&[0x62, 2, 0, 10], &Packet::PubRel(Ack::new(id)), version);
        assert_vector(&[0x70, 2, 0, 10], &Packet::PubComp(Ack::new(id)), version);
    }
    // MQTT 3.x has no reason codes or properties: they are dropped on encode.
    let mut with_reason = Ack::with_reason(id, 0x80);
    with_reason.properties.reason_string = Some("no".into());
    assert_eq!(encode(&Packet::PubAck(with_reason), V311), [0x40, 2, 0, 10]);
}

#[test]
fn acks_v5_short_and_long_forms() {
    let id = pkid(1);
    type Wrap = fn(Ack) -> Packet;
    let kinds: [(u8, Wrap); 4] = [
        (0x40, Packet::PubAck),
        (0x50, Packet::PubRec),
        (0x62, Packet::PubRel),
        (0x70, Packet::PubComp),
    ];
    for (first, wrap) in kinds {
        // Remaining length 2: Success, no properties (§3.4.2.1).
        assert_vector(&[first, 2, 0, 1], &wrap(Ack::new(id)), V5);
        // Remaining length 3: a reason code, no properties (§3.4.2.2.1).
        assert_vector(
            &[first, 3, 0, 1, 0x92],
            &wrap(Ack::with_reason(id, 0x92)),
            V5,
        );
        // Remaining length 4 with an empty property block is legal, if not the shortest.
        assert_decodes(&[first, 4, 0, 1, 0x00, 0x00], &wrap(Ack::new(id)), V5);
        // The full form.
        let bytes = [first, 10, 0, 1, 0x80, 6, 0x1F, 0x00, 0x03, b'b', b'a', b'd'];
        let mut ack = Ack::with_reason(id, 0x80);
        ack.properties.reason_string = Some("bad".into());
        assert_vector(&bytes, &wrap(ack.clone()), V5);
        // Success with properties still carries the reason code.
        ack.reason_code = 0;
        let bytes = [first, 10, 0, 1, 0x00, 6, 0x1F, 0x00, 0x03, b'b', b'a', b'd'];
        assert_vector(&bytes, &wrap(ack), V5);
    }
}

#[test]
fn subscribe_v3() {
    #[rustfmt::skip]
    let bytes = [
        0x82, 20, 0x01, 0x04, // packet id 260
        0x00, 0x03, b'a', b'/', b'+', 0x00,
        0x00, 0x01, b'#', 0x01,
        0x00, 0x05, b'a', b'/', b'b', b'/', b'c', 0x02,
    ];
    let packet = Packet::Subscribe(Subscribe::new(
        pkid(260),
        vec![
            ("a/+".into(), SubscriptionOptions::new(QoS::AtMostOnce)),
            ("#".into(), SubscriptionOptions::new(QoS::AtLeastOnce)),
            ("a/b/c".into(), SubscriptionOptions::new(QoS::ExactlyOnce)),
        ],
    ));
    assert_vector(&bytes, &packet, V311);
    assert_vector(&bytes, &packet, V31);
    // MQTT 3.1 allowed DUP on a retransmitted SUBSCRIBE.
    let mut dup = bytes;
    dup[0] = 0x8A;
    assert_eq!(decode_one(&dup, V31).expect("3.1 DUP"), packet);
}

#[test]
fn subscribe_v5_with_options_and_identifier() {
    #[rustfmt::skip]
    let bytes = [
        0x82, 11, 0x00, 0x01,
        2, 0x0B, 0x0A, // subscription identifier 10
        0x00, 0x03, b'a', b'/', b'b',
        0b0010_1101, // retain handling 2, retain as published, no local, QoS 1
    ];
    let packet = Packet::Subscribe(Subscribe {
        pkid: pkid(1),
        filters: vec![(
            "a/b".into(),
            SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: 2,
            },
        )],
        properties: SubscribeProperties {
            subscription_identifier: Some(10),
            user_properties: Vec::new(),
        },
    });
    assert_vector(&bytes, &packet, V5);
}

#[test]
fn suback_all_versions() {
    let packet = Packet::SubAck(SubAck::new(pkid(1), vec![0x00, 0x02, 0x80]));
    assert_vector(&[0x90, 5, 0x00, 0x01, 0x00, 0x02, 0x80], &packet, V311);
    assert_vector(&[0x90, 5, 0x00, 0x01, 0x00, 0x02, 0x80], &packet, V31);
    let packet = Packet::SubAck(SubAck::new(pkid(1), vec![0x01, 0x87]));
    assert_vector(&[0x90, 5, 0x00, 0x01, 0x00, 0x01, 0x87], &packet, V5);
    // An MQTT 5 failure code is sent to an MQTT 3.x client as 0x80, its only failure code.
    assert_eq!(encode(&packet, V311), [0x90, 4, 0x00, 0x01, 0x01, 0x80]);
}

#[test]
fn unsubscribe_all_versions() {
    let bytes = cat(&[&[0xA2, 10, 0x00, 0x01], &s("a/b"), &s("#")]);
    let packet = Packet::Unsubscribe(Unsubscribe::new(pkid(1), vec!["a/b".into(), "#".into()]));
    assert_vector(&bytes, &packet, V311);
    assert_vector(&bytes, &packet, V31);

    let bytes = cat(&[
        &[0xA2, 15, 0x00, 0x01, 7, 0x26],
        &s("k"),
        &s("v"),
        &s("a/b"),
    ]);
    let mut unsubscribe = Unsubscribe::new(pkid(1), vec!["a/b".into()]);
    unsubscribe.user_properties.push(user("k", "v"));
    assert_vector(&bytes, &Packet::Unsubscribe(unsubscribe), V5);
}

#[test]
fn unsuback_all_versions() {
    for version in [V31, V311] {
        assert_vector(
            &[0xB0, 2, 0x00, 0x01],
            &Packet::UnsubAck(UnsubAck::new(pkid(1), Vec::new())),
            version,
        );
    }
    assert_vector(
        &[0xB0, 5, 0x00, 0x01, 0x00, 0x00, 0x11],
        &Packet::UnsubAck(UnsubAck::new(pkid(1), vec![0x00, 0x11])),
        V5,
    );
}

#[test]
fn pings_all_versions() {
    for version in [V31, V311, V5] {
        assert_vector(&[0xC0, 0], &Packet::PingReq, version);
        assert_vector(&[0xD0, 0], &Packet::PingResp, version);
    }
}

#[test]
fn disconnect_all_versions() {
    let normal = Packet::Disconnect(Disconnect::default());
    assert_vector(&[0xE0, 0], &normal, V311);
    assert_vector(&[0xE0, 0], &normal, V31);
    // MQTT 5 short forms (§3.14.2.1, §3.14.2.2.1).
    assert_vector(&[0xE0, 0], &normal, V5);
    // A reason code is always followed by the property length on output (mqttbytes-based
    // clients cannot read the reason-only form); both forms decode.
    assert_vector(
        &[0xE0, 2, 0x04, 0x00],
        &Packet::Disconnect(Disconnect::new(0x04)),
        V5,
    );
    assert_decodes(
        &[0xE0, 1, 0x04],
        &Packet::Disconnect(Disconnect::new(0x04)),
        V5,
    );
    assert_decodes(&[0xE0, 2, 0x00, 0x00], &normal, V5);
    #[rustfmt::skip]
    let bytes = [
        0xE0, 12, 0x8E, 10,
        0x11, 0x00, 0x00, 0x00, 0x3C, // session expiry 60
        0x1F, 0x00, 0x02, b'b', b'y', // reason string
    ];
    let packet = Packet::Disconnect(Disconnect {
        reason_code: 0x8E,
        properties: DisconnectProperties {
            session_expiry_interval: Some(60),
            reason_string: Some("by".into()),
            ..Default::default()
        },
    });
    assert_vector(&bytes, &packet, V5);
}

#[test]
fn auth_v5() {
    assert_vector(&[0xF0, 0], &Packet::Auth(Auth::default()), V5);
    assert_vector(&[0xF0, 1, 0x19], &Packet::Auth(Auth::new(0x19)), V5);
    #[rustfmt::skip]
    let bytes = [
        0xF0, 11, 0x18, 9,
        0x15, 0x00, 0x01, b'X', // authentication method
        0x16, 0x00, 0x02, 0xAB, 0xCD, // authentication data
    ];
    let packet = Packet::Auth(Auth {
        reason_code: 0x18,
        properties: AuthProperties {
            authentication_method: Some("X".into()),
            authentication_data: Some(Bytes::from_static(&[0xAB, 0xCD])),
            ..Default::default()
        },
    });
    assert_vector(&bytes, &packet, V5);
}

#[test]
fn auth_does_not_exist_before_v5() {
    let mut out = BytesMut::new();
    let err = encode_packet(&Packet::Auth(Auth::default()), V311, &mut out);
    assert!(matches!(err, Err(EncodeError::UnsupportedInVersion { .. })));
    assert!(out.is_empty());
    assert_eq!(
        encoded_len(&Packet::Auth(Auth::default()), V311),
        usize::MAX
    );
}

#[test]
fn v3_drops_v5_only_fields_on_encode() {
    let mut disconnect = Disconnect::new(0x8E);
    disconnect.properties.reason_string = Some("x".into());
    assert_eq!(encode(&Packet::Disconnect(disconnect), V311), [0xE0, 0]);
    let unsuback = UnsubAck::new(pkid(2), vec![0x00]);
    assert_eq!(encode(&Packet::UnsubAck(unsuback), V311), [0xB0, 2, 0, 2]);
    let mut publish = Publish::new("t", Bytes::new());
    publish.properties.topic_alias = Some(1);
    assert_eq!(
        encode(&Packet::Publish(publish), V311),
        [0x30, 3, 0, 1, b't']
    );
}

#[test]
fn encode_refuses_what_cannot_be_framed() {
    let mut out = BytesMut::new();
    let mut publish = Publish::new("t", Bytes::new());
    publish.qos = QoS::AtLeastOnce;
    let err = encode_packet(&Packet::Publish(publish.clone()), V311, &mut out);
    assert!(matches!(err, Err(EncodeError::PacketIdMismatch { .. })));
    publish.qos = QoS::AtMostOnce;
    publish.pkid = Some(pkid(1));
    let err = encode_packet(&Packet::Publish(publish), V311, &mut out);
    assert!(matches!(err, Err(EncodeError::PacketIdMismatch { .. })));

    let long = ByteString::from("x".repeat(65_536));
    let err = encode_packet(
        &Packet::Publish(Publish::new(long, Bytes::new())),
        V5,
        &mut out,
    );
    assert!(matches!(
        err,
        Err(EncodeError::FieldTooLong { len: 65_536 })
    ));

    let mut options = SubscriptionOptions::new(QoS::AtMostOnce);
    options.retain_handling = 3;
    let subscribe = Subscribe::new(pkid(1), vec![("a".into(), options)]);
    let err = encode_packet(&Packet::Subscribe(subscribe), V5, &mut out);
    assert!(matches!(err, Err(EncodeError::InvalidRetainHandling(3))));

    let suback = SubAck::new(pkid(1), vec![0x03]);
    let err = encode_packet(&Packet::SubAck(suback), V311, &mut out);
    assert!(matches!(err, Err(EncodeError::InvalidReturnCode(3))));

    let mut publish = Publish::new("t", Bytes::new());
    publish.properties.subscription_identifiers = vec![0];
    let err = encode_packet(&Packet::Publish(publish), V5, &mut out);
    assert!(matches!(
        err,
        Err(EncodeError::InvalidPropertyValue { id: 0x0B, value: 0 })
    ));
    assert!(out.is_empty(), "nothing written on error");
}
