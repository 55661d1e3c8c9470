//! Decoding: framing a byte stream into packets, and each packet's variable header and payload.
//!
//! Owns: the fixed header (packet type, flags, remaining length), the size limit, and the
//! per-packet layouts of MQTT 3.1, 3.1.1 and 5.0; also peeking at a CONNECT's version.
//! Invariants: a frame is parsed only once it is wholly buffered; an oversize frame is refused
//! from its fixed header alone, before its body is waited for; on success exactly one frame is
//! consumed; strings and payloads are zero-copy slices of that frame; no input panics.

use super::error::DecodeError;
use super::packet::{
    Ack, Auth, ConnAck, Connect, Disconnect, LastWill, Packet, PacketType, ProtocolVersion,
    Publish, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};
use super::properties;
use super::wire::{parse_varint, Reader, VarInt};
use bytes::{Buf, BytesMut};
use switchyard_core::{Bytes, QoS};

/// The fixed header of a frame whose length is known (MQTT 2.1.1).
struct FixedHeader {
    packet_type: PacketType,
    flags: u8,
    /// Bytes taken by the fixed header itself (2..=5).
    header_len: usize,
    /// The remaining length: variable header plus payload.
    remaining: usize,
}

/// Looks at the start of a buffer: `Ok(None)` until the remaining length is complete.
/// Type and flags are checked from the first byte alone, so garbage is refused early.
fn parse_fixed_header(
    buf: &[u8],
    version: ProtocolVersion,
) -> Result<Option<FixedHeader>, DecodeError> {
    let Some((&first, rest)) = buf.split_first() else {
        return Ok(None);
    };
    let packet_type = packet_type(first >> 4, version)?;
    let flags = first & 0x0F;
    check_flags(packet_type, flags, version)?;
    match parse_varint(rest) {
        VarInt::Done(remaining, len) => Ok(Some(FixedHeader {
            packet_type,
            flags,
            header_len: 1 + len,
            remaining: usize::try_from(remaining).map_err(|_| DecodeError::Truncated)?,
        })),
        VarInt::Incomplete => Ok(None),
        VarInt::TooLong => Err(DecodeError::MalformedRemainingLength),
    }
}

/// Maps the high nibble; 0 is reserved everywhere, 15 is AUTH only in MQTT 5 (MQTT 2.1.2).
fn packet_type(nibble: u8, version: ProtocolVersion) -> Result<PacketType, DecodeError> {
    match PacketType::from_u8(nibble) {
        Some(PacketType::Auth) if !version.is_v5() => Err(DecodeError::InvalidPacketType(nibble)),
        Some(t) => Ok(t),
        None => Err(DecodeError::InvalidPacketType(nibble)),
    }
}

/// MQTT-2.2.2-2: the flags are fixed for every packet but PUBLISH. MQTT 3.1 let a client set
/// DUP on a retransmitted PUBREL, SUBSCRIBE or UNSUBSCRIBE (3.1 §2.1), so that is tolerated.
fn check_flags(
    packet_type: PacketType,
    flags: u8,
    version: ProtocolVersion,
) -> Result<(), DecodeError> {
    let ok = match packet_type {
        // PUBLISH flags are DUP/QoS/RETAIN; QoS 3 is checked when decoding the packet.
        PacketType::Publish => true,
        PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => {
            flags == 0b0010 || (version == ProtocolVersion::V31 && flags == 0b1010)
        }
        _ => flags == 0,
    };
    if ok {
        Ok(())
    } else {
        Err(DecodeError::InvalidFixedHeaderFlags { packet_type, flags })
    }
}

/// Decodes one packet from the front of `buf`.
///
/// Returns `Ok(None)` until a whole frame is buffered (reserving room for it); refuses a frame
/// whose total size (fixed header included, as MQTT 5 §3.1.2.11.4 counts it) exceeds
/// `max_packet_size` as soon as its fixed header is buffered; on success removes exactly that
/// frame from `buf`. A CONNECT is decoded at its own protocol level whatever `version` says.
pub fn decode_packet(
    buf: &mut BytesMut,
    version: ProtocolVersion,
    max_packet_size: usize,
) -> Result<Option<Packet>, DecodeError> {
    let Some(header) = parse_fixed_header(buf, version)? else {
        return Ok(None);
    };
    let size = header.header_len.saturating_add(header.remaining);
    if size > max_packet_size {
        return Err(DecodeError::PacketTooLarge {
            size,
            max: max_packet_size,
        });
    }
    if buf.len() < size {
        // Bounded by max_packet_size, checked above.
        buf.reserve(size - buf.len());
        return Ok(None);
    }
    buf.advance(header.header_len);
    let body = buf.split_to(header.remaining).freeze();
    decode_body(&header, body, version).map(Some)
}

fn decode_body(
    header: &FixedHeader,
    body: Bytes,
    version: ProtocolVersion,
) -> Result<Packet, DecodeError> {
    let mut r = Reader::new(body);
    let r = &mut r;
    let packet = match header.packet_type {
        PacketType::Connect => Packet::Connect(Box::new(decode_connect(r)?)),
        PacketType::ConnAck => Packet::ConnAck(decode_connack(r, version)?),
        PacketType::Publish => Packet::Publish(decode_publish(r, header.flags, version)?),
        PacketType::PubAck => Packet::PubAck(decode_ack(r, PacketType::PubAck, version)?),
        PacketType::PubRec => Packet::PubRec(decode_ack(r, PacketType::PubRec, version)?),
        PacketType::PubRel => Packet::PubRel(decode_ack(r, PacketType::PubRel, version)?),
        PacketType::PubComp => Packet::PubComp(decode_ack(r, PacketType::PubComp, version)?),
        PacketType::Subscribe => Packet::Subscribe(decode_subscribe(r, version)?),
        PacketType::SubAck => Packet::SubAck(decode_suback(r, version)?),
        PacketType::Unsubscribe => Packet::Unsubscribe(decode_unsubscribe(r, version)?),
        PacketType::UnsubAck => Packet::UnsubAck(decode_unsuback(r, version)?),
        PacketType::PingReq => {
            r.finish()?;
            Packet::PingReq
        }
        PacketType::PingResp => {
            r.finish()?;
            Packet::PingResp
        }
        PacketType::Disconnect => Packet::Disconnect(decode_disconnect(r, version)?),
        PacketType::Auth => Packet::Auth(decode_auth(r)?),
    };
    Ok(packet)
}

/// The version a CONNECT's protocol name and level stand for (MQTT-3.1.2-1, MQTT-3.1.2-2).
/// A known name with a level we do not speak is `UnsupportedProtocolVersion`, which the
/// server answers with CONNACK 0x01 (v3) / 0x84 (v5); an unknown name is not MQTT at all.
fn protocol_version(name: &[u8], level: u8) -> Result<ProtocolVersion, DecodeError> {
    match (name, level) {
        (b"MQTT", 4) => Ok(ProtocolVersion::V311),
        (b"MQTT", 5) => Ok(ProtocolVersion::V5),
        (b"MQIsdp", 3) => Ok(ProtocolVersion::V31),
        (b"MQTT" | b"MQIsdp", level) => Err(DecodeError::UnsupportedProtocolVersion(level)),
        _ => Err(DecodeError::InvalidProtocolName),
    }
}

/// Looks at a buffered CONNECT without consuming it and tells its protocol version, so that
/// one listener can serve MQTT 3.1, 3.1.1 and 5. `Ok(None)` means more bytes are needed.
pub fn peek_connect_version(buf: &[u8]) -> Result<Option<ProtocolVersion>, DecodeError> {
    let Some((&first, rest)) = buf.split_first() else {
        return Ok(None);
    };
    // MQTT-3.1.0-1: the first packet from the client must be CONNECT.
    if first >> 4 != PacketType::Connect as u8 {
        return Err(DecodeError::FirstPacketNotConnect(first >> 4));
    }
    check_flags(PacketType::Connect, first & 0x0F, ProtocolVersion::V5)?;
    let (remaining, len) = match parse_varint(rest) {
        VarInt::Done(remaining, len) => (remaining, len),
        VarInt::Incomplete => return Ok(None),
        VarInt::TooLong => return Err(DecodeError::MalformedRemainingLength),
    };
    let body = rest.get(len..).unwrap_or_default();
    let Some(&[hi, lo]) = body.get(..2) else {
        return need(remaining, 2);
    };
    let name_len = usize::from(u16::from_be_bytes([hi, lo]));
    // Name, then the level byte.
    let needed = 2 + name_len + 1;
    match (body.get(2..2 + name_len), body.get(2 + name_len)) {
        (Some(name), Some(&level)) if needed <= remaining as usize => {
            protocol_version(name, level).map(Some)
        }
        _ => need(remaining, needed),
    }
}

/// `Ok(None)` if the frame is long enough to hold `needed` bytes (so more input will tell),
/// `Truncated` if the remaining length itself is too short.
fn need(remaining: u32, needed: usize) -> Result<Option<ProtocolVersion>, DecodeError> {
    if (remaining as usize) < needed {
        Err(DecodeError::Truncated)
    } else {
        Ok(None)
    }
}

/// CONNECT (MQTT 3.1.1 §3.1, MQTT 5 §3.1, MQTT 3.1 §3.1).
fn decode_connect(r: &mut Reader) -> Result<Connect, DecodeError> {
    let name = r.binary()?;
    let level = r.u8()?;
    let protocol = protocol_version(&name, level)?;
    let v5 = protocol.is_v5();
    let flags = r.u8()?;
    if flags & 0x01 != 0 {
        return Err(DecodeError::ReservedConnectFlag);
    }
    let will_flag = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 0x03;
    let will_retain = flags & 0x20 != 0;
    let password_flag = flags & 0x40 != 0;
    let username_flag = flags & 0x80 != 0;
    // MQTT-3.1.2-11/13/15: no will QoS or retain without a will; MQTT-3.1.2-14: QoS 3.
    if !will_flag && (will_qos != 0 || will_retain) {
        return Err(DecodeError::InvalidWillFlags);
    }
    let will_qos = QoS::try_from(will_qos).map_err(|_| DecodeError::InvalidWillFlags)?;
    if protocol == ProtocolVersion::V311 && password_flag && !username_flag {
        return Err(DecodeError::PasswordWithoutUsername);
    }
    let keep_alive = r.u16()?;
    let properties = if v5 {
        properties::decode_connect(r)?
    } else {
        Default::default()
    };
    let client_id = r.string()?;
    let will = if will_flag {
        let properties = if v5 {
            properties::decode_will(r)?
        } else {
            Default::default()
        };
        Some(LastWill {
            topic: r.string()?,
            payload: r.binary()?,
            qos: will_qos,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = if username_flag {
        Some(r.string()?)
    } else {
        None
    };
    // Some MQTT 3.1 clients set the password flag without sending a password; mosquitto
    // ignores the flag then, and so do we.
    let password = if password_flag && !(protocol == ProtocolVersion::V31 && r.is_empty()) {
        Some(r.binary()?)
    } else {
        None
    };
    r.finish()?;
    Ok(Connect {
        protocol,
        clean_start: flags & 0x02 != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

/// CONNACK (MQTT 3.1.1 §3.2, MQTT 5 §3.2).
fn decode_connack(r: &mut Reader, version: ProtocolVersion) -> Result<ConnAck, DecodeError> {
    let flags = r.u8()?;
    let code = r.u8()?;
    // MQTT 3.1 has no session-present flag: the byte is reserved and ignored.
    let session_present = match version {
        ProtocolVersion::V31 => false,
        // MQTT-3.2.2-1 / MQTT 5 §3.2.2.1: bits 7-1 are reserved.
        _ if flags & 0xFE != 0 => return Err(DecodeError::InvalidConnAckFlags(flags)),
        _ => flags & 0x01 != 0,
    };
    let properties = if version.is_v5() {
        properties::decode_connack(r)?
    } else {
        Default::default()
    };
    r.finish()?;
    Ok(ConnAck {
        session_present,
        code,
        properties,
    })
}

/// PUBLISH (MQTT 3.1.1 §3.3, MQTT 5 §3.3).
fn decode_publish(
    r: &mut Reader,
    flags: u8,
    version: ProtocolVersion,
) -> Result<Publish, DecodeError> {
    // MQTT-3.3.1-4: both QoS bits set is malformed.
    let qos = QoS::try_from((flags >> 1) & 0x03).map_err(|_| DecodeError::InvalidQoS)?;
    let topic = r.string()?;
    let pkid = if qos == QoS::AtMostOnce {
        None
    } else {
        Some(r.pkid()?)
    };
    let properties = if version.is_v5() {
        properties::decode_publish(r)?
    } else {
        Default::default()
    };
    Ok(Publish {
        dup: flags & 0x08 != 0,
        qos,
        retain: flags & 0x01 != 0,
        topic,
        pkid,
        payload: r.rest(),
        properties,
    })
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP. MQTT 5 §3.4.2.1: remaining length 2 means reason 0
/// without properties, 3 means a reason without properties (§3.4.2.2.1).
fn decode_ack(
    r: &mut Reader,
    packet: PacketType,
    version: ProtocolVersion,
) -> Result<Ack, DecodeError> {
    let pkid = r.pkid()?;
    if !version.is_v5() || r.is_empty() {
        r.finish()?;
        return Ok(Ack::new(pkid));
    }
    let reason_code = r.u8()?;
    let properties = if r.is_empty() {
        Default::default()
    } else {
        properties::decode_ack(r, packet)?
    };
    r.finish()?;
    Ok(Ack {
        pkid,
        reason_code,
        properties,
    })
}

/// The options byte of one SUBSCRIBE filter (MQTT 3.1.1 §3.8.3.1, MQTT 5 §3.8.3.1).
fn subscription_options(
    options: u8,
    version: ProtocolVersion,
) -> Result<SubscriptionOptions, DecodeError> {
    let invalid = DecodeError::InvalidSubscriptionOptions(options);
    let reserved = match version {
        // MQTT 3.1 only says the upper six bits are "not used": tolerate them.
        ProtocolVersion::V31 => 0,
        // MQTT-3.8.3-4: bits 7-2 reserved.
        ProtocolVersion::V311 => 0b1111_1100,
        // MQTT-3.8.3-5: bits 7-6 reserved.
        ProtocolVersion::V5 => 0b1100_0000,
    };
    let retain_handling = (options >> 4) & 0x03;
    if options & reserved != 0 || (version.is_v5() && retain_handling == 3) {
        return Err(invalid);
    }
    let qos = QoS::try_from(options & 0x03).map_err(|_| invalid)?;
    if !version.is_v5() {
        return Ok(SubscriptionOptions::new(qos));
    }
    Ok(SubscriptionOptions {
        qos,
        no_local: options & 0x04 != 0,
        retain_as_published: options & 0x08 != 0,
        retain_handling,
    })
}

/// SUBSCRIBE (MQTT 3.1.1 §3.8, MQTT 5 §3.8).
fn decode_subscribe(r: &mut Reader, version: ProtocolVersion) -> Result<Subscribe, DecodeError> {
    let pkid = r.pkid()?;
    let properties = if version.is_v5() {
        properties::decode_subscribe(r)?
    } else {
        Default::default()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string()?;
        let options = subscription_options(r.u8()?, version)?;
        filters.push((filter, options));
    }
    if filters.is_empty() {
        return Err(DecodeError::EmptySubscribe);
    }
    Ok(Subscribe {
        pkid,
        filters,
        properties,
    })
}

/// SUBACK (MQTT 3.1.1 §3.9, MQTT 5 §3.9).
fn decode_suback(r: &mut Reader, version: ProtocolVersion) -> Result<SubAck, DecodeError> {
    let pkid = r.pkid()?;
    let properties = if version.is_v5() {
        properties::decode_ack(r, PacketType::SubAck)?
    } else {
        Default::default()
    };
    let return_codes = r.rest().to_vec();
    if !version.is_v5() {
        // MQTT-3.9.3-2: only 0x00, 0x01, 0x02 and 0x80 exist in MQTT 3.x.
        if let Some(&code) = return_codes
            .iter()
            .find(|&&c| !matches!(c, 0x00..=0x02 | 0x80))
        {
            return Err(DecodeError::InvalidReturnCode(code));
        }
    }
    Ok(SubAck {
        pkid,
        return_codes,
        properties,
    })
}

/// UNSUBSCRIBE (MQTT 3.1.1 §3.10, MQTT 5 §3.10).
fn decode_unsubscribe(
    r: &mut Reader,
    version: ProtocolVersion,
) -> Result<Unsubscribe, DecodeError> {
    let pkid = r.pkid()?;
    let user_properties = if version.is_v5() {
        properties::decode_unsubscribe(r)?
    } else {
        Vec::new()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(r.string()?);
    }
    if filters.is_empty() {
        return Err(DecodeError::EmptyUnsubscribe);
    }
    Ok(Unsubscribe {
        pkid,
        filters,
        user_properties,
    })
}

/// UNSUBACK (MQTT 3.1.1 §3.11: packet id only; MQTT 5 §3.11: properties and reason codes).
fn decode_unsuback(r: &mut Reader, version: ProtocolVersion) -> Result<UnsubAck, DecodeError> {
    let pkid = r.pkid()?;
    if !version.is_v5() {
        r.finish()?;
        return Ok(UnsubAck::new(pkid, Vec::new()));
    }
    let properties = properties::decode_ack(r, PacketType::UnsubAck)?;
    Ok(UnsubAck {
        pkid,
        reason_codes: r.rest().to_vec(),
        properties,
    })
}

/// DISCONNECT: empty in MQTT 3.x; in MQTT 5 remaining length 0 means reason 0, and below 2
/// means no properties (§3.14.2.1, §3.14.2.2.1).
fn decode_disconnect(r: &mut Reader, version: ProtocolVersion) -> Result<Disconnect, DecodeError> {
    if !version.is_v5() || r.is_empty() {
        r.finish()?;
        return Ok(Disconnect::default());
    }
    let reason_code = r.u8()?;
    let properties = if r.is_empty() {
        Default::default()
    } else {
        properties::decode_disconnect(r)?
    };
    r.finish()?;
    Ok(Disconnect {
        reason_code,
        properties,
    })
}

/// AUTH (MQTT 5 §3.15): the same short forms as DISCONNECT (§3.15.2.1, §3.15.2.2.1).
fn decode_auth(r: &mut Reader) -> Result<Auth, DecodeError> {
    if r.is_empty() {
        return Ok(Auth::default());
    }
    let reason_code = r.u8()?;
    let properties = if r.is_empty() {
        Default::default()
    } else {
        properties::decode_auth(r)?
    };
    r.finish()?;
    Ok(Auth {
        reason_code,
        properties,
    })
}
