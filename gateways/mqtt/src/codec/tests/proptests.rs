//! Property tests: every valid packet round-trips in every version with `encoded_len` exact,
//! and arbitrary or mutated bytes never panic the decoder and, when accepted, round-trip.

use super::super::wire::{parse_varint, VarInt};
use super::strategies::packet;
use super::*;
use proptest::collection::vec;
use proptest::prelude::*;

const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V31,
    ProtocolVersion::V311,
    ProtocolVersion::V5,
];

fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![
        Just(ProtocolVersion::V31),
        Just(ProtocolVersion::V311),
        Just(ProtocolVersion::V5)
    ]
}

/// A version and a packet valid in it.
fn versioned_packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    version().prop_flat_map(|v| (Just(v), packet(v)))
}

/// Decodes every frame in `bytes` until the buffer runs dry or an error; each accepted packet
/// must encode and decode back to itself. Returns how many packets were accepted.
fn decode_all_and_reencode(bytes: &[u8], version: ProtocolVersion) -> usize {
    let mut buf = BytesMut::from(bytes);
    let mut accepted = 0;
    while let Ok(Some(packet)) = decode_packet(&mut buf, version, MAX) {
        accepted += 1;
        let encoded = encode(&packet, version);
        let again = decode_one(&encoded, version).expect("re-encoded packet decodes");
        assert_eq!(again, packet);
    }
    accepted
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn round_trip((version, packet) in versioned_packet()) {
        let mut out = BytesMut::new();
        encode_packet(&packet, version, &mut out).expect("valid packets encode");
        prop_assert_eq!(encoded_len(&packet, version), out.len());
        let mut buf = out.clone();
        let decoded = decode_packet(&mut buf, version, out.len()).expect("decodes");
        prop_assert_eq!(decoded.as_ref(), Some(&packet));
        prop_assert!(buf.is_empty());
        if let Packet::Connect(connect) = &packet {
            prop_assert_eq!(peek_connect_version(&out).expect("peek"), Some(connect.protocol));
        }
    }

    #[test]
    fn round_trip_in_a_stream((version, packets) in version().prop_flat_map(|v| {
        (Just(v), vec(packet(v), 1..6))
    })) {
        let bytes: Vec<u8> = packets.iter().flat_map(|p| encode(p, version)).collect();
        let mut buf = BytesMut::from(&bytes[..]);
        for packet in &packets {
            let decoded = decode_packet(&mut buf, version, MAX).expect("decodes");
            prop_assert_eq!(decoded.as_ref(), Some(packet));
        }
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        for version in VERSIONS {
            decode_all_and_reencode(&bytes, version);
        }
        let _ = peek_connect_version(&bytes);
    }

    #[test]
    fn framed_arbitrary_bodies_never_panic(first in any::<u8>(), body in vec(any::<u8>(), 0..256)) {
        // Random bytes rarely get past the fixed header; framing them reaches every decoder.
        let bytes = frame(first, &body);
        for version in VERSIONS {
            decode_all_and_reencode(&bytes, version);
        }
    }

    #[test]
    fn mutated_packets_never_panic(
        (version, packet) in versioned_packet(),
        mutations in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encode(&packet, version);
        for (index, byte) in mutations {
            let i = index.index(bytes.len());
            bytes[i] = byte;
        }
        decode_all_and_reencode(&bytes, version);
    }

    #[test]
    fn truncated_bodies_never_panic((version, packet) in versioned_packet(), cut in any::<prop::sample::Index>()) {
        let bytes = encode(&packet, version);
        let body = &bytes[header_len(&bytes)..];
        let cut = cut.index(body.len() + 1);
        decode_all_and_reencode(&frame(bytes[0], &body[..cut]), version);
    }
}

/// Length of the fixed header of an encoded frame.
fn header_len(bytes: &[u8]) -> usize {
    match parse_varint(bytes.get(1..).unwrap_or_default()) {
        VarInt::Done(_, n) => 1 + n,
        _ => panic!("encoder wrote a bad remaining length"),
    }
}

#[test]
fn every_version_round_trips_its_full_samples() {
    for version in VERSIONS {
        for packet in super::strategies::full_samples(version) {
            let bytes = encode(&packet, version);
            assert_eq!(decode_one(&bytes, version).expect("decodes"), packet);
        }
    }
}
