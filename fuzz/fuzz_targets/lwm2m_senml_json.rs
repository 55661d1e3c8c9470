//! SenML JSON (110): payloads, and write items encode→decode.
//! The body is `switchyard_lwm2m::fuzzing::senml_json`,
//! which `cargo test` also runs over fuzz/seeds/lwm2m_senml_json/.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_lwm2m::fuzzing::senml_json(data));
