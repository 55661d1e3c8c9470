//! Generators of valid packets per protocol version (proptest strategies), and one
//! fully-populated sample of each packet type.
//!
//! "Valid" means what the decoder accepts: MQTT 3.x packets carry no properties, no reason
//! codes and only 3.x SUBACK codes; MQTT 5 property values stay within their legal ranges.

use super::super::wire::MAX_VARINT;
use super::*;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use switchyard_core::{ByteString, Bytes, QoS};

/// Any string an MQTT peer may send: any Unicode scalar value but U+0000 (MQTT-1.5.3-2).
pub(super) fn text() -> impl Strategy<Value = ByteString> {
    vec(any::<char>(), 0..6).prop_map(|chars| {
        let s: String = chars
            .into_iter()
            .map(|c| if c == '\0' { '0' } else { c })
            .collect();
        ByteString::from(s)
    })
}

/// Arbitrary binary data.
pub(super) fn bin() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..8).prop_map(Bytes::from)
}

pub(super) fn users() -> impl Strategy<Value = Vec<UserProperty>> {
    vec((text(), text()), 0..3)
}

pub(super) fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

pub(super) fn packet_id() -> impl Strategy<Value = switchyard_core::PacketId> {
    (1u16..=u16::MAX).prop_map(pkid)
}

fn flag() -> impl Strategy<Value = Option<u8>> {
    of(0u8..=1)
}

fn subscription_identifier() -> impl Strategy<Value = u32> {
    1u32..=MAX_VARINT
}

pub(super) fn connect_properties() -> impl Strategy<Value = ConnectProperties> {
    (
        of(any::<u32>()),
        of(1u16..),
        of(1u32..),
        of(any::<u16>()),
        flag(),
        flag(),
        users(),
        of(text()),
        of(bin()),
    )
        .prop_map(
            |(sei, rm, mps, tam, rri, rpi, up, am, ad)| ConnectProperties {
                session_expiry_interval: sei,
                receive_maximum: rm,
                maximum_packet_size: mps,
                topic_alias_maximum: tam,
                request_response_information: rri,
                request_problem_information: rpi,
                user_properties: up,
                authentication_method: am,
                authentication_data: ad,
            },
        )
}

pub(super) fn will_properties() -> impl Strategy<Value = WillProperties> {
    (
        of(any::<u32>()),
        flag(),
        of(any::<u32>()),
        of(text()),
        of(text()),
        of(bin()),
        users(),
    )
        .prop_map(|(wdi, pfi, mei, ct, rt, cd, up)| WillProperties {
            will_delay_interval: wdi,
            payload_format_indicator: pfi,
            message_expiry_interval: mei,
            content_type: ct,
            response_topic: rt,
            correlation_data: cd,
            user_properties: up,
        })
}

pub(super) fn connack_properties() -> impl Strategy<Value = ConnAckProperties> {
    let first = (
        of(any::<u32>()),
        of(1u16..),
        flag(),
        flag(),
        of(1u32..),
        of(text()),
        of(any::<u16>()),
        of(text()),
        users(),
    );
    let second = (
        flag(),
        flag(),
        flag(),
        of(any::<u16>()),
        of(text()),
        of(text()),
        of(text()),
        of(bin()),
    );
    (first, second).prop_map(
        |((sei, rm, mq, ra, mps, aci, tam, rs, up), (wsa, sia, ssa, ska, ri, sr, am, ad))| {
            ConnAckProperties {
                session_expiry_interval: sei,
                receive_maximum: rm,
                maximum_qos: mq,
                retain_available: ra,
                maximum_packet_size: mps,
                assigned_client_identifier: aci,
                topic_alias_maximum: tam,
                reason_string: rs,
                user_properties: up,
                wildcard_subscription_available: wsa,
                subscription_identifiers_available: sia,
                shared_subscription_available: ssa,
                server_keep_alive: ska,
                response_information: ri,
                server_reference: sr,
                authentication_method: am,
                authentication_data: ad,
            }
        },
    )
}

pub(super) fn publish_properties() -> impl Strategy<Value = PublishProperties> {
    (
        flag(),
        of(any::<u32>()),
        of(1u16..),
        of(text()),
        of(bin()),
        users(),
        vec(subscription_identifier(), 0..3),
        of(text()),
    )
        .prop_map(|(pfi, mei, ta, rt, cd, up, si, ct)| PublishProperties {
            payload_format_indicator: pfi,
            message_expiry_interval: mei,
            topic_alias: ta,
            response_topic: rt,
            correlation_data: cd,
            user_properties: up,
            subscription_identifiers: si,
            content_type: ct,
        })
}

pub(super) fn ack_properties() -> impl Strategy<Value = AckProperties> {
    (of(text()), users()).prop_map(|(reason_string, user_properties)| AckProperties {
        reason_string,
        user_properties,
    })
}

pub(super) fn disconnect_properties() -> impl Strategy<Value = DisconnectProperties> {
    (of(any::<u32>()), of(text()), users(), of(text())).prop_map(|(sei, rs, up, sr)| {
        DisconnectProperties {
            session_expiry_interval: sei,
            reason_string: rs,
            user_properties: up,
            server_reference: sr,
        }
    })
}

fn auth_properties() -> impl Strategy<Value = AuthProperties> {
    (of(text()), of(bin()), of(text()), users()).prop_map(|(am, ad, rs, up)| AuthProperties {
        authentication_method: am,
        authentication_data: ad,
        reason_string: rs,
        user_properties: up,
    })
}

/// `strategy` in MQTT 5, the default value (no properties) before.
fn v5_or_default<T: Default + Clone + std::fmt::Debug + 'static>(
    version: ProtocolVersion,
    strategy: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    if version.is_v5() {
        strategy.boxed()
    } else {
        Just(T::default()).boxed()
    }
}

fn reason(version: ProtocolVersion) -> BoxedStrategy<u8> {
    v5_or_default(version, any::<u8>())
}

pub(super) fn connect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let will = (
        text(),
        bin(),
        qos(),
        any::<bool>(),
        v5_or_default(version, will_properties()),
    )
        .prop_map(|(topic, payload, qos, retain, properties)| LastWill {
            topic,
            payload,
            qos,
            retain,
            properties,
        });
    (
        any::<bool>(),
        any::<u16>(),
        text(),
        of(will),
        of(text()),
        of(bin()),
        v5_or_default(version, connect_properties()),
    )
        .prop_map(
            move |(clean_start, keep_alive, client_id, will, username, password, properties)| {
                // MQTT-3.1.2-22: no password without a user name in 3.1.1.
                let password = if version == ProtocolVersion::V311 && username.is_none() {
                    None
                } else {
                    password
                };
                Packet::Connect(Box::new(Connect {
                    protocol: version,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                }))
            },
        )
}

pub(super) fn publish(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        any::<bool>(),
        qos(),
        any::<bool>(),
        text(),
        packet_id(),
        vec(any::<u8>(), 0..64),
        v5_or_default(version, publish_properties()),
    )
        .prop_map(|(dup, qos, retain, topic, id, payload, properties)| {
            Packet::Publish(Publish {
                dup,
                qos,
                retain,
                topic,
                pkid: (qos != QoS::AtMostOnce).then_some(id),
                payload: Bytes::from(payload),
                properties,
            })
        })
}

pub(super) fn ack(version: ProtocolVersion) -> impl Strategy<Value = Ack> {
    (
        packet_id(),
        reason(version),
        v5_or_default(version, ack_properties()),
    )
        .prop_map(|(pkid, reason_code, properties)| Ack {
            pkid,
            reason_code,
            properties,
        })
}

fn subscription_options(version: ProtocolVersion) -> BoxedStrategy<SubscriptionOptions> {
    if !version.is_v5() {
        return qos().prop_map(SubscriptionOptions::new).boxed();
    }
    (qos(), any::<bool>(), any::<bool>(), 0u8..=2)
        .prop_map(
            |(qos, no_local, retain_as_published, retain_handling)| SubscriptionOptions {
                qos,
                no_local,
                retain_as_published,
                retain_handling,
            },
        )
        .boxed()
}

pub(super) fn subscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let properties =
        (of(subscription_identifier()), users()).prop_map(|(id, up)| SubscribeProperties {
            subscription_identifier: id,
            user_properties: up,
        });
    (
        packet_id(),
        vec((text(), subscription_options(version)), 1..4),
        v5_or_default(version, properties),
    )
        .prop_map(|(pkid, filters, properties)| {
            Packet::Subscribe(Subscribe {
                pkid,
                filters,
                properties,
            })
        })
}

pub(super) fn suback(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let code = if version.is_v5() {
        any::<u8>().boxed()
    } else {
        prop_oneof![Just(0u8), Just(1), Just(2), Just(0x80)].boxed()
    };
    (
        packet_id(),
        vec(code, 1..4),
        v5_or_default(version, ack_properties()),
    )
        .prop_map(|(pkid, return_codes, properties)| {
            Packet::SubAck(SubAck {
                pkid,
                return_codes,
                properties,
            })
        })
}

pub(super) fn unsubscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        packet_id(),
        vec(text(), 1..4),
        v5_or_default(version, users()),
    )
        .prop_map(|(pkid, filters, user_properties)| {
            Packet::Unsubscribe(Unsubscribe {
                pkid,
                filters,
                user_properties,
            })
        })
}

pub(super) fn unsuback(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        packet_id(),
        v5_or_default(version, vec(any::<u8>(), 0..4)),
        v5_or_default(version, ack_properties()),
    )
        .prop_map(|(pkid, reason_codes, properties)| {
            Packet::UnsubAck(UnsubAck {
                pkid,
                reason_codes,
                properties,
            })
        })
}

/// Any packet the decoder accepts in `version`.
pub(super) fn packet(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let connack = (
        any::<bool>(),
        any::<u8>(),
        v5_or_default(version, connack_properties()),
    )
        .prop_map(move |(session_present, code, properties)| {
            Packet::ConnAck(ConnAck {
                // MQTT 3.1 has no session-present flag.
                session_present: session_present && version != ProtocolVersion::V31,
                code,
                properties,
            })
        });
    let disconnect = (
        reason(version),
        v5_or_default(version, disconnect_properties()),
    )
        .prop_map(|(reason_code, properties)| {
            Packet::Disconnect(Disconnect {
                reason_code,
                properties,
            })
        });
    let common = prop_oneof![
        connect(version),
        connack,
        publish(version),
        ack(version).prop_map(Packet::PubAck),
        ack(version).prop_map(Packet::PubRec),
        ack(version).prop_map(Packet::PubRel),
        ack(version).prop_map(Packet::PubComp),
        subscribe(version),
        suback(version),
        unsubscribe(version),
        unsuback(version),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        disconnect,
    ];
    if !version.is_v5() {
        return common.boxed();
    }
    let auth = (any::<u8>(), auth_properties()).prop_map(|(reason_code, properties)| {
        Packet::Auth(Auth {
            reason_code,
            properties,
        })
    });
    prop_oneof![14 => common, 1 => auth].boxed()
}

/// A user property for the samples.
fn sample_users() -> Vec<UserProperty> {
    vec![("key".into(), "value".into())]
}

/// Reason string and user properties in MQTT 5, nothing before.
fn sample_ack_properties(v5: bool) -> AckProperties {
    if !v5 {
        return AckProperties::default();
    }
    AckProperties {
        reason_string: Some("why".into()),
        user_properties: sample_users(),
    }
}

fn sample_connect(version: ProtocolVersion) -> Packet {
    let v5 = version.is_v5();
    let will_properties = WillProperties {
        will_delay_interval: Some(3),
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(9),
        content_type: Some("text/plain".into()),
        response_topic: Some("r".into()),
        correlation_data: Some(Bytes::from_static(b"c")),
        user_properties: sample_users(),
    };
    let properties = ConnectProperties {
        session_expiry_interval: Some(60),
        receive_maximum: Some(10),
        maximum_packet_size: Some(1024),
        topic_alias_maximum: Some(5),
        request_response_information: Some(1),
        request_problem_information: Some(0),
        user_properties: sample_users(),
        authentication_method: Some("m".into()),
        authentication_data: Some(Bytes::from_static(b"d")),
    };
    Packet::Connect(Box::new(Connect {
        protocol: version,
        clean_start: true,
        keep_alive: 30,
        client_id: "client".into(),
        will: Some(LastWill {
            topic: "will/topic".into(),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::ExactlyOnce,
            retain: true,
            properties: if v5 {
                will_properties
            } else {
                WillProperties::default()
            },
        }),
        username: Some("user".into()),
        // MQTT 3.1 tolerates a missing password, so a cut before it would decode.
        password: (version != ProtocolVersion::V31).then(|| Bytes::from_static(b"secret")),
        properties: if v5 {
            properties
        } else {
            ConnectProperties::default()
        },
    }))
}

fn sample_connack(version: ProtocolVersion) -> Packet {
    let properties = ConnAckProperties {
        session_expiry_interval: Some(1),
        receive_maximum: Some(2),
        maximum_qos: Some(1),
        retain_available: Some(0),
        maximum_packet_size: Some(3),
        assigned_client_identifier: Some("id".into()),
        topic_alias_maximum: Some(4),
        reason_string: Some("ok".into()),
        user_properties: sample_users(),
        wildcard_subscription_available: Some(1),
        subscription_identifiers_available: Some(0),
        shared_subscription_available: Some(1),
        server_keep_alive: Some(5),
        response_information: Some("ri".into()),
        server_reference: Some("sr".into()),
        authentication_method: Some("am".into()),
        authentication_data: Some(Bytes::from_static(b"ad")),
    };
    Packet::ConnAck(ConnAck {
        session_present: version != ProtocolVersion::V31,
        code: 0,
        properties: if version.is_v5() {
            properties
        } else {
            ConnAckProperties::default()
        },
    })
}

fn sample_publish(version: ProtocolVersion) -> Packet {
    let properties = PublishProperties {
        payload_format_indicator: Some(0),
        message_expiry_interval: Some(7),
        topic_alias: Some(3),
        response_topic: Some("resp".into()),
        correlation_data: Some(Bytes::from_static(b"corr")),
        user_properties: sample_users(),
        subscription_identifiers: vec![1, 200, MAX_VARINT],
        content_type: Some("ct".into()),
    };
    Packet::Publish(Publish {
        dup: true,
        qos: QoS::AtLeastOnce,
        retain: true,
        topic: "a/b/c".into(),
        pkid: Some(pkid(0xBEEF)),
        payload: Bytes::from_static(b"payload"),
        properties: if version.is_v5() {
            properties
        } else {
            PublishProperties::default()
        },
    })
}

fn sample_subscriptions(v5: bool) -> [Packet; 4] {
    let users = || if v5 { sample_users() } else { Vec::new() };
    let options = SubscriptionOptions {
        qos: QoS::ExactlyOnce,
        no_local: v5,
        retain_as_published: v5,
        retain_handling: if v5 { 2 } else { 0 },
    };
    [
        Packet::Subscribe(Subscribe {
            pkid: pkid(2),
            filters: vec![("sport/+/#".into(), options)],
            properties: SubscribeProperties {
                subscription_identifier: v5.then_some(MAX_VARINT),
                user_properties: users(),
            },
        }),
        Packet::SubAck(SubAck {
            pkid: pkid(2),
            return_codes: vec![0, 1, 2, 0x80],
            properties: sample_ack_properties(v5),
        }),
        Packet::Unsubscribe(Unsubscribe {
            pkid: pkid(3),
            filters: vec!["sport/#".into()],
            user_properties: users(),
        }),
        Packet::UnsubAck(UnsubAck {
            pkid: pkid(3),
            reason_codes: if v5 { vec![0x00, 0x11] } else { Vec::new() },
            properties: sample_ack_properties(v5),
        }),
    ]
}

fn sample_endings(v5: bool) -> Vec<Packet> {
    if !v5 {
        return vec![Packet::Disconnect(Disconnect::default())];
    }
    vec![
        Packet::Disconnect(Disconnect {
            reason_code: 0x04,
            properties: DisconnectProperties {
                session_expiry_interval: Some(0),
                reason_string: Some("bye".into()),
                user_properties: sample_users(),
                server_reference: Some("other".into()),
            },
        }),
        Packet::Auth(Auth {
            reason_code: 0x18,
            properties: AuthProperties {
                authentication_method: Some("SCRAM-SHA-1".into()),
                authentication_data: Some(Bytes::from_static(b"data")),
                reason_string: Some("more".into()),
                user_properties: sample_users(),
            },
        }),
    ]
}

/// One packet of each type with every field `version` has populated, for tests that walk
/// every byte of a packet. SUBSCRIBE and UNSUBSCRIBE carry a single filter.
pub(super) fn full_samples(version: ProtocolVersion) -> Vec<Packet> {
    let v5 = version.is_v5();
    let ack = |code: u8| Ack {
        pkid: pkid(0x1234),
        reason_code: if v5 { code } else { 0 },
        properties: sample_ack_properties(v5),
    };
    let mut samples = vec![
        sample_connect(version),
        sample_connack(version),
        sample_publish(version),
        Packet::PubAck(ack(0x10)),
        Packet::PubRec(ack(0x80)),
        Packet::PubRel(ack(0x92)),
        Packet::PubComp(ack(0x00)),
        Packet::PingReq,
        Packet::PingResp,
    ];
    samples.extend(sample_subscriptions(v5));
    samples.extend(sample_endings(v5));
    samples
}
