//! TLV vectors: the LwM2M TS §6.4.3.1 Device object example (as EMQX's emqx_tlv_SUITE uses
//! it), signed integers (docs/lwm2m.md §4.13.4), floats, the length encodings, and round
//! trips.

use super::*;
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|h| u8::from_str_radix(h, 16).unwrap_or_else(|e| panic!("{h}: {e}")))
        .collect()
}

/// LwM2M TS 1.0 §6.4.3.1, Device object instance 0 read as resources.
const DEVICE: &str = "C8 00 14 4F 70 65 6E 20 4D 6F 62 69 6C 65 20 41 6C 6C 69 61 6E 63 65 \
    C8 01 16 4C 69 67 68 74 77 65 69 67 68 74 20 4D 32 4D 20 43 6C 69 65 6E 74 \
    C8 02 09 33 34 35 30 30 30 31 32 33 \
    C3 03 31 2E 30 \
    86 06 41 00 01 41 01 05 \
    88 07 08 42 00 0E D8 42 01 13 88 \
    87 08 41 00 7D 42 01 03 84 \
    C1 09 64 \
    C1 0A 0F \
    83 0B 41 00 00 \
    C4 0D 51 82 42 8F \
    C6 0E 2B 30 32 3A 30 30 \
    C1 10 55";

#[test]
fn device_object_example_decodes() {
    let t = decode(&hex(DEVICE)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.len(), 13);
    assert_eq!(
        t[0],
        Tlv::value(Kind::Resource, 0, b"Open Mobile Alliance".to_vec())
    );
    assert_eq!(t[1].value, b"Lightweight M2M Client");
    assert_eq!(t[2].value, b"345000123");
    assert_eq!(t[4].kind, Kind::MultipleResource);
    assert_eq!(t[4].id, 6);
    assert_eq!(
        t[4].children,
        vec![
            Tlv::value(Kind::ResourceInstance, 0, vec![1]),
            Tlv::value(Kind::ResourceInstance, 1, vec![5]),
        ]
    );
    assert_eq!(decode_int(&t[5].children[0].value), Some(3800));
    assert_eq!(decode_int(&t[5].children[1].value), Some(5000));
    assert_eq!(decode_int(&t[6].children[1].value), Some(900));
    assert_eq!(decode_int(&t[7].value), Some(100));
    assert_eq!(decode_int(&t[10].value), Some(1_367_491_215));
    assert_eq!(t[12].value, b"U");
    // And encodes back to the same bytes.
    assert_eq!(encode(&t), Ok(hex(DEVICE)));
}

#[test]
fn emqx_write_vectors() {
    // Float 12345.0 on /3/0/13: C8 0D 08 40 C8 1C 80 00 00 00 00.
    let f = vec![Tlv::value(Kind::Resource, 13, encode_float(12345.0))];
    assert_eq!(encode(&f), Ok(hex("C8 0D 08 40 C8 1C 80 00 00 00 00")));
    // Integer 12345 and String "87x": C2 0D 30 39 C3 0E 38 37 78.
    let b = vec![
        Tlv::value(Kind::Resource, 13, encode_int(12345)),
        Tlv::value(Kind::Resource, 14, b"87x".to_vec()),
    ];
    assert_eq!(encode(&b), Ok(hex("C2 0D 30 39 C3 0E 38 37 78")));
}

#[test]
fn integers_are_minimal_twos_complement() {
    // EMQX 5.8.9 encodes 200 as C8 (= -56 to a device): docs/lwm2m.md §4.13.4.
    assert_eq!(encode_int(200), vec![0x00, 0xC8]);
    assert_eq!(encode_int(127), vec![0x7F]);
    assert_eq!(encode_int(128), vec![0x00, 0x80]);
    assert_eq!(encode_int(-1), vec![0xFF]);
    assert_eq!(encode_int(-128), vec![0x80]);
    assert_eq!(encode_int(-129), vec![0xFF, 0x7F]);
    assert_eq!(encode_int(40_000), vec![0x00, 0x00, 0x9C, 0x40]);
    assert_eq!(encode_int(i64::MIN).len(), 8);
    assert_eq!(decode_int(&[0xC8]), Some(-56));
    assert_eq!(decode_int(&[0x00, 0xC8]), Some(200));
    assert_eq!(decode_int(&[1, 2, 3]), None);
    assert_eq!(decode_uint(&[0xC8]), Some(200));
}

#[test]
fn floats_four_and_eight_bytes() {
    assert_eq!(decode_float(&1.5f32.to_be_bytes()), Some(1.5));
    assert_eq!(decode_float(&(-2.25f64).to_be_bytes()), Some(-2.25));
    assert_eq!(decode_float(&[0, 0]), None);
}

#[test]
fn long_values_and_16_bit_ids() {
    let v = vec![7u8; 300];
    let t = vec![Tlv::value(Kind::Resource, 0x1234, v.clone())];
    let b = encode(&t).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&b[..5], &[0xF0, 0x12, 0x34, 0x01, 0x2C]);
    assert_eq!(decode(&b), Ok(t));
    let big = vec![Tlv::value(Kind::Resource, 1, vec![0; 70_000])];
    let b = encode(&big).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b[0], 0xD8);
    assert_eq!(decode(&b), Ok(big));
}

#[test]
fn malformed_input_is_an_error() {
    assert_eq!(decode(&[0xC8]), Err(TlvError::Truncated));
    assert_eq!(decode(&[0xC8, 0x00, 0x05, 1]), Err(TlvError::Truncated));
    assert_eq!(decode(&[0xE3, 0x00]), Err(TlvError::Truncated));
    // Object instance in object instance in multiple resource in ...: too deep.
    let deep = hex("08 00 06 08 01 03 88 02 00");
    assert!(decode(&deep).is_err());
}

fn arb_tlv() -> impl Strategy<Value = Tlv> {
    let leaf = (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..40))
        .prop_map(|(id, v)| Tlv::value(Kind::Resource, id, v));
    let inst = (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..10))
        .prop_map(|(id, v)| Tlv::value(Kind::ResourceInstance, id, v));
    let multi = (any::<u16>(), proptest::collection::vec(inst, 0..4))
        .prop_map(|(id, c)| Tlv::container(Kind::MultipleResource, id, c));
    let member = prop_oneof![leaf.clone(), multi.clone()];
    let obj = (any::<u16>(), proptest::collection::vec(member, 0..4))
        .prop_map(|(id, c)| Tlv::container(Kind::ObjectInstance, id, c));
    prop_oneof![leaf, multi, obj]
}

proptest! {
    #[test]
    fn encode_decode_round_trip(t in proptest::collection::vec(arb_tlv(), 0..4)) {
        let b = encode(&t).unwrap_or_default();
        prop_assert_eq!(decode(&b), Ok(t));
    }

    #[test]
    fn integers_round_trip(v in any::<i64>()) {
        prop_assert_eq!(decode_int(&encode_int(v)), Some(v));
    }

    #[test]
    fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode(&b);
    }
}
