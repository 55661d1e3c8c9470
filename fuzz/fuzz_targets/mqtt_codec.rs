//! MQTT codec: decode→encode→decode under each protocol version.
//! The body is `switchyard_mqtt::fuzzing::codec`,
//! which `cargo test` also runs over fuzz/seeds/mqtt_codec/.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_mqtt::fuzzing::codec(data));
