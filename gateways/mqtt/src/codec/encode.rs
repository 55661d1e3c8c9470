//! Encoding: a [`Packet`] to its wire form in a given protocol version.
//!
//! Owns: the fixed header byte, the remaining length and each packet's body layout on the way
//! out, and the exact size a packet takes on the wire.
//! Invariants: every body is written by one generic function, first into a byte counter and
//! then into the buffer, so [`encoded_len`] always equals the bytes [`encode_packet`] writes;
//! nothing is written to the buffer unless the whole packet can be encoded; MQTT 5 packets use
//! the shortest legal form (MQTT 5 §3.4.2.1, §3.14.2.1, §3.15.2.1); MQTT 3.x ignores properties
//! and reason codes it has no room for.

use super::error::EncodeError;
use super::packet::{
    Ack, Auth, AuthProperties, ConnAck, Connect, Disconnect, DisconnectProperties, Packet,
    ProtocolVersion, Publish, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};
use super::properties::{put_properties, UserProperties};
use super::wire::{put_binary, put_length, put_string, varint_len, Counter, Sink, MAX_VARINT};
use bytes::BytesMut;

/// Appends `packet`, encoded for `version`, to `out`. A CONNECT is encoded at its own
/// `protocol`, whatever `version` says. On error `out` is left untouched.
pub fn encode_packet(
    packet: &Packet,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let remaining = body_len(packet, version)?;
    out.reserve(1 + varint_len(remaining) + remaining);
    out.put_u8(first_byte(packet));
    put_length(out, remaining)?;
    write_body(packet, version, out)
}

/// Total bytes `packet` takes on the wire in `version`, fixed header included (what MQTT 5
/// Maximum Packet Size limits). `usize::MAX` if the packet cannot be encoded in `version`.
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> usize {
    match body_len(packet, version) {
        Ok(remaining) => 1 + varint_len(remaining) + remaining,
        Err(_) => usize::MAX,
    }
}

/// The remaining length of `packet`, refusing packets that cannot be encoded.
fn body_len(packet: &Packet, version: ProtocolVersion) -> Result<usize, EncodeError> {
    let mut counter = Counter::default();
    write_body(packet, version, &mut counter)?;
    if counter.0 > MAX_VARINT as usize {
        return Err(EncodeError::PacketTooLarge { size: counter.0 });
    }
    Ok(counter.0)
}

/// Packet type in the high nibble, fixed flags in the low one (MQTT-2.2.2-2).
fn first_byte(packet: &Packet) -> u8 {
    let flags = match packet {
        Packet::Publish(p) => u8::from(p.dup) << 3 | p.qos.as_u8() << 1 | u8::from(p.retain),
        Packet::PubRel(_) | Packet::Subscribe(_) | Packet::Unsubscribe(_) => 0b0010,
        _ => 0,
    };
    (packet.packet_type() as u8) << 4 | flags
}

fn write_body<S: Sink>(
    packet: &Packet,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    match packet {
        Packet::Connect(p) => write_connect(p, s),
        Packet::ConnAck(p) => write_connack(p, version, s),
        Packet::Publish(p) => write_publish(p, version, s),
        Packet::PubAck(p) | Packet::PubRec(p) | Packet::PubRel(p) | Packet::PubComp(p) => {
            write_ack(p, version, s)
        }
        Packet::Subscribe(p) => write_subscribe(p, version, s),
        Packet::SubAck(p) => write_suback(p, version, s),
        Packet::Unsubscribe(p) => write_unsubscribe(p, version, s),
        Packet::UnsubAck(p) => write_unsuback(p, version, s),
        Packet::PingReq | Packet::PingResp => Ok(()),
        Packet::Disconnect(p) => write_disconnect(p, version, s),
        Packet::Auth(p) => write_auth(p, version, s),
    }
}

/// CONNECT, at the packet's own protocol level (MQTT 3.1.1 §3.1.2, MQTT 5 §3.1.2).
fn write_connect<S: Sink>(p: &Connect, s: &mut S) -> Result<(), EncodeError> {
    let v5 = p.protocol.is_v5();
    put_string(s, p.protocol.protocol_name())?;
    s.put_u8(p.protocol.level());
    let mut flags = u8::from(p.clean_start) << 1;
    if let Some(will) = &p.will {
        flags |= 0x04 | will.qos.as_u8() << 3 | u8::from(will.retain) << 5;
    }
    if p.password.is_some() {
        flags |= 0x40;
    }
    if p.username.is_some() {
        flags |= 0x80;
    }
    s.put_u8(flags);
    s.put_u16(p.keep_alive);
    if v5 {
        put_properties(s, &p.properties)?;
    }
    put_string(s, &p.client_id)?;
    if let Some(will) = &p.will {
        if v5 {
            put_properties(s, &will.properties)?;
        }
        put_string(s, &will.topic)?;
        put_binary(s, &will.payload)?;
    }
    if let Some(username) = &p.username {
        put_string(s, username)?;
    }
    if let Some(password) = &p.password {
        put_binary(s, password)?;
    }
    Ok(())
}

/// CONNACK. MQTT 3.1 has no session-present flag, so the byte stays 0 there.
fn write_connack<S: Sink>(
    p: &ConnAck,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    let session_present = p.session_present && version != ProtocolVersion::V31;
    s.put_u8(u8::from(session_present));
    s.put_u8(p.code);
    if version.is_v5() {
        put_properties(s, &p.properties)?;
    }
    Ok(())
}

/// PUBLISH; the packet id must be present iff QoS > 0 (MQTT-2.2.1-2, MQTT 3.1.1 §3.3.2.2).
fn write_publish<S: Sink>(
    p: &Publish,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    put_string(s, &p.topic)?;
    match (p.qos.as_u8(), p.pkid) {
        (0, None) => {}
        (1 | 2, Some(pkid)) => s.put_u16(pkid.get()),
        _ => return Err(EncodeError::PacketIdMismatch { qos: p.qos }),
    }
    if version.is_v5() {
        put_properties(s, &p.properties)?;
    }
    s.put_slice(&p.payload);
    Ok(())
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP: reason code and properties only in MQTT 5, and only
/// when not Success-without-properties (§3.4.2.1).
fn write_ack<S: Sink>(p: &Ack, version: ProtocolVersion, s: &mut S) -> Result<(), EncodeError> {
    s.put_u16(p.pkid.get());
    if !version.is_v5() || (p.reason_code == 0 && p.properties.is_empty()) {
        return Ok(());
    }
    s.put_u8(p.reason_code);
    if !p.properties.is_empty() {
        put_properties(s, &p.properties)?;
    }
    Ok(())
}

/// The options byte (MQTT 5 §3.8.3.1); only the QoS bits exist in MQTT 3.x.
fn options_byte(o: &SubscriptionOptions, version: ProtocolVersion) -> Result<u8, EncodeError> {
    if !version.is_v5() {
        return Ok(o.qos.as_u8());
    }
    if o.retain_handling > 2 {
        return Err(EncodeError::InvalidRetainHandling(o.retain_handling));
    }
    Ok(o.qos.as_u8()
        | u8::from(o.no_local) << 2
        | u8::from(o.retain_as_published) << 3
        | o.retain_handling << 4)
}

fn write_subscribe<S: Sink>(
    p: &Subscribe,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    s.put_u16(p.pkid.get());
    if version.is_v5() {
        put_properties(s, &p.properties)?;
    }
    for (filter, options) in &p.filters {
        put_string(s, filter)?;
        s.put_u8(options_byte(options, version)?);
    }
    Ok(())
}

/// SUBACK. In MQTT 3.x any failure code (>= 0x80) is sent as 0x80, the only failure code
/// there is; codes 0x03..=0x7F do not exist (MQTT-3.9.3-2).
fn write_suback<S: Sink>(
    p: &SubAck,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    s.put_u16(p.pkid.get());
    if version.is_v5() {
        put_properties(s, &p.properties)?;
        s.put_slice(&p.return_codes);
        return Ok(());
    }
    for &code in &p.return_codes {
        match code {
            0x00..=0x02 => s.put_u8(code),
            0x80..=0xFF => s.put_u8(0x80),
            _ => return Err(EncodeError::InvalidReturnCode(code)),
        }
    }
    Ok(())
}

fn write_unsubscribe<S: Sink>(
    p: &Unsubscribe,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    s.put_u16(p.pkid.get());
    if version.is_v5() {
        put_properties(s, &UserProperties(&p.user_properties))?;
    }
    for filter in &p.filters {
        put_string(s, filter)?;
    }
    Ok(())
}

/// UNSUBACK: the packet id alone in MQTT 3.x (§3.11.2), properties and reason codes in 5.
fn write_unsuback<S: Sink>(
    p: &UnsubAck,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    s.put_u16(p.pkid.get());
    if version.is_v5() {
        put_properties(s, &p.properties)?;
        s.put_slice(&p.reason_codes);
    }
    Ok(())
}

/// DISCONNECT: empty in MQTT 3.x; in MQTT 5 the reason code and properties are omitted when
/// they are Normal disconnection and none (§3.14.2.1).
fn write_disconnect<S: Sink>(
    p: &Disconnect,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    if !version.is_v5() {
        return Ok(());
    }
    let no_properties = p.properties == DisconnectProperties::default();
    if p.reason_code == 0 && no_properties {
        return Ok(());
    }
    s.put_u8(p.reason_code);
    // §3.14.2.2.1 allows omitting an empty property length after the reason code, but
    // mqttbytes-based clients (rumqttc 0.24's v5 client) then wait for a byte that never
    // comes and miss the reason (0x8E takeover, 0x8B shutdown); EMQX always writes it too.
    put_properties(s, &p.properties)
}

/// AUTH, MQTT 5 only, with the same short forms as DISCONNECT (§3.15.2.1, §3.15.2.2.1).
fn write_auth<S: Sink>(p: &Auth, version: ProtocolVersion, s: &mut S) -> Result<(), EncodeError> {
    if !version.is_v5() {
        return Err(EncodeError::UnsupportedInVersion {
            packet: super::packet::PacketType::Auth,
            version,
        });
    }
    let no_properties = p.properties == AuthProperties::default();
    if p.reason_code == 0 && no_properties {
        return Ok(());
    }
    s.put_u8(p.reason_code);
    if !no_properties {
        put_properties(s, &p.properties)?;
    }
    Ok(())
}
