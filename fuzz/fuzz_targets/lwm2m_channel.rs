//! Stateful: LwM2M devices (registration, commands, observe) on the transport and a bus.
//! The body is `switchyard_lwm2m::fuzzing::channel`,
//! which `cargo test` also runs over fuzz/seeds/lwm2m_channel/.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_lwm2m::fuzzing::channel(data));
