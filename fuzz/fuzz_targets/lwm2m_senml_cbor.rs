//! SenML CBOR (112): payloads, and write items encode→decode.
//! The body is `switchyard_lwm2m::fuzzing::senml_cbor`,
//! which `cargo test` also runs over fuzz/seeds/lwm2m_senml_cbor/.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_lwm2m::fuzzing::senml_cbor(data));
