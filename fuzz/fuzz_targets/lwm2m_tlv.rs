//! LwM2M TLV: frames decode→encode→decode, typed values.
//! The body is `switchyard_lwm2m::fuzzing::tlv`,
//! which `cargo test` also runs over fuzz/seeds/lwm2m_tlv/.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_lwm2m::fuzzing::tlv(data));
