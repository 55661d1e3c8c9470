//! MQTT-SN codec: one datagram, decode→encode→decode.
//! The body is `switchyard_mqttsn::fuzzing::codec`,
//! which `cargo test` also runs over fuzz/seeds/mqttsn_codec/.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_mqttsn::fuzzing::codec(data));
