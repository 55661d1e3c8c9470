//! What a cluster node reads from the others: NATS subjects back to topics, message envelopes,
//! the duplicate filter. The body is `switchyard_cluster::fuzzing::cluster_wire`, which
//! `cargo test` also runs over fuzz/seeds/cluster_wire/.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_cluster::fuzzing::cluster_wire(data));
