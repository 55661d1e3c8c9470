//! MQTT 5 properties (MQTT 5 §2.2.2): the identifiers, and reading and writing each packet's
//! property set.
//!
//! Owns: which property may appear in which packet, which may repeat, and which values are a
//! protocol error.
//! Invariants on decode: a property block never reads past its declared length and its
//! declared length never past the packet; an identifier MQTT 5 does not define is
//! `InvalidPropertyId`, one not listed for the packet is `PropertyNotAllowed`; only User
//! Property, and Subscription Identifier inside PUBLISH, may repeat (§2.2.2.2).
//! On encode, properties are written in ascending identifier order, user properties in their
//! original order.

use super::error::{DecodeError, EncodeError};
use super::packet::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PacketType, PublishProperties, SubscribeProperties, UserProperty, WillProperties,
};
use super::wire::MAX_VARINT;
use super::wire::{put_binary, put_length, put_string, put_varint, Counter, Reader, Sink};
use switchyard_core::{ByteString, Bytes};

pub(super) const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
pub(super) const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
pub(super) const CONTENT_TYPE: u8 = 0x03;
pub(super) const RESPONSE_TOPIC: u8 = 0x08;
pub(super) const CORRELATION_DATA: u8 = 0x09;
pub(super) const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
pub(super) const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
pub(super) const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
pub(super) const SERVER_KEEP_ALIVE: u8 = 0x13;
pub(super) const AUTHENTICATION_METHOD: u8 = 0x15;
pub(super) const AUTHENTICATION_DATA: u8 = 0x16;
pub(super) const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
pub(super) const WILL_DELAY_INTERVAL: u8 = 0x18;
pub(super) const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
pub(super) const RESPONSE_INFORMATION: u8 = 0x1A;
pub(super) const SERVER_REFERENCE: u8 = 0x1C;
pub(super) const REASON_STRING: u8 = 0x1F;
pub(super) const RECEIVE_MAXIMUM: u8 = 0x21;
pub(super) const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
pub(super) const TOPIC_ALIAS: u8 = 0x23;
pub(super) const MAXIMUM_QOS: u8 = 0x24;
pub(super) const RETAIN_AVAILABLE: u8 = 0x25;
pub(super) const USER_PROPERTY: u8 = 0x26;
pub(super) const MAXIMUM_PACKET_SIZE: u8 = 0x27;
pub(super) const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
pub(super) const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
pub(super) const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;

/// Every identifier MQTT 5 defines, as a bit set over 0..64 (Table 2-4).
const KNOWN: u64 = bit(PAYLOAD_FORMAT_INDICATOR)
    | bit(MESSAGE_EXPIRY_INTERVAL)
    | bit(CONTENT_TYPE)
    | bit(RESPONSE_TOPIC)
    | bit(CORRELATION_DATA)
    | bit(SUBSCRIPTION_IDENTIFIER)
    | bit(SESSION_EXPIRY_INTERVAL)
    | bit(ASSIGNED_CLIENT_IDENTIFIER)
    | bit(SERVER_KEEP_ALIVE)
    | bit(AUTHENTICATION_METHOD)
    | bit(AUTHENTICATION_DATA)
    | bit(REQUEST_PROBLEM_INFORMATION)
    | bit(WILL_DELAY_INTERVAL)
    | bit(REQUEST_RESPONSE_INFORMATION)
    | bit(RESPONSE_INFORMATION)
    | bit(SERVER_REFERENCE)
    | bit(REASON_STRING)
    | bit(RECEIVE_MAXIMUM)
    | bit(TOPIC_ALIAS_MAXIMUM)
    | bit(TOPIC_ALIAS)
    | bit(MAXIMUM_QOS)
    | bit(RETAIN_AVAILABLE)
    | bit(USER_PROPERTY)
    | bit(MAXIMUM_PACKET_SIZE)
    | bit(WILDCARD_SUBSCRIPTION_AVAILABLE)
    | bit(SUBSCRIPTION_IDENTIFIER_AVAILABLE)
    | bit(SHARED_SUBSCRIPTION_AVAILABLE);

const fn bit(id: u8) -> u64 {
    1 << (id & 63)
}

/// Walks one property block: its length, then identifier/value pairs up to that length.
struct Properties {
    r: Reader,
    packet: PacketType,
    seen: u64,
}

impl Properties {
    /// Reads the Property Length and splits off exactly that many bytes from `r`.
    fn new(r: &mut Reader, packet: PacketType) -> Result<Self, DecodeError> {
        let len = r.varint()?;
        let len = usize::try_from(len).map_err(|_| DecodeError::Truncated)?;
        Ok(Properties {
            r: Reader::new(r.take(len)?),
            packet,
            seen: 0,
        })
    }

    /// The next identifier, or `None` at the end of the block. Rejects unknown identifiers and
    /// repeats of identifiers that may appear once (MQTT 5 §2.2.2.2).
    fn next_id(&mut self) -> Result<Option<u8>, DecodeError> {
        if self.r.is_empty() {
            return Ok(None);
        }
        // Identifiers are Variable Byte Integers, but all defined ones are below 0x80: a byte
        // with the continuation bit cannot start a valid identifier.
        let id = self.r.u8()?;
        if id >= 64 || KNOWN & bit(id) == 0 {
            return Err(DecodeError::InvalidPropertyId(id));
        }
        let repeatable = id == USER_PROPERTY
            || (id == SUBSCRIPTION_IDENTIFIER && self.packet == PacketType::Publish);
        if !repeatable && self.seen & bit(id) != 0 {
            return Err(DecodeError::DuplicateProperty(id));
        }
        self.seen |= bit(id);
        Ok(Some(id))
    }

    fn not_allowed(&self, id: u8) -> DecodeError {
        DecodeError::PropertyNotAllowed {
            id,
            packet: self.packet,
        }
    }

    /// A Byte property whose only legal values are 0 and 1.
    fn flag(&mut self, id: u8) -> Result<u8, DecodeError> {
        let v = self.r.u8()?;
        if v > 1 {
            return Err(DecodeError::InvalidPropertyValue {
                id,
                value: u32::from(v),
            });
        }
        Ok(v)
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        self.r.u16()
    }

    /// A Two Byte Integer property for which 0 is a protocol error.
    fn nonzero_u16(&mut self, id: u8) -> Result<u16, DecodeError> {
        match self.r.u16()? {
            0 => Err(DecodeError::InvalidPropertyValue { id, value: 0 }),
            v => Ok(v),
        }
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.r.u32()
    }

    /// A Four Byte Integer property for which 0 is a protocol error.
    fn nonzero_u32(&mut self, id: u8) -> Result<u32, DecodeError> {
        match self.r.u32()? {
            0 => Err(DecodeError::InvalidPropertyValue { id, value: 0 }),
            v => Ok(v),
        }
    }

    /// A Subscription Identifier: a Variable Byte Integer, 0 is a protocol error (§3.3.2.3.8).
    fn subscription_identifier(&mut self) -> Result<u32, DecodeError> {
        match self.r.varint()? {
            0 => Err(DecodeError::InvalidPropertyValue {
                id: SUBSCRIPTION_IDENTIFIER,
                value: 0,
            }),
            v => Ok(v),
        }
    }

    fn string(&mut self) -> Result<ByteString, DecodeError> {
        self.r.string()
    }

    fn binary(&mut self) -> Result<Bytes, DecodeError> {
        self.r.binary()
    }

    fn user_property(&mut self) -> Result<UserProperty, DecodeError> {
        Ok((self.r.string()?, self.r.string()?))
    }
}

/// Decodes CONNECT properties (MQTT 5 §3.1.2.11).
pub(super) fn decode_connect(r: &mut Reader) -> Result<ConnectProperties, DecodeError> {
    let mut props = Properties::new(r, PacketType::Connect)?;
    let mut p = ConnectProperties::default();
    while let Some(id) = props.next_id()? {
        match id {
            SESSION_EXPIRY_INTERVAL => p.session_expiry_interval = Some(props.u32()?),
            RECEIVE_MAXIMUM => p.receive_maximum = Some(props.nonzero_u16(id)?),
            MAXIMUM_PACKET_SIZE => p.maximum_packet_size = Some(props.nonzero_u32(id)?),
            TOPIC_ALIAS_MAXIMUM => p.topic_alias_maximum = Some(props.u16()?),
            REQUEST_RESPONSE_INFORMATION => {
                p.request_response_information = Some(props.flag(id)?);
            }
            REQUEST_PROBLEM_INFORMATION => p.request_problem_information = Some(props.flag(id)?),
            USER_PROPERTY => p.user_properties.push(props.user_property()?),
            AUTHENTICATION_METHOD => p.authentication_method = Some(props.string()?),
            AUTHENTICATION_DATA => p.authentication_data = Some(props.binary()?),
            _ => return Err(props.not_allowed(id)),
        }
    }
    Ok(p)
}

/// Decodes Will properties (MQTT 5 §3.1.3.2).
pub(super) fn decode_will(r: &mut Reader) -> Result<WillProperties, DecodeError> {
    let mut props = Properties::new(r, PacketType::Connect)?;
    let mut p = WillProperties::default();
    while let Some(id) = props.next_id()? {
        match id {
            WILL_DELAY_INTERVAL => p.will_delay_interval = Some(props.u32()?),
            PAYLOAD_FORMAT_INDICATOR => p.payload_format_indicator = Some(props.flag(id)?),
            MESSAGE_EXPIRY_INTERVAL => p.message_expiry_interval = Some(props.u32()?),
            CONTENT_TYPE => p.content_type = Some(props.string()?),
            RESPONSE_TOPIC => p.response_topic = Some(props.string()?),
            CORRELATION_DATA => p.correlation_data = Some(props.binary()?),
            USER_PROPERTY => p.user_properties.push(props.user_property()?),
            _ => return Err(props.not_allowed(id)),
        }
    }
    Ok(p)
}

/// Decodes CONNACK properties (MQTT 5 §3.2.2.3).
pub(super) fn decode_connack(r: &mut Reader) -> Result<ConnAckProperties, DecodeError> {
    let mut props = Properties::new(r, PacketType::ConnAck)?;
    let mut p = ConnAckProperties::default();
    while let Some(id) = props.next_id()? {
        match id {
            SESSION_EXPIRY_INTERVAL => p.session_expiry_interval = Some(props.u32()?),
            RECEIVE_MAXIMUM => p.receive_maximum = Some(props.nonzero_u16(id)?),
            MAXIMUM_QOS => p.maximum_qos = Some(props.flag(id)?),
            RETAIN_AVAILABLE => p.retain_available = Some(props.flag(id)?),
            MAXIMUM_PACKET_SIZE => p.maximum_packet_size = Some(props.nonzero_u32(id)?),
            ASSIGNED_CLIENT_IDENTIFIER => p.assigned_client_identifier = Some(props.string()?),
            TOPIC_ALIAS_MAXIMUM => p.topic_alias_maximum = Some(props.u16()?),
            REASON_STRING => p.reason_string = Some(props.string()?),
            USER_PROPERTY => p.user_properties.push(props.user_property()?),
            WILDCARD_SUBSCRIPTION_AVAILABLE => {
                p.wildcard_subscription_available = Some(props.flag(id)?);
            }
            SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
                p.subscription_identifiers_available = Some(props.flag(id)?);
            }
            SHARED_SUBSCRIPTION_AVAILABLE => {
                p.shared_subscription_available = Some(props.flag(id)?);
            }
            SERVER_KEEP_ALIVE => p.server_keep_alive = Some(props.u16()?),
            RESPONSE_INFORMATION => p.response_information = Some(props.string()?),
            SERVER_REFERENCE => p.server_reference = Some(props.string()?),
            AUTHENTICATION_METHOD => p.authentication_method = Some(props.string()?),
            AUTHENTICATION_DATA => p.authentication_data = Some(props.binary()?),
            _ => return Err(props.not_allowed(id)),
        }
    }
    Ok(p)
}

/// Decodes PUBLISH properties (MQTT 5 §3.3.2.3).
pub(super) fn decode_publish(r: &mut Reader) -> Result<PublishProperties, DecodeError> {
    let mut props = Properties::new(r, PacketType::Publish)?;
    let mut p = PublishProperties::default();
    while let Some(id) = props.next_id()? {
        match id {
            PAYLOAD_FORMAT_INDICATOR => p.payload_format_indicator = Some(props.flag(id)?),
            MESSAGE_EXPIRY_INTERVAL => p.message_expiry_interval = Some(props.u32()?),
            // MQTT-3.3.2-8: a Topic Alias of 0 is a protocol error.
            TOPIC_ALIAS => p.topic_alias = Some(props.nonzero_u16(id)?),
            RESPONSE_TOPIC => p.response_topic = Some(props.string()?),
            CORRELATION_DATA => p.correlation_data = Some(props.binary()?),
            USER_PROPERTY => p.user_properties.push(props.user_property()?),
            SUBSCRIPTION_IDENTIFIER => {
                let v = props.subscription_identifier()?;
                p.subscription_identifiers.push(v);
            }
            CONTENT_TYPE => p.content_type = Some(props.string()?),
            _ => return Err(props.not_allowed(id)),
        }
    }
    Ok(p)
}

/// Decodes the reason-string-and-user-properties set of PUBACK, PUBREC, PUBREL, PUBCOMP,
/// SUBACK and UNSUBACK.
pub(super) fn decode_ack(r: &mut Reader, packet: PacketType) -> Result<AckProperties, DecodeError> {
    let mut props = Properties::new(r, packet)?;
    let mut p = AckProperties::default();
    while let Some(id) = props.next_id()? {
        match id {
            REASON_STRING => p.reason_string = Some(props.string()?),
            USER_PROPERTY => p.user_properties.push(props.user_property()?),
            _ => return Err(props.not_allowed(id)),
        }
    }
    Ok(p)
}

/// Decodes SUBSCRIBE properties (MQTT 5 §3.8.2.1).
pub(super) fn decode_subscribe(r: &mut Reader) -> Result<SubscribeProperties, DecodeError> {
    let mut props = Properties::new(r, PacketType::Subscribe)?;
    let mut p = SubscribeProperties::default();
    while let Some(id) = props.next_id()? {
        match id {
            SUBSCRIPTION_IDENTIFIER => {
                p.subscription_identifier = Some(props.subscription_identifier()?);
            }
            USER_PROPERTY => p.user_properties.push(props.user_property()?),
            _ => return Err(props.not_allowed(id)),
        }
    }
    Ok(p)
}

/// Decodes UNSUBSCRIBE properties: user properties only (MQTT 5 §3.10.2.1).
pub(super) fn decode_unsubscribe(r: &mut Reader) -> Result<Vec<UserProperty>, DecodeError> {
    let mut props = Properties::new(r, PacketType::Unsubscribe)?;
    let mut user_properties = Vec::new();
    while let Some(id) = props.next_id()? {
        match id {
            USER_PROPERTY => user_properties.push(props.user_property()?),
            _ => return Err(props.not_allowed(id)),
        }
    }
    Ok(user_properties)
}

/// Decodes DISCONNECT properties (MQTT 5 §3.14.2.2).
pub(super) fn decode_disconnect(r: &mut Reader) -> Result<DisconnectProperties, DecodeError> {
    let mut props = Properties::new(r, PacketType::Disconnect)?;
    let mut p = DisconnectProperties::default();
    while let Some(id) = props.next_id()? {
        match id {
            SESSION_EXPIRY_INTERVAL => p.session_expiry_interval = Some(props.u32()?),
            REASON_STRING => p.reason_string = Some(props.string()?),
            USER_PROPERTY => p.user_properties.push(props.user_property()?),
            SERVER_REFERENCE => p.server_reference = Some(props.string()?),
            _ => return Err(props.not_allowed(id)),
        }
    }
    Ok(p)
}

/// Decodes AUTH properties (MQTT 5 §3.15.2.2).
pub(super) fn decode_auth(r: &mut Reader) -> Result<AuthProperties, DecodeError> {
    let mut props = Properties::new(r, PacketType::Auth)?;
    let mut p = AuthProperties::default();
    while let Some(id) = props.next_id()? {
        match id {
            AUTHENTICATION_METHOD => p.authentication_method = Some(props.string()?),
            AUTHENTICATION_DATA => p.authentication_data = Some(props.binary()?),
            REASON_STRING => p.reason_string = Some(props.string()?),
            USER_PROPERTY => p.user_properties.push(props.user_property()?),
            _ => return Err(props.not_allowed(id)),
        }
    }
    Ok(p)
}

/// A property set that can be written (and, through [`Counter`], measured).
pub(super) trait PropertySet {
    /// Writes the identifier/value pairs, without the Property Length.
    fn write_to<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError>;
}

/// Writes a property block: Property Length, then the properties.
pub(super) fn put_properties<S: Sink, P: PropertySet>(s: &mut S, p: &P) -> Result<(), EncodeError> {
    let mut counter = Counter::default();
    p.write_to(&mut counter)?;
    put_length(s, counter.0)?;
    p.write_to(s)
}

fn put_u8_prop<S: Sink>(s: &mut S, id: u8, v: Option<u8>) {
    if let Some(v) = v {
        s.put_u8(id);
        s.put_u8(v);
    }
}

fn put_u16_prop<S: Sink>(s: &mut S, id: u8, v: Option<u16>) {
    if let Some(v) = v {
        s.put_u8(id);
        s.put_u16(v);
    }
}

fn put_u32_prop<S: Sink>(s: &mut S, id: u8, v: Option<u32>) {
    if let Some(v) = v {
        s.put_u8(id);
        s.put_u32(v);
    }
}

fn put_string_prop<S: Sink>(s: &mut S, id: u8, v: &Option<ByteString>) -> Result<(), EncodeError> {
    if let Some(v) = v {
        s.put_u8(id);
        put_string(s, v)?;
    }
    Ok(())
}

fn put_binary_prop<S: Sink>(s: &mut S, id: u8, v: &Option<Bytes>) -> Result<(), EncodeError> {
    if let Some(v) = v {
        s.put_u8(id);
        put_binary(s, v)?;
    }
    Ok(())
}

fn put_subscription_identifier<S: Sink>(s: &mut S, v: u32) -> Result<(), EncodeError> {
    if v == 0 || v > MAX_VARINT {
        return Err(EncodeError::InvalidPropertyValue {
            id: SUBSCRIPTION_IDENTIFIER,
            value: v,
        });
    }
    s.put_u8(SUBSCRIPTION_IDENTIFIER);
    put_varint(s, v);
    Ok(())
}

fn put_user_properties<S: Sink>(s: &mut S, v: &[UserProperty]) -> Result<(), EncodeError> {
    for (key, value) in v {
        s.put_u8(USER_PROPERTY);
        put_string(s, key)?;
        put_string(s, value)?;
    }
    Ok(())
}

impl PropertySet for ConnectProperties {
    fn write_to<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        put_u32_prop(s, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        put_string_prop(s, AUTHENTICATION_METHOD, &self.authentication_method)?;
        put_binary_prop(s, AUTHENTICATION_DATA, &self.authentication_data)?;
        put_u8_prop(
            s,
            REQUEST_PROBLEM_INFORMATION,
            self.request_problem_information,
        );
        put_u8_prop(
            s,
            REQUEST_RESPONSE_INFORMATION,
            self.request_response_information,
        );
        put_u16_prop(s, RECEIVE_MAXIMUM, self.receive_maximum);
        put_u16_prop(s, TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        put_user_properties(s, &self.user_properties)?;
        put_u32_prop(s, MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        Ok(())
    }
}

impl PropertySet for WillProperties {
    fn write_to<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        put_u8_prop(s, PAYLOAD_FORMAT_INDICATOR, self.payload_format_indicator);
        put_u32_prop(s, MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        put_string_prop(s, CONTENT_TYPE, &self.content_type)?;
        put_string_prop(s, RESPONSE_TOPIC, &self.response_topic)?;
        put_binary_prop(s, CORRELATION_DATA, &self.correlation_data)?;
        put_u32_prop(s, WILL_DELAY_INTERVAL, self.will_delay_interval);
        put_user_properties(s, &self.user_properties)
    }
}

impl PropertySet for ConnAckProperties {
    fn write_to<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        put_u32_prop(s, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        put_string_prop(
            s,
            ASSIGNED_CLIENT_IDENTIFIER,
            &self.assigned_client_identifier,
        )?;
        put_u16_prop(s, SERVER_KEEP_ALIVE, self.server_keep_alive);
        put_string_prop(s, AUTHENTICATION_METHOD, &self.authentication_method)?;
        put_binary_prop(s, AUTHENTICATION_DATA, &self.authentication_data)?;
        put_string_prop(s, RESPONSE_INFORMATION, &self.response_information)?;
        put_string_prop(s, SERVER_REFERENCE, &self.server_reference)?;
        put_string_prop(s, REASON_STRING, &self.reason_string)?;
        put_u16_prop(s, RECEIVE_MAXIMUM, self.receive_maximum);
        put_u16_prop(s, TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        put_u8_prop(s, MAXIMUM_QOS, self.maximum_qos);
        put_u8_prop(s, RETAIN_AVAILABLE, self.retain_available);
        put_user_properties(s, &self.user_properties)?;
        put_u32_prop(s, MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        put_u8_prop(
            s,
            WILDCARD_SUBSCRIPTION_AVAILABLE,
            self.wildcard_subscription_available,
        );
        put_u8_prop(
            s,
            SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            self.subscription_identifiers_available,
        );
        put_u8_prop(
            s,
            SHARED_SUBSCRIPTION_AVAILABLE,
            self.shared_subscription_available,
        );
        Ok(())
    }
}

impl PropertySet for PublishProperties {
    fn write_to<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        put_u8_prop(s, PAYLOAD_FORMAT_INDICATOR, self.payload_format_indicator);
        put_u32_prop(s, MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        put_string_prop(s, CONTENT_TYPE, &self.content_type)?;
        put_string_prop(s, RESPONSE_TOPIC, &self.response_topic)?;
        put_binary_prop(s, CORRELATION_DATA, &self.correlation_data)?;
        for &id in &self.subscription_identifiers {
            put_subscription_identifier(s, id)?;
        }
        put_u16_prop(s, TOPIC_ALIAS, self.topic_alias);
        put_user_properties(s, &self.user_properties)
    }
}

impl PropertySet for AckProperties {
    fn write_to<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        put_string_prop(s, REASON_STRING, &self.reason_string)?;
        put_user_properties(s, &self.user_properties)
    }
}

impl PropertySet for SubscribeProperties {
    fn write_to<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        if let Some(id) = self.subscription_identifier {
            put_subscription_identifier(s, id)?;
        }
        put_user_properties(s, &self.user_properties)
    }
}

/// UNSUBSCRIBE's property set, which is only user properties.
pub(super) struct UserProperties<'a>(pub(super) &'a [UserProperty]);

impl PropertySet for UserProperties<'_> {
    fn write_to<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        put_user_properties(s, self.0)
    }
}

impl PropertySet for DisconnectProperties {
    fn write_to<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        put_u32_prop(s, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        put_string_prop(s, SERVER_REFERENCE, &self.server_reference)?;
        put_string_prop(s, REASON_STRING, &self.reason_string)?;
        put_user_properties(s, &self.user_properties)
    }
}

impl PropertySet for AuthProperties {
    fn write_to<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        put_string_prop(s, AUTHENTICATION_METHOD, &self.authentication_method)?;
        put_binary_prop(s, AUTHENTICATION_DATA, &self.authentication_data)?;
        put_string_prop(s, REASON_STRING, &self.reason_string)?;
        put_user_properties(s, &self.user_properties)
    }
}
