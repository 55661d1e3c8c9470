//! The MQTT data representations (MQTT 3.1.1 §1.5, MQTT 5 §1.5): integers, Variable Byte
//! Integers, UTF-8 strings and binary data, read from a frame and written to a sink.
//!
//! Owns: [`Reader`], the only code that takes bytes out of a received frame, and [`Sink`],
//! through which every byte of an outgoing frame is either counted or written.
//! Invariants: reading never panics and never reads past the frame (a short field is
//! [`DecodeError::Truncated`]); strings and binary fields are zero-copy slices of the frame;
//! writing through [`Counter`] and through `BytesMut` visits the same fields, so a length
//! computed with one always equals the bytes written with the other.

use super::error::{DecodeError, EncodeError};
use bytes::{Buf, BufMut, BytesMut};
use switchyard_core::{ByteString, Bytes, PacketId};

/// Largest value a Variable Byte Integer holds (MQTT 5 §1.5.5), hence the largest remaining
/// length.
pub(super) const MAX_VARINT: u32 = 268_435_455;

/// Outcome of parsing a Variable Byte Integer from a prefix of a buffer.
pub(super) enum VarInt {
    /// The value and how many bytes encoded it.
    Done(u32, usize),
    /// The buffer ends before the last byte (one without the continuation bit).
    Incomplete,
    /// A fifth byte would be needed: malformed (MQTT-1.5.5 / MQTT 5 §1.5.5).
    TooLong,
}

/// Parses a Variable Byte Integer at the start of `bytes`. Non-minimal encodings are accepted,
/// as mosquitto and most brokers do; only the four-byte limit is enforced.
pub(super) fn parse_varint(bytes: &[u8]) -> VarInt {
    let mut value: u32 = 0;
    for (i, &byte) in bytes.iter().take(4).enumerate() {
        // i < 4, so the shift is at most 21 and seven bits fit below bit 28.
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return VarInt::Done(value, i + 1);
        }
    }
    if bytes.len() >= 4 {
        VarInt::TooLong
    } else {
        VarInt::Incomplete
    }
}

/// Number of bytes the Variable Byte Integer encoding of `value` takes.
pub(super) fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Checks that a string received from a peer is well-formed UTF-8 without U+0000 and wraps it
/// without copying.
pub(super) fn to_string(bytes: Bytes) -> Result<ByteString, DecodeError> {
    // A 0x00 byte can only be U+0000 in UTF-8 (MQTT-1.5.3-2).
    if bytes.contains(&0) {
        return Err(DecodeError::NulInString);
    }
    ByteString::try_from(bytes).map_err(|_| DecodeError::InvalidUtf8)
}

/// A cursor over one frame's body.
pub(super) struct Reader {
    buf: Bytes,
}

impl Reader {
    /// Reads from the body of one frame (everything after the fixed header).
    pub(super) fn new(buf: Bytes) -> Self {
        Reader { buf }
    }

    /// Whether everything has been read.
    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Takes the next `n` bytes.
    pub(super) fn take(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::Truncated);
        }
        Ok(self.buf.split_to(n))
    }

    /// Takes everything left (a PUBLISH payload, SUBACK return codes).
    pub(super) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// Fails if anything is left: the packet has no free-form tail.
    pub(super) fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }

    /// A byte.
    pub(super) fn u8(&mut self) -> Result<u8, DecodeError> {
        if self.buf.is_empty() {
            return Err(DecodeError::Truncated);
        }
        Ok(self.buf.get_u8())
    }

    /// A Two Byte Integer, big-endian (MQTT 5 §1.5.2).
    pub(super) fn u16(&mut self) -> Result<u16, DecodeError> {
        if self.buf.len() < 2 {
            return Err(DecodeError::Truncated);
        }
        Ok(self.buf.get_u16())
    }

    /// A Four Byte Integer, big-endian (MQTT 5 §1.5.3).
    pub(super) fn u32(&mut self) -> Result<u32, DecodeError> {
        if self.buf.len() < 4 {
            return Err(DecodeError::Truncated);
        }
        Ok(self.buf.get_u32())
    }

    /// A Variable Byte Integer (MQTT 5 §1.5.5).
    pub(super) fn varint(&mut self) -> Result<u32, DecodeError> {
        match parse_varint(&self.buf) {
            VarInt::Done(value, len) => {
                self.buf.advance(len);
                Ok(value)
            }
            VarInt::Incomplete => Err(DecodeError::Truncated),
            VarInt::TooLong => Err(DecodeError::MalformedVarInt),
        }
    }

    /// A non-zero packet identifier (MQTT-2.3.1-1).
    pub(super) fn pkid(&mut self) -> Result<PacketId, DecodeError> {
        PacketId::new(self.u16()?).ok_or(DecodeError::ZeroPacketId)
    }

    /// Binary Data: a two-byte length and that many bytes (MQTT 5 §1.5.6).
    pub(super) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// A UTF-8 Encoded String (MQTT-1.5.3-1, MQTT-1.5.3-2).
    pub(super) fn string(&mut self) -> Result<ByteString, DecodeError> {
        let bytes = self.binary()?;
        to_string(bytes)
    }
}

/// Where an encoder puts bytes: a real buffer, or a [`Counter`] that only measures.
pub(super) trait Sink {
    /// Appends raw bytes.
    fn put_slice(&mut self, bytes: &[u8]);

    /// Appends a byte.
    fn put_u8(&mut self, v: u8) {
        self.put_slice(&[v]);
    }

    /// Appends a Two Byte Integer.
    fn put_u16(&mut self, v: u16) {
        self.put_slice(&v.to_be_bytes());
    }

    /// Appends a Four Byte Integer.
    fn put_u32(&mut self, v: u32) {
        self.put_slice(&v.to_be_bytes());
    }
}

impl Sink for BytesMut {
    fn put_slice(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    fn put_u8(&mut self, v: u8) {
        BufMut::put_u8(self, v);
    }
}

/// A sink that counts the bytes it is given.
#[derive(Default)]
pub(super) struct Counter(pub(super) usize);

impl Sink for Counter {
    fn put_slice(&mut self, bytes: &[u8]) {
        self.0 = self.0.saturating_add(bytes.len());
    }
}

/// Writes a Variable Byte Integer; values above [`MAX_VARINT`] are the caller's bug and are
/// rejected before this is called.
pub(super) fn put_varint<S: Sink>(s: &mut S, value: u32) {
    let mut x = value;
    loop {
        // Truncation to the low seven bits is the encoding.
        let mut byte = (x & 0x7F) as u8;
        x >>= 7;
        if x > 0 {
            byte |= 0x80;
        }
        s.put_u8(byte);
        if x == 0 {
            break;
        }
    }
}

/// Writes a length as a Variable Byte Integer, refusing lengths the encoding cannot hold.
pub(super) fn put_length<S: Sink>(s: &mut S, len: usize) -> Result<(), EncodeError> {
    match u32::try_from(len) {
        Ok(v) if v <= MAX_VARINT => {
            put_varint(s, v);
            Ok(())
        }
        _ => Err(EncodeError::PacketTooLarge { size: len }),
    }
}

/// Writes Binary Data with its two-byte length (at most 65,535 bytes, MQTT 5 §1.5.6).
pub(super) fn put_binary<S: Sink>(s: &mut S, bytes: &[u8]) -> Result<(), EncodeError> {
    let len =
        u16::try_from(bytes.len()).map_err(|_| EncodeError::FieldTooLong { len: bytes.len() })?;
    s.put_u16(len);
    s.put_slice(bytes);
    Ok(())
}

/// Writes a UTF-8 Encoded String with its two-byte length.
pub(super) fn put_string<S: Sink>(s: &mut S, string: &str) -> Result<(), EncodeError> {
    put_binary(s, string.as_bytes())
}
