//! Framing: remaining-length boundaries, partial buffering, several packets per buffer, the
//! size limit, peeking at CONNECT, and the tokio-util adapter.

use super::super::wire::{parse_varint, put_varint, VarInt};
use super::*;
use switchyard_core::{Bytes, QoS};
use tokio_util::codec::{Decoder, Encoder};

const V311: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;

/// MQTT 3.1.1 Table 2.4 / MQTT 5 Table 1-1: the boundaries of each encoded length.
const BOUNDARIES: [(u32, &[u8]); 8] = [
    (0, &[0x00]),
    (127, &[0x7F]),
    (128, &[0x80, 0x01]),
    (16_383, &[0xFF, 0x7F]),
    (16_384, &[0x80, 0x80, 0x01]),
    (2_097_151, &[0xFF, 0xFF, 0x7F]),
    (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
    (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
];

#[test]
fn variable_byte_integer_boundaries() {
    for (value, encoded) in BOUNDARIES {
        let mut out = BytesMut::new();
        put_varint(&mut out, value);
        assert_eq!(&out[..], encoded, "encoding {value}");
        assert!(
            matches!(parse_varint(encoded), VarInt::Done(v, n) if v == value && n == encoded.len())
        );
        assert_eq!(
            super::super::wire::varint_len(value as usize),
            encoded.len()
        );
    }
    assert!(matches!(
        parse_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
        VarInt::TooLong
    ));
    assert!(matches!(parse_varint(&[0xFF, 0xFF]), VarInt::Incomplete));
}

/// A QoS 0 PUBLISH to "t" whose remaining length is exactly `remaining`. The payload is
/// zeroed so that even the 256 MB ones stay untouched, lazily mapped memory.
fn publish_with_remaining(remaining: usize) -> Packet {
    Packet::Publish(Publish::new("t", Bytes::from(vec![0; remaining - 3])))
}

#[test]
fn remaining_length_boundaries_round_trip() {
    for (remaining, encoded) in BOUNDARIES.iter().skip(1).take(6) {
        let remaining = *remaining as usize;
        let packet = publish_with_remaining(remaining);
        let bytes = encode(&packet, V311);
        assert_eq!(&bytes[1..1 + encoded.len()], *encoded);
        assert_eq!(bytes.len(), 1 + encoded.len() + remaining);
        let mut buf = BytesMut::from(&bytes[..]);
        let decoded = decode_packet(&mut buf, V311, bytes.len()).expect("decodes");
        assert_eq!(decoded, Some(packet));
        assert!(buf.is_empty());
    }
}

#[test]
fn largest_remaining_length() {
    // 268,435,455 is the largest remaining length: framed from the header alone (and refused
    // by size), measured without copying the payload, and one byte more cannot be encoded.
    let header = [0x30, 0xFF, 0xFF, 0xFF, 0x7F];
    let mut buf = BytesMut::from(&header[..]);
    let err = decode_packet(&mut buf, V311, MAX).expect_err("too large");
    assert!(matches!(
        err,
        DecodeError::PacketTooLarge {
            size: 268_435_460,
            max: MAX
        }
    ));
    let packet = publish_with_remaining(268_435_455);
    assert_eq!(encoded_len(&packet, V311), 268_435_460);
    let packet = publish_with_remaining(268_435_456);
    assert_eq!(encoded_len(&packet, V311), usize::MAX);
    let mut out = BytesMut::new();
    let err = encode_packet(&packet, V311, &mut out).expect_err("too large");
    assert!(matches!(
        err,
        EncodeError::PacketTooLarge { size: 268_435_456 }
    ));
    assert!(out.is_empty());
    // A fifth length byte is malformed (MQTT-1.5.5 / §2.2.3).
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01][..]);
    let err = decode_packet(&mut buf, V311, usize::MAX).expect_err("malformed");
    assert!(matches!(err, DecodeError::MalformedRemainingLength));
    assert_eq!(err.reason_code(), 0x81);
}

fn sample_stream() -> (Vec<u8>, Vec<Packet>) {
    let packets = vec![
        Packet::Connect(Box::new(Connect::new(V311, "c"))),
        Packet::Publish(Publish {
            qos: QoS::AtLeastOnce,
            pkid: Some(pkid(7)),
            ..Publish::new("a/b", Bytes::from(vec![0x42; 300]))
        }),
        Packet::PingReq,
        Packet::PubAck(Ack::new(pkid(7))),
        Packet::Disconnect(Disconnect::default()),
    ];
    let bytes = packets.iter().flat_map(|p| encode(p, V311)).collect();
    (bytes, packets)
}

#[test]
fn one_byte_at_a_time() {
    let (bytes, packets) = sample_stream();
    let mut buf = BytesMut::new();
    let mut decoded = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        buf.extend_from_slice(&[b]);
        match decode_packet(&mut buf, V311, MAX).expect("valid stream") {
            Some(packet) => {
                // The frame ends exactly here and nothing of it is left behind.
                assert!(buf.is_empty(), "byte {i}: {} left", buf.len());
                decoded.push(packet);
            }
            None => assert!(!buf.is_empty()),
        }
    }
    assert_eq!(decoded, packets);
}

#[test]
fn leaves_the_next_packets_bytes() {
    let (bytes, packets) = sample_stream();
    let first_len = encode(&packets[0], V311).len();
    for extra in 0..4 {
        let mut buf = BytesMut::from(&bytes[..first_len + extra]);
        let packet = decode_packet(&mut buf, V311, MAX).expect("valid");
        assert_eq!(packet.as_ref(), Some(&packets[0]));
        assert_eq!(&buf[..], &bytes[first_len..first_len + extra]);
        // The next packet is incomplete: nothing consumed.
        assert_eq!(decode_packet(&mut buf, V311, MAX).expect("valid"), None);
        assert_eq!(buf.len(), extra);
    }
}

#[test]
fn several_packets_in_one_buffer() {
    let (bytes, packets) = sample_stream();
    let mut buf = BytesMut::from(&bytes[..]);
    let mut decoded = Vec::new();
    while let Some(packet) = decode_packet(&mut buf, V311, MAX).expect("valid") {
        decoded.push(packet);
    }
    assert_eq!(decoded, packets);
    assert!(buf.is_empty());
}

#[test]
fn oversize_refused_from_the_fixed_header() {
    // Only the fixed header of a 10 MB PUBLISH is buffered.
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0x30]);
    put_varint(&mut buf, 10 * 1024 * 1024);
    let err = decode_packet(&mut buf, V5, MAX).expect_err("refused early");
    let DecodeError::PacketTooLarge { size, max } = err else {
        panic!("wrong error {err:?}")
    };
    assert_eq!((size, max), (10 * 1024 * 1024 + 5, MAX));
    assert_eq!(err.reason_code(), 0x95);
}

#[test]
fn size_limit_counts_the_whole_packet() {
    // MQTT 5 §3.1.2.11.4: the limit is on the total packet size, fixed header included.
    let ping = [0xC0, 0x00];
    let mut buf = BytesMut::from(&ping[..]);
    assert_eq!(
        decode_packet(&mut buf, V5, 2).expect("fits"),
        Some(Packet::PingReq)
    );
    let mut buf = BytesMut::from(&ping[..]);
    assert!(matches!(
        decode_packet(&mut buf, V5, 1),
        Err(DecodeError::PacketTooLarge { size: 2, max: 1 })
    ));
}

#[test]
fn empty_buffer_needs_more() {
    let mut buf = BytesMut::new();
    assert_eq!(decode_packet(&mut buf, V5, MAX).expect("empty"), None);
    let mut buf = BytesMut::from(&[0x30][..]);
    assert_eq!(decode_packet(&mut buf, V5, MAX).expect("header"), None);
    assert_eq!(buf.len(), 1);
}

#[test]
fn peek_needs_only_the_protocol_level() {
    let connect = encode(&Packet::Connect(Box::new(Connect::new(V5, "peek"))), V5);
    // Fixed header (2), name (6), level (1).
    for n in 0..9 {
        assert_eq!(
            peek_connect_version(&connect[..n]).expect("prefix"),
            None,
            "{n}"
        );
    }
    for n in 9..=connect.len() {
        assert_eq!(
            peek_connect_version(&connect[..n]).expect("prefix"),
            Some(V5)
        );
    }
}

#[test]
fn peek_errors() {
    assert!(matches!(
        peek_connect_version(&[0x30, 0x00]),
        Err(DecodeError::FirstPacketNotConnect(3))
    ));
    assert!(matches!(
        peek_connect_version(&[0x11, 0x00]),
        Err(DecodeError::InvalidFixedHeaderFlags { .. })
    ));
    let unsupported = cat(&[&[0x10, 7], &s("MQTT"), &[0x06]]);
    let err = peek_connect_version(&unsupported).expect_err("level 6");
    assert!(matches!(err, DecodeError::UnsupportedProtocolVersion(6)));
    assert_eq!(err.reason_code(), 0x84);
    let not_mqtt = cat(&[&[0x10, 7], &s("HTTP"), &[0x04]]);
    assert!(matches!(
        peek_connect_version(&not_mqtt),
        Err(DecodeError::InvalidProtocolName)
    ));
    // The remaining length is too short to hold the name: no amount of waiting helps.
    assert!(matches!(
        peek_connect_version(&[0x10, 0x01, 0x00]),
        Err(DecodeError::Truncated)
    ));
    assert!(matches!(
        peek_connect_version(&[0x10, 0xFF, 0xFF, 0xFF, 0xFF]),
        Err(DecodeError::MalformedRemainingLength)
    ));
}

#[test]
fn peek_does_not_consume() {
    let connect = encode(&Packet::Connect(Box::new(Connect::new(V5, "c"))), V5);
    let buf = BytesMut::from(&connect[..]);
    assert_eq!(peek_connect_version(&buf).expect("peek"), Some(V5));
    assert_eq!(&buf[..], &connect[..]);
}

#[test]
fn codec_adopts_the_connect_version() {
    let mut codec = MqttCodec::new(MAX);
    assert_eq!(codec.version(), V311);
    let mut buf = BytesMut::new();
    let connect = Packet::Connect(Box::new(Connect::new(V5, "c")));
    buf.extend_from_slice(&encode(&connect, V5));
    buf.extend_from_slice(&[0xF0, 0x00]); // AUTH: only legal once MQTT 5 is known
    assert_eq!(codec.decode(&mut buf).expect("connect"), Some(connect));
    assert_eq!(codec.version(), V5);
    assert_eq!(
        codec.decode(&mut buf).expect("auth"),
        Some(Packet::Auth(Auth::default()))
    );
    assert_eq!(codec.decode(&mut buf).expect("empty"), None);

    let mut out = BytesMut::new();
    codec
        .encode(Packet::Disconnect(Disconnect::new(0x8E)), &mut out)
        .expect("encodes");
    codec
        .encode(&Packet::PingResp, &mut out)
        .expect("encodes by reference");
    assert_eq!(&out[..], &[0xE0, 0x02, 0x8E, 0x00, 0xD0, 0x00]);
    codec.set_version(ProtocolVersion::V31);
    assert_eq!(codec.version(), ProtocolVersion::V31);
}

#[test]
fn codec_decode_eof_with_partial_frame_is_an_error() {
    let mut codec = MqttCodec::new(MAX);
    let mut buf = BytesMut::from(&[0x30, 0x05, 0x00][..]);
    // tokio-util turns leftover bytes at EOF into an io::Error, hence From<io::Error>.
    let err = codec
        .decode_eof(&mut buf)
        .expect_err("partial frame at EOF");
    assert!(matches!(err, DecodeError::Io(_)));
    assert_eq!(err.reason_code(), 0x80);
}
