//! Stateful: the QoS engine against a model.
//! The body is `switchyard_bus::fuzzing::qos_engine`,
//! which `cargo test` also runs over fuzz/seeds/qos_engine/.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_bus::fuzzing::qos_engine(data));
