//! Codec tests: spec byte vectors, framing, malformed input, property-based round trips, and
//! mqttbytes 0.6 as an oracle (with its known defects pinned).
//!
//! Helpers here decode exactly one frame and check the codec's invariants on the way
//! (one frame consumed, `encoded_len` equals the bytes written).

mod framing;
mod malformed;
mod mqttbytes_defects;
mod oracle;
mod proptests;
mod strategies;
mod vectors;

use super::*;
use bytes::BytesMut;
use switchyard_core::PacketId;

/// Limit used where the test is not about the limit.
pub(super) const MAX: usize = 1 << 20;

/// A packet id from a literal.
pub(super) fn pkid(n: u16) -> PacketId {
    PacketId::new(n).expect("test packet ids are non-zero")
}

/// Decodes `bytes`, which must hold exactly one whole frame.
pub(super) fn decode_one(bytes: &[u8], version: ProtocolVersion) -> Result<Packet, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    match decode_packet(&mut buf, version, MAX)? {
        Some(packet) => {
            assert!(
                buf.is_empty(),
                "one frame consumed, {} bytes left",
                buf.len()
            );
            Ok(packet)
        }
        None => panic!("frame incomplete: {bytes:02x?}"),
    }
}

/// Encodes `packet`, checking `encoded_len` against what was written.
pub(super) fn encode(packet: &Packet, version: ProtocolVersion) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_packet(packet, version, &mut out).expect("packet encodes");
    assert_eq!(
        encoded_len(packet, version),
        out.len(),
        "encoded_len of {packet:?}"
    );
    out.to_vec()
}

/// `bytes` decodes to `packet`, and `packet` encodes back to exactly `bytes`.
pub(super) fn assert_vector(bytes: &[u8], packet: &Packet, version: ProtocolVersion) {
    let decoded = decode_one(bytes, version).expect("vector decodes");
    assert_eq!(&decoded, packet, "decoding {bytes:02x?}");
    assert_eq!(encode(packet, version), bytes, "encoding {packet:?}");
}

/// `bytes` decodes to `packet` (a legal but not the shortest form, so it is not re-encoded to
/// the same bytes), and `packet` survives a round trip.
pub(super) fn assert_decodes(bytes: &[u8], packet: &Packet, version: ProtocolVersion) {
    let decoded = decode_one(bytes, version).expect("vector decodes");
    assert_eq!(&decoded, packet, "decoding {bytes:02x?}");
    let again = decode_one(&encode(packet, version), version).expect("re-encoding decodes");
    assert_eq!(&again, packet);
}

/// Builds a frame from a first byte and a body, computing the remaining length.
pub(super) fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.extend_from_slice(&[first]);
    super::wire::put_length(&mut out, body.len()).expect("test bodies fit");
    out.extend_from_slice(body);
    out.to_vec()
}

/// An MQTT string: two-byte length, then the bytes.
pub(super) fn s(text: &str) -> Vec<u8> {
    let mut out = u16::try_from(text.len())
        .expect("short test string")
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(text.as_bytes());
    out
}

/// Concatenates byte pieces.
pub(super) fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}
