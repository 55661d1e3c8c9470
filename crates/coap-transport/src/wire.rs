//! Wire helpers on top of coap-lite's message types: response/method codes by number, a strict
//! format check that coap-lite's decoder leaves out (RFC 7252 §3: version, token length, empty
//! messages, a payload marker with no payload), option value encodings (uint, Block), URI and
//! query access, and the critical-option check (RFC 7252 §5.4.1).
//!
//! Invariant: nothing here panics on peer input; every length and offset is checked.

use coap_lite::{CoapOption, MessageClass, MessageType, Packet};

/// CoAP codes as bytes (`class << 5 | detail`), RFC 7252 §12.1 and EMQX's 2.07.
pub mod code {
    /// 0.00 Empty message.
    pub const EMPTY: u8 = 0x00;
    /// 0.01 GET.
    pub const GET: u8 = 0x01;
    /// 0.02 POST.
    pub const POST: u8 = 0x02;
    /// 0.03 PUT.
    pub const PUT: u8 = 0x03;
    /// 0.04 DELETE.
    pub const DELETE: u8 = 0x04;
    /// 2.01 Created.
    pub const CREATED: u8 = 0x41;
    /// 2.02 Deleted.
    pub const DELETED: u8 = 0x42;
    /// 2.04 Changed.
    pub const CHANGED: u8 = 0x44;
    /// 2.05 Content.
    pub const CONTENT: u8 = 0x45;
    /// 2.07: EMQX's "nocontent" answer to an unsubscribe (not an RFC 7252 code).
    pub const NO_CONTENT: u8 = 0x47;
    /// 2.31 Continue (RFC 7959 §2.9.1).
    pub const CONTINUE: u8 = 0x5F;
    /// 4.00 Bad Request.
    pub const BAD_REQUEST: u8 = 0x80;
    /// 4.01 Unauthorized.
    pub const UNAUTHORIZED: u8 = 0x81;
    /// 4.02 Bad Option.
    pub const BAD_OPTION: u8 = 0x82;
    /// 4.03 Forbidden.
    pub const FORBIDDEN: u8 = 0x83;
    /// 4.04 Not Found.
    pub const NOT_FOUND: u8 = 0x84;
    /// 4.05 Method Not Allowed.
    pub const METHOD_NOT_ALLOWED: u8 = 0x85;
    /// 4.08 Request Entity Incomplete (RFC 7959 §2.9.2).
    pub const REQUEST_ENTITY_INCOMPLETE: u8 = 0x88;
    /// 4.13 Request Entity Too Large.
    pub const REQUEST_ENTITY_TOO_LARGE: u8 = 0x8D;
    /// 5.03 Service Unavailable.
    pub const SERVICE_UNAVAILABLE: u8 = 0xA3;
}

/// Option numbers this transport and its users understand; an unknown *critical* (odd)
/// option in a request is answered 4.02 (RFC 7252 §5.4.1).
const KNOWN_OPTIONS: [u16; 20] = [
    1, 3, 4, 5, 6, 7, 8, 9, 11, 12, 14, 15, 17, 20, 23, 27, 28, 35, 39, 60,
];

/// The code byte of a message.
pub fn code_of(p: &Packet) -> u8 {
    u8::from(p.header.code)
}

/// Sets the code byte of a message.
pub fn set_code(p: &mut Packet, code: u8) {
    p.header.code = MessageClass::from(code);
}

/// "c.dd" notation of a code, for logs.
pub fn code_string(code: u8) -> String {
    format!("{}.{:02}", code >> 5, code & 0x1f)
}

/// Whether a code is a request method (class 0, non-zero).
pub fn is_request(code: u8) -> bool {
    code != 0 && code >> 5 == 0
}

/// Whether a code is a response (classes 2, 4, 5).
pub fn is_response(code: u8) -> bool {
    matches!(code >> 5, 2 | 4 | 5)
}

/// Why a datagram was not accepted as a CoAP message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than a header or a version other than 1: silently ignored (RFC 7252 §3).
    #[error("not a CoAP 1 message")]
    Ignore,
    /// A message format error (RFC 7252 §3, §4.2/§4.3): rejected with RST when CON or NON.
    #[error("message format error: {reason}")]
    Reject {
        /// Message id of the offending message.
        message_id: u16,
        /// Its type.
        message_type: MessageType,
        /// What was wrong.
        reason: &'static str,
    },
}

fn message_type(bits: u8) -> MessageType {
    match bits & 0x3 {
        0 => MessageType::Confirmable,
        1 => MessageType::NonConfirmable,
        2 => MessageType::Acknowledgement,
        _ => MessageType::Reset,
    }
}

/// Decodes one datagram. Stricter than `Packet::from_bytes`, which accepts a trailing payload
/// marker and content in an empty message.
pub fn decode(buf: &[u8]) -> Result<Packet, DecodeError> {
    if buf.len() < 4 || buf[0] >> 6 != 1 {
        return Err(DecodeError::Ignore);
    }
    let message_id = u16::from_be_bytes([buf[2], buf[3]]);
    let message_type = message_type(buf[0] >> 4);
    let reject = |reason| DecodeError::Reject {
        message_id,
        message_type,
        reason,
    };
    check_format(buf).map_err(reject)?;
    Packet::from_bytes(buf).map_err(|_| reject("malformed options"))
}

fn check_format(buf: &[u8]) -> Result<(), &'static str> {
    let tkl = usize::from(buf[0] & 0x0f);
    if tkl > 8 {
        return Err("token length above 8");
    }
    if buf[1] == code::EMPTY && buf.len() != 4 {
        return Err("empty message with content");
    }
    let mut i = 4 + tkl;
    if i > buf.len() {
        return Err("truncated token");
    }
    while i < buf.len() {
        let b = buf[i];
        if b == 0xff {
            return if i + 1 == buf.len() {
                Err("payload marker without payload")
            } else {
                Ok(())
            };
        }
        i += 1;
        i = skip_ext(buf, i, b >> 4)?;
        let (len, next) = read_ext(buf, i, b & 0x0f)?;
        i = next.checked_add(len).ok_or("option length")?;
        if i > buf.len() {
            return Err("truncated option");
        }
    }
    Ok(())
}

fn skip_ext(buf: &[u8], i: usize, nibble: u8) -> Result<usize, &'static str> {
    read_ext(buf, i, nibble).map(|(_, next)| next)
}

fn read_ext(buf: &[u8], i: usize, nibble: u8) -> Result<(usize, usize), &'static str> {
    match nibble {
        13 => buf
            .get(i)
            .map(|b| (usize::from(*b) + 13, i + 1))
            .ok_or("truncated option header"),
        14 => match (buf.get(i), buf.get(i + 1)) {
            (Some(a), Some(b)) => Ok((usize::from(u16::from_be_bytes([*a, *b])) + 269, i + 2)),
            _ => Err("truncated option header"),
        },
        15 => Err("reserved option nibble 15"),
        n => Ok((usize::from(n), i)),
    }
}

/// Encodes an option value as a minimal big-endian unsigned integer (RFC 7252 §3.2).
pub fn uint_bytes(v: u32) -> Vec<u8> {
    let b = v.to_be_bytes();
    let skip = b.iter().take_while(|x| **x == 0).count();
    b[skip..].to_vec()
}

/// Reads an unsigned integer option value of at most 4 bytes.
pub fn read_uint(v: &[u8]) -> Option<u32> {
    if v.len() > 4 {
        return None;
    }
    Some(v.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
}

/// The first value of a uint option, `Some(Err)` when malformed.
pub fn uint_option(p: &Packet, opt: CoapOption) -> Option<Result<u32, ()>> {
    p.get_first_option(opt).map(|v| read_uint(v).ok_or(()))
}

/// Sets (replaces) a uint option.
pub fn set_uint_option(p: &mut Packet, opt: CoapOption, v: u32) {
    p.clear_option(opt);
    p.add_option(opt, uint_bytes(v));
}

/// A Block1/Block2 option value (RFC 7959 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// Block number.
    pub num: u32,
    /// More blocks follow.
    pub more: bool,
    /// Size exponent: the block size is 2^(szx+4), 0..=6.
    pub szx: u8,
}

impl Block {
    /// Parses a Block option value; SZX 7 and values over 3 bytes are errors.
    pub fn parse(v: &[u8]) -> Option<Block> {
        if v.len() > 3 {
            return None;
        }
        let n = read_uint(v)?;
        let szx = u8::try_from(n & 0x7).ok()?;
        if szx == 7 {
            return None;
        }
        Some(Block {
            num: n >> 4,
            more: n & 0x8 != 0,
            szx,
        })
    }

    /// The block size in bytes.
    pub fn size(self) -> usize {
        1usize << (usize::from(self.szx) + 4)
    }

    /// Byte offset of this block.
    pub fn offset(self) -> Option<usize> {
        usize::try_from(self.num).ok()?.checked_mul(self.size())
    }

    /// The option value.
    pub fn to_bytes(self) -> Vec<u8> {
        uint_bytes((self.num << 4) | (u32::from(self.more) << 3) | u32::from(self.szx))
    }

    /// The SZX for a block size (a power of two in 16..=1024), rounding down.
    pub fn szx_for(size: usize) -> u8 {
        let mut szx = 6u8;
        while szx > 0 && (1usize << (usize::from(szx) + 4)) > size {
            szx -= 1;
        }
        szx
    }
}

/// A Block option of a message: `None` when absent, `Some(Err)` when malformed.
pub fn block_option(p: &Packet, opt: CoapOption) -> Option<Result<Block, ()>> {
    p.get_first_option(opt).map(|v| Block::parse(v).ok_or(()))
}

/// The Uri-Path segments, `Err` if one is not UTF-8.
#[allow(clippy::result_unit_err)]
pub fn uri_path(p: &Packet) -> Result<Vec<String>, ()> {
    strings(p, CoapOption::UriPath)
}

/// The Uri-Query parts, `Err` if one is not UTF-8.
#[allow(clippy::result_unit_err)]
pub fn uri_query(p: &Packet) -> Result<Vec<String>, ()> {
    strings(p, CoapOption::UriQuery)
}

fn strings(p: &Packet, opt: CoapOption) -> Result<Vec<String>, ()> {
    match p.get_option(opt) {
        None => Ok(Vec::new()),
        Some(list) => list
            .iter()
            .map(|v| String::from_utf8(v.clone()).map_err(|_| ()))
            .collect(),
    }
}

/// Identifies a request's target resource for block-wise transfers: its path and query.
pub fn resource_key(p: &Packet) -> String {
    let mut key = String::new();
    for (num, values) in p.options() {
        if *num == 11 || *num == 15 {
            for v in values {
                key.push(if *num == 11 { '/' } else { '?' });
                key.push_str(&String::from_utf8_lossy(v));
            }
        }
    }
    key
}

/// The first unknown critical option of a message, if any (RFC 7252 §5.4.1).
pub fn unknown_critical_option(p: &Packet) -> Option<u16> {
    p.options()
        .filter(|(_, v)| !v.is_empty())
        .map(|(n, _)| *n)
        .find(|n| n % 2 == 1 && !KNOWN_OPTIONS.contains(n))
}

/// Percent-decodes a URI component (`%23` → `#`); invalid escapes are kept as written.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_errors_are_rejected() {
        // Payload marker with no payload.
        assert!(matches!(
            decode(&[0x40, 0x01, 0, 1, 0xff]),
            Err(DecodeError::Reject { message_id: 1, .. })
        ));
        // Token length 9.
        assert!(matches!(
            decode(&[0x49, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(DecodeError::Reject { .. })
        ));
        // Empty message with a token.
        assert!(matches!(
            decode(&[0x41, 0x00, 0, 3, 7]),
            Err(DecodeError::Reject { .. })
        ));
        // Version 2 and short datagrams are ignored.
        assert_eq!(decode(&[0x80, 0x01, 0, 1]), Err(DecodeError::Ignore));
        assert_eq!(decode(&[0x40, 0x01]), Err(DecodeError::Ignore));
        assert!(decode(&[0x40, 0x01, 0, 1, 0xff, b'x']).is_ok());
    }

    #[test]
    fn block_values_round_trip() {
        let b = Block {
            num: 5,
            more: true,
            szx: 6,
        };
        assert_eq!(Block::parse(&b.to_bytes()), Some(b));
        assert_eq!(b.size(), 1024);
        assert_eq!(Block::parse(&[0x07]), None);
        assert_eq!(Block::szx_for(1024), 6);
        assert_eq!(Block::szx_for(100), 2);
        assert_eq!(Block::szx_for(1), 0);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a/%23"), "a/#");
        assert_eq!(percent_decode("%2B/x"), "+/x");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
