//! Stateful: MQTT 3.1/3.1.1/5 channels on one bus, a program of packets and clock steps.
//! The body is `switchyard_mqtt::fuzzing::channel`,
//! which `cargo test` also runs over fuzz/seeds/mqtt_channel/.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_mqtt::fuzzing::channel(data));
