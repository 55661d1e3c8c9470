//! The MQTT-SN 1.2 wire format, without I/O: one datagram is one message.
//!
//! Owns: [`Packet`] (every message type of MQTT-SN 1.2 §5.4), [`decode`] and [`encode`].
//! Invariants: `decode` never panics and never reads past the datagram; the length field must match
//! the datagram exactly (a mismatch is a frame error, MQTT-SN 1.2 §5.2.1); `encode` picks the
//! 1-byte length when the message fits in 255 bytes, else the 3-byte form `0x01 LenHi LenLo`.
//! String fields (client id, topic names) stay raw bytes here; the channel checks UTF-8.

mod decode;
mod encode;
#[cfg(test)]
mod tests;

pub use decode::decode;
pub use encode::{encode, encoded_len};

use bytes::Bytes;
use thiserror::Error;

/// Message type codes (MQTT-SN 1.2 §5.2.2, table 3).
pub mod msg_type {
    #![allow(missing_docs)]
    pub const ADVERTISE: u8 = 0x00;
    pub const SEARCHGW: u8 = 0x01;
    pub const GWINFO: u8 = 0x02;
    pub const CONNECT: u8 = 0x04;
    pub const CONNACK: u8 = 0x05;
    pub const WILLTOPICREQ: u8 = 0x06;
    pub const WILLTOPIC: u8 = 0x07;
    pub const WILLMSGREQ: u8 = 0x08;
    pub const WILLMSG: u8 = 0x09;
    pub const REGISTER: u8 = 0x0A;
    pub const REGACK: u8 = 0x0B;
    pub const PUBLISH: u8 = 0x0C;
    pub const PUBACK: u8 = 0x0D;
    pub const PUBCOMP: u8 = 0x0E;
    pub const PUBREC: u8 = 0x0F;
    pub const PUBREL: u8 = 0x10;
    pub const SUBSCRIBE: u8 = 0x12;
    pub const SUBACK: u8 = 0x13;
    pub const UNSUBSCRIBE: u8 = 0x14;
    pub const UNSUBACK: u8 = 0x15;
    pub const PINGREQ: u8 = 0x16;
    pub const PINGRESP: u8 = 0x17;
    pub const DISCONNECT: u8 = 0x18;
    pub const WILLTOPICUPD: u8 = 0x1A;
    pub const WILLTOPICRESP: u8 = 0x1B;
    pub const WILLMSGUPD: u8 = 0x1C;
    pub const WILLMSGRESP: u8 = 0x1D;
    /// Forwarder encapsulation (§5.5); not supported (docs/mqtt-sn.md §2.2).
    pub const ENCAPSULATED: u8 = 0xFE;
}

/// Return codes (MQTT-SN 1.2 §5.3.10, plus EMQX's 0x80–0x84, docs/mqtt-sn.md §2.4).
pub mod rc {
    /// Accepted.
    pub const ACCEPTED: u8 = 0x00;
    /// Rejected: congestion (QoS 2 receive window full).
    pub const CONGESTION: u8 = 0x01;
    /// Rejected: invalid topic id.
    pub const INVALID_TOPIC_ID: u8 = 0x02;
    /// Rejected: not supported.
    pub const NOT_SUPPORTED: u8 = 0x03;
    /// EMQX: not authorized.
    pub const NOT_AUTHORIZED: u8 = 0x80;
    /// EMQX: failed to open the session.
    pub const SESSION_FAILED: u8 = 0x81;
    /// EMQX: exceeded limitation (subscription quota, registry full).
    pub const EXCEEDED_LIMITATION: u8 = 0x83;
}

/// The topic id type, the two low bits of the flags (§5.3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicIdType {
    /// `00`: a normal (registered) topic id, or a topic name in SUBSCRIBE.
    Normal,
    /// `01`: a predefined topic id.
    Predefined,
    /// `10`: a two-byte short topic name.
    Short,
    /// `11`: reserved.
    Reserved,
}

impl TopicIdType {
    fn from_bits(b: u8) -> Self {
        match b & 0x03 {
            0 => TopicIdType::Normal,
            1 => TopicIdType::Predefined,
            2 => TopicIdType::Short,
            _ => TopicIdType::Reserved,
        }
    }
    fn bits(self) -> u8 {
        match self {
            TopicIdType::Normal => 0,
            TopicIdType::Predefined => 1,
            TopicIdType::Short => 2,
            TopicIdType::Reserved => 3,
        }
    }
}

/// The QoS bits of the flags: 0, 1, 2, or −1 (`11`, publish without connection, §6.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SnQos {
    /// QoS 0.
    #[default]
    Q0,
    /// QoS 1.
    Q1,
    /// QoS 2.
    Q2,
    /// QoS −1.
    Minus1,
}

impl SnQos {
    fn from_bits(b: u8) -> Self {
        match b & 0x03 {
            0 => SnQos::Q0,
            1 => SnQos::Q1,
            2 => SnQos::Q2,
            _ => SnQos::Minus1,
        }
    }
    fn bits(self) -> u8 {
        match self {
            SnQos::Q0 => 0,
            SnQos::Q1 => 1,
            SnQos::Q2 => 2,
            SnQos::Minus1 => 3,
        }
    }
    /// The bus QoS: −1 is delivered as QoS 0.
    pub fn to_qos(self) -> switchyard_core::QoS {
        match self {
            SnQos::Q0 | SnQos::Minus1 => switchyard_core::QoS::AtMostOnce,
            SnQos::Q1 => switchyard_core::QoS::AtLeastOnce,
            SnQos::Q2 => switchyard_core::QoS::ExactlyOnce,
        }
    }
    /// From a bus QoS.
    pub fn from_qos(q: switchyard_core::QoS) -> Self {
        match q {
            switchyard_core::QoS::AtMostOnce => SnQos::Q0,
            switchyard_core::QoS::AtLeastOnce => SnQos::Q1,
            switchyard_core::QoS::ExactlyOnce => SnQos::Q2,
        }
    }
}

/// The flags byte (§5.3.4), MSB first: DUP, QoS(2), RETAIN, WILL, CLEANSESSION, TopicIdType(2).
/// Every byte value maps to exactly one `Flags`, so flags round-trip bit for bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flags {
    /// DUP.
    pub dup: bool,
    /// QoS bits.
    pub qos: SnQos,
    /// RETAIN.
    pub retain: bool,
    /// WILL (CONNECT only).
    pub will: bool,
    /// CLEANSESSION (CONNECT only).
    pub clean_session: bool,
    /// TopicIdType.
    pub topic_id_type: TopicIdType,
}

impl Default for Flags {
    fn default() -> Self {
        Flags::from_byte(0)
    }
}

impl Flags {
    /// Parses a flags byte.
    pub fn from_byte(b: u8) -> Self {
        Flags {
            dup: b & 0x80 != 0,
            qos: SnQos::from_bits(b >> 5),
            retain: b & 0x10 != 0,
            will: b & 0x08 != 0,
            clean_session: b & 0x04 != 0,
            topic_id_type: TopicIdType::from_bits(b),
        }
    }
    /// The flags byte.
    pub fn to_byte(self) -> u8 {
        (u8::from(self.dup) << 7)
            | (self.qos.bits() << 5)
            | (u8::from(self.retain) << 4)
            | (u8::from(self.will) << 3)
            | (u8::from(self.clean_session) << 2)
            | self.topic_id_type.bits()
    }
}

/// CONNECT (§5.4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// Flags: WILL and CLEANSESSION matter.
    pub flags: Flags,
    /// ProtocolId; not checked (docs/mqtt-sn.md §2.2).
    pub protocol_id: u8,
    /// Keepalive duration in seconds.
    pub duration: u16,
    /// Client id (1–23 bytes per the spec; not enforced).
    pub client_id: Bytes,
}

/// WILLTOPIC / WILLTOPICUPD payload (§5.4.7, §5.4.22).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WillTopic {
    /// Flags: QoS and RETAIN matter.
    pub flags: Flags,
    /// The will topic.
    pub topic: Bytes,
}

/// PUBLISH (§5.4.12). `topic_id` is the raw two bytes: an id, or a short name for type `10`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Flags: DUP, QoS, RETAIN, TopicIdType.
    pub flags: Flags,
    /// Topic id or short name.
    pub topic_id: u16,
    /// Message id (0 for QoS 0 / −1).
    pub msg_id: u16,
    /// Payload.
    pub data: Bytes,
}

/// The topic of SUBSCRIBE/UNSUBSCRIBE (§5.4.15); the variant fixes the flags' TopicIdType.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubTopic {
    /// `00`: a topic name or filter.
    Name(Bytes),
    /// `01`: a predefined id.
    Predefined(u16),
    /// `10`: a two-byte short name.
    Short([u8; 2]),
    /// `11`: reserved; kept raw.
    Reserved(Bytes),
}

impl SubTopic {
    fn id_type(&self) -> TopicIdType {
        match self {
            SubTopic::Name(_) => TopicIdType::Normal,
            SubTopic::Predefined(_) => TopicIdType::Predefined,
            SubTopic::Short(_) => TopicIdType::Short,
            SubTopic::Reserved(_) => TopicIdType::Reserved,
        }
    }
}

/// SUBSCRIBE / UNSUBSCRIBE (§5.4.15, §5.4.17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Flags: QoS (SUBSCRIBE) and DUP; TopicIdType follows `topic`.
    pub flags: Flags,
    /// Message id.
    pub msg_id: u16,
    /// What to (un)subscribe.
    pub topic: SubTopic,
}

/// One MQTT-SN message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// ADVERTISE (§5.4.1).
    Advertise {
        /// Gateway id.
        gw_id: u8,
        /// Seconds until the next ADVERTISE.
        duration: u16,
    },
    /// SEARCHGW (§5.4.2).
    SearchGw {
        /// Broadcast radius.
        radius: u8,
    },
    /// GWINFO (§5.4.3).
    GwInfo {
        /// Gateway id.
        gw_id: u8,
        /// Gateway address (only when sent by a client; empty from the gateway).
        gw_add: Bytes,
    },
    /// CONNECT.
    Connect(Connect),
    /// CONNACK (§5.4.5).
    ConnAck {
        /// Return code.
        rc: u8,
    },
    /// WILLTOPICREQ (§5.4.6).
    WillTopicReq,
    /// WILLTOPIC; `None` is the empty form meaning "no will".
    WillTopic(Option<WillTopic>),
    /// WILLMSGREQ (§5.4.8).
    WillMsgReq,
    /// WILLMSG (§5.4.9).
    WillMsg {
        /// The will payload.
        msg: Bytes,
    },
    /// REGISTER (§5.4.10).
    Register {
        /// Topic id (0 from a client; the assigned id from the gateway).
        topic_id: u16,
        /// Message id.
        msg_id: u16,
        /// Topic name.
        topic_name: Bytes,
    },
    /// REGACK (§5.4.11).
    RegAck {
        /// Topic id.
        topic_id: u16,
        /// Message id.
        msg_id: u16,
        /// Return code.
        rc: u8,
    },
    /// PUBLISH.
    Publish(Publish),
    /// PUBACK (§5.4.13).
    PubAck {
        /// Topic id.
        topic_id: u16,
        /// Message id.
        msg_id: u16,
        /// Return code.
        rc: u8,
    },
    /// PUBREC (§5.4.14).
    PubRec {
        /// Message id.
        msg_id: u16,
    },
    /// PUBREL.
    PubRel {
        /// Message id.
        msg_id: u16,
    },
    /// PUBCOMP.
    PubComp {
        /// Message id.
        msg_id: u16,
    },
    /// SUBSCRIBE.
    Subscribe(Subscribe),
    /// SUBACK (§5.4.16).
    SubAck {
        /// Flags: granted QoS only.
        flags: Flags,
        /// Topic id.
        topic_id: u16,
        /// Message id.
        msg_id: u16,
        /// Return code.
        rc: u8,
    },
    /// UNSUBSCRIBE.
    Unsubscribe(Subscribe),
    /// UNSUBACK (§5.4.18).
    UnsubAck {
        /// Message id.
        msg_id: u16,
    },
    /// PINGREQ (§5.4.19); the client id is present when a sleeping client wakes.
    PingReq {
        /// Client id of a sleeping client.
        client_id: Option<Bytes>,
    },
    /// PINGRESP.
    PingResp,
    /// DISCONNECT (§5.4.21); a duration means "going to sleep".
    Disconnect {
        /// Sleep duration in seconds.
        duration: Option<u16>,
    },
    /// WILLTOPICUPD (§5.4.22); `None` deletes the will.
    WillTopicUpd(Option<WillTopic>),
    /// WILLTOPICRESP (§5.4.23).
    WillTopicResp {
        /// Return code.
        rc: u8,
    },
    /// WILLMSGUPD (§5.4.24).
    WillMsgUpd {
        /// New will payload.
        msg: Bytes,
    },
    /// WILLMSGRESP (§5.4.25).
    WillMsgResp {
        /// Return code.
        rc: u8,
    },
}

impl Packet {
    /// The message type's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Advertise { .. } => "ADVERTISE",
            Packet::SearchGw { .. } => "SEARCHGW",
            Packet::GwInfo { .. } => "GWINFO",
            Packet::Connect(_) => "CONNECT",
            Packet::ConnAck { .. } => "CONNACK",
            Packet::WillTopicReq => "WILLTOPICREQ",
            Packet::WillTopic(_) => "WILLTOPIC",
            Packet::WillMsgReq => "WILLMSGREQ",
            Packet::WillMsg { .. } => "WILLMSG",
            Packet::Register { .. } => "REGISTER",
            Packet::RegAck { .. } => "REGACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::PubAck { .. } => "PUBACK",
            Packet::PubRec { .. } => "PUBREC",
            Packet::PubRel { .. } => "PUBREL",
            Packet::PubComp { .. } => "PUBCOMP",
            Packet::Subscribe(_) => "SUBSCRIBE",
            Packet::SubAck { .. } => "SUBACK",
            Packet::Unsubscribe(_) => "UNSUBSCRIBE",
            Packet::UnsubAck { .. } => "UNSUBACK",
            Packet::PingReq { .. } => "PINGREQ",
            Packet::PingResp => "PINGRESP",
            Packet::Disconnect { .. } => "DISCONNECT",
            Packet::WillTopicUpd(_) => "WILLTOPICUPD",
            Packet::WillTopicResp { .. } => "WILLTOPICRESP",
            Packet::WillMsgUpd { .. } => "WILLMSGUPD",
            Packet::WillMsgResp { .. } => "WILLMSGRESP",
        }
    }
}

/// Why a datagram is not an MQTT-SN message. Every variant names the rule broken.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Shorter than its header or than the fixed part of its type.
    #[error("message truncated (MQTT-SN 1.2 §5.2)")]
    Truncated,
    /// The length field does not equal the datagram size (docs/mqtt-sn.md §2.2: a frame error).
    #[error("length field {declared} does not match datagram size {actual} (MQTT-SN 1.2 §5.2.1)")]
    LengthMismatch {
        /// What the header says.
        declared: usize,
        /// What arrived.
        actual: usize,
    },
    /// A message type MQTT-SN 1.2 does not define.
    #[error("unknown message type 0x{0:02x} (MQTT-SN 1.2 §5.2.2)")]
    UnknownType(u8),
    /// Forwarder encapsulation is not supported (docs/mqtt-sn.md §2.2).
    #[error("forwarder encapsulation is not supported (MQTT-SN 1.2 §5.5)")]
    Encapsulated,
    /// A field has a length its type does not allow.
    #[error("{0} (MQTT-SN 1.2 §5.4)")]
    BadLength(&'static str),
}

/// Why a packet cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// More than 65535 bytes (§5.2.1).
    #[error("message of {0} bytes exceeds the 65535-byte maximum (MQTT-SN 1.2 §5.2.1)")]
    TooLong(usize),
}
