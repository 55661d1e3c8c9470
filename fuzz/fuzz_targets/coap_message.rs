//! CoAP message and options: strict decode→encode→decode, option and request readers.
//! The body is `switchyard_coap::fuzzing::message`,
//! which `cargo test` also runs over fuzz/seeds/coap_message/.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_coap::fuzzing::message(data));
