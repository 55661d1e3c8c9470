//! Stateful: MQTT-SN channels on one bus, datagrams, sleep and clock steps.
//! The body is `switchyard_mqttsn::fuzzing::channel`,
//! which `cargo test` also runs over fuzz/seeds/mqttsn_channel/.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_mqttsn::fuzzing::channel(data));
