//! DTLS records to the server side (switchyard-net over rtc-dtls): datagrams to a fresh
//! association, or to one established by an in-memory PSK handshake. No panic; no application
//! data from forged records. The body is `switchyard_net::dtls::fuzzing::record`, which
//! `cargo test` also runs over fuzz/seeds/dtls_record/.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_net::dtls::fuzzing::record(data));
