//! Hand-rolled MQTT 3.1.1 client packets: just what a load generator sends, and a framer that
//! reads just what it receives.
//!
//! Owns: the byte layout of CONNECT, SUBSCRIBE, PUBLISH, the four publish acks, PINGREQ and
//! DISCONNECT (MQTT 3.1.1 §3), and the framing of received bytes into [`Frame`]s borrowing the
//! buffer. Kept separate from the broker's codec on purpose: the tool measures any broker, and
//! must not be the bottleneck (no allocation per message, no property parsing).
//! Invariant: [`parse`] never panics on any input; it returns `Ok(None)` until a whole frame is
//! buffered and an error for a malformed remaining length.

use bytes::{BufMut, BytesMut};

/// PUBACK first byte (MQTT 3.1.1 §3.4).
pub const PUBACK: u8 = 0x40;
/// PUBREC first byte (§3.5).
pub const PUBREC: u8 = 0x50;
/// PUBREL first byte, flags 0b0010 (MQTT-3.6.1-1).
pub const PUBREL: u8 = 0x62;
/// PUBCOMP first byte (§3.7).
pub const PUBCOMP: u8 = 0x70;

/// A received packet, borrowing the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// CONNACK with its return code (0 = accepted).
    ConnAck {
        /// Connect return code (MQTT 3.1.1 §3.2.2.3).
        code: u8,
    },
    /// SUBACK with the granted QoS (or 0x80) per filter.
    SubAck {
        /// Packet identifier.
        pkid: u16,
        /// Return codes.
        codes: &'a [u8],
    },
    /// An application message.
    Publish {
        /// Delivered QoS.
        qos: u8,
        /// Packet identifier (0 for QoS 0).
        pkid: u16,
        /// The payload bytes.
        payload: &'a [u8],
    },
    /// PUBACK.
    PubAck(u16),
    /// PUBREC.
    PubRec(u16),
    /// PUBREL.
    PubRel(u16),
    /// PUBCOMP.
    PubComp(u16),
    /// PINGRESP.
    PingResp,
    /// Anything else (first byte kept for diagnostics).
    Other(u8),
}

/// The peer sent bytes that are not MQTT.
#[derive(Debug, PartialEq, Eq)]
pub enum WireError {
    /// Remaining length longer than four bytes (MQTT 3.1.1 §2.2.3).
    BadLength,
    /// A packet too short for its type.
    Truncated(u8),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::BadLength => write!(f, "malformed remaining length"),
            WireError::Truncated(t) => write!(f, "truncated packet, first byte {t:#04x}"),
        }
    }
}

impl std::error::Error for WireError {}

fn put_len(buf: &mut BytesMut, mut len: usize) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if len == 0 {
            break;
        }
    }
}

fn put_str(buf: &mut BytesMut, s: &[u8]) {
    buf.put_u16(u16::try_from(s.len()).unwrap_or(u16::MAX));
    buf.put_slice(&s[..s.len().min(usize::from(u16::MAX))]);
}

/// Appends a CONNECT (MQTT 3.1.1, no will) with a username and password when given.
pub fn connect_as(
    buf: &mut BytesMut,
    client_id: &str,
    keep_alive: u16,
    clean: bool,
    credentials: Option<(&str, &str)>,
) {
    let id = client_id.as_bytes();
    let creds_len = credentials.map_or(0, |(u, p)| 4 + u.len() + p.len());
    let mut flags = if clean { 0x02 } else { 0x00 };
    if credentials.is_some() {
        flags |= 0xC0;
    }
    buf.put_u8(0x10);
    put_len(buf, 10 + 2 + id.len() + creds_len);
    put_str(buf, b"MQTT");
    buf.put_u8(4);
    buf.put_u8(flags);
    buf.put_u16(keep_alive);
    put_str(buf, id);
    if let Some((u, p)) = credentials {
        put_str(buf, u.as_bytes());
        put_str(buf, p.as_bytes());
    }
}

/// Appends a SUBSCRIBE for one filter.
pub fn subscribe(buf: &mut BytesMut, pkid: u16, filter: &str, qos: u8) {
    buf.put_u8(0x82);
    put_len(buf, 2 + 2 + filter.len() + 1);
    buf.put_u16(pkid);
    put_str(buf, filter.as_bytes());
    buf.put_u8(qos);
}

/// Appends a PUBLISH; `pkid` is ignored for QoS 0.
pub fn publish(buf: &mut BytesMut, topic: &str, qos: u8, pkid: u16, payload: &[u8]) {
    buf.put_u8(0x30 | (qos << 1));
    let id_len = if qos > 0 { 2 } else { 0 };
    put_len(buf, 2 + topic.len() + id_len + payload.len());
    put_str(buf, topic.as_bytes());
    if qos > 0 {
        buf.put_u16(pkid);
    }
    buf.put_slice(payload);
}

/// Appends a two-byte ack (PUBACK, PUBREC, PUBREL or PUBCOMP).
pub fn ack(buf: &mut BytesMut, first: u8, pkid: u16) {
    buf.put_u8(first);
    buf.put_u8(2);
    buf.put_u16(pkid);
}

/// Appends a PINGREQ.
pub fn pingreq(buf: &mut BytesMut) {
    buf.put_slice(&[0xC0, 0]);
}

/// Appends a DISCONNECT.
pub fn disconnect(buf: &mut BytesMut) {
    buf.put_slice(&[0xE0, 0]);
}

fn u16_at(b: &[u8], at: usize, first: u8) -> Result<u16, WireError> {
    match b.get(at..at + 2) {
        Some(&[hi, lo]) => Ok(u16::from_be_bytes([hi, lo])),
        _ => Err(WireError::Truncated(first)),
    }
}

/// Parses one frame from the front of `buf`: `Ok(Some((frame, consumed)))`, or `Ok(None)` when
/// more bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, WireError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let mut len = 0usize;
    let mut header = 1usize;
    loop {
        let Some(&byte) = buf.get(header) else {
            return Ok(None);
        };
        len |= usize::from(byte & 0x7F) << (7 * (header - 1));
        header += 1;
        if byte & 0x80 == 0 {
            break;
        }
        if header > 4 {
            return Err(WireError::BadLength);
        }
    }
    let total = header + len;
    let Some(body) = buf.get(header..total) else {
        return Ok(None);
    };
    let frame = match first >> 4 {
        2 => Frame::ConnAck {
            code: *body.get(1).ok_or(WireError::Truncated(first))?,
        },
        3 => {
            let qos = (first >> 1) & 0x03;
            let topic_len = usize::from(u16_at(body, 0, first)?);
            let mut at = 2 + topic_len;
            let mut pkid = 0;
            if qos > 0 {
                pkid = u16_at(body, at, first)?;
                at += 2;
            }
            let payload = body.get(at..).ok_or(WireError::Truncated(first))?;
            Frame::Publish { qos, pkid, payload }
        }
        4 => Frame::PubAck(u16_at(body, 0, first)?),
        5 => Frame::PubRec(u16_at(body, 0, first)?),
        6 => Frame::PubRel(u16_at(body, 0, first)?),
        7 => Frame::PubComp(u16_at(body, 0, first)?),
        9 => Frame::SubAck {
            pkid: u16_at(body, 0, first)?,
            codes: body.get(2..).unwrap_or_default(),
        },
        13 => Frame::PingResp,
        _ => Frame::Other(first),
    };
    Ok(Some((frame, total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(buf: &[u8]) -> Frame<'_> {
        match parse(buf) {
            Ok(Some((f, n))) => {
                assert_eq!(n, buf.len());
                f
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn publish_round_trips_through_the_framer() {
        let payload = vec![7u8; 300];
        for qos in 0..=2 {
            let mut b = BytesMut::new();
            publish(&mut b, "bench/1", qos, 42, &payload);
            let pkid = if qos > 0 { 42 } else { 0 };
            assert_eq!(
                one(&b),
                Frame::Publish {
                    qos,
                    pkid,
                    payload: &payload
                }
            );
            // Every strict prefix is "need more", never an error.
            for cut in 0..b.len() {
                assert_eq!(parse(&b[..cut]), Ok(None));
            }
        }
    }

    #[test]
    fn acks_and_control_packets() {
        let mut b = BytesMut::new();
        for (first, want) in [
            (PUBACK, Frame::PubAck(9)),
            (PUBREC, Frame::PubRec(9)),
            (PUBREL, Frame::PubRel(9)),
            (PUBCOMP, Frame::PubComp(9)),
        ] {
            b.clear();
            ack(&mut b, first, 9);
            assert_eq!(one(&b), want);
        }
        assert_eq!(one(&[0x20, 2, 0, 5]), Frame::ConnAck { code: 5 });
        assert_eq!(
            one(&[0x90, 3, 0, 1, 1]),
            Frame::SubAck {
                pkid: 1,
                codes: &[1]
            }
        );
        assert_eq!(one(&[0xD0, 0]), Frame::PingResp);
    }

    #[test]
    fn connect_and_subscribe_layout() {
        let mut b = BytesMut::new();
        connect_as(&mut b, "c1", 60, true, None);
        assert_eq!(
            &b[..],
            &[0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 2, b'c', b'1']
        );
        b.clear();
        subscribe(&mut b, 1, "a/#", 1);
        assert_eq!(&b[..], &[0x82, 8, 0, 1, 0, 3, b'a', b'/', b'#', 1]);
        b.clear();
        connect_as(&mut b, "c", 60, true, Some(("u", "pw")));
        assert_eq!(
            &b[..],
            &[
                0x10, 20, 0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 60, 0, 1, b'c', 0, 1, b'u', 0,
                2, b'p', b'w'
            ]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(
            parse(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF]),
            Err(WireError::BadLength)
        );
        assert_eq!(parse(&[0x30, 1, 0]), Err(WireError::Truncated(0x30)));
        assert_eq!(
            parse(&[0x32, 4, 0, 1, b'a', 0]),
            Err(WireError::Truncated(0x32))
        );
        assert_eq!(parse(&[0x40, 0]), Err(WireError::Truncated(0x40)));
    }
}
