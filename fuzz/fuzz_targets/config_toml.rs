//! The config loader: any TOML text; what loads prints and loads back equal.
//! The body is `switchyard_config::fuzzing::toml`,
//! which `cargo test` also runs over fuzz/seeds/config_toml/.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_config::fuzzing::toml(data));
