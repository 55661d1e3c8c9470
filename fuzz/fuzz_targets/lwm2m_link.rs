//! LwM2M Register/Update: query and CoRE link-format object list.
//! The body is `switchyard_lwm2m::fuzzing::link`,
//! which `cargo test` also runs over fuzz/seeds/lwm2m_link/.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_lwm2m::fuzzing::link(data));
