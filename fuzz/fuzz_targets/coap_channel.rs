//! Stateful: the CoAP pub/sub gateway (routing, channels, observations) on a bus.
//! The body is `switchyard_coap::fuzzing::channel`,
//! which `cargo test` also runs over fuzz/seeds/coap_channel/.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_coap::fuzzing::channel(data));
