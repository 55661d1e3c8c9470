//! The MQTT control packets as plain data, one type for all three protocol versions.
//!
//! Owns: [`Packet`] and its per-type structs, their MQTT 5 property sets, [`ProtocolVersion`]
//! and [`PacketType`].
//! Invariants the types keep or document: packet ids are non-zero ([`PacketId`]); a
//! [`Publish`] carries a packet id iff its QoS is above 0; strings are UTF-8 ([`ByteString`]).
//! MQTT 3.x has no properties: they are left default when decoding and ignored when encoding.
//! Reason codes stay raw `u8`: what a code means is the channel's business, not the codec's.

use std::fmt;
use switchyard_core::{ByteString, Bytes, PacketId, QoS};

/// A user property: a UTF-8 string pair (MQTT 5 §3.3.2.3.7). Order and duplicates are kept.
pub type UserProperty = (ByteString, ByteString);

/// The protocol level a client speaks, fixed by its CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum ProtocolVersion {
    /// MQTT 3.1: protocol name "MQIsdp", level 3.
    V31,
    /// MQTT 3.1.1: protocol name "MQTT", level 4.
    #[default]
    V311,
    /// MQTT 5.0: protocol name "MQTT", level 5.
    V5,
}

impl ProtocolVersion {
    /// The protocol level byte of CONNECT (MQTT-3.1.2-2).
    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V31 => 3,
            ProtocolVersion::V311 => 4,
            ProtocolVersion::V5 => 5,
        }
    }

    /// The protocol name CONNECT carries (MQTT-3.1.2-1).
    pub fn protocol_name(self) -> &'static str {
        match self {
            ProtocolVersion::V31 => "MQIsdp",
            ProtocolVersion::V311 | ProtocolVersion::V5 => "MQTT",
        }
    }

    /// Whether this version has properties, reason codes and AUTH.
    pub fn is_v5(self) -> bool {
        self == ProtocolVersion::V5
    }
}

/// The control packet type, the high nibble of the first byte (MQTT 2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    /// Client request to connect.
    Connect = 1,
    /// Connect acknowledgment.
    ConnAck = 2,
    /// Publish message.
    Publish = 3,
    /// Publish acknowledgment (QoS 1).
    PubAck = 4,
    /// Publish received (QoS 2, part 1).
    PubRec = 5,
    /// Publish release (QoS 2, part 2).
    PubRel = 6,
    /// Publish complete (QoS 2, part 3).
    PubComp = 7,
    /// Subscribe request.
    Subscribe = 8,
    /// Subscribe acknowledgment.
    SubAck = 9,
    /// Unsubscribe request.
    Unsubscribe = 10,
    /// Unsubscribe acknowledgment.
    UnsubAck = 11,
    /// Ping request.
    PingReq = 12,
    /// Ping response.
    PingResp = 13,
    /// Disconnect notification.
    Disconnect = 14,
    /// Authentication exchange (MQTT 5 only).
    Auth = 15,
}

impl PacketType {
    /// The type for a high nibble, `None` for the reserved value 0 and anything above 15.
    pub fn from_u8(v: u8) -> Option<PacketType> {
        Some(match v {
            1 => PacketType::Connect,
            2 => PacketType::ConnAck,
            3 => PacketType::Publish,
            4 => PacketType::PubAck,
            5 => PacketType::PubRec,
            6 => PacketType::PubRel,
            7 => PacketType::PubComp,
            8 => PacketType::Subscribe,
            9 => PacketType::SubAck,
            10 => PacketType::Unsubscribe,
            11 => PacketType::UnsubAck,
            12 => PacketType::PingReq,
            13 => PacketType::PingResp,
            14 => PacketType::Disconnect,
            15 => PacketType::Auth,
            _ => return None,
        })
    }

    /// The spec's name for the packet, e.g. "PUBACK".
    pub fn name(self) -> &'static str {
        match self {
            PacketType::Connect => "CONNECT",
            PacketType::ConnAck => "CONNACK",
            PacketType::Publish => "PUBLISH",
            PacketType::PubAck => "PUBACK",
            PacketType::PubRec => "PUBREC",
            PacketType::PubRel => "PUBREL",
            PacketType::PubComp => "PUBCOMP",
            PacketType::Subscribe => "SUBSCRIBE",
            PacketType::SubAck => "SUBACK",
            PacketType::Unsubscribe => "UNSUBSCRIBE",
            PacketType::UnsubAck => "UNSUBACK",
            PacketType::PingReq => "PINGREQ",
            PacketType::PingResp => "PINGRESP",
            PacketType::Disconnect => "DISCONNECT",
            PacketType::Auth => "AUTH",
        }
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNECT (boxed: it is much larger than the packets that dominate traffic).
    Connect(Box<Connect>),
    /// CONNACK.
    ConnAck(ConnAck),
    /// PUBLISH.
    Publish(Publish),
    /// PUBACK.
    PubAck(Ack),
    /// PUBREC.
    PubRec(Ack),
    /// PUBREL.
    PubRel(Ack),
    /// PUBCOMP.
    PubComp(Ack),
    /// SUBSCRIBE.
    Subscribe(Subscribe),
    /// SUBACK.
    SubAck(SubAck),
    /// UNSUBSCRIBE.
    Unsubscribe(Unsubscribe),
    /// UNSUBACK.
    UnsubAck(UnsubAck),
    /// PINGREQ.
    PingReq,
    /// PINGRESP.
    PingResp,
    /// DISCONNECT (MQTT 3.x: reason 0, no properties).
    Disconnect(Disconnect),
    /// AUTH (MQTT 5 only).
    Auth(Auth),
}

impl Packet {
    /// The packet's type, for logs and errors.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::ConnAck(_) => PacketType::ConnAck,
            Packet::Publish(_) => PacketType::Publish,
            Packet::PubAck(_) => PacketType::PubAck,
            Packet::PubRec(_) => PacketType::PubRec,
            Packet::PubRel(_) => PacketType::PubRel,
            Packet::PubComp(_) => PacketType::PubComp,
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::SubAck(_) => PacketType::SubAck,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::UnsubAck(_) => PacketType::UnsubAck,
            Packet::PingReq => PacketType::PingReq,
            Packet::PingResp => PacketType::PingResp,
            Packet::Disconnect(_) => PacketType::Disconnect,
            Packet::Auth(_) => PacketType::Auth,
        }
    }
}

/// CONNECT (MQTT 3.1.1 §3.1, MQTT 5 §3.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Connect {
    /// The version the client speaks; encoding uses this, not the codec's version.
    pub protocol: ProtocolVersion,
    /// Clean Session (3.x) / Clean Start (5).
    pub clean_start: bool,
    /// Keep alive in seconds; 0 disables it.
    pub keep_alive: u16,
    /// Client identifier, possibly empty; length policy belongs to the channel.
    pub client_id: ByteString,
    /// The will message, if the Will Flag is set.
    pub will: Option<LastWill>,
    /// User name, if the User Name Flag is set.
    pub username: Option<ByteString>,
    /// Password, if the Password Flag is set.
    pub password: Option<Bytes>,
    /// CONNECT properties (MQTT 5).
    pub properties: ConnectProperties,
}

impl Connect {
    /// A CONNECT with a clean start and no will, credentials or properties.
    pub fn new(protocol: ProtocolVersion, client_id: impl Into<ByteString>) -> Self {
        Connect {
            protocol,
            clean_start: true,
            client_id: client_id.into(),
            ..Connect::default()
        }
    }
}

/// The will message carried in CONNECT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LastWill {
    /// Will topic.
    pub topic: ByteString,
    /// Will payload.
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will retain.
    pub retain: bool,
    /// Will properties (MQTT 5 §3.1.3.2).
    pub properties: WillProperties,
}

/// CONNECT properties (MQTT 5 §3.1.2.11).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectProperties {
    /// 0x11 Session Expiry Interval.
    pub session_expiry_interval: Option<u32>,
    /// 0x21 Receive Maximum (non-zero).
    pub receive_maximum: Option<u16>,
    /// 0x27 Maximum Packet Size (non-zero).
    pub maximum_packet_size: Option<u32>,
    /// 0x22 Topic Alias Maximum.
    pub topic_alias_maximum: Option<u16>,
    /// 0x19 Request Response Information (0 or 1).
    pub request_response_information: Option<u8>,
    /// 0x17 Request Problem Information (0 or 1).
    pub request_problem_information: Option<u8>,
    /// 0x26 User Property.
    pub user_properties: Vec<UserProperty>,
    /// 0x15 Authentication Method.
    pub authentication_method: Option<ByteString>,
    /// 0x16 Authentication Data.
    pub authentication_data: Option<Bytes>,
}

/// Will properties (MQTT 5 §3.1.3.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WillProperties {
    /// 0x18 Will Delay Interval.
    pub will_delay_interval: Option<u32>,
    /// 0x01 Payload Format Indicator (0 or 1).
    pub payload_format_indicator: Option<u8>,
    /// 0x02 Message Expiry Interval.
    pub message_expiry_interval: Option<u32>,
    /// 0x03 Content Type.
    pub content_type: Option<ByteString>,
    /// 0x08 Response Topic.
    pub response_topic: Option<ByteString>,
    /// 0x09 Correlation Data.
    pub correlation_data: Option<Bytes>,
    /// 0x26 User Property.
    pub user_properties: Vec<UserProperty>,
}

/// CONNACK (MQTT 3.1.1 §3.2, MQTT 5 §3.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAck {
    /// Session Present (always false in MQTT 3.1, which has no such flag).
    pub session_present: bool,
    /// MQTT 3.x connect return code or MQTT 5 connect reason code.
    pub code: u8,
    /// CONNACK properties (MQTT 5).
    pub properties: ConnAckProperties,
}

impl ConnAck {
    /// A CONNACK with the given code and no properties.
    pub fn new(code: u8, session_present: bool) -> Self {
        ConnAck {
            session_present,
            code,
            properties: ConnAckProperties::default(),
        }
    }
}

/// CONNACK properties (MQTT 5 §3.2.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAckProperties {
    /// 0x11 Session Expiry Interval.
    pub session_expiry_interval: Option<u32>,
    /// 0x21 Receive Maximum (non-zero).
    pub receive_maximum: Option<u16>,
    /// 0x24 Maximum QoS (0 or 1).
    pub maximum_qos: Option<u8>,
    /// 0x25 Retain Available (0 or 1).
    pub retain_available: Option<u8>,
    /// 0x27 Maximum Packet Size (non-zero).
    pub maximum_packet_size: Option<u32>,
    /// 0x12 Assigned Client Identifier.
    pub assigned_client_identifier: Option<ByteString>,
    /// 0x22 Topic Alias Maximum.
    pub topic_alias_maximum: Option<u16>,
    /// 0x1F Reason String.
    pub reason_string: Option<ByteString>,
    /// 0x26 User Property.
    pub user_properties: Vec<UserProperty>,
    /// 0x28 Wildcard Subscription Available (0 or 1).
    pub wildcard_subscription_available: Option<u8>,
    /// 0x29 Subscription Identifiers Available (0 or 1).
    pub subscription_identifiers_available: Option<u8>,
    /// 0x2A Shared Subscription Available (0 or 1).
    pub shared_subscription_available: Option<u8>,
    /// 0x13 Server Keep Alive.
    pub server_keep_alive: Option<u16>,
    /// 0x1A Response Information.
    pub response_information: Option<ByteString>,
    /// 0x1C Server Reference.
    pub server_reference: Option<ByteString>,
    /// 0x15 Authentication Method.
    pub authentication_method: Option<ByteString>,
    /// 0x16 Authentication Data.
    pub authentication_data: Option<Bytes>,
}

/// PUBLISH (MQTT 3.1.1 §3.3, MQTT 5 §3.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Publish {
    /// DUP flag.
    pub dup: bool,
    /// QoS level.
    pub qos: QoS,
    /// RETAIN flag.
    pub retain: bool,
    /// Topic name; may be empty in MQTT 5 when a topic alias stands for it. Not validated
    /// beyond UTF-8 and U+0000 here: topic rules belong to `switchyard_core::TopicName`.
    pub topic: ByteString,
    /// Packet identifier: `None` iff QoS 0.
    pub pkid: Option<PacketId>,
    /// Application payload, a zero-copy slice of the received frame.
    pub payload: Bytes,
    /// PUBLISH properties (MQTT 5).
    pub properties: PublishProperties,
}

impl Publish {
    /// A QoS 0 PUBLISH without flags or properties.
    pub fn new(topic: impl Into<ByteString>, payload: impl Into<Bytes>) -> Self {
        Publish {
            topic: topic.into(),
            payload: payload.into(),
            ..Publish::default()
        }
    }
}

/// PUBLISH properties (MQTT 5 §3.3.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublishProperties {
    /// 0x01 Payload Format Indicator (0 or 1).
    pub payload_format_indicator: Option<u8>,
    /// 0x02 Message Expiry Interval.
    pub message_expiry_interval: Option<u32>,
    /// 0x23 Topic Alias (non-zero).
    pub topic_alias: Option<u16>,
    /// 0x08 Response Topic.
    pub response_topic: Option<ByteString>,
    /// 0x09 Correlation Data.
    pub correlation_data: Option<Bytes>,
    /// 0x26 User Property.
    pub user_properties: Vec<UserProperty>,
    /// 0x0B Subscription Identifier, repeatable server-to-client (1..=268,435,455).
    pub subscription_identifiers: Vec<u32>,
    /// 0x03 Content Type.
    pub content_type: Option<ByteString>,
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP: the packet id plus, in MQTT 5, a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Packet identifier being acknowledged.
    pub pkid: PacketId,
    /// MQTT 5 reason code (0 = Success); always 0 in MQTT 3.x.
    pub reason_code: u8,
    /// Reason string and user properties (MQTT 5).
    pub properties: AckProperties,
}

impl Ack {
    /// A successful acknowledgment without properties.
    pub fn new(pkid: PacketId) -> Self {
        Ack::with_reason(pkid, 0)
    }

    /// An acknowledgment with a reason code and no properties.
    pub fn with_reason(pkid: PacketId, reason_code: u8) -> Self {
        Ack {
            pkid,
            reason_code,
            properties: AckProperties::default(),
        }
    }
}

/// The properties every acknowledgment may carry (MQTT 5 §3.4.2.2 and siblings).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AckProperties {
    /// 0x1F Reason String.
    pub reason_string: Option<ByteString>,
    /// 0x26 User Property.
    pub user_properties: Vec<UserProperty>,
}

impl AckProperties {
    /// Whether there is nothing to encode (allows the MQTT 5 short forms).
    pub fn is_empty(&self) -> bool {
        self.reason_string.is_none() && self.user_properties.is_empty()
    }
}

/// SUBSCRIBE (MQTT 3.1.1 §3.8, MQTT 5 §3.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet identifier.
    pub pkid: PacketId,
    /// Topic filters, at least one, as sent: filter syntax (wildcard placement, shared
    /// subscriptions) is checked by `switchyard_core`, not here.
    pub filters: Vec<(ByteString, SubscriptionOptions)>,
    /// SUBSCRIBE properties (MQTT 5).
    pub properties: SubscribeProperties,
}

impl Subscribe {
    /// A SUBSCRIBE without properties.
    pub fn new(pkid: PacketId, filters: Vec<(ByteString, SubscriptionOptions)>) -> Self {
        Subscribe {
            pkid,
            filters,
            properties: SubscribeProperties::default(),
        }
    }
}

/// The options byte of each SUBSCRIBE filter (MQTT 5 §3.8.3.1; only `qos` in MQTT 3.x).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscriptionOptions {
    /// Maximum QoS.
    pub qos: QoS,
    /// No Local (MQTT 5).
    pub no_local: bool,
    /// Retain As Published (MQTT 5).
    pub retain_as_published: bool,
    /// Retain Handling 0, 1 or 2 (MQTT 5).
    pub retain_handling: u8,
}

impl SubscriptionOptions {
    /// Options with the given QoS and MQTT 5 defaults otherwise.
    pub fn new(qos: QoS) -> Self {
        SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        }
    }
}

/// SUBSCRIBE properties (MQTT 5 §3.8.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscribeProperties {
    /// 0x0B Subscription Identifier (1..=268,435,455).
    pub subscription_identifier: Option<u32>,
    /// 0x26 User Property.
    pub user_properties: Vec<UserProperty>,
}

/// SUBACK (MQTT 3.1.1 §3.9, MQTT 5 §3.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// Packet identifier of the SUBSCRIBE.
    pub pkid: PacketId,
    /// One code per filter: granted QoS or failure (MQTT 3.x: 0, 1, 2, 0x80).
    pub return_codes: Vec<u8>,
    /// Reason string and user properties (MQTT 5).
    pub properties: AckProperties,
}

impl SubAck {
    /// A SUBACK without properties.
    pub fn new(pkid: PacketId, return_codes: Vec<u8>) -> Self {
        SubAck {
            pkid,
            return_codes,
            properties: AckProperties::default(),
        }
    }
}

/// UNSUBSCRIBE (MQTT 3.1.1 §3.10, MQTT 5 §3.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet identifier.
    pub pkid: PacketId,
    /// Topic filters, at least one.
    pub filters: Vec<ByteString>,
    /// 0x26 User Property (the only UNSUBSCRIBE property, MQTT 5 §3.10.2.1).
    pub user_properties: Vec<UserProperty>,
}

impl Unsubscribe {
    /// An UNSUBSCRIBE without properties.
    pub fn new(pkid: PacketId, filters: Vec<ByteString>) -> Self {
        Unsubscribe {
            pkid,
            filters,
            user_properties: Vec::new(),
        }
    }
}

/// UNSUBACK (MQTT 3.1.1 §3.11, MQTT 5 §3.11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// Packet identifier of the UNSUBSCRIBE.
    pub pkid: PacketId,
    /// One reason code per filter (MQTT 5); empty in MQTT 3.x.
    pub reason_codes: Vec<u8>,
    /// Reason string and user properties (MQTT 5).
    pub properties: AckProperties,
}

impl UnsubAck {
    /// An UNSUBACK without properties.
    pub fn new(pkid: PacketId, reason_codes: Vec<u8>) -> Self {
        UnsubAck {
            pkid,
            reason_codes,
            properties: AckProperties::default(),
        }
    }
}

/// DISCONNECT (MQTT 5 §3.14; MQTT 3.x has no variable header).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    /// MQTT 5 reason code (0 = Normal disconnection).
    pub reason_code: u8,
    /// DISCONNECT properties (MQTT 5).
    pub properties: DisconnectProperties,
}

impl Disconnect {
    /// A DISCONNECT with a reason code and no properties.
    pub fn new(reason_code: u8) -> Self {
        Disconnect {
            reason_code,
            properties: DisconnectProperties::default(),
        }
    }
}

/// DISCONNECT properties (MQTT 5 §3.14.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisconnectProperties {
    /// 0x11 Session Expiry Interval.
    pub session_expiry_interval: Option<u32>,
    /// 0x1F Reason String.
    pub reason_string: Option<ByteString>,
    /// 0x26 User Property.
    pub user_properties: Vec<UserProperty>,
    /// 0x1C Server Reference.
    pub server_reference: Option<ByteString>,
}

/// AUTH (MQTT 5 §3.15).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    /// 0x00 Success, 0x18 Continue authentication, 0x19 Re-authenticate.
    pub reason_code: u8,
    /// AUTH properties.
    pub properties: AuthProperties,
}

impl Auth {
    /// An AUTH with a reason code and no properties.
    pub fn new(reason_code: u8) -> Self {
        Auth {
            reason_code,
            properties: AuthProperties::default(),
        }
    }
}

/// AUTH properties (MQTT 5 §3.15.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthProperties {
    /// 0x15 Authentication Method.
    pub authentication_method: Option<ByteString>,
    /// 0x16 Authentication Data.
    pub authentication_data: Option<Bytes>,
    /// 0x1F Reason String.
    pub reason_string: Option<ByteString>,
    /// 0x26 User Property.
    pub user_properties: Vec<UserProperty>,
}
