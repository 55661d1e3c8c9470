//! LwM2M MQTT commands: JSON to CoAP request, device reply to event.
//! The body is `switchyard_lwm2m::fuzzing::command`,
//! which `cargo test` also runs over fuzz/seeds/lwm2m_command/.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_lwm2m::fuzzing::command(data));
