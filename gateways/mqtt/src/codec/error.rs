//! Codec errors, one variant per rule a peer can break.
//!
//! Owns: [`DecodeError`] (what was wrong with bytes a peer sent, named after the spec clause it
//! breaks) and [`EncodeError`] (why a [`Packet`](super::Packet) cannot be put on the wire in the
//! requested version).
//! Invariant: every `DecodeError` maps to exactly one MQTT 5 reason code through
//! [`DecodeError::reason_code`], so the channel can answer with CONNACK or DISCONNECT without
//! re-deriving the cause.

use super::packet::{PacketType, ProtocolVersion};
use switchyard_core::QoS;
use thiserror::Error;

/// MQTT 5 reason code 0x80, Unspecified error.
const UNSPECIFIED_ERROR: u8 = 0x80;
/// MQTT 5 reason code 0x81, Malformed Packet.
const MALFORMED_PACKET: u8 = 0x81;
/// MQTT 5 reason code 0x82, Protocol Error.
const PROTOCOL_ERROR: u8 = 0x82;
/// MQTT 5 reason code 0x84, Unsupported Protocol Version.
const UNSUPPORTED_PROTOCOL_VERSION: u8 = 0x84;
/// MQTT 5 reason code 0x94, Topic Alias invalid.
const TOPIC_ALIAS_INVALID: u8 = 0x94;
/// MQTT 5 reason code 0x95, Packet too large.
const PACKET_TOO_LARGE: u8 = 0x95;
/// The Topic Alias property identifier (MQTT 5 §3.3.2.3.4).
const TOPIC_ALIAS_PROPERTY: u8 = 0x23;

/// Why bytes from a peer are not a valid MQTT packet.
///
/// The connection is unusable after any of these: the decoder may already have consumed part
/// of the offending frame.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// A Variable Byte Integer in the fixed header ran past four bytes.
    #[error("malformed remaining length: more than 4 bytes (MQTT-1.5.5, MQTT 5 §2.1.4)")]
    MalformedRemainingLength,
    /// A Variable Byte Integer inside the packet (property length, subscription identifier)
    /// ran past four bytes.
    #[error("malformed variable byte integer: more than 4 bytes (MQTT 5 §1.5.5)")]
    MalformedVarInt,
    /// The whole packet, fixed header included, is larger than we accept.
    #[error("packet of {size} bytes exceeds the maximum of {max} (MQTT 5 §3.1.2.11.4)")]
    PacketTooLarge {
        /// Total size announced by the fixed header.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// Packet type 0, or 15 before MQTT 5.
    #[error("invalid packet type {0} (MQTT 2.2.1: 0 is reserved, 15 is AUTH in MQTT 5 only)")]
    InvalidPacketType(u8),
    /// The low nibble of the first byte is not the value the packet type requires.
    #[error("invalid fixed header flags {flags:#06b} for {packet_type} (MQTT-2.2.2-2)")]
    InvalidFixedHeaderFlags {
        /// The packet whose flags are wrong.
        packet_type: PacketType,
        /// The flags received.
        flags: u8,
    },
    /// A UTF-8 encoded string is not well-formed UTF-8.
    #[error("string is not well-formed UTF-8 (MQTT-1.5.3-1)")]
    InvalidUtf8,
    /// A UTF-8 encoded string contains U+0000.
    #[error("string contains the null character U+0000 (MQTT-1.5.3-2)")]
    NulInString,
    /// A PUBLISH with both QoS bits set.
    #[error("PUBLISH with QoS 3 (MQTT-3.3.1-4)")]
    InvalidQoS,
    /// A packet identifier of 0 where one is required.
    #[error("packet identifier 0 (MQTT-2.3.1-1)")]
    ZeroPacketId,
    /// CONNECT protocol name is neither "MQTT" nor "MQIsdp".
    #[error("invalid protocol name in CONNECT (MQTT-3.1.2-1)")]
    InvalidProtocolName,
    /// CONNECT protocol level we do not speak; the server answers CONNACK 0x01 (v3) or 0x84
    /// (v5) before closing.
    #[error("unsupported protocol level {0} (MQTT-3.1.2-2)")]
    UnsupportedProtocolVersion(u8),
    /// CONNECT flags bit 0 is set.
    #[error("reserved CONNECT flag is set (MQTT-3.1.2-3)")]
    ReservedConnectFlag,
    /// Will QoS or Will Retain set without the Will Flag, or Will QoS 3.
    #[error("invalid will flags (MQTT-3.1.2-11, MQTT-3.1.2-13, MQTT-3.1.2-14, MQTT-3.1.2-15)")]
    InvalidWillFlags,
    /// MQTT 3.1.1 CONNECT with the password flag but not the username flag.
    #[error("password flag without user name flag (MQTT-3.1.2-22)")]
    PasswordWithoutUsername,
    /// CONNACK acknowledge flags with reserved bits set.
    #[error("reserved CONNACK flags {0:#04x} (MQTT-3.2.2-1)")]
    InvalidConnAckFlags(u8),
    /// SUBACK return code outside 0x00, 0x01, 0x02, 0x80 in MQTT 3.x.
    #[error("invalid SUBACK return code {0:#04x} (MQTT-3.9.3-2)")]
    InvalidReturnCode(u8),
    /// SUBSCRIBE without any topic filter.
    #[error("SUBSCRIBE without topic filters (MQTT-3.8.3-3)")]
    EmptySubscribe,
    /// UNSUBSCRIBE without any topic filter.
    #[error("UNSUBSCRIBE without topic filters (MQTT-3.10.3-2)")]
    EmptyUnsubscribe,
    /// Subscription options with reserved bits set, Retain Handling 3 or QoS 3.
    #[error("invalid subscription options {0:#04x} (MQTT-3.8.3-4, MQTT-3.8.3-5)")]
    InvalidSubscriptionOptions(u8),
    /// A field runs past the end of the packet (the remaining length).
    #[error("packet truncated: a field runs past the remaining length (MQTT 2.1.4)")]
    Truncated,
    /// Bytes left after the last field of a packet that has no free-form payload.
    #[error("trailing bytes after the last field of the packet (MQTT 2.1.4)")]
    TrailingBytes,
    /// A property identifier MQTT 5 does not define.
    #[error("invalid property identifier {0:#04x} (MQTT 5 §2.2.2.2)")]
    InvalidPropertyId(u8),
    /// A property MQTT 5 defines, but not for this packet.
    #[error("property {id:#04x} is not allowed in {packet} (MQTT 5 §2.2.2.2)")]
    PropertyNotAllowed {
        /// The property identifier.
        id: u8,
        /// The packet it appeared in.
        packet: PacketType,
    },
    /// A property that may appear once appeared twice.
    #[error("property {0:#04x} included more than once (MQTT 5 §2.2.2.2)")]
    DuplicateProperty(u8),
    /// A property value the spec calls a protocol error (e.g. Receive Maximum 0).
    #[error("invalid value {value} for property {id:#04x} (MQTT 5 §3)")]
    InvalidPropertyValue {
        /// The property identifier.
        id: u8,
        /// The value received.
        value: u32,
    },
    /// [`peek_connect_version`](super::peek_connect_version) saw another packet first.
    #[error("first packet is type {0}, not CONNECT (MQTT-3.1.0-1)")]
    FirstPacketNotConnect(u8),
    /// The transport failed; not the peer's fault as far as the codec knows.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl DecodeError {
    /// The MQTT 5 reason code to put in the DISCONNECT (or CONNACK) that answers this error:
    /// 0x81 Malformed Packet, 0x82 Protocol Error, 0x84 Unsupported Protocol Version,
    /// 0x94 Topic Alias invalid, 0x95 Packet too large, 0x80 for transport errors.
    pub fn reason_code(&self) -> u8 {
        match self {
            DecodeError::PacketTooLarge { .. } => PACKET_TOO_LARGE,
            // MQTT-3.3.2-8: alias 0 is out of range like one above the maximum (what the
            // channel answers for those, and what EMQX and mosquitto send).
            DecodeError::InvalidPropertyValue {
                id: TOPIC_ALIAS_PROPERTY,
                ..
            } => TOPIC_ALIAS_INVALID,
            DecodeError::UnsupportedProtocolVersion(_) => UNSUPPORTED_PROTOCOL_VERSION,
            // MQTT 5 calls these "Protocol Error" rather than "Malformed Packet".
            DecodeError::DuplicateProperty(_)
            | DecodeError::InvalidPropertyValue { .. }
            | DecodeError::EmptySubscribe
            | DecodeError::EmptyUnsubscribe
            | DecodeError::FirstPacketNotConnect(_) => PROTOCOL_ERROR,
            // §3.8.3.1: reserved bits are malformed, QoS 3 / Retain Handling 3 protocol errors.
            DecodeError::InvalidSubscriptionOptions(options) if options & 0b1100_0000 == 0 => {
                PROTOCOL_ERROR
            }
            DecodeError::Io(_) => UNSPECIFIED_ERROR,
            _ => MALFORMED_PACKET,
        }
    }
}

/// Why a [`Packet`](super::Packet) cannot be encoded in the requested version.
///
/// The encoder checks only what would make the frame unparseable or misleading (lengths,
/// ranges, packet-id presence, version support); it trusts that strings were validated when
/// they entered the system.
#[derive(Debug, Error)]
pub enum EncodeError {
    /// A UTF-8 string or binary field is longer than its 16-bit length prefix allows.
    #[error("field of {len} bytes exceeds 65535 (MQTT 1.5.4, 1.5.6)")]
    FieldTooLong {
        /// Length of the field.
        len: usize,
    },
    /// The remaining length would exceed 268,435,455.
    #[error("packet body of {size} bytes exceeds 268435455 (MQTT 2.1.4)")]
    PacketTooLarge {
        /// Remaining length the packet would have.
        size: usize,
    },
    /// A PUBLISH whose packet id presence does not match its QoS.
    #[error("PUBLISH at {qos:?} must carry a packet id iff QoS > 0 (MQTT-2.2.1-2)")]
    PacketIdMismatch {
        /// The QoS of the PUBLISH.
        qos: QoS,
    },
    /// The packet does not exist in that protocol version (AUTH before MQTT 5).
    #[error("{packet} cannot be sent in {version:?}")]
    UnsupportedInVersion {
        /// The packet.
        packet: PacketType,
        /// The version it was to be encoded in.
        version: ProtocolVersion,
    },
    /// An MQTT 3.x SUBACK return code other than 0x00, 0x01, 0x02 or 0x80 (codes >= 0x80 are
    /// sent as 0x80).
    #[error("invalid SUBACK return code {0:#04x} for MQTT 3.x (MQTT-3.9.3-2)")]
    InvalidReturnCode(u8),
    /// Retain Handling above 2.
    #[error("invalid retain handling {0} (MQTT 5 §3.8.3.1)")]
    InvalidRetainHandling(u8),
    /// A property value that cannot be encoded (subscription identifier 0 or above
    /// 268,435,455).
    #[error("invalid value {value} for property {id:#04x}")]
    InvalidPropertyValue {
        /// The property identifier.
        id: u8,
        /// The value.
        value: u32,
    },
    /// The transport failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}
