//! Helpers for the fuzz harnesses of the CoAP-based gateways (doc-hidden; not an API): checks on
//! what the transport sends, shared by the CoAP and LwM2M harnesses, which both send through it;
//! and the transport's own target, [`transport`] (the body of the `coap_transport` cargo-fuzz
//! target in `fuzz/`, replayed over its committed seeds `fuzz/seeds/coap_transport/` by the unit
//! test below, so `cargo test` checks it on stable).
//!
//! Must not know: any gateway or harness; these only panic on a broken transport invariant.

#[cfg(test)]
mod seeds;
mod transport;

pub use transport::transport;

use crate::wire;
use coap_lite::Packet;

/// Checks that a message we send is well formed and decodes back to itself.
pub fn assert_sendable(bytes: &[u8]) -> Packet {
    match wire::decode(bytes) {
        Ok(p) => {
            let again = p.to_bytes_unlimited().unwrap_or_default();
            assert_eq!(wire::decode(&again).ok().as_ref(), Some(&p));
            p
        }
        Err(e) => panic!("the transport sent a malformed message ({e}): {bytes:02x?}"),
    }
}

#[cfg(test)]
mod tests {
    use switchyard_bus::fuzzing::{replay_dir, seeds};

    #[test]
    fn coap_transport_seed_corpus_replays() {
        let dir = seeds(env!("CARGO_MANIFEST_DIR"), "coap_transport");
        let n = replay_dir(&dir, super::transport);
        assert!(n > 0, "no seeds in {}", dir.display());
    }
}
