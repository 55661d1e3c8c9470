//! Stateful: the CoAP transport (dedup, retransmission, block-wise) between three peers.
//! The body is `switchyard_coap_transport::fuzzing::transport`,
//! which `cargo test` also runs over fuzz/seeds/coap_transport/.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_coap_transport::fuzzing::transport(data));
