//! Fuzz target for the MQTT codec (DESIGN.md habit 10: decode→encode→decode per codec).
//!
//! Arbitrary bytes are decoded as a stream under each protocol version. Decoding must never
//! panic; every packet it accepts must encode, `encoded_len` must match the bytes written, and
//! the encoding must decode back to an equal packet as exactly one frame.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchyard_mqtt::codec::{
    decode_packet, encode_packet, encoded_len, peek_connect_version, ProtocolVersion,
};

/// Large enough that the size limit rarely hides a decoder path.
const MAX_PACKET_SIZE: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let _ = peek_connect_version(data);
    for version in [
        ProtocolVersion::V31,
        ProtocolVersion::V311,
        ProtocolVersion::V5,
    ] {
        let mut buf = BytesMut::from(data);
        while let Ok(Some(packet)) = decode_packet(&mut buf, version, MAX_PACKET_SIZE) {
            let mut out = BytesMut::new();
            if let Err(e) = encode_packet(&packet, version, &mut out) {
                panic!("decoded packet does not encode: {e}: {packet:?}");
            }
            assert_eq!(encoded_len(&packet, version), out.len(), "{packet:?}");
            match decode_packet(&mut out, version, MAX_PACKET_SIZE) {
                Ok(Some(again)) => assert_eq!(again, packet),
                other => panic!("re-encoded {packet:?} decodes as {other:?}"),
            }
            assert!(
                out.is_empty(),
                "re-encoding of {packet:?} is more than one frame"
            );
        }
    }
});
