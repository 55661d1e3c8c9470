//! OMA LwM2M TLV (content format 11542, LwM2M 1.0 TS §6.4.3): the frame structure, and the
//! value encodings of its resource types.
//!
//! Invariants: decoding never panics and never reads past the buffer; nesting is at most
//! object instance → multiple resource → resource instance (deeper is an error). Integers are
//! minimal two's complement in 1, 2, 4 or 8 bytes both ways (EMQX 5.8.9 encodes positive
//! integers as minimal *unsigned* bytes, so 200 becomes `C8` = −56; docs/lwm2m.md §4.13.4).

use thiserror::Error;

/// The identifier type of a TLV (bits 7-6 of the type byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 00: an object instance holding resources.
    ObjectInstance,
    /// 01: one instance of a multiple resource.
    ResourceInstance,
    /// 10: a multiple resource holding resource instances.
    MultipleResource,
    /// 11: a single resource with its value.
    Resource,
}

impl Kind {
    fn bits(self) -> u8 {
        match self {
            Kind::ObjectInstance => 0b00,
            Kind::ResourceInstance => 0b01,
            Kind::MultipleResource => 0b10,
            Kind::Resource => 0b11,
        }
    }

    fn from_bits(b: u8) -> Kind {
        match b & 0b11 {
            0b00 => Kind::ObjectInstance,
            0b01 => Kind::ResourceInstance,
            0b10 => Kind::MultipleResource,
            _ => Kind::Resource,
        }
    }

    /// Whether this kind holds other TLVs rather than a value.
    pub fn is_container(self) -> bool {
        matches!(self, Kind::ObjectInstance | Kind::MultipleResource)
    }
}

/// One TLV: a value (resource, resource instance) or children (object instance, multiple
/// resource).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    /// What the identifier names.
    pub kind: Kind,
    /// The identifier.
    pub id: u16,
    /// The raw value of a resource or resource instance.
    pub value: Vec<u8>,
    /// The members of an object instance or multiple resource.
    pub children: Vec<Tlv>,
}

impl Tlv {
    /// A resource (or resource instance) with a raw value.
    pub fn value(kind: Kind, id: u16, value: Vec<u8>) -> Tlv {
        Tlv {
            kind,
            id,
            value,
            children: Vec::new(),
        }
    }

    /// An object instance or multiple resource.
    pub fn container(kind: Kind, id: u16, children: Vec<Tlv>) -> Tlv {
        Tlv {
            kind,
            id,
            value: Vec::new(),
            children,
        }
    }
}

/// Why a TLV payload does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TlvError {
    /// The buffer ends inside a header or value.
    #[error("TLV truncated")]
    Truncated,
    /// Containers nested deeper than LwM2M allows, or a container inside the wrong parent.
    #[error("TLV nested too deep")]
    TooDeep,
    /// A value longer than 2^24-1 bytes cannot be framed.
    #[error("TLV value too long")]
    TooLong,
}

/// Decodes a whole TLV payload.
pub fn decode(buf: &[u8]) -> Result<Vec<Tlv>, TlvError> {
    decode_level(buf, 0)
}

fn decode_level(mut buf: &[u8], depth: u8) -> Result<Vec<Tlv>, TlvError> {
    if depth > 2 {
        return Err(TlvError::TooDeep);
    }
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (tlv, rest) = decode_one(buf, depth)?;
        out.push(tlv);
        buf = rest;
    }
    Ok(out)
}

fn take(buf: &[u8], n: usize) -> Result<(&[u8], &[u8]), TlvError> {
    if buf.len() < n {
        return Err(TlvError::Truncated);
    }
    Ok(buf.split_at(n))
}

fn be(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
}

fn decode_one(buf: &[u8], depth: u8) -> Result<(Tlv, &[u8]), TlvError> {
    let (head, rest) = take(buf, 1)?;
    let t = head[0];
    let kind = Kind::from_bits(t >> 6);
    let id_len = if t & 0x20 != 0 { 2 } else { 1 };
    let (id, rest) = take(rest, id_len)?;
    let id = u16::try_from(be(id)).map_err(|_| TlvError::Truncated)?;
    let (len, rest) = match (t >> 3) & 0b11 {
        0 => (usize::from(t & 0b111), rest),
        n => {
            let (l, rest) = take(rest, usize::from(n))?;
            (be(l), rest)
        }
    };
    let (value, rest) = take(rest, len)?;
    let tlv = if kind.is_container() {
        Tlv::container(kind, id, decode_level(value, depth + 1)?)
    } else {
        Tlv::value(kind, id, value.to_vec())
    };
    Ok((tlv, rest))
}

/// Encodes TLVs.
pub fn encode(tlvs: &[Tlv]) -> Result<Vec<u8>, TlvError> {
    let mut out = Vec::new();
    for t in tlvs {
        encode_one(t, &mut out)?;
    }
    Ok(out)
}

fn encode_one(t: &Tlv, out: &mut Vec<u8>) -> Result<(), TlvError> {
    let body = if t.kind.is_container() {
        encode(&t.children)?
    } else {
        t.value.clone()
    };
    let len = body.len();
    let mut ty = t.kind.bits() << 6;
    if t.id > 0xff {
        ty |= 0x20;
    }
    let len_bytes: Vec<u8> = if len < 8 {
        ty |= u8::try_from(len).map_err(|_| TlvError::TooLong)?;
        Vec::new()
    } else if len <= 0xff {
        ty |= 0b01 << 3;
        vec![u8::try_from(len).map_err(|_| TlvError::TooLong)?]
    } else if len <= 0xffff {
        ty |= 0b10 << 3;
        u16::try_from(len)
            .map_err(|_| TlvError::TooLong)?
            .to_be_bytes()
            .to_vec()
    } else if len <= 0xff_ffff {
        ty |= 0b11 << 3;
        let b = u32::try_from(len)
            .map_err(|_| TlvError::TooLong)?
            .to_be_bytes();
        b[1..].to_vec()
    } else {
        return Err(TlvError::TooLong);
    };
    out.push(ty);
    if t.id > 0xff {
        out.extend_from_slice(&t.id.to_be_bytes());
    } else {
        out.push(t.id.to_be_bytes()[1]);
    }
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(&body);
    Ok(())
}

/// An Integer (or Time) value: minimal two's complement in 1, 2, 4 or 8 bytes.
pub fn encode_int(v: i64) -> Vec<u8> {
    if let Ok(x) = i8::try_from(v) {
        x.to_be_bytes().to_vec()
    } else if let Ok(x) = i16::try_from(v) {
        x.to_be_bytes().to_vec()
    } else if let Ok(x) = i32::try_from(v) {
        x.to_be_bytes().to_vec()
    } else {
        v.to_be_bytes().to_vec()
    }
}

/// Reads a signed Integer/Time of 1, 2, 4 or 8 bytes.
pub fn decode_int(b: &[u8]) -> Option<i64> {
    Some(match b.len() {
        1 => i64::from(i8::from_be_bytes([b[0]])),
        2 => i64::from(i16::from_be_bytes([b[0], b[1]])),
        4 => i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        8 => i64::from_be_bytes(b.try_into().ok()?),
        _ => return None,
    })
}

/// Reads an Unsigned Integer (LwM2M 1.1) of 1, 2, 4 or 8 bytes.
pub fn decode_uint(b: &[u8]) -> Option<u64> {
    matches!(b.len(), 1 | 2 | 4 | 8)
        .then(|| b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
}

/// An Unsigned Integer value: minimal big-endian in 1, 2, 4 or 8 bytes.
pub fn encode_uint(v: u64) -> Vec<u8> {
    if let Ok(x) = u8::try_from(v) {
        vec![x]
    } else if let Ok(x) = u16::try_from(v) {
        x.to_be_bytes().to_vec()
    } else if let Ok(x) = u32::try_from(v) {
        x.to_be_bytes().to_vec()
    } else {
        v.to_be_bytes().to_vec()
    }
}

/// A Float value: always 8 bytes (as EMQX: `12345.0` → `40 C8 1C 80 00 00 00 00`).
pub fn encode_float(v: f64) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

/// Reads a 4- or 8-byte IEEE 754 Float.
pub fn decode_float(b: &[u8]) -> Option<f64> {
    match b.len() {
        4 => Some(f64::from(f32::from_be_bytes(b.try_into().ok()?))),
        8 => Some(f64::from_be_bytes(b.try_into().ok()?)),
        _ => None,
    }
}

/// Reads a Boolean (`00`/`01`).
pub fn decode_bool(b: &[u8]) -> Option<bool> {
    match b {
        [0] => Some(false),
        [1] => Some(true),
        _ => None,
    }
}

/// An Objlnk value: object id and instance id, 16 bits each.
pub fn encode_objlnk(object: u16, instance: u16) -> Vec<u8> {
    let mut v = object.to_be_bytes().to_vec();
    v.extend_from_slice(&instance.to_be_bytes());
    v
}

/// Reads an Objlnk.
pub fn decode_objlnk(b: &[u8]) -> Option<(u16, u16)> {
    match b {
        [a, b2, c, d] => Some((u16::from_be_bytes([*a, *b2]), u16::from_be_bytes([*c, *d]))),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
