//! MQTT over WebSocket: the HTTP upgrade request, then frames, into the MQTT decoder.
//! The body is `switchyard_mqtt::fuzzing::ws_upgrade`,
//! which `cargo test` also runs over fuzz/seeds/mqtt_ws_upgrade/.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_mqtt::fuzzing::ws_upgrade(data));
