//! LwM2M JSON (11543) payloads.
//! The body is `switchyard_lwm2m::fuzzing::lwm2m_json`,
//! which `cargo test` also runs over fuzz/seeds/lwm2m_json/.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_lwm2m::fuzzing::lwm2m_json(data));
